//! The rule of `type: topic`: records of any existing topic (the company's own streams), whose id,
//! version and deletes are read by jq programs from the record.

use std::collections::HashMap;

use chrono::DateTime;
use dastra_connect_core::Classify;
use dastra_connect_core::bus::InboundMessage;
use dastra_connect_core::canonical::canonical_json;
use dastra_connect_core::event::{sequence_from_time, sequence_from_u64};
use dastra_connect_core::source::Mapping;
use serde_json::Value;

use crate::config::ReaderConfig;
use crate::reader::{Change, RecordRule, Reject, Row};

/// The programs of one topic.
struct Programs {
    key: Option<Mapping>,
    version: Mapping,
    delete: Option<Mapping>,
    params: Value,
}

/// Reads records with the `key`, `version` and `delete` programs of their topic.
pub struct TopicRule {
    topics: HashMap<String, Programs>,
    key_system: String,
}

impl TopicRule {
    /// Compiles the programs of `config` (validated: `version` is present and every program
    /// compiles).
    pub fn new(
        config: &ReaderConfig,
        key_system: &str,
    ) -> Result<TopicRule, dastra_connect_core::source::MappingError> {
        let mut topics = HashMap::new();
        for t in &config.topics {
            let compile = |what: &str, p: &Option<String>| {
                p.as_deref().map(|p| Mapping::compile(&format!("{}.{what}", t.stream()), p)).transpose()
            };
            let version =
                compile("version", &t.version)?.ok_or_else(|| dastra_connect_core::source::MappingError::Compile {
                    name: format!("{}.version", t.stream()),
                    detail: "`type: topic` needs a version program".into(),
                })?;
            let programs = Programs {
                key: compile("key", &t.key)?,
                version,
                delete: compile("delete", &t.delete)?,
                params: Value::Object(t.params.clone()),
            };
            topics.insert(t.topic.clone(), programs);
        }
        Ok(TopicRule { topics, key_system: key_system.to_owned() })
    }

    fn first(&self, program: &Mapping, value: &Value, params: &Value) -> Result<Option<Value>, Reject> {
        let out = program.run(value, params, &self.key_system).map_err(|e| (e.code(), e.to_string()))?;
        Ok(out.into_iter().next())
    }
}

/// A record id as text: strings as they are, anything else as canonical JSON.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(canonical_json(other)),
    }
}

impl RecordRule for TopicRule {
    fn read(&self, topic: &str, _msg: &InboundMessage, key: Option<&Value>, value: &Value) -> Result<Change, Reject> {
        let p =
            self.topics.get(topic).ok_or_else(|| ("not_configured", format!("topic `{topic}` is not configured")))?;
        let record_id = match &p.key {
            Some(program) => self.first(program, value, &p.params)?.as_ref().and_then(id_text),
            None => key.and_then(id_text),
        }
        .ok_or_else(|| {
            ("no_key", "the record has no id (empty message key, or the `key` program gave none)".to_owned())
        })?;
        let version = self.first(&p.version, value, &p.params)?;
        let (sequence, time) = match &version {
            Some(Value::Number(n)) if n.as_u64().is_some() => (sequence_from_u64(n.as_u64().unwrap_or(0)), None),
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                match s.parse::<u64>() {
                    Ok(n) => (sequence_from_u64(n), None),
                    Err(_) => return Err(("no_version", format!("version {s:?} is larger than a 64-bit counter"))),
                }
            }
            Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => (sequence_from_time(t.to_utc(), 0), Some(t.to_utc())),
                Err(_) => {
                    return Err(("no_version", format!("version {s:?} is neither a counter nor an RFC 3339 time")));
                }
            },
            other => {
                return Err((
                    "no_version",
                    format!(
                        "the version program gave {}, not a non-negative integer or an RFC 3339 time",
                        other.as_ref().map_or("nothing".into(), Value::to_string)
                    ),
                ));
            }
        };
        let deleted = match &p.delete {
            Some(program) => self.first(program, value, &p.params)? == Some(Value::Bool(true)),
            None => false,
        };
        let row = if deleted { Row::Delete(Some(value.clone())) } else { Row::Upsert(value.clone()) };
        Ok(Change { record_id, sequence, time, snapshot: false, row, also: Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ReaderKind;
    use dastra_connect_core::event::is_newer;
    use serde_json::json;

    fn rule(yaml: &str) -> TopicRule {
        let cfg: ReaderConfig = dastra_connect_core::config::from_yaml_str(yaml).unwrap();
        cfg.validate("c", ReaderKind::Topic).unwrap();
        TopicRule::new(&cfg, "crm").unwrap()
    }

    fn msg() -> InboundMessage {
        InboundMessage {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: Default::default(),
            payload: None,
            headers: vec![],
            timestamp: None,
        }
    }

    #[test]
    fn key_version_and_delete_come_from_the_record() {
        let r = rule(
            "topics: [{topic: t, mapping: '.', key: '.vendor.code', version: '.rev', delete: '.status == \"removed\"'}]",
        );
        let a = r.read("t", &msg(), None, &json!({"vendor": {"code": "V1"}, "rev": 9})).unwrap();
        assert_eq!((a.record_id.as_str(), matches!(a.row, Row::Upsert(_))), ("V1", true));
        let b =
            r.read("t", &msg(), None, &json!({"vendor": {"code": "V1"}, "rev": "10", "status": "removed"})).unwrap();
        assert!(matches!(b.row, Row::Delete(Some(_))) && is_newer(&b.sequence, &a.sequence));
        let e = r.read("t", &msg(), None, &json!({"vendor": {"code": "V1"}, "rev": "soon"})).unwrap_err();
        assert_eq!(e.0, "no_version");
        assert_eq!(r.read("t", &msg(), None, &json!({"rev": 1})).unwrap_err().0, "no_key");

        let r = rule("topics: [{topic: t, mapping: '.', version: '.updated_at'}]");
        let k = json!("K-1");
        let c = r.read("t", &msg(), Some(&k), &json!({"updated_at": "2026-01-02T03:04:05Z"})).unwrap();
        assert_eq!(c.record_id, "K-1");
        assert_eq!(c.time.unwrap().to_rfc3339(), "2026-01-02T03:04:05+00:00");
        let later = r.read("t", &msg(), Some(&k), &json!({"updated_at": "2026-01-02T03:04:06+00:00"})).unwrap();
        assert!(is_newer(&later.sequence, &c.sequence));
    }
}
