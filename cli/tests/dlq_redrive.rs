//! `dastra-connect dlq list | redrive` against a running sink process: a record Dastra refused (400)
//! and the later record of the same key (parked behind it) are listed with their reasons, redriven in
//! order once the cause is gone, and applied; a second redrive sends nothing again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use dastra_connect_core::bus::{OutboundMessage, TopicSpec};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::AssetType;
use dastra_connect_core::event::{Asset, ChangeEvent, EntityKey, EntityKind, Payload, sequence_from_u64};
use dastra_connect_core::testkit::NatsServer;
use dastra_emulator::{EmulatorConfig, FaultKind, FaultRule};

fn asset_event(key: &str, v: u64, description: &str) -> ChangeEvent {
    let data = Payload::Asset(Asset {
        label: Some(key.rsplit(':').next().unwrap().to_owned()),
        asset_type: Some(AssetType::Software),
        description: Some(description.into()),
        ..Default::default()
    });
    ChangeEvent::new("/connectors/t", EntityKey::parse(key).unwrap(), sequence_from_u64(v), chrono::Utc::now(), data)
        .unwrap()
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_records_are_listed_and_redriven_in_order() {
    let nats = NatsServer::start().await;
    let bus = nats.bus_config();
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
            "bus:\n  type: nats\n  servers: [\"{}\"]\nadmin:\n  listen: 127.0.0.1:0\nconnectors:\n  sink:\n    type: dastra_sink\n    commit_interval: 200ms\n    dastra:\n      base_url: {}\n      workspace_id: 1\n      auth: {{ type: api_key, api_key: emulator-key }}\n",
            nats.url(),
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
    send(asset_event("cmdb:asset:good", 1, "ok")).await;
    wait_for(&emu, &dir.path().join("sink.log"), "the good asset", |a| a.iter().any(|x| x["ref"] == "cmdb:asset:good"))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!emu.state.entities(1, "Assets").iter().any(|x| x["ref"] == "cmdb:asset:bad"));

    let cfg = config.to_str().unwrap();
    let (listed, _) = cli(&["dlq", "list", "--config", cfg, "--idle", "2s"]);
    let rows: Vec<&str> = listed.lines().collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(
        rows[0].contains("cmdb:asset:bad") && rows[0].contains("dastra_bad_request") && rows[0].contains("status=400"),
        "{listed}"
    );
    assert!(rows[1].contains("cmdb:asset:bad") && rows[1].contains("\tparked\t"), "{listed}");
    // Listing consumed nothing: listing again shows the same.
    assert_eq!(cli(&["dlq", "list", "--config", cfg, "--idle", "2s"]).0.lines().count(), 2);

    let (_, said) = cli(&["dlq", "redrive", "--config", cfg, "--idle", "2s"]);
    assert!(said.contains("redriven: 2 record(s), 1 key(s) un-parked"), "{said}");
    wait_for(&emu, &dir.path().join("sink.log"), "the redriven asset", |a| {
        a.iter().any(|x| x["ref"] == "cmdb:asset:bad" && x["description"] == "second")
    })
    .await;
    let bad: Vec<_> = emu.state.entities(1, "Assets").into_iter().filter(|x| x["ref"] == "cmdb:asset:bad").collect();
    assert_eq!(bad.len(), 1, "applied once, newest version: {bad:?}");

    let (_, again) = cli(&["dlq", "redrive", "--config", cfg, "--idle", "2s"]);
    assert!(again.contains("redriven: 0 record(s)"), "{again}");
    sink.kill().unwrap();
    sink.wait().unwrap();
}
