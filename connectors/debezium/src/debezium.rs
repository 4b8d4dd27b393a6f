//! The rule of `type: debezium`: records are Debezium change-event envelopes ([`crate::envelope`]).

use dastra_connect_core::bus::InboundMessage;
use serde_json::Value;

use crate::envelope::read_envelope;
use crate::reader::{Change, RecordRule, Reject};

/// Reads Debezium envelopes.
#[derive(Debug, Clone, Copy, Default)]
pub struct DebeziumRule;

impl RecordRule for DebeziumRule {
    fn read(&self, _topic: &str, msg: &InboundMessage, key: Option<&Value>, value: &Value) -> Result<Change, Reject> {
        read_envelope(value, key, msg.offset)
    }
}
