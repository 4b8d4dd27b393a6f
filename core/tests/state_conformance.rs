//! Proves the state store on the bus with one test body run on the Kafka MockCluster, tansu and
//! NATS KV: writes are readable at once, survive a restart (a new instance restores them from the
//! bus), the last write per key wins, deletes are tombstones, and a second live instance sees the
//! writes of the first.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::state;
use dastra_connect_core::testkit::{MockKafka, NatsServer, Tansu, mock_kafka, unique};

enum Env {
    Mock(MockKafka),
    Nats(NatsServer),
    Tansu(Tansu),
}

impl Env {
    fn bus(&self) -> BusConfig {
        match self {
            Env::Mock(m) => m.bus_config(),
            Env::Nats(n) => n.bus_config(),
            Env::Tansu(t) => t.bus_config(),
        }
    }
    fn prepare(&self, namespace: &str) {
        // The mock has no CreateTopics API; elsewhere the store creates its compacted topic/bucket.
        if let Env::Mock(m) = self {
            m.create_topic(namespace, 3);
        }
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "not within 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn state_store_round_trip(env: Env) {
    let ns = unique("dastra-connect.ledger.test");
    env.prepare(&ns);
    let bus = env.bus();
    let k1 = "servicenow:asset:8f2c-01";
    let k2 = "salesforce:actor:0015g00000XyZ";
    let k3 = "files:contract:a b/c.d=e";
    {
        let store = state::open(&bus, &ns).await.expect("open");
        assert!(store.is_empty());
        store.put(k1, b("v1")).await.expect("put");
        store.put(k2, b("w1")).await.expect("put");
        store.put(k1, b("v2")).await.expect("put");
        store.put(k3, b("x1")).await.expect("put");
        store.delete(k3).await.expect("delete");
        store.delete("never-written").await.expect("delete of a missing key");
        assert_eq!(store.get(k1), Some(b("v2")), "read your writes, last write wins");
        assert_eq!(store.get(k3), None, "deleted");
        assert_eq!(store.len(), 2);
    }

    // Restart: a new instance restores everything from the bus.
    let second = state::open(&bus, &ns).await.expect("reopen");
    assert_eq!(second.get(k1), Some(b("v2")), "last write wins after restore");
    assert_eq!(second.get(k2), Some(b("w1")));
    assert_eq!(second.get(k3), None, "tombstone restored");
    assert_eq!(second.get("never-written"), None);
    let snap = second.snapshot();
    assert_eq!(snap.keys().cloned().collect::<Vec<_>>(), vec![k2.to_owned(), k1.to_owned()], "sorted by key");

    // A second live instance follows the writes of another one.
    let third = state::open(&bus, &ns).await.expect("open third");
    second.put(k2, b("w2")).await.expect("put");
    second.delete(k1).await.expect("delete");
    second.put(k3, b("x2")).await.expect("put after delete");
    eventually("the other instance sees the new writes", || {
        third.get(k2) == Some(b("w2")) && third.get(k1).is_none() && third.get(k3) == Some(b("x2"))
    })
    .await;
    drop((second, third));

    let fourth = state::open(&bus, &ns).await.expect("open fourth");
    assert_eq!(fourth.get(k1), None);
    assert_eq!(fourth.get(k2), Some(b("w2")));
    assert_eq!(fourth.get(k3), Some(b("x2")), "a key written again after its tombstone");
    assert_eq!(fourth.len(), 2);

    // Namespaces are separate.
    let other_ns = unique("dastra-connect.checkpoints.test");
    env.prepare(&other_ns);
    let other = state::open(&bus, &other_ns).await.expect("open other");
    assert!(other.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_store_kafka_mock() {
    state_store_round_trip(Env::Mock(mock_kafka(3))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_store_nats_kv() {
    state_store_round_trip(Env::Nats(NatsServer::start().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_store_tansu() {
    state_store_round_trip(Env::Tansu(Tansu::start().await)).await;
}

/// The KV store keeps working through a nats-server restart (state is on disk in JetStream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_store_nats_survives_server_restart() {
    let mut nats = NatsServer::start().await;
    let bus = nats.bus_config();
    let ns = unique("dastra-connect.checkpoints.restart");
    let store = state::open(&bus, &ns).await.expect("open");
    store.put("source:cursor", b("2024-01-01T00:00:00Z|42")).await.expect("put");
    nats.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match store.put("source:cursor", b("2024-01-02T00:00:00Z|43")).await {
            Ok(()) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "put never succeeded after restart: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let reopened = state::open(&bus, &ns).await.expect("reopen");
    assert_eq!(reopened.get("source:cursor"), Some(b("2024-01-02T00:00:00Z|43")));
}

async fn batch_writes(env: Env, label: &str) {
    const N: usize = 2_000;
    let ns = unique("dastra-connect.ledger.batch");
    env.prepare(&ns);
    let bus = env.bus();
    let store = state::open(&bus, &ns).await.expect("open");
    let mut entries: Vec<(String, Option<Bytes>)> =
        (0..N).map(|i| (format!("system:asset:{i}"), Some(b(&format!("v{i}"))))).collect();
    // In the same batch: key 0 overwritten, key 1 deleted.
    entries.push(("system:asset:0".into(), Some(b("v0-bis"))));
    entries.push(("system:asset:1".into(), None));
    let t = Instant::now();
    store.put_batch(entries).await.expect("put_batch");
    let secs = t.elapsed().as_secs_f64();
    println!("FIGURE state {label}: put_batch of {} entries acknowledged in {secs:.2} s", N + 2);
    assert_eq!(store.len(), N - 1);
    let t = Instant::now();
    let reopened = state::open(&bus, &ns).await.expect("reopen");
    println!("FIGURE state {label}: reopen and restore of {} entries in {:.2} s", N + 2, t.elapsed().as_secs_f64());
    assert_eq!(reopened.len(), N - 1);
    assert_eq!(reopened.get("system:asset:0"), Some(b("v0-bis")));
    assert_eq!(reopened.get("system:asset:1"), None);
    assert_eq!(reopened.get("system:asset:1999"), Some(b("v1999")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_writes_kafka_mock() {
    batch_writes(Env::Mock(mock_kafka(3)), "kafka-mock").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_writes_nats_kv() {
    batch_writes(Env::Nats(NatsServer::start().await), "nats-kv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_writes_tansu() {
    batch_writes(Env::Tansu(Tansu::start().await), "tansu").await;
}
