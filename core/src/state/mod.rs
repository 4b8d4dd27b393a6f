//! State on the bus: a key-value store for source checkpoints and the sink ledger, kept in a
//! compacted Kafka topic ([`KafkaStateStore`]) or a NATS KV bucket ([`NatsKvStore`]), with a local
//! cache restored on start.
//!
//! - Reads come from the cache (no I/O). The cache is loaded whole on open and then follows the
//!   topic/bucket, so writes made by other replicas appear too.
//! - `put`/`delete` return once the broker has acknowledged the write (durable), and the cache then
//!   holds the new value at once (read-your-writes).
//! - Last write wins per key: every value carries its position (Kafka offset within the key's
//!   partition, KV revision); the cache never replaces a value by an older one.
//! - `delete` writes a tombstone (Kafka null value, KV delete marker).
//!
//! Use one namespace (topic / bucket) per purpose, e.g. `dastra-connect.ledger.<connector>` and
//! `dastra-connect.checkpoints.<connector>`.

mod kafka;
mod nats;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::RwLock;

pub use kafka::KafkaStateStore;
pub use nats::{NatsKvStore, bucket_name, decode_key, encode_key};

use crate::bus::{BusConfig, BusError};
use crate::{Classify, ErrorClass};

/// What the state store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The bus failed (connect, produce, consume, KV request).
    #[error("state store `{namespace}`: {source}")]
    Bus {
        /// Topic or bucket.
        namespace: String,
        /// The bus error.
        #[source]
        source: BusError,
    },
    /// The key cannot be stored (empty).
    #[error("invalid state key: {0}")]
    InvalidKey(String),
    /// A record in the topic/bucket cannot be read back as a state entry.
    #[error("state store `{namespace}` holds a record it cannot read: {reason}")]
    Corrupt {
        /// Topic or bucket.
        namespace: String,
        /// Why.
        reason: String,
    },
}

impl StateError {
    pub(crate) fn bus(namespace: &str, source: BusError) -> Self {
        Self::Bus { namespace: namespace.to_owned(), source }
    }
}

impl Classify for StateError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Bus { source, .. } => source.class(),
            Self::InvalidKey(_) => ErrorClass::Permanent,
            Self::Corrupt { .. } => ErrorClass::Fatal,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Self::Bus { source, .. } => source.code(),
            Self::InvalidKey(_) => "state_invalid_key",
            Self::Corrupt { .. } => "state_corrupt",
        }
    }
}

/// A durable key-value store on the bus with a local cache.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// The value of `key` in the cache (no I/O).
    fn get(&self, key: &str) -> Option<Bytes>;
    /// Stores `value` under `key`; returns once the broker acknowledged it.
    async fn put(&self, key: &str, value: Bytes) -> Result<(), StateError>;
    /// Deletes `key` with a tombstone; returns once the broker acknowledged it.
    async fn delete(&self, key: &str) -> Result<(), StateError>;
    /// Writes many entries pipelined (`None` deletes the key) and returns once every write is
    /// acknowledged; within the batch a later entry for the same key wins. On error some entries
    /// may be stored: retry the batch.
    async fn put_batch(&self, entries: Vec<(String, Option<Bytes>)>) -> Result<(), StateError>;
    /// A copy of every live entry, sorted by key.
    fn snapshot(&self) -> BTreeMap<String, Bytes>;
    /// How many live keys the cache holds.
    fn len(&self) -> usize;
    /// True when no live key is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The topic or bucket name.
    fn namespace(&self) -> &str;
    /// Waits until the cache holds every write the store had when this was called, by whichever
    /// process made it (a barrier: a replica taking over partitions reads what their previous
    /// owner wrote before acting on them).
    async fn sync(&self) -> Result<(), StateError> {
        Ok(())
    }
}

/// Opens the store `namespace` on the configured bus (topic on Kafka; bucket on NATS, see
/// [`bucket_name`]), creating it if missing and loading it whole into the cache.
pub async fn open(bus: &BusConfig, namespace: &str) -> Result<Arc<dyn StateStore>, StateError> {
    bus.validate().map_err(|e| StateError::bus(namespace, e))?;
    Ok(match bus {
        BusConfig::Kafka(k) => Arc::new(KafkaStateStore::open(k, namespace).await?),
        BusConfig::Nats(n) => Arc::new(NatsKvStore::open(n, namespace).await?),
    })
}

/// One cached key in a single exact-size allocation: `[key length (LEB128)][key][position (i64
/// LE)][1 = value, 0 = deleted][value]`. A ledger of millions of entities lives here: the key, the
/// value and the position in their own heap blocks behind a `String` and a `Bytes` (and the NATS
/// message buffer a received value keeps alive) cost more than the entry itself; one block and a
/// 16-byte table slot is what is left.
#[derive(Debug)]
struct Slot(Box<[u8]>);

impl Slot {
    fn new(key: &str, position: i64, value: Option<&[u8]>) -> Self {
        let mut out = Vec::with_capacity(key.len() + value.map_or(0, <[u8]>::len) + 12);
        let mut len = key.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&position.to_le_bytes());
        match value {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
        Self(out.into_boxed_slice())
    }

    /// Where the key starts and ends.
    fn key_range(&self) -> (usize, usize) {
        let (mut len, mut shift, mut at) = (0usize, 0u32, 0usize);
        while let Some(b) = self.0.get(at) {
            len |= usize::from(b & 0x7F) << shift;
            at += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        (at, at + len)
    }

    fn key(&self) -> &[u8] {
        let (start, end) = self.key_range();
        &self.0[start..end]
    }

    fn position(&self) -> i64 {
        let (_, end) = self.key_range();
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&self.0[end..end + 8]);
        i64::from_le_bytes(raw)
    }

    fn value(&self) -> Option<&[u8]> {
        let (_, end) = self.key_range();
        (self.0[end + 8] == 1).then(|| &self.0[end + 9..])
    }
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Slot {}

impl std::hash::Hash for Slot {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl std::borrow::Borrow<[u8]> for Slot {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

/// The local cache shared by both implementations: last write (highest position) wins per key.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    slots: RwLock<HashSet<Slot>>,
    /// The highest position applied (NATS: the stream sequence of the newest write seen).
    high: std::sync::atomic::AtomicI64,
}

impl Cache {
    /// Applies a write seen at `position`; ignored when the cache already holds a newer one.
    pub(crate) fn apply(&self, key: &str, position: i64, value: Option<Bytes>) {
        self.high.fetch_max(position, std::sync::atomic::Ordering::SeqCst);
        let mut slots = self.slots.write();
        if slots.get(key.as_bytes()).is_some_and(|slot| slot.position() >= position) {
            return;
        }
        slots.replace(Slot::new(key, position, value.as_deref()));
    }

    /// The highest position applied so far.
    pub(crate) fn high(&self) -> i64 {
        self.high.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        self.slots.read().get(key.as_bytes()).and_then(|s| s.value().map(Bytes::copy_from_slice))
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<String, Bytes> {
        self.slots
            .read()
            .iter()
            .filter_map(|s| {
                let value = s.value()?;
                let key = std::str::from_utf8(s.key()).ok()?;
                Some((key.to_owned(), Bytes::copy_from_slice(value)))
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.read().iter().filter(|s| s.value().is_some()).count()
    }
}

/// A [`StateStore`] held in this process only, with the same cache as the bus-backed stores: for
/// benchmarks and tests that measure or exercise the cache without a broker. Not durable.
#[derive(Debug, Default)]
pub struct MemoryStore {
    cache: Cache,
    next: std::sync::atomic::AtomicI64,
    namespace: String,
}

impl MemoryStore {
    /// An empty store named `namespace`.
    pub fn new(namespace: &str) -> Self {
        Self { namespace: namespace.to_owned(), ..Self::default() }
    }

    fn position(&self) -> i64 {
        self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.cache.get(key)
    }
    async fn put(&self, key: &str, value: Bytes) -> Result<(), StateError> {
        check_key(key)?;
        self.cache.apply(key, self.position(), Some(value));
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), StateError> {
        check_key(key)?;
        self.cache.apply(key, self.position(), None);
        Ok(())
    }
    async fn put_batch(&self, entries: Vec<(String, Option<Bytes>)>) -> Result<(), StateError> {
        for (key, _) in &entries {
            check_key(key)?;
        }
        for (key, value) in entries {
            self.cache.apply(&key, self.position(), value);
        }
        Ok(())
    }
    fn snapshot(&self) -> BTreeMap<String, Bytes> {
        self.cache.snapshot()
    }
    fn len(&self) -> usize {
        self.cache.len()
    }
    fn namespace(&self) -> &str {
        &self.namespace
    }
}

pub(crate) fn check_key(key: &str) -> Result<(), StateError> {
    if key.is_empty() {
        return Err(StateError::InvalidKey("the key must not be empty".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keeps_the_newest_write_per_key() {
        let c = Cache::default();
        c.apply("k", 5, Some(Bytes::from_static(b"v5")));
        c.apply("k", 3, Some(Bytes::from_static(b"v3")));
        assert_eq!(c.get("k").as_deref(), Some(&b"v5"[..]));
        c.apply("k", 7, None);
        assert_eq!(c.get("k"), None);
        c.apply("k", 6, Some(Bytes::from_static(b"v6")));
        assert_eq!(c.get("k"), None, "an older write must not resurrect a deleted key");
        assert_eq!(c.len(), 0);
        c.apply("j", 1, Some(Bytes::from_static(b"x")));
        assert_eq!(c.snapshot().len(), 1);
        // Keys of any length (the length prefix takes more than one byte past 127), empty values.
        let long = "k".repeat(300);
        c.apply(&long, 2, Some(Bytes::new()));
        c.apply(&long, 1, Some(Bytes::from_static(b"older")));
        assert_eq!(c.get(&long).as_deref(), Some(&b""[..]));
        assert_eq!(c.snapshot().keys().cloned().collect::<Vec<_>>(), vec!["j".to_owned(), long]);
        assert_eq!(c.len(), 2);
    }
}
