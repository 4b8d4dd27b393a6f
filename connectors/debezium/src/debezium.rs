//! The rule of `type: debezium`: records are Debezium change-event envelopes ([`crate::envelope`]).
//! The record id is the message key (Debezium's primary-key struct); for records published
//! without a key (Debezium Server's NATS JetStream sink), the topic's `key` program reads it from
//! the row (`after`, or `before` for a delete).

use std::collections::HashMap;

use dastra_connect_core::Classify;
use dastra_connect_core::bus::InboundMessage;
use dastra_connect_core::source::{Mapping, MappingError};
use serde_json::Value;

use crate::config::ReaderConfig;
use crate::envelope::read_envelope;
use crate::reader::{Change, RecordRule, Reject, Row};

/// Reads Debezium envelopes.
#[derive(Default)]
pub struct DebeziumRule {
    /// The `key` programs by topic, with the topic's params.
    keys: HashMap<String, (Mapping, Value)>,
    key_system: String,
}

impl DebeziumRule {
    /// The rule of `config` (validated: every `key` program compiles).
    pub fn new(config: &ReaderConfig, key_system: &str) -> Result<DebeziumRule, MappingError> {
        let mut keys = HashMap::new();
        for t in &config.topics {
            if let Some(p) = &t.key {
                let program = Mapping::compile(&format!("{}.key", t.stream()), p)?;
                keys.insert(t.topic.clone(), (program, Value::Object(t.params.clone())));
            }
        }
        Ok(DebeziumRule { keys, key_system: key_system.to_owned() })
    }
}

impl RecordRule for DebeziumRule {
    fn read(&self, topic: &str, msg: &InboundMessage, key: Option<&Value>, value: &Value) -> Result<Change, Reject> {
        let Some((program, params)) = self.keys.get(topic).filter(|_| key.is_none()) else {
            return read_envelope(value, key, msg.offset);
        };
        // Read without a key first (the row, the version), then key it from the row.
        let mut change = read_envelope(value, Some(&Value::String("-".into())), msg.offset)?;
        let row = match &change.row {
            Row::Upsert(r) | Row::Delete(Some(r)) => r,
            Row::Skip(_) => {
                change.record_id = String::new();
                return Ok(change);
            }
            Row::Delete(None) => {
                return Err((
                    "no_key",
                    "a delete without its `before` row: the `key` program has nothing to read".into(),
                ));
            }
        };
        let out = program.run(row, params, &self.key_system).map_err(|e| (e.code(), e.to_string()))?;
        change.record_id = match out.into_iter().next() {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(v) if !v.is_null() => dastra_connect_core::canonical::canonical_json(&v),
            _ => return Err(("no_key", "the `key` program gave no id for the row".into())),
        };
        Ok(change)
    }
}
