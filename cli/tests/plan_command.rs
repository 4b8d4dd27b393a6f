//! `dastra-connect plan` as a process, on a Kafka MockCluster: the table and `--format json` of a
//! backlog (`--from-beginning`, `--topic … --since …`, the default: what the sink's group has not
//! committed), and bad flags or config refused with the flag or key and the reason. How close the
//! prediction is to what the sink then sends is `connectors/dastra/tests/sink_plan.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::asset_event;

use std::process::Command;

use dastra_connect_core::bus::OutboundMessage;
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::ChangeEvent;
use dastra_emulator::EmulatorConfig;

/// Runs the binary: (success, stdout, stderr).
fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dastra-connect")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (success, out, err) = cli(args);
    assert!(success, "{args:?} failed: {err}");
    out
}

fn fails(args: &[&str], expected: &[&str]) {
    let (success, out, err) = cli(args);
    assert!(!success, "{args:?} succeeded: {out}");
    for e in expected {
        assert!(err.contains(e), "{args:?}: {e:?} not in {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_prints_a_table_and_json_and_refuses_bad_flags() {
    let (_kafka, bus_yaml, bus) = common::kafka_for_sink(2);
    let topics = Topics::default();
    let emu = dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![])).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sink.yaml");
    std::fs::write(
        &config,
        format!(
            "bus:\n{bus_yaml}connectors:\n  sink:\n    type: dastra_sink\n    dastra:\n      base_url: {}\n      workspace_id: 1\n      auth: {{ type: api_key, api_key: emulator-key }}\n",
            emu.base_url
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();

    // Ten new assets, one of them in three versions.
    let publisher = bus.publisher().await.unwrap();
    let codec = Codec::single_object();
    let mut events: Vec<ChangeEvent> = (0..10).map(|i| asset_event(&format!("cmdb:asset:a{i}"), 1, "v1")).collect();
    events.push(asset_event("cmdb:asset:a9", 2, "v2"));
    events.push(asset_event("cmdb:asset:a9", 3, "v3"));
    for e in &events {
        let topic = topics.changes(e.kind());
        let value = e.encode_value(&codec, &topic).await.unwrap();
        let mut m = OutboundMessage::new(topic, e.key.as_str().as_bytes().to_vec(), value);
        for (k, v) in e.ce_headers(&codec) {
            m = m.with_header(k, v.into_bytes());
        }
        publisher.publish(m).await.unwrap();
    }

    let json: serde_json::Value =
        serde_json::from_str(&ok(&["plan", "--config", cfg, "--from-beginning", "--format", "json"])).unwrap();
    assert_eq!(json["events"]["messages"], 12, "{json}");
    assert_eq!(json["by_kind"]["create"], 10, "one POST per asset: {json}");
    let total: u64 = ["create", "patch", "delete", "lookup"].iter().map(|k| json["by_kind"][k].as_u64().unwrap()).sum();
    assert_eq!(json["requests"].as_u64().unwrap(), total, "{json}");
    assert_eq!(json["by_entity"]["asset"]["create"], 10, "{json}");
    assert!(json["seconds"].as_f64().is_some(), "{json}");
    assert!(json["estimates"].as_array().is_some_and(|a| !a.is_empty()), "{json}");
    assert_eq!(emu.state.counters().total, 0, "plan sent nothing to Dastra");

    let table = ok(&["plan", "--config", cfg, "--from-beginning"]);
    for needle in ["entity", "create", "asset", "predicted time under the quota 500/1m, 10000/10m", "coalescing:"] {
        assert!(table.contains(needle), "{needle:?} not in\n{table}");
    }
    // The default reads what the sink's group has not committed: here, everything.
    let default: serde_json::Value = serde_json::from_str(&ok(&["plan", "--config", cfg, "--format", "json"])).unwrap();
    assert_eq!(default["events"]["messages"], 12, "{default}");
    let since: serde_json::Value = serde_json::from_str(&ok(&[
        "plan",
        "--config",
        cfg,
        "--topic",
        "dastra.changes.asset",
        "--since",
        "1h",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(since["events"]["messages"], 12, "{since}");
    let future: serde_json::Value = serde_json::from_str(&ok(&[
        "plan",
        "--config",
        cfg,
        "--topic",
        "dastra.changes.asset",
        "--since",
        "2099-01-01T00:00:00Z",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(future["events"]["messages"], 0, "{future}");
    assert_eq!(future["requests"], 0, "{future}");

    // Bad flags and config: the flag or key, and why.
    fails(&["plan", "--config", cfg, "--topic", "dastra.changes.asset"], &["--since"]);
    fails(&["plan", "--config", cfg, "--from-beginning", "--topic", "t", "--since", "1h"], &["--from-beginning"]);
    fails(
        &["plan", "--config", cfg, "--topic", "dastra.changes.asset", "--since", "yesterday"],
        &["--since", "RFC 3339"],
    );
    fails(
        &["plan", "--config", cfg, "--topic", "dastra.changes.nope", "--since", "1h"],
        &["--topic dastra.changes.nope", "not a change topic"],
    );
    fails(&["plan", "--config", cfg, "--connector", "other"], &["--connector other", "no dastra_sink"]);
    fails(&["plan", "--config", cfg, "--format", "xml"], &["--format"]);
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("workspace_id: 1", "workspace_id: 1\n      quota: { windows: [{limit: 0, per: 60s}] }"),
    )
    .unwrap();
    fails(&["plan", "--config", bad.to_str().unwrap()], &["quota"]);
}
