//! Prints what Dastra's batch routes save on the two bulk changes of issue #16: one owner change
//! applied to 300 assets (identical JSON Patches: `PATCH Assets` with `{ids, patch}`), and a
//! source that removes 1 000 assets (`POST Assets/batch-delete`); and on two more: 200 processings
//! retired under the `archive` delete policy (`POST DataProcessings/archive`), then coming back at
//! the source (`POST DataProcessings/restore`, then each one's PATCH of its new version). The REAL sink (driver, ledger on
//! nats-server, apply, client) against the emulator, which counts the requests.
//!
//! For each sink setting — batching off (`batch_window = 0s`), the defaults, and a larger
//! `max_in_flight` (a batch holds at most as many members as keys are worked on at once) — a fresh
//! workspace gets 1 000 assets (quota off), then the measured sink runs the two changes, with the
//! quota off and under a compressed quota (`BENCH_QUOTA`, default `100/1000`: 100 requests per
//! second on both the emulator and the client, so that requests wait for their slot as under
//! Dastra's 500/min).
//!
//! `cargo bench -p dastra-connect-dastra --bench bulk`

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Broker, RunningSink, SinkBus, ensure, event, publish, sink_config};
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::AssetType;
use dastra_connect_core::event::{Asset, DataProcessing, Payload};
use dastra_connect_dastra::QuotaWindow;
use dastra_connect_dastra::sink::DastraSinkConfig;
use dastra_connect_dastra::sink::config::DeletePolicy;
use dastra_emulator::RunningEmulator;

const ASSETS: usize = 1_000;
const OWNER_CHANGES: usize = 300;
const PROCESSINGS: usize = 200;

fn processing(k: usize, retired: bool, version: u32) -> Payload {
    Payload::DataProcessing(DataProcessing {
        deleted: retired,
        label: Some(format!("Bulk processing {k} v{version}")),
        ..Default::default()
    })
}

fn asset(k: usize, owner: Option<u32>) -> Payload {
    match owner {
        Some(o) => Payload::Asset(Asset {
            label: Some(format!("Bulk {k}")),
            asset_type: Some(AssetType::Software),
            description: Some(format!("owner {o}")),
            ..Default::default()
        }),
        None => Payload::Asset(Asset { deleted: true, ..Default::default() }),
    }
}

fn key(k: usize) -> String {
    format!("bulk:asset:{k}")
}

struct Setting {
    name: &'static str,
    window: Duration,
    in_flight: usize,
}

fn config(emu: &RunningEmulator, quota: Option<(u32, u64)>, s: &Setting) -> DastraSinkConfig {
    let mut cfg = sink_config(emu);
    cfg.dastra.quota.windows = vec![QuotaWindow { limit: 1_000_000, per: Duration::from_secs(1) }];
    if let Some((limit, ms)) = quota {
        cfg.dastra.quota.windows = vec![QuotaWindow { limit, per: Duration::from_millis(ms) }];
        cfg.dastra.quota.safety_margin = Duration::from_millis(50);
    }
    cfg.batch_window = s.window;
    cfg.max_in_flight = s.in_flight;
    cfg
}

/// Runs `events` through a sink with `cfg`; answers (requests, seconds).
async fn measure(
    bus: &dastra_connect_core::bus::BusConfig,
    topics: &Topics,
    emu: &RunningEmulator,
    cfg: DastraSinkConfig,
    events: &[dastra_connect_core::event::ChangeEvent],
) -> (u64, f64) {
    let sink = RunningSink::start("sink", bus, topics, cfg);
    sink.wait_assigned(Duration::from_secs(60)).await;
    let before = emu.state.counters().total;
    let publisher = bus.publisher().await.unwrap();
    let started = Instant::now();
    publish(publisher.as_ref(), topics, events).await;
    sink.wait_consumed("sink", events.len() as u64, Duration::from_secs(600)).await;
    // wait_idle (inside wait_consumed) returns after 1.5 s without work.
    let took = started.elapsed().as_secs_f64() - 1.5;
    sink.stop().await;
    (emu.state.counters().total - before, took)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quota: (u32, u64) = std::env::var("BENCH_QUOTA")
        .ok()
        .and_then(|q| q.split_once('/').and_then(|(l, p)| Some((l.parse().ok()?, p.parse().ok()?))))
        .unwrap_or((100, 1000));
    let settings = [
        Setting { name: "batching off (`batch_window: 0s`), 32 in flight", window: Duration::ZERO, in_flight: 32 },
        Setting { name: "defaults: 5 ms window, 8 in flight", window: Duration::from_millis(5), in_flight: 8 },
        Setting { name: "5 ms window, 32 in flight", window: Duration::from_millis(5), in_flight: 32 },
        Setting { name: "5 ms window, 100 in flight", window: Duration::from_millis(5), in_flight: 100 },
    ];
    println!(
        "| setting | quota | owner change on {OWNER_CHANGES} assets | delete of {ASSETS} assets | archive of {PROCESSINGS} processings | the {PROCESSINGS} come back |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for q in [None, Some(quota)] {
        for s in &settings {
            let broker = Broker::nats().await;
            let topics = Topics::default();
            let bus = broker.bus(&topics, "sink").await;
            ensure(&bus, &topics).await;
            let emu = common::emulator().await;
            let mut seq = 0u64;
            let mut next = |k: usize, owner: Option<u32>| {
                seq += 1;
                event(&key(k), seq, asset(k, owner))
            };
            let creates: Vec<_> = (0..ASSETS).map(|k| next(k, Some(0))).collect();
            let fast = Setting { name: "setup", window: Duration::from_millis(5), in_flight: 32 };
            measure(&bus, &topics, &emu, config(&emu, None, &fast), &creates).await;
            assert_eq!(emu.state.entities(1, "Assets").len(), ASSETS);
            if let Some((limit, ms)) = q {
                emu.state.set_quota(vec![dastra_emulator::QuotaWindow { limit, period: Duration::from_millis(ms) }]);
            }
            let owners: Vec<_> = (0..OWNER_CHANGES).map(|k| next(k, Some(1))).collect();
            let (patch_requests, patch_s) = measure(&bus, &topics, &emu, config(&emu, q, s), &owners).await;
            let changed =
                emu.state.entities(1, "Assets").iter().filter(|a| a["description"].as_str() == Some("owner 1")).count();
            assert_eq!(changed, OWNER_CHANGES);
            let deletes: Vec<_> = (0..ASSETS).map(|k| next(k, None)).collect();
            let (delete_requests, delete_s) = measure(&bus, &topics, &emu, config(&emu, q, s), &deletes).await;
            assert_eq!(emu.state.entities(1, "Assets").len(), 0);
            emu.state.set_quota(vec![]);
            let mut pseq = seq;
            let mut pnext = |k: usize, retired: bool, version: u32| {
                pseq += 1;
                event(&format!("bulk:processing:{k}"), pseq, processing(k, retired, version))
            };
            let created: Vec<_> = (0..PROCESSINGS).map(|k| pnext(k, false, 1)).collect();
            measure(&bus, &topics, &emu, config(&emu, None, &fast), &created).await;
            assert_eq!(emu.state.entities(1, "DataProcessings").len(), PROCESSINGS);
            if let Some((limit, ms)) = q {
                emu.state.set_quota(vec![dastra_emulator::QuotaWindow { limit, period: Duration::from_millis(ms) }]);
            }
            let retired: Vec<_> = (0..PROCESSINGS).map(|k| pnext(k, true, 1)).collect();
            let mut archiving = config(&emu, q, s);
            archiving.policy.deletes.insert("processing".into(), DeletePolicy::Archive);
            let (archive_requests, archive_s) = measure(&bus, &topics, &emu, archiving.clone(), &retired).await;
            let archived = |emu: &RunningEmulator| {
                emu.state
                    .entities(1, "DataProcessings")
                    .iter()
                    .filter(|p| p["archived"] == serde_json::json!(true))
                    .count()
            };
            assert_eq!(archived(&emu), PROCESSINGS);
            let back: Vec<_> = (0..PROCESSINGS).map(|k| pnext(k, false, 2)).collect();
            let (back_requests, back_s) = measure(&bus, &topics, &emu, archiving, &back).await;
            assert_eq!(archived(&emu), 0);
            assert_eq!(emu.state.entities(1, "DataProcessings").len(), PROCESSINGS);
            let quota_label = q.map_or_else(|| "off".to_owned(), |(l, ms)| format!("{l}/{ms}ms"));
            println!(
                "| {} | {quota_label} | {patch_requests} requests, {patch_s:.1} s | {delete_requests} requests, {delete_s:.1} s | {archive_requests} requests, {archive_s:.1} s | {back_requests} requests, {back_s:.1} s |",
                s.name
            );
        }
    }
}
