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

use std::collections::HashMap;
use std::sync::Arc;
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
            }),
            max_entries: max_entries.max(1),
            max_delay,
            wake: Notify::new(),
            flushed: watch::Sender::new(0),
        }
    }

    /// Stages `value` under `key`; returns the generation it is written in.
    pub(crate) fn stage(&self, key: &str, value: Bytes) -> u64 {
        let mut inner = self.inner.lock();
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
        match rx.wait_for(|g| *g >= target).await {
            Ok(g) => *g,
            Err(_) => *self.flushed.borrow(),
        }
    }

    /// Follows the newest durable generation.
    pub(crate) fn flushed(&self) -> watch::Receiver<u64> {
        self.flushed.subscribe()
    }

    /// Takes the staged entries when they are due; otherwise how long to wait for them.
    fn take_due(&self) -> Result<Batch, Option<Instant>> {
        let mut inner = self.inner.lock();
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

    /// Writes batches as they fall due, for as long as it runs (the owner aborts it).
    pub(crate) async fn run(self: Arc<Self>, store: Arc<dyn StateStore>) {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
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
                attempts += 1;
                match store.put_batch(entries.clone()).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(store = store.namespace(), entries = entries.len(), attempts, error = %e, "ledger batch write failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            self.inner.lock().flushing.clear();
            self.flushed.send_replace(generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use dastra_connect_core::state::MemoryStore;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn staged_entries_are_read_at_once_and_written_by_generation() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new("ledger"));
        let batch = Arc::new(WriteBatch::new(3, Duration::from_millis(50)));
        let flusher = tokio::spawn(batch.clone().run(store.clone()));
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
