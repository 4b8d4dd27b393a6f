//! NATS JetStream bus: keyed publish to `<topic>.<partition>` subjects (murmur2, like Kafka) with
//! publish acks, and a subscriber with one durable pull consumer per owned partition.
//!
//! **Ownership.** Replica `replica_index` of `replicas` wants the partitions `p` with
//! `p % replicas == replica_index` (a StatefulSet ordinal fits) and consumes each while it holds the
//! partition's lease ([`super::nats_lease`]): at start it takes the free ones and reports them in one
//! [`SubscriberEvent::Assigned`]; a partition another replica still holds (a rolling restart that
//! changes `replicas`) follows in its own `Assigned` once let go, and a lease lost to another
//! replica is reported as [`SubscriberEvent::Revoked`].
//!
//! **Commit scheme.** Each partition has a durable pull consumer `<group>-<topic>-<p>` with
//! `AckPolicy::All`. Delivered messages are remembered with their ack handle;
//! [`Committer::commit`]`(topic, p, next)` acks (double ack, i.e. confirmed by the server) the
//! highest delivered message below `next`, which with `AckPolicy::All` acks everything before it.
//! Nothing else acks.
//!
//! **Redelivery after a crash, without waiting for `ack_wait`.** When a partition consumer starts
//! (process start, or after the server went away), it reads the durable consumer's ack floor, deletes
//! the consumer and recreates it starting at `ack floor + 1`: every message that was not committed is
//! delivered again at once. Only the lease holder uses the consumer.
//! Redeliveries that JetStream makes on its own (after `ack_wait`) for messages this process already
//! delivered and has not committed are not passed on again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use async_nats::jetstream::{self, AckKind, consumer::AckPolicy, consumer::DeliverPolicy, consumer::pull};
use async_nats::{HeaderMap, HeaderValue};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::nats_lease::{Claim, Leases};
use super::{
    BusError, Committer, Delivery, InboundMessage, NatsConfig, NatsErrorKind, OutboundMessage, Publisher, Subscriber,
    SubscriberEvent, TopicPartition, partition_for,
};

/// Header carrying the message key on NATS (NATS has no key).
pub const KEY_HEADER: &str = "Dastra-Key";
/// Header marking a tombstone (a message without payload) on NATS.
pub const TOMBSTONE_HEADER: &str = "Dastra-Tombstone";

/// Maps an async-nats error kind to the reaction. async-nats has one kind enum per operation; their
/// variant names are shared (`TimedOut`, `JetStream`, `NoResponders`…), so the Debug name decides.
pub(crate) fn kind_of(kind: &impl std::fmt::Debug) -> NatsErrorKind {
    let name = format!("{kind:?}");
    if name.contains("TimedOut") || name.contains("Timeout") || name.contains("NoResponders") {
        NatsErrorKind::Timeout
    } else if name.contains("Authorization") || name.contains("Authentication") {
        NatsErrorKind::Auth
    } else if name.contains("Tls") {
        NatsErrorKind::Tls
    } else if name.contains("InvalidKey") || name.contains("InvalidSubject") || name.contains("InvalidName") {
        NatsErrorKind::Invalid
    } else if name.contains("JetStream") || name.contains("NotFound") {
        NatsErrorKind::JetStream
    } else if name.contains("BrokenPipe") || name.contains("Io") || name.contains("Disconnected") {
        NatsErrorKind::Connection
    } else {
        NatsErrorKind::Other
    }
}

/// Wraps an async-nats `Error<Kind>`.
pub(crate) fn nats_err<K>(op: &'static str, err: async_nats::error::Error<K>) -> BusError
where
    K: Clone + std::fmt::Debug + std::fmt::Display + PartialEq,
{
    let mut kind = kind_of(&err.kind());
    let text = err.to_string();
    if kind == NatsErrorKind::JetStream && (text.contains("temporarily unavailable") || text.contains("503")) {
        // JetStream is electing a leader or restarting: transient, unlike other API errors.
        kind = NatsErrorKind::Timeout;
    }
    BusError::Nats { op, kind, message: text }
}

/// Connects a client with the configured credentials and TLS.
pub async fn connect(cfg: &NatsConfig) -> Result<async_nats::Client, BusError> {
    let mut opts = async_nats::ConnectOptions::new().name("dastra-connect").max_reconnects(None);
    if let (Some(user), Some(pw)) = (&cfg.user, &cfg.password) {
        opts = opts.user_and_password(user.clone(), pw.expose().to_owned());
    }
    if let Some(token) = &cfg.token {
        opts = opts.token(token.expose().to_owned());
    }
    if let Some(seed) = &cfg.nkey {
        opts = opts.nkey(seed.expose().to_owned());
    }
    if let Some(creds) = &cfg.credentials {
        // The error would quote the file; say only that it is malformed.
        opts = opts
            .credentials(creds.expose())
            .map_err(|_| BusError::config("credentials", "not a valid NATS credentials (.creds) document"))?;
    }
    if let Some(tls) = &cfg.tls {
        opts = opts.require_tls(tls.required);
        if let Some(ca) = &tls.ca_path {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert_path, &tls.key_path) {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
    }
    opts = opts.request_timeout(Some(cfg.timeout)).connection_timeout(cfg.timeout);
    let servers: Vec<async_nats::ServerAddr> = cfg
        .servers
        .iter()
        .map(|s| s.parse::<async_nats::ServerAddr>().map_err(|e| BusError::config("servers", format!("`{s}`: {e}"))))
        .collect::<Result<_, _>>()?;
    opts.connect(servers).await.map_err(|e| nats_err("connect", e))
}

/// A JetStream context with the configured timeout.
pub fn jetstream(cfg: &NatsConfig, client: async_nats::Client) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(cfg.timeout);
    js
}

/// Creates the stream if missing, or adds configured subjects it lacks. Idempotent.
pub async fn ensure_stream(js: &jetstream::Context, cfg: &NatsConfig) -> Result<jetstream::stream::Stream, BusError> {
    let wanted = jetstream::stream::Config {
        name: cfg.stream.clone(),
        subjects: cfg.stream_subjects.clone(),
        storage: jetstream::stream::StorageType::File,
        num_replicas: cfg.stream_replicas,
        ..Default::default()
    };
    let mut stream = js.get_or_create_stream(wanted).await.map_err(|e| nats_err("create stream", e))?;
    let info = stream.info().await.map_err(|e| nats_err("stream info", e))?.clone();
    let missing: Vec<String> =
        cfg.stream_subjects.iter().filter(|s| !info.config.subjects.contains(s)).cloned().collect();
    if !missing.is_empty() {
        let mut config = info.config.clone();
        config.subjects.extend(missing);
        js.update_stream(config).await.map_err(|e| nats_err("update stream", e))?;
        stream = js.get_stream(&cfg.stream).await.map_err(|e| nats_err("get stream", e))?;
    }
    Ok(stream)
}

/// True when NATS subject pattern `pattern` (with `*` and `>` wildcards) matches `subject`.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Checks that the stream captures `topic`'s partition subjects, so a wrong topic is a clear
/// configuration error instead of a publish that times out with "no responders".
fn check_topic(cfg_subjects: &[String], topic: &str) -> Result<(), BusError> {
    let probe = subject(topic, 0);
    if topic.is_empty() || topic.contains([' ', '*', '>']) {
        return Err(BusError::InvalidMessage(format!("`{topic}` is not a valid topic for NATS subjects")));
    }
    if cfg_subjects.iter().any(|pat| subject_matches(pat, &probe)) {
        Ok(())
    } else {
        Err(BusError::config(
            "stream_subjects",
            format!("topic `{topic}` (subjects `{topic}.<partition>`) is not captured by {cfg_subjects:?}"),
        ))
    }
}

/// The subject of `topic`'s partition `p`.
pub fn subject(topic: &str, partition: u32) -> String {
    format!("{topic}.{partition}")
}

fn header_map(msg: &OutboundMessage) -> Result<HeaderMap, BusError> {
    let mut headers = HeaderMap::new();
    let text = |what: &str, v: &[u8]| -> Result<String, BusError> {
        match std::str::from_utf8(v) {
            Ok(s) if !s.contains(['\r', '\n']) => Ok(s.to_owned()),
            _ => Err(BusError::InvalidMessage(format!("{what} must be UTF-8 text without line breaks on NATS"))),
        }
    };
    for (k, v) in &msg.headers {
        let value = text(&format!("header `{k}`"), v)?;
        let name: async_nats::HeaderName =
            k.parse().map_err(|_| BusError::InvalidMessage(format!("`{k}` is not a valid NATS header name")))?;
        headers.append(name, HeaderValue::from(value.as_str()));
    }
    headers.insert(KEY_HEADER, HeaderValue::from(text("the key", &msg.key)?.as_str()));
    if msg.payload.is_none() {
        headers.insert(TOMBSTONE_HEADER, "1");
    }
    Ok(headers)
}

/// Publisher to JetStream with publish acks.
pub struct NatsPublisher {
    js: jetstream::Context,
    partitions: u32,
    stream_subjects: Vec<String>,
}

impl NatsPublisher {
    /// Connects and makes sure the stream exists.
    pub async fn connect(cfg: &NatsConfig) -> Result<Self, BusError> {
        let js = jetstream(cfg, connect(cfg).await?);
        ensure_stream(&js, cfg).await?;
        Ok(Self { js, partitions: cfg.partitions, stream_subjects: cfg.stream_subjects.clone() })
    }

    /// Sends `msg` to the server and returns the future of its ack (sending keeps call order).
    async fn send(&self, msg: &OutboundMessage) -> Result<(i32, jetstream::context::PublishAckFuture), BusError> {
        check_topic(&self.stream_subjects, &msg.topic)?;
        let p = partition_for(&msg.key, self.partitions);
        let headers = header_map(msg)?;
        let payload = msg.payload.clone().unwrap_or_default();
        let fut = self
            .js
            .publish_with_headers(subject(&msg.topic, p), headers, payload)
            .await
            .map_err(|e| nats_err("publish", e))?;
        Ok((p as i32, fut))
    }

    async fn await_ack((p, fut): (i32, jetstream::context::PublishAckFuture)) -> Result<Delivery, BusError> {
        let ack = fut.await.map_err(|e| nats_err("publish ack", e))?;
        Ok(Delivery { partition: p, offset: ack.sequence as i64 })
    }
}

#[async_trait]
impl Publisher for NatsPublisher {
    async fn publish(&self, msg: OutboundMessage) -> Result<Delivery, BusError> {
        let sent = self.send(&msg).await?;
        Self::await_ack(sent).await
    }

    async fn publish_batch(&self, msgs: Vec<OutboundMessage>) -> Result<Vec<Delivery>, BusError> {
        // Each pending ack holds one of the context's in-flight permits (5 000) until it is awaited,
        // and sending waits for a free permit: the acks are awaited in their own tasks so that a
        // batch larger than the permit count flows instead of waiting on itself.
        let mut pending = Vec::with_capacity(msgs.len());
        for msg in &msgs {
            let sent = self.send(msg).await?;
            pending.push(tokio::spawn(Self::await_ack(sent)));
        }
        let mut deliveries = Vec::with_capacity(pending.len());
        for task in pending {
            let d = task.await.map_err(|e| BusError::nats("publish ack", NatsErrorKind::Other, e))??;
            deliveries.push(d);
        }
        Ok(deliveries)
    }
}

/// Ack handles of delivered, not yet committed messages, per (topic, partition), by stream sequence.
type PendingAcks = Arc<Mutex<HashMap<(String, i32), BTreeMap<u64, jetstream::message::Acker>>>>;

/// The subscriber: one owner task per wanted partition (it claims the partition's lease, then runs
/// one consumer task per topic while it holds it), all feeding one channel of events.
pub struct NatsSubscriber {
    js: jetstream::Context,
    stream: String,
    durables: Vec<(TopicPartition, String)>,
    rx: mpsc::Receiver<SubscriberEvent>,
    queued: VecDeque<SubscriberEvent>,
    assignment: Vec<TopicPartition>,
    pending: PendingAcks,
    pauses: HashMap<TopicPartition, watch::Sender<bool>>,
    owners: Vec<JoinHandle<()>>,
    leases: Leases,
    /// The leases held, by partition: their current revision (released on close).
    held: HeldLeases,
}

/// Partition → revision of its held lease.
type HeldLeases = Arc<Mutex<HashMap<u32, u64>>>;

/// A durable consumer name for `group`, `topic`, `partition` (letters, digits, `-`, `_`).
pub fn durable_name(group: &str, topic: &str, partition: u32) -> String {
    let clean: String = topic.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("{group}-{clean}-{partition}")
}

struct PartitionTask {
    js: jetstream::Context,
    stream: String,
    topic: String,
    partition: u32,
    /// The subject the consumer reads: `<topic>.<partition>` on the bus stream, the topic itself on
    /// an external stream ([`NatsSubscriber::connect_external`]).
    filter: String,
    durable: String,
    ack_wait: Duration,
    max_ack_pending: i64,
    tx: mpsc::Sender<SubscriberEvent>,
    pending: PendingAcks,
    paused: watch::Receiver<bool>,
}

impl PartitionTask {
    /// Recreates the durable consumer at its ack floor + 1 (see the module doc) and returns it.
    async fn reset_consumer(&self) -> Result<jetstream::consumer::Consumer<pull::Config>, BusError> {
        let stream = self.js.get_stream(&self.stream).await.map_err(|e| nats_err("get stream", e))?;
        let floor = match stream.consumer_info(&self.durable).await {
            Ok(info) => {
                let floor = info.ack_floor.stream_sequence;
                stream.delete_consumer(&self.durable).await.map_err(|e| nats_err("delete consumer", e))?;
                floor
            }
            Err(e) if format!("{:?}", e.kind()).contains("NotFound") || e.to_string().contains("not found") => 0,
            Err(e) => return Err(nats_err("consumer info", e)),
        };
        let deliver_policy =
            if floor == 0 { DeliverPolicy::All } else { DeliverPolicy::ByStartSequence { start_sequence: floor + 1 } };
        let config = pull::Config {
            durable_name: Some(self.durable.clone()),
            filter_subject: self.filter.clone(),
            ack_policy: AckPolicy::All,
            ack_wait: self.ack_wait,
            max_ack_pending: self.max_ack_pending,
            deliver_policy,
            ..Default::default()
        };
        self.pending.lock().remove(&(self.topic.clone(), self.partition as i32));
        stream.create_consumer(config).await.map_err(|e| nats_err("create consumer", e))
    }

    /// Runs until the subscriber is dropped.
    async fn run(self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.consume().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, topic = %self.topic, partition = self.partition, "nats partition consumer restarting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(3));
                }
            }
        }
    }

    /// Consumes until the receiver is gone (`Ok`) or the consumer must be recreated (`Err`).
    async fn consume(&self) -> Result<(), BusError> {
        let consumer = self.reset_consumer().await?;
        let mut messages = consumer.messages().await.map_err(|e| nats_err("pull", e))?;
        let key = (self.topic.clone(), self.partition as i32);
        let mut highest_delivered = 0u64;
        while let Some(item) = messages.next().await {
            let msg = item.map_err(|e| nats_err("pull", e))?;
            let (seq, timestamp) = match msg.info() {
                Ok(info) => {
                    let nanos = info.published.unix_timestamp_nanos();
                    (info.stream_sequence, chrono::DateTime::from_timestamp_nanos(nanos as i64))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "jetstream message without ack info, skipped");
                    continue;
                }
            };
            let (message, acker) = msg.split();
            // Keep the newest ack handle: it is valid for this delivery.
            self.pending.lock().entry(key.clone()).or_default().insert(seq, acker);
            if seq <= highest_delivered {
                // JetStream redelivered after ack_wait: the application still holds it.
                continue;
            }
            highest_delivered = seq;
            let mut headers = Vec::new();
            let mut msg_key = Bytes::new();
            let mut tombstone = false;
            if let Some(h) = &message.headers {
                for (name, values) in h.iter() {
                    let name: &str = name.as_ref();
                    for v in values {
                        match name {
                            KEY_HEADER => msg_key = Bytes::copy_from_slice(v.as_str().as_bytes()),
                            TOMBSTONE_HEADER => tombstone = true,
                            _ => headers.push((name.to_owned(), v.as_str().as_bytes().to_vec())),
                        }
                    }
                }
            }
            // HeaderMap is a hash map: give a stable order.
            headers.sort_by(|a, b| a.0.cmp(&b.0));
            let inbound = InboundMessage {
                topic: self.topic.clone(),
                partition: self.partition as i32,
                offset: seq as i64,
                key: msg_key,
                payload: if tombstone { None } else { Some(message.payload) },
                headers,
                timestamp: Some(timestamp),
            };
            let mut paused = self.paused.clone();
            while *paused.borrow_and_update() {
                if paused.changed().await.is_err() {
                    return Ok(());
                }
            }
            if self.tx.send(SubscriberEvent::Message(inbound)).await.is_err() {
                return Ok(());
            }
        }
        Err(BusError::nats("pull", NatsErrorKind::Connection, "message stream ended"))
    }
}

/// Reads every message of `topics` (all partitions) from `start` up to what the stream held when
/// the call began, through one ephemeral consumer per topic that acknowledges nothing: the durable
/// consumers of the sink (and their ack floors), its partition leases and its stream are left as
/// they are. [`super::kafka::BacklogStart::Committed`] reads each partition's durable consumer's
/// ack floor (`<group>-<topic>-<p>`; a partition without one starts at the beginning).
pub async fn read_backlog(
    cfg: &NatsConfig,
    topics: &[String],
    start: &super::kafka::BacklogStart,
) -> Result<Vec<InboundMessage>, BusError> {
    use super::kafka::BacklogStart;
    let client = connect(cfg).await?;
    let js = jetstream(cfg, client);
    let mut stream = js.get_stream(&cfg.stream).await.map_err(|e| nats_err("get stream", e))?;
    let last = stream.info().await.map_err(|e| nats_err("stream info", e))?.state.last_sequence;
    let mut out = Vec::new();
    for topic in topics {
        // First stream sequence to read, per partition.
        let mut first: HashMap<u32, u64> = HashMap::new();
        for p in 0..cfg.partitions {
            let from = match start {
                BacklogStart::Committed(group) => match stream.consumer_info(durable_name(group, topic, p)).await {
                    Ok(info) => info.ack_floor.stream_sequence + 1,
                    Err(e) if format!("{:?}", e.kind()).contains("NotFound") || e.to_string().contains("not found") => {
                        1
                    }
                    Err(e) => return Err(nats_err("consumer info", e)),
                },
                _ => 1,
            };
            first.insert(p, from);
        }
        let lowest = first.values().copied().min().unwrap_or(1).max(1);
        if lowest > last {
            continue;
        }
        let config = pull::Config {
            filter_subject: format!("{topic}.*"),
            ack_policy: AckPolicy::None,
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: lowest },
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        };
        let consumer = stream.create_consumer(config).await.map_err(|e| nats_err("create consumer", e))?;
        // Messages of the topic from `lowest` when the consumer was made; later ones are not read.
        let mut left = consumer.cached_info().num_pending;
        if left == 0 {
            continue;
        }
        let mut messages = consumer.messages().await.map_err(|e| nats_err("pull", e))?;
        while left > 0 {
            let item = tokio::time::timeout(cfg.timeout.max(Duration::from_secs(10)), messages.next()).await.map_err(
                |_| BusError::nats("pull", NatsErrorKind::Connection, "no message while reading the backlog"),
            )?;
            let Some(item) = item else { break };
            let msg = item.map_err(|e| nats_err("pull", e))?;
            left -= 1;
            let Ok(info) = msg.info() else { continue };
            let (seq, nanos) = (info.stream_sequence, info.published.unix_timestamp_nanos());
            let subject = msg.subject.to_string();
            let Some(partition) = subject.rsplit('.').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
            if seq < first.get(&partition).copied().unwrap_or(1) || seq > last {
                continue;
            }
            let timestamp = chrono::DateTime::from_timestamp_nanos(nanos as i64);
            if let BacklogStart::Since(ms) = start
                && timestamp.timestamp_millis() < *ms
            {
                continue;
            }
            let mut headers = Vec::new();
            let mut key = Bytes::new();
            let mut tombstone = false;
            if let Some(h) = &msg.headers {
                for (name, values) in h.iter() {
                    let name: &str = name.as_ref();
                    for v in values {
                        match name {
                            KEY_HEADER => key = Bytes::copy_from_slice(v.as_str().as_bytes()),
                            TOMBSTONE_HEADER => tombstone = true,
                            _ => headers.push((name.to_owned(), v.as_str().as_bytes().to_vec())),
                        }
                    }
                }
            }
            headers.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(InboundMessage {
                topic: topic.clone(),
                partition: partition as i32,
                offset: seq as i64,
                key,
                payload: if tombstone { None } else { Some(msg.payload.clone()) },
                headers,
                timestamp: Some(timestamp),
            });
        }
        let name = consumer.cached_info().name.clone();
        // Ephemeral: it would go by itself after `inactive_threshold`; gone now is tidier.
        let _ = stream.delete_consumer(&name).await;
    }
    Ok(out)
}

/// Claims, holds and renews the lease of one partition, running its consumers while held.
struct PartitionOwner {
    partition: u32,
    leases: Leases,
    held: HeldLeases,
    tx: mpsc::Sender<SubscriberEvent>,
    pending: PendingAcks,
    /// One consumer per topic, started afresh each time the lease is taken.
    consumers: Vec<PartitionTask>,
}

impl PartitionOwner {
    fn partitions(&self) -> Vec<TopicPartition> {
        self.consumers.iter().map(|c| TopicPartition::new(c.topic.clone(), self.partition as i32)).collect()
    }

    /// Claims until the lease is held (`None`: the subscriber is gone).
    async fn wait_claim(&self) -> Option<u64> {
        let mut waiting_for = None;
        loop {
            if self.tx.is_closed() {
                return None;
            }
            match self.leases.claim(self.partition, false).await {
                Ok(Claim::Held(revision)) => return Some(revision),
                Ok(Claim::Busy(owner)) => {
                    if waiting_for.as_ref() != Some(&owner) {
                        tracing::info!(partition = self.partition, holder = %owner, "partition held by another replica; waiting for its lease");
                        waiting_for = Some(owner);
                    }
                }
                Err(e) => {
                    tracing::warn!(partition = self.partition, error = %e, "claiming a partition lease failed; retrying")
                }
            }
            tokio::time::sleep(self.leases.renew_every().min(Duration::from_secs(1))).await;
        }
    }

    /// Runs until the subscriber is gone. `initial`: a lease taken (and announced) at connect.
    async fn run(self, mut initial: Option<u64>) {
        loop {
            let announced = initial.is_some();
            let mut revision = match initial.take() {
                Some(r) => r,
                None => match self.wait_claim().await {
                    Some(r) => r,
                    None => return,
                },
            };
            self.held.lock().insert(self.partition, revision);
            let tps = self.partitions();
            if !announced {
                tracing::info!(partition = self.partition, "partition lease taken");
                if self.tx.send(SubscriberEvent::Assigned(tps.clone())).await.is_err() {
                    return;
                }
            }
            // Dropping the set (lease lost, or this task aborted) aborts the consumers.
            let mut running = tokio::task::JoinSet::new();
            for c in &self.consumers {
                running.spawn(c.clone_task().run().in_current_span());
            }
            let mut renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(self.leases.renew_every()).await;
                if self.tx.is_closed() {
                    return;
                }
                match self.leases.renew(self.partition, revision).await {
                    Ok(Some(r)) => {
                        revision = r;
                        renewed = tokio::time::Instant::now();
                        self.held.lock().insert(self.partition, r);
                    }
                    Ok(None) => {
                        tracing::warn!(
                            partition = self.partition,
                            "partition lease taken by another replica; stopping its consumers"
                        );
                        break;
                    }
                    Err(e) if renewed.elapsed() >= self.leases.give_up_after() => {
                        tracing::warn!(partition = self.partition, error = %e, "partition lease not renewed in time; giving the partition up");
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(partition = self.partition, error = %e, "renewing a partition lease failed; retrying")
                    }
                }
            }
            drop(running);
            self.held.lock().remove(&self.partition);
            // Nothing of it may be acked by this replica any more: the new owner redelivers it.
            for tp in &tps {
                self.pending.lock().remove(&(tp.topic.clone(), tp.partition));
            }
            if self.tx.send(SubscriberEvent::Revoked(tps)).await.is_err() {
                return;
            }
        }
    }
}

impl PartitionTask {
    fn clone_task(&self) -> PartitionTask {
        PartitionTask {
            js: self.js.clone(),
            stream: self.stream.clone(),
            topic: self.topic.clone(),
            partition: self.partition,
            filter: self.filter.clone(),
            durable: self.durable.clone(),
            ack_wait: self.ack_wait,
            max_ack_pending: self.max_ack_pending,
            tx: self.tx.clone(),
            pending: self.pending.clone(),
            paused: self.paused.clone(),
        }
    }
}

impl NatsSubscriber {
    /// Connects, makes sure the stream exists, and starts an owner per wanted partition (see
    /// [`super::nats_lease`]). The leases free at start are taken at once and reported in one
    /// [`SubscriberEvent::Assigned`]; the others follow as their holders let them go.
    pub async fn connect(cfg: &NatsConfig, group: &str, topics: &[String]) -> Result<Self, BusError> {
        for topic in topics {
            check_topic(&cfg.stream_subjects, topic)?;
        }
        let js = jetstream(cfg, connect(cfg).await?);
        ensure_stream(&js, cfg).await?;
        Self::start(cfg, js, group, &cfg.stream, topics, cfg.owned_partitions(), subject).await
    }

    /// Reads `subjects` of a JetStream stream the bus does not own (e.g. the one Debezium Server's
    /// `nats-jetstream` sink writes to: one subject per table, named like the Kafka topic, no key
    /// header): each subject is a topic with the one partition 0 read through the durable consumer
    /// `<group>-<subject>-0`, in stream order. The stream must exist and capture the subjects. Every
    /// replica wants partition 0: the lease ([`super::nats_lease`]) keeps one consumer per group,
    /// the others take over when it goes away. Commits and redelivery are the bus stream's.
    pub async fn connect_external(
        cfg: &NatsConfig,
        group: &str,
        stream: &str,
        subjects: &[String],
    ) -> Result<Self, BusError> {
        let js = jetstream(cfg, connect(cfg).await?);
        let mut handle = js.get_stream(stream).await.map_err(|e| nats_err("get stream", e))?;
        let captured = handle.info().await.map_err(|e| nats_err("stream info", e))?.config.subjects.clone();
        for s in subjects {
            if s.is_empty() || s.contains([' ', '*', '>']) {
                return Err(BusError::InvalidMessage(format!("`{s}` is not a NATS subject to read")));
            }
            if !captured.iter().any(|pat| subject_matches(pat, s)) {
                return Err(BusError::config(
                    "nats_stream",
                    format!("subject `{s}` is not captured by stream `{stream}` (subjects {captured:?})"),
                ));
            }
        }
        Self::start(cfg, js, group, stream, subjects, vec![0], |topic, _| topic.to_owned()).await
    }

    /// Starts an owner per partition of `partitions`, each consuming `topics` of `stream` (the
    /// subject of a topic's partition: `filter`).
    async fn start(
        cfg: &NatsConfig,
        js: jetstream::Context,
        group: &str,
        stream: &str,
        topics: &[String],
        partitions: Vec<u32>,
        filter: fn(&str, u32) -> String,
    ) -> Result<Self, BusError> {
        let leases = Leases::open(&js, cfg, group).await?;
        let (tx, rx) = mpsc::channel(1024);
        let pending: PendingAcks = Arc::default();
        let held: HeldLeases = Arc::default();
        let mut owners = Vec::new();
        let mut assignment = Vec::new();
        let mut pauses = HashMap::new();
        let mut durables = Vec::new();
        for p in partitions {
            let mut consumers = Vec::new();
            for topic in topics {
                let tp = TopicPartition::new(topic.clone(), p as i32);
                durables.push((tp.clone(), durable_name(group, topic, p)));
                let (pause_tx, paused) = watch::channel(false);
                pauses.insert(tp, pause_tx);
                consumers.push(PartitionTask {
                    js: js.clone(),
                    stream: stream.to_owned(),
                    topic: topic.clone(),
                    partition: p,
                    filter: filter(topic, p),
                    durable: durable_name(group, topic, p),
                    ack_wait: cfg.ack_wait,
                    max_ack_pending: cfg.max_ack_pending,
                    tx: tx.clone(),
                    pending: pending.clone(),
                    paused,
                });
            }
            let owner = PartitionOwner {
                partition: p,
                leases: leases.clone(),
                held: held.clone(),
                tx: tx.clone(),
                pending: pending.clone(),
                consumers,
            };
            let initial = match leases.claim(p, true).await? {
                Claim::Held(revision) => {
                    assignment.extend(owner.partitions());
                    Some(revision)
                }
                // The owner says so when it starts waiting.
                Claim::Busy(_) => None,
            };
            owners.push(tokio::spawn(owner.run(initial).in_current_span()));
        }
        let queued = VecDeque::from([SubscriberEvent::Assigned(assignment.clone())]);
        tracing::debug!(holder = leases.holder(), "nats subscriber started");
        Ok(Self {
            js,
            stream: stream.to_owned(),
            durables,
            rx,
            queued,
            assignment,
            pending,
            pauses,
            owners,
            leases,
            held,
        })
    }
}

impl NatsSubscriber {
    fn set_paused(&self, partitions: &[TopicPartition], paused: bool) -> Result<(), BusError> {
        for tp in partitions {
            let tx = self.pauses.get(tp).ok_or_else(|| {
                BusError::InvalidMessage(format!(
                    "partition {}/{} is not owned by this replica",
                    tp.topic, tp.partition
                ))
            })?;
            tx.send_replace(paused);
        }
        Ok(())
    }
}

impl Drop for NatsSubscriber {
    fn drop(&mut self) {
        // The owners' consumer sets go with them. Held leases expire after `lease_ttl`.
        for t in &self.owners {
            t.abort();
        }
    }
}

struct NatsCommitter {
    pending: PendingAcks,
}

#[async_trait]
impl Committer for NatsCommitter {
    async fn commit(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), BusError> {
        let key = (topic.to_owned(), partition);
        let below = {
            let mut map = self.pending.lock();
            let Some(acks) = map.get_mut(&key) else { return Ok(()) };
            let keep = acks.split_off(&(next_offset.max(0) as u64));
            std::mem::replace(acks, keep)
        };
        let Some((_, acker)) = below.iter().next_back() else { return Ok(()) };
        if let Err(e) = acker.double_ack_with(AckKind::Ack).await {
            // Put the handles back so a retry can ack them.
            self.pending.lock().entry(key).or_default().extend(below);
            return Err(BusError::nats("commit", NatsErrorKind::Timeout, e));
        }
        Ok(())
    }
}

#[async_trait]
impl Subscriber for NatsSubscriber {
    async fn lag(&self) -> Vec<(TopicPartition, i64)> {
        let Ok(stream) = self.js.get_stream(&self.stream).await else { return Vec::new() };
        let mut out = Vec::new();
        for (tp, durable) in self.durables.iter().filter(|(tp, _)| self.assignment.contains(tp)) {
            if let Ok(info) = stream.consumer_info(durable).await {
                out.push((tp.clone(), (info.num_pending + info.num_ack_pending as u64) as i64));
            }
        }
        out
    }

    async fn next_event(&mut self) -> Result<SubscriberEvent, BusError> {
        let event = match self.queued.pop_front() {
            Some(ev) => ev,
            None => {
                let mut ev = self.rx.recv().await.ok_or(BusError::Closed)?;
                // Leases taken together are reported together (one barrier in the consumer).
                if let SubscriberEvent::Assigned(tps) = &mut ev {
                    while let Ok(next) = self.rx.try_recv() {
                        match next {
                            SubscriberEvent::Assigned(more) => tps.extend(more),
                            other => {
                                self.queued.push_back(other);
                                break;
                            }
                        }
                    }
                }
                ev
            }
        };
        match &event {
            SubscriberEvent::Assigned(tps) => {
                for tp in tps {
                    if !self.assignment.contains(tp) {
                        self.assignment.push(tp.clone());
                    }
                }
            }
            SubscriberEvent::Revoked(tps) => self.assignment.retain(|tp| !tps.contains(tp)),
            SubscriberEvent::Message(_) => {}
        }
        Ok(event)
    }

    fn committer(&self) -> Arc<dyn Committer> {
        Arc::new(NatsCommitter { pending: self.pending.clone() })
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.clone()
    }

    fn pause(&self, partitions: &[TopicPartition]) -> Result<(), BusError> {
        self.set_paused(partitions, true)
    }

    fn resume(&self, partitions: &[TopicPartition]) -> Result<(), BusError> {
        self.set_paused(partitions, false)
    }

    async fn close(self: Box<Self>) -> Result<(), BusError> {
        // Stop renewing and consuming, then let the leases go: the next owners start at once.
        for t in &self.owners {
            t.abort();
        }
        let held: Vec<(u32, u64)> = self.held.lock().drain().collect();
        for (partition, revision) in held {
            self.leases.release(partition, revision).await;
        }
        drop(self);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_like_nats() {
        assert!(subject_matches("dastra.>", "dastra.changes.asset.3"));
        assert!(subject_matches("dastra.*.asset.*", "dastra.changes.asset.3"));
        assert!(!subject_matches("dastra.*", "dastra.changes.asset"));
        assert!(!subject_matches("dastra.>", "dastra"));
        assert!(subject_matches("a.b", "a.b"));
        assert!(check_topic(&["dastra.>".into()], "other.topic").is_err());
        assert!(check_topic(&["dastra.>".into()], "dastra.changes.asset").is_ok());
    }
}
