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

pub use super::config::LedgerEncoding;

mod batch;
mod codec;

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

/// The per-field hashes of an entry, kept in their compact encoding (see `codec`) and read only
/// when a PATCH needs them: most events that reach an entry are repeats, and building a map of a
/// dozen strings per ledger read was the largest cost of recognising one. Read from and written to
/// JSON (entries of earlier builds, debugging) as an object `{field: hash}`.
#[derive(Debug, Clone, Default)]
pub struct FieldHashes(Option<Box<[u8]>>);

impl FieldHashes {
    /// From a map of field → hash.
    pub fn from_map(map: &BTreeMap<String, String>) -> Self {
        if map.is_empty() {
            return Self(None);
        }
        let mut out = Vec::with_capacity(map.len() * 9 + 1);
        codec::encode_pairs(&mut out, map.len(), map.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Self(Some(out.into_boxed_slice()))
    }

    fn from_encoded(section: &[u8]) -> Self {
        Self((section != [0u8]).then(|| section.into()))
    }

    fn encoded(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }

    /// The map of field → hash (empty when none).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.as_deref().and_then(|s| codec::Reader::new(s).pairs().ok()).unwrap_or_default()
    }

    /// True when no field hashes are recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl PartialEq for FieldHashes {
    fn eq(&self, other: &Self) -> bool {
        self.to_map() == other.to_map()
    }
}

impl Serialize for FieldHashes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

impl<'de> Deserialize<'de> for FieldHashes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_map(&BTreeMap::<String, String>::deserialize(d)?))
    }
}

/// A short, stable hash (hex of the first 8 bytes of SHA-256). Stable across builds and versions,
/// unlike `std`'s hasher, because ledgers outlive binaries.
pub fn stable_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// Bytes of a per-field hash (48 bits). A field hash only ever decides "did this field of this
/// entity change since it was last sent", and only after the whole-content hash (64 bits) said
/// the entity changed: a wrong "unchanged" needs the new value of one field to collide with its
/// previous value, 2⁻⁴⁸ ≈ 3.6·10⁻¹⁵ per comparison (10⁹ changed fields ≈ 4·10⁻⁶ expected misses).
/// Entries of earlier builds hold 8-byte field hashes: they never equal a 6-byte one, so an entity's
/// first PATCH after the upgrade rewrites all its fields (same request count, larger body).
pub const FIELD_HASH_BYTES: usize = 6;

/// Hashes of a JSON object: whole (8 bytes, hex), and per top-level field
/// ([`FIELD_HASH_BYTES`], hex).
pub fn content_hashes(value: &serde_json::Value) -> (String, BTreeMap<String, String>) {
    let whole = stable_hash(value.to_string().as_bytes());
    let fields = match value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), hex::encode(&Sha256::digest(v.to_string().as_bytes())[..FIELD_HASH_BYTES])))
            .collect(),
        _ => BTreeMap::new(),
    };
    (whole, fields)
}

/// The bytes the ledger stores for `entry`: the compact binary encoding (format 1, see `codec`;
/// 60–110 bytes for a typical entity where the JSON of earlier builds took 250–330).
pub fn encode_entry(entry: &LedgerEntry) -> Vec<u8> {
    codec::encode(entry)
}

/// Reads a stored entry in either encoding: format 1 (first byte `0xD1`), or the JSON object
/// earlier builds wrote (first byte `{`), which stays readable for as long as such entries exist.
pub fn decode_entry(bytes: &[u8]) -> Result<LedgerEntry, String> {
    if bytes.first() == Some(&codec::MAGIC) {
        codec::decode(bytes).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(bytes).map_err(|e| format!("JSON ledger entry: {e}"))
    }
}

/// The ledger's batch writes have been failing (see [`Ledger::write_failure`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteFailure {
    /// For how long, without a success in between.
    #[serde(rename = "failing_for_s", serialize_with = "as_secs")]
    pub failing_for: std::time::Duration,
    /// When the first of them failed.
    pub since: chrono::DateTime<chrono::Utc>,
    /// Failed attempts since then.
    pub attempts: u64,
    /// The last error (the store's, never a secret).
    pub error: String,
}

fn as_secs<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 10.0).round() / 10.0)
}

/// Typed access to the ledger's state store.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn StateStore>,
    encoding: LedgerEncoding,
    /// Staged writes (see [`Ledger::with_batching`]); `None`: every write is awaited on its own.
    batch: Option<Arc<batch::WriteBatch>>,
}

impl Ledger {
    /// Wraps a state store; entries are written in the compact encoding.
    pub fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store, encoding: LedgerEncoding::Compact, batch: None }
    }

    /// Entries staged with [`Ledger::stage`] are written together, `max_entries` at a time or once
    /// the oldest has waited `max_delay`, by the task [`Ledger::flusher`] returns. `max_entries`
    /// 0 leaves batching off.
    pub fn with_batching(mut self, max_entries: usize, max_delay: std::time::Duration) -> Self {
        self.batch = (max_entries > 0).then(|| Arc::new(batch::WriteBatch::new(max_entries, max_delay)));
        self
    }

    /// Whether writes can be staged.
    pub fn batching(&self) -> bool {
        self.batch.is_some()
    }

    /// The task that writes the staged entries (it runs until aborted or [`Ledger::abandon`]),
    /// when batching is on. Every failed batch write calls `on_failure` (the driver counts them).
    pub fn flusher(
        &self,
        on_failure: impl Fn() + Send + 'static,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        self.batch.clone().map(|b| b.run(self.store.clone(), on_failure))
    }

    /// Gives up the entries staged and not yet durable: no batch write starts any more (the
    /// flusher ends), the one under way is waited for, and the staged entries are dropped (a later
    /// [`Ledger::stage`] drops its entry at once). Their events' offsets are never released, so
    /// they are applied again by the next owner, as after a crash. Returns how many were dropped
    /// (0 when batching is off). For a sink giving partitions up while the writes fail: written
    /// later, a staged entry could land after the new owner's newer entry of the same key.
    pub async fn abandon(&self) -> usize {
        match &self.batch {
            Some(b) => b.abandon().await,
            None => 0,
        }
    }

    /// Batch writes failing without a success since: for how long, since when, how many
    /// attempts, and the last error. `None` while they succeed (or batching is off).
    pub fn write_failure(&self) -> Option<WriteFailure> {
        let f = self.batch.as_ref()?.failing()?;
        Some(WriteFailure { failing_for: f.since.elapsed(), since: f.since_utc, attempts: f.attempts, error: f.error })
    }

    /// Stages `entry` for `key` (readable at once, written with the next batch); returns the
    /// generation of the batch it is written in (see [`Ledger::flushed`]), or `None` when batching
    /// is off (nothing staged: write it with [`Ledger::put`]).
    pub fn stage(&self, key: &EntityKey, entry: &LedgerEntry) -> Option<u64> {
        let batch = self.batch.as_ref()?;
        Some(batch.stage(key.as_str(), self.encode(entry)))
    }

    /// Follows the newest durable batch generation (`None` when batching is off).
    pub fn flushed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.batch.as_ref().map(|b| b.flushed())
    }

    /// Writes every staged entry now; returns the newest durable generation (0 when batching is
    /// off). Waits for as long as the writes keep failing.
    pub async fn flush(&self) -> u64 {
        match &self.batch {
            Some(b) => b.flush_all().await,
            None => 0,
        }
    }

    /// Writes entries in `encoding` (both are always read).
    pub fn with_encoding(mut self, encoding: LedgerEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    fn encode(&self, entry: &LedgerEntry) -> Bytes {
        match self.encoding {
            LedgerEncoding::Compact => Bytes::from(encode_entry(entry)),
            // A struct of strings and maps of strings always serialises.
            LedgerEncoding::Json => Bytes::from(serde_json::to_vec(entry).unwrap_or_default()),
        }
    }

    /// The entry of `key` (from the cache; no I/O). An unreadable entry counts as absent and is
    /// logged: the lookup-before-create rule keeps that safe.
    pub fn get(&self, key: &EntityKey) -> Option<LedgerEntry> {
        let staged = self.batch.as_ref().and_then(|b| b.get(key.as_str()));
        let raw = staged.or_else(|| self.store.get(key.as_str()))?;
        match decode_entry(&raw) {
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

    /// Stores `entry` durably (returns after the broker's ack). A staged entry of the key is
    /// written first, so that it cannot land after this newer one.
    pub async fn put(&self, key: &EntityKey, entry: &LedgerEntry) -> Result<(), StateError> {
        if let Some(b) = &self.batch {
            b.wait_unstaged(key.as_str()).await;
        }
        self.store.put(key.as_str(), self.encode(entry)).await
    }

    /// An auxiliary entry not tied to a source entity (e.g. a Dastra area id found by its `ref`),
    /// stored under `aux:<name>`. Names start with a word that is no entity kind (`area:…`,
    /// `workflow:…`), so these keys can never be valid entity keys.
    pub fn get_aux(&self, name: &str) -> Option<LedgerEntry> {
        let raw = self.store.get(&format!("aux:{name}"))?;
        decode_entry(&raw).ok()
    }

    /// Stores an auxiliary entry (see [`Ledger::get_aux`]).
    pub async fn put_aux(&self, name: &str, entry: &LedgerEntry) -> Result<(), StateError> {
        self.store.put(&format!("aux:{name}"), self.encode(entry)).await
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

    /// Entries exactly as the JSON builds (up to this change) wrote them, one per kind of entry the
    /// sink records: they must still read, and read the same as after a trip through format 1.
    const JSON_OF_EARLIER_BUILDS: &[&str] = &[
        // A live Asset (ledger_memory bench's entry 0: id, 20-digit version, 6 field hashes, links).
        r#"{"state":"live","id":"100000","version":"00000001700000000000","hash":"5d1f0c4f2b0e9a7c","fields":{"description":"0b9e3c1f2a4d5e6f","label":"9f86d081884c7d65","ref":"2c26b46b68ffc68f","tags":"fcde2b2edba56bf4","type":"e3b0c44298fc1c14","url":"a665a45920422f9d"},"links":{"label":"App 0","type":"Software"},"src":"6b86b273ff34fce1"}"#,
        // An intent with the attempted version and the fields its POST writes.
        r#"{"state":"intent","version":"00000001700000000002","fields":{"label":"9f86d081884c7d65","ref":"2c26b46b68ffc68f"},"attempt":"00000001700000000004"}"#,
        // A live relationship (uuid id, links with route, ends and object types).
        r#"{"state":"live","id":"8f2c9a4e-1b7d-4c3e-9a5f-0d1e2f3a4b5c","version":"00000000000000000003","hash":"d4735e3a265e16ee","fields":{"from":"4e07408562bedb8b","fromType":"ef2d127de37b942b","reverse":"e7f6c011776e8db7","route":"7902699be42c8a8e","to":"2c624232cdd221771","toType":"19581e27de7ced00"},"links":{"from":"12","fromType":"Asset","route":"generic","to":"7","toType":"Actor"}}"#,
        // A tombstone of an archived entity, and an auxiliary entry (area id found by its ref).
        r#"{"state":"deleted","id":"77","version":"2024-05-01T10:00:00Z","links":{"removed":"archived"}}"#,
        r#"{"state":"live","id":"3"}"#,
        // A DSR with its workflow state and an attachment (links not in the name list).
        r#"{"state":"live","id":"5","version":"0/16B3748","hash":"ab","fields":{"label":"h1"},"links":{"file:report.pdf":"c0ffee00-0000-4000-8000-000000000001","sha:report.pdf":"e3b0c44298fc1c149afbf4c8996fb924","state":"Accepted"},"src":"0123456789abcdef"}"#,
    ];

    #[test]
    fn json_entries_of_earlier_builds_read_the_same_through_the_compact_encoding() {
        for old in JSON_OF_EARLIER_BUILDS {
            let from_json = decode_entry(old.as_bytes()).unwrap_or_else(|e| panic!("{old}: {e}"));
            let expected: serde_json::Value = serde_json::from_str(old).unwrap();
            // Nothing lost in reading it: written back as JSON it is the same object, byte for
            // byte (the serializer of earlier builds wrote the members in this order).
            assert_eq!(serde_json::to_value(&from_json).unwrap(), expected, "{old}");
            assert_eq!(&serde_json::to_string(&from_json).unwrap(), old);
            let bytes = encode_entry(&from_json);
            assert_eq!(bytes[0], 0xD1);
            let back = decode_entry(&bytes).unwrap();
            assert_eq!(back, from_json, "{old}");
            assert_eq!(back.fields.to_map(), from_json.fields.to_map());
            assert!(bytes.len() * 2 < old.len(), "{} B for {} B of JSON: {old}", bytes.len(), old.len());
        }
    }

    #[test]
    fn the_name_list_fits_one_byte_and_has_no_duplicates() {
        let names = codec::NAMES;
        assert!(names.len() < 255, "0xFF marks an inline name");
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        // Frozen: the indexes written so far keep their names.
        assert_eq!((names[0], names[0x5e], names[0xb0], names[192]), ("accessLevel", "label", "type", names[192]));
    }

    #[test]
    fn the_compact_encoding_is_frozen() {
        // Format 1 must read the same forever: these bytes are what this build writes.
        let mut e = LedgerEntry::live("42");
        e.version = Some("00000000000000000007".into());
        e.hash = Some("0123456789abcdef".into());
        e.fields = FieldHashes::from_map(&BTreeMap::from([
            ("label".to_owned(), "a1b2c3d4e5f6".to_owned()),
            ("x-custom".to_owned(), String::new()),
        ]));
        e.links.insert("type".into(), "Software".into());
        let golden = "d1\
                      01\
                      022a\
                      031407\
                      280123456789abcdef\
                      00\
                      00\
                      02\
                      5e26a1b2c3d4e5f6\
                      ff08782d637573746f6d20\
                      01\
                      b00108536f667477617265";
        let golden: String = golden.split_whitespace().collect();
        let bytes = encode_entry(&e);
        assert_eq!(hex::encode(&bytes), golden);
        assert_eq!(decode_entry(&hex::decode(&golden).unwrap()).unwrap(), e);
    }

    #[test]
    fn the_configured_encoding_is_written_and_both_are_read() {
        let store: Arc<dyn StateStore> = Arc::new(dastra_connect_core::state::MemoryStore::new("ledger"));
        let key = EntityKey::parse("cmdb:asset:a1").unwrap();
        let mut e = LedgerEntry::live("42");
        e.version = Some("00000000000000000007".into());
        let json = Ledger::new(store.clone()).with_encoding(LedgerEncoding::Json);
        futures::executor::block_on(json.put(&key, &e)).unwrap();
        assert_eq!(store.get(key.as_str()).unwrap()[0], b'{', "JSON, as earlier builds read it");
        let compact = Ledger::new(store.clone());
        assert_eq!(compact.get(&key), Some(e.clone()));
        futures::executor::block_on(compact.put(&key, &e)).unwrap();
        assert_eq!(store.get(key.as_str()).unwrap()[0], 0xD1);
        assert_eq!(json.get(&key), Some(e));
    }

    #[test]
    fn damaged_compact_entries_are_errors_not_panics() {
        let mut e = LedgerEntry::live("8f2c9a4e-1b7d-4c3e-9a5f-0d1e2f3a4b5c");
        e.version = Some("00000001700000000000".into());
        e.links.insert("from".into(), "12".into());
        let bytes = encode_entry(&e);
        for cut in 1..bytes.len() {
            assert!(decode_entry(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_entry(&extra).is_err());
    }

    mod prop {
        use proptest::prelude::*;

        use super::super::*;

        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<u64>().prop_map(|v| v.to_string()),
                (any::<u64>(), 1usize..30).prop_map(|(v, w)| format!("{v:0w$}")),
                any::<u128>().prop_map(|v| uuid::Uuid::from_u128(v).to_string()),
                any::<u128>().prop_map(|v| uuid::Uuid::from_u128(v).to_string().to_uppercase()),
                proptest::collection::vec(any::<u8>(), 0..40).prop_map(hex::encode),
                "[0-9a-fA-F]{0,70}",
                "[0-9]{0,25}",
                "\\PC{0,30}",
            ]
        }

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![(0..codec::NAMES.len()).prop_map(|i| codec::NAMES[i].to_owned()), "\\PC{0,20}",]
        }

        fn entry() -> impl Strategy<Value = LedgerEntry> {
            let opt = || proptest::option::of(text());
            (
                prop_oneof![Just(EntryState::Intent), Just(EntryState::Live), Just(EntryState::Deleted)],
                (opt(), opt(), opt(), opt(), opt()),
                proptest::collection::btree_map(name(), text(), 0..12),
                proptest::collection::btree_map(name(), text(), 0..6),
            )
                .prop_map(|(state, (id, version, hash, src, attempt), fields, links)| LedgerEntry {
                    state,
                    id,
                    version,
                    hash,
                    fields: FieldHashes::from_map(&fields),
                    links,
                    src,
                    attempt,
                })
        }

        proptest! {
            #[test]
            fn any_entry_round_trips_and_its_json_reads_the_same(e in entry()) {
                let bytes = encode_entry(&e);
                let back = decode_entry(&bytes).unwrap();
                prop_assert_eq!(&back, &e);
                // Exact text, so `cmp_sequence` and id comparisons see what was written.
                prop_assert_eq!(&back.version, &e.version);
                prop_assert_eq!(back.fields.to_map(), e.fields.to_map());
                // The JSON an earlier build would have written for it reads as the same entry.
                let json = serde_json::to_vec(&e).unwrap();
                prop_assert_eq!(&decode_entry(&json).unwrap(), &e);
                prop_assert_eq!(encode_entry(&decode_entry(&json).unwrap()), bytes);
            }
        }
    }
}
