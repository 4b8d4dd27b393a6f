//! The sink process killed with SIGKILL at random moments — including while Dastra holds the answer
//! to a POST it has already applied (between the POST and the ledger write) — and restarted until
//! done: the emulator ends with exactly the expected entities and no duplicate, on NATS, Kafka
//! (MockCluster) and tansu (a real Kafka-protocol broker, with static group membership: its
//! coordinator never hands a dead member's partitions to a new one, so the restarted sink must
//! come back as the same member). A processing whose assets arrive after its seven versions and a
//! relationship whose target moves with each version end at their newest versions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dastra_connect_core::bus::{BusConfig, OutboundMessage, TopicSpec};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::{AssetType, ProcessingState, ProcessingType};
use dastra_connect_core::event::{
    Asset, ChangeEvent, DataProcessing, EntityKey, EntityKind, Payload, Relationship, sequence_from_u64,
};
use dastra_connect_core::testkit::NatsServer;
use dastra_emulator::{EmulatorConfig, FaultKind, FaultRule, RunningEmulator};
use rand::{Rng, SeedableRng};

const N: usize = 120;

/// A processing whose assets arrive after it (its seven versions wait for them) and a relationship
/// whose target moves with each version: after the kills, each must end at its newest version.
const LATE: &str = "grc:processing:late";
const LINK: &str = "cmdb:relationship:link";

fn late_processing(v: u64) -> Payload {
    let srv = |i: u64| EntityKey::parse(&format!("cmdb:asset:srv{i}")).unwrap();
    Payload::DataProcessing(DataProcessing {
        label: Some("Late".into()),
        description: Some(format!("version {v}")),
        processing_type: Some(ProcessingType::Default),
        processing_state: v.is_multiple_of(2).then_some(ProcessingState::InProduction),
        assets: if v.is_multiple_of(2) { vec![srv(0), srv(1)] } else { vec![srv(0)] },
        ..Default::default()
    })
}

fn moving_link(v: u64) -> Payload {
    Payload::Relationship(Relationship {
        origin: Some(EntityKey::parse("cmdb:asset:srv0").unwrap()),
        target: Some(EntityKey::parse(&format!("cmdb:asset:srv{}", v + 1)).unwrap()),
        label: Some(format!("v{v}")),
        ..Default::default()
    })
}

fn events() -> Vec<ChangeEvent> {
    let mut out = Vec::new();
    let ev = |key: &str, v: u64, data: Payload| {
        ChangeEvent::new(
            "/connectors/grc",
            EntityKey::parse(key).unwrap(),
            sequence_from_u64(v),
            chrono::Utc::now(),
            data,
        )
        .unwrap()
    };
    for v in 1..=7 {
        out.push(ev(LATE, v, late_processing(v)));
    }
    for v in 1..=4 {
        out.push(ev(LINK, v, moving_link(v)));
    }
    for v in 1..=2u64 {
        for i in 0..N {
            if v == 2 && !i.is_multiple_of(3) {
                continue;
            }
            let data = Payload::Asset(Asset {
                label: Some(format!("Server {i}")),
                asset_type: Some(AssetType::Material),
                description: Some(format!("version {v}")),
                ..Default::default()
            });
            let key = EntityKey::parse(&format!("cmdb:asset:srv{i}")).unwrap();
            out.push(
                ChangeEvent::new("/connectors/cmdb", key, sequence_from_u64(v), chrono::Utc::now(), data).unwrap(),
            );
        }
    }
    out
}

async fn publish_all(bus: &BusConfig, topics: &Topics) {
    let publisher = bus.publisher().await.unwrap();
    let codec = Codec::single_object();
    let mut msgs = Vec::new();
    for e in events() {
        let topic = topics.changes(e.kind());
        let value = e.encode_value(&codec, &topic).await.unwrap();
        let mut m = OutboundMessage::new(topic, e.key.as_str().as_bytes().to_vec(), value);
        for (k, v) in e.ce_headers(&codec) {
            m = m.with_header(k, v.into_bytes());
        }
        msgs.push(m);
    }
    publisher.publish_batch(msgs).await.unwrap();
}

fn spawn_sink(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_dastra-connect"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// `ref` → description; panics on duplicates.
fn state(emu: &RunningEmulator) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in emu.state.entities(1, "Assets") {
        let r = a["ref"].as_str().unwrap_or_default().to_owned();
        let d = a["description"].as_str().unwrap_or_default().to_owned();
        assert!(out.insert(r.clone(), d).is_none(), "duplicate asset in Dastra for {r}");
    }
    out
}

/// Whether the late processing and the moving link are at their newest versions (7 and 4), each
/// exactly once; what differs otherwise.
fn late_ones_right(emu: &RunningEmulator) -> Result<(), String> {
    let asset_id = |i: usize| {
        emu.state
            .entities(1, "Assets")
            .into_iter()
            .find(|a| a["ref"].as_str() == Some(&format!("cmdb:asset:srv{i}")))
            .and_then(|a| a["id"].as_i64())
    };
    let dps: Vec<_> = emu.state.entities(1, "DataProcessings").into_iter().filter(|d| d["ref"] == LATE).collect();
    let [dp] = dps.as_slice() else { return Err(format!("{} processings {LATE}", dps.len())) };
    let assets: Vec<Option<i64>> =
        dp["assets"].as_array().map(|a| a.iter().map(|x| x["id"].as_i64()).collect()).unwrap_or_default();
    let got = (dp["description"].as_str(), dp.get("processingState").and_then(|s| s.as_str()), assets);
    if got != (Some("version 7"), None, vec![asset_id(0)]) {
        return Err(format!("{LATE} is {got:?}"));
    }
    let links = emu.state.entities(1, "GenericRelationships");
    let got: Vec<(Option<&str>, Option<&str>)> =
        links.iter().map(|l| (l["target"]["id"].as_str(), l["label"].as_str())).collect();
    let target = asset_id(5).map(|i| i.to_string());
    if got != vec![(target.as_deref(), Some("v4"))] {
        return Err(format!("{LINK} links are {got:?}"));
    }
    Ok(())
}

fn expected() -> BTreeMap<String, String> {
    (0..N)
        .map(|i| (format!("cmdb:asset:srv{i}"), format!("version {}", if i.is_multiple_of(3) { 2 } else { 1 })))
        .collect()
}

async fn scenario(bus_yaml: &str, bus: BusConfig) {
    let topics = Topics::default();
    let mut specs: Vec<TopicSpec> = EntityKind::ALL.iter().map(|k| TopicSpec::new(topics.changes(*k))).collect();
    specs.push(TopicSpec::new(topics.dlq()));
    bus.ensure_topics(&specs).await.unwrap();
    publish_all(&bus, &topics).await;

    // Every request takes a little while, and some POSTs are applied and then answered only after
    // a long pause: a kill during that pause is a kill between the POST and the ledger write.
    let emu = dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![])).await.unwrap();
    emu.state.add_fault(FaultRule::always(FaultKind::Latency { ms: 15 })).unwrap();
    emu.state
        .add_fault(FaultRule::always(FaultKind::TimeoutAfterWrite { hang_ms: 4000 }).method("POST").rate(0.05))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sink.yaml");
    let log = dir.path().join("sink.log");
    std::fs::write(
        &config,
        format!(
            "bus:\n{bus_yaml}\nadmin:\n  listen: 127.0.0.1:0\nconnectors:\n  sink:\n    type: dastra_sink\n    commit_interval: 200ms\n    max_backoff: 1s\n    dastra:\n      base_url: {}\n      workspace_id: 1\n      request_timeout: 2s\n      auth:\n        type: api_key\n        api_key: emulator-key\n",
            emu.base_url
        ),
    )
    .unwrap();

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut kills = 0;
    let mut kills_in_ambiguous_post = 0;
    while kills < 12 {
        let mut child = spawn_sink(&config, &log);
        if kills % 4 == 3 {
            // Wait for a POST that Dastra applied but has not answered yet, then kill.
            let hung_before = hung_posts(&emu);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while hung_posts(&emu) == hung_before && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if hung_posts(&emu) > hung_before {
                kills_in_ambiguous_post += 1;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..2500))).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let _ = state(&emu); // no duplicate at any point
    }
    assert!(
        kills_in_ambiguous_post >= 1,
        "no kill landed between a POST and its answer\nlog tail (reversed):\n{}",
        log_tail(&log)
    );

    // Now let it finish.
    let mut child = spawn_sink(&config, &log);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let want = expected();
    loop {
        let got = state(&emu);
        let late = late_ones_right(&emu);
        if got == want && late.is_ok() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            let tail = log_tail(&log);
            panic!(
                "never converged: {} of {} assets right; {late:?}\nlog tail (reversed):\n{tail}",
                got.iter().filter(|(k, v)| want.get(*k) == Some(v)).count(),
                want.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Stays right (late retries must not create anything).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(state(&emu), want);
    late_ones_right(&emu).unwrap();
    // SIGTERM: a clean stop.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    eprintln!(
        "{kills} kills ({kills_in_ambiguous_post} between POST and answer); {} Dastra requests",
        emu.state.counters().total
    );
}

/// The last 40 lines of the sink's log, newest first.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().rev().take(40).collect::<Vec<_>>().join("\n")
}

fn hung_posts(emu: &RunningEmulator) -> u64 {
    emu.state
        .faults()
        .iter()
        .filter(|(r, _)| matches!(r.kind, FaultKind::TimeoutAfterWrite { .. }))
        .map(|(_, n)| *n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_storm_on_nats() {
    let nats = NatsServer::start().await;
    let yaml = format!("  type: nats\n  servers: [\"{}\"]\n  ack_wait: 5s\n", nats.url());
    scenario(&yaml, nats.bus_config()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_storm_on_kafka() {
    let (_kafka, yaml, bus) = common::kafka_for_sink(3);
    scenario(&yaml, bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_storm_on_kafka_with_static_membership() {
    let (_kafka, yaml, bus) = common::kafka_for_sink(3);
    let yaml = yaml.replace("  create_topics: false\n", "  create_topics: false\n  group_instance_id: dastra-sink-0\n");
    scenario(&yaml, bus).await;
}
