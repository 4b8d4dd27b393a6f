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

mod cache;
mod kafka;
mod nats;

use cache::Cache;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

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
