//! `dastra-connect plan`: the bill before paying it. Runs the sink's own planning — decode, the
//! driver's coalescing, [`super::apply::apply`] against a copy of the ledger — over a backlog read
//! from the bus, through a [`DastraClient::dry_run`] client that sends nothing, and counts the
//! requests the sink would send, per entity type and per kind, and the time they take under the
//! configured quota windows ([`QuotaLimiter::drain_time`]).
//!
//! Nothing is written: the ledger is copied into memory first (the sink's apply records intents
//! and entries in that copy only), and the backlog is read by the caller without committing.
//!
//! What is an estimate, and why (also printed with every plan, see [`ESTIMATES`]):
//! - Dastra's answers (see [`crate::client::dry_run`]): lookups find what the ledger knows Dastra
//!   holds and nothing else, an area exists, no entity was deleted in Dastra by a person.
//! - Coalescing depends on timing in the real sink. The plan models a backlog consumed faster than
//!   Dastra answers (the case under the quota): an event of an idle key starts at once while fewer
//!   than `max_in_flight` started events are still sending; every later event of a key waits in
//!   its slot, where the newest replaces it.
//! - Batching (`batch_window`) likewise: a delete, an archive or a patch joins the identical one of
//!   a key started fewer than `max_in_flight` keys before it (a request waiting for the quota behind
//!   the others in flight), up to `batch_max` members.
//! - The time is the quota's: Dastra answering instantly, no 429, no retry.
//! - Events already waiting in the sink's pending store (for a reference) are planned first, as
//!   the sink holds them before consuming; those held behind a parked key are not.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dastra_connect_core::Classify;
use dastra_connect_core::bus::kafka::BacklogStart;
use dastra_connect_core::bus::{BusConfig, InboundMessage};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{ChangeEvent, EntityKey};
use dastra_connect_core::state;
use dastra_connect_core::state::{MemoryStore, StateStore};
use serde::Serialize;

use super::apply::{ApplyCtx, Outcome, RequestBatcher, apply};
use super::config::DastraSinkConfig;
use super::driver::priority_of;
use super::ledger::{EntryState, Ledger, decode_entry};
use super::order;
use crate::client::dry_run::DryRun;
use crate::quota::Priority;
use crate::{DastraClient, QuotaLimiter};

/// The four kinds of request the plan counts.
pub const REQUEST_KINDS: [&str; 4] = ["create", "patch", "delete", "lookup"];

/// The kind of a request by its method and route template (the same for the plan's dry-run
/// requests and the sink's `dastra_connect_dastra_requests_total{method, route}`): `GET` →
/// `lookup`; `DELETE`, archive and batch delete → `delete`; `PATCH`, `PUT`, restore, workflow
/// moves and DSR closes → `patch`; any other `POST` → `create` (a
/// `POST DataProcessingRelationships/{id}` that rewrites an existing link counts as a create).
pub fn request_kind(method: &str, route: &str) -> &'static str {
    match method {
        "GET" => "lookup",
        "DELETE" => "delete",
        "PATCH" | "PUT" => "patch",
        _ if route.contains("/archive") || route.ends_with("/batch-archive") || route.ends_with("/batch-delete") => {
            "delete"
        }
        _ if route.contains("/restore")
            || route.ends_with("/batch-restore")
            || route.ends_with("/workflow")
            || route.ends_with("/close") =>
        {
            "patch"
        }
        _ => "create",
    }
}

/// What the backlog holds and what the sink does with it without sending anything.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventCounts {
    /// Messages read.
    pub messages: u64,
    /// Events decoded (the others go to the DLQ undecoded).
    pub decoded: u64,
    /// Undecodable or oversized messages (DLQ, no request).
    pub undecodable: u64,
    /// Tombstones (nothing to do).
    pub tombstones: u64,
    /// Events of keys parked by an earlier failure (DLQ or wait, no request).
    pub parked: u64,
    /// Events already waiting in the sink's pending store for a referenced entity, planned with
    /// the backlog (not counted in `messages`).
    pub pending_store: u64,
    /// Events applied after coalescing (re-driven pending events counted again).
    pub applied: u64,
}

/// Requests per kind.
pub type ByKind = BTreeMap<&'static str, u64>;

/// The plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Events of the backlog.
    pub events: EventCounts,
    /// Predicted requests per entity type, per kind.
    pub by_entity: BTreeMap<&'static str, ByKind>,
    /// Predicted requests per kind.
    pub by_kind: ByKind,
    /// Predicted requests per route (`METHOD /route/template`).
    pub by_route: BTreeMap<String, u64>,
    /// Predicted requests in total.
    pub requests: u64,
    /// Time they take under the configured quota windows, Dastra answering instantly (seconds).
    pub seconds: Option<f64>,
    /// The quota windows the time is computed with, e.g. `500/60s + 1s margin`.
    pub quota: String,
    /// What coalescing and skipping save.
    pub saved: Savings,
    /// Events that would end in the DLQ, by reason code.
    pub dlq: BTreeMap<String, u64>,
    /// Events still waiting for a referenced entity at the end of the backlog.
    pub waiting_for_references: u64,
    /// What the figures assume.
    pub estimates: Vec<&'static str>,
}

/// What coalescing and skipping save.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Savings {
    /// Events replaced by a newer event of their key before being applied.
    pub coalesced_events: u64,
    /// Requests the same backlog would need with every event applied in turn (no coalescing).
    pub requests_without_coalescing: u64,
    /// `requests_without_coalescing − requests`.
    pub requests_saved_by_coalescing: u64,
    /// Events applied with no request, by reason (`stale`, `unchanged`, `cancelled`, `ignored`).
    pub skipped: BTreeMap<&'static str, u64>,
}

/// The assumptions printed with every plan.
pub const ESTIMATES: [&str; 5] = [
    "lookups find what the ledger knows Dastra holds (generic links by their ends) and nothing else (Dastra may hold records the ledger lost), and an area named by `areaRef` exists",
    "no entity was deleted in Dastra by a person since the ledger recorded it (each such PATCH would be followed by a POST)",
    "coalescing as in a backlog consumed faster than Dastra answers: with `read_ahead` on, a key's events are coalesced into its newest while at most `max_buffered` keys wait (the oldest starts when a new one comes); with it off, the first event of up to `max_in_flight` keys is applied at once and the later events of every key are coalesced into its newest",
    "time: under the quota windows with Dastra answering instantly, no 429 and no retry",
    "batching as in such a backlog: a delete, an archive or a patch joins the identical one (same type, same operations) of a key started fewer than `max_in_flight` keys before it, up to `batch_max` members; Dastra refuses no batch",
];

struct Sim {
    by_entity: BTreeMap<&'static str, ByKind>,
    by_route: BTreeMap<String, u64>,
    requests: u64,
    skipped: BTreeMap<&'static str, u64>,
    dlq: BTreeMap<String, u64>,
    waiting: u64,
    /// Events applied (after coalescing).
    applied: u64,
    /// Events replaced by a newer one of their key while queued.
    coalesced: u64,
    /// key → its newest event waiting for references.
    pending: HashMap<EntityKey, ChangeEvent>,
    /// missing key → keys waiting for it.
    waiting_on: HashMap<String, BTreeSet<EntityKey>>,
    /// Keys whose event failed for good (parked).
    failed: HashSet<EntityKey>,
}

/// Which part of the change topics a plan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BacklogRange {
    /// What the sink has not consumed yet: from its consumer group's committed offsets (read, never
    /// written) to the end — the bill of the sink's next run.
    Uncommitted,
    /// Everything on the topics, as a new sink (or a replay) would read it.
    FromBeginning,
    /// One change topic, from the first message at or after a time.
    Since {
        /// The topic (`dastra.changes.asset`…).
        topic: String,
        /// The time.
        time: chrono::DateTime<chrono::Utc>,
    },
}

/// Reads the backlog of the sink `name` (configured by `config`) from `bus` without committing or
/// joining its consumer group, copies its ledger and parked keys without writing them, and plans
/// it (see [`plan`]). What `dastra-connect plan` runs.
pub async fn plan_backlog(
    bus: &BusConfig,
    topics: &Topics,
    name: &str,
    config: &DastraSinkConfig,
    codec: &Codec,
    range: &BacklogRange,
) -> anyhow::Result<Plan> {
    let changes: Vec<String> = config.kinds().into_iter().map(|k| topics.changes(k)).collect();
    let (read, start) = match range {
        BacklogRange::Uncommitted => {
            // The sink's consumer group (Kafka) or durable consumers' prefix (NATS), as
            // `BusConfig::subscriber` names them.
            let group = match bus {
                BusConfig::Kafka(k) => k.group_id.clone(),
                BusConfig::Nats(n) => n.group_id.clone(),
            };
            (changes, BacklogStart::Committed(group.unwrap_or_else(|| name.to_owned())))
        }
        BacklogRange::FromBeginning => (changes, BacklogStart::Beginning),
        BacklogRange::Since { topic, time } => {
            if !changes.contains(topic) {
                anyhow::bail!(
                    "--topic {topic}: not a change topic this sink consumes (it reads {})",
                    changes.join(", ")
                );
            }
            (vec![topic.clone()], BacklogStart::Since(time.timestamp_millis()))
        }
    };
    bus.validate()?;
    let messages = match bus {
        BusConfig::Kafka(k) => dastra_connect_core::bus::kafka::read_backlog(k, &read, start).await?,
        BusConfig::Nats(n) => dastra_connect_core::bus::nats::read_backlog(n, &read, &start).await?,
    };
    let [ledger_ns, pending_ns, parked_ns] = super::store_names_of(topics, name);
    let ledger = state::open(bus, &ledger_ns).await?;
    let pending = state::open(bus, &pending_ns).await?;
    let parked = state::open(bus, &parked_ns).await?;
    let stores = SinkStores { ledger: ledger.as_ref(), pending: pending.as_ref(), parked: parked.as_ref() };
    plan(config, codec, stores, &messages).await
}

/// The sink's state stores a plan reads (never writes).
pub struct SinkStores<'a> {
    /// The ledger (copied to memory before planning).
    pub ledger: &'a dyn StateStore,
    /// Events waiting for references: planned before the backlog, as the sink re-drives them.
    pub pending: &'a dyn StateStore,
    /// Parked keys: their events are counted, not planned.
    pub parked: &'a dyn StateStore,
}

/// Plans `messages` (a backlog read from the sink's change topics) for the sink configured by
/// `config`, with its state `stores`.
pub async fn plan(
    config: &DastraSinkConfig,
    codec: &Codec,
    stores: SinkStores<'_>,
    messages: &[InboundMessage],
) -> anyhow::Result<Plan> {
    let SinkStores { ledger, pending, parked } = stores;
    let waiting = super::driver::pending_messages(pending);
    let mut counts =
        EventCounts { messages: messages.len() as u64, pending_store: waiting.len() as u64, ..EventCounts::default() };
    // The order the sink meets them in interleaves partitions as the broker delivers them; the
    // plan takes publication order (the messages' timestamps), so that the same backlog always
    // gives the same plan.
    let mut messages: Vec<&InboundMessage> = messages.iter().collect();
    messages.sort_by(|a, b| {
        (a.timestamp, &a.topic, a.partition, a.offset).cmp(&(b.timestamp, &b.topic, b.partition, b.offset))
    });
    // The waiting events first: the sink holds them before it consumes anything.
    let messages = waiting.iter().chain(messages);
    let mut dlq: BTreeMap<String, u64> = BTreeMap::new();
    let mut events = Vec::new();
    for m in messages {
        let Some(value) = m.payload.as_ref() else {
            counts.tombstones += 1;
            continue;
        };
        if value.len() > config.max_event_bytes {
            counts.undecodable += 1;
            *dlq.entry("too_large".into()).or_default() += 1;
            continue;
        }
        match ChangeEvent::from_parts(&m.headers, value, codec).await {
            Ok(e) => {
                counts.decoded += 1;
                if parked.get(e.key.as_str()).is_some() {
                    counts.parked += 1;
                } else {
                    events.push(e);
                }
            }
            Err(e) => {
                counts.undecodable += 1;
                *dlq.entry(e.code().to_owned()).or_default() += 1;
            }
        }
    }
    let base = ledger.snapshot();
    let sim = simulate(config, &base, &events, true).await?;
    let plain = simulate(config, &base, &events, false).await?;
    counts.applied = sim.applied;
    for (code, n) in &sim.dlq {
        *dlq.entry(code.clone()).or_default() += n;
    }
    let mut by_kind: ByKind = REQUEST_KINDS.iter().map(|k| (*k, 0)).collect();
    for kinds in sim.by_entity.values() {
        for (k, n) in kinds {
            *by_kind.entry(k).or_default() += n;
        }
    }
    let q = &config.dastra.quota;
    let quota = q
        .windows
        .iter()
        .map(|w| format!("{}/{}", w.limit, humantime::format_duration(w.per)))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Plan {
        events: counts,
        by_entity: sim.by_entity,
        by_kind,
        by_route: sim.by_route,
        requests: sim.requests,
        seconds: QuotaLimiter::drain_time(q, sim.requests).map(|d| d.as_secs_f64()),
        quota: format!("{quota} (+{} margin, burst {})", humantime::format_duration(q.safety_margin), q.burst),
        saved: Savings {
            coalesced_events: sim.coalesced,
            requests_without_coalescing: plain.requests,
            requests_saved_by_coalescing: plain.requests.saturating_sub(sim.requests),
            skipped: sim.skipped,
        },
        dlq,
        waiting_for_references: sim.waiting,
        estimates: ESTIMATES.to_vec(),
    })
}

/// Applies the backlog's `events` with the sink's `apply` through a dry-run client, on a copy of
/// `base`. With `coalesce`, as the driver does with a backlog consumed faster than Dastra answers:
/// an event waits in its key's slot, where a newer one replaces it ([`order::replaces_queued`]);
/// with `read_ahead` on, a key starts when `max_buffered` keys wait and another comes (the oldest
/// first), the others once the backlog is consumed, in the order their keys were queued; with it
/// off, an event whose key is idle starts at once while fewer than `in_flight` started events are
/// still sending (an event that sends nothing frees its place at once). Without `coalesce`, every
/// event is applied in turn. Pending events are re-driven when an entity they wait for is written.
async fn simulate(
    config: &DastraSinkConfig,
    base: &BTreeMap<String, Bytes>,
    events: &[ChangeEvent],
    coalesce: bool,
) -> anyhow::Result<Sim> {
    let store = Arc::new(MemoryStore::new("plan"));
    store.put_batch(base.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect()).await?;
    let ledger = Ledger::new(store);
    let (client, dry): (DastraClient, DryRun) = DastraClient::dry_run(&config.dastra)?;
    // What the ledger knows Dastra holds and a lookup may be asked for: generic links.
    for (k, v) in base {
        if k.starts_with("aux:") {
            continue;
        }
        if let Ok(entry) = decode_entry(v)
            && entry.state == EntryState::Live
            && entry.links.get("route").map(String::as_str) == Some("generic")
        {
            dry.know_generic_link(entry.id.as_deref(), &entry.links);
        }
    }
    // Object-store attachments are not fetched in a plan (see `content::fetch`).
    // Batching as the sink does it among the keys started together (not in the plain count).
    let batcher = (coalesce && !config.batch_window.is_zero())
        .then(|| RequestBatcher::planning(config.batch_max, config.max_in_flight));
    // Each event's requests in its quota class; without lanes the keys start in read order, one
    // class for the batching span.
    let class_of = |e: &ChangeEvent| if config.priority_lanes { priority_of(e) } else { Priority::Live };
    let mut sim = Sim {
        by_entity: BTreeMap::new(),
        by_route: BTreeMap::new(),
        requests: 0,
        skipped: BTreeMap::new(),
        dlq: BTreeMap::new(),
        waiting: 0,
        applied: 0,
        coalesced: 0,
        pending: HashMap::new(),
        waiting_on: HashMap::new(),
        failed: HashSet::new(),
    };
    let in_flight = if coalesce { config.max_in_flight.max(1) } else { usize::MAX };
    // With read-ahead (`read_ahead` > 0) the driver reads a backlog before starting its keys: every
    // event waits in its key's slot; a key starts when `max_buffered` keys wait and a new one
    // comes, or once the backlog is consumed. Without it, the first events of up to `in_flight`
    // keys start at once and hold their places while Dastra is slower than the backlog is read.
    let reads_ahead = coalesce && !config.read_ahead.is_zero();
    let window = config.max_buffered.max(1);
    let mut running: HashSet<EntityKey> = HashSet::new();
    let mut queued: HashMap<EntityKey, ChangeEvent> = HashMap::new();
    let mut queue_order: VecDeque<EntityKey> = VecDeque::new();
    let mut inputs: VecDeque<ChangeEvent> = events.iter().cloned().collect();
    loop {
        // The next event to apply, if any now; `None` reads on.
        let to_run: Option<(ChangeEvent, bool)> = match inputs.pop_front() {
            None => {
                // The backlog is consumed: what started has finished; the queued events run.
                running.clear();
                match queue_order.pop_front() {
                    Some(k) => queued.remove(&k).map(|e| (e, false)),
                    None => break,
                }
            }
            Some(event) if coalesce && (running.contains(&event.key) || queued.contains_key(&event.key)) => {
                match queued.get_mut(&event.key) {
                    Some(q) => {
                        sim.coalesced += 1;
                        if order::replaces_queued(&event.sequence, &q.sequence) {
                            *q = event;
                        }
                    }
                    None => {
                        queue_order.push_back(event.key.clone());
                        queued.insert(event.key.clone(), event);
                    }
                }
                None
            }
            Some(event) if reads_ahead => {
                // The window is full: its oldest key starts to make room.
                let oldest = if queued.len() >= window {
                    std::iter::from_fn(|| queue_order.pop_front()).find_map(|k| queued.remove(&k))
                } else {
                    None
                };
                queue_order.push_back(event.key.clone());
                queued.insert(event.key.clone(), event);
                oldest.map(|e| (e, false))
            }
            Some(event) if running.len() >= in_flight => {
                queue_order.push_back(event.key.clone());
                queued.insert(event.key.clone(), event);
                None
            }
            Some(event) => Some((event, coalesce)),
        };
        let Some((event, holds_place)) = to_run else { continue };
        let class = class_of(&event);
        let client = client.with_priority(class);
        let (sent, woken) =
            sim.run(&plan_ctx(&client, &ledger, config, batcher.as_ref()), &dry, &ledger, &event).await?;
        if sent > 0
            && let Some(b) = &batcher
        {
            b.key_started(class);
        }
        if holds_place && sent > 0 {
            running.insert(event.key.clone());
        }
        inputs.extend(woken);
    }
    sim.waiting = sim.pending.len() as u64;
    // A single request others joined is sent on the batch route.
    for (single, batch, n) in batcher.map(|b| b.batched_routes()).unwrap_or_default() {
        if let Some(c) = sim.by_route.get_mut(single) {
            *c = c.saturating_sub(n);
        }
        *sim.by_route.entry(batch.to_owned()).or_default() += n;
    }
    Ok(sim)
}

/// The apply context of one planned event (its client carries the event's quota class).
fn plan_ctx<'a>(
    client: &'a DastraClient,
    ledger: &'a Ledger,
    config: &'a DastraSinkConfig,
    batcher: Option<&'a RequestBatcher>,
) -> ApplyCtx<'a> {
    ApplyCtx { client, ledger, policy: &config.policy, objects: None, batcher }
}

impl Sim {
    /// Applies one event (counting its requests) and records its effect; answers the requests sent
    /// and the pending events its write releases.
    async fn run(
        &mut self,
        ctx: &ApplyCtx<'_>,
        dry: &DryRun,
        ledger: &Ledger,
        event: &ChangeEvent,
    ) -> anyhow::Result<(u64, Vec<ChangeEvent>)> {
        if self.failed.contains(&event.key) {
            // Parked by an earlier failure of the key in this plan.
            *self.dlq.entry("parked".into()).or_default() += 1;
            return Ok((0, Vec::new()));
        }
        if let Some(p) = self.pending.get(&event.key)
            && !order::replaces_queued(&event.sequence, &p.sequence)
        {
            *self.skipped.entry("stale").or_default() += 1;
            return Ok((0, Vec::new()));
        }
        self.applied += 1;
        let result = apply(ctx, event).await;
        let sent = dry.take();
        // Requests that joined another key's batch: nothing more is sent, but the key is started.
        let joined = ctx.batcher.map_or(0, RequestBatcher::take_joined);
        let kind = event.kind().as_str();
        for r in &sent {
            *self.by_entity.entry(kind).or_default().entry(request_kind(r.method, r.route)).or_default() += 1;
            *self.by_route.entry(r.route.to_owned()).or_default() += 1;
        }
        self.requests += sent.len() as u64;
        let written = match result {
            Ok(Outcome::Applied { entry, .. }) => {
                ledger.put(&event.key, &entry).await?;
                true
            }
            Ok(Outcome::Skipped { reason, entry }) => {
                *self.skipped.entry(reason.as_str()).or_default() += 1;
                if let Some(entry) = entry {
                    ledger.put(&event.key, &entry).await?;
                }
                true
            }
            Ok(Outcome::Pending { missing }) => {
                for m in &missing {
                    self.waiting_on.entry(m.as_str().to_owned()).or_default().insert(event.key.clone());
                }
                self.pending.insert(event.key.clone(), event.clone());
                false
            }
            Err(e) => {
                *self.dlq.entry(e.code().to_owned()).or_default() += 1;
                self.failed.insert(event.key.clone());
                false
            }
        };
        let mut woken = Vec::new();
        if written {
            if self.pending.get(&event.key).is_some_and(|p| p.sequence == event.sequence) {
                self.pending.remove(&event.key);
            }
            if let Some(waiters) = self.waiting_on.remove(event.key.as_str()) {
                for w in waiters {
                    if let Some(p) = self.pending.remove(&w) {
                        woken.push(p);
                    }
                }
            }
        }
        Ok((sent.len() as u64 + joined, woken))
    }
}

impl Plan {
    /// The plan as a readable table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let e = &self.events;
        let _ = writeln!(
            s,
            "backlog: {} messages + {} waiting in the pending store, {} events decoded, {} undecodable, {} of parked keys; {} applied after coalescing",
            e.messages, e.pending_store, e.decoded, e.undecodable, e.parked, e.applied
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<14} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "entity", "create", "patch", "delete", "lookup", "total"
        );
        let row = |s: &mut String, name: &str, k: &ByKind| {
            let get = |n: &str| k.get(n).copied().unwrap_or(0);
            let total: u64 = k.values().sum();
            let _ = writeln!(
                s,
                "{name:<14} {:>8} {:>8} {:>8} {:>8} {total:>8}",
                get("create"),
                get("patch"),
                get("delete"),
                get("lookup")
            );
        };
        for (entity, k) in &self.by_entity {
            row(&mut s, entity, k);
        }
        row(&mut s, "total", &self.by_kind);
        let _ = writeln!(s);
        let time = match self.seconds {
            Some(t) => humantime::format_duration(Duration::from_secs(t.ceil() as u64)).to_string(),
            None => "never (a quota window allows 0 requests)".to_owned(),
        };
        let _ = writeln!(s, "predicted time under the quota {}: {time}", self.quota);
        let sv = &self.saved;
        let _ = writeln!(
            s,
            "coalescing: {} events replaced by a newer one; {} requests without coalescing, {} saved",
            sv.coalesced_events, sv.requests_without_coalescing, sv.requests_saved_by_coalescing
        );
        let skipped: Vec<String> = sv.skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(
            s,
            "skipped with no request: {}",
            if skipped.is_empty() { "none".to_owned() } else { skipped.join(", ") }
        );
        if !self.dlq.is_empty() {
            let d: Vec<String> = self.dlq.iter().map(|(r, n)| format!("{r} {n}")).collect();
            let _ = writeln!(s, "to the DLQ: {}", d.join(", "));
        }
        if self.waiting_for_references > 0 {
            let _ = writeln!(s, "still waiting for a referenced entity at the end: {}", self.waiting_for_references);
        }
        let _ = writeln!(s, "\nestimates (nothing was sent to Dastra):");
        for a in &self.estimates {
            let _ = writeln!(s, "  - {a}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_kinds_by_route() {
        assert_eq!(request_kind("POST", "POST /v1/ws/{workspaceId}/Assets"), "create");
        assert_eq!(request_kind("PATCH", "PATCH /v1/ws/{workspaceId}/Assets/{id}"), "patch");
        assert_eq!(request_kind("POST", "POST /v1/ws/{workspaceId}/Contracts/archive/{id}"), "delete");
        assert_eq!(request_kind("POST", "POST /v1/ws/{workspaceId}/DataProcessings/archive"), "delete");
        assert_eq!(request_kind("POST", "POST /v1/ws/{workspaceId}/Tasks/batch-archive"), "delete");
        assert_eq!(request_kind("POST", "POST /v1/ws/{workspaceId}/Tasks/{id}/archive"), "delete");
        assert_eq!(request_kind("POST", "POST /v1/ws/{workspaceId}/DataProcessings/restore"), "patch");
        assert_eq!(request_kind("POST", "POST /v1/ws/{workspaceId}/Tasks/batch-restore"), "patch");
        assert_eq!(request_kind("POST", "POST /v1/ws/{workspaceId}/Contracts/restore/{id}"), "patch");
        assert_eq!(request_kind("POST", "POST /v1/ws/{workspaceId}/DataSubjectRequests/workflow"), "patch");
        assert_eq!(request_kind("GET", "GET /v1/ws/{workspaceId}/Areas"), "lookup");
        assert_eq!(request_kind("DELETE", "DELETE /v1/ws/{workspaceId}/Assets/{id}"), "delete");
    }
}
