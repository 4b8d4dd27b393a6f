//! Consumer lag as the bus reports it: every published message counts until it is committed, on
//! Kafka (MockCluster) and NATS (nats-server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dastra_connect_core::bus::{BusConfig, OutboundMessage, Subscriber, SubscriberEvent, TopicSpec};
use dastra_connect_core::testkit::{self, NatsServer};

async fn total_lag(sub: &dyn Subscriber) -> i64 {
    sub.lag().await.iter().map(|(_, n)| *n).sum()
}

async fn scenario(bus: BusConfig, topic: String) {
    bus.ensure_topics(&[TopicSpec::new(topic.clone())]).await.unwrap();
    let publisher = bus.publisher().await.unwrap();
    let msgs =
        (0..10).map(|i| OutboundMessage::new(topic.clone(), format!("k{i}").into_bytes(), b"v".to_vec())).collect();
    publisher.publish_batch(msgs).await.unwrap();

    let mut sub = bus.subscriber(&testkit::unique("lag"), std::slice::from_ref(&topic)).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 10 {
        match tokio::time::timeout(Duration::from_secs(30), sub.next_event()).await.unwrap().unwrap() {
            SubscriberEvent::Message(m) => got.push(m),
            _ => continue,
        }
    }
    // Consumed but not committed: everything still counts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let lag = total_lag(sub.as_ref()).await;
        if lag == 10 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "lag before commit: {lag}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for m in &got {
        sub.commit(&m.topic, m.partition, m.next_offset()).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let lag = total_lag(sub.as_ref()).await;
        if lag == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "lag after commit: {lag}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_counts_until_commit_kafka_mock() {
    let kafka = testkit::mock_kafka(1);
    let topic = testkit::unique_topic("lag");
    kafka.create_topic(&topic, 3);
    let mut cfg = kafka.kafka_config();
    cfg.create_topics = false;
    scenario(BusConfig::Kafka(cfg), topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_counts_until_commit_nats() {
    let nats = NatsServer::start().await;
    scenario(nats.bus_config(), testkit::unique_topic("lag")).await;
}
