//! Dead-letter records: the original message (value, key, headers) plus headers that say why, so
//! that `dastra-connect dlq list` can show it and `dlq redrive` can put it back where it came from.

use bytes::Bytes;
use dastra_connect_core::bus::{InboundMessage, OutboundMessage};
use serde::{Deserialize, Serialize};

/// Header: stable reason code (`invalid_enum`, `dastra_bad_request`, `parked`, …).
pub const H_REASON: &str = "dastra_dlq_reason";
/// Header: the error, as an operator sentence (secrets redacted).
pub const H_ERROR: &str = "dastra_dlq_error";
/// Header: HTTP status Dastra answered, if any.
pub const H_STATUS: &str = "dastra_dlq_status";
/// Header: attempts made.
pub const H_ATTEMPTS: &str = "dastra_dlq_attempts";
/// Header: original topic.
pub const H_TOPIC: &str = "dastra_dlq_topic";
/// Header: original partition.
pub const H_PARTITION: &str = "dastra_dlq_partition";
/// Header: original offset.
pub const H_OFFSET: &str = "dastra_dlq_offset";
/// Header: the connector that dead-lettered it.
pub const H_CONNECTOR: &str = "dastra_dlq_connector";
/// Header: when (RFC 3339).
pub const H_TIME: &str = "dastra_dlq_time";
/// Set by `dlq redrive` on each re-sent record: the reason it was dead-lettered for. A redriven
/// record that caused its key's parking (any reason but `parked`) un-parks the key when the sink
/// reads it, so it is applied even if the sink has not yet seen the un-parking written by the
/// command (state stores of other processes follow with some delay).
pub const H_REDRIVE_REASON: &str = "dastra_redrive_reason";

/// A consumed message as the sink keeps it (for the DLQ and the pending set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawMessage {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    #[serde(with = "b64")]
    pub key: Vec<u8>,
    /// Value (`None` for a tombstone).
    #[serde(with = "b64opt")]
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, String)>,
}

impl RawMessage {
    /// From a consumed message (headers that are not UTF-8 are kept lossily).
    pub fn from_inbound(m: &InboundMessage) -> Self {
        Self {
            topic: m.topic.clone(),
            partition: m.partition,
            offset: m.offset,
            key: m.key.to_vec(),
            value: m.payload.as_ref().map(|p| p.to_vec()),
            headers: m.headers.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect(),
        }
    }

    /// Headers as the codec reads them.
    pub fn header_bytes(&self) -> Vec<(String, Vec<u8>)> {
        self.headers.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect()
    }
}

/// Why a message goes to the DLQ.
#[derive(Debug, Clone)]
pub struct DlqReason {
    /// Stable code.
    pub code: String,
    /// Operator sentence (no secrets).
    pub error: String,
    /// HTTP status, if any.
    pub status: Option<u16>,
    /// Attempts made.
    pub attempts: u32,
}

/// Longest error text kept in a header.
const MAX_ERROR: usize = 1000;

/// The DLQ message for `raw`.
pub fn dlq_message(dlq_topic: &str, connector: &str, raw: &RawMessage, why: &DlqReason) -> OutboundMessage {
    let mut msg = match &raw.value {
        Some(v) => OutboundMessage::new(dlq_topic, Bytes::from(raw.key.clone()), Bytes::from(v.clone())),
        None => OutboundMessage::tombstone(dlq_topic, Bytes::from(raw.key.clone())),
    };
    for (k, v) in &raw.headers {
        if !k.starts_with("dastra_dlq_") {
            msg = msg.with_header(k.clone(), v.clone().into_bytes());
        }
    }
    let mut error = why.error.clone();
    if error.len() > MAX_ERROR {
        let mut cut = MAX_ERROR;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
        error.push('…');
    }
    msg = msg
        .with_header(H_REASON, why.code.clone())
        .with_header(H_ERROR, error)
        .with_header(H_ATTEMPTS, why.attempts.to_string())
        .with_header(H_TOPIC, raw.topic.clone())
        .with_header(H_PARTITION, raw.partition.to_string())
        .with_header(H_OFFSET, raw.offset.to_string())
        .with_header(H_CONNECTOR, connector.to_owned())
        .with_header(H_TIME, chrono::Utc::now().to_rfc3339());
    if let Some(s) = why.status {
        msg = msg.with_header(H_STATUS, s.to_string());
    }
    msg
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

mod b64opt {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&STANDARD.encode(v)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(t) => STANDARD.decode(t).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
