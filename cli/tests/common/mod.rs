//! Shared by the CLI tests that run a `dastra_sink` named `sink` as a child process on Kafka: a
//! MockCluster with every topic the sink uses created beforehand (the mock has no CreateTopics),
//! and the `bus:` YAML block for the child's config file.

#![allow(dead_code)]

use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::AssetType;
use dastra_connect_core::event::{Asset, ChangeEvent, EntityKey, EntityKind, Payload, sequence_from_u64};
use dastra_connect_core::testkit::{self, MockKafka};

/// The cluster (keep it alive), the YAML lines under `bus:`, and the in-process bus config.
/// Sessions are short: the MockCluster hands a group's partitions to a new member (a restarted
/// sink, a second `dlq redrive`) only once the previous member's session expired.
pub fn kafka_for_sink(change_partitions: i32) -> (MockKafka, String, BusConfig) {
    let kafka = testkit::mock_kafka(1);
    let topics = Topics::default();
    for kind in EntityKind::ALL {
        kafka.create_topic(&topics.changes(kind), change_partitions);
    }
    kafka.create_topic(&topics.dlq(), 1);
    for s in ["ledger", "pending", "parked"] {
        kafka.create_topic(&topics.state(&format!("{s}-sink")), 1);
    }
    let yaml = format!(
        "  type: kafka\n  brokers: \"{}\"\n  create_topics: false\n  properties:\n    session.timeout.ms: \"6000\"\n    heartbeat.interval.ms: \"500\"\n",
        kafka.bootstrap_servers()
    );
    let mut cfg = kafka.kafka_config();
    cfg.create_topics = false;
    (kafka, yaml, BusConfig::Kafka(cfg))
}

/// A Software Asset event for `key` at version `v` (its label: the key's last part).
pub fn asset_event(key: &str, v: u64, description: &str) -> ChangeEvent {
    let data = Payload::Asset(Asset {
        label: Some(key.rsplit(':').next().unwrap().to_owned()),
        asset_type: Some(AssetType::Software),
        description: Some(description.into()),
        ..Default::default()
    });
    ChangeEvent::new("/connectors/t", EntityKey::parse(key).unwrap(), sequence_from_u64(v), chrono::Utc::now(), data)
        .unwrap()
}
