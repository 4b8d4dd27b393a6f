//! Two Debezium readers in one consumer group on the Kafka MockCluster: a second replica joining and
//! the first one leaving move partitions between them mid-stream, and every row still reaches the
//! change topics (each record's newest version present, none dead-lettered), both replicas having
//! read some of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cdc;

use dastra_connect_test_harness as common;

use std::time::Duration;

use cdc::*;
use common::*;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dastra_connect_debezium::{DebeziumSource, ReaderConfig, ReaderKind};
use serde_json::json;

const TOPIC: &str = "erp.public.suppliers";
const WAIT: Duration = Duration::from_secs(90);
const POLLED: &str = "dastra_connect_records_polled_total";

/// Round `n`: a new name for suppliers 1..=30 (30 keys over the topic's 3 partitions).
fn round(n: i64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    (1..=30)
        .map(|id| {
            let value = event(
                "suppliers",
                "u",
                None,
                Some(row(id, Some(&format!("Supplier {id} v{n}")), Some("FR"))),
                n * 1000 + id,
            );
            (serde_json::to_vec(&json!({"id": id})).unwrap(), Some(serde_json::to_vec(&value).unwrap()))
        })
        .collect()
}

fn all_at(reader: &Reader, n: i64) -> bool {
    let l = reader.latest();
    (1..=30).all(|id| actor_name(&l, "erp", &id.to_string()) == Some(format!("Supplier {id} v{n}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_between_replicas_without_loss() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let mut bus = bus_with_inputs(&broker, &topics, &[TOPIC]).await;
    // A member that leaves is replaced within seconds, not the default 45 s session.
    if let BusConfig::Kafka(k) = &mut bus {
        k.properties.insert("session.timeout.ms".into(), "6000".into());
        k.properties.insert("heartbeat.interval.ms".into(), "500".into());
    }
    let cfg: ReaderConfig = serde_json::from_value(json!({
        "key_system": "erp",
        "consumer": {"linger": "50ms", "batch_size": 7},
        "topics": [{"topic": TOPIC, "mapping": include_str!("../samples/suppliers-actors.jq")}]
    }))
    .unwrap();
    cfg.validate("test", ReaderKind::Debezium).unwrap();
    let reader = Reader::start(&bus, &topics).await;

    produce(&bus, TOPIC, round(1)).await;
    let first = RunningSource::start(&bus, &topics, Box::new(DebeziumSource::new(cfg.clone())));
    reader.wait_until("round 1 by one replica", WAIT, |r| all_at(r, 1)).await;

    // A second replica joins; rounds keep coming until it has read some of them.
    let second = RunningSource::start(&bus, &topics, Box::new(DebeziumSource::new(cfg.clone())));
    let mut n = 1;
    while second.metric(POLLED).unwrap_or(0.0) == 0.0 {
        n += 1;
        assert!(n < 60, "the second replica never got a partition");
        produce(&bus, TOPIC, round(n)).await;
        reader.wait_until("a round while the group rebalances", WAIT, |r| all_at(r, n)).await;
    }

    // The first leaves; the second takes its partitions from their committed offsets.
    first.stop().await;
    n += 1;
    produce(&bus, TOPIC, round(n)).await;
    reader.wait_until("the last round on the remaining replica", WAIT, |r| all_at(r, n)).await;
    second.stop().await;
    assert!(reader.dlq().is_empty());
}
