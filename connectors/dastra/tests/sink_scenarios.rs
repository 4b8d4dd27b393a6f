//! Sink scenarios of the issue, each on NATS and on Kafka: a faulty Dastra (5xx, timeouts after the
//! write, dropped connections, 429 storms) still ends exactly right with no duplicates; poison records
//! go to the DLQ with their reason while good ones are applied; out-of-order versions: newest wins.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use dastra_connect_core::bus::{OutboundMessage, partition_for};
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::AssetType;
use dastra_connect_core::event::{Asset, Payload};
use dastra_emulator::{FaultKind, FaultRule, QuotaWindow};

fn asset(label: &str, description: &str) -> Payload {
    Payload::Asset(Asset {
        label: Some(label.into()),
        asset_type: Some(AssetType::Software),
        description: Some(description.into()),
        ..Default::default()
    })
}

/// `ref` → label of every asset in the emulator; panics on a duplicate ref.
fn assets_by_ref(emu: &dastra_emulator::RunningEmulator) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in emu.state.entities(1, "Assets") {
        let r = a["ref"].as_str().unwrap_or_default().to_owned();
        let label = a["label"].as_str().unwrap_or_default().to_owned();
        assert!(out.insert(r.clone(), label).is_none(), "duplicate asset for {r}");
    }
    out
}

async fn faults(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();

    let n = 40;
    let mut stream = Vec::new();
    for i in 0..n {
        stream.push(event(&format!("cmdb:asset:a{i}"), 1, asset(&format!("App {i}"), "v1")));
    }
    for i in (0..n).step_by(2) {
        stream.push(event(&format!("cmdb:asset:a{i}"), 2, asset(&format!("App {i}"), "v2")));
    }
    publish(publisher.as_ref(), &topics, &stream).await;

    // A hostile Dastra: 20 % 503, 10 % of POSTs time out after the write, 5 % dropped connections,
    // and a quota far below what the client believes (a 429 storm).
    emu.state.add_fault(FaultRule::always(FaultKind::Error { status: 503 }).rate(0.2)).unwrap();
    emu.state
        .add_fault(FaultRule::always(FaultKind::TimeoutAfterWrite { hang_ms: 1500 }).method("POST").rate(0.1))
        .unwrap();
    emu.state.add_fault(FaultRule::always(FaultKind::DropConnection).rate(0.05)).unwrap();
    emu.state.set_quota(vec![QuotaWindow { limit: 4, period: Duration::from_secs(1) }]);

    let mut cfg = sink_config(&emu);
    cfg.dastra.request_timeout = Duration::from_millis(800);
    cfg.max_backoff = Duration::from_secs(2);
    let sink = RunningSink::start("sink", &bus, &topics, cfg);
    sink.wait_idle(Duration::from_secs(150)).await;
    sink.stop().await;

    let got = assets_by_ref(&emu);
    assert_eq!(got.len(), n, "every asset exactly once: {got:?}");
    for a in emu.state.entities(1, "Assets") {
        let i: usize = a["ref"].as_str().unwrap().trim_start_matches("cmdb:asset:a").parse().unwrap();
        let want = if i.is_multiple_of(2) { "v2" } else { "v1" };
        assert_eq!(a["description"], want, "{a}");
    }
    let c = emu.state.counters();
    assert!(c.too_many_requests > 0, "the storm happened: {c:?}");
    let injected: u64 = c.by_route.iter().filter(|r| r.status == 503).map(|r| r.count).sum();
    assert!(injected > 0, "faults were injected");
}

/// The poison test's oversized record: 10 MiB of description (plus a little JSON around it).
const HUGE: usize = 10 * 1024 * 1024;

async fn poison(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();
    let topic = topics.changes(dastra_connect_core::event::EntityKind::Asset);
    let good = |i: u32| event(&format!("cmdb:asset:good{i}"), 1, asset(&format!("Good {i}"), "ok"));
    let template = good(99);
    let codec = dastra_connect_core::codec::Codec::single_object();
    let headers = template.ce_headers(&codec);
    let raw = |key: &str, value: Vec<u8>, hdrs: &[(String, String)]| {
        let mut m = OutboundMessage::new(topic.clone(), key.as_bytes().to_vec(), value);
        for (k, v) in hdrs {
            let v = if k == "ce_subject" { key.to_owned() } else { v.clone() };
            m = m.with_header(k.clone(), v.into_bytes());
        }
        m
    };

    publish(publisher.as_ref(), &topics, &[good(1)]).await;
    // Garbage bytes.
    publisher.publish(raw("cmdb:asset:garbage", b"\x07\x01garbage".to_vec(), &headers)).await.unwrap();
    publish(publisher.as_ref(), &topics, &[good(2)]).await;
    // Wrong schema: an Actor's payload under an Asset's type.
    let actor =
        Payload::Actor(dastra_connect_core::event::Actor { company_name: Some("X".into()), ..Default::default() });
    let actor_bytes = codec.encode(&topic, &actor).await.unwrap();
    publisher.publish(raw("cmdb:asset:wrongschema", actor_bytes, &headers)).await.unwrap();
    // Invalid enum value (JSON payload).
    let bad_enum = br#"{"label":"Bad","type":"Spaceship"}"#.to_vec();
    let mut json_headers = headers.clone();
    json_headers.retain(|(k, _)| k != "content-type");
    publisher.publish(raw("cmdb:asset:badenum", bad_enum, &json_headers)).await.unwrap();
    // Missing required field: an upsert without a label.
    let no_label = br#"{"type":"Software"}"#.to_vec();
    publisher.publish(raw("cmdb:asset:nolabel", no_label, &json_headers)).await.unwrap();
    publish(publisher.as_ref(), &topics, &[good(3)]).await;
    // 10 MiB payload: over the sink's 1 MiB `max_event_bytes`, within the broker's 16 MiB (the
    // `*_big` brokers): the broker must take it and the sink refuse it. On NATS it shares its
    // partition with good4, which follows it: the partition must not get stuck behind it. The
    // MockCluster cannot hold a record over 5 MiB with others in a partition (it hides them all,
    // see `Broker::kafka_big`), so there it gets a partition of its own, in the DLQ too.
    let parts = broker.change_partitions();
    let part = |k: &str| partition_for(k.as_bytes(), parts);
    let others = ["good1", "garbage", "good2", "wrongschema", "badenum", "nolabel", "good3", "good4"]
        .map(|k| part(&format!("cmdb:asset:{k}")));
    let huge_key = (0..1000)
        .map(|n| format!("cmdb:asset:huge{n}"))
        .find(|k| {
            if broker.big_record_needs_own_partition() {
                !others.contains(&part(k))
            } else {
                part(k) == part("cmdb:asset:good4")
            }
        })
        .expect("a key for the 10 MiB record");
    let mut huge = br#"{"label":"Huge","type":"Software","description":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', HUGE));
    huge.extend(br#""}"#);
    let huge_len = huge.len();
    publisher
        .publish(raw(&huge_key, huge, &json_headers))
        .await
        .unwrap_or_else(|e| panic!("the broker must accept the {huge_len}-byte record: {e}"));
    publish(publisher.as_ref(), &topics, &[good(4)]).await;

    let started = std::time::Instant::now();
    let sink = RunningSink::start("sink", &bus, &topics, sink_config(&emu));
    sink.wait_idle(Duration::from_secs(90)).await;
    let got = assets_by_ref(&emu);
    let want: Vec<String> = (1..=4).map(|i| format!("cmdb:asset:good{i}")).collect();
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), want);

    let mut dlq = read_dlq(&bus, &topics, 5).await;
    dlq.sort();
    let keys: Vec<&str> = dlq.iter().map(|(k, _, _)| k.as_str()).collect();
    let mut want_keys =
        vec!["cmdb:asset:badenum", "cmdb:asset:garbage", &huge_key, "cmdb:asset:nolabel", "cmdb:asset:wrongschema"];
    want_keys.sort();
    assert_eq!(keys, want_keys, "each poison record once in the DLQ, no good one");
    let reasons: BTreeMap<String, String> = dlq.iter().map(|(k, r, _)| (k.clone(), r.clone())).collect();
    assert!(!reasons["cmdb:asset:garbage"].is_empty());
    assert!(!reasons["cmdb:asset:wrongschema"].is_empty());
    assert!(
        reasons["cmdb:asset:badenum"].contains("enum") || reasons["cmdb:asset:badenum"].contains("invalid"),
        "{reasons:?}"
    );
    assert!(!reasons["cmdb:asset:nolabel"].is_empty());
    assert_eq!(reasons[&huge_key], "too_large");
    let len = dlq.iter().find(|(k, _, _)| *k == huge_key).unwrap().2;
    assert_eq!(len, huge_len, "the DLQ keeps the whole original");
    assert!(len > HUGE);
    eprintln!("sink applied the good records and the DLQ was read in {:.1} s", started.elapsed().as_secs_f64());
    eprintln!("DLQ reasons: {reasons:?}");
    sink.stop().await;
}

async fn out_of_order(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();
    let stream = vec![
        event("cmdb:asset:x", 3, asset("X", "third")),
        event("cmdb:asset:x", 1, asset("X", "first")),
        event("cmdb:asset:x", 2, asset("X", "second")),
        event("cmdb:asset:y", 10, asset("Y", "ten")),
        event("cmdb:asset:y", 9, asset("Y", "nine")),
    ];
    publish(publisher.as_ref(), &topics, &stream).await;
    let sink = RunningSink::start("sink", &bus, &topics, sink_config(&emu));
    sink.wait_idle(Duration::from_secs(90)).await;
    // A late, older version after everything was applied changes nothing either.
    let before = requests(&emu);
    publish(publisher.as_ref(), &topics, &[event("cmdb:asset:x", 2, asset("X", "late"))]).await;
    sink.wait_consumed("sink", stream.len() as u64 + 1, Duration::from_secs(60)).await;
    assert_eq!(requests(&emu), before);
    sink.stop().await;
    let all = emu.state.entities(1, "Assets");
    let desc: BTreeMap<String, String> = all
        .iter()
        .map(|a| (a["ref"].as_str().unwrap().to_owned(), a["description"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(desc["cmdb:asset:x"], "third");
    assert_eq!(desc["cmdb:asset:y"], "ten");
    assert_eq!(all.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_dastra_on_nats() {
    faults(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_dastra_on_kafka() {
    faults(Broker::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_on_nats() {
    poison(Broker::nats_big().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_on_kafka() {
    poison(Broker::kafka_big()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_version_wins_on_nats() {
    out_of_order(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_version_wins_on_kafka() {
    out_of_order(Broker::kafka()).await;
}
