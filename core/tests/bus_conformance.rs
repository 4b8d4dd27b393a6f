//! Proves the bus guarantees with one test body per guarantee, run against the Kafka MockCluster,
//! a real nats-server and (end to end) a tansu broker: per-key order and identical murmur2
//! partitioning, at-least-once across a consumer restart, two consumers splitting the partitions,
//! and a broker outage that resumes without loss.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dastra_connect_core::bus::{
    BusConfig, InboundMessage, KafkaConfig, OutboundMessage, Subscriber, SubscriberEvent, TopicPartition, TopicSpec,
    partition_for,
};
use dastra_connect_core::testkit::{MockKafka, NatsServer, Tansu, mock_kafka, unique, unique_topic};

const PARTITIONS: i32 = 4;

/// A running bus for one test.
enum Env {
    Mock(MockKafka),
    Nats(NatsServer),
    Tansu(Tansu),
}

impl Env {
    async fn mock() -> Self {
        Env::Mock(mock_kafka(3))
    }
    async fn nats() -> Self {
        Env::Nats(NatsServer::start().await)
    }
    async fn tansu() -> Self {
        Env::Tansu(Tansu::start().await)
    }

    /// The bus config; for NATS, replica `index` of `replicas` (Kafka ignores it: the group decides).
    fn bus_replica(&self, index: u32, replicas: u32) -> BusConfig {
        let kafka = |mut k: KafkaConfig| {
            k.topic_partitions = PARTITIONS;
            // A consumer that dies without leaving its group is noticed after the session timeout:
            // keep it short so the restart tests do not wait the default 45 s.
            k.properties.insert("session.timeout.ms".into(), "6000".into());
            k.properties.insert("heartbeat.interval.ms".into(), "500".into());
            BusConfig::Kafka(k)
        };
        match self {
            Env::Mock(m) => kafka(m.kafka_config()),
            Env::Tansu(t) => kafka(t.kafka_config()),
            Env::Nats(n) => {
                let mut c = n.nats_config();
                c.partitions = PARTITIONS as u32;
                c.replica_index = index;
                c.replicas = replicas;
                BusConfig::Nats(c)
            }
        }
    }

    fn bus(&self) -> BusConfig {
        self.bus_replica(0, 1)
    }

    async fn create_topic(&self, topic: &str) {
        match self {
            Env::Mock(m) => m.create_topic(topic, PARTITIONS),
            _ => self.bus().ensure_topics(&[TopicSpec::new(topic)]).await.expect("ensure topics"),
        }
    }

    /// Takes the broker(s) away for a moment, then brings them back.
    async fn outage_begin(&mut self) {
        match self {
            Env::Mock(m) => m.all_down(),
            Env::Nats(n) => n.stop(),
            Env::Tansu(t) => t.stop(),
        }
    }

    async fn outage_end(&mut self) {
        match self {
            Env::Mock(m) => m.all_up(),
            Env::Nats(n) => n.resume().await,
            Env::Tansu(t) => t.resume().await,
        }
    }

    fn is_kafka(&self) -> bool {
        !matches!(self, Env::Nats(_))
    }
}

fn msg(topic: &str, key: &str, seq: usize) -> OutboundMessage {
    OutboundMessage::new(topic, Bytes::copy_from_slice(key.as_bytes()), Bytes::from(format!("{key}#{seq}")))
        .with_header("ce_id", format!("{key}-{seq}").into_bytes())
}

fn seq_of(m: &InboundMessage) -> (String, usize) {
    let text = String::from_utf8(m.payload.clone().expect("payload").to_vec()).expect("utf8");
    let (key, seq) = text.split_once('#').expect("key#seq");
    (key.to_owned(), seq.parse().expect("seq"))
}

/// Reads messages until `want` returns true, failing after `limit` with what was seen.
async fn collect_until(
    sub: &mut Box<dyn Subscriber>,
    limit: Duration,
    mut want: impl FnMut(&[InboundMessage]) -> bool,
) -> Vec<InboundMessage> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while !want(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sub.next_event()).await {
            Ok(Ok(SubscriberEvent::Message(m))) => got.push(m),
            Ok(Ok(_assignment)) => {}
            Ok(Err(e)) => panic!("subscriber error: {e}"),
            Err(_) => panic!("timed out after {limit:?} with {} messages", got.len()),
        }
    }
    got
}

/// Commits, per partition, everything in `msgs`, retrying transient errors (a rebalance may be
/// finishing).
async fn commit_all(sub: &dyn Subscriber, msgs: &[InboundMessage]) {
    let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for m in msgs {
        let e = next.entry(m.topic_partition()).or_default();
        *e = (*e).max(m.next_offset());
    }
    for (tp, off) in next {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match sub.commit(&tp.topic, tp.partition, off).await {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("commit {tp:?}@{off} failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("commit failed: {e}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-key order, and the partition of every key is Kafka's murmur2 on both buses.

async fn per_key_order(env: Env) {
    let topic = unique_topic("order");
    env.create_topic(&topic).await;
    let bus = env.bus();
    let publisher = bus.publisher().await.expect("publisher");
    let keys: Vec<String> = (0..20).map(|i| format!("system:asset:{i}")).collect();
    let mut batch = Vec::new();
    for seq in 0..10 {
        for k in &keys {
            batch.push(msg(&topic, k, seq));
        }
    }
    let deliveries = publisher.publish_batch(batch.clone()).await.expect("publish batch");
    assert_eq!(deliveries.len(), batch.len());
    for (m, d) in batch.iter().zip(&deliveries) {
        // On Kafka librdkafka chose the partition (murmur2_random): it must equal our function.
        assert_eq!(d.partition as u32, partition_for(&m.key, PARTITIONS as u32), "partition of {:?}", m.key);
    }
    // A single publish goes to the same partition as the batch did.
    let single = publisher.publish(msg(&topic, &keys[0], 10)).await.expect("publish");
    assert_eq!(single.partition, deliveries[0].partition);

    let mut sub = bus.subscriber(&unique("g"), std::slice::from_ref(&topic)).await.expect("subscriber");
    let got = collect_until(&mut sub, Duration::from_secs(60), |g| g.len() >= 201).await;
    let mut last: HashMap<String, usize> = HashMap::new();
    for m in &got {
        let (key, seq) = seq_of(m);
        assert_eq!(m.key.as_ref(), key.as_bytes(), "key travels with the message");
        assert_eq!(m.header("ce_id"), Some(format!("{key}-{seq}").as_bytes()), "headers travel");
        assert_eq!(m.partition as u32, partition_for(key.as_bytes(), PARTITIONS as u32));
        let expected = last.get(&key).map_or(0, |s| s + 1);
        assert_eq!(seq, expected, "order of key {key}");
        last.insert(key, seq);
    }
    assert_eq!(last.len(), 20);

    // A tombstone (no payload) travels as such, after the key's earlier messages.
    let t = publisher.publish(OutboundMessage::tombstone(topic.clone(), keys[1].clone())).await.expect("tombstone");
    assert_eq!(t.partition as u32, partition_for(keys[1].as_bytes(), PARTITIONS as u32));
    let more = collect_until(&mut sub, Duration::from_secs(30), |g| g.iter().any(|m| m.payload.is_none())).await;
    let tomb = more.iter().find(|m| m.payload.is_none()).expect("tombstone");
    assert_eq!(tomb.key.as_ref(), keys[1].as_bytes());
    assert_eq!((tomb.partition, tomb.offset), (t.partition, t.offset));
    sub.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_kafka_mock() {
    per_key_order(Env::mock().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_nats() {
    per_key_order(Env::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_key_order_tansu() {
    per_key_order(Env::tansu().await).await;
}

// ---------------------------------------------------------------------------------------------
// At-least-once across a consumer restart: what was not committed comes again; nothing is lost.

async fn at_least_once_across_restart(env: Env) {
    let topic = unique_topic("alo");
    env.create_topic(&topic).await;
    let bus = env.bus();
    let group = unique("g");
    let publisher = bus.publisher().await.expect("publisher");
    let batch: Vec<_> = (0..40).map(|i| msg(&topic, &format!("k{}", i % 8), i / 8)).collect();
    publisher.publish_batch(batch).await.expect("publish");

    let mut first = bus.subscriber(&group, std::slice::from_ref(&topic)).await.expect("subscriber");
    let got = collect_until(&mut first, Duration::from_secs(60), |g| g.len() >= 40).await;
    // Work is "done" for the first 15 messages only; then the consumer dies before committing more.
    commit_all(first.as_ref(), &got[..15]).await;
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    for m in &got[..15] {
        let e = committed.entry(m.partition).or_default();
        *e = (*e).max(m.next_offset());
    }
    drop(first);

    let expected: BTreeSet<(i32, i64)> = got
        .iter()
        .filter(|m| m.offset >= committed.get(&m.partition).copied().unwrap_or(0))
        .map(|m| (m.partition, m.offset))
        .collect();
    assert!(expected.len() >= 25, "uncommitted messages remain");

    let mut second = bus.subscriber(&group, std::slice::from_ref(&topic)).await.expect("subscriber");
    let again = collect_until(&mut second, Duration::from_secs(90), |g| {
        let seen: BTreeSet<(i32, i64)> = g.iter().map(|m| (m.partition, m.offset)).collect();
        expected.is_subset(&seen)
    })
    .await;
    // Committed messages are not delivered again (the commit is real).
    for m in &again {
        let floor = committed.get(&m.partition).copied().unwrap_or(0);
        assert!(m.offset >= floor, "committed message {}@{} delivered again", m.partition, m.offset);
    }
    commit_all(second.as_ref(), &again).await;
    second.close().await.expect("close");

    // After committing everything, a third consumer of the group gets nothing old: publish a marker
    // and check it is the first thing it sees.
    publisher.publish(msg(&topic, "k0", 99)).await.expect("publish marker");
    let mut third = bus.subscriber(&group, std::slice::from_ref(&topic)).await.expect("subscriber");
    let first_seen = collect_until(&mut third, Duration::from_secs(60), |g| !g.is_empty()).await;
    assert_eq!(seq_of(&first_seen[0]), ("k0".to_owned(), 99));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_across_restart_kafka_mock() {
    at_least_once_across_restart(Env::mock().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_across_restart_nats() {
    at_least_once_across_restart(Env::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_across_restart_tansu() {
    at_least_once_across_restart(Env::tansu().await).await;
}

// ---------------------------------------------------------------------------------------------
// Two consumers split the partitions (Kafka group; NATS replica 0 and 1 of 2).

async fn two_consumers_split_partitions(env: Env) {
    let topic = unique_topic("split");
    env.create_topic(&topic).await;
    let group = unique("g");
    let mut a = env.bus_replica(0, 2).subscriber(&group, std::slice::from_ref(&topic)).await.expect("a");
    let mut b = env.bus_replica(1, 2).subscriber(&group, std::slice::from_ref(&topic)).await.expect("b");

    // Drive both until the assignment is a partition of all partitions between the two.
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pa: BTreeSet<i32> = a.assignment().iter().map(|tp| tp.partition).collect();
        let pb: BTreeSet<i32> = b.assignment().iter().map(|tp| tp.partition).collect();
        if !pa.is_empty()
            && !pb.is_empty()
            && pa.is_disjoint(&pb)
            && pa.union(&pb).copied().collect::<BTreeSet<_>>() == all
        {
            break;
        }
        assert!(Instant::now() < deadline, "no split assignment: a={pa:?} b={pb:?}");
        tokio::select! {
            e = a.next_event() => { e.expect("a event"); }
            e = b.next_event() => { e.expect("b event"); }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let pa: BTreeSet<i32> = a.assignment().iter().map(|tp| tp.partition).collect();
    let pb: BTreeSet<i32> = b.assignment().iter().map(|tp| tp.partition).collect();

    let publisher = env.bus().publisher().await.expect("publisher");
    let batch: Vec<_> = (0..40).map(|i| msg(&topic, &format!("key-{i}"), 0)).collect();
    publisher.publish_batch(batch).await.expect("publish");

    let mut seen_a = BTreeSet::new();
    let mut seen_b = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen_a.union(&seen_b).count() < 40 {
        assert!(Instant::now() < deadline, "only {} of 40 messages arrived", seen_a.union(&seen_b).count());
        tokio::select! {
            e = a.next_event() => if let SubscriberEvent::Message(m) = e.expect("a") {
                assert!(pa.contains(&m.partition), "a got partition {} it does not own", m.partition);
                seen_a.insert(seq_of(&m).0);
            },
            e = b.next_event() => if let SubscriberEvent::Message(m) = e.expect("b") {
                assert!(pb.contains(&m.partition), "b got partition {} it does not own", m.partition);
                seen_b.insert(seq_of(&m).0);
            },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    assert!(!seen_a.is_empty() && !seen_b.is_empty(), "both consumers got work");
    assert!(seen_a.is_disjoint(&seen_b), "no message went to both");
    // Each key went to the owner of its murmur2 partition.
    for k in &seen_a {
        assert!(pa.contains(&(partition_for(k.as_bytes(), PARTITIONS as u32) as i32)));
    }
    if env.is_kafka() {
        b.close().await.expect("close b");
        a.close().await.expect("close a");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_split_partitions_kafka_mock() {
    two_consumers_split_partitions(Env::mock().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_split_partitions_nats() {
    two_consumers_split_partitions(Env::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_split_partitions_tansu() {
    two_consumers_split_partitions(Env::tansu().await).await;
}

// ---------------------------------------------------------------------------------------------
// A broker that goes away and comes back: publishing and consuming resume, nothing is lost.

async fn broker_outage_resumes_without_loss(mut env: Env) {
    let topic = unique_topic("outage");
    env.create_topic(&topic).await;
    let bus = env.bus();
    let group = unique("g");
    let publisher = bus.publisher().await.expect("publisher");
    let before: Vec<_> = (0..20).map(|i| msg(&topic, &format!("k{}", i % 5), i / 5)).collect();
    publisher.publish_batch(before).await.expect("publish before");
    let mut sub = bus.subscriber(&group, std::slice::from_ref(&topic)).await.expect("subscriber");
    let got = collect_until(&mut sub, Duration::from_secs(60), |g| g.len() >= 20).await;
    commit_all(sub.as_ref(), &got).await;

    env.outage_begin().await;
    // Publish during the outage, retrying as a source would until the broker is back.
    let during: Vec<_> = (20..40).map(|i| msg(&topic, &format!("k{}", i % 5), i / 5)).collect();
    let publisher2 = publisher.clone();
    let publishing = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match publisher2.publish_batch(during.clone()).await {
                Ok(d) => return d,
                Err(e) => {
                    assert!(Instant::now() < deadline, "publish never succeeded: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    });
    // The outage lasts a moment: long enough for clients to notice the broken connections.
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.outage_end().await;
    publishing.await.expect("publishing task");

    // The subscriber that lived through the outage gets every new message (duplicates allowed).
    let want: BTreeSet<(String, usize)> = (20..40).map(|i| (format!("k{}", i % 5), i / 5)).collect();
    let after = collect_until(&mut sub, Duration::from_secs(90), |g| {
        let seen: BTreeSet<(String, usize)> = g.iter().map(seq_of).collect();
        want.is_subset(&seen)
    })
    .await;
    // Per-key order holds among the new messages (first occurrences).
    let mut last: HashMap<String, usize> = HashMap::new();
    let mut firsts = BTreeSet::new();
    for m in &after {
        let (k, s) = seq_of(m);
        if s < 4 || !firsts.insert((k.clone(), s)) {
            continue;
        }
        if let Some(prev) = last.get(&k) {
            assert!(s > *prev, "order of {k}: {s} after {prev}");
        }
        last.insert(k, s);
    }
    commit_all(sub.as_ref(), &after).await;
    if env.is_kafka() {
        sub.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_resumes_without_loss_kafka_mock() {
    broker_outage_resumes_without_loss(Env::mock().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_resumes_without_loss_nats() {
    broker_outage_resumes_without_loss(Env::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_resumes_without_loss_tansu() {
    broker_outage_resumes_without_loss(Env::tansu().await).await;
}

// ---------------------------------------------------------------------------------------------
// librdkafka's `murmur2_random` partitioner and our `partition_for` agree on many keys and counts.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn murmur2_matches_librdkafka_partitioner_kafka_mock() {
    let kafka = mock_kafka(1);
    let bus = kafka.bus_config();
    let publisher = bus.publisher().await.expect("publisher");
    for partitions in [1, 3, 7, 12] {
        let topic = unique_topic(&format!("murmur{partitions}"));
        kafka.create_topic(&topic, partitions);
        // Keys of every length 0..64 plus entity-like keys, so every tail length of murmur2 is covered.
        let mut keys: Vec<Vec<u8>> = (0..64).map(|n| (0..n).map(|i| (i * 37 + n) as u8).collect()).collect();
        keys.extend((0..200).map(|i| format!("servicenow:asset:{i:08x}").into_bytes()));
        let batch: Vec<_> =
            keys.iter().map(|k| OutboundMessage::new(topic.clone(), Bytes::copy_from_slice(k), "x")).collect();
        let deliveries = publisher.publish_batch(batch).await.expect("publish");
        for (k, d) in keys.iter().zip(deliveries) {
            assert_eq!(d.partition as u32, partition_for(k, partitions as u32), "key {k:?} over {partitions}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput figures (printed, not asserted): a pipelined batch publish then a full consume.

async fn throughput(env: Env, label: &str) {
    const N: usize = 20_000;
    let topic = unique_topic("tput");
    env.create_topic(&topic).await;
    let bus = env.bus();
    let publisher = bus.publisher().await.expect("publisher");
    let payload = Bytes::from(vec![b'x'; 200]);
    let batch: Vec<_> = (0..N)
        .map(|i| {
            OutboundMessage::new(topic.clone(), Bytes::from(format!("system:asset:{}", i % 1000)), payload.clone())
        })
        .collect();
    let t = Instant::now();
    let d = publisher.publish_batch(batch).await.expect("publish");
    let publish_s = t.elapsed().as_secs_f64();
    assert_eq!(d.len(), N);
    let mut sub = bus.subscriber(&unique("g"), std::slice::from_ref(&topic)).await.expect("subscriber");
    let t = Instant::now();
    let mut first_at = None;
    let mut n = 0;
    while n < N {
        match tokio::time::timeout(Duration::from_secs(60), sub.next_event()).await.expect("consume stalled") {
            Ok(SubscriberEvent::Message(_)) => {
                first_at.get_or_insert_with(Instant::now);
                n += 1;
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let consume_s = first_at.map_or(0.0, |f| f.elapsed().as_secs_f64());
    println!(
        "FIGURE {label}: publish_batch {N} x 200 B acked in {publish_s:.2} s ({:.0} msg/s); consumed in {consume_s:.2} s after the first message ({:.0} msg/s; {:.1} s to the first incl. group join)",
        N as f64 / publish_s,
        N as f64 / consume_s.max(1e-9),
        first_at.map_or(0.0, |f| (f - t).as_secs_f64()),
    );
    sub.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_figures_kafka_mock() {
    throughput(Env::mock().await, "kafka-mock").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_figures_nats() {
    throughput(Env::nats().await, "nats").await;
}

// ---------------------------------------------------------------------------------------------
// NATS credentials are used; wrong ones fail as a fatal (not retryable) error.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_credentials_are_used_and_bad_ones_are_fatal() {
    use dastra_connect_core::config::Secret;
    use dastra_connect_core::{Classify, ErrorClass};
    let nats = NatsServer::start_with_args(&["--user", "connector", "--pass", "s3cret-pw"]).await;
    let mut good = nats.nats_config();
    good.user = Some("connector".into());
    good.password = Some(Secret::new("s3cret-pw"));
    let publisher = BusConfig::Nats(good.clone()).publisher().await.expect("connect with the right password");
    let topic = unique_topic("auth");
    publisher.publish(msg(&topic, "k", 0)).await.expect("publish");

    let mut bad = good;
    bad.password = Some(Secret::new("wrong-pw"));
    let err = match BusConfig::Nats(bad).publisher().await {
        Ok(_) => panic!("a wrong password must not connect"),
        Err(e) => e,
    };
    assert_eq!(err.class(), ErrorClass::Fatal, "{err}");
    assert_eq!(err.code(), "nats_auth", "{err}");
    assert!(!err.to_string().contains("wrong-pw"), "the password must not reach the error: {err}");
}

// ---------------------------------------------------------------------------------------------
// Pause stops delivery of a partition (backpressure) and resume brings the messages.

async fn pause_and_resume(env: Env) {
    let topic = unique_topic("pause");
    env.create_topic(&topic).await;
    let bus = env.bus();
    let mut sub = bus.subscriber(&unique("g"), std::slice::from_ref(&topic)).await.expect("subscriber");
    let publisher = bus.publisher().await.expect("publisher");
    // The assignment is live (librdkafka applies an assignment asynchronously after the rebalance
    // callback, and applying it resumes the partitions) once a probe has come from every partition.
    let probes: Vec<_> = (0..32).map(|i| msg(&topic, &format!("probe{i}"), 0)).collect();
    publisher.publish_batch(probes).await.expect("publish probes");
    let seen = collect_until(&mut sub, Duration::from_secs(30), |g| g.len() >= 32).await;
    let live: BTreeSet<i32> = seen.iter().map(|m| m.partition).collect();
    assert_eq!(live.len(), PARTITIONS as usize, "the probes reach every partition");
    let assignment = sub.assignment();
    sub.pause(&assignment).expect("pause");
    let batch: Vec<_> = (0..10).map(|i| msg(&topic, &format!("k{i}"), 0)).collect();
    publisher.publish_batch(batch).await.expect("publish");
    // Paused: nothing is delivered for two seconds. Assignment events may still come, and Kafka
    // forgets pauses on a rebalance (the `Subscriber::pause` contract): a partition assigned again
    // is paused again, its messages fetched before that are excused (and kept), and the quiet
    // window starts over.
    let mut quiet_until = Instant::now() + Duration::from_secs(2);
    let mut reassigned = BTreeSet::new();
    let mut excused = Vec::new();
    let mut rebalances = 0;
    while Instant::now() < quiet_until {
        match tokio::time::timeout(Duration::from_millis(200), sub.next_event()).await {
            Ok(Ok(SubscriberEvent::Assigned(tps))) => {
                sub.pause(&tps).expect("pause again after a rebalance");
                reassigned.extend(tps.iter().map(|tp| tp.partition));
                rebalances += 1;
                assert!(rebalances < 5, "the single member's assignment keeps changing");
                quiet_until = Instant::now() + Duration::from_secs(2);
            }
            Ok(Ok(SubscriberEvent::Message(m))) if reassigned.contains(&m.partition) => excused.push(m),
            Ok(ev @ Ok(SubscriberEvent::Message(_))) => panic!("message delivered while paused: {ev:?}"),
            _ => {}
        }
    }
    sub.resume(&sub.assignment()).expect("resume");
    let want = 10 - excused.len();
    let got = collect_until(&mut sub, Duration::from_secs(30), |g| g.len() >= want).await;
    let keys: BTreeSet<String> = excused.iter().chain(&got).map(seq_of).map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 10, "every message paused comes after resume: {keys:?}");
    sub.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_kafka_mock() {
    pause_and_resume(Env::mock().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_nats() {
    pause_and_resume(Env::nats().await).await;
}

/// A member that closes gracefully (a rolling restart) leaves its group: the next member of the
/// group is assigned its partitions at the next rebalance, not after the old member's session
/// timeout (set to 60 s here, so "before 30 s" can only mean it left). On tansu only: librdkafka's
/// MockCluster coordinator takes the leave but assigns the new member only once the departed
/// member's session has expired (measured: no assignment within 30 s), so it cannot tell.
async fn closed_member_leaves_its_group(env: Env) {
    let topic = unique_topic("leave");
    env.create_topic(&topic).await;
    let BusConfig::Kafka(mut k) = env.bus() else { unreachable!("Kafka only") };
    k.properties.insert("session.timeout.ms".into(), "60000".into());
    k.properties.insert("heartbeat.interval.ms".into(), "1000".into());
    let bus = BusConfig::Kafka(k);
    let publisher = bus.publisher().await.expect("publisher");
    publisher.publish(msg(&topic, "k0", 0)).await.expect("publish");
    let group = unique("g");
    let mut first = bus.subscriber(&group, std::slice::from_ref(&topic)).await.expect("subscriber");
    let got = collect_until(&mut first, Duration::from_secs(60), |g| !g.is_empty()).await;
    commit_all(first.as_ref(), &got).await;
    first.close().await.expect("close");

    let started = Instant::now();
    let mut second = bus.subscriber(&group, std::slice::from_ref(&topic)).await.expect("subscriber");
    loop {
        let left = Duration::from_secs(30).saturating_sub(started.elapsed());
        match tokio::time::timeout(left, second.next_event()).await {
            Ok(Ok(SubscriberEvent::Assigned(tps))) if !tps.is_empty() => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("consume failed: {e}"),
            Err(_) => panic!(
                "the second member got no partitions in 30 s: the closed member did not leave its group (its session of 60 s had to expire)"
            ),
        }
    }
    eprintln!("closed member's partitions reassigned after {:?}", started.elapsed());
    second.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_member_leaves_its_group_tansu() {
    closed_member_leaves_its_group(Env::tansu().await).await;
}
