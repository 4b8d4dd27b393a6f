//! The known-key set of a source: every entity key a record produced, with its stream and record
//! id, persisted on the bus (one state entry per key, written in one pipelined batch per page and only
//! when the key is new, so steady state costs no writes) and indexed in memory by record.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::state::{StateError, StateStore};

/// Where a key came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Origin {
    /// The stream.
    pub s: String,
    /// The record id.
    pub r: String,
}

/// The set, loaded from and written to a state store.
pub(crate) struct KnownKeys {
    store: Arc<dyn StateStore>,
    by_key: HashMap<String, Origin>,
    by_record: HashMap<Origin, BTreeSet<String>>,
}

impl KnownKeys {
    /// Loads every entry of `store` (entries that do not parse are ignored: they cannot be swept).
    pub fn load(store: Arc<dyn StateStore>) -> KnownKeys {
        let mut k = KnownKeys { store, by_key: HashMap::new(), by_record: HashMap::new() };
        for (key, value) in k.store.snapshot() {
            if let Ok(origin) = serde_json::from_slice::<Origin>(&value) {
                k.index(key, origin);
            }
        }
        k
    }

    fn index(&mut self, key: String, origin: Origin) {
        if let Some(old) = self.by_key.insert(key.clone(), origin.clone())
            && old != origin
            && let Some(set) = self.by_record.get_mut(&old)
        {
            set.remove(&key);
        }
        self.by_record.entry(origin).or_default().insert(key);
    }

    /// How many keys are known.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The keys a record produced so far.
    pub fn of_record(&self, stream: &str, record: &str) -> BTreeSet<String> {
        self.by_record.get(&Origin { s: stream.to_owned(), r: record.to_owned() }).cloned().unwrap_or_default()
    }

    /// Every known key of a stream.
    pub fn of_stream(&self, stream: &str) -> Vec<String> {
        self.by_key.iter().filter(|(_, o)| o.s == stream).map(|(k, _)| k.clone()).collect()
    }

    /// Records new keys (durably) and forgets removed ones; returns once the broker acknowledged.
    pub async fn apply(&mut self, added: Vec<(String, Origin)>, removed: Vec<String>) -> Result<(), StateError> {
        let added: Vec<(String, Origin)> = added.into_iter().filter(|(k, o)| self.by_key.get(k) != Some(o)).collect();
        let removed: Vec<String> = removed.into_iter().filter(|k| self.by_key.contains_key(k)).collect();
        let mut writes: Vec<(String, Option<Bytes>)> = Vec::with_capacity(added.len() + removed.len());
        for (k, o) in &added {
            writes.push((k.clone(), Some(Bytes::from(serde_json::to_vec(o).unwrap_or_default()))));
        }
        writes.extend(removed.iter().map(|k| (k.clone(), None)));
        if !writes.is_empty() {
            self.store.put_batch(writes).await?;
        }
        for (k, o) in added {
            self.index(k, o);
        }
        for k in removed {
            if let Some(o) = self.by_key.remove(&k)
                && let Some(set) = self.by_record.get_mut(&o)
            {
                set.remove(&k);
                if set.is_empty() {
                    self.by_record.remove(&o);
                }
            }
        }
        Ok(())
    }
}
