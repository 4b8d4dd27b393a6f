//! Dead-letter records of sources: a source record the mapping rejected (or whose mapped output is
//! not a valid event), with the same reason headers as the sink's DLQ (`dastra_dlq_reason`,
//! `dastra_dlq_error`, `dastra_dlq_connector`, `dastra_dlq_time`) plus where it came from.

use bytes::Bytes;

use crate::bus::OutboundMessage;

/// Header: stable reason code (`mapping_error`, `invalid_payload`, …). Same name as the sink's.
pub const H_REASON: &str = "dastra_dlq_reason";
/// Header: the error, as an operator sentence. Same name as the sink's.
pub const H_ERROR: &str = "dastra_dlq_error";
/// Header: the connector that dead-lettered it. Same name as the sink's.
pub const H_CONNECTOR: &str = "dastra_dlq_connector";
/// Header: when (RFC 3339). Same name as the sink's.
pub const H_TIME: &str = "dastra_dlq_time";
/// Header: the source stream (table) of the record.
pub const H_STREAM: &str = "dastra_dlq_source_stream";
/// Header: the record's id in the source system.
pub const H_RECORD: &str = "dastra_dlq_source_record";
/// Header: the record's version.
pub const H_VERSION: &str = "dastra_dlq_source_version";

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

/// Longest error text kept in a header.
const MAX_ERROR: usize = 1000;

/// The DLQ message for a source record: key `<system>:<stream>:<record id>`, value the record as
/// JSON, `content-type: application/json`.
pub fn record_message(dlq_topic: &str, connector: &str, rejected: &Rejected<'_>) -> OutboundMessage {
    let Rejected { system, stream, record_id, version, record, reason, error } = *rejected;
    let mut error = error.to_owned();
    if error.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
        error.push('…');
    }
    let value = serde_json::to_vec(record).unwrap_or_default();
    OutboundMessage::new(dlq_topic, Bytes::from(format!("{system}:{stream}:{record_id}")), Bytes::from(value))
        .with_header("content-type", "application/json")
        .with_header(H_REASON, reason)
        .with_header(H_ERROR, error)
        .with_header(H_CONNECTOR, connector)
        .with_header(H_TIME, chrono::Utc::now().to_rfc3339())
        .with_header(H_STREAM, stream)
        .with_header(H_RECORD, record_id)
        .with_header(H_VERSION, version.to_string())
}
