//! The receiver's dedupe window and replay check.
//!
//! - Each accepted body's CloudEvents id is recorded in a [`StateStore`] on the bus (compacted topic
//!   or KV bucket) with the body's signed `date`; a later body with a recorded id is answered 200 and
//!   not published again. The store survives restarts and is shared by every replica of the receiver.
//! - A body whose signed `date` is older than the window (or further in the future than the allowed
//!   clock skew) is refused: its id may already have left the store, so it cannot be told apart
//!   from a replay. Entries are removed once their `date` leaves the window, so every body that
//!   passes the date check still finds its entry if it was seen before.
//! - Within one replica, deliveries of one id are handled one at a time (a per-id lock), so two
//!   concurrent copies publish once. Across replicas, the store is read after a barrier
//!   ([`StateStore::sync`]), which covers copies arriving one after the other; two copies handled
//!   at the same moment by two replicas can both be published on Kafka. On NATS, JetStream's
//!   `Nats-Msg-Id` dedupe (the stream's duplicate window, 2 minutes by default) drops the second.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use dastra_connect_core::state::{StateError, StateStore};
use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;

/// Why a body's `date` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateRefusal {
    /// Older than the dedupe window: a possible replay.
    TooOld,
    /// Further in the future than the allowed clock skew.
    InFuture,
}

/// The dedupe window over a state store.
pub struct Dedupe {
    store: Arc<dyn StateStore>,
    window: Duration,
    skew: Duration,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holds the per-id lock; releasing it forgets the lock when nobody else waits on it.
pub struct IdGuard<'a> {
    dedupe: &'a Dedupe,
    id: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for IdGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.dedupe.locks.lock();
        // Clones are only made under `locks`: a count of 1 means only the map holds it.
        if locks.get(&self.id).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(&self.id);
        }
    }
}

fn chrono_window(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Dedupe {
    /// A window of `window` over `store`, accepting dates up to `skew` in the future.
    pub fn new(store: Arc<dyn StateStore>, window: Duration, skew: Duration) -> Self {
        Self { store, window, skew, locks: Mutex::new(HashMap::new()) }
    }

    /// Whether a body dated `date` may be accepted at `now`.
    pub fn check_date(&self, date: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), DateRefusal> {
        if date < now - chrono_window(self.window) {
            return Err(DateRefusal::TooOld);
        }
        if date > now + chrono_window(self.skew) {
            return Err(DateRefusal::InFuture);
        }
        Ok(())
    }

    /// Waits for exclusive handling of `id` in this process.
    pub async fn lock(&self, id: &str) -> IdGuard<'_> {
        let lock = self.locks.lock().entry(id.to_owned()).or_default().clone();
        let guard = lock.lock_owned().await;
        IdGuard { dedupe: self, id: id.to_owned(), guard: Some(guard) }
    }

    /// Whether `id` was recorded, by this replica or (after a barrier read) by another one.
    pub async fn seen(&self, id: &str) -> Result<bool, StateError> {
        if self.store.get(id).is_some() {
            return Ok(true);
        }
        self.store.sync().await?;
        Ok(self.store.get(id).is_some())
    }

    /// Records `id` as published, with the body's `date`.
    pub async fn record(&self, id: &str, date: DateTime<Utc>) -> Result<(), StateError> {
        self.store.put(id, Bytes::from(date.timestamp_millis().to_string())).await
    }

    /// Removes the entries whose date left the window at `now`; answers how many.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<usize, StateError> {
        let oldest = (now - chrono_window(self.window)).timestamp_millis();
        let expired: Vec<(String, Option<Bytes>)> = self
            .store
            .snapshot()
            .into_iter()
            .filter(|(_, v)| {
                std::str::from_utf8(v).ok().and_then(|s| s.parse::<i64>().ok()).is_none_or(|ms| ms < oldest)
            })
            .map(|(k, _)| (k, None))
            .collect();
        let n = expired.len();
        if n > 0 {
            self.store.put_batch(expired).await?;
        }
        Ok(n)
    }

    /// How many ids the window holds.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// True when the window holds no id.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}
