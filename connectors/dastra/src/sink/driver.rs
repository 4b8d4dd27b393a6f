//! The sink's main loop, per process: consume → decode (bad input → DLQ) → coalesce by entity key →
//! apply (one key at a time, at most `max_in_flight` keys at once) → record in the ledger → release
//! the offsets → commit up to the watermark. Pending references and parked keys are kept in state
//! stores on the bus, so no event is ever dropped by a restart.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dastra_connect_core::bus::{InboundMessage, Publisher, Subscriber, SubscriberEvent, TopicPartition};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::event::{ChangeEvent, EntityKey};
use dastra_connect_core::state::StateStore;
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_core::{Classify, ErrorClass};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::apply::{ApplyCtx, ApplyError, Outcome, apply};
use super::config::{DastraSinkConfig, ParkedPolicy};
use super::dlq::{DlqReason, RawMessage, dlq_message};
use super::ledger::Ledger;
use super::order;
use super::tracker::Tracker;
use crate::DastraClient;
use crate::quota::Priority;

/// How often consumer lag is read from the broker (it costs requests to the brokers).
const LAG_EVERY: Duration = Duration::from_secs(5);

/// One unit of work: the newest event of a key, the message it came in, and every offset it
/// stands for (coalesced older events included).
struct Work {
    event: ChangeEvent,
    raw: RawMessage,
    offsets: Vec<(TopicPartition, i64)>,
    /// Re-driven from the pending set: its entry is removed once the work ends.
    from_pending: bool,
}

#[derive(Default)]
struct Slot {
    /// The sequence of the event being applied now.
    running: Option<String>,
    /// The newest event waiting for the running one to end.
    queued: Option<Work>,
}

/// How a worker ended: its result and the attempts it took. A worker still retrying at shutdown is
/// aborted instead, and its offsets stay open (redelivered to the next owner).
enum Finish {
    Done(Result<Outcome, ApplyError>, u32),
}

/// The newest not-yet-applied event of a key, persisted in the pending store: waiting for
/// referenced entities (`missing`), or held behind a parked key (`held`, parked policy `wait`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingEntry {
    raw: RawMessage,
    missing: Vec<String>,
    since: chrono::DateTime<chrono::Utc>,
    /// The event's source version (absent in entries written by older builds: treated as older
    /// than anything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sequence: Option<String>,
    /// Held because the key is parked: released when `dlq redrive` un-parks it, never expired.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    held: bool,
}

impl PendingEntry {
    /// Whether this entry's event is newer than `sequence`.
    fn newer_than(&self, sequence: &str) -> bool {
        !order::may_replace_pending(sequence, self.sequence.as_deref())
    }
}

/// Shared, immutable parts every worker needs.
pub struct Shared {
    /// Connector name (metric label).
    pub name: String,
    /// Config.
    pub config: DastraSinkConfig,
    /// Dastra client.
    pub client: DastraClient,
    /// The ledger.
    pub ledger: Ledger,
    /// Pending references.
    pub pending: Arc<dyn StateStore>,
    /// Parked keys.
    pub parked: Arc<dyn StateStore>,
    /// DLQ publisher.
    pub publisher: Arc<dyn Publisher>,
    /// DLQ topic.
    pub dlq_topic: String,
    /// Codec (decode any format).
    pub codec: Codec,
    /// Metrics.
    pub metrics: Metrics,
    /// The process's quota limiter (re-split on every assignment change).
    pub quota: crate::QuotaLimiter,
    /// Partitions of all consumed topics together (the denominator of this replica's quota share).
    pub total_partitions: u32,
}

/// Live counters for `/status`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SinkStatus {
    /// Owned partitions.
    pub partitions: Vec<String>,
    /// Keys being applied now.
    pub in_flight: usize,
    /// Events held in memory.
    pub buffered: usize,
    /// Offsets consumed but not committed, per partition.
    pub uncommitted: Vec<(String, i64)>,
    /// Messages not yet committed per partition, from the broker (refreshed every few seconds).
    pub lag: Vec<(String, i64)>,
    /// Events waiting for referenced entities.
    pub pending: usize,
    /// Parked keys.
    pub parked: usize,
    /// The first parked keys with the reason code they were parked for (at most 50).
    pub parked_keys: Vec<(String, String)>,
}

/// The loop's state.
pub struct Driver {
    shared: Arc<Shared>,
    slots: HashMap<EntityKey, Slot>,
    ready: VecDeque<EntityKey>,
    tracker: Tracker,
    tasks: JoinSet<(EntityKey, Work, Finish)>,
    in_flight: usize,
    buffered: usize,
    /// missing key → keys of pending events waiting for it.
    waiting_on: HashMap<String, HashSet<String>>,
    status: Arc<parking_lot::Mutex<SinkStatus>>,
    /// Whether the quota share was set once (the first assignment applies at once).
    share_set: bool,
    /// Set when the loop must stop with an error (e.g. the DLQ cannot be written).
    broken: Option<String>,
}

impl Driver {
    /// A driver over `shared`; `status` is updated for `/status`.
    pub fn new(shared: Arc<Shared>, status: Arc<parking_lot::Mutex<SinkStatus>>) -> Self {
        let mut d = Self {
            shared,
            slots: HashMap::new(),
            ready: VecDeque::new(),
            tracker: Tracker::default(),
            tasks: JoinSet::new(),
            in_flight: 0,
            buffered: 0,
            waiting_on: HashMap::new(),
            status,
            share_set: false,
            broken: None,
        };
        d.rebuild_waiting();
        d
    }

    fn label(&self) -> &str {
        &self.shared.name
    }

    /// Runs until `shutdown`; then finishes in-flight work (up to the grace period), commits and
    /// closes the subscriber.
    pub async fn run(mut self, mut sub: Box<dyn Subscriber>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(self.shared.config.commit_interval);
        let mut lag_read = Instant::now() - LAG_EVERY;
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Pending events whose references appeared while the process was down.
        self.redrive_resolved_pending().await;
        let result = loop {
            if let Some(why) = self.broken.take() {
                break Err(anyhow::anyhow!(why));
            }
            let can_consume = self.buffered < self.shared.config.max_buffered;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Ok(()),
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    match joined {
                        Ok((key, work, finish)) => {
                            if let Err(e) = self.finish(key, work, finish).await {
                                break Err(e);
                            }
                        }
                        Err(e) => break Err(anyhow::anyhow!("sink worker panicked: {e}")),
                    }
                }
                _ = tick.tick() => {
                    self.commit(sub.as_ref()).await;
                    self.expire_pending().await;
                    self.redrive_resolved_pending().await;
                    self.publish_status(sub.as_ref());
                    if lag_read.elapsed() >= LAG_EVERY {
                        lag_read = Instant::now();
                        self.read_lag(sub.as_ref()).await;
                    }
                }
                event = sub.next_event(), if can_consume => {
                    match event {
                        Ok(SubscriberEvent::Message(m)) => self.on_message(m).await,
                        Ok(SubscriberEvent::Assigned(tps)) => {
                            tracing::info!(connector = %self.label(), partitions = tps.len(), "partitions assigned");
                            self.reshare(sub.as_ref());
                        }
                        Ok(SubscriberEvent::Revoked(tps)) => {
                            self.on_revoked(sub.as_ref(), tps, &shutdown).await;
                            self.reshare(sub.as_ref());
                        }
                        Err(e) if e.class() == ErrorClass::Fatal => break Err(e.into()),
                        Err(e) => {
                            tracing::warn!(connector = %self.label(), error = %e, "consume failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            }
        };
        self.drain(self.shared.config.shutdown_grace).await;
        self.commit(sub.as_ref()).await;
        if let Err(e) = sub.close().await {
            tracing::warn!(connector = %self.label(), error = %e, "closing the consumer failed");
        }
        result
    }

    /// This replica's quota share = quota × owned partitions / all partitions, so that replicas
    /// sharing the topics stay within one Dastra quota together.
    fn reshare(&mut self, sub: &dyn Subscriber) {
        let owned = sub.assignment().len() as u32;
        let total = self.shared.total_partitions.max(owned).max(1);
        if self.share_set {
            self.shared.quota.set_share(owned, total);
        } else {
            // A new process starts with its share at once; later increases are phased in.
            self.shared.quota.init_share(owned, total);
            self.share_set = true;
        }
        tracing::info!(connector = %self.label(), owned, total, "quota share set");
    }

    async fn on_message(&mut self, m: InboundMessage) {
        let tp = m.topic_partition();
        self.tracker.seen(&tp, m.offset);
        let raw = RawMessage::from_inbound(&m);
        let Some(value) = m.payload.as_ref() else {
            // Tombstones on change topics carry no event (compaction leftovers): nothing to do.
            self.tracker.done(&tp, m.offset);
            return;
        };
        if value.len() > self.shared.config.max_event_bytes {
            let why = DlqReason {
                code: "too_large".into(),
                error: format!(
                    "event of {} bytes exceeds max_event_bytes ({})",
                    value.len(),
                    self.shared.config.max_event_bytes
                ),
                status: None,
                attempts: 0,
            };
            self.shared.metrics.dlq_events.with_label_values(&[self.label(), "too_large"]).inc();
            if self.dead_letter(&raw, &why).await {
                self.tracker.done(&tp, m.offset);
            }
            return;
        }
        let event = match ChangeEvent::from_parts(&m.headers, value, &self.shared.codec).await {
            Ok(e) => e,
            Err(e) => {
                let why = DlqReason { code: e.code().to_owned(), error: e.to_string(), status: None, attempts: 0 };
                self.shared.metrics.dlq_events.with_label_values(&[self.label(), e.code()]).inc();
                if self.dead_letter(&raw, &why).await {
                    self.tracker.done(&tp, m.offset);
                }
                return;
            }
        };
        let kind = event.kind().as_str();
        self.shared.metrics.events_consumed.with_label_values(&[self.label(), kind]).inc();
        let key = event.key.clone();

        let work = Work { event, raw, offsets: vec![(tp, m.offset)], from_pending: false };
        let mut parked = self.is_parked(&key);
        let redriven_cause = parked
            && m.headers.iter().any(|(k, v)| k == super::dlq::H_REDRIVE_REASON && v.as_slice() != b"parked".as_slice());
        if redriven_cause {
            // The record that parked the key, re-sent by `dlq redrive`: the key is un-parked here
            // (the command un-parks it too, but this process may not have seen that yet).
            if let Err(e) = self.shared.parked.delete(key.as_str()).await {
                self.broken = Some(format!("cannot un-park {key}: {e}"));
                return;
            }
            parked = false;
            tracing::info!(connector = %self.label(), key = %key, "key un-parked by a redriven record");
        }
        if self.superseded(&key, &work, order::Origin::Bus) {
            return;
        }
        if parked {
            self.divert_parked(&key, work).await;
            return;
        }
        self.submit(key, work);
    }

    /// Asks the ordering rule ([`order::admit`]) about `work`; a superseded event is counted as
    /// stale and its offsets are released. `InProgress` (a pending entry being applied now) is
    /// reported as superseded too: nothing is to be done with it here.
    fn superseded(&mut self, key: &EntityKey, work: &Work, origin: order::Origin) -> bool {
        let ledger = self.shared.ledger.get(key);
        let pending = self.pending_entry(key.as_str());
        let known = order::KeyVersions {
            ledger: ledger.as_ref(),
            pending: pending.as_ref().and_then(|p| p.sequence.as_deref()),
            running: self.slots.get(key).and_then(|s| s.running.as_deref()),
        };
        match order::admit(&work.event.sequence, origin, known) {
            order::Admission::Admit => false,
            order::Admission::InProgress => true,
            order::Admission::Superseded => {
                let kind = work.event.kind().as_str();
                self.shared.metrics.events_skipped.with_label_values(&[&self.shared.name, kind, "stale"]).inc();
                self.shared.metrics.requests_saved.with_label_values(&[&self.shared.name, "stale"]).inc();
                tracing::debug!(connector = %self.label(), key = %key, sequence = %work.event.sequence, "superseded by a newer version");
                self.release(work);
                true
            }
        }
    }

    fn is_parked(&self, key: &EntityKey) -> bool {
        self.shared.parked.get(key.as_str()).is_some()
    }

    fn release(&mut self, work: &Work) {
        for (tp, o) in &work.offsets {
            self.tracker.done(tp, *o);
        }
    }

    /// An event of a parked key, by the `parked` policy: `dlq` sends it to the DLQ (reason
    /// `parked`) so that `dlq redrive` replays it after the failed one; `wait` holds the key's
    /// newest event in the pending store until the key is un-parked. Its offsets are released
    /// once it is durably in one or the other; when neither can be written the loop stops (the
    /// event is redelivered after the restart).
    async fn divert_parked(&mut self, key: &EntityKey, work: Work) {
        let kind = work.event.kind().as_str();
        match self.shared.config.parked {
            ParkedPolicy::Dlq => {
                let why = DlqReason {
                    code: "parked".into(),
                    error: format!("{key} is parked behind an earlier failed event; redrive the DLQ in order"),
                    status: None,
                    attempts: 0,
                };
                self.shared.metrics.dlq_events.with_label_values(&[self.label(), "parked"]).inc();
                if self.dead_letter(&work.raw, &why).await {
                    if work.from_pending
                        && let Err(e) = self.shared.pending.delete(key.as_str()).await
                    {
                        self.broken = Some(format!("cannot clear the pending event of {key}: {e}"));
                        return;
                    }
                    self.release(&work);
                }
            }
            ParkedPolicy::Wait => {
                let existing = self.pending_entry(key.as_str());
                if existing.as_ref().is_some_and(|p| p.newer_than(&work.event.sequence)) {
                    // A newer event of the key is already kept (held, or waiting for references):
                    // this one is superseded and must not replace it.
                    self.shared.metrics.events_skipped.with_label_values(&[&self.shared.name, kind, "coalesced"]).inc();
                    self.release(&work);
                    return;
                }
                let entry = PendingEntry {
                    raw: work.raw.clone(),
                    missing: Vec::new(),
                    since: existing.map(|p| p.since).unwrap_or_else(chrono::Utc::now),
                    sequence: Some(work.event.sequence.clone()),
                    held: true,
                };
                let bytes = Bytes::from(serde_json::to_vec(&entry).unwrap_or_default());
                if let Err(e) = self.shared.pending.put(key.as_str(), bytes).await {
                    self.broken = Some(format!("cannot hold the event of parked key {key}: {e}"));
                    return;
                }
                tracing::info!(connector = %self.label(), key = %key, sequence = %work.event.sequence, "event held behind a parked key");
                self.release(&work);
            }
        }
    }

    fn pending_entry(&self, key: &str) -> Option<PendingEntry> {
        serde_json::from_slice(&self.shared.pending.get(key)?).ok()
    }

    /// Queues or starts work for a key, coalescing with what is already queued.
    fn submit(&mut self, key: EntityKey, work: Work) {
        let slot = self.slots.entry(key.clone()).or_default();
        match slot.queued.take() {
            Some(queued) => {
                let (mut newer, older) = if order::replaces_queued(&work.event.sequence, &queued.event.sequence) {
                    (work, queued)
                } else {
                    (queued, work)
                };
                newer.offsets.extend(older.offsets);
                newer.from_pending |= older.from_pending;
                let kind = newer.event.kind().as_str();
                self.shared.metrics.events_skipped.with_label_values(&[&self.shared.name, kind, "coalesced"]).inc();
                self.shared.metrics.requests_saved.with_label_values(&[&self.shared.name, "coalesced"]).inc();
                slot.queued = Some(newer);
            }
            None => {
                slot.queued = Some(work);
                self.buffered += 1;
                if slot.running.is_none() {
                    self.ready.push_back(key);
                }
            }
        }
        self.start_ready();
    }

    fn start_ready(&mut self) {
        // Stopping: nothing new starts (queued work stays uncommitted and is redelivered), so that
        // nothing can overtake the event whose failure stopped the loop.
        if self.broken.is_some() {
            return;
        }
        while self.in_flight < self.shared.config.max_in_flight {
            let Some(key) = self.ready.pop_front() else { break };
            let Some(slot) = self.slots.get_mut(&key) else { continue };
            if slot.running.is_some() {
                continue;
            }
            let Some(work) = slot.queued.take() else { continue };
            slot.running = Some(work.event.sequence.clone());
            self.buffered -= 1;
            self.in_flight += 1;
            let shared = self.shared.clone();
            // One span per applied event, child of the source's trace (`traceparent` header), so a
            // trace runs from the source's poll through the bus to the Dastra requests.
            let span = tracing::info_span!("dastra_sink.apply", connector = %shared.name, key = %key, sequence = %work.event.sequence);
            dastra_connect_core::telemetry::propagation::extract_into(&span, &work.raw.header_bytes());
            self.tasks.spawn(
                async move {
                    let finish = work_on(&shared, &work).await;
                    (key, work, finish)
                }
                .instrument(span),
            );
        }
    }

    async fn finish(&mut self, key: EntityKey, work: Work, finish: Finish) -> anyhow::Result<()> {
        self.in_flight -= 1;
        let kind = work.event.kind().as_str();
        let label = self.shared.name.clone();
        let mut release = true;
        match finish {
            Finish::Done(Ok(Outcome::Applied { .. }), _) => {
                let op = work.event.op.as_str();
                self.shared.metrics.events_applied.with_label_values(&[&label, kind, op]).inc();
                self.wake_waiting(&key).await;
                self.clear_pending(&key, &work).await;
            }
            Finish::Done(Ok(Outcome::Skipped { reason, .. }), _) => {
                self.shared.metrics.events_skipped.with_label_values(&[&label, kind, reason.as_str()]).inc();
                self.shared.metrics.requests_saved.with_label_values(&[&label, reason.as_str()]).inc();
                self.wake_waiting(&key).await;
                self.clear_pending(&key, &work).await;
            }
            Finish::Done(Ok(Outcome::Pending { missing }), _)
                if !order::may_replace_pending(
                    &work.event.sequence,
                    self.pending_entry(key.as_str()).and_then(|p| p.sequence).as_deref(),
                ) =>
            {
                // A newer event of the key already waits (it arrived while this one ran): it stays.
                let _ = missing;
                self.shared.metrics.events_skipped.with_label_values(&[&label, kind, "stale"]).inc();
            }
            Finish::Done(Ok(Outcome::Pending { missing }), _) => {
                let entry = PendingEntry {
                    raw: work.raw.clone(),
                    missing: missing.iter().map(|k| k.as_str().to_owned()).collect(),
                    since: self.pending_since(&key).unwrap_or_else(chrono::Utc::now),
                    sequence: Some(work.event.sequence.clone()),
                    held: false,
                };
                let bytes = Bytes::from(serde_json::to_vec(&entry).unwrap_or_default());
                if let Err(e) = self.shared.pending.put(key.as_str(), bytes).await {
                    // Its offsets cannot be released, so the commit watermark would stall behind
                    // it for good: stop, and let the restart redeliver it.
                    self.broken = Some(format!("cannot record the pending event of {key}: {e}"));
                    release = false;
                } else {
                    for m in &entry.missing {
                        self.waiting_on.entry(m.clone()).or_default().insert(key.as_str().to_owned());
                    }
                    tracing::info!(connector = %label, key = %key, missing = ?entry.missing, "waiting for referenced entities");
                }
            }
            Finish::Done(Err(e), attempts) => match e.class() {
                ErrorClass::Fatal => {
                    return Err(anyhow::anyhow!("fatal error applying {key}: {e}"));
                }
                _ => {
                    // Permanent: DLQ and park the key so later events cannot overtake this one.
                    let why =
                        DlqReason { code: e.code().to_owned(), error: e.to_string(), status: e.status(), attempts };
                    self.shared.metrics.dlq_events.with_label_values(&[&label, e.code()]).inc();
                    tracing::warn!(connector = %label, key = %key, code = e.code(), error = %e, "event dead-lettered; key parked");
                    if self.dead_letter(&work.raw, &why).await {
                        let note = Bytes::from(why.code.clone().into_bytes());
                        if let Err(pe) = self.shared.parked.put(key.as_str(), note).await {
                            // Unparked, a later event of the key could overtake the failed one:
                            // stop before consuming anything else (the failed event is already
                            // in the DLQ; its redelivery dead-letters it again and parks).
                            self.broken = Some(format!("cannot park {key}: {pe}"));
                            release = false;
                        } else {
                            self.clear_pending(&key, &work).await;
                        }
                    } else {
                        release = false;
                    }
                }
            },
        }
        if release {
            self.release(&work);
        }
        let mut diverted = None;
        if let Some(slot) = self.slots.get_mut(&key) {
            slot.running = None;
            if slot.queued.is_some() && self.broken.is_none() && self.shared.parked.get(key.as_str()).is_some() {
                // Newer events that arrived while the failed one was in flight must not overtake it.
                diverted = slot.queued.take();
                self.buffered -= 1;
            }
            if slot.queued.is_some() {
                self.ready.push_back(key.clone());
            } else {
                self.slots.remove(&key);
            }
        }
        if let Some(queued) = diverted {
            self.divert_parked(&key, queued).await;
        }
        self.start_ready();
        Ok(())
    }

    fn pending_since(&self, key: &EntityKey) -> Option<chrono::DateTime<chrono::Utc>> {
        let raw = self.shared.pending.get(key.as_str())?;
        serde_json::from_slice::<PendingEntry>(&raw).ok().map(|p| p.since)
    }

    /// The key's event was applied (or dead-lettered): its pending entry is done with, unless the
    /// entry holds a newer event (one that arrived out of order), which is kept for its turn.
    async fn clear_pending(&mut self, key: &EntityKey, work: &Work) {
        let Some(entry) = self.pending_entry(key.as_str()) else { return };
        if entry.newer_than(&work.event.sequence) {
            if !self.is_parked(key) {
                self.redrive_pending(key.as_str()).await;
            }
            return;
        }
        if let Err(e) = self.shared.pending.delete(key.as_str()).await {
            // Harmless: the entry's event is older than what was applied, so its redrive is
            // skipped as stale.
            tracing::warn!(connector = %self.label(), key = %key, error = %e, "cannot clear a pending event");
        }
        for waiters in self.waiting_on.values_mut() {
            waiters.remove(key.as_str());
        }
    }

    fn rebuild_waiting(&mut self) {
        for (k, v) in self.shared.pending.snapshot() {
            if let Ok(p) = serde_json::from_slice::<PendingEntry>(&v) {
                for m in p.missing {
                    self.waiting_on.entry(m).or_default().insert(k.clone());
                }
            }
        }
    }

    /// A key became live: re-drive the pending events that waited for it.
    async fn wake_waiting(&mut self, key: &EntityKey) {
        let Some(waiters) = self.waiting_on.remove(key.as_str()) else { return };
        for w in waiters {
            self.redrive_pending(&w).await;
        }
    }

    async fn redrive_pending(&mut self, key_text: &str) {
        let Some(raw) = self.shared.pending.get(key_text) else { return };
        let Ok(entry) = serde_json::from_slice::<PendingEntry>(&raw) else { return };
        let Ok(key) = EntityKey::parse(key_text) else { return };
        let headers = entry.raw.header_bytes();
        let value = entry.raw.value.clone().unwrap_or_default();
        if let Ok(event) = ChangeEvent::from_parts(&headers, &value, &self.shared.codec).await {
            let work = Work { event, raw: entry.raw, offsets: Vec::new(), from_pending: true };
            let applied = self.shared.ledger.get(&key);
            let known = order::KeyVersions {
                ledger: applied.as_ref(),
                pending: entry.sequence.as_deref(),
                running: self.slots.get(&key).and_then(|s| s.running.as_deref()),
            };
            match order::admit(&work.event.sequence, order::Origin::Pending, known) {
                order::Admission::Admit => {}
                order::Admission::InProgress => return,
                order::Admission::Superseded => {
                    // Applied already (by this or an earlier owner): the entry is done with.
                    if let Err(e) = self.shared.pending.delete(key_text).await {
                        tracing::warn!(connector = %self.label(), key = %key, error = %e, "cannot clear a superseded pending event");
                    }
                    return;
                }
            }
            if self.is_parked(&key) {
                if !entry.held {
                    self.divert_parked(&key, work).await;
                }
                return;
            }
            self.submit(key, work);
        }
    }

    /// Pending events whose references are all in the ledger now (written by this or another
    /// replica) are tried again.
    async fn redrive_resolved_pending(&mut self) {
        let ready: Vec<String> = self
            .shared
            .pending
            .snapshot()
            .into_iter()
            .filter_map(|(k, v)| {
                let p: PendingEntry = serde_json::from_slice(&v).ok()?;
                let resolved = if p.held {
                    // Released once `dlq redrive` (or an operator) un-parks the key.
                    self.shared.parked.get(&k).is_none()
                } else {
                    p.missing
                        .iter()
                        .all(|m| EntityKey::parse(m).ok().and_then(|mk| self.shared.ledger.live_id(&mk)).is_some())
                };
                let busy = EntityKey::parse(&k).ok().and_then(|ek| self.slots.get(&ek)).is_some();
                (resolved && !busy).then_some(k)
            })
            .collect();
        for k in ready {
            self.redrive_pending(&k).await;
        }
        self.shared.metrics.pending_references.with_label_values(&[self.label()]).set(self.shared.pending.len() as i64);
        self.shared.metrics.parked_keys.with_label_values(&[self.label()]).set(self.shared.parked.len() as i64);
        self.shared.metrics.ledger_entries.with_label_values(&[self.label()]).set(self.shared.ledger.len() as i64);
    }

    /// Pending events past the deadline go to the DLQ (reason `missing_reference`).
    async fn expire_pending(&mut self) {
        let deadline = chrono::Duration::from_std(self.shared.config.pending_deadline).unwrap_or(chrono::Duration::MAX);
        let now = chrono::Utc::now();
        for (k, v) in self.shared.pending.snapshot() {
            let Ok(p) = serde_json::from_slice::<PendingEntry>(&v) else { continue };
            if p.held || now - p.since < deadline {
                continue;
            }
            if EntityKey::parse(&k).ok().and_then(|ek| self.slots.get(&ek)).is_some() {
                continue;
            }
            let why = DlqReason {
                code: "missing_reference".into(),
                error: format!("referenced entities never appeared: {}", p.missing.join(", ")),
                status: None,
                attempts: 0,
            };
            self.shared.metrics.dlq_events.with_label_values(&[self.label(), "missing_reference"]).inc();
            if self.dead_letter(&p.raw, &why).await
                && let Err(e) = self.shared.pending.delete(&k).await
            {
                tracing::warn!(connector = %self.label(), key = %k, error = %e, "cannot clear an expired pending event");
            }
        }
    }

    /// Publishes to the DLQ, retrying with backoff for about a minute. When the broker still refuses,
    /// the loop stops with an error (the process exits and the event is redelivered from the last
    /// commit): an event that can neither be applied nor dead-lettered is never skipped.
    async fn dead_letter(&mut self, raw: &RawMessage, why: &DlqReason) -> bool {
        let msg = dlq_message(&self.shared.dlq_topic, &self.shared.name, raw, why);
        let mut delay = Duration::from_millis(100);
        for _ in 0..20 {
            match self.shared.publisher.publish(msg.clone()).await {
                Ok(_) => return true,
                Err(e) => {
                    tracing::warn!(connector = %self.label(), error = %e, "DLQ publish failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.broken = Some(format!(
            "the DLQ topic {} refuses writes; stopping so the event is redelivered",
            self.shared.dlq_topic
        ));
        false
    }

    async fn commit(&mut self, sub: &dyn Subscriber) {
        for (tp, offset) in self.tracker.to_commit() {
            match sub.commit(&tp.topic, tp.partition, offset).await {
                Ok(()) => self.tracker.committed(&tp, offset),
                Err(e) => {
                    tracing::warn!(connector = %self.label(), topic = %tp.topic, partition = tp.partition, error = %e, "commit failed; will retry")
                }
            }
        }
    }

    async fn on_revoked(&mut self, sub: &dyn Subscriber, tps: Vec<TopicPartition>, shutdown: &CancellationToken) {
        tracing::info!(connector = %self.label(), count = tps.len(), partitions = %TopicPartition::summary(&tps), "partitions revoked; finishing in-flight work");
        // Work in flight is idempotent, but its commit belongs to this member: finish it first.
        let grace = self.shared.config.shutdown_grace;
        let deadline = Instant::now() + grace;
        while !self.tasks.is_empty() && Instant::now() < deadline && !shutdown.is_cancelled() {
            match tokio::time::timeout(deadline - Instant::now(), self.tasks.join_next()).await {
                Ok(Some(Ok((key, work, finish)))) => {
                    if let Err(e) = self.finish(key, work, finish).await {
                        tracing::error!(connector = %self.label(), error = %e, "error while finishing work on revoke");
                    }
                }
                _ => break,
            }
        }
        self.commit(sub).await;
        let revoked: HashSet<&TopicPartition> = tps.iter().collect();
        let before = self.slots.len();
        self.slots.retain(|_, slot| {
            slot.running.is_some()
                || slot.queued.as_ref().is_some_and(|w| w.offsets.iter().all(|(tp, _)| !revoked.contains(tp)))
        });
        let dropped = before - self.slots.len();
        self.buffered = self.slots.values().filter(|s| s.queued.is_some()).count();
        for tp in &tps {
            self.tracker.forget(tp);
        }
        if dropped > 0 {
            tracing::info!(connector = %self.label(), dropped, "queued events of revoked partitions left to the new owner");
        }
    }

    /// Waits for in-flight work up to `grace`; what is left is abandoned (not committed).
    async fn drain(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while !self.tasks.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.tasks.join_next()).await {
                Ok(Some(Ok((key, work, finish)))) => {
                    if let Err(e) = self.finish(key, work, finish).await {
                        tracing::error!(connector = %self.label(), error = %e, "error while draining");
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::error!(connector = %self.label(), error = %e, "worker panicked while draining")
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(connector = %self.label(), abandoned = self.tasks.len(), "grace period over; abandoning in-flight work (it will be redelivered)");
                    self.tasks.abort_all();
                    break;
                }
            }
        }
    }

    /// Consumer lag from the broker into the metric and `/status`.
    async fn read_lag(&self, sub: &dyn Subscriber) {
        let lag = sub.lag().await;
        for (tp, n) in &lag {
            let partition = tp.partition.to_string();
            self.shared.metrics.consumer_lag.with_label_values(&[self.label(), &tp.topic, &partition]).set(*n);
        }
        self.status.lock().lag =
            lag.into_iter().map(|(tp, n)| (format!("{}[{}]", tp.topic, tp.partition), n)).collect();
    }

    fn publish_status(&self, sub: &dyn Subscriber) {
        let mut s = self.status.lock();
        s.partitions = sub.assignment().iter().map(|tp| format!("{}[{}]", tp.topic, tp.partition)).collect();
        s.in_flight = self.in_flight;
        s.buffered = self.buffered;
        s.uncommitted = self
            .tracker
            .uncommitted()
            .into_iter()
            .map(|(tp, n)| (format!("{}[{}]", tp.topic, tp.partition), n))
            .collect();
        s.pending = self.shared.pending.len();
        s.parked = self.shared.parked.len();
        s.parked_keys = self
            .shared
            .parked
            .snapshot()
            .into_iter()
            .take(50)
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
    }
}

/// Applies one work item and records its effect in the ledger, retrying retryable failures with
/// capped exponential backoff until they succeed or the process shuts down.
async fn work_on(shared: &Shared, work: &Work) -> Finish {
    let priority = if work.event.kind() == dastra_connect_core::event::EntityKind::DataSubjectRequest
        || work.event.op == dastra_connect_core::event::Op::Delete
    {
        Priority::Urgent
    } else if work.event.data.is_snapshot() {
        Priority::Backfill
    } else {
        Priority::Live
    };
    let client = shared.client.with_priority(priority);
    let ctx = ApplyCtx { client: &client, ledger: &shared.ledger, policy: &shared.config.policy };
    let mut attempts = 0u32;
    let mut delay = Duration::from_millis(200);
    loop {
        attempts += 1;
        let result = apply(&ctx, &work.event).await;
        let result = match result {
            Ok(outcome) => record(shared, &work.event.key, outcome).await,
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.class() == ErrorClass::Retryable => {
                tracing::warn!(connector = %shared.name, key = %work.event.key, attempts, code = e.code(), error = %e, "apply failed; retrying");
                tokio::time::sleep(jitter(delay)).await;
                delay = (delay * 2).min(shared.config.max_backoff);
            }
            other => return Finish::Done(other, attempts),
        }
    }
}

/// Stores the outcome's ledger entry (durably) before the offsets may be released.
async fn record(shared: &Shared, key: &EntityKey, outcome: Outcome) -> Result<Outcome, ApplyError> {
    let entry = match &outcome {
        Outcome::Applied { entry, .. } => Some(entry),
        Outcome::Skipped { entry, .. } => entry.as_ref(),
        Outcome::Pending { .. } => None,
    };
    if let Some(entry) = entry {
        shared.ledger.put(key, entry).await?;
    }
    Ok(outcome)
}

fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    let ms = d.as_millis().max(1) as u64;
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}
