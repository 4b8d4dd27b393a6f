//! Dead-letter records: the original message (value, key, headers) plus headers that say why, so
//! that `dastra-connect dlq list` can show it and `dlq redrive` can put it back where it came from.

use bytes::Bytes;
use dastra_connect_core::bus::{InboundMessage, OutboundMessage};
use serde::{Deserialize, Serialize};

// The header names and the error cut are shared with the sources' DLQ and `dlq list|redrive`.
pub use dastra_connect_core::dlq::{
    H_ATTEMPTS, H_CONNECTOR, H_ERROR, H_OFFSET, H_PARTITION, H_REASON, H_REDRIVE_REASON, H_STATUS, H_TIME, H_TOPIC,
};

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
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<(String, String)>,
}

impl RawMessage {
    /// From a consumed message, taken over without copying its value, topic or headers (headers
    /// that are not UTF-8 are kept lossily).
    pub fn from_inbound(m: InboundMessage) -> Self {
        Self {
            topic: m.topic,
            partition: m.partition,
            offset: m.offset,
            key: m.key.to_vec(),
            value: m.payload,
            headers: m
                .headers
                .into_iter()
                .map(|(k, v)| {
                    let v = String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                    (k, v)
                })
                .collect(),
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

/// The DLQ message for `raw`.
pub fn dlq_message(dlq_topic: &str, connector: &str, raw: &RawMessage, why: &DlqReason) -> OutboundMessage {
    let mut msg = match &raw.value {
        Some(v) => OutboundMessage::new(dlq_topic, Bytes::from(raw.key.clone()), v.clone()),
        None => OutboundMessage::tombstone(dlq_topic, Bytes::from(raw.key.clone())),
    };
    for (k, v) in &raw.headers {
        if !k.starts_with("dastra_dlq_") {
            msg = msg.with_header(k.clone(), v.clone().into_bytes());
        }
    }
    let error = dastra_connect_core::dlq::truncate_error(&why.error);
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

    pub fn serialize<S: Serializer>(v: &Option<bytes::Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&STANDARD.encode(v)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bytes::Bytes>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(t) => STANDARD.decode(t).map(|v| Some(v.into())).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}
