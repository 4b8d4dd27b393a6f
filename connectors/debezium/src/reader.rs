//! [`TopicReader`]: consumes existing topics and turns their records into change events. What
//! differs between record formats (Debezium envelopes, the company's own records) is a
//! [`RecordRule`]; the rest is here, once:
//!
//! 1. **Consume** the configured topics in a consumer group of its own (Kafka) or durable
//!    consumers (NATS), batch by batch (`consumer.batch_size` records, or what came within
//!    `consumer.linger`).
//! 2. **Decode** key and value ([`crate::decode`]: Confluent Avro through the registry, JSON with
//!    or without the schema envelope). A null value (a Kafka tombstone, e.g. the one Debezium writes
//!    after a delete) is skipped.
//! 3. **Read** the record with the rule: its id, version, time, and whether it is an upsert of a
//!    row, a delete or nothing to do.
//! 4. **Map** the row with the topic's jq program ([`dastra_connect_core::source::Mapping`]) into
//!    entity outputs, then events ([`events_from_outputs`]) at the record's version.
//! 5. **Deletes** come from an index on the bus of the entity keys each record produced (so a
//!    delete whose `before` holds only the primary key still deletes every entity the row made); a
//!    record whose update no longer produces a key deletes that key; a delete of a record the index
//!    does not know maps its `before` row, when there is one.
//! 6. **Publish** events and dead letters together, wait for every broker ack, write the index,
//!    and only then **commit** the offsets. A crash in between reads the batch again: the events
//!    have deterministic ids and versions, so the sink drops the copies.
//!
//! A record that cannot be decoded, read or mapped goes to the DLQ with the reason (headers as the
//! source DLQ, [`dastra_connect_core::source::dlq`]) and its offset is committed with the batch once
//! the DLQ write is acknowledged. Bus, state-store and registry failures are retried with the
//! same batch (nothing committed meanwhile); only fatal ones stop the reader.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use dastra_connect_core::bus::{
    BusConfig, InboundMessage, OutboundMessage, Publisher, Subscriber, SubscriberEvent, TopicPartition, TopicSpec,
};
use dastra_connect_core::connector::ConnectorContext;
use dastra_connect_core::dlq::H_SOURCE_VERSION;
use dastra_connect_core::event::{ChangeEvent, EntityKey, EntityKind, Payload};
use dastra_connect_core::source::dlq::{Rejected, record_message};
use dastra_connect_core::source::{SourceEngine, SourceError, StreamSpec, change_message, events_from_outputs};
use dastra_connect_core::state::{self, StateStore};
use dastra_connect_core::{Classify, ErrorClass};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::{ConsumerSettings, ReaderConfig};
use crate::decode::{DecodeError, Decoder};

/// A record rejected: reason code and operator sentence.
pub type Reject = (&'static str, String);

/// What one record says.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What identifies the record across its updates and delete (the primary key).
    pub record_id: String,
    /// Its version as a sortable sequence ([`dastra_connect_core::event::cmp_sequence`]).
    pub sequence: String,
    /// When it changed at the source, when known (else the message's timestamp, else now).
    pub time: Option<DateTime<Utc>>,
    /// A snapshot read (written into the payloads' `snapshot` flag).
    pub snapshot: bool,
    /// What to do.
    pub row: Row,
    /// Other records whose rows this one changed, mapped after it as if they had been read (each
    /// with its own id and version). DataHub: the jobs whose lineage names a dataset whose
    /// classification changed. Empty for most rules.
    pub also: Vec<Change>,
}

/// The effect of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// Create or update: the row the mapping reads.
    Upsert(Value),
    /// Delete, with the row as it was when the source reports it.
    Delete(Option<Value>),
    /// Nothing to publish (the reason is a metric label).
    Skip(&'static str),
}

/// How a reader reads the records of its topics.
pub trait RecordRule: Send + Sync + 'static {
    /// Reads a decoded record of `topic` (`key`: the decoded message key, if any).
    fn read(&self, topic: &str, msg: &InboundMessage, key: Option<&Value>, value: &Value) -> Result<Change, Reject>;

    /// Persists what the rule remembered while reading a batch (e.g. DataHub's latest aspects of
    /// each entity), once the batch's events and dead letters are acknowledged and before its
    /// offsets are committed. A batch that fails is read again, so what the rule remembers must
    /// be the same after reading a record twice. Default: a rule without memory saves nothing.
    fn save(&self) -> SaveFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

/// What [`RecordRule::save`] returns.
pub type SaveFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SourceError>> + Send + 'a>>;

/// Why a batch must be tried again (or the reader stop, when fatal).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bus, the state store or encoding failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The schema registry could not be asked.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl Classify for ReadError {
    fn class(&self) -> ErrorClass {
        match self {
            ReadError::Source(e) => e.class(),
            ReadError::Decode(e) => e.class(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            ReadError::Source(e) => e.code(),
            ReadError::Decode(e) => e.code(),
        }
    }
}

/// A record's failure: dead-letter it, or retry the batch.
enum Failure {
    Reject(Reject),
    Retry(ReadError),
}

impl From<Reject> for Failure {
    fn from(r: Reject) -> Self {
        Failure::Reject(r)
    }
}

impl From<DecodeError> for Failure {
    fn from(e: DecodeError) -> Self {
        if e.class() == ErrorClass::Permanent {
            Failure::Reject((e.code(), e.to_string()))
        } else {
            Failure::Retry(e.into())
        }
    }
}

/// Reads existing topics with a rule; see the module doc.
pub struct TopicReader<R> {
    rule: R,
    /// The connector type (`/status`, logs) and the default key system.
    kind: &'static str,
    config: ReaderConfig,
}

/// What a running reader holds.
struct Running {
    ctx: ConnectorContext,
    publisher: Arc<dyn Publisher>,
    index: Arc<dyn StateStore>,
    decoder: Decoder,
    streams: HashMap<String, StreamSpec>,
    key_system: String,
    source: String,
    dlq_topic: String,
}

/// Index entries written by a batch: `None` removes the record's entry.
type Overlay = HashMap<String, Option<BTreeSet<String>>>;

fn index_key(stream: &str, record_id: &str) -> String {
    format!("{stream}/{record_id}")
}

impl<R: RecordRule> TopicReader<R> {
    /// A reader of `config` (validated by the caller) with `rule`; `kind` names the connector type
    /// (`debezium`, `topic`, or another connector's that reads an existing topic) and is the key
    /// system unless the config sets one.
    pub fn new(rule: R, kind: &'static str, config: ReaderConfig) -> Self {
        TopicReader { rule, kind, config }
    }

    /// The engine streams: one compiled mapping per topic, by topic.
    pub fn streams(config: &ReaderConfig) -> Result<HashMap<String, StreamSpec>, SourceError> {
        config
            .topics
            .iter()
            .map(|t| {
                let spec = dastra_connect_core::source::streams::compile_stream(
                    t.stream(),
                    &t.mapping,
                    Value::Object(t.params.clone()),
                )?;
                Ok((t.topic.clone(), spec))
            })
            .collect()
    }

    /// Runs until `shutdown` (returns `Ok`) or a fatal error.
    pub async fn run(self, ctx: ConnectorContext, shutdown: CancellationToken) -> anyhow::Result<()> {
        let streams = Self::streams(&self.config)?;
        let registry = crate::health::registry_client(&self.config, &ctx)?;
        let mut specs: Vec<TopicSpec> =
            EntityKind::ALL.iter().map(|k| TopicSpec::new(ctx.topics.changes(*k))).collect();
        specs.push(TopicSpec::new(ctx.topics.dlq()));
        ctx.bus.ensure_topics(&specs).await?;
        let [_, index_ns] = SourceEngine::store_names(&ctx);
        let index = state::open(&ctx.bus, &index_ns).await?;
        let publisher = ctx.bus.publisher().await?;
        let consumer = self.config.consumer.clone();
        let group = consumer.group_id.clone().unwrap_or_else(|| format!("dastra-connect-{}", ctx.name));
        let topics: Vec<String> = self.config.topics.iter().map(|t| t.topic.clone()).collect();
        let mut sub: Box<dyn Subscriber> = match (&self.config.nats_stream, &ctx.bus) {
            (None, bus) => own_group(bus, &group).subscriber(&group, &topics).await?,
            (Some(stream), BusConfig::Nats(n)) => Box::new(
                dastra_connect_core::bus::nats::NatsSubscriber::connect_external(n, &group, stream, &topics).await?,
            ),
            (Some(_), BusConfig::Kafka(_)) => {
                anyhow::bail!("`nats_stream` needs the NATS bus (on Kafka the topics are read as they are)")
            }
        };
        let status = json!({"type": self.kind, "topics": topics, "group": group});
        ctx.admin.status_provider(&ctx.name, move || status.clone());
        let run = Running {
            publisher,
            index,
            decoder: Decoder::new(registry),
            streams,
            key_system: self.config.key_system.clone().unwrap_or_else(|| self.kind.to_owned()),
            source: format!("/connectors/{}", ctx.name),
            dlq_topic: ctx.topics.dlq(),
            ctx,
        };
        let ready = run.ctx.admin.readiness(&run.ctx.name);
        ready.set(true);
        tracing::info!(connector = %run.ctx.name, kind = self.kind, group = %group, "topic reader started");
        let result = self.consume(&run, sub.as_mut(), &consumer, &shutdown).await;
        ready.set(false);
        if let Err(e) = sub.close().await {
            tracing::warn!(connector = %run.ctx.name, error = %e, "closing the consumer failed");
        }
        result
    }

    async fn consume(
        &self,
        run: &Running,
        sub: &mut dyn Subscriber,
        consumer: &ConsumerSettings,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut batch: Vec<InboundMessage> = Vec::new();
        let mut flush_at: Option<tokio::time::Instant> = None;
        loop {
            let due = flush_at.is_some_and(|t| t <= tokio::time::Instant::now());
            if !batch.is_empty() && (batch.len() >= consumer.batch_size as usize || due) {
                if !self.settle(run, sub, std::mem::take(&mut batch), shutdown).await? {
                    return Ok(());
                }
                flush_at = None;
            }
            let linger = flush_at.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    // What is not committed is read again by the next start.
                    return Ok(());
                }
                _ = tokio::time::sleep_until(linger), if flush_at.is_some() => {}
                ev = sub.next_event() => match ev {
                    Ok(SubscriberEvent::Message(m)) => {
                        if batch.is_empty() {
                            flush_at = Some(tokio::time::Instant::now() + consumer.linger);
                        }
                        batch.push(m);
                    }
                    Ok(SubscriberEvent::Assigned(_)) => {}
                    Ok(SubscriberEvent::Revoked(_)) => {
                        // Commit what was read before the partitions go (a commit the group
                        // refuses only means the new owner reads those records again).
                        if !batch.is_empty() && !self.settle(run, sub, std::mem::take(&mut batch), shutdown).await? {
                            return Ok(());
                        }
                        flush_at = None;
                    }
                    Err(e) if e.class() == ErrorClass::Fatal => return Err(e.into()),
                    Err(e) => {
                        tracing::warn!(connector = %run.ctx.name, error = %e, "consuming failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                },
            }
        }
    }

    /// Processes a batch until it succeeds (retryable failures wait and try again); `false` when
    /// shutdown came first.
    async fn settle(
        &self,
        run: &Running,
        sub: &dyn Subscriber,
        batch: Vec<InboundMessage>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.process(run, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    run.ctx.metrics.poll_errors.with_label_values(&[&run.ctx.name, e.code()]).inc();
                    if e.class() == ErrorClass::Fatal {
                        tracing::error!(connector = %run.ctx.name, error = %e, "topic reader stopped");
                        return Err(e.into());
                    }
                    tracing::warn!(connector = %run.ctx.name, error = %e, code = e.code(), "batch failed; retrying it");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(false),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
        let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        for m in &batch {
            let slot = next.entry(m.topic_partition()).or_insert(0);
            *slot = (*slot).max(m.next_offset());
        }
        for (tp, offset) in next {
            if let Err(e) = sub.commit(&tp.topic, tp.partition, offset).await {
                tracing::warn!(connector = %run.ctx.name, partition = %TopicPartition::summary(&[tp]), error = %e, "commit failed; the records will be read again");
            }
        }
        Ok(true)
    }

    /// Maps a batch, publishes events and dead letters, waits for the acks, writes the index.
    async fn process(&self, run: &Running, batch: &[InboundMessage]) -> Result<(), ReadError> {
        let mut overlay = Overlay::new();
        let mut messages = Vec::new();
        let mut published: Vec<(EntityKind, &'static str)> = Vec::new();
        let mut rejected: Vec<&'static str> = Vec::new();
        for m in batch {
            let Some(stream) = run.streams.get(&m.topic) else { continue };
            run.ctx.metrics.records_polled.with_label_values(&[&run.ctx.name, &stream.name]).inc();
            let Some(payload) = &m.payload else { continue };
            let mut read: Option<(Value, Option<Change>)> = None;
            match self.one(run, stream, m, payload, &mut overlay, &mut read).await {
                Ok(events) => {
                    for e in events {
                        messages.push(change_message(&run.ctx, &e).await?);
                        published.push((e.kind(), e.op.as_str()));
                    }
                }
                Err(Failure::Retry(e)) => return Err(e),
                Err(Failure::Reject((reason, error))) => {
                    tracing::warn!(connector = %run.ctx.name, stream = %stream.name, topic = %m.topic, partition = m.partition, offset = m.offset, reason, error = %error, "record rejected, sent to the DLQ");
                    messages.push(dead_letter(run, stream, m, payload, read.as_ref(), reason, &error));
                    rejected.push(reason);
                }
            }
        }
        if !messages.is_empty() {
            run.publisher.publish_batch(messages).await.map_err(SourceError::from)?;
        }
        let writes: Vec<(String, Option<Bytes>)> = overlay
            .into_iter()
            .map(|(k, v)| (k, v.map(|keys| Bytes::from(serde_json::to_vec(&keys).unwrap_or_default()))))
            .collect();
        if !writes.is_empty() {
            run.index.put_batch(writes).await.map_err(SourceError::from)?;
        }
        self.rule.save().await?;
        for (kind, op) in published {
            run.ctx.metrics.events_published.with_label_values(&[&run.ctx.name, kind.as_str(), op]).inc();
        }
        for reason in rejected {
            run.ctx.metrics.dlq_events.with_label_values(&[&run.ctx.name, reason]).inc();
        }
        Ok(())
    }

    /// One record → its events. `read` receives the decoded value and what the rule read, for
    /// the DLQ record if a later step fails.
    async fn one(
        &self,
        run: &Running,
        stream: &StreamSpec,
        m: &InboundMessage,
        payload: &[u8],
        overlay: &mut Overlay,
        read: &mut Option<(Value, Option<Change>)>,
    ) -> Result<Vec<ChangeEvent>, Failure> {
        let key = if m.key.is_empty() { None } else { Some(run.decoder.key(&m.key).await?) };
        let value = run.decoder.value(payload).await?;
        if value.is_null() {
            return Ok(Vec::new());
        }
        let change = match self.rule.read(&m.topic, m, key.as_ref(), &value) {
            Ok(change) => change,
            Err(reject) => {
                *read = Some((value, None));
                return Err(reject.into());
            }
        };
        *read = Some((value, Some(change.clone())));
        let mut events = self.apply(run, stream, m, &change, overlay)?;
        for also in &change.also {
            events.extend(self.apply(run, stream, m, also, overlay)?);
        }
        Ok(events)
    }

    /// The events of one change (a record's, or one it brought along).
    fn apply(
        &self,
        run: &Running,
        stream: &StreamSpec,
        m: &InboundMessage,
        change: &Change,
        overlay: &mut Overlay,
    ) -> Result<Vec<ChangeEvent>, Failure> {
        let time = change.time.or(m.timestamp).unwrap_or_else(Utc::now);
        let index_at = index_key(&stream.name, &change.record_id);
        let known = known_keys(run, overlay, &index_at);
        let map = |row: &Value| -> Result<Vec<ChangeEvent>, Reject> {
            let outputs =
                stream.mapping.run(row, &stream.params, &run.key_system).map_err(|e| (e.code(), e.to_string()))?;
            events_from_outputs(
                outputs,
                stream.mapping.name(),
                &run.key_system,
                &run.source,
                &change.sequence,
                time,
                change.snapshot,
            )
        };
        let tombstone = |key: &str| -> Option<ChangeEvent> {
            let key = EntityKey::parse(key).ok()?;
            let payload = Payload::tombstone(key.kind(), change.snapshot);
            ChangeEvent::new(run.source.clone(), key, change.sequence.clone(), time, payload).ok()
        };
        match &change.row {
            Row::Skip(_) => Ok(Vec::new()),
            Row::Upsert(row) => {
                let mut events = map(row)?;
                let produced: BTreeSet<String> = events.iter().map(|e| e.key.as_str().to_owned()).collect();
                // Keys the record produced before and no longer does.
                events.extend(known.difference(&produced).filter_map(|k| tombstone(k)));
                if produced != known {
                    // A record the mapping now filters out keeps no entry.
                    overlay.insert(index_at, (!produced.is_empty()).then_some(produced));
                }
                Ok(events)
            }
            Row::Delete(before) => {
                let keys = match (known.is_empty(), before) {
                    (false, _) => known.clone(),
                    (true, Some(row)) => map(row)?.into_iter().map(|e| e.key.as_str().to_owned()).collect(),
                    (true, None) => BTreeSet::new(),
                };
                if !known.is_empty() {
                    overlay.insert(index_at, None);
                }
                Ok(keys.iter().filter_map(|k| tombstone(k)).collect())
            }
        }
    }
}

/// The keys a record produced so far: this batch's writes first, then the index.
fn known_keys(run: &Running, overlay: &Overlay, at: &str) -> BTreeSet<String> {
    match overlay.get(at) {
        Some(Some(keys)) => keys.clone(),
        Some(None) => BTreeSet::new(),
        None => run.index.get(at).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default(),
    }
}

/// The DLQ record of a rejected message: the decoded value when there is one (else the raw value
/// in base64), its id and version when the rule could read them (else `<topic>@<partition>/<offset>`
/// and no version).
fn dead_letter(
    run: &Running,
    stream: &StreamSpec,
    m: &InboundMessage,
    payload: &[u8],
    read: Option<&(Value, Option<Change>)>,
    reason: &str,
    error: &str,
) -> OutboundMessage {
    let at = format!("{}@{}/{}", m.topic, m.partition, m.offset);
    let raw;
    let (record, record_id, version) = match read {
        Some((value, Some(change))) => (value, change.record_id.as_str(), change.sequence.as_str()),
        Some((value, None)) => (value, at.as_str(), ""),
        None => {
            raw = json!({
                "topic": m.topic, "partition": m.partition, "offset": m.offset,
                "value_base64": base64::engine::general_purpose::STANDARD.encode(payload),
            });
            (&raw, at.as_str(), "")
        }
    };
    let rejected =
        Rejected { system: &run.key_system, stream: &stream.name, record_id, version: 0, record, reason, error };
    let mut msg = record_message(&run.dlq_topic, &run.ctx.name, &rejected);
    // The source DLQ's version header is a counter; these versions are sequences.
    for (name, value) in &mut msg.headers {
        if name == H_SOURCE_VERSION {
            *value = version.as_bytes().to_vec();
        }
    }
    msg
}

/// The bus config with `group` as the consumer group, so the reader never joins the sink's group
/// when the bus config names one.
fn own_group(bus: &BusConfig, group: &str) -> BusConfig {
    let mut bus = bus.clone();
    match &mut bus {
        BusConfig::Kafka(k) => k.group_id = Some(group.to_owned()),
        BusConfig::Nats(n) => n.group_id = Some(group.to_owned()),
    }
    bus
}
