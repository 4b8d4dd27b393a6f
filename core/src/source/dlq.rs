//! Dead-letter records of sources: a source record the mapping rejected (or whose mapped output is
//! not a valid event), with the same reason headers as the sink's DLQ ([`crate::dlq`]) plus where
//! it came from.

use bytes::Bytes;

use crate::bus::OutboundMessage;

use crate::dlq::{
    H_CONNECTOR, H_ERROR, H_REASON, H_SOURCE_RECORD, H_SOURCE_STREAM, H_SOURCE_VERSION, H_TIME, truncate_error,
};

/// A rejected source record and why.
#[derive(Debug, Clone, Copy)]
pub struct Rejected<'a> {
    /// Key system segment (`servicenow`).
    pub system: &'a str,
    /// The stream (table).
    pub stream: &'a str,
    /// The record's id.
    pub record_id: &'a str,
    /// The record's version.
    pub version: u64,
    /// The record as read.
    pub record: &'a serde_json::Value,
    /// Stable reason code.
    pub reason: &'a str,
    /// Operator sentence.
    pub error: &'a str,
}

/// The DLQ message for a source record: key `<system>:<stream>:<record id>`, value the record as
/// JSON, `content-type: application/json`.
pub fn record_message(dlq_topic: &str, connector: &str, rejected: &Rejected<'_>) -> OutboundMessage {
    let Rejected { system, stream, record_id, version, record, reason, error } = *rejected;
    let value = serde_json::to_vec(record).unwrap_or_default();
    OutboundMessage::new(dlq_topic, Bytes::from(format!("{system}:{stream}:{record_id}")), Bytes::from(value))
        .with_header("content-type", "application/json")
        .with_header(H_REASON, reason)
        .with_header(H_ERROR, truncate_error(error))
        .with_header(H_CONNECTOR, connector)
        .with_header(H_TIME, chrono::Utc::now().to_rfc3339())
        .with_header(H_SOURCE_STREAM, stream)
        .with_header(H_SOURCE_RECORD, record_id)
        .with_header(H_SOURCE_VERSION, version.to_string())
}
