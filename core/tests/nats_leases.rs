//! NATS partition leases, on a real nats-server: one owner per partition while replicas of
//! different `replicas` counts overlap. A partition another replica holds is not consumed until that
//! replica lets it go (graceful close) or, when it died, until its lease expires; then it arrives as
//! its own `Assigned` together with its messages. A process restarted under the same ordinal takes its
//! own leases back at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use dastra_connect_core::bus::{BusConfig, OutboundMessage, Subscriber, SubscriberEvent, TopicSpec};
use dastra_connect_core::testkit::{self, NatsServer};

fn replica(nats: &NatsServer, index: u32, of: u32) -> BusConfig {
    let mut n = nats.nats_config();
    n.replicas = of;
    n.replica_index = index;
    n.lease_ttl = Duration::from_secs(3);
    BusConfig::Nats(n)
}

fn partitions(sub: &dyn Subscriber) -> BTreeSet<i32> {
    sub.assignment().into_iter().map(|tp| tp.partition).collect()
}

/// The next `Assigned` within `wait` (messages before it are skipped), as partition numbers.
async fn next_assigned(sub: &mut dyn Subscriber, wait: Duration) -> Option<BTreeSet<i32>> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, sub.next_event()).await {
            Err(_) => return None,
            Ok(Ok(SubscriberEvent::Assigned(tps))) => return Some(tps.into_iter().map(|tp| tp.partition).collect()),
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_has_one_owner_while_replicas_change() {
    let nats = NatsServer::start().await;
    let topic = "dastra.changes.asset".to_owned();
    let group = testkit::unique("leases");
    let topics = std::slice::from_ref(&topic);
    replica(&nats, 0, 1).ensure_topics(&[TopicSpec::new(topic.clone())]).await.unwrap();

    // Old replica 0/2 takes 0, 2, 4 at once.
    let mut old0 = replica(&nats, 0, 2).subscriber(&group, topics).await.unwrap();
    assert_eq!(next_assigned(old0.as_mut(), Duration::from_secs(10)).await, Some(BTreeSet::from([0, 2, 4])));

    // New replica 2/3 wants 2 and 5: 5 at once, 2 only once 0/2 lets it go.
    let mut new2 = replica(&nats, 2, 3).subscriber(&group, topics).await.unwrap();
    assert_eq!(next_assigned(new2.as_mut(), Duration::from_secs(10)).await, Some(BTreeSet::from([5])));
    // A message for partition 2 meanwhile reaches its owner only.
    let publisher = replica(&nats, 0, 1).publisher().await.unwrap();
    let key = (0..100)
        .map(|i| format!("k{i}"))
        .find(|k| dastra_connect_core::bus::partition_for(k.as_bytes(), 6) == 2)
        .unwrap();
    publisher.publish_batch(vec![OutboundMessage::new(topic.clone(), key.into_bytes(), b"v".to_vec())]).await.unwrap();
    assert_eq!(next_assigned(new2.as_mut(), Duration::from_secs(2)).await, None, "partition 2 is still 0/2's");
    assert_eq!(partitions(new2.as_ref()), BTreeSet::from([5]));

    // 0/2 stops gracefully: 2/3 gets partition 2 within a claim interval, then its message.
    old0.close().await.unwrap();
    assert_eq!(next_assigned(new2.as_mut(), Duration::from_secs(10)).await, Some(BTreeSet::from([2])));
    let got = tokio::time::timeout(Duration::from_secs(10), new2.next_event()).await.unwrap().unwrap();
    assert!(matches!(got, SubscriberEvent::Message(m) if m.partition == 2));
    assert_eq!(partitions(new2.as_ref()), BTreeSet::from([2, 5]));

    // Old replica 1/2 (wants 1, 3, 5) dies without letting go (dropped, no close): 1/3 wants 1 and 4; 4 is free
    // at once, 1 (1/2's) only once the dead replica's lease has expired (lease_ttl 3 s).
    let mut old1 = replica(&nats, 1, 2).subscriber(&group, topics).await.unwrap();
    assert_eq!(next_assigned(old1.as_mut(), Duration::from_secs(10)).await, Some(BTreeSet::from([1, 3])), "5 is 2/3's");
    drop(old1);
    let mut new1 = replica(&nats, 1, 3).subscriber(&group, topics).await.unwrap();
    assert_eq!(next_assigned(new1.as_mut(), Duration::from_secs(10)).await, Some(BTreeSet::from([4])));
    assert_eq!(next_assigned(new1.as_mut(), Duration::from_secs(1)).await, None, "the dead replica's lease holds");
    assert_eq!(next_assigned(new1.as_mut(), Duration::from_secs(15)).await, Some(BTreeSet::from([1])));

    // 2/3 crashes and is restarted under the same ordinal: it takes 2 and 5 back at once.
    drop(new2);
    let mut again2 = replica(&nats, 2, 3).subscriber(&group, topics).await.unwrap();
    assert_eq!(next_assigned(again2.as_mut(), Duration::from_secs(10)).await, Some(BTreeSet::from([2, 5])));
    new1.close().await.unwrap();
    again2.close().await.unwrap();
}
