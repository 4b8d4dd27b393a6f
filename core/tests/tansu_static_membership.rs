//! Why the sink's SIGKILL scenario does not run on tansu: tansu 0.6.0 keeps a killed member's
//! partitions for good (no session expiry), and the remedy on real Kafka — static membership
//! (`group_instance_id`) — does not work on tansu either: a lone static member is assigned its
//! partitions, has them revoked seconds later and never gets them back, while a plain member keeps
//! them. (The same is seen with PyPI confluent-kafka consumers, no project code involved.) This test
//! pins that behaviour: when a tansu release fixes it, it fails, and the SIGKILL scenario
//! (`cli/tests/sink_crash.rs`) can gain its tansu variant with `group_instance_id`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dastra_connect_core::bus::{BusConfig, SubscriberEvent, TopicSpec};
use dastra_connect_core::testkit::{Tansu, unique, unique_topic};

/// Follows a subscriber for `watch` and answers how many partitions it owns at the end.
async fn owned_at_the_end(bus: BusConfig, topic: String, watch: Duration) -> usize {
    let mut sub = bus.subscriber(&unique("static-canary"), std::slice::from_ref(&topic)).await.unwrap();
    let deadline = tokio::time::Instant::now() + watch;
    let mut owned = 0usize;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, sub.next_event()).await {
            Ok(Ok(SubscriberEvent::Assigned(tps))) => owned += tps.len(),
            Ok(Ok(SubscriberEvent::Revoked(tps))) => owned = owned.saturating_sub(tps.len()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let _ = sub.close().await;
    owned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tansu_revokes_a_lone_static_member_and_never_gives_its_partitions_back() {
    let tansu = Tansu::start().await;
    let (static_topic, plain_topic) = (unique_topic("static"), unique_topic("plain"));
    let mut cfg = tansu.kafka_config();
    cfg.topic_partitions = 3;
    cfg.properties.insert("session.timeout.ms".into(), "6000".into());
    cfg.properties.insert("heartbeat.interval.ms".into(), "500".into());
    let plain = BusConfig::Kafka(cfg.clone());
    plain.ensure_topics(&[TopicSpec::new(static_topic.clone()), TopicSpec::new(plain_topic.clone())]).await.unwrap();
    cfg.group_instance_id = Some("dastra-sink-0".into());
    let static_member = BusConfig::Kafka(cfg);

    let watch = Duration::from_secs(20);
    let (with_static, without) =
        tokio::join!(owned_at_the_end(static_member, static_topic, watch), owned_at_the_end(plain, plain_topic, watch));
    assert_eq!(without, 3, "a plain member keeps its partitions on tansu");
    assert_eq!(
        with_static, 0,
        "tansu now keeps a static member's partitions: give cli/tests/sink_crash.rs its tansu variant (group_instance_id) and drop this canary"
    );
}
