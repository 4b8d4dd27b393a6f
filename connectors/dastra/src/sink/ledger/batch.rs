//! The ledger's write batch: entries whose event needs nothing but a ledger write (an unchanged
//! repeat whose version moves on, a skipped delete) are staged here and written together with one
//! `put_batch` when the batch holds `max_entries` or its oldest entry has waited `max_delay`.
//!
//! - Every staged entry belongs to a *generation* (the batch it is written in); the driver releases
//!   the offsets of an event only once its generation is durable ([`WriteBatch::flushed`]), so no
//!   commit ever passes an entry that is not written.
//! - Reads see the staged and the in-flight entries first (read-your-writes).
//! - One batch is written at a time, in generation order; a failed write is retried (never
//!   dropped) and its entries stay readable meanwhile.
//! - A direct write of a key with a staged or in-flight entry ([`WriteBatch::wait_unstaged`]) first
//!   has that entry written, so an older entry can never overwrite a newer one.
//! - The flusher runs in the task of the driver that owns it: when the sink stops without draining
//!   (a crash), what is staged is lost with the uncommitted offsets that stand for it, and is
//!   applied again by the next owner.
//! - When the staged entries cannot be made durable before the sink gives partitions up (a
//!   hand-over, a shutdown), the driver [abandons](WriteBatch::abandon) them: no write starts any
//!   more, the one under way is waited for, and what was staged is dropped — the same loss as a
//!   crash, so that nothing staged here lands after a new owner wrote a newer entry of the key.
//! - While batch writes keep failing, [`WriteBatch::failing`] says since when and why (readiness,
//!   `/status`); every failed write is reported to the flusher's `on_failure` (a metric).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dastra_connect_core::state::StateStore;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// A batch to write: its generation and entries.
type Batch = (u64, Vec<(String, Option<Bytes>)>);

/// The staged writes of one ledger.
pub(crate) struct WriteBatch {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_delay: Duration,
    wake: Notify,
    /// The newest generation that is durable.
    flushed: watch::Sender<u64>,
    /// Set by [`WriteBatch::abandon`]: nothing is written any more, nothing is staged.
    closed: AtomicBool,
    /// Held for the length of every write attempt, so that [`WriteBatch::abandon`] can wait for
    /// the one under way.
    writing: tokio::sync::Mutex<()>,
}

/// Batch writes failing without a success in between.
#[derive(Debug, Clone)]
pub(crate) struct Failing {
    /// When the first of them failed.
    pub(crate) since: Instant,
    /// The same, as wall-clock time (for `/status`).
    pub(crate) since_utc: chrono::DateTime<chrono::Utc>,
    /// Failed attempts.
    pub(crate) attempts: u64,
    /// The last error (a bus error: no secret).
    pub(crate) error: String,
}

struct Inner {
    /// The generation `staged` will be written as.
    generation: u64,
    staged: HashMap<String, Bytes>,
    /// When the oldest staged entry was staged.
    since: Option<Instant>,
    /// The batch being written now (generation `generation - 1`).
    flushing: HashMap<String, Bytes>,
    /// Someone waits for what is staged: write it without waiting for the delay.
    urgent: bool,
    /// Since when batch writes fail (cleared by the next success).
    failing: Option<Failing>,
}

impl WriteBatch {
    pub(crate) fn new(max_entries: usize, max_delay: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                generation: 1,
                staged: HashMap::new(),
                since: None,
                flushing: HashMap::new(),
                urgent: false,
                failing: None,
            }),
            max_entries: max_entries.max(1),
            max_delay,
            wake: Notify::new(),
            flushed: watch::Sender::new(0),
            closed: AtomicBool::new(false),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Stages `value` under `key`; returns the generation it is written in. Once abandoned, the
    /// entry is dropped at once and its generation never becomes durable (its offsets stay open).
    pub(crate) fn stage(&self, key: &str, value: Bytes) -> u64 {
        let mut inner = self.inner.lock();
        if self.closed.load(Ordering::SeqCst) {
            return inner.generation;
        }
        if inner.since.is_none() {
            inner.since = Some(Instant::now());
        }
        inner.staged.insert(key.to_owned(), value);
        let full = inner.staged.len() >= self.max_entries;
        let generation = inner.generation;
        let first = inner.staged.len() == 1;
        drop(inner);
        if first || full {
            self.wake.notify_one();
        }
        generation
    }

    /// The staged or in-flight value of `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        let inner = self.inner.lock();
        inner.staged.get(key).or_else(|| inner.flushing.get(key)).cloned()
    }

    /// Returns once `key` has no staged or in-flight entry (written first, at once).
    pub(crate) async fn wait_unstaged(&self, key: &str) {
        loop {
            let mut rx = self.flushed.subscribe();
            {
                let mut inner = self.inner.lock();
                if !inner.staged.contains_key(key) && !inner.flushing.contains_key(key) {
                    return;
                }
                inner.urgent = true;
            }
            self.wake.notify_one();
            // The sender lives as long as `self`.
            let _ = rx.changed().await;
        }
    }

    /// Writes what is staged now at once and returns the newest durable generation, which covers
    /// every entry staged before the call.
    pub(crate) async fn flush_all(&self) -> u64 {
        if self.closed.load(Ordering::SeqCst) {
            return *self.flushed.borrow();
        }
        let target = {
            let mut inner = self.inner.lock();
            if inner.staged.is_empty() {
                inner.generation - 1
            } else {
                inner.urgent = true;
                inner.generation
            }
        };
        self.wake.notify_one();
        let mut rx = self.flushed.subscribe();
        match rx.wait_for(|g| *g >= target || self.closed.load(Ordering::SeqCst)).await {
            Ok(g) => *g,
            Err(_) => *self.flushed.borrow(),
        }
    }

    /// Follows the newest durable generation.
    pub(crate) fn flushed(&self) -> watch::Receiver<u64> {
        self.flushed.subscribe()
    }

    /// Since when batch writes have been failing, when the last one failed.
    pub(crate) fn failing(&self) -> Option<Failing> {
        self.inner.lock().failing.clone()
    }

    /// Gives the staged entries up: no batch write starts from now on (the flusher ends), the one
    /// under way (if any) is waited for, and every entry staged or in flight is dropped — never
    /// durable, unless that last attempt succeeded. Returns how many were dropped. Waiters
    /// ([`Self::wait_unstaged`], [`Self::flush_all`]) are released; the durable generation does not
    /// move, so the offsets of dropped entries are never released.
    ///
    /// Why: an entry staged by a replica that is giving its partitions up must not land after the
    /// new owner wrote a newer entry of the same key. Its event was never committed, so the new
    /// owner applies it again (as after a crash).
    pub(crate) async fn abandon(&self) -> usize {
        self.closed.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let _writing = self.writing.lock().await;
        let dropped = {
            let mut inner = self.inner.lock();
            let dropped = inner.staged.len() + inner.flushing.len();
            inner.staged.clear();
            inner.flushing.clear();
            inner.since = None;
            inner.urgent = false;
            dropped
        };
        self.flushed.send_modify(|_| {});
        dropped
    }

    /// Takes the staged entries when they are due; otherwise how long to wait for them.
    fn take_due(&self) -> Result<Batch, Option<Instant>> {
        let mut inner = self.inner.lock();
        if self.closed.load(Ordering::SeqCst) {
            return Err(None);
        }
        let Some(since) = inner.since else { return Err(None) };
        let due = inner.urgent || inner.staged.len() >= self.max_entries || since.elapsed() >= self.max_delay;
        if !due {
            return Err(Some(since + self.max_delay));
        }
        let staged = std::mem::take(&mut inner.staged);
        let entries = staged.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        inner.flushing = staged;
        inner.since = None;
        inner.urgent = false;
        let generation = inner.generation;
        inner.generation += 1;
        Ok((generation, entries))
    }

    /// Writes batches as they fall due, for as long as it runs (the owner aborts it) or until the
    /// batch is [abandoned](Self::abandon). Every failed write attempt calls `on_failure`.
    pub(crate) async fn run(self: Arc<Self>, store: Arc<dyn StateStore>, on_failure: impl Fn() + Send) {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let (generation, entries) = match self.take_due() {
                Ok(due) => due,
                Err(Some(at)) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                    continue;
                }
                Err(None) => {
                    notified.await;
                    continue;
                }
            };
            let mut backoff = Duration::from_millis(50);
            let mut attempts = 0u32;
            loop {
                // The attempt and what follows from it happen under `writing`: once `abandon` holds
                // it, no attempt is under way and none starts again.
                let writing = self.writing.lock().await;
                if self.closed.load(Ordering::SeqCst) {
                    return;
                }
                attempts += 1;
                match store.put_batch(entries.clone()).await {
                    Ok(()) => {
                        {
                            let mut inner = self.inner.lock();
                            inner.flushing.clear();
                            inner.failing = None;
                        }
                        self.flushed.send_replace(generation);
                        drop(writing);
                        break;
                    }
                    Err(e) => {
                        drop(writing);
                        on_failure();
                        {
                            let mut inner = self.inner.lock();
                            let failing = inner.failing.get_or_insert_with(|| Failing {
                                since: Instant::now(),
                                since_utc: chrono::Utc::now(),
                                attempts: 0,
                                error: String::new(),
                            });
                            failing.attempts += 1;
                            failing.error = e.to_string();
                        }
                        tracing::warn!(store = store.namespace(), entries = entries.len(), attempts, error = %e, "ledger batch write failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU64;

    use async_trait::async_trait;
    use dastra_connect_core::state::{MemoryStore, StateError};

    use super::*;

    /// A memory store whose batch writes fail while `failing` is set.
    struct Refusing {
        inner: MemoryStore,
        failing: AtomicBool,
    }

    #[async_trait]
    impl StateStore for Refusing {
        fn get(&self, key: &str) -> Option<Bytes> {
            self.inner.get(key)
        }
        async fn put(&self, key: &str, value: Bytes) -> Result<(), StateError> {
            self.inner.put(key, value).await
        }
        async fn delete(&self, key: &str) -> Result<(), StateError> {
            self.inner.delete(key).await
        }
        async fn put_batch(&self, entries: Vec<(String, Option<Bytes>)>) -> Result<(), StateError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StateError::InvalidKey("refused".into()));
            }
            self.inner.put_batch(entries).await
        }
        fn snapshot(&self) -> BTreeMap<String, Bytes> {
            self.inner.snapshot()
        }
        fn len(&self) -> usize {
            self.inner.len()
        }
        fn namespace(&self) -> &str {
            self.inner.namespace()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_entries_are_never_written_and_release_their_waiters() {
        let store = Arc::new(Refusing { inner: MemoryStore::new("ledger"), failing: AtomicBool::new(true) });
        let batch = Arc::new(WriteBatch::new(10, Duration::from_millis(5)));
        let failures = Arc::new(AtomicU64::new(0));
        let counted = failures.clone();
        let flusher = tokio::spawn(batch.clone().run(store.clone(), move || {
            counted.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(batch.stage("a", Bytes::from_static(b"1")), 1);
        // A direct write of `a` waits for its staged entry, which keeps failing.
        let waiter = tokio::spawn({
            let batch = batch.clone();
            async move { batch.wait_unstaged("a").await }
        });
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(!waiter.is_finished());
        let failing = batch.failing().expect("failing");
        assert!(failing.attempts >= 5 && failing.since.elapsed() >= Duration::from_secs(15), "{failing:?}");
        assert_eq!(failures.load(Ordering::SeqCst), failing.attempts);
        let mut flushed = batch.flushed();
        assert_eq!(batch.abandon().await, 1);
        waiter.await.unwrap();
        assert!(batch.get("a").is_none(), "dropped");
        assert_eq!(batch.flush_all().await, 0, "nothing became durable");
        // Staged after the abandon: dropped at once.
        assert_eq!(batch.stage("b", Bytes::from_static(b"1")), 2);
        assert!(batch.get("b").is_none());
        batch.wait_unstaged("b").await;
        // The store recovers: nothing is written any more, and the flusher has ended.
        store.failing.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(store.get("a").is_none() && store.get("b").is_none());
        assert!(flusher.is_finished());
        assert_eq!(*flushed.borrow_and_update(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_clears_the_failure() {
        let store = Arc::new(Refusing { inner: MemoryStore::new("ledger"), failing: AtomicBool::new(true) });
        let batch = Arc::new(WriteBatch::new(10, Duration::from_millis(5)));
        let flusher = tokio::spawn(batch.clone().run(store.clone(), || {}));
        batch.stage("a", Bytes::from_static(b"1"));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(batch.failing().is_some());
        store.failing.store(false, Ordering::SeqCst);
        assert_eq!(batch.flush_all().await, 1);
        assert!(batch.failing().is_none());
        assert_eq!(store.get("a").as_deref(), Some(&b"1"[..]));
        flusher.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn staged_entries_are_read_at_once_and_written_by_generation() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new("ledger"));
        let batch = Arc::new(WriteBatch::new(3, Duration::from_millis(50)));
        let flusher = tokio::spawn(batch.clone().run(store.clone(), || {}));
        let mut flushed = batch.flushed();
        assert_eq!(batch.stage("a", Bytes::from_static(b"1")), 1);
        assert_eq!(batch.get("a").as_deref(), Some(&b"1"[..]), "read-your-writes");
        assert!(store.get("a").is_none(), "not written before the delay");
        // The delay writes generation 1.
        flushed.changed().await.unwrap();
        assert_eq!(*flushed.borrow_and_update(), 1);
        assert_eq!(store.get("a").as_deref(), Some(&b"1"[..]));
        assert!(batch.get("a").is_none());
        // A full batch is written without waiting for the delay; a later entry of a key wins.
        let start = Instant::now();
        for (k, v) in [("b", "1"), ("b", "2"), ("c", "1"), ("d", "1")] {
            assert_eq!(batch.stage(k, Bytes::from(v)), 2);
        }
        flushed.changed().await.unwrap();
        assert!(start.elapsed() < Duration::from_millis(50));
        assert_eq!(store.get("b").as_deref(), Some(&b"2"[..]));
        // A direct write of a staged key waits until its staged entry is written; flush_all
        // writes at once and covers everything staged.
        assert_eq!(batch.stage("e", Bytes::from_static(b"1")), 3);
        batch.wait_unstaged("e").await;
        assert_eq!(store.get("e").as_deref(), Some(&b"1"[..]));
        assert_eq!(batch.stage("f", Bytes::from_static(b"1")), 4);
        assert_eq!(batch.flush_all().await, 4);
        assert_eq!(store.get("f").as_deref(), Some(&b"1"[..]));
        assert_eq!(batch.flush_all().await, 4, "nothing staged: the newest durable generation");
        flusher.abort();
    }
}
