//! [`SourceEngine`]: drives a [`SourceSystem`] — incremental polls page by page, explicit deletes,
//! scheduled snapshot sweeps — mapping records with jq, publishing acknowledged batches and only then
//! checkpointing. See the module doc of [`super`] for the guarantees.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::SourceError;
use super::cursor::{Checkpoint, Cursor};
use super::dlq::{Rejected, record_message};
use super::known::{KnownKeys, Origin};
use super::mapping::{Mapping, MappingError};
use super::progress::Progress;
use super::settings::SourceSettings;
use crate::bus::{OutboundMessage, Publisher, TopicSpec};
use crate::connector::ConnectorContext;
use crate::event::{ChangeEvent, EntityKey, EntityKind, Payload, sequence_from_time};
use crate::state::{self, StateStore};
use crate::{Classify, ErrorClass};

/// A record read from the source system.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// Its id in the system (ServiceNow `sys_id`).
    pub id: String,
    /// Last modification time (the cursor field).
    pub updated: DateTime<Utc>,
    /// Modification counter (ServiceNow `sys_mod_count`): the tie-breaker of the event sequence.
    pub version: u64,
    /// The record as the mapping sees it.
    pub body: Value,
}

/// A record the system reports as deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedRecord {
    /// Id of the deleted record.
    pub id: String,
    /// When it was deleted.
    pub deleted_at: DateTime<Utc>,
    /// Position of this entry in the deletes feed (for the deletes cursor).
    pub position: Cursor,
}

/// One page of records.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// Records, in cursor order.
    pub records: Vec<T>,
    /// Total matching records, when the system says (progress only).
    pub total: Option<u64>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Page { records: Vec::new(), total: None }
    }
}

/// What a connector implements: reading its system.
#[async_trait]
pub trait SourceSystem: Send + Sync {
    /// Records of `stream` strictly after `after` in `(updated, id)` order, at most `limit`.
    /// An open cursor ([`Cursor::is_open`]) means "updated at or after `after.updated`".
    async fn fetch_changes(&self, stream: &str, after: &Cursor, limit: u32) -> Result<Page<SourceRecord>, SourceError>;

    /// Every record of `stream` with an id greater than `after_id` (none: from the first), in id
    /// order, at most `limit` (the snapshot sweep).
    async fn fetch_all(
        &self,
        stream: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> Result<Page<SourceRecord>, SourceError>;

    /// The health check's call: a cheap authenticated read of `stream` (by default its first
    /// record in id order, one request). Refused credentials answer [`SourceError::Unauthorized`]
    /// (fatal); a system with a cheaper authenticated endpoint overrides this.
    async fn probe(&self, stream: &str) -> Result<(), SourceError> {
        self.fetch_all(stream, None, 1).await.map(|_| ())
    }

    /// Whether [`SourceSystem::fetch_deletes`] reports deletes for `stream`.
    fn has_delete_feed(&self, _stream: &str) -> bool {
        false
    }

    /// Deletes of `stream`'s records strictly after `after` in the deletes feed, at most `limit`.
    async fn fetch_deletes(
        &self,
        _stream: &str,
        _after: &Cursor,
        _limit: u32,
    ) -> Result<Page<DeletedRecord>, SourceError> {
        Ok(Page::default())
    }
}

/// A stream of records and how it maps.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// The stream's name (table, object type): checkpoint key, metric label, DLQ header.
    pub name: String,
    /// The compiled mapping.
    pub mapping: Arc<Mapping>,
    /// `$params` of the mapping.
    pub params: Value,
}

/// Runs a source: polls, sweeps, publishes, checkpoints.
pub struct SourceEngine {
    ctx: ConnectorContext,
    system: Arc<dyn SourceSystem>,
    key_system: String,
    streams: Vec<StreamSpec>,
    settings: SourceSettings,
}

/// Everything opened at start.
struct Running {
    publisher: Arc<dyn Publisher>,
    checkpoints: Arc<dyn StateStore>,
    known: KnownKeys,
    source: String,
    dlq_topic: String,
}

/// What one page turned into.
#[derive(Default)]
struct Batch {
    /// Change events, in publish order.
    events: Vec<ChangeEvent>,
    /// Dead-letter records.
    dlq: Vec<OutboundMessage>,
    added: Vec<(String, Origin)>,
    removed: Vec<String>,
    /// Keys produced (or kept, for rejected records) by the page.
    seen: Vec<String>,
}

/// Keys of state entries.
fn checkpoint_key(stream: &str) -> String {
    format!("cursor:{stream}")
}

impl SourceEngine {
    /// An engine for `system` publishing keys `<key_system>:<kind>:<id>`.
    pub fn new(
        ctx: ConnectorContext,
        system: Arc<dyn SourceSystem>,
        key_system: impl Into<String>,
        streams: Vec<StreamSpec>,
        settings: SourceSettings,
    ) -> SourceEngine {
        SourceEngine { ctx, system, key_system: key_system.into(), streams, settings }
    }

    /// State-store namespaces of a source instance: checkpoints and known keys.
    pub fn store_names(ctx: &ConnectorContext) -> [String; 2] {
        [ctx.topics.state(&format!("source-{}", ctx.name)), ctx.topics.state(&format!("known-{}", ctx.name))]
    }

    /// What a connector's `Connector::run` does once it has its system and streams: publishes
    /// `status` (the connector's type and what it reads) on the admin `/status` endpoint, then
    /// [`SourceEngine::run`]s.
    pub async fn run_with_status(self, status: Value, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.ctx.admin.status_provider(&self.ctx.name, move || status.clone());
        self.run(shutdown).await?;
        Ok(())
    }

    /// Runs until `shutdown` (returns `Ok`) or a fatal error.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SourceError> {
        let mut specs: Vec<TopicSpec> =
            EntityKind::ALL.iter().map(|k| TopicSpec::new(self.ctx.topics.changes(*k))).collect();
        specs.push(TopicSpec::new(self.ctx.topics.dlq()));
        self.ctx.bus.ensure_topics(&specs).await?;
        let [cp_ns, known_ns] = Self::store_names(&self.ctx);
        let checkpoints = state::open(&self.ctx.bus, &cp_ns).await?;
        let known = KnownKeys::load(state::open(&self.ctx.bus, &known_ns).await?);
        let publisher = self.ctx.bus.publisher().await?;
        let mut run = Running {
            publisher,
            checkpoints,
            known,
            source: format!("/connectors/{}", self.ctx.name),
            dlq_topic: self.ctx.topics.dlq(),
        };
        let ready = self.ctx.admin.readiness(&self.ctx.name);
        ready.set(true);
        tracing::info!(connector = %self.ctx.name, streams = self.streams.len(), known_keys = run.known.len(), "source started");
        let result = self.main_loop(&mut run, &shutdown).await;
        ready.set(false);
        result
    }

    async fn main_loop(&self, run: &mut Running, shutdown: &CancellationToken) -> Result<(), SourceError> {
        while !shutdown.is_cancelled() {
            for stream in &self.streams {
                if shutdown.is_cancelled() {
                    break;
                }
                let outcome = async {
                    if self.sweep_due(run, stream) {
                        self.sweep(run, stream, shutdown).await?;
                    }
                    self.poll(run, stream, shutdown).await?;
                    if self.system.has_delete_feed(&stream.name) {
                        self.poll_deletes(run, stream, shutdown).await?;
                    }
                    Ok::<(), SourceError>(())
                }
                .await;
                if let Err(e) = outcome {
                    self.ctx.metrics.poll_errors.with_label_values(&[&self.ctx.name, e.code()]).inc();
                    if e.class() == ErrorClass::Fatal {
                        tracing::error!(connector = %self.ctx.name, stream = %stream.name, error = %e, "source stopped");
                        return Err(e);
                    }
                    tracing::warn!(connector = %self.ctx.name, stream = %stream.name, error = %e, code = e.code(), "poll failed; retrying from the last checkpoint at the next poll");
                }
            }
            let deadline = tokio::time::Instant::now() + self.settings.poll_interval;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        Ok(())
    }

    fn checkpoint(&self, run: &Running, stream: &str) -> Result<Checkpoint, SourceError> {
        match run.checkpoints.get(&checkpoint_key(stream)) {
            None => Ok(Checkpoint::default()),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                SourceError::Config(format!(
                    "the checkpoint of stream `{stream}` in `{}` cannot be read ({e}); delete it to resync",
                    run.checkpoints.namespace()
                ))
            }),
        }
    }

    async fn save(&self, run: &Running, stream: &str, cp: &Checkpoint) -> Result<(), SourceError> {
        let bytes =
            serde_json::to_vec(cp).map_err(|e| SourceError::Config(format!("checkpoint not serialisable: {e}")))?;
        run.checkpoints.put(&checkpoint_key(stream), Bytes::from(bytes)).await?;
        if let Some(c) = &cp.cursor {
            let lag = (Utc::now() - c.updated).num_milliseconds().max(0) as f64 / 1000.0;
            self.ctx.metrics.cursor_lag_seconds.with_label_values(&[&self.ctx.name, stream]).set(lag);
        }
        Ok(())
    }

    fn sweep_due(&self, run: &Running, stream: &StreamSpec) -> bool {
        let Some(every) = self.settings.sweep_interval else { return false };
        let last = self.checkpoint(run, &stream.name).ok().and_then(|c| c.last_sweep);
        match last {
            // A fresh source's first poll is a full sync: a sweep only helps a source that already
            // has a cursor but never completed a sweep (an upgrade, a lost checkpoint field).
            None => {
                self.settings.sweep_on_start && self.checkpoint(run, &stream.name).is_ok_and(|c| c.cursor.is_some())
            }
            Some(t) => chrono::Duration::from_std(every).is_ok_and(|d| Utc::now() >= t + d),
        }
    }

    /// Incremental poll: pages strictly after the last position, starting `look_back` before the
    /// checkpointed cursor.
    async fn poll(
        &self,
        run: &mut Running,
        stream: &StreamSpec,
        shutdown: &CancellationToken,
    ) -> Result<(), SourceError> {
        let mut cp = self.checkpoint(run, &stream.name)?;
        let mut after = cp.poll_start(self.settings.look_back);
        let full_sync_started = cp.cursor.is_none().then(Utc::now);
        loop {
            let page = self.system.fetch_changes(&stream.name, &after, self.settings.page_size).await?;
            let n = page.records.len();
            self.ctx.metrics.records_polled.with_label_values(&[&self.ctx.name, &stream.name]).inc_by(n as u64);
            let fresh: Vec<&SourceRecord> =
                page.records.iter().filter(|r| !cp.already_handled(&r.id, r.updated, r.version)).collect();
            if !fresh.is_empty() {
                let batch = self.map_records(run, stream, &fresh, false);
                self.publish(run, batch).await?;
                for r in &fresh {
                    cp.advance(r.updated, &r.id, r.version, self.settings.look_back);
                }
                self.save(run, &stream.name, &cp).await?;
            }
            match page.records.last() {
                Some(last) if n >= self.settings.page_size as usize => {
                    after = Cursor::new(last.updated, last.id.clone())
                }
                _ => {
                    if let Some(t) = full_sync_started
                        && cp.last_sweep.is_none()
                    {
                        // The first full sync read everything: it counts as a sweep for the schedule.
                        cp.last_sweep = Some(t);
                        self.save(run, &stream.name, &cp).await?;
                    }
                    break;
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        if cp.cursor.is_some() {
            // Keeps the lag gauge current while nothing changes.
            if let Some(c) = &cp.cursor {
                let lag = (Utc::now() - c.updated).num_milliseconds().max(0) as f64 / 1000.0;
                self.ctx.metrics.cursor_lag_seconds.with_label_values(&[&self.ctx.name, &stream.name]).set(lag);
            }
        }
        Ok(())
    }

    /// Explicit deletes from the system's delete feed.
    async fn poll_deletes(
        &self,
        run: &mut Running,
        stream: &StreamSpec,
        shutdown: &CancellationToken,
    ) -> Result<(), SourceError> {
        let mut cp = self.checkpoint(run, &stream.name)?;
        // A fresh feed reads the whole delete history once: a record published early in the first
        // full sync may be deleted before that sync ends, at a time older than its cursor. Deletes
        // of records never published find no known key and publish nothing.
        let mut after = cp.deletes.clone().unwrap_or_else(Cursor::start);
        loop {
            let page = self.system.fetch_deletes(&stream.name, &after, self.settings.page_size).await?;
            let n = page.records.len();
            let mut batch = Batch::default();
            for d in &page.records {
                for key in run.known.of_record(&stream.name, &d.id) {
                    self.push_delete(&mut batch, run, &key, d.deleted_at, false);
                }
            }
            self.publish(run, batch).await?;
            match page.records.last() {
                Some(last) => {
                    cp.deletes = Some(last.position.clone());
                    after = last.position.clone();
                    self.save(run, &stream.name, &cp).await?;
                }
                None if cp.deletes.is_none() => {
                    cp.deletes = Some(after.clone());
                    self.save(run, &stream.name, &cp).await?;
                }
                None => {}
            }
            if n < self.settings.page_size as usize || shutdown.is_cancelled() {
                break;
            }
        }
        Ok(())
    }

    /// Full scan with `snapshot: true`, then deletes for the stream's known keys not seen.
    async fn sweep(
        &self,
        run: &mut Running,
        stream: &StreamSpec,
        shutdown: &CancellationToken,
    ) -> Result<(), SourceError> {
        let started = Utc::now();
        let clock = Instant::now();
        let mut progress = Progress::start(&self.ctx.name, &stream.name);
        let mut seen: HashSet<String> = HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.system.fetch_all(&stream.name, after.as_deref(), self.settings.page_size).await?;
            if let Some(t) = page.total {
                progress.set_total(t);
            }
            let n = page.records.len();
            self.ctx.metrics.records_polled.with_label_values(&[&self.ctx.name, &stream.name]).inc_by(n as u64);
            let refs: Vec<&SourceRecord> = page.records.iter().collect();
            let mut batch = self.map_records(run, stream, &refs, true);
            seen.extend(std::mem::take(&mut batch.seen));
            self.publish(run, batch).await?;
            progress.inc(n as u64);
            match page.records.last() {
                Some(last) if n >= self.settings.page_size as usize => after = Some(last.id.clone()),
                _ => break,
            }
            if shutdown.is_cancelled() {
                // An incomplete scan proves nothing about deletes.
                tracing::info!(connector = %self.ctx.name, stream = %stream.name, "snapshot sweep interrupted by shutdown");
                return Ok(());
            }
        }
        let gone: Vec<String> = run.known.of_stream(&stream.name).into_iter().filter(|k| !seen.contains(k)).collect();
        let deleted = gone.len();
        for chunk in gone.chunks(500) {
            let mut batch = Batch::default();
            for key in chunk {
                self.push_delete(&mut batch, run, key, Utc::now(), true);
            }
            self.publish(run, batch).await?;
        }
        let mut cp = self.checkpoint(run, &stream.name)?;
        cp.last_sweep = Some(started);
        self.save(run, &stream.name, &cp).await?;
        let elapsed = clock.elapsed();
        self.ctx
            .metrics
            .snapshot_duration_seconds
            .with_label_values(&[&self.ctx.name, &stream.name])
            .set(elapsed.as_secs_f64());
        progress.finish(deleted, elapsed);
        Ok(())
    }

    /// Maps records into events (or DLQ records), plus the known-key changes they imply.
    fn map_records(&self, run: &Running, stream: &StreamSpec, records: &[&SourceRecord], snapshot: bool) -> Batch {
        let mut batch = Batch::default();
        for r in records {
            let before = run.known.of_record(&stream.name, &r.id);
            match self.map_one(run, stream, r, snapshot) {
                Ok(events) => {
                    let mut produced = BTreeSet::new();
                    for e in events {
                        let key = e.key.as_str().to_owned();
                        batch.events.push(e);
                        batch.added.push((key.clone(), Origin { s: stream.name.clone(), r: r.id.clone() }));
                        produced.insert(key);
                    }
                    // Keys this record produced before and no longer does (a removed vendor link).
                    for stale in before.difference(&produced) {
                        self.push_delete(&mut batch, run, stale, r.updated, snapshot);
                    }
                    batch.seen.extend(produced);
                }
                Err((reason, error)) => {
                    self.ctx.metrics.dlq_events.with_label_values(&[&self.ctx.name, reason]).inc();
                    tracing::warn!(connector = %self.ctx.name, stream = %stream.name, record = %r.id, reason, error = %error, "record rejected, sent to the DLQ");
                    batch.dlq.push(record_message(
                        &run.dlq_topic,
                        &self.ctx.name,
                        &Rejected {
                            system: &self.key_system,
                            stream: &stream.name,
                            record_id: &r.id,
                            version: r.version,
                            record: &r.body,
                            reason,
                            error: &error,
                        },
                    ));
                    // A rejected record is not gone: a sweep must not delete what it produced before.
                    batch.seen.extend(before);
                }
            }
        }
        batch
    }

    /// One record → its events, or the DLQ reason and error.
    fn map_one(
        &self,
        run: &Running,
        stream: &StreamSpec,
        r: &SourceRecord,
        snapshot: bool,
    ) -> Result<Vec<ChangeEvent>, (&'static str, String)> {
        let outputs = stream
            .mapping
            .run(&r.body, &stream.params, &self.key_system)
            .map_err(|e: MappingError| (e.code(), e.to_string()))?;
        let sequence = sequence_from_time(r.updated, r.version);
        events_from_outputs(
            outputs,
            stream.mapping.name(),
            &self.key_system,
            &run.source,
            &sequence,
            r.updated,
            snapshot,
        )
    }

    /// Queues a delete event for a known key (sequence: `deleted_at` with the highest tie-breaker,
    /// so it sorts after every update of that instant).
    fn push_delete(&self, batch: &mut Batch, run: &Running, key: &str, deleted_at: DateTime<Utc>, snapshot: bool) {
        let Ok(key) = EntityKey::parse(key) else { return };
        let seq = sequence_from_time(deleted_at, u64::MAX);
        match ChangeEvent::new(
            run.source.clone(),
            key.clone(),
            seq,
            deleted_at,
            Payload::tombstone(key.kind(), snapshot),
        ) {
            Ok(e) => {
                batch.events.push(e);
                batch.removed.push(key.as_str().to_owned());
            }
            Err(e) => tracing::error!(key = %key, error = %e, "delete event not built"),
        }
    }

    /// Encodes the change messages, publishes everything, waits for the acks, then applies the
    /// known-key changes. Nothing is checkpointed here: the caller does after this returns.
    async fn publish(&self, run: &mut Running, mut batch: Batch) -> Result<(), SourceError> {
        if batch.events.is_empty() && batch.dlq.is_empty() && batch.removed.is_empty() && batch.added.is_empty() {
            return Ok(());
        }
        let mut messages = Vec::with_capacity(batch.events.len() + batch.dlq.len());
        for e in &batch.events {
            messages.push(change_message(&self.ctx, e).await?);
        }
        messages.append(&mut batch.dlq);
        if !messages.is_empty() {
            run.publisher.publish_batch(messages).await?;
        }
        for e in &batch.events {
            self.ctx
                .metrics
                .events_published
                .with_label_values(&[&self.ctx.name, e.kind().as_str(), e.op.as_str()])
                .inc();
        }
        run.known.apply(std::mem::take(&mut batch.added), std::mem::take(&mut batch.removed)).await?;
        Ok(())
    }
}

/// A record's mapping outputs (`{kind, id | key, data}`, see [`super::mapping`]) → its change
/// events at `sequence`, or the DLQ reason code and error. Every source reading records through a
/// jq mapping turns outputs into events with this: the engine, and the topic readers that consume
/// existing streams. `snapshot` is written into each payload (a sweep or snapshot read).
pub fn events_from_outputs(
    outputs: Vec<Value>,
    mapping_name: &str,
    key_system: &str,
    source: &str,
    sequence: &str,
    time: DateTime<Utc>,
    snapshot: bool,
) -> Result<Vec<ChangeEvent>, (&'static str, String)> {
    let mut events = Vec::with_capacity(outputs.len());
    for out in outputs {
        let out_err = |detail: String| ("mapping_output", format!("mapping `{mapping_name}`: {detail}"));
        let Value::Object(mut obj) = out else {
            return Err(out_err("an output is not an object".into()));
        };
        let kind: EntityKind = obj
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| out_err("an output has no `kind`".into()))?
            .parse()
            .map_err(|e: crate::event::EventError| out_err(e.to_string()))?;
        let mut data = obj.remove("data").unwrap_or_else(|| Value::Object(Default::default()));
        if let Value::Object(d) = &mut data {
            d.insert("snapshot".into(), Value::Bool(snapshot));
        }
        let payload = Payload::from_json_value(kind, data)
            .map_err(|e| ("invalid_payload", format!("{kind} payload does not fit the schema: {e}")))?;
        let key = match (obj.get("key").and_then(Value::as_str), obj.get("id")) {
            (Some(k), _) => EntityKey::parse(k),
            (None, Some(id)) => {
                let id = match id {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                EntityKey::new(key_system, kind, &id)
            }
            (None, None) => match &payload {
                Payload::Relationship(rel) => match (&rel.origin, &rel.target) {
                    (Some(o), Some(t)) => EntityKey::for_relationship(key_system, o, t),
                    _ => return Err(("invalid_payload", "a relationship needs origin and target".into())),
                },
                _ => return Err(out_err("an output has neither `id` nor `key`".into())),
            },
        }
        .map_err(|e| (e.code(), e.to_string()))?;
        let event = ChangeEvent::new(source, key, sequence, time, payload).map_err(|e| (e.code(), e.to_string()))?;
        events.push(event);
    }
    Ok(events)
}

/// The bus message of a change event: topic `<prefix>.changes.<entity>`, key the entity key, the
/// payload in the context's codec, CloudEvents attributes in the headers.
pub async fn change_message(ctx: &ConnectorContext, e: &ChangeEvent) -> Result<OutboundMessage, SourceError> {
    let topic = ctx.topics.changes(e.kind());
    let value = e.encode_value(&ctx.codec, &topic).await?;
    let mut msg = OutboundMessage::new(topic, Bytes::from(e.key.as_str().to_owned()), Bytes::from(value));
    for (k, v) in e.ce_headers(&ctx.codec) {
        msg = msg.with_header(k, v.into_bytes());
    }
    Ok(msg)
}
