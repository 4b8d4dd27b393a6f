//! [`ReaderConfig`]: the topics a reader consumes and how each maps; the same block for
//! `type: debezium` (Debezium change-event topics) and `type: topic` (any other existing topic).
//! Validated without I/O by [`ReaderConfig::validate`].

use std::collections::HashSet;
use std::time::Duration;

use dastra_connect_core::codec::RegistryConfig;
use dastra_connect_core::config::ConfigError;
use dastra_connect_core::source::SourceSettings;
use dastra_connect_core::source::streams::{check_common, check_http_url, check_mapping};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which records a reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderKind {
    /// Debezium change events: the envelope gives the operation, the row, the key and the version.
    Debezium,
    /// Any other topic: `key`, `version` and `delete` programs read them from the record.
    Topic,
}

impl ReaderKind {
    /// The config `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReaderKind::Debezium => "debezium",
            ReaderKind::Topic => "topic",
        }
    }
}

/// A reader of existing topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReaderConfig {
    /// The topics to read, each with its mapping.
    pub topics: Vec<TopicConfig>,
    /// System segment of entity keys (`<key_system>:actor:<id>`). Default: the type, `debezium` or
    /// `topic`.
    #[serde(default)]
    pub key_system: Option<String>,
    /// Schema registry for Avro records (Confluent wire format). Default: the registry of the
    /// top-level `codec`, if any.
    #[serde(default)]
    pub registry: Option<RegistryConfig>,
    /// Consumer group and batching.
    #[serde(default)]
    pub consumer: ConsumerSettings,
    /// NATS only: read each topic as the subject of that name in this JetStream stream (owned by
    /// the company, e.g. the one Debezium Server's `nats-jetstream` sink writes to: subject
    /// `<topic.prefix>.<schema>.<table>`, no key header) instead of the bus layout
    /// (`<topic>.<partition>` on the bus stream, key in the `Dastra-Key` header). The record's id
    /// then comes from the `key` program. One replica of the group reads (a NATS lease), the
    /// others stand by.
    #[serde(default)]
    pub nats_stream: Option<String>,
}

/// One topic and how its records map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// The topic (Kafka topic; on NATS the subject prefix, read as `<topic>.<partition>`).
    pub topic: String,
    /// Stream name (metric label, DLQ header, known-key index). Default: the topic.
    #[serde(default)]
    pub name: Option<String>,
    /// jq program from the row (Debezium: `after`, or `before` for a delete) or the record (`type:
    /// topic`) to entity outputs `{kind, id | key, data}`.
    pub mapping: String,
    /// `$params` of the mapping.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// jq program to the record's id (what identifies it across updates and deletes). `type:
    /// topic`: from the record; default the message key. `type: debezium`: from the row (`after`,
    /// `before` for a delete), for records without a message key (required with `nats_stream`, e.g.
    /// `{id}` gives the id Kafka's key struct would).
    #[serde(default)]
    pub key: Option<String>,
    /// `type: topic` only, required: jq program from the record to its version, a non-negative
    /// integer (a counter, epoch milliseconds) or an RFC 3339 time; a newer record has a greater one.
    #[serde(default)]
    pub version: Option<String>,
    /// `type: topic` only: jq program from the record to `true` when the record reports a delete.
    /// Default: no record is a delete.
    #[serde(default)]
    pub delete: Option<String>,
}

impl TopicConfig {
    /// The stream name.
    pub fn stream(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.topic)
    }
}

/// Consumer group and batching of a reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Consumer group (Kafka) or durable-consumer prefix (NATS). Default `dastra-connect-<name>`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Records mapped and published together before the offsets are committed (1–10000). Default
    /// 500.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// How long a partial batch waits for more records. Default `200ms`.
    #[serde(default = "default_linger", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub linger: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings { group_id: None, batch_size: default_batch_size(), linger: default_linger() }
    }
}

fn default_batch_size() -> u32 {
    500
}
fn default_linger() -> Duration {
    Duration::from_millis(200)
}

impl ReaderConfig {
    /// The key system in effect.
    pub fn key_system(&self, kind: ReaderKind) -> &str {
        self.key_system.as_deref().unwrap_or(kind.as_str())
    }

    /// Checks everything that can be checked without I/O; errors name the key path.
    pub fn validate(&self, at: &str, kind: ReaderKind) -> Result<(), ConfigError> {
        check_common(at, self.key_system(kind), &SourceSettings::default())?;
        if self.topics.is_empty() {
            return Err(ConfigError::new(format!("{at}.topics"), "name at least one topic"));
        }
        let mut topics = HashSet::new();
        let mut names = HashSet::new();
        for (i, t) in self.topics.iter().enumerate() {
            let here = format!("{at}.topics[{i}]");
            if t.topic.is_empty() || t.topic.contains([' ', '*', '>']) {
                return Err(ConfigError::new(format!("{here}.topic"), "a topic name without spaces or wildcards"));
            }
            if !topics.insert(t.topic.as_str()) {
                return Err(ConfigError::new(format!("{here}.topic"), format!("`{}` is listed twice", t.topic)));
            }
            if !names.insert(t.stream()) {
                return Err(ConfigError::new(format!("{here}.name"), format!("`{}` is used twice", t.stream())));
            }
            check_mapping(&here, t.stream(), &t.mapping)?;
            let programs = [("key", &t.key), ("version", &t.version), ("delete", &t.delete)];
            for (field, program) in programs {
                match (kind, program) {
                    (ReaderKind::Debezium, Some(p)) if field == "key" => {
                        dastra_connect_core::source::Mapping::compile(field, p)
                            .map_err(|e| ConfigError::new(format!("{here}.{field}"), e.to_string()))?;
                    }
                    (ReaderKind::Debezium, Some(_)) => {
                        return Err(ConfigError::new(
                            format!("{here}.{field}"),
                            "not used by `type: debezium`: the change-event envelope gives the version and deletes",
                        ));
                    }
                    (ReaderKind::Topic, Some(p)) => {
                        dastra_connect_core::source::Mapping::compile(field, p)
                            .map_err(|e| ConfigError::new(format!("{here}.{field}"), e.to_string()))?;
                    }
                    _ => {}
                }
            }
            if kind == ReaderKind::Debezium && self.nats_stream.is_some() && t.key.is_none() {
                return Err(ConfigError::new(
                    format!("{here}.key"),
                    "required with `nats_stream`: Debezium Server publishes no key, a jq program on the row gives it (e.g. `{id}`)",
                ));
            }
            if kind == ReaderKind::Topic && t.version.is_none() {
                return Err(ConfigError::new(
                    format!("{here}.version"),
                    "required for `type: topic`: a jq program giving the record's version (counter or RFC 3339 time)",
                ));
            }
        }
        if let Some(s) = &self.nats_stream
            && (s.is_empty() || s.contains([' ', '.', '*', '>']))
        {
            return Err(ConfigError::new(
                format!("{at}.nats_stream"),
                "a JetStream stream name (no spaces, dots or wildcards)",
            ));
        }
        if let Some(r) = &self.registry {
            check_http_url(&format!("{at}.registry.url"), &r.url)?;
        }
        let c = &self.consumer;
        if !(1..=10_000).contains(&c.batch_size) {
            return Err(ConfigError::new(format!("{at}.consumer.batch_size"), "must be 1–10000"));
        }
        if c.linger.is_zero() || c.linger > Duration::from_secs(60) {
            return Err(ConfigError::new(format!("{at}.consumer.linger"), "must be more than 0 and at most 60s"));
        }
        if let Some(g) = &c.group_id
            && (g.is_empty() || !g.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'))
        {
            return Err(ConfigError::new(format!("{at}.consumer.group_id"), "letters, digits, `-` and `_` only"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ReaderConfig, String> {
        dastra_connect_core::config::from_yaml_str::<ReaderConfig>(yaml).map_err(|e| e.to_string())
    }

    fn err(yaml: &str, kind: ReaderKind) -> ConfigError {
        parse(yaml).unwrap_or_else(|e| panic!("{e}")).validate("c", kind).unwrap_err()
    }

    #[test]
    fn each_bad_value_names_its_key() {
        let ok = "topics: [{topic: erp.public.suppliers, mapping: '{kind: \"actor\", id: .id, data: {companyName: .name}}'}]";
        parse(ok).unwrap().validate("c", ReaderKind::Debezium).unwrap();
        assert_eq!(err(ok, ReaderKind::Topic).path, "c.topics[0].version");
        let cases = [
            ("topics: []", "c.topics"),
            ("topics: [{topic: 'a b', mapping: '.'}]", "c.topics[0].topic"),
            ("topics: [{topic: a, mapping: '{kind: '}]", "c.topics[0].mapping"),
            ("topics: [{topic: a, mapping: '.'}, {topic: a, mapping: '.'}]", "c.topics[1].topic"),
            ("topics: [{topic: a, mapping: '.'}, {topic: b, name: a, mapping: '.'}]", "c.topics[1].name"),
            ("topics: [{topic: a, mapping: '.', version: '.v'}]", "c.topics[0].version"),
            ("topics: [{topic: a, mapping: '.', key: '{id'}]", "c.topics[0].key"),
            ("{topics: [{topic: a, mapping: '.'}], nats_stream: DebeziumStream}", "c.topics[0].key"),
            ("{topics: [{topic: a, mapping: '.', key: '{id}'}], nats_stream: 'a.b'}", "c.nats_stream"),
            ("{topics: [{topic: a, mapping: '.'}], key_system: 'A B'}", "c.key_system"),
            ("{topics: [{topic: a, mapping: '.'}], consumer: {batch_size: 0}}", "c.consumer.batch_size"),
            ("{topics: [{topic: a, mapping: '.'}], consumer: {linger: 0s}}", "c.consumer.linger"),
            ("{topics: [{topic: a, mapping: '.'}], consumer: {group_id: 'g.1'}}", "c.consumer.group_id"),
            ("{topics: [{topic: a, mapping: '.'}], registry: {url: 'ftp://x'}}", "c.registry.url"),
        ];
        for (yaml, path) in cases {
            assert_eq!(err(yaml, ReaderKind::Debezium).path, path, "{yaml}");
        }
        let topic = "topics: [{topic: a, mapping: '.', version: '.v', delete: '.gone ==', key: '.id'}]";
        assert_eq!(err(topic, ReaderKind::Topic).path, "c.topics[0].delete");
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("topics: [{topic: a, mapping: '.', tabel: x}]").unwrap_err().contains("tabel"));
        assert!(parse("{topics: [], consumer: {group: g}}").unwrap_err().contains("group"));
        assert!(parse("{topics: [], sync: {}}").unwrap_err().contains("sync"));
    }
}
