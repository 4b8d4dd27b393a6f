//! Entity kinds and entity keys: the `<system>:<entity>:<external id>` names that key every change
//! event (message key, CloudEvents `subject`) and every reference between payloads.

use std::fmt;
use std::str::FromStr;

use super::EventError;

/// The nine kinds of entity a change event can carry.
///
/// The snake_case name (`as_str`) is used everywhere the kind appears as text, so one name per kind:
/// the entity segment of keys (`servicenow:asset:…`), the topic suffix (`dastra.changes.asset`), the
/// CloudEvents type (`io.dastra.connect.asset.upsert.v1`) and the Avro namespace
/// (`io.dastra.connect.asset.v1`). Short names are used where Dastra's are long
/// (`processing` for DataProcessing, `dsr` for DataSubjectRequest, `datafield` for DataField,
/// `dataset` for DataRetentionRule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// Dastra Asset (application, server, building…): `asset`.
    Asset,
    /// Dastra Actor (vendor, partner, customer, person): `actor`.
    Actor,
    /// Dastra Contract: `contract`.
    Contract,
    /// Dastra DataProcessing (record of processing): `processing`.
    #[serde(rename = "processing")]
    DataProcessing,
    /// Dastra DataField (data glossary entry): `datafield`.
    #[serde(rename = "datafield")]
    DataField,
    /// A link between two entities: `relationship`.
    Relationship,
    /// Dastra DataSubjectRequest (DSAR): `dsr`.
    #[serde(rename = "dsr")]
    DataSubjectRequest,
    /// Dastra Task: `task`.
    Task,
    /// Dastra dataset (`DataRetentionRule`: a group of DataFields): `dataset`.
    Dataset,
}

impl EntityKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EntityKind; 9] = [
        EntityKind::Asset,
        EntityKind::Actor,
        EntityKind::Contract,
        EntityKind::DataProcessing,
        EntityKind::DataField,
        EntityKind::Relationship,
        EntityKind::DataSubjectRequest,
        EntityKind::Task,
        EntityKind::Dataset,
    ];

    /// The kind's one text name (see the type's doc).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Asset => "asset",
            EntityKind::Actor => "actor",
            EntityKind::Contract => "contract",
            EntityKind::DataProcessing => "processing",
            EntityKind::DataField => "datafield",
            EntityKind::Relationship => "relationship",
            EntityKind::DataSubjectRequest => "dsr",
            EntityKind::Task => "task",
            EntityKind::Dataset => "dataset",
        }
    }

    /// Suffix of the change topic / NATS subject: `dastra.changes.<suffix>`.
    pub fn topic_suffix(self) -> &'static str {
        self.as_str()
    }

    /// The change topic with the default prefix, `dastra.changes.<suffix>`.
    pub fn default_topic(self) -> String {
        self.topic(DEFAULT_TOPIC_PREFIX)
    }

    /// The change topic under a configured prefix: `<prefix>.<suffix>` (a trailing `.` on the
    /// prefix is tolerated).
    pub fn topic(self, prefix: &str) -> String {
        format!("{}.{}", prefix.trim_end_matches('.'), self.topic_suffix())
    }

    /// The kind a change topic carries: the last `.`-separated segment of the topic name, so any
    /// prefix works (`acme.dastra.changes.asset` → Asset).
    pub fn from_topic(topic: &str) -> Option<EntityKind> {
        topic.rsplit('.').next().and_then(|s| s.parse().ok())
    }

    /// Dastra's `TaskObjectType` for a task linked to an entity of this kind, if Dastra has one.
    pub fn task_object_type(self) -> Option<&'static str> {
        match self {
            EntityKind::DataProcessing => Some("DataProcessing"),
            EntityKind::DataSubjectRequest => Some("DataSubject"),
            EntityKind::Actor => Some("Actor"),
            EntityKind::Asset => Some("Asset"),
            _ => None,
        }
    }

    /// Dastra's `RelationShipObjectType` for an end of a generic relationship, if Dastra has one
    /// (links between two processings use DataProcessingRelationships instead).
    pub fn relationship_object_type(self) -> Option<&'static str> {
        match self {
            EntityKind::Actor => Some("Actor"),
            EntityKind::Asset => Some("Asset"),
            _ => None,
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntityKind {
    type Err = EventError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| EventError::UnknownEntity(truncate(s)))
    }
}

/// Default prefix of change topics (`dastra.changes.<entity>`).
pub const DEFAULT_TOPIC_PREFIX: &str = "dastra.changes";

/// Longest accepted entity key, in bytes. Keys are Kafka message keys and ledger keys; a bound keeps
/// a broken source from filling either with megabyte keys.
pub const MAX_KEY_LEN: usize = 512;

/// An entity key `<system>:<entity>:<external id>`, e.g. `servicenow:asset:8f2c…`.
///
/// - `system`: 1–64 chars of `[a-z0-9_-]`, starting with a letter or digit (the source system or
///   connector family, e.g. `servicenow`, `hubspot`).
/// - `entity`: one of the [`EntityKind`] names.
/// - `external id`: the record's id in the source, 1 or more chars, any printable text including `:`
///   (the key splits at the first two colons only), no control characters.
///
/// The whole key is at most [`MAX_KEY_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey {
    text: String,
    kind: EntityKind,
    system_len: usize,
}

impl EntityKey {
    /// Parses and validates a key.
    pub fn parse(text: &str) -> Result<EntityKey, EventError> {
        if text.len() > MAX_KEY_LEN {
            return Err(EventError::InvalidKey { key: truncate(text), reason: "longer than 512 bytes" });
        }
        let invalid = |reason| EventError::InvalidKey { key: truncate(text), reason };
        let mut parts = text.splitn(3, ':');
        let (Some(system), Some(entity), Some(external)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("expected <system>:<entity>:<external id>"));
        };
        validate_system(system).map_err(invalid)?;
        let kind: EntityKind = entity.parse().map_err(|_| {
            invalid("unknown entity (asset, actor, contract, processing, datafield, relationship, dsr, task, dataset)")
        })?;
        if external.is_empty() {
            return Err(invalid("empty external id"));
        }
        if external.chars().any(char::is_control) {
            return Err(invalid("control character in external id"));
        }
        Ok(EntityKey { text: text.to_owned(), kind, system_len: system.len() })
    }

    /// Builds a key from its parts (validated like [`EntityKey::parse`]).
    pub fn new(system: &str, kind: EntityKind, external_id: &str) -> Result<EntityKey, EventError> {
        EntityKey::parse(&format!("{system}:{}:{external_id}", kind.as_str()))
    }

    /// A conventional key for the link between two entities, for sources that have no id of their
    /// own for it: `<system>:relationship:<origin key>-><target key>`. Re-publishing the same link
    /// gives the same key, so the sink updates rather than duplicates it.
    pub fn for_relationship(system: &str, origin: &EntityKey, target: &EntityKey) -> Result<EntityKey, EventError> {
        EntityKey::new(system, EntityKind::Relationship, &format!("{origin}->{target}"))
    }

    /// The whole key as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The source system segment.
    pub fn system(&self) -> &str {
        &self.text[..self.system_len]
    }

    /// The entity kind segment.
    pub fn kind(&self) -> EntityKind {
        self.kind
    }

    /// The external id segment (may contain `:`).
    pub fn external_id(&self) -> &str {
        // system ':' entity ':' external
        &self.text[self.system_len + 1 + self.kind.as_str().len() + 1..]
    }
}

fn validate_system(system: &str) -> Result<(), &'static str> {
    if system.is_empty() || system.len() > 64 {
        return Err("system must be 1-64 characters");
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if !system.chars().all(ok_char) {
        return Err("system may only contain a-z, 0-9, '_' and '-'");
    }
    if system.starts_with(['_', '-']) {
        return Err("system must start with a letter or digit");
    }
    Ok(())
}

/// Keeps error messages bounded when input is huge.
pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for EntityKey {
    type Err = EventError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntityKey::parse(s)
    }
}

impl AsRef<str> for EntityKey {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl serde::Serialize for EntityKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for EntityKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EntityKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_keys() {
        let k = EntityKey::parse("servicenow:asset:8f2c").unwrap();
        assert_eq!(k.system(), "servicenow");
        assert_eq!(k.kind(), EntityKind::Asset);
        assert_eq!(k.external_id(), "8f2c");
        let k = EntityKey::parse("debezium:processing:db1:public.t:42").unwrap();
        assert_eq!(k.kind(), EntityKind::DataProcessing);
        assert_eq!(k.external_id(), "db1:public.t:42");
        assert_eq!(EntityKey::new("hubspot", EntityKind::DataSubjectRequest, "9").unwrap().as_str(), "hubspot:dsr:9");
    }

    #[test]
    fn rejects_invalid_keys() {
        for bad in [
            "",
            "servicenow",
            "servicenow:asset",
            "servicenow:asset:",
            "ServiceNow:asset:1",
            "-sn:asset:1",
            "sn:assets:1",
            "sn:asset:a\nb",
            ":asset:1",
        ] {
            let err = EntityKey::parse(bad).unwrap_err();
            assert_eq!(crate::Classify::code(&err), "invalid_key", "{bad:?}");
        }
        let long = format!("sn:asset:{}", "x".repeat(600));
        assert!(EntityKey::parse(&long).is_err());
    }

    #[test]
    fn kinds_round_trip_through_names_and_topics() {
        for k in EntityKind::ALL {
            assert_eq!(k.as_str().parse::<EntityKind>().unwrap(), k);
            assert_eq!(EntityKind::from_topic(&k.default_topic()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::Value::String(k.as_str().into()));
        }
        assert_eq!(EntityKind::from_topic("prod.dastra.changes.dsr"), Some(EntityKind::DataSubjectRequest));
        assert_eq!(EntityKind::from_topic("dastra.events"), None);
        assert_eq!(EntityKind::Task.topic("acme.changes."), "acme.changes.task");
    }
}
