//! The sink ledger: entity key → { Dastra id, last applied source version, hash of the content last
//! sent (whole and per field), state }. Kept in a state store on the bus (compacted topic / KV
//! bucket), read whole by every replica and followed live, so any replica can take over any partition
//! and resolve references to entities written by another.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use dastra_connect_core::event::{EntityKey, cmp_sequence};
use dastra_connect_core::state::{StateError, StateStore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where an entity stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// A create was about to be sent: it may or may not exist in Dastra. Resolved by looking the
    /// entity up by its external key before any new POST.
    Intent,
    /// Exists in Dastra with `id`.
    Live,
    /// Deleted (or archived / ignored by policy) after a delete event.
    Deleted,
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// State.
    pub state: EntryState,
    /// Dastra id (int or uuid, as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Source version (`sequence`) of the last event whose effect is recorded here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Hash of the whole content last sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Hash per top-level field of the content last sent: only fields whose hash changed are PATCHed.
    #[serde(default, skip_serializing_if = "FieldHashes::is_empty")]
    pub fields: FieldHashes,
    /// Ids of dependent objects the sink created for this entity (e.g. a relationship's Dastra ids,
    /// keyed by a role name), so that they can be updated or removed later.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
    /// Fingerprint of the source event whose mapping was last sent (see
    /// `sink::apply::fingerprint`): a repeat with the same fingerprint is known unchanged without
    /// mapping it again. Absent on entries written before it existed, or while a create is half
    /// done: those take the full comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    /// On an `Intent`: the source version whose create is being attempted. That event stays durable
    /// (uncommitted on the bus, or in the pending store) until its effect is recorded, so anything
    /// older is stale even before the create is known to have happened: after a crash the next
    /// owner resolves the intent with the attempted version (or a newer one), never an older one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
}

impl LedgerEntry {
    /// A `Live` entry.
    pub fn live(id: impl Into<String>) -> Self {
        Self {
            state: EntryState::Live,
            id: Some(id.into()),
            version: None,
            hash: None,
            fields: FieldHashes::default(),
            links: BTreeMap::new(),
            src: None,
            attempt: None,
        }
    }

    /// An `Intent` entry (a POST is about to be sent).
    pub fn intent() -> Self {
        Self {
            state: EntryState::Intent,
            id: None,
            version: None,
            hash: None,
            fields: FieldHashes::default(),
            links: BTreeMap::new(),
            src: None,
            attempt: None,
        }
    }

    /// An `Intent` entry for the create of `attempt`, on top of `current` (whose applied version
    /// it keeps).
    pub fn intent_for(current: Option<&LedgerEntry>, attempt: &str) -> Self {
        let mut intent = Self::intent();
        intent.version = current.and_then(|e| e.version.clone());
        intent.attempt = Some(attempt.to_owned());
        intent
    }

    /// Whether an event with `sequence` is older than (or as old as) what this entry records, or
    /// older than the create an open intent attempts. See `sink::order` for the whole rule.
    pub fn is_stale(&self, sequence: &str) -> bool {
        self.version.as_deref().is_some_and(|v| cmp_sequence(sequence, v) != std::cmp::Ordering::Greater)
            || (self.state == EntryState::Intent
                && self.attempt.as_deref().is_some_and(|a| cmp_sequence(sequence, a).is_lt()))
    }

    /// The newest source version this entry stands for: the applied one, or the attempted one of
    /// an open intent.
    pub fn newest(&self) -> Option<&str> {
        let attempt = self.attempt.as_deref().filter(|_| self.state == EntryState::Intent);
        match (self.version.as_deref(), attempt) {
            (Some(v), Some(a)) => Some(if cmp_sequence(a, v).is_gt() { a } else { v }),
            (v, a) => v.or(a),
        }
    }

    /// The Dastra id when the entity is live.
    pub fn live_id(&self) -> Option<&str> {
        (self.state == EntryState::Live).then_some(self.id.as_deref()).flatten()
    }
}

/// The per-field hashes of an entry, kept as their JSON text and read only when a PATCH needs them:
/// most events that reach an entry are repeats, and parsing a map of a dozen strings per ledger read
/// was the largest cost of recognising one. Stored as a JSON object `{field: hash}`.
#[derive(Debug, Clone, Default)]
pub struct FieldHashes(Option<Box<serde_json::value::RawValue>>);

impl FieldHashes {
    /// From a map of field → hash.
    pub fn from_map(map: &BTreeMap<String, String>) -> Self {
        if map.is_empty() {
            return Self(None);
        }
        // A map of strings always serialises.
        Self(serde_json::value::to_raw_value(map).ok())
    }

    /// The map of field → hash (empty when none, or when the stored text is not such a map).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.as_ref().and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or_default()
    }

    /// True when no field hashes are recorded.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|raw| raw.get().trim() == "{}")
    }
}

impl PartialEq for FieldHashes {
    fn eq(&self, other: &Self) -> bool {
        self.to_map() == other.to_map()
    }
}

impl Serialize for FieldHashes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(raw) => raw.serialize(s),
            None => BTreeMap::<String, String>::new().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for FieldHashes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(Self((raw.get().trim() != "{}").then_some(raw)))
    }
}

/// A short, stable hash (hex of the first 8 bytes of SHA-256). Stable across builds and versions,
/// unlike `std`'s hasher, because ledgers outlive binaries.
pub fn stable_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// Hashes of a JSON object: whole, and per top-level field.
pub fn content_hashes(value: &serde_json::Value) -> (String, BTreeMap<String, String>) {
    let whole = stable_hash(value.to_string().as_bytes());
    let fields = match value {
        serde_json::Value::Object(map) => {
            map.iter().map(|(k, v)| (k.clone(), stable_hash(v.to_string().as_bytes()))).collect()
        }
        _ => BTreeMap::new(),
    };
    (whole, fields)
}

/// Typed access to the ledger's state store.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn StateStore>,
}

impl Ledger {
    /// Wraps a state store.
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    /// The entry of `key` (from the cache; no I/O). An unreadable entry counts as absent and is
    /// logged: the lookup-before-create rule keeps that safe.
    pub fn get(&self, key: &EntityKey) -> Option<LedgerEntry> {
        let raw = self.store.get(key.as_str())?;
        match serde_json::from_slice(&raw) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::error!(key = %key, error = %e, "unreadable ledger entry; treating the entity as unknown");
                None
            }
        }
    }

    /// The Dastra id of `key` if it is live.
    pub fn live_id(&self, key: &EntityKey) -> Option<String> {
        self.get(key).and_then(|e| e.live_id().map(str::to_owned))
    }

    /// Stores `entry` durably (returns after the broker's ack).
    pub async fn put(&self, key: &EntityKey, entry: &LedgerEntry) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(entry).unwrap_or_default();
        self.store.put(key.as_str(), Bytes::from(bytes)).await
    }

    /// An auxiliary entry not tied to a source entity (e.g. a Dastra area id found by its `ref`),
    /// stored under `aux:<name>`. Names start with a word that is no entity kind (`area:…`,
    /// `workflow:…`), so these keys can never be valid entity keys.
    pub fn get_aux(&self, name: &str) -> Option<LedgerEntry> {
        let raw = self.store.get(&format!("aux:{name}"))?;
        serde_json::from_slice(&raw).ok()
    }

    /// Stores an auxiliary entry (see [`Ledger::get_aux`]).
    pub async fn put_aux(&self, name: &str, entry: &LedgerEntry) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(entry).unwrap_or_default();
        self.store.put(&format!("aux:{name}"), Bytes::from(bytes)).await
    }

    /// The state store behind it.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_follows_sequence_order() {
        let mut e = LedgerEntry::live("1");
        assert!(!e.is_stale("5"));
        e.version = Some("00000000000000000005".into());
        assert!(e.is_stale("4"));
        assert!(e.is_stale("00000000000000000005"));
        assert!(!e.is_stale("6"));
    }

    #[test]
    fn an_intent_makes_older_versions_stale_but_not_its_own() {
        let mut applied = LedgerEntry::live("1");
        applied.version = Some("00000000000000000002".into());
        let intent = LedgerEntry::intent_for(Some(&applied), "00000000000000000004");
        assert!(intent.is_stale("00000000000000000002"), "applied");
        assert!(intent.is_stale("00000000000000000003"), "older than the attempted create");
        assert!(!intent.is_stale("00000000000000000004"), "the attempted event resolves its own intent");
        assert!(!intent.is_stale("00000000000000000005"));
        assert_eq!(intent.newest(), Some("00000000000000000004"));
        // Written by a build without `attempt`: only the applied version counts.
        let old: LedgerEntry = serde_json::from_str(r#"{"state":"intent","version":"00000000000000000002"}"#).unwrap();
        assert!(!old.is_stale("00000000000000000003"));
    }

    #[test]
    fn field_hashes_change_only_for_changed_fields() {
        let (h1, f1) = content_hashes(&serde_json::json!({"label": "a", "type": "Software"}));
        let (h2, f2) = content_hashes(&serde_json::json!({"label": "b", "type": "Software"}));
        assert_ne!(h1, h2);
        assert_eq!(f1["type"], f2["type"]);
        assert_ne!(f1["label"], f2["label"]);
        let round: LedgerEntry = serde_json::from_str(&serde_json::to_string(&LedgerEntry::intent()).unwrap()).unwrap();
        assert_eq!(round, LedgerEntry::intent());
    }

    #[test]
    fn entries_written_before_the_fingerprint_read_the_same() {
        // An entry as the previous release wrote it: `fields` a JSON map, no `src`.
        let old = r#"{"state":"live","id":"42","version":"00000000000000000007","hash":"ab","fields":{"label":"h1","type":"h2"},"links":{"label":"CRM"}}"#;
        let e: LedgerEntry = serde_json::from_str(old).unwrap();
        assert_eq!((e.state, e.id.as_deref(), e.src.as_deref()), (EntryState::Live, Some("42"), None));
        let fields = e.fields.to_map();
        assert_eq!((fields["label"].as_str(), fields["type"].as_str()), ("h1", "h2"));
        // Written back, it is the same JSON.
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&serde_json::to_string(&e).unwrap()).unwrap(),
            serde_json::from_str::<serde_json::Value>(old).unwrap()
        );
        let none: LedgerEntry = serde_json::from_str(r#"{"state":"intent"}"#).unwrap();
        assert!(none.fields.is_empty() && none.fields.to_map().is_empty());
    }
}
