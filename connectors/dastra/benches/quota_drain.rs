//! Prints quota utilisation of the REAL sink draining a backlog with the windows compressed (the
//! emulator and the client both at `BENCH_LIMIT` requests per `BENCH_PERIOD_MS`, default 50 per
//! 2 s, i.e. Dastra's 500 per 60 s scaled), the 429s seen (expected: none), and from the measured
//! utilisation the time a 100 000-event backlog takes to drain under Dastra's real limits.
//!
//! The backlog is `BENCH_CREATES` (default 400) Asset creates of distinct entities, each exactly
//! one request (POST), so requests/s = events/s. The client's safety margin (added to every
//! window) is scaled with the window: 100 ms on 2 s, where Dastra's real windows keep the 1 s
//! default on 60 s.
//!
//! `cargo bench -p dastra-connect-dastra --bench quota_drain`

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use common::{Broker, RunningSink, SinkBus, ensure, event, publish, sink_config};
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::Payload;
use dastra_connect_core::event::enums::AssetType;
use dastra_connect_dastra::QuotaWindow as ClientWindow;
use dastra_emulator::QuotaWindow;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let limit: u32 = env("BENCH_LIMIT", 50);
    let period = Duration::from_millis(env("BENCH_PERIOD_MS", 2_000));
    let creates: usize = env("BENCH_CREATES", 400);
    let broker = Broker::nats().await;
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu = common::emulator().await;
    emu.state.set_quota(vec![QuotaWindow { limit, period }]);
    let mut cfg = sink_config(&emu);
    cfg.dastra.quota.windows = vec![ClientWindow { limit, per: period }];
    cfg.dastra.quota.safety_margin = Duration::from_millis(100);
    let backlog: Vec<_> = (0..creates)
        .map(|i| {
            let data = Payload::Asset(dastra_connect_core::event::Asset {
                label: Some(format!("Application {i}")),
                asset_type: Some(AssetType::Software),
                ..Default::default()
            });
            event(&format!("bench:asset:q{i}"), 1, data)
        })
        .collect();
    publish(bus.publisher().await.unwrap().as_ref(), &topics, &backlog).await;
    let sink = RunningSink::start("sink", &bus, &topics, cfg);
    sink.wait_idle(Duration::from_secs(3600)).await;
    sink.stop().await;

    let c = emu.state.counters();
    let log = emu.state.request_log();
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    let span = (t(&log.last().unwrap().time) - t(&log.first().unwrap().time)).num_milliseconds() as f64 / 1000.0;
    let allowed = f64::from(limit) / period.as_secs_f64();
    // The n - 1 gaps between the first and the last request: a long backlog drains at the
    // long-run rate; the window's first allowance only matters for the first window.
    let achieved = (c.total as f64 - 1.0) / span;
    let utilisation = achieved / allowed;
    println!(
        "compressed window {limit} per {:.1} s (allowed {allowed:.2}/s): {} requests for {creates} events in {span:.2} s = {achieved:.2}/s, utilisation {:.1} %, 429s: {}",
        period.as_secs_f64(),
        c.total,
        utilisation * 100.0,
        c.too_many_requests
    );
    // Dastra: 500 per 60 s and 10 000 per 600 s; the first binds in a long drain (8.33/s vs 16.7/s).
    let real = 500.0 / 60.0 * utilisation;
    println!(
        "under Dastra's real limits at this utilisation: {real:.2} requests/s; a 100 000-event backlog needing R requests drains in R / {real:.2} s (1.0 request/event: {:.1} h)",
        100_000.0 / real / 3600.0
    );
}
