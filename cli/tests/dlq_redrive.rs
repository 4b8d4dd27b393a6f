//! `dastra-connect dlq list | redrive` against a running sink process, on NATS and on Kafka, under
//! both `parked` policies. A record Dastra refused (400) parks its key. With `parked: dlq` the later
//! records of the key follow it into the DLQ; with `parked: wait` they are held (only the newest)
//! and the DLQ holds the refused record alone. Either way the records are listed with their
//! reasons, redriven once the cause is gone, and the key ends at its newest version, created once;
//! a second redrive sends nothing again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::asset_event;

use std::process::{Command, Stdio};
use std::time::Duration;

use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::bus::{OutboundMessage, TopicSpec};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{ChangeEvent, EntityKind};
use dastra_connect_core::testkit::NatsServer;
use dastra_emulator::{EmulatorConfig, FaultKind, FaultRule};

fn cli(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dastra-connect")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn wait_for(
    emu: &dastra_emulator::RunningEmulator,
    log: &std::path::Path,
    what: &str,
    f: impl Fn(&[serde_json::Value]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !f(&emu.state.entities(1, "Assets")) {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}; sink log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How later records of a parked key are treated.
#[derive(Clone, Copy, PartialEq)]
enum Parked {
    Dlq,
    Wait,
}

async fn scenario(bus_yaml: &str, bus: BusConfig, parked: Parked) {
    let topics = Topics::default();
    let mut specs: Vec<TopicSpec> = EntityKind::ALL.iter().map(|k| TopicSpec::new(topics.changes(*k))).collect();
    specs.push(TopicSpec::new(topics.dlq()));
    bus.ensure_topics(&specs).await.unwrap();

    let emu = dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![])).await.unwrap();
    // Dastra refuses the first create (a permanent 400), then behaves.
    emu.state
        .add_fault(FaultRule { count: Some(1), ..FaultRule::always(FaultKind::Error { status: 400 }).method("POST") })
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sink.yaml");
    std::fs::write(
        &config,
        format!(
            "bus:\n{bus_yaml}admin:\n  listen: 127.0.0.1:0\nconnectors:\n  sink:\n    type: dastra_sink\n    commit_interval: 200ms\n    parked: {}\n    dastra:\n      base_url: {}\n      workspace_id: 1\n      auth: {{ type: api_key, api_key: emulator-key }}\n",
            if parked == Parked::Wait { "wait" } else { "dlq" },
            emu.base_url
        ),
    )
    .unwrap();
    let mut sink = Command::new(env!("CARGO_BIN_EXE_dastra-connect"))
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("sink.log")).unwrap())
        .spawn()
        .unwrap();

    let publisher = bus.publisher().await.unwrap();
    let codec = Codec::single_object();
    let send = |e: ChangeEvent| {
        let publisher = publisher.clone();
        let codec = codec.clone();
        let topic = topics.changes(e.kind());
        async move {
            let value = e.encode_value(&codec, &topic).await.unwrap();
            let mut m = OutboundMessage::new(topic, e.key.as_str().as_bytes().to_vec(), value);
            for (k, v) in e.ce_headers(&codec) {
                m = m.with_header(k, v.into_bytes());
            }
            publisher.publish(m).await.unwrap();
        }
    };
    // The refused record first, alone, so that it is the one the fault hits.
    send(asset_event("cmdb:asset:bad", 1, "first")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while emu.state.faults().iter().map(|(_, n)| *n).sum::<u64>() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the sink never tried the first record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    send(asset_event("cmdb:asset:bad", 2, "second")).await;
    send(asset_event("cmdb:asset:bad", 3, "third")).await;
    send(asset_event("cmdb:asset:good", 1, "ok")).await;
    wait_for(&emu, &dir.path().join("sink.log"), "the good asset", |a| a.iter().any(|x| x["ref"] == "cmdb:asset:good"))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!emu.state.entities(1, "Assets").iter().any(|x| x["ref"] == "cmdb:asset:bad"));

    let cfg = config.to_str().unwrap();
    let (listed, _) = cli(&["dlq", "list", "--config", cfg, "--idle", "2s"]);
    let rows: Vec<&str> = listed.lines().collect();
    // `dlq`: the refused record and its followers (two, or one when the second arrived while the
    // refused one was still in flight and the two coalesced); `wait`: the refused record alone.
    let expected = rows.len();
    match parked {
        Parked::Wait => assert_eq!(expected, 1, "{listed}"),
        Parked::Dlq => assert!((2..=3).contains(&expected), "{listed}"),
    }
    assert!(
        rows[0].contains("cmdb:asset:bad") && rows[0].contains("dastra_bad_request") && rows[0].contains("status=400"),
        "{listed}"
    );
    for row in &rows[1..] {
        assert!(row.contains("cmdb:asset:bad") && row.contains("\tparked\t"), "{listed}");
    }
    // Listing consumed nothing: listing again shows the same.
    assert_eq!(cli(&["dlq", "list", "--config", cfg, "--idle", "2s"]).0.lines().count(), expected);

    let (_, said) = cli(&["dlq", "redrive", "--config", cfg, "--idle", "2s"]);
    assert!(
        said.contains(&format!("redriven: {expected} record(s), 1 key(s) un-parked")),
        "{said}\nlisted before:\n{listed}"
    );
    wait_for(&emu, &dir.path().join("sink.log"), "the redriven asset", |a| {
        a.iter().any(|x| x["ref"] == "cmdb:asset:bad" && x["description"] == "third")
    })
    .await;
    let bad: Vec<_> = emu.state.entities(1, "Assets").into_iter().filter(|x| x["ref"] == "cmdb:asset:bad").collect();
    assert_eq!(bad.len(), 1, "applied once, newest version: {bad:?}");

    let (_, again) = cli(&["dlq", "redrive", "--config", cfg, "--idle", "2s"]);
    assert!(again.contains("redriven: 0 record(s)"), "{again}");
    sink.kill().unwrap();
    sink.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_records_and_their_followers_are_redriven_on_nats() {
    let nats = NatsServer::start().await;
    let yaml = format!("  type: nats\n  servers: [\"{}\"]\n", nats.url());
    scenario(&yaml, nats.bus_config(), Parked::Dlq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_records_and_their_followers_are_redriven_on_kafka() {
    let (_kafka, yaml, bus) = common::kafka_for_sink(3);
    scenario(&yaml, bus, Parked::Dlq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_of_a_refused_record_wait_until_it_is_redriven_on_nats() {
    let nats = NatsServer::start().await;
    let yaml = format!("  type: nats\n  servers: [\"{}\"]\n", nats.url());
    scenario(&yaml, nats.bus_config(), Parked::Wait).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_of_a_refused_record_wait_until_it_is_redriven_on_kafka() {
    let (_kafka, yaml, bus) = common::kafka_for_sink(3);
    scenario(&yaml, bus, Parked::Wait).await;
}
