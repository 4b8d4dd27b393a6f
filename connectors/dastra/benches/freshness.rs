//! Freshness under backlog: how long a LIVE change waits while the REAL sink drains a backfill under
//! the quota. Prints the live changes' p50/p99/max time from publish to Dastra's answer (the entity
//! existing in the emulator, polled every 10 ms), and the backfill's drain time (from the emulator's
//! counters, polled every 500 ms).
//!
//! The backfill is a new source's initial load: `BENCH_ENTITIES` Assets (default 10 000), each
//! published `BENCH_SWEEPS` times (default 10) as snapshot events (quota class `backfill`): 100 000
//! events, all published before the sink starts, ≈ 0.1 request per event (one create per Asset, the
//! repeats cost nothing), close to the churn stream's 0.09–0.1. While it drains, `BENCH_LIVE` live
//! changes (default 60: Actor creates, class `live`) are published one every `BENCH_LIVE_EVERY_MS`
//! (default 5 000 ms), starting `BENCH_LIVE_AFTER_MS` (default 5 000) after the sink.
//!
//! Quota: Dastra's real windows by default (500 per 60 s and 10 000 per 600 s, in the emulator and
//! in the sink's limiter, whose safety margin stays 1 s): the full run drains for ≈ 21 minutes.
//! `BENCH_QUOTA=500/6000` compresses it to one window of 500 per 6 s (margin per/60, as 1 s is of
//! 60 s); scale `BENCH_LIVE_EVERY_MS` and `BENCH_LIVE_AFTER_MS` by the same factor to keep the ratio
//! of quota to load — waits are then that factor shorter than under Dastra's windows.
//!
//! `BENCH_LANES=off` sets `priority_lanes: false` (keys start in the order they were read: what the
//! sink did before the lanes). `BENCH_BUS=kafka` uses librdkafka's MockCluster instead of nats-server.
//!
//! `cargo bench -p dastra-connect-dastra --bench freshness`

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Broker, RunningSink, SinkBus, ensure, event, publish, sink_config};
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::Payload;
use dastra_connect_core::event::enums::{ActorType, VendorType};
use dastra_connect_dastra::QuotaWindow;
use dastra_emulator::EmulatorConfig;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Assets created so far, from the emulator's counters (cheap: listing 10 000 entities under the
/// emulator's lock every poll would slow the emulator down, and with it what is measured).
fn created(emu: &dastra_emulator::RunningEmulator) -> usize {
    let rows = emu.state.counters().by_route;
    rows.iter()
        .filter(|r| r.method == "POST" && r.route.ends_with("/Assets") && r.status < 300)
        .map(|r| r.count)
        .sum::<u64>() as usize
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let entities: usize = env("BENCH_ENTITIES", 10_000);
    let sweeps: usize = env("BENCH_SWEEPS", 10);
    let live: usize = env("BENCH_LIVE", 60);
    let every = Duration::from_millis(env("BENCH_LIVE_EVERY_MS", 5_000));
    let after = Duration::from_millis(env("BENCH_LIVE_AFTER_MS", 5_000));
    let lanes = std::env::var("BENCH_LANES").as_deref() != Ok("off");
    let compressed: Option<(u32, Duration)> = std::env::var("BENCH_QUOTA").ok().map(|q| {
        let (l, p) = q.split_once('/').expect("BENCH_QUOTA=<limit>/<period ms>");
        (l.parse().expect("limit"), Duration::from_millis(p.parse().expect("period ms")))
    });
    let broker = match std::env::var("BENCH_BUS").as_deref() {
        Ok("kafka") => Broker::kafka(),
        _ => Broker::nats().await,
    };
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu_windows = match compressed {
        Some((limit, period)) => vec![dastra_emulator::QuotaWindow { limit, period }],
        None => vec![
            dastra_emulator::QuotaWindow { limit: 500, period: Duration::from_secs(60) },
            dastra_emulator::QuotaWindow { limit: 10_000, period: Duration::from_secs(600) },
        ],
    };
    let emu = dastra_emulator::spawn(EmulatorConfig::default().with_quota(emu_windows.clone())).await.unwrap();
    let mut cfg = sink_config(&emu);
    if let Some((limit, per)) = compressed {
        cfg.dastra.quota.windows = vec![QuotaWindow { limit, per }];
        cfg.dastra.quota.safety_margin = per / 60;
    }
    cfg.priority_lanes = lanes;
    let quota: Vec<String> = cfg.dastra.quota.windows.iter().map(|w| format!("{} per {:?}", w.limit, w.per)).collect();

    // The backfill: every sweep publishes every Asset again (unchanged), as snapshot events.
    let mut version = 0u64;
    let mut backfill = Vec::with_capacity(entities * sweeps);
    for _ in 0..sweeps {
        for i in 0..entities {
            version += 1;
            backfill.push(event(&format!("bench:asset:{}", 2 * i), version, support::content(2 * i, 0, true)));
        }
    }
    let publisher = bus.publisher().await.unwrap();
    let t = Instant::now();
    for slice in backfill.chunks(10_000) {
        publish(publisher.as_ref(), &topics, slice).await;
    }
    println!(
        "lanes {}; quota {} (margin {:?}); backfill: {} snapshot events of {entities} Assets published in {:.1} s; live: {live} Actor creates, one every {every:?} from {after:?} after the sink started",
        if lanes { "on" } else { "off" },
        quota.join(" + "),
        cfg.dastra.quota.safety_margin,
        backfill.len(),
        t.elapsed().as_secs_f64()
    );

    let sink = RunningSink::start("sink", &bus, &topics, cfg);
    let started = Instant::now();
    tokio::time::sleep(after).await;
    // Live changes: Actors the backfill does not hold, so their arrival in the emulator is theirs.
    let name = |i: usize| format!("Live vendor {i}");
    let mut published: HashMap<String, Instant> = HashMap::new();
    let mut landed: HashMap<String, f64> = HashMap::new();
    let mut backlog_left_at_last_live = 0;
    let mut drained: Option<f64> = None;
    let mut next = Instant::now();
    let mut counted = Instant::now();
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(7_200);
    while landed.len() < live || drained.is_none() {
        assert!(Instant::now() < deadline, "not done after 2 h: {} live landed, drained {drained:?}", landed.len());
        if sent < live && Instant::now() >= next {
            let data = Payload::Actor(dastra_connect_core::event::Actor {
                actor_type: Some(ActorType::Morale),
                vendor_type: Some(VendorType::B2B),
                company_name: Some(name(sent)),
                ..Default::default()
            });
            version += 1;
            let e = event(&format!("bench:actor:live{sent}"), version, data);
            published.insert(name(sent), Instant::now());
            publish(publisher.as_ref(), &topics, &[e]).await;
            sent += 1;
            next += every;
        }
        if landed.len() < live {
            for a in emu.state.entities(1, "Actors") {
                let Some(n) = a["companyName"].as_str() else { continue };
                if let Some(at) = published.get(n)
                    && !landed.contains_key(n)
                {
                    landed.insert(n.to_owned(), at.elapsed().as_secs_f64());
                    if landed.len() == live {
                        backlog_left_at_last_live = entities.saturating_sub(created(&emu));
                    }
                }
            }
        }
        if drained.is_none() && counted.elapsed() >= Duration::from_millis(500) {
            counted = Instant::now();
            if created(&emu) >= entities {
                drained = Some(started.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sink.wait_idle(Duration::from_secs(600)).await;
    sink.stop().await;

    let mut waits: Vec<f64> = landed.values().copied().collect();
    waits.sort_by(f64::total_cmp);
    let c = emu.state.counters();
    println!(
        "live: {} changes, publish → answered by Dastra: p50 {:.2} s, p99 {:.2} s, max {:.2} s ({backlog_left_at_last_live} backfill Assets still to create when the last one was answered)",
        waits.len(),
        percentile(&waits, 0.5),
        percentile(&waits, 0.99),
        waits.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "backfill: drained {:.1} s after the sink started; {} requests ({:.3} per event), {} 429s",
        drained.unwrap_or(f64::NAN),
        c.total,
        c.total as f64 / (backfill.len() + live) as f64,
        c.too_many_requests
    );
}
