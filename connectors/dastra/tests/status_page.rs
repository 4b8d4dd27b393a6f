//! The admin server's status page, rendered by a real headless Chromium against a running sink
//! (real nats-server, the emulator answering one 429 and refusing one create), shows that sink's
//! figures: owned partitions, quota gauges, the requests-per-minute chart with the 429, the
//! dead-lettered event and its parked key with the `dlq redrive` command, the pending reference.
//! Chromium is installed with apt when missing (`scripts/tools.sh` does the same); the test never
//! skips. `DASTRA_UPDATE_SCREENSHOT=1` writes the screenshot to `docs/status-page.png`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::{AssetType, ProcessingType};
use dastra_connect_core::event::{Asset, DataProcessing, EntityKey, Payload};
use dastra_connect_core::health::{self, BusCheck, HealthCheck};
use dastra_connect_dastra::health::DastraCheck;
use dastra_connect_dastra::{DastraClient, QuotaConfig, QuotaLimiter};
use dastra_emulator::{FaultKind, FaultRule};
use tokio_util::sync::CancellationToken;

/// The Chromium binary; installs Debian's `chromium` when there is none.
fn chromium() -> PathBuf {
    let find = || {
        ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
            let out = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().ok()?;
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
        })
    };
    if let Some(p) = find() {
        return p;
    }
    eprintln!("chromium is missing: installing it with apt-get (as scripts/tools.sh does)");
    let install = Command::new("sh")
        .args(["-c", "DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium"])
        .status()
        .expect("cannot run apt-get");
    assert!(install.success(), "`apt-get install -y chromium` failed: the status page test needs Chromium");
    find().expect("chromium still not found after installing it")
}

fn headless(chromium: &PathBuf, extra: &[&str], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        // Lets the page's fetch of /status finish and render before the DOM is read.
        .arg("--virtual-time-budget=4000")
        .args(extra)
        .arg(url)
        .output()
        .unwrap()
}

fn processing(label: &str, assets: &[&str]) -> Payload {
    Payload::DataProcessing(DataProcessing {
        label: Some(label.into()),
        processing_type: Some(ProcessingType::Default),
        assets: assets.iter().map(|a| EntityKey::parse(a).unwrap()).collect(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_figures_of_a_running_sink() {
    let chromium = chromium();
    let broker = Broker::nats().await;
    let topics = Topics::default();
    let bus = broker.bus(&topics, "crm-sink").await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    let sink = RunningSink::start("crm-sink", &bus, &topics, sink_config(&emu));
    // The checks `run` performs, reported where `run` reports them (the page shows their result).
    let client =
        DastraClient::new(&sink_config(&emu).dastra, QuotaLimiter::new(&QuotaConfig::default()), None).unwrap();
    let checks: Vec<Arc<dyn HealthCheck>> =
        vec![Arc::new(BusCheck::new(bus.clone())), Arc::new(DastraCheck::new(client))];
    health::run_all(&checks).await.unwrap();
    sink.admin.health("crm-sink").passed();
    // One 429 (on any request) and one refused processing create (a permanent 400).
    emu.state.add_fault(FaultRule { count: Some(1), ..FaultRule::always(FaultKind::Error { status: 429 }) }).unwrap();
    emu.state
        .add_fault(FaultRule {
            count: Some(1),
            ..FaultRule::always(FaultKind::Error { status: 400 }).method("POST").route("DataProcessings")
        })
        .unwrap();
    let stop = CancellationToken::new();
    let (addr, _server) =
        sink.admin.serve("127.0.0.1:0".parse().unwrap(), stop.clone().cancelled_owned()).await.unwrap();

    let mut events: Vec<_> = (0..25)
        .map(|i| {
            let data = Payload::Asset(Asset {
                label: Some(format!("Server {i}")),
                asset_type: Some(AssetType::Material),
                ..Default::default()
            });
            event(&format!("cmdb:asset:srv{i}"), 1, data)
        })
        .collect();
    events.push(event("grc:processing:hr", 1, processing("HR", &[])));
    publish(bus.publisher().await.unwrap().as_ref(), &topics, &events).await;
    sink.wait_consumed("crm-sink", events.len() as u64, Duration::from_secs(90)).await;
    sink.wait_idle(Duration::from_secs(90)).await;
    // Then an event waiting for an asset nobody published.
    let waiting = [event("grc:processing:payroll", 1, processing("Payroll", &["cmdb:asset:missing"]))];
    publish(bus.publisher().await.unwrap().as_ref(), &topics, &waiting).await;
    sink.wait_consumed("crm-sink", events.len() as u64 + 1, Duration::from_secs(60)).await;
    sink.wait_idle(Duration::from_secs(60)).await;
    let status = sink.admin.status_json();
    assert_eq!(status["crm-sink"]["sink"]["pending"], 1, "{status}");

    let url = format!("http://{addr}/ui");
    let out = headless(&chromium, &["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let has = |needle: &str| dom.contains(needle);
    assert!(has(r#"data-connector="crm-sink""#), "no card for the sink:\n{dom}");
    assert!(has("dastra_sink"));
    assert!(has(r#"<span class="pill ok">healthy</span>"#), "health not shown");
    // Owned partitions: the NATS bus's partitions of every change topic, all owned by this replica.
    let owned = status["crm-sink"]["sink"]["partitions"].as_array().unwrap().len();
    let total = status["crm-sink"]["quota"]["total_partitions"].as_u64().unwrap();
    assert!(owned > 0);
    assert!(has(&format!(r#"<span class="owned-partitions">{owned} of {total}</span>"#)), "owned partitions not shown");
    assert!(
        has("<td>dastra.changes.asset</td><td>0 1 2 3 4 5</td>"),
        "the partitions of a topic are not listed:\n{dom}"
    );
    assert!(has(r#"<span class="throttled-total">1</span>"#), "the 429 is not shown:\n{dom}");
    assert!(has(r#"<span class="dlq-total">1</span>"#), "the DLQ count is not shown:\n{dom}");
    assert!(has(r#"<span class="parked-total">1</span>"#), "the parked count is not shown");
    assert!(has(r#"<span class="pending-total">1</span>"#), "the pending reference is not shown");
    assert!(has("grc:processing:hr"), "the parked key is not listed");
    assert!(
        has("dastra-connect dlq redrive --config &lt;this config file&gt; --connector crm-sink"),
        "no redrive command"
    );
    assert!(has(r#"class="gauge quota-gauge""#), "no quota gauge");
    let granted = status["crm-sink"]["quota"]["windows"][0]["used"].as_u64().unwrap();
    let share = status["crm-sink"]["quota"]["windows"][0]["share"].as_u64().unwrap();
    assert!(has(&format!(r#"<div class="figure">{granted}/{share}</div>"#)), "gauge {granted}/{share} not shown");
    assert!(has(r#"class="rpm-bar""#) && has(r#"class="throttled-bar""#), "no request or 429 bar in the chart");
    assert!(!has("http://") || !dom.contains("src=\"http"), "no external asset");

    let shot = if std::env::var("DASTRA_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1") {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/status-page.png"))
    } else {
        std::env::temp_dir().join(format!("status-page-{}.png", std::process::id()))
    };
    let out = headless(&chromium, &["--window-size=1400,1150", &format!("--screenshot={}", shot.display())], &url);
    assert!(out.status.success(), "screenshot failed: {}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "not a real screenshot: {} bytes", png.len());

    stop.cancel();
    sink.stop().await;
}
