//! The sink's main loop, per process: consume → decode (bad input → DLQ) → coalesce by entity key →
//! apply (one key at a time, at most `max_in_flight` keys at once) → record in the ledger → release
//! the offsets → commit up to the watermark. An event that only repeats what Dastra holds (a
//! sweep's) is answered by the loop itself, without a worker, when nothing else of its key is queued
//! or running. Pending references and parked keys are kept in state
//! stores on the bus, so no event is ever dropped by a restart.
//!
//! This file is the algorithm (the loop, admission through [`super::order`], coalescing, starting
//! work, and what each worker's end leads to). Around it: [`work`] (one worker: apply, record,
//! retry), [`held`] (events that wait — for references or behind a parked key — and the DLQ), and
//! [`offsets`] (commit, revocation, drain, lag and status).

mod held;
mod offsets;
mod work;

pub(crate) use work::priority_of;

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

use super::apply::{ApplyCtx, ApplyError, Outcome, SkipReason, apply};
use super::config::{DastraSinkConfig, ParkedPolicy};
use super::dlq::{DlqReason, RawMessage, dlq_message};
use super::ledger::{Ledger, LedgerEntry};
use super::order;
use super::tracker::Tracker;
use crate::DastraClient;
use crate::quota::Priority;
use held::PendingEntry;
use work::{Finished, stages, work_on};

/// The events waiting for referenced entities in a sink's pending store (not those held behind a
/// parked key), as the messages they came in: the sink applies them once what they reference is
/// written, so `plan` counts them with the backlog.
pub fn pending_messages(pending: &dyn StateStore) -> Vec<InboundMessage> {
    held::waiting_messages(pending)
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The next durable generation of the ledger's write batch (never, when batching is off).
async fn next_flushed(rx: &mut Option<tokio::sync::watch::Receiver<u64>>) -> Option<u64> {
    match rx {
        Some(rx) => rx.changed().await.ok().map(|()| *rx.borrow_and_update()),
        None => std::future::pending().await,
    }
}

/// How long [`Driver::abandon_staged`] waits for the ledger batch write under way.
const ABANDON_WAIT: Duration = Duration::from_secs(30);

/// How often consumer lag is read from the broker (it costs requests to the brokers).
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Read-ahead (`read_ahead`): the events read so far count as the whole backlog when no other
/// came for this long. A bus client hands a backlog over in fetched batches with short gaps
/// between them; starting the waiting keys at the first gap would apply a key's first event before
/// its later ones in the next batch are read. A live event waits this long before its key starts.
pub(super) const READ_AHEAD_IDLE: Duration = Duration::from_millis(5);

/// One unit of work: the newest event of a key, the message it came in, and every offset it
/// stands for (coalesced older events included).
pub(super) struct Work {
    event: ChangeEvent,
    raw: RawMessage,
    offsets: Vec<(TopicPartition, i64)>,
    /// Re-driven from the pending set: its entry is removed once the work ends.
    from_pending: bool,
    /// Its quota class ([`priority_of`]), the highest of the events it stands for: a live change
    /// coalesced under a newer sweep event is still a live change waiting to be applied.
    class: Priority,
}

impl Work {
    fn new(event: ChangeEvent, raw: RawMessage, offsets: Vec<(TopicPartition, i64)>, from_pending: bool) -> Self {
        let class = priority_of(&event);
        Self { event, raw, offsets, from_pending, class }
    }
}

/// After this many starts from higher lanes while a lower lane had keys waiting, the lower lane
/// starts its oldest key: live and DSR work go first, but a backlog is never starved by them. With
/// all three lanes busy the live lane may take its turn first, so a backfill key waits at most
/// `LANE_BYPASS_LIMIT + 1` starts: one start in ten at least.
pub(super) const LANE_BYPASS_LIMIT: u32 = 8;

/// Keys whose queued work may start: one FIFO lane per quota class (the class of the work, see
/// [`Work::class`]), highest first, so that a live change or a DSR starts before the keys of a
/// sweep already read instead of behind them — bounded by [`LANE_BYPASS_LIMIT`]. With lanes off
/// (`priority_lanes: false`) every key goes to one FIFO lane, as before.
///
/// What this does not change: a key has one event applied at a time and at most one queued (its
/// newest; older ones are coalesced into it), so lanes only reorder *different* keys, whose
/// references were never ordered by arrival (a missing one waits in the pending set). Offsets are
/// released per event and committed up to the lowest one not yet done, whatever the start order.
///
/// A key's entry carries a ticket that its slot keeps; a key moved to a higher lane (a live change
/// coalesced into its queued sweep event) gets a new ticket, and the entry left in the lower lane
/// is stale and skipped when it comes up.
pub(super) struct ReadyKeys {
    lanes: [VecDeque<(EntityKey, u64)>; 3],
    /// Per lane: starts from a higher lane while this one had entries, since it last started one.
    passed: [u32; 3],
    tickets: u64,
    enabled: bool,
}

impl ReadyKeys {
    pub(super) fn new(enabled: bool) -> Self {
        Self { lanes: Default::default(), passed: [0; 3], tickets: 0, enabled }
    }

    /// Queues `key` in the lane of `class`; the returned ticket is the one entry of the key that
    /// is valid from now on.
    pub(super) fn push(&mut self, key: EntityKey, class: Priority) -> u64 {
        let lane = if self.enabled { class as usize } else { 0 };
        self.tickets += 1;
        self.lanes[lane].push_back((key, self.tickets));
        self.tickets
    }

    /// Whether no key waits (stale entries count as waiting: `pop` drops them).
    pub(super) fn is_empty(&self) -> bool {
        self.lanes.iter().all(VecDeque::is_empty)
    }

    /// The next key to start: the oldest of the highest non-empty lane, unless a lower lane was
    /// passed over [`LANE_BYPASS_LIMIT`] times. Entries `valid` refuses are dropped.
    pub(super) fn pop(&mut self, mut valid: impl FnMut(&EntityKey, u64) -> bool) -> Option<EntityKey> {
        loop {
            for (lane, passed) in self.lanes.iter().zip(self.passed.iter_mut()) {
                if lane.is_empty() {
                    *passed = 0;
                }
            }
            let lane = (0..3)
                .find(|&i| !self.lanes[i].is_empty() && self.passed[i] >= LANE_BYPASS_LIMIT)
                .or_else(|| (0..3).find(|&i| !self.lanes[i].is_empty()))?;
            let (key, ticket) = self.lanes[lane].pop_front()?;
            if !valid(&key, ticket) {
                continue;
            }
            self.passed[lane] = 0;
            for below in lane + 1..3 {
                if !self.lanes[below].is_empty() {
                    self.passed[below] += 1;
                }
            }
            return Some(key);
        }
    }
}

#[derive(Default)]
pub(super) struct Slot {
    /// The sequence of the event being applied now.
    running: Option<String>,
    /// The newest event waiting for the running one to end.
    queued: Option<Work>,
    /// The ticket of the key's valid entry in [`ReadyKeys`] (set while it waits there).
    ticket: Option<u64>,
}

/// What every worker of the sink uses: its config, the Dastra client and quota, the ledger, the
/// pending and parked stores, the DLQ publisher, the codec and the metrics. Immutable once built.
pub struct SinkServices {
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
    /// The bus-side object store attachments may name (NATS; `None` on Kafka).
    pub objects: Option<Arc<dyn crate::sink::apply::ObjectStore>>,
    /// Groups deletes and identical patches into Dastra's batch routes (`batch_window`).
    pub batcher: crate::sink::apply::RequestBatcher,
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
    /// While the ledger's batch writes keep failing: since when, how often, the last error
    /// (`null` while they succeed). Their events stay uncommitted meanwhile; after
    /// [`LEDGER_FAILING_NOT_READY_AFTER`] the sink reports itself not ready.
    pub ledger_writes_failing: Option<super::ledger::WriteFailure>,
}

/// How long the ledger's batch writes may fail without a success before the sink reports itself
/// not ready (`/readyz` 503, with the reason). One failed attempt is a blip the flusher's retry
/// (after 50 ms, doubling up to 5 s) absorbs; failing for this long, about six attempts in a row,
/// means the bus refuses the ledger's writes, and the sink makes no progress: its events stay
/// uncommitted and consuming pauses once `max_buffered` is reached.
pub const LEDGER_FAILING_NOT_READY_AFTER: Duration = Duration::from_secs(10);

/// Why the sink is not ready because of its ledger (see [`LEDGER_FAILING_NOT_READY_AFTER`]), if it
/// is not: what `/readyz` shows, read at each request. The sink registers it with
/// `Admin::ready_condition`.
pub fn ledger_not_ready(ledger: &Ledger) -> Option<String> {
    let f = ledger.write_failure().filter(|f| f.failing_for >= LEDGER_FAILING_NOT_READY_AFTER)?;
    Some(format!(
        "ledger writes failing for {}s ({} attempts; last error: {})",
        f.failing_for.as_secs(),
        f.attempts,
        f.error
    ))
}

/// The loop's state.
pub struct Driver {
    shared: Arc<SinkServices>,
    slots: HashMap<EntityKey, Slot>,
    ready: ReadyKeys,
    tracker: Tracker,
    tasks: JoinSet<(EntityKey, Work, Finished)>,
    in_flight: usize,
    buffered: usize,
    /// missing key → keys of pending events waiting for it.
    waiting_on: HashMap<String, HashSet<String>>,
    status: Arc<parking_lot::Mutex<SinkStatus>>,
    /// Whether the quota share was set once (the first assignment applies at once).
    share_set: bool,
    /// Set when the loop must stop with an error (e.g. the DLQ cannot be written).
    broken: Option<String>,
    /// The partitions this replica owns now: events held in the shared pending store are released
    /// only by the owner of their partition (another replica owns the others).
    owned: HashSet<TopicPartition>,
    /// Running workers: how to stop each, and the partition its event came in on.
    running: HashMap<EntityKey, (tokio::task::AbortHandle, TopicPartition)>,
    /// Offsets of events whose ledger entry is staged in the ledger's write batch, by the batch
    /// generation it is written in: released once that generation is durable.
    unflushed: VecDeque<(u64, Vec<(TopicPartition, i64)>)>,
    /// Offsets in `unflushed`: they count against `max_buffered`, so that a ledger store that
    /// stops taking writes pauses consuming instead of piling staged entries up in memory.
    unflushed_offsets: usize,
    /// Read-ahead (see [`Driver::reads_ahead`]): since when keys that could start wait because
    /// more events were ready to be read, and how many events were read meanwhile.
    holding_since: Option<Instant>,
    read_while_holding: usize,
    /// When the last event was read.
    last_read: Instant,
}

impl Driver {
    /// A driver over `shared`; `status` is updated for `/status`.
    pub fn new(shared: Arc<SinkServices>, status: Arc<parking_lot::Mutex<SinkStatus>>) -> Self {
        let lanes = shared.config.priority_lanes;
        let mut d = Self {
            shared,
            slots: HashMap::new(),
            ready: ReadyKeys::new(lanes),
            tracker: Tracker::default(),
            tasks: JoinSet::new(),
            in_flight: 0,
            buffered: 0,
            waiting_on: HashMap::new(),
            status,
            share_set: false,
            broken: None,
            owned: HashSet::new(),
            running: HashMap::new(),
            unflushed: VecDeque::new(),
            unflushed_offsets: 0,
            holding_since: None,
            read_while_holding: 0,
            last_read: Instant::now(),
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
        // Revoked partitions stay this replica's until their in-flight work is finished and
        // committed (`on_revoked`, then `handed_over`), so a new owner never starts on a key whose
        // create is still under way here.
        // The ledger's write batch is written by a task that lives as long as this loop: when the
        // loop is dropped without draining (a crash), staged entries are lost together with the
        // uncommitted offsets that stand for them.
        // If the staged entries cannot be made durable before partitions are given up, they are
        // abandoned instead (`abandon_staged`): the flusher ends and nothing staged here lands
        // after the hand-over.
        let failures = self.shared.metrics.ledger_batch_write_failures.with_label_values(&[&self.shared.name]);
        let _flusher = self.shared.ledger.flusher(move || failures.inc()).map(|f| AbortOnDrop(tokio::spawn(f)));
        let mut flushed = self.shared.ledger.flushed();
        let holds = sub.hold_revocations();
        tracing::debug!(connector = %self.label(), holds, "revocations held until hand-over");
        // When the waiting keys start (see `reads_ahead`).
        let start_at = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(start_at);
        let result = loop {
            if let Some(why) = self.broken.take() {
                break Err(anyhow::anyhow!(why));
            }
            let can_consume = self.buffered + self.unflushed_offsets < self.shared.config.max_buffered;
            let startable = self.startable();
            let reads_ahead = can_consume && startable && self.reads_ahead();
            let read = can_consume && (!startable || reads_ahead);
            if reads_ahead {
                let at = self.last_read + self.shared.config.read_ahead.min(READ_AHEAD_IDLE);
                if start_at.deadline().into_std() != at {
                    start_at.as_mut().reset(at.into());
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break Ok(()),
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    match joined {
                        Ok((id, (key, work, finish))) => {
                            if let Err(e) = self.finish(id, key, work, finish).await {
                                break Err(e);
                            }
                        }
                        // Abandoned on a revocation (see `on_revoked`).
                        Err(e) if e.is_cancelled() => {}
                        Err(e) => break Err(anyhow::anyhow!("sink worker panicked: {e}")),
                    }
                }
                Some(generation) = next_flushed(&mut flushed) => self.release_flushed(generation),
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
                event = sub.next_event(), if read => {
                    self.last_read = Instant::now();
                    if startable {
                        self.holding_since.get_or_insert(self.last_read);
                        self.read_while_holding += 1;
                    }
                    match event {
                        Ok(SubscriberEvent::Message(m)) => self.on_message(m).await,
                        Ok(SubscriberEvent::Assigned(tps)) => {
                            tracing::info!(connector = %self.label(), partitions = tps.len(), "partitions assigned");
                            // Nothing of the new partitions is applied before this replica has read
                            // what their previous owner wrote (intents, pending events, parks).
                            self.read_stores_to_end().await;
                            self.owned = sub.assignment().into_iter().collect();
                            self.reshare(sub.as_ref());
                            // Held events of the new partitions whose references appeared meanwhile.
                            self.redrive_resolved_pending().await;
                        }
                        Ok(SubscriberEvent::Revoked(tps)) => {
                            self.owned = sub.assignment().into_iter().collect();
                            self.on_revoked(sub.as_ref(), tps, &shutdown).await;
                            // The work on them is finished (or abandoned) and committed: now the
                            // group may give them to their new owners.
                            if let Err(e) = sub.handed_over() {
                                tracing::warn!(connector = %self.label(), error = %e, "handing revoked partitions over failed");
                            }
                            // A revocation of everything (Kafka's eager rebalance) is followed by a
                            // new assignment: the share stays until then. Dropping it to zero in
                            // between made the next assignment an "increase", phased in over a
                            // whole window — ten minutes of Dastra's long window with no request.
                            if !self.owned.is_empty() {
                                self.reshare(sub.as_ref());
                            }
                        }
                        Err(e) if e.class() == ErrorClass::Fatal => break Err(e.into()),
                        Err(e) => {
                            tracing::warn!(connector = %self.label(), error = %e, "consume failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
                // Reading ahead is over (or off): the waiting keys start at once ...
                _ = std::future::ready(()), if startable && !reads_ahead => self.start_ready(),
                // ... or once no event came for a moment (the backlog is read).
                _ = &mut start_at, if reads_ahead => self.start_ready(),
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
        if !self.share_set && owned == 0 {
            // Nothing yet (on NATS, every wanted partition still leased by another replica): the
            // first partitions are this process's start, not an increase to phase in.
            return;
        }
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
        let offset = m.offset;
        self.tracker.seen(&tp, offset);
        let Some(value) = m.payload.as_ref() else {
            // Tombstones on change topics carry no event (compaction leftovers): nothing to do.
            self.tracker.done(&tp, offset);
            return;
        };
        let refused = if value.len() > self.shared.config.max_event_bytes {
            Err(DlqReason {
                code: "too_large".into(),
                error: format!(
                    "event of {} bytes exceeds max_event_bytes ({})",
                    value.len(),
                    self.shared.config.max_event_bytes
                ),
                status: None,
                attempts: 0,
            })
        } else {
            ChangeEvent::from_parts(&m.headers, value, &self.shared.codec).await.map_err(|e| DlqReason {
                code: e.code().to_owned(),
                error: e.to_string(),
                status: None,
                attempts: 0,
            })
        };
        let redriven =
            m.headers.iter().any(|(k, v)| k == super::dlq::H_REDRIVE_REASON && v.as_slice() != b"parked".as_slice());
        // The message is kept as it came (for the DLQ, the pending store, a park), taken over
        // without a copy once nothing else reads it.
        let raw = RawMessage::from_inbound(m);
        let event = match refused {
            Ok(e) => e,
            Err(why) => {
                self.shared.metrics.dlq_events.with_label_values(&[self.label(), &why.code]).inc();
                if self.dead_letter(&raw, &why).await {
                    self.tracker.done(&tp, offset);
                }
                return;
            }
        };
        let kind = event.kind().as_str();
        self.shared.metrics.events_consumed.with_label_values(&[self.label(), kind]).inc();
        let key = event.key.clone();

        let work = Work::new(event, raw, vec![(tp, offset)], false);
        let mut parked = self.is_parked(&key);
        let redriven_cause = parked && redriven;
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
        let current = self.shared.ledger.get(&key);
        if self.superseded(&key, &work, order::Origin::Bus, current.as_ref()) {
            return;
        }
        if parked {
            self.divert_parked(&key, work).await;
            return;
        }
        if let Some(current) = current
            && self.answer_repeat(&key, &work, current).await
        {
            return;
        }
        self.submit(key, work);
    }

    /// Asks the ordering rule ([`order::admit`]) about `work`; a superseded event is counted as
    /// stale and its offsets are released. `InProgress` (a pending entry being applied now) is
    /// reported as superseded too: nothing is to be done with it here.
    fn superseded(
        &mut self,
        key: &EntityKey,
        work: &Work,
        origin: order::Origin,
        ledger: Option<&LedgerEntry>,
    ) -> bool {
        let pending = self.pending_entry(key.as_str());
        let known = order::KeyVersions {
            ledger,
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

    /// Releases the offsets of events whose ledger entry is in a batch up to `generation`, now
    /// durable.
    fn release_flushed(&mut self, generation: u64) {
        while self.unflushed.front().is_some_and(|(g, _)| *g <= generation) {
            if let Some((_, offsets)) = self.unflushed.pop_front() {
                self.unflushed_offsets -= offsets.len();
                for (tp, o) in offsets {
                    self.tracker.done(&tp, o);
                }
            }
        }
    }

    /// Gives up the ledger's staged entries that could not be made durable (see
    /// [`Ledger::abandon`]): the sink is about to give partitions up (a hand-over, the end of `run`),
    /// and a staged entry written after that could land over a newer entry of the new owner. Their
    /// offsets stay uncommitted, so their events are applied again by whoever owns the partition
    /// next; nothing is staged from now on, so the sink must stop (the caller sets `broken` or is
    /// already stopping).
    pub(super) async fn abandon_staged(&mut self) {
        // The attempt under way is bounded by the bus client's own timeouts; this only guards
        // against a store that never answers.
        let dropped = match tokio::time::timeout(ABANDON_WAIT, self.shared.ledger.abandon()).await {
            Ok(n) => n,
            Err(_) => {
                tracing::error!(connector = %self.label(), "a ledger batch write still under way after {}s: it may land after the partitions were given up", ABANDON_WAIT.as_secs());
                0
            }
        };
        let offsets = self.unflushed_offsets;
        self.unflushed.clear();
        self.unflushed_offsets = 0;
        tracing::warn!(connector = %self.label(), entries = dropped, offsets, "the ledger's staged writes were abandoned (never durable; their events are applied again by the next owner)");
    }

    /// Writes the ledger's staged entries now (within `grace`) and releases their offsets; false
    /// when the writes did not succeed in time (their offsets stay open).
    async fn flush_staged(&mut self, grace: Duration) -> bool {
        if self.unflushed.is_empty() || !self.shared.ledger.batching() {
            return true;
        }
        match tokio::time::timeout(grace, self.shared.ledger.flush()).await {
            Ok(generation) => {
                self.release_flushed(generation);
                true
            }
            Err(_) => false,
        }
    }

    fn release(&mut self, work: &Work) {
        for (tp, o) in &work.offsets {
            self.tracker.done(tp, *o);
        }
    }

    /// Whether a waiting key could start now.
    fn startable(&self) -> bool {
        self.broken.is_none() && self.in_flight < self.shared.config.max_in_flight && !self.ready.is_empty()
    }

    /// Whether the loop goes on reading while keys could start: for at most `read_ahead` and
    /// `max_buffered` events, and only while events keep coming (the keys start once none came for
    /// [`READ_AHEAD_IDLE`]). In a backlog the later events of a key read meanwhile are coalesced
    /// into its queued one, instead of costing a request each after its first one was applied; a
    /// live event, read as it arrives, starts after [`READ_AHEAD_IDLE`].
    fn reads_ahead(&self) -> bool {
        let limit = self.shared.config.read_ahead;
        !limit.is_zero()
            && self.read_while_holding < self.shared.config.max_buffered
            && self.holding_since.is_none_or(|t| t.elapsed() < limit)
    }

    /// Queues work for a key, coalescing with what is already queued; the loop starts it.
    fn submit(&mut self, key: EntityKey, work: Work) {
        let slot = self.slots.entry(key.clone()).or_default();
        match slot.queued.take() {
            Some(queued) => {
                // The lane the key waits in (if it is not running).
                let was = queued.class;
                let (mut newer, older) = if order::replaces_queued(&work.event.sequence, &queued.event.sequence) {
                    (work, queued)
                } else {
                    (queued, work)
                };
                newer.offsets.extend(older.offsets);
                newer.from_pending |= older.from_pending;
                // A live change coalesced into a queued sweep event moves the key to the live lane
                // (a new ticket: its entry in the lower lane is stale from now on).
                newer.class = newer.class.min(older.class);
                if newer.class < was && slot.running.is_none() {
                    slot.ticket = Some(self.ready.push(key.clone(), newer.class));
                }
                let kind = newer.event.kind().as_str();
                self.shared.metrics.events_skipped.with_label_values(&[&self.shared.name, kind, "coalesced"]).inc();
                self.shared.metrics.requests_saved.with_label_values(&[&self.shared.name, "coalesced"]).inc();
                slot.queued = Some(newer);
            }
            None => {
                let class = work.class;
                slot.queued = Some(work);
                self.buffered += 1;
                if slot.running.is_none() {
                    slot.ticket = Some(self.ready.push(key, class));
                }
            }
        }
    }

    fn start_ready(&mut self) {
        self.holding_since = None;
        self.read_while_holding = 0;
        // Stopping: nothing new starts (queued work stays uncommitted and is redelivered), so that
        // nothing can overtake the event whose failure stopped the loop.
        if self.broken.is_some() {
            return;
        }
        while self.in_flight < self.shared.config.max_in_flight {
            let slots = &self.slots;
            let Some(key) = self.ready.pop(|key, ticket| {
                slots.get(key).is_some_and(|s| s.ticket == Some(ticket) && s.running.is_none() && s.queued.is_some())
            }) else {
                break;
            };
            let Some(slot) = self.slots.get_mut(&key) else { continue };
            let Some(work) = slot.queued.take() else { continue };
            slot.ticket = None;
            slot.running = Some(work.event.sequence.clone());
            self.buffered -= 1;
            self.in_flight += 1;
            let shared = self.shared.clone();
            // One span per applied event, child of the source's trace (`traceparent` header), so a
            // trace runs from the source's poll through the bus to the Dastra requests.
            let span = tracing::info_span!("dastra_sink.apply", connector = %shared.name, key = %key, sequence = %work.event.sequence);
            if !span.is_disabled() {
                dastra_connect_core::telemetry::propagation::extract_into(&span, &work.raw.headers);
            }
            let partition = TopicPartition::new(work.raw.topic.clone(), work.raw.partition);
            let handle = self.tasks.spawn(
                {
                    let key = key.clone();
                    async move {
                        let finish = work_on(&shared, &work).await;
                        (key, work, finish)
                    }
                }
                .instrument(span),
            );
            self.running.insert(key, (handle, partition));
        }
    }

    async fn finish(
        &mut self,
        id: tokio::task::Id,
        key: EntityKey,
        work: Work,
        finished: Finished,
    ) -> anyhow::Result<()> {
        // Work abandoned on a revocation may still complete (its abort came too late): it was
        // already counted out and its offsets belong to the new owner.
        if self.running.get(&key).is_none_or(|(handle, _)| handle.id() != id) {
            tracing::debug!(connector = %self.label(), key = %key, "result of abandoned work ignored");
            return Ok(());
        }
        self.in_flight -= 1;
        self.running.remove(&key);
        let kind = work.event.kind().as_str();
        let label = self.shared.name.clone();
        let mut release = true;
        let Finished { result, attempts } = finished;
        match result {
            Ok(Outcome::Applied { .. }) => {
                let op = work.event.op.as_str();
                self.shared.metrics.events_applied.with_label_values(&[&label, kind, op]).inc();
                self.wake_waiting(&key).await;
                self.clear_pending(&key, &work).await;
            }
            Ok(Outcome::Skipped { reason, entry }) => {
                release = self.skipped(&key, &work, reason, entry).await;
            }
            Ok(Outcome::Pending { missing })
                if !order::may_replace_pending(
                    &work.event.sequence,
                    self.pending_entry(key.as_str()).and_then(|p| p.sequence).as_deref(),
                ) =>
            {
                // A newer event of the key already waits (it arrived while this one ran): it stays.
                let _ = missing;
                self.shared.metrics.events_skipped.with_label_values(&[&label, kind, "stale"]).inc();
            }
            Ok(Outcome::Pending { missing }) => {
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
            Err(e) => match e.class() {
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
            if let Some(queued) = &slot.queued {
                slot.ticket = Some(self.ready.push(key.clone(), queued.class));
            } else {
                self.slots.remove(&key);
            }
        }
        if let Some(queued) = diverted {
            self.divert_parked(&key, queued).await;
        }
        // The loop starts waiting keys (`reads_ahead`); a revocation's or the shutdown's drain
        // starts none.
        Ok(())
    }
}

impl Driver {
    /// The bookkeeping of a skip, from a worker or answered at once ([`Driver::on_message`]):
    /// counted; its ledger entry (the version moved on) staged in the ledger's write batch, whose
    /// durability releases the offsets later (answers false), or the offsets are the caller's to
    /// release now (true); then what waited on the key is woken and a pending event it replaces is
    /// cleared.
    async fn skipped(&mut self, key: &EntityKey, work: &Work, reason: SkipReason, entry: Option<LedgerEntry>) -> bool {
        let kind = work.event.kind().as_str();
        self.shared.metrics.events_skipped.with_label_values(&[&self.shared.name, kind, reason.as_str()]).inc();
        self.shared.metrics.requests_saved.with_label_values(&[&self.shared.name, reason.as_str()]).inc();
        let mut release = true;
        if let Some(entry) = entry.as_ref().filter(|_| stages(&self.shared, work))
            && let Some(generation) = self.shared.ledger.stage(key, entry)
        {
            // Released once the batch holding the entry is durable.
            self.unflushed_offsets += work.offsets.len();
            match self.unflushed.back_mut() {
                Some((g, offsets)) if *g == generation => offsets.extend(work.offsets.iter().cloned()),
                _ => self.unflushed.push_back((generation, work.offsets.clone())),
            }
            release = false;
        }
        self.wake_waiting(key).await;
        self.clear_pending(key, work).await;
        release
    }

    /// Answers at once, without a worker, an event that only repeats what Dastra already holds
    /// (a snapshot sweep's commonest event): the same outcome a worker's [`apply`] reaches, when
    /// nothing else of the key is queued or running and its entry goes to the ledger's write batch
    /// (a worker would leave it to the driver too). `current` is the key's ledger entry, already
    /// found not to make the event stale. Answers whether the event was handled.
    async fn answer_repeat(&mut self, key: &EntityKey, work: &Work, current: LedgerEntry) -> bool {
        if self.broken.is_some() || self.slots.contains_key(key) || !stages(&self.shared, work) {
            return false;
        }
        let ctx = ApplyCtx {
            client: &self.shared.client,
            ledger: &self.shared.ledger,
            policy: &self.shared.config.policy,
            objects: self.shared.objects.as_deref(),
            batcher: None,
        };
        let Some(Outcome::Skipped { reason, entry }) = super::apply::repeat(&ctx, &work.event, current) else {
            return false;
        };
        if self.skipped(key, work, reason, entry).await {
            self.release(work);
        }
        true
    }
}

#[cfg(test)]
mod lane_tests {
    use super::*;

    fn key(i: usize) -> EntityKey {
        EntityKey::parse(&format!("t:asset:{i}")).unwrap()
    }

    fn drain(ready: &mut ReadyKeys, valid: &HashMap<EntityKey, u64>) -> Vec<EntityKey> {
        std::iter::from_fn(|| ready.pop(|k, t| valid.get(k) == Some(&t))).collect()
    }

    #[test]
    fn live_keys_start_first_and_backfill_is_never_passed_over_more_than_the_limit() {
        let mut ready = ReadyKeys::new(true);
        let mut valid = HashMap::new();
        for i in 0..100 {
            valid.insert(key(i), ready.push(key(i), Priority::Backfill));
        }
        for i in 100..200 {
            valid.insert(key(i), ready.push(key(i), Priority::Live));
        }
        valid.insert(key(200), ready.push(key(200), Priority::Urgent));
        let order = drain(&mut ready, &valid);
        assert_eq!(order.len(), 201);
        assert_eq!(order[0], key(200), "the DSR first");
        // Then live, with one backfill key after every LANE_BYPASS_LIMIT live keys, FIFO within each lane.
        let limit = LANE_BYPASS_LIMIT as usize;
        let backfill_at: Vec<usize> =
            order.iter().enumerate().filter(|(_, k)| valid[*k] <= 100).map(|(i, _)| i).collect();
        assert_eq!(backfill_at[0], limit, "{backfill_at:?}");
        assert!(backfill_at.windows(2).take(10).all(|w| w[1] - w[0] == limit + 1), "{backfill_at:?}");
        let live: Vec<&EntityKey> = order.iter().filter(|k| (101..=200).contains(&valid[*k])).collect();
        assert_eq!(live, (100..200).map(key).collect::<Vec<_>>().iter().collect::<Vec<_>>());
        let backfill: Vec<&EntityKey> = order.iter().filter(|k| valid[*k] <= 100).collect();
        assert_eq!(backfill, (0..100).map(key).collect::<Vec<_>>().iter().collect::<Vec<_>>());
    }

    #[test]
    fn with_every_lane_busy_no_lane_waits_more_than_the_limit_plus_one_starts() {
        let mut ready = ReadyKeys::new(true);
        let mut valid = HashMap::new();
        let mut class = HashMap::new();
        for (n, c) in [Priority::Urgent, Priority::Live, Priority::Backfill].into_iter().enumerate() {
            for i in 0..200 {
                let k = key(1000 * n + i);
                valid.insert(k.clone(), ready.push(k.clone(), c));
                class.insert(k, c);
            }
        }
        let order = drain(&mut ready, &valid);
        assert_eq!(order.len(), 600);
        // While the urgent lane lasts (it is never passed over), the others each get their turn.
        let urgent_end = order.iter().rposition(|k| class[k] == Priority::Urgent).unwrap();
        for c in [Priority::Live, Priority::Backfill] {
            let at: Vec<usize> =
                order[..urgent_end].iter().enumerate().filter(|(_, k)| class[*k] == c).map(|(i, _)| i).collect();
            assert!(!at.is_empty(), "{c:?} starved");
            let longest = std::iter::once(at[0]).chain(at.windows(2).map(|w| w[1] - w[0] - 1)).max().unwrap();
            assert!(longest <= LANE_BYPASS_LIMIT as usize + 1, "{c:?} passed over {longest} times in a row: {at:?}");
        }
    }

    #[test]
    fn a_key_moved_to_a_higher_lane_starts_once() {
        let mut ready = ReadyKeys::new(true);
        let mut valid = HashMap::new();
        for i in 0..3 {
            valid.insert(key(i), ready.push(key(i), Priority::Backfill));
        }
        // Key 1 gets a live change coalesced into its queued sweep event.
        valid.insert(key(1), ready.push(key(1), Priority::Live));
        assert_eq!(drain(&mut ready, &valid), vec![key(1), key(0), key(2)]);
    }

    #[test]
    fn without_lanes_keys_start_in_the_order_they_were_read() {
        let mut ready = ReadyKeys::new(false);
        let mut valid = HashMap::new();
        let classes = [Priority::Backfill, Priority::Live, Priority::Urgent, Priority::Backfill];
        for (i, c) in classes.into_iter().enumerate() {
            valid.insert(key(i), ready.push(key(i), c));
        }
        assert_eq!(drain(&mut ready, &valid), (0..4).map(key).collect::<Vec<_>>());
    }
}
