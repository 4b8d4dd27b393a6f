//! [`Broker`]: the one way tests pick the bus they run on. Every scenario that runs "on both
//! buses" (CONTRIBUTING.md) takes a `Broker` and is called once with [`Broker::nats`] and once with
//! [`Broker::kafka`]; the `*_big` variants are set up for 10 MiB records.

use crate::bus::BusConfig;
use crate::connector::Topics;
use crate::event::EntityKind;

use super::{MockKafka, NatsServer, mock_kafka};

/// The record size the `*_big` brokers accept: 16 MiB, room for a 10 MiB record plus headers.
pub const BIG_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Partitions of the change topics and of the DLQ of [`Broker::kafka_big`]: enough for a test to
/// give a record over 5 MiB a partition of its own, which the MockCluster needs (it hides a
/// partition past such a record unless it is the partition's only one; see
/// [`MockKafka::with_max_message_bytes`]). The same count in both, so a key has the same partition.
pub const BIG_KAFKA_PARTITIONS: i32 = 16;

/// Partitions of each change topic on [`Broker::kafka`].
const KAFKA_PARTITIONS: i32 = 4;

/// The broker a scenario runs on; dropping it stops the broker.
pub enum Broker {
    /// A real nats-server with JetStream.
    Nats(NatsServer),
    /// librdkafka's MockCluster.
    Kafka(MockKafka),
    /// librdkafka's MockCluster set up for big records ([`Broker::kafka_big`]).
    KafkaBig(MockKafka),
}

impl Broker {
    /// A real nats-server with JetStream on a free port.
    pub async fn nats() -> Self {
        Broker::Nats(NatsServer::start().await)
    }

    /// librdkafka's in-process MockCluster (one broker).
    pub fn kafka() -> Self {
        Broker::Kafka(mock_kafka(1))
    }

    /// A nats-server configured as an operator would for big records: `max_payload: 16777216`
    /// in its config file (the default is 1 MB).
    pub async fn nats_big() -> Self {
        Broker::Nats(NatsServer::start_with_max_payload(BIG_MESSAGE_BYTES).await)
    }

    /// A MockCluster whose clients (publishers, consumers, DLQ producers) have librdkafka
    /// `message.max.bytes: 16777216` (the default is 1 000 000). The change topics and the DLQ
    /// have [`BIG_KAFKA_PARTITIONS`] partitions.
    pub fn kafka_big() -> Self {
        Broker::KafkaBig(mock_kafka(1).with_max_message_bytes(BIG_MESSAGE_BYTES))
    }

    /// Partitions of each change topic.
    pub fn change_partitions(&self) -> u32 {
        match self {
            Broker::Nats(n) => n.nats_config().partitions,
            Broker::Kafka(_) => KAFKA_PARTITIONS as u32,
            Broker::KafkaBig(_) => BIG_KAFKA_PARTITIONS as u32,
        }
    }

    /// True when a record over 5 MiB must be alone in its partition of the change topic and of the
    /// DLQ (the MockCluster; see [`BIG_KAFKA_PARTITIONS`]).
    pub fn big_record_needs_own_partition(&self) -> bool {
        matches!(self, Broker::Kafka(_) | Broker::KafkaBig(_))
    }

    /// The bus config, with every change topic, the DLQ and the state topics of `state_stores`
    /// (store names such as `ledger-sink`, `source-<connector>`) created on Kafka (the MockCluster
    /// has no CreateTopics API, so the config says not to create topics). On NATS nothing is
    /// created here: the stream is made by `BusConfig::ensure_topics`.
    pub async fn bus_with_stores(&self, topics: &Topics, state_stores: &[String]) -> BusConfig {
        match self {
            Broker::Nats(n) => n.bus_config(),
            Broker::Kafka(k) | Broker::KafkaBig(k) => {
                let (changes, dlq) = if matches!(self, Broker::KafkaBig(_)) {
                    (BIG_KAFKA_PARTITIONS, BIG_KAFKA_PARTITIONS)
                } else {
                    (KAFKA_PARTITIONS, 1)
                };
                for kind in EntityKind::ALL {
                    k.create_topic(&topics.changes(kind), changes);
                }
                k.create_topic(&topics.dlq(), dlq);
                for store in state_stores {
                    k.create_topic(&topics.state(store), 1);
                }
                let mut cfg = k.kafka_config();
                cfg.create_topics = false;
                BusConfig::Kafka(cfg)
            }
        }
    }
}
