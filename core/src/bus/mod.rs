//! The bus: [`Publisher`] and [`Subscriber`] over Kafka (rdkafka) and NATS JetStream (async-nats).
//!
//! The bus moves raw bytes and headers; the event and codec modules put CloudEvents attributes in
//! the headers (binary content mode) and the encoded data in the payload.
//!
//! Guarantees, the same on both buses:
//! - **Keyed, acknowledged publish**: [`Publisher::publish`] returns only when the broker has
//!   acknowledged the message (Kafka `acks=all` with idempotence; JetStream publish ack).
//!   [`Publisher::publish_batch`] pipelines many messages and waits for every ack.
//! - **Same partition for a key on both buses**: Kafka's default murmur2 partitioner
//!   ([`partition::partition_for`]); librdkafka is configured with `partitioner=murmur2_random`
//!   (identical to the Java client), and NATS subjects are `<topic>.<partition>` with the same
//!   function over [`NatsConfig::partitions`].
//! - **Per-key order**: one partition per key, enqueued in call order.
//! - **Manual commit, at-least-once**: nothing is committed until the caller says so with
//!   [`Committer::commit`]`(topic, partition, next_offset)`; what is not committed is delivered again
//!   after a restart or a rebalance.
//! - **Assignment events**: [`SubscriberEvent::Assigned`] / [`SubscriberEvent::Revoked`] (Kafka
//!   consumer-group rebalances; NATS: the partitions this replica owns by `replica_index`/`replicas`).
//!
//! NATS specifics: the message key travels in the `Dastra-Key` header and a tombstone (no payload) as
//! `Dastra-Tombstone: 1`; `offset` is the JetStream stream sequence (increasing within a partition but
//! not contiguous). See [`nats`] for the consumer and commit scheme.

mod config;
mod error;
pub mod kafka;
pub mod nats;
mod nats_lease;
pub mod partition;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

pub use config::{BusConfig, KafkaConfig, NatsConfig, NatsTls};
pub use error::{BusError, NatsErrorKind};
pub use partition::{murmur2, partition_for};

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Topic (Kafka topic; on NATS the subject prefix, the partition is appended).
    pub topic: String,
    /// The partitioning key (the entity key).
    pub key: Bytes,
    /// The value; `None` is a tombstone (a delete on compacted topics).
    pub payload: Option<Bytes>,
    /// Headers in order (CloudEvents `ce_*`, `content-type`, `traceparent`…).
    pub headers: Vec<(String, Vec<u8>)>,
}

impl OutboundMessage {
    /// A message with a payload and no headers.
    pub fn new(topic: impl Into<String>, key: impl Into<Bytes>, payload: impl Into<Bytes>) -> Self {
        Self { topic: topic.into(), key: key.into(), payload: Some(payload.into()), headers: Vec::new() }
    }

    /// A tombstone (no payload) for `key`.
    pub fn tombstone(topic: impl Into<String>, key: impl Into<Bytes>) -> Self {
        Self { topic: topic.into(), key: key.into(), payload: None, headers: Vec::new() }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Where the broker stored a published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delivery {
    /// Partition the message went to.
    pub partition: i32,
    /// Kafka offset, or JetStream stream sequence.
    pub offset: i64,
}

/// A consumed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// Topic (on NATS: the subject without its partition suffix).
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Kafka offset, or JetStream stream sequence.
    pub offset: i64,
    /// The key (empty when the producer set none).
    pub key: Bytes,
    /// The value; `None` for a tombstone.
    pub payload: Option<Bytes>,
    /// Headers in order (NATS: without the bus's own `Dastra-Key`/`Dastra-Tombstone`).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Broker or producer timestamp, when known.
    pub timestamp: Option<DateTime<Utc>>,
}

impl InboundMessage {
    /// The first header named `name` (case-sensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }

    /// The offset to commit once this message's effect is durable.
    pub fn next_offset(&self) -> i64 {
        self.offset + 1
    }

    /// Its topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

/// A topic and a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds one.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self { topic: topic.into(), partition }
    }

    /// A short text for logs: `topic[0,1,2] other[5]` (a sink owns dozens of partitions; their
    /// `Debug` form ran to kilobytes per line).
    pub fn summary(tps: &[TopicPartition]) -> String {
        let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = std::collections::BTreeMap::new();
        for tp in tps {
            by_topic.entry(tp.topic.as_str()).or_default().push(tp.partition);
        }
        by_topic
            .into_iter()
            .map(|(t, mut ps)| {
                ps.sort_unstable();
                let list: Vec<String> = ps.iter().map(i32::to_string).collect();
                format!("{t}[{}]", list.join(","))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod summary_tests {
    use super::TopicPartition;

    #[test]
    fn partitions_are_summarised_per_topic() {
        let tps = [TopicPartition::new("b", 2), TopicPartition::new("a", 1), TopicPartition::new("b", 0)];
        assert_eq!(TopicPartition::summary(&tps), "a[1] b[0,2]");
    }
}

/// What a subscriber delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberEvent {
    /// A message.
    Message(InboundMessage),
    /// Partitions newly owned by this consumer (before their messages arrive).
    Assigned(Vec<TopicPartition>),
    /// Partitions no longer owned: stop work on them; commits for them may fail.
    Revoked(Vec<TopicPartition>),
}

/// A topic to create if missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// `cleanup.policy=compact` (state topics) instead of delete.
    pub compacted: bool,
}

impl TopicSpec {
    /// A normal (delete-policy) topic.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), compacted: false }
    }
    /// A compacted topic.
    pub fn compacted(name: impl Into<String>) -> Self {
        Self { name: name.into(), compacted: true }
    }
}

/// Publishes keyed messages and waits for the broker's acknowledgement.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes one message; returns once the broker has acknowledged it (durable).
    async fn publish(&self, msg: OutboundMessage) -> Result<Delivery, BusError>;

    /// Publishes many messages pipelined (enqueued in order, so per-key order holds) and waits for
    /// every acknowledgement. Deliveries are in input order. On error some messages may have been
    /// stored: the caller retries the whole batch (at-least-once; consumers tolerate duplicates).
    async fn publish_batch(&self, msgs: Vec<OutboundMessage>) -> Result<Vec<Delivery>, BusError>;
}

/// Commits consumed positions. Cloneable (behind an `Arc`) so a worker can commit while another
/// task receives.
#[async_trait]
pub trait Committer: Send + Sync {
    /// Commits `topic`/`partition` up to `next_offset` (exclusive: the offset of the next message
    /// to read, i.e. last processed + 1). Returns when the broker has stored it.
    async fn commit(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), BusError>;
}

/// Receives messages and assignment changes; nothing is committed unless the caller commits.
#[async_trait]
pub trait Subscriber: Send + Sync {
    /// The next message or assignment change. Waits until there is one.
    async fn next_event(&mut self) -> Result<SubscriberEvent, BusError>;

    /// A handle to commit from any task.
    fn committer(&self) -> Arc<dyn Committer>;

    /// The partitions currently owned.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// Stops delivering messages of these partitions (backpressure, e.g. while the Dastra quota is
    /// exhausted) while [`Subscriber::next_event`] keeps serving assignment changes; keep calling it,
    /// Kafka leaves the group when it is not polled for `max.poll.interval.ms`. Kafka forgets pauses
    /// on a rebalance (newly assigned partitions start resumed). On NATS a pause longer than the
    /// idle heartbeat makes the partition consumer restart at its ack floor: uncommitted messages
    /// come again (at-least-once).
    fn pause(&self, partitions: &[TopicPartition]) -> Result<(), BusError>;

    /// Resumes delivery of paused partitions.
    fn resume(&self, partitions: &[TopicPartition]) -> Result<(), BusError>;

    /// Asks the bus to hold revocations: a [`SubscriberEvent::Revoked`] then leaves the partitions
    /// owned by this member (nobody else gets them yet, and commits on them still count) until
    /// [`Subscriber::handed_over`]. Answers whether the bus does (Kafka); on a bus whose ownership
    /// is static (NATS) there is nothing to hold.
    fn hold_revocations(&self) -> bool {
        false
    }

    /// Completes a held revocation: the work on the revoked partitions is finished or abandoned and
    /// their offsets are committed, so the group may give them to their new owners.
    fn handed_over(&self) -> Result<(), BusError> {
        Ok(())
    }

    /// Commits through [`Subscriber::committer`].
    async fn commit(&self, topic: &str, partition: i32, next_offset: i64) -> Result<(), BusError> {
        self.committer().commit(topic, partition, next_offset).await
    }

    /// Messages not yet committed per owned partition (Kafka: high watermark − committed offset;
    /// NATS: undelivered + unacknowledged messages of the partition's durable consumer). Makes
    /// network calls: poll it every few seconds, not per message. Partitions whose lag cannot be
    /// read right now are left out.
    async fn lag(&self) -> Vec<(TopicPartition, i64)> {
        Vec::new()
    }

    /// Leaves the group / stops the partition consumers. Uncommitted messages will be delivered again.
    async fn close(self: Box<Self>) -> Result<(), BusError>;
}

impl BusConfig {
    /// Creates the topics (Kafka) or the stream (NATS) if missing. Idempotent.
    pub async fn ensure_topics(&self, topics: &[TopicSpec]) -> Result<(), BusError> {
        self.validate()?;
        match self {
            Self::Kafka(k) => kafka::ensure_topics(k, topics).await,
            Self::Nats(n) => {
                let client = nats::connect(n).await?;
                nats::ensure_stream(&nats::jetstream(n, client), n).await.map(|_| ())
            }
        }
    }

    /// How many partitions `topic` has (Kafka: broker metadata; NATS: [`NatsConfig::partitions`]),
    /// e.g. to share a quota by owned partitions.
    pub async fn partition_count(&self, topic: &str) -> Result<usize, BusError> {
        self.validate()?;
        match self {
            Self::Kafka(k) => kafka::topic_partitions(k, topic).await,
            Self::Nats(n) => Ok(n.partitions as usize),
        }
    }

    /// Connects a publisher.
    pub async fn publisher(&self) -> Result<Arc<dyn Publisher>, BusError> {
        self.validate()?;
        Ok(match self {
            Self::Kafka(k) => Arc::new(kafka::KafkaPublisher::new(k)?),
            Self::Nats(n) => Arc::new(nats::NatsPublisher::connect(n).await?),
        })
    }

    /// Connects a subscriber to `topics`; `default_group` names the consumer group (Kafka) or the
    /// durable consumers (NATS) unless the config sets `group_id`.
    pub async fn subscriber(&self, default_group: &str, topics: &[String]) -> Result<Box<dyn Subscriber>, BusError> {
        self.validate()?;
        Ok(match self {
            Self::Kafka(k) => {
                let group = k.group_id.clone().unwrap_or_else(|| default_group.to_owned());
                Box::new(kafka::KafkaSubscriber::new(k, &group, topics)?)
            }
            Self::Nats(n) => {
                let group = n.group_id.clone().unwrap_or_else(|| default_group.to_owned());
                Box::new(nats::NatsSubscriber::connect(n, &group, topics).await?)
            }
        })
    }
}
