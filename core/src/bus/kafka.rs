//! Kafka bus through librdkafka: an idempotent `acks=all` publisher with the Java-compatible
//! murmur2 partitioner, a consumer-group subscriber with manual commits and rebalance events, and
//! topic creation through the admin API.
//!
//! Commit scheme ("store after work", as rust-rdkafka's `at_least_once` example): auto-commit is
//! off; [`Committer::commit`] commits the given offset synchronously, so a commit that returned is
//! durable in the group coordinator. On a rebalance, whatever the caller had not committed is
//! delivered again to the new owner.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::{
    BusError, Committer, Delivery, InboundMessage, KafkaConfig, OutboundMessage, Publisher, Subscriber,
    SubscriberEvent, TopicPartition, TopicSpec,
};
use crate::Classify;

/// Routes librdkafka's log lines to `tracing` (they never contain the configured secrets).
fn log_to_tracing(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility = fac, "{message}");
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility = fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility = fac, "{message}");
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility = fac, "{message}"),
    }
}

/// A client context that logs through `tracing`, inside the span that was current when the client
/// was created (librdkafka logs from its own threads, where the connector's span is not current).
#[derive(Clone)]
pub(crate) struct TracingContext {
    span: tracing::Span,
}

impl TracingContext {
    /// A context logging in the current span (the connector's).
    pub(crate) fn current() -> Self {
        Self { span: tracing::Span::current() }
    }
}

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let _in = self.span.enter();
        log_to_tracing(level, fac, log_message);
    }
}

impl ConsumerContext for TracingContext {}

/// Publisher over an idempotent librdkafka producer.
pub struct KafkaPublisher {
    producer: FutureProducer<TracingContext>,
}

impl KafkaPublisher {
    /// Creates the producer (no I/O yet: librdkafka connects in the background).
    pub fn new(cfg: &KafkaConfig) -> Result<Self, BusError> {
        let mut cc = cfg.client_config();
        cc.set("partitioner", "murmur2_random")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", cfg.timeout.as_millis().to_string());
        if !cfg.properties.contains_key("linger.ms") {
            // Small batching window: good throughput for publish_batch, little latency for single publishes.
            cc.set("linger.ms", "5");
        }
        let producer =
            cc.create_with_context(TracingContext::current()).map_err(|e| BusError::kafka("create producer", e))?;
        Ok(Self { producer })
    }

    fn record<'a>(msg: &'a OutboundMessage) -> FutureRecord<'a, [u8], [u8]> {
        let mut headers = OwnedHeaders::new_with_capacity(msg.headers.len());
        for (k, v) in &msg.headers {
            headers = headers.insert(Header { key: k.as_str(), value: Some(v.as_slice()) });
        }
        let mut rec = FutureRecord::to(&msg.topic).key(msg.key.as_ref()).headers(headers);
        if let Some(p) = &msg.payload {
            rec = rec.payload(p.as_ref());
        }
        rec
    }

    /// Enqueues `msg` (waiting while librdkafka's queue is full, without reordering) and returns the
    /// future of its delivery report.
    async fn enqueue(&self, msg: &OutboundMessage) -> Result<rdkafka::producer::DeliveryFuture, BusError> {
        let mut record = Self::record(msg);
        loop {
            match self.producer.send_result(record) {
                Ok(fut) => return Ok(fut),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), rec)) => {
                    // The producer's own thread drains the queue; retry this record before any later one.
                    record = rec;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(BusError::kafka("publish", e)),
            }
        }
    }

    async fn await_delivery(fut: rdkafka::producer::DeliveryFuture) -> Result<Delivery, BusError> {
        match fut.await {
            Ok(Ok(d)) => Ok(Delivery { partition: d.partition, offset: d.offset }),
            Ok(Err((e, _))) => Err(BusError::kafka("publish", e)),
            Err(_canceled) => Err(BusError::kafka("publish", KafkaError::Canceled)),
        }
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, msg: OutboundMessage) -> Result<Delivery, BusError> {
        let fut = self.enqueue(&msg).await?;
        Self::await_delivery(fut).await
    }

    async fn publish_batch(&self, msgs: Vec<OutboundMessage>) -> Result<Vec<Delivery>, BusError> {
        let mut futures = Vec::with_capacity(msgs.len());
        for msg in &msgs {
            futures.push(self.enqueue(msg).await?);
        }
        let results = futures::future::join_all(futures.into_iter().map(Self::await_delivery)).await;
        results.into_iter().collect()
    }
}

/// The consumer context: turns rebalances into [`SubscriberEvent`]s and keeps the assignment.
pub(crate) struct GroupContext {
    events: mpsc::UnboundedSender<SubscriberEvent>,
    assignment: Arc<Mutex<BTreeSet<TopicPartition>>>,
    handover: Arc<Handover>,
    /// The connector's span, for librdkafka's log lines (they come from its own threads).
    span: tracing::Span,
}

fn tps_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition())).collect()
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let _in = self.span.enter();
        log_to_tracing(level, fac, log_message);
    }
}

impl ConsumerContext for GroupContext {
    /// librdkafka's rebalance, with one difference when revocations are held
    /// ([`Subscriber::hold_revocations`]): a revocation is reported but not completed here. The
    /// partitions stay this member's — nobody else is given them, and its commits still count —
    /// until [`Subscriber::handed_over`] unassigns them, after the work on them is done and
    /// committed. librdkafka's group state machine waits for that call (bounded by
    /// `max.poll.interval.ms`, after which the coordinator evicts the member).
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let done = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                let tps = tps_of(tpl);
                self.assignment.lock().extend(tps.iter().cloned());
                tracing::info!(count = tps.len(), partitions = %TopicPartition::summary(&tps), "kafka partitions assigned");
                let _ = self.events.send(SubscriberEvent::Assigned(tps));
                done
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let tps = tps_of(tpl);
                {
                    let mut a = self.assignment.lock();
                    for tp in &tps {
                        a.remove(tp);
                    }
                }
                tracing::info!(count = tps.len(), partitions = %TopicPartition::summary(&tps), "kafka partitions revoked");
                let reported = self.events.send(SubscriberEvent::Revoked(tps.clone())).is_ok();
                if reported && self.handover.hold.load(std::sync::atomic::Ordering::SeqCst) {
                    *self.handover.open.lock() = Some(tps);
                    return;
                }
                if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() }
            }
            other => {
                tracing::warn!(error = ?other, "kafka rebalance error");
                // As librdkafka's default: drop the assignment, the group assigns again.
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "kafka (un)assign failed");
        }
    }
}

/// A revocation held until the application hands the partitions over.
#[derive(Default)]
pub(crate) struct Handover {
    /// Revocations are held (set by [`Subscriber::hold_revocations`]).
    hold: std::sync::atomic::AtomicBool,
    /// The revoked partitions not yet handed over.
    open: Mutex<Option<Vec<TopicPartition>>>,
}

impl KafkaSubscriber {
    /// Completes a held revocation: unassigns what it revoked.
    fn complete_handover(&self) -> Result<(), BusError> {
        let Some(tps) = self.handover.open.lock().take() else { return Ok(()) };
        let done = if matches!(self.consumer.rebalance_protocol(), RebalanceProtocol::Cooperative) {
            self.consumer.incremental_unassign(&tpl_of(&tps))
        } else {
            self.consumer.unassign()
        };
        tracing::info!(count = tps.len(), partitions = %TopicPartition::summary(&tps), "kafka partitions handed over");
        done.map_err(|e| BusError::kafka("hand over revoked partitions", e))
    }
}

type GroupConsumer = StreamConsumer<GroupContext>;

/// A consumer-group subscriber with manual commits.
pub struct KafkaSubscriber {
    consumer: Arc<GroupConsumer>,
    events: mpsc::UnboundedReceiver<SubscriberEvent>,
    assignment: Arc<Mutex<BTreeSet<TopicPartition>>>,
    stash: Option<InboundMessage>,
    /// Lag per owned partition, refreshed by a background thread (broker requests never run on the
    /// caller's task: on a slow cluster they take seconds).
    lag: Arc<Mutex<Vec<(TopicPartition, i64)>>>,
    lag_stop: Arc<std::sync::atomic::AtomicBool>,
    handover: Arc<Handover>,
}

/// How often the background thread refreshes consumer lag.
const LAG_REFRESH: Duration = Duration::from_secs(3);

/// Reads high watermarks and committed offsets of the owned partitions until `stop`.
fn lag_reader(
    consumer: Arc<GroupConsumer>,
    assignment: Arc<Mutex<BTreeSet<TopicPartition>>>,
    out: Arc<Mutex<Vec<(TopicPartition, i64)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    while !stop.load(Ordering::Relaxed) {
        let owned: Vec<TopicPartition> = assignment.lock().iter().cloned().collect();
        if !owned.is_empty() {
            let timeout = Duration::from_secs(5);
            let committed = consumer.committed_offsets(tpl_of(&owned), timeout).ok();
            let lag: Vec<(TopicPartition, i64)> = owned
                .into_iter()
                .filter_map(|tp| {
                    if stop.load(Ordering::Relaxed) {
                        return None;
                    }
                    let (low, high) = consumer.fetch_watermarks(&tp.topic, tp.partition, timeout).ok()?;
                    let done = committed
                        .as_ref()
                        .and_then(|c| c.find_partition(&tp.topic, tp.partition))
                        .and_then(|e| e.offset().to_raw())
                        .filter(|o| *o >= 0)
                        .unwrap_or(low);
                    Some((tp, (high - done).max(0)))
                })
                .collect();
            *out.lock() = lag;
        }
        // Sleep in small steps so that dropping the subscriber ends the thread quickly.
        for _ in 0..(LAG_REFRESH.as_millis() / 100) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for KafkaSubscriber {
    fn drop(&mut self) {
        self.lag_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl KafkaSubscriber {
    /// Creates the consumer in group `group` and subscribes to `topics` (joining happens while
    /// [`Subscriber::next_event`] is polled).
    pub fn new(cfg: &KafkaConfig, group: &str, topics: &[String]) -> Result<Self, BusError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let assignment = Arc::new(Mutex::new(BTreeSet::new()));
        let mut cc = cfg.client_config();
        cc.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        if let Some(id) = &cfg.group_instance_id {
            cc.set("group.instance.id", id);
        }
        if !cfg.properties.contains_key("auto.offset.reset") {
            // A new group reads from the beginning: nothing published before it started is skipped.
            cc.set("auto.offset.reset", "earliest");
        }
        let handover = Arc::new(Handover::default());
        let ctx = GroupContext {
            events: tx,
            assignment: assignment.clone(),
            handover: handover.clone(),
            span: tracing::Span::current(),
        };
        let consumer: GroupConsumer = cc.create_with_context(ctx).map_err(|e| BusError::kafka("create consumer", e))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(|e| BusError::kafka("subscribe", e))?;
        let consumer = Arc::new(consumer);
        let lag = Arc::new(Mutex::new(Vec::new()));
        let lag_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let (consumer, assignment, lag, stop) =
                (consumer.clone(), assignment.clone(), lag.clone(), lag_stop.clone());
            std::thread::Builder::new()
                .name("kafka-lag".into())
                .spawn(move || lag_reader(consumer, assignment, lag, stop))
                .map_err(|e| BusError::InvalidMessage(format!("cannot start the lag reader thread: {e}")))?;
        }
        Ok(Self { consumer, events: rx, assignment, stash: None, lag, lag_stop, handover })
    }

    fn on_event(&mut self, ev: SubscriberEvent) -> SubscriberEvent {
        if let SubscriberEvent::Revoked(tps) = &ev
            && let Some(m) = &self.stash
            && tps.iter().any(|tp| tp.topic == m.topic && tp.partition == m.partition)
        {
            // The partition is gone: its new owner reads this message again from the committed offset.
            self.stash = None;
        }
        ev
    }
}

/// Converts a consumed message into an owned [`InboundMessage`].
pub(crate) fn inbound(m: &BorrowedMessage<'_>) -> InboundMessage {
    let headers = m
        .headers()
        .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
        .unwrap_or_default();
    InboundMessage {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(Bytes::copy_from_slice).unwrap_or_default(),
        payload: m.payload().map(Bytes::copy_from_slice),
        headers,
        timestamp: m.timestamp().to_millis().and_then(chrono::DateTime::from_timestamp_millis),
    }
}

fn tpl_of(partitions: &[TopicPartition]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for tp in partitions {
        tpl.add_partition(&tp.topic, tp.partition);
    }
    tpl
}

/// Commits through the group coordinator.
struct KafkaCommitter {
    consumer: Arc<GroupConsumer>,
}

#[async_trait]
impl Committer for KafkaCommitter {
    async fn commit(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), BusError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(next_offset))
            .map_err(|e| BusError::kafka("commit", e))?;
        let consumer = self.consumer.clone();
        // A synchronous commit blocks its thread until the coordinator answers.
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| BusError::InvalidMessage(format!("commit task failed: {e}")))?
            .map_err(|e| BusError::kafka("commit", e))
    }
}

#[async_trait]
impl Subscriber for KafkaSubscriber {
    async fn lag(&self) -> Vec<(TopicPartition, i64)> {
        let owned = self.assignment.lock().clone();
        self.lag.lock().iter().filter(|(tp, _)| owned.contains(tp)).cloned().collect()
    }

    async fn next_event(&mut self) -> Result<SubscriberEvent, BusError> {
        loop {
            if let Ok(ev) = self.events.try_recv() {
                return Ok(self.on_event(ev));
            }
            if let Some(m) = self.stash.take() {
                return Ok(SubscriberEvent::Message(m));
            }
            let consumer = self.consumer.clone();
            let received = tokio::select! {
                biased;
                ev = self.events.recv() => match ev {
                    Some(ev) => return Ok(self.on_event(ev)),
                    None => return Err(BusError::Closed),
                },
                r = consumer.recv() => r.map(|m| inbound(&m)),
            };
            match received {
                Ok(m) => {
                    if self.events.is_empty() {
                        return Ok(SubscriberEvent::Message(m));
                    }
                    // A rebalance happened while this message was fetched: report it first.
                    self.stash = Some(m);
                }
                Err(e) => {
                    let err = BusError::kafka("consume", e);
                    if err.is_retryable() {
                        // librdkafka reconnects by itself; transient consume errors are informational.
                        tracing::warn!(error = %err, "kafka consume error, continuing");
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    fn committer(&self) -> Arc<dyn Committer> {
        Arc::new(KafkaCommitter { consumer: self.consumer.clone() })
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.lock().iter().cloned().collect()
    }

    fn pause(&self, partitions: &[TopicPartition]) -> Result<(), BusError> {
        self.consumer.pause(&tpl_of(partitions)).map_err(|e| BusError::kafka("pause", e))
    }

    fn resume(&self, partitions: &[TopicPartition]) -> Result<(), BusError> {
        self.consumer.resume(&tpl_of(partitions)).map_err(|e| BusError::kafka("resume", e))
    }

    fn hold_revocations(&self) -> bool {
        self.handover.hold.store(true, std::sync::atomic::Ordering::SeqCst);
        true
    }

    fn handed_over(&self) -> Result<(), BusError> {
        self.complete_handover()
    }

    async fn close(self: Box<Self>) -> Result<(), BusError> {
        // Leaving: revocations are no longer held, and one still open is completed first.
        self.handover.hold.store(false, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = self.complete_handover() {
            tracing::warn!(error = %e, "completing a held revocation at close failed");
        }
        let consumer = self.consumer.clone();
        drop(self);
        // Leaving the group (in the consumer's drop) waits for the coordinator: keep it off the runtime.
        tokio::task::spawn_blocking(move || {
            consumer.unsubscribe();
            drop(consumer);
        })
        .await
        .map_err(|e| BusError::InvalidMessage(format!("close task failed: {e}")))
    }
}

/// Creates missing topics through the admin API (compacted ones with `cleanup.policy=compact`).
/// Topics that already exist are left as they are, so brokers without CreateTopics (librdkafka's
/// MockCluster) work when the topics were created beforehand.
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[TopicSpec]) -> Result<(), BusError> {
    if topics.is_empty() {
        return Ok(());
    }
    let cc = cfg.client_config();
    let timeout = cfg.timeout;
    let admin: AdminClient<DefaultClientContext> =
        cc.create().map_err(|e| BusError::kafka("create admin client", e))?;
    let admin = Arc::new(admin);
    let existing = {
        let admin = admin.clone();
        // Listing all topics never triggers auto-creation (asking for one topic might).
        tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, timeout))
            .await
            .map_err(|e| BusError::InvalidMessage(format!("metadata task failed: {e}")))?
            .map_err(|e| BusError::kafka("fetch metadata", e))?
    };
    let known: HashMap<String, usize> =
        existing.topics().iter().map(|t| (t.name().to_owned(), t.partitions().len())).collect();
    let missing: Vec<&TopicSpec> = topics.iter().filter(|t| !known.contains_key(&t.name)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !cfg.create_topics {
        let names: Vec<&str> = missing.iter().map(|t| t.name.as_str()).collect();
        return Err(BusError::config(
            "create_topics",
            format!("topics {names:?} do not exist and creation is disabled"),
        ));
    }
    let new_topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| {
            let nt = NewTopic::new(&t.name, cfg.topic_partitions, TopicReplication::Fixed(cfg.replication_factor));
            if t.compacted { nt.set("cleanup.policy", "compact") } else { nt }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    let results =
        admin.create_topics(new_topics.iter(), &opts).await.map_err(|e| BusError::kafka("create topics", e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                tracing::error!(topic = %name, error = %code, "cannot create topic");
                return Err(BusError::kafka("create topics", KafkaError::AdminOp(code)));
            }
        }
    }
    Ok(())
}

/// The partition count of `topic` (metadata request).
pub async fn topic_partitions(cfg: &KafkaConfig, topic: &str) -> Result<usize, BusError> {
    let admin: AdminClient<TracingContext> = cfg
        .client_config()
        .create_with_context(TracingContext::current())
        .map_err(|e| BusError::kafka("create admin client", e))?;
    let topic = topic.to_owned();
    let timeout = cfg.timeout;
    tokio::task::spawn_blocking(move || partition_count(admin.inner(), &topic, timeout))
        .await
        .map_err(|e| BusError::InvalidMessage(format!("metadata task failed: {e}")))?
}

/// The librdkafka client config for a plain (group-less) consumer, used by the state store.
pub(crate) fn plain_consumer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut cc = cfg.client_config();
    cc.set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("group.id", "dastra-connect-state-reader");
    if !cfg.properties.contains_key("queued.max.messages.kbytes") {
        // librdkafka prefetches up to 64 MiB by default, in its own (C) heap: a store loading a
        // large topic kept that much of freed buffers in the process for good (measured: +32 B
        // per ledger entry at 1 M entries). 8 MiB: 140 B per entry, 1 M entries loaded in 9.3 s
        // instead of 6.3 s (4 MiB: 149 B, 12.2 s; 16 MiB: 164 B, 5.7 s; BENCHMARKS.md §5c).
        cc.set("queued.max.messages.kbytes", "8192");
    }
    cc
}

/// The partition count of `topic` (metadata request, blocking; call from a blocking thread).
pub(crate) fn partition_count<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<usize, BusError> {
    let md = client.fetch_metadata(Some(topic), timeout).map_err(|e| BusError::kafka("fetch metadata", e))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| BusError::config("topic", format!("topic `{topic}` not found in metadata")))?;
    if let Some(err) = t.error() {
        return Err(BusError::kafka("fetch metadata", KafkaError::MetadataFetch(err.into())));
    }
    Ok(t.partitions().len())
}

/// Where [`read_backlog`] starts in each partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BacklogStart {
    /// The oldest message still on the broker.
    Beginning,
    /// The offsets group `group` committed (read, never written; a partition the group never
    /// committed starts at the beginning, as a new group's `auto.offset.reset: earliest` would).
    Committed(String),
    /// The messages whose timestamp is at or after this instant (milliseconds since the epoch),
    /// found by reading from the beginning (brokers differ in how they answer a ListOffsets by
    /// time — librdkafka's MockCluster answers none — but every message carries its timestamp).
    Since(i64),
}

/// Reads every message of `topics` from `start` up to the high watermark each partition had when
/// the call began, without joining any consumer group and without committing anything: the
/// partitions are assigned directly (no rebalance of any group) and the consumer's own group id is
/// a throw-away one. Blocks a thread of the blocking pool.
pub async fn read_backlog(
    cfg: &KafkaConfig,
    topics: &[String],
    start: BacklogStart,
) -> Result<Vec<InboundMessage>, BusError> {
    let cfg = cfg.clone();
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || read_backlog_blocking(&cfg, &topics, &start))
        .await
        .map_err(|e| BusError::InvalidMessage(format!("backlog reader task failed: {e}")))?
}

fn read_backlog_blocking(
    cfg: &KafkaConfig,
    topics: &[String],
    start: &BacklogStart,
) -> Result<Vec<InboundMessage>, BusError> {
    let mut cc = plain_consumer_config(cfg);
    // Committed offsets are read under the real group's id (an OffsetFetch, which neither joins the
    // group nor writes); otherwise a throw-away id. Auto-commit is off either way and nothing here
    // calls commit.
    let group = match start {
        BacklogStart::Committed(g) => g.clone(),
        _ => format!("dastra-connect-plan-{}", std::process::id()),
    };
    cc.set("group.id", &group);
    let consumer: BaseConsumer<TracingContext> =
        cc.create_with_context(TracingContext::current()).map_err(|e| BusError::kafka("create consumer", e))?;
    let timeout = cfg.timeout;
    // (topic, partition, first offset to read, high watermark)
    let mut ranges: Vec<(String, i32, i64, i64)> = Vec::new();
    for topic in topics {
        let count = partition_count(consumer.client(), topic, timeout)?;
        let mut all = TopicPartitionList::new();
        for p in 0..count as i32 {
            all.add_partition(topic, p);
        }
        let committed = match start {
            BacklogStart::Committed(_) => Some(
                consumer
                    .committed_offsets(all.clone(), timeout)
                    .map_err(|e| BusError::kafka("committed offsets", e))?,
            ),
            _ => None,
        };
        for p in 0..count as i32 {
            let (low, high) =
                consumer.fetch_watermarks(topic, p, timeout).map_err(|e| BusError::kafka("fetch watermarks", e))?;
            let from = match &committed {
                Some(c) => match c.find_partition(topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => low,
                },
                None => low,
            };
            let from = from.max(low);
            if from < high {
                ranges.push((topic.clone(), p, from, high));
            }
        }
    }
    let mut out = Vec::new();
    if ranges.is_empty() {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p, from, _) in &ranges {
        tpl.add_partition_offset(t, *p, Offset::Offset(*from)).map_err(|e| BusError::kafka("assign", e))?;
    }
    consumer.assign(&tpl).map_err(|e| BusError::kafka("assign", e))?;
    let mut remaining: HashMap<(String, i32), i64> = ranges.iter().map(|(t, p, _, h)| ((t.clone(), *p), *h)).collect();
    let mut last_progress = std::time::Instant::now();
    while !remaining.is_empty() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last_progress = std::time::Instant::now();
                let k = (m.topic().to_owned(), m.partition());
                let Some(&high) = remaining.get(&k) else { continue };
                let recent = match start {
                    BacklogStart::Since(ms) => m.timestamp().to_millis().is_none_or(|t| t >= *ms),
                    _ => true,
                };
                if m.offset() < high && recent {
                    out.push(inbound(&m));
                }
                if m.offset() + 1 >= high {
                    remaining.remove(&k);
                }
            }
            Some(Err(e)) => return Err(BusError::kafka("read backlog", e)),
            None => {
                // Offsets with no message (transaction markers, compaction) move the position
                // without delivering anything: a partition whose position reached its high
                // watermark is done.
                if let Ok(pos) = consumer.position() {
                    for e in pos.elements() {
                        if let (Offset::Offset(o), Some(&high)) =
                            (e.offset(), remaining.get(&(e.topic().to_owned(), e.partition())))
                            && o >= high
                        {
                            remaining.remove(&(e.topic().to_owned(), e.partition()));
                        }
                    }
                }
                if !remaining.is_empty() && last_progress.elapsed() > timeout.max(Duration::from_secs(10)) {
                    let left: Vec<String> = remaining.keys().map(|(t, p)| format!("{t}[{p}]")).collect();
                    return Err(BusError::config(
                        "bus",
                        format!(
                            "no message for {:?} while reading the backlog of {}",
                            last_progress.elapsed(),
                            left.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka is built with TLS and SASL: a SASL_SSL/SCRAM configuration is accepted.
    #[test]
    fn tls_and_sasl_properties_pass_through() {
        let mut cfg = KafkaConfig::new("127.0.0.1:1");
        cfg.sasl_username = Some("user".into());
        cfg.sasl_password = Some(crate::config::Secret::new("pw"));
        cfg.properties.insert("security.protocol".into(), "SASL_SSL".into());
        cfg.properties.insert("sasl.mechanism".into(), "SCRAM-SHA-512".into());
        cfg.validate().unwrap();
        KafkaPublisher::new(&cfg).expect("librdkafka accepts SASL_SSL + SCRAM");
        let mut bad = cfg.clone();
        bad.properties.insert("security.protocol".into(), "NOT_A_PROTOCOL".into());
        let err = KafkaPublisher::new(&bad).err().expect("invalid property value");
        assert_eq!(crate::Classify::class(&err), crate::ErrorClass::Fatal);
    }
}
