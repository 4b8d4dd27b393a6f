//! Change events: the CloudEvents 1.0 envelope ([`ChangeEvent`]), entity keys ([`EntityKey`],
//! [`EntityKind`]), Dastra's enums ([`enums`]) and the nine typed payloads ([`Payload`]).
//!
//! On Kafka and NATS an event travels in CloudEvents **binary content mode**: attributes in headers
//! ([`ChangeEvent::ce_headers`]), the payload alone in the value ([`ChangeEvent::encode_value`],
//! any [`crate::codec::Codec`]), message key = entity key, topic `dastra.changes.<entity>`
//! ([`EntityKind::topic_suffix`]). [`ChangeEvent::from_parts`] reads one back.

mod binding;
pub mod enums;
mod key;
mod payload;
#[cfg(any(test, feature = "testkit"))]
pub mod samples;
mod sequence;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

pub use binding::headers;
pub use key::{DEFAULT_TOPIC_PREFIX, EntityKey, EntityKind, MAX_KEY_LEN};
pub(crate) use payload::with_inner;
pub use payload::{
    Actor, Asset, Attachment, Contract, CustomFields, DataField, DataProcessing, DataSubjectRequest, Dataset,
    ObjectRef, Payload, PersonCategory, ProcessingActor, Purpose, Relationship, Task,
};
pub use sequence::{
    MAX_SEQUENCE_LEN, cmp_sequence, is_newer, sequence_from_time, sequence_from_u64, validate_sequence,
};

use crate::error::{Classify, ErrorClass};

/// What is wrong with an event, a key or a payload. Always permanent: the same input gives the
/// same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// An entity key does not follow `<system>:<entity>:<external id>`.
    #[error("invalid entity key {key:?}: {reason}")]
    InvalidKey {
        /// The key (truncated).
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An entity name is not one of the nine kinds.
    #[error(
        "unknown entity {0:?} (expected asset, actor, contract, processing, datafield, relationship, dsr, task or dataset)"
    )]
    UnknownEntity(String),
    /// A value is not one of a Dastra enum's symbols.
    #[error("{value:?} is not a valid Dastra {enum_name}")]
    InvalidEnum {
        /// The enum.
        enum_name: &'static str,
        /// The value (truncated).
        value: String,
    },
    /// A CloudEvents attribute is missing or malformed.
    #[error("invalid change event: {0}")]
    InvalidEvent(String),
    /// A payload lacks what Dastra needs or references the wrong kind of entity.
    #[error("invalid payload field {field}: {reason}")]
    InvalidPayload {
        /// The field (Dastra name).
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

impl Classify for EventError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Permanent
    }
    fn code(&self) -> &'static str {
        match self {
            EventError::InvalidKey { .. } => "invalid_key",
            EventError::UnknownEntity(_) => "unknown_entity",
            EventError::InvalidEnum { .. } => "invalid_enum",
            EventError::InvalidEvent(_) => "invalid_event",
            EventError::InvalidPayload { .. } => "invalid_payload",
        }
    }
}

/// The operation an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Create or update: the payload carries the entity's current content.
    Upsert,
    /// The entity is gone at the source (the payload's `deleted` flag is set).
    Delete,
}

impl Op {
    /// `upsert` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        }
    }
}

/// Prefix of every event type.
pub const TYPE_PREFIX: &str = "io.dastra.connect.";
/// The CloudEvents version written and accepted.
pub const SPEC_VERSION: &str = "1.0";

/// `io.dastra.connect.<entity>.<op>.v1`.
pub fn event_type(kind: EntityKind, op: Op) -> String {
    format!("{TYPE_PREFIX}{}.{}.v1", kind.as_str(), op.as_str())
}

/// Reads an event type back into its kind and op.
pub fn parse_event_type(t: &str) -> Result<(EntityKind, Op), EventError> {
    let bad = || EventError::InvalidEvent(format!("unknown event type {:?}", key::truncate(t)));
    let rest = t.strip_prefix(TYPE_PREFIX).ok_or_else(bad)?;
    let mut parts = rest.split('.');
    let (Some(entity), Some(op), Some("v1"), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let kind = entity.parse().map_err(|_| bad())?;
    let op = match op {
        "upsert" => Op::Upsert,
        "delete" => Op::Delete,
        _ => return Err(bad()),
    };
    Ok((kind, op))
}

/// The UUIDv5 namespace of event ids (itself the v5 id of the project URL in the URL namespace).
fn id_namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"https://dastra.eu/dastra-connect/change-event")
}

/// The deterministic event id: UUIDv5 over `source`, entity key, sequence and op (NUL-separated,
/// none of them can contain NUL). Re-polling the same state yields the same id, so duplicates are
/// recognisable; the op is included so that an upsert and a delete at one version differ.
pub fn event_id(source: &str, key: &EntityKey, sequence: &str, op: Op) -> String {
    let name = format!("{source}\0{key}\0{sequence}\0{}", op.as_str());
    Uuid::new_v5(&id_namespace(), name.as_bytes()).to_string()
}

/// A change event: CloudEvents 1.0 attributes plus a typed payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// `id`: deterministic, see [`event_id`].
    pub id: String,
    /// `source`: the connector instance, e.g. `/connectors/servicenow-prod`.
    pub source: String,
    /// `subject` and message key.
    pub key: EntityKey,
    /// Upsert or delete (mirrors the payload's `deleted` flag).
    pub op: Op,
    /// `sequence`: the sortable source version (see [`cmp_sequence`]).
    pub sequence: String,
    /// `time`: when the change happened at the source (microsecond precision).
    pub time: DateTime<Utc>,
    /// `recordedtime`: when the event was published (microsecond precision).
    pub recorded_time: DateTime<Utc>,
    /// W3C `traceparent` of the source's trace, if any.
    pub traceparent: Option<String>,
    /// `data`: the payload.
    pub data: Payload,
}

impl ChangeEvent {
    /// Builds a validated event: the op comes from the payload's `deleted` flag, the id is
    /// computed, `recordedtime` is now. Fails when the key's kind differs from the payload's, the
    /// source or sequence is malformed, or the payload misses what an upsert needs.
    pub fn new(
        source: impl Into<String>,
        key: EntityKey,
        sequence: impl Into<String>,
        time: DateTime<Utc>,
        data: Payload,
    ) -> Result<ChangeEvent, EventError> {
        let source = source.into();
        let sequence = sequence.into();
        let op = if data.is_deleted() { Op::Delete } else { Op::Upsert };
        let event = ChangeEvent {
            id: event_id(&source, &key, &sequence, op),
            source,
            key,
            op,
            sequence,
            time: time.trunc_subsecs(6),
            recorded_time: Utc::now().trunc_subsecs(6),
            traceparent: None,
            data,
        };
        event.validate()?;
        Ok(event)
    }

    /// Sets the `traceparent` (builder style).
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> ChangeEvent {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Sets `recordedtime` (builder style; tests and replays).
    pub fn with_recorded_time(mut self, recorded_time: DateTime<Utc>) -> ChangeEvent {
        self.recorded_time = recorded_time.trunc_subsecs(6);
        self
    }

    /// The entity kind.
    pub fn kind(&self) -> EntityKind {
        self.key.kind()
    }

    /// `io.dastra.connect.<entity>.<op>.v1`.
    pub fn event_type(&self) -> String {
        event_type(self.kind(), self.op)
    }

    /// Checks the invariants [`ChangeEvent::new`] establishes (also run on decoded events).
    pub fn validate(&self) -> Result<(), EventError> {
        if self.key.kind() != self.data.kind() {
            return Err(EventError::InvalidEvent(format!(
                "subject {} is a {} but the data is a {}",
                self.key,
                self.key.kind(),
                self.data.kind()
            )));
        }
        if (self.op == Op::Delete) != self.data.is_deleted() {
            return Err(EventError::InvalidEvent(format!(
                "type says {} but the payload's deleted flag is {}",
                self.op.as_str(),
                self.data.is_deleted()
            )));
        }
        if self.id.is_empty() || self.id.len() > 256 {
            return Err(EventError::InvalidEvent("id must be 1-256 characters".into()));
        }
        if self.source.is_empty()
            || self.source.len() > 512
            || self.source.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(EventError::InvalidEvent("source must be a non-empty URI reference without spaces".into()));
        }
        validate_sequence(&self.sequence).map_err(|r| EventError::InvalidEvent(r.into()))?;
        if let Some(tp) = &self.traceparent
            && !is_traceparent(tp)
        {
            return Err(EventError::InvalidEvent("malformed traceparent".into()));
        }
        self.data.validate()
    }
}

/// W3C trace-context `traceparent`: `vv-<32 hex>-<16 hex>-<2 hex>`.
fn is_traceparent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() >= 4 && hex(parts[0], 2) && hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset() -> Payload {
        Payload::Asset(Asset {
            label: Some("CRM".into()),
            asset_type: Some(enums::AssetType::Software),
            ..Default::default()
        })
    }

    #[test]
    fn id_is_deterministic_and_type_is_formatted() {
        let key = EntityKey::parse("servicenow:asset:8f2c").unwrap();
        let t = Utc::now();
        let a = ChangeEvent::new("/connectors/sn", key.clone(), "00000000000000000003", t, asset()).unwrap();
        let b = ChangeEvent::new("/connectors/sn", key.clone(), "00000000000000000003", t, asset()).unwrap();
        assert_eq!(a.id, b.id);
        let c = ChangeEvent::new("/connectors/sn", key.clone(), "00000000000000000004", t, asset()).unwrap();
        assert_ne!(a.id, c.id);
        let d = ChangeEvent::new("/connectors/sn2", key.clone(), "00000000000000000003", t, asset()).unwrap();
        assert_ne!(a.id, d.id);
        assert_eq!(a.event_type(), "io.dastra.connect.asset.upsert.v1");
        let del = ChangeEvent::new(
            "/connectors/sn",
            key,
            "00000000000000000003",
            t,
            Payload::tombstone(EntityKind::Asset, true),
        )
        .unwrap();
        assert_eq!(del.op, Op::Delete);
        assert_ne!(del.id, a.id);
        assert_eq!(del.event_type(), "io.dastra.connect.asset.delete.v1");
        for k in EntityKind::ALL {
            for op in [Op::Upsert, Op::Delete] {
                assert_eq!(parse_event_type(&event_type(k, op)).unwrap(), (k, op));
            }
        }
        assert!(parse_event_type("io.dastra.connect.asset.upsert.v2").is_err());
        assert!(parse_event_type("io.dastra.connect.asset.merge.v1").is_err());
    }

    #[test]
    fn rejects_inconsistent_events() {
        let key = EntityKey::parse("servicenow:actor:1").unwrap();
        let err = ChangeEvent::new("/c", key, "1", Utc::now(), asset()).unwrap_err();
        assert_eq!(err.code(), "invalid_event");
        let key = EntityKey::parse("servicenow:asset:1").unwrap();
        assert!(ChangeEvent::new("", key.clone(), "1", Utc::now(), asset()).is_err());
        assert!(ChangeEvent::new("/c", key.clone(), "", Utc::now(), asset()).is_err());
        let ev = ChangeEvent::new("/c", key, "1", Utc::now(), asset()).unwrap();
        assert!(
            ev.clone().with_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").validate().is_ok()
        );
        assert!(ev.with_traceparent("nope").validate().is_err());
    }
}
