//! Prints Dastra requests per event of the REAL sink (driver, ledger on the bus, apply, client) on a
//! churny stream, counted by the emulator (quota off on both sides), beside a naive sink that does
//! GET-then-POST/PUT (or GET-then-DELETE) for every event: 2.0 requests per event.
//!
//! The stream (see `support::Mix::churn`): 10 000 entities (half Assets, half Actors) and 100 000
//! events: 10 000 creates, 78 000 unchanged repeats (snapshot sweeps), 2 000 bursts of 5 updates to
//! one key, 1 000 single updates, 1 000 deletes.
//!
//! The figure it is judged by is the **lower bound** (`support::oracle_bound`): the requests an
//! oracle that saw the whole stream at once would send — for every entity whose final state
//! differs from what Dastra held before the stream, the cheapest requests (a create per entity
//! Dastra lacks, one PATCH per group of identical patches, one batch-delete per collection) —
//! computed from the stream itself; the sink's requests are printed as a ratio to it. For the
//! churn stream from an empty workspace it is one create per entity alive at the end (9 000 of
//! 100 000 events). Also printed for context: 0.14 per event for a sink seeing every event on its
//! own (one request per create, per burst, per single update, per delete).
//!
//! Modes (`BENCH_MODE`): `backlog` publishes the whole stream, then starts the sink (catching up
//! after downtime); `live` starts the sink first and publishes in slices of 1 000 events at
//! `BENCH_LIVE_RATE` events/s (default 20 000: faster than the sink drains, so it still coalesces;
//! 2 000 shows a sink that keeps up). `BENCH_ENTITIES` scales the stream (default 10 000);
//! `BENCH_BUS=kafka` uses librdkafka's MockCluster instead of nats-server; `BENCH_QUOTA=50/2000`
//! enforces a compressed quota (requests/milliseconds) on the emulator and the client;
//! `BENCH_MAX_BUFFERED` sets the sink's `max_buffered` (default 20 000 keys) and
//! `BENCH_READ_AHEAD_MS` its `read_ahead` (default 100; 0 as before it existed);
//! `BENCH_MAX_ACK_PENDING` the NATS consumers' `max_ack_pending` (default 20 000 per partition: a
//! backlog read ahead waits unacknowledged, so this bounds it too). The run also prints
//! the process's peak resident set (stream, emulator and sink together).
//!
//! `BENCH_SWEEPS=n` (backlog mode) then measures a **sweep backlog**: with the churn stream drained
//! and the sink stopped, `n` snapshot sweeps of every live entity (unchanged content, new versions:
//! no request, one ledger version bump each) are published, and a new sink drains them; printed as
//! sweep events/s end to end (`DASTRA_LEDGER_BATCH=0` for the sink without the ledger write batch).
//! `BENCH_ENTITIES=50000 BENCH_SWEEPS=2` is a nightly sweep's shape (little coalescing). On the
//! MockCluster keep the default size: it drops a partition's oldest records beyond 5 MiB.
//! `TEST_LOG=1 RUST_LOG=info` prints the sinks' logs.
//!
//! `cargo bench -p dastra-connect-dastra --bench churn`

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::{Broker, RunningSink, SinkBus, ensure, publish, sink_config};
use dastra_connect_core::connector::Topics;
use dastra_connect_dastra::QuotaWindow;
use support::Mix;

/// The allocator of the `dastra-connect` binary (`cli/src/main.rs`): the figures are the process's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `TEST_LOG=1 RUST_LOG=info` shows the sinks' logs (as in the sink tests).
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    }
    let entities: usize = std::env::var("BENCH_ENTITIES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let modes = std::env::var("BENCH_MODE").unwrap_or_else(|_| "backlog,live".into());
    for mode in modes.split(',') {
        run(entities, mode.trim()).await;
    }
}

async fn run(entities: usize, mode: &str) {
    let broker = match std::env::var("BENCH_BUS").as_deref() {
        Ok("kafka") => Broker::kafka(),
        _ => Broker::nats().await,
    };
    let topics = Topics::default();
    let mut bus = broker.bus(&topics, "sink").await;
    if let (dastra_connect_core::bus::BusConfig::Nats(n), Some(max)) =
        (&mut bus, std::env::var("BENCH_MAX_ACK_PENDING").ok().and_then(|v| v.parse().ok()))
    {
        n.max_ack_pending = max;
        println!("[{mode}] NATS max_ack_pending {max} per partition");
    }
    ensure(&bus, &topics).await;
    let emu = common::emulator().await;
    let mut cfg = sink_config(&emu);
    // "Quota disabled": one window no run can reach (the client needs at least one).
    cfg.dastra.quota.windows = vec![QuotaWindow { limit: 1_000_000, per: Duration::from_secs(1) }];
    if let Some(n) = std::env::var("BENCH_MAX_BUFFERED").ok().and_then(|v| v.parse().ok()) {
        cfg.max_buffered = n;
        println!("[{mode}] max_buffered {n}");
    }
    if let Some(ms) = std::env::var("BENCH_READ_AHEAD_MS").ok().and_then(|v| v.parse().ok()) {
        cfg.read_ahead = Duration::from_millis(ms);
        println!("[{mode}] read_ahead {ms} ms");
    }
    let quota: Option<(u32, u64)> = std::env::var("BENCH_QUOTA")
        .ok()
        .and_then(|q| q.split_once('/').and_then(|(l, p)| Some((l.parse().ok()?, p.parse().ok()?))));
    if let Some((limit, period_ms)) = quota {
        // Compressed windows on both sides (e.g. `50/2000`: Dastra's 500 per 60 s scaled), with
        // the safety margin scaled too (100 ms on 2 s; Dastra's real windows keep 1 s on 60 s).
        let per = Duration::from_millis(period_ms);
        emu.state.set_quota(vec![dastra_emulator::QuotaWindow { limit, period: per }]);
        cfg.dastra.quota.windows = vec![QuotaWindow { limit, per }];
        cfg.dastra.quota.safety_margin = Duration::from_millis(100);
        println!("[{mode}] quota {limit} per {per:?} on the emulator and the client");
    }
    let mix = Mix::churn(entities);
    let events = support::stream(entities, mix, 0x5EED);
    // The workspace starts empty: nothing is held before the stream.
    let oracle = support::oracle_bound(&Default::default(), &events);
    let publisher = bus.publisher().await.unwrap();

    let started;
    let sink;
    if mode == "live" {
        sink = RunningSink::start("sink", &bus, &topics, cfg);
        started = Instant::now();
        let rate: u64 = std::env::var("BENCH_LIVE_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
        println!("[live] offering {rate} events/s in slices of 1 000");
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000_000 / rate.max(1)));
        for slice in events.chunks(1_000) {
            tick.tick().await;
            publish(publisher.as_ref(), &topics, slice).await;
        }
    } else {
        let t = Instant::now();
        for slice in events.chunks(10_000) {
            publish(publisher.as_ref(), &topics, slice).await;
        }
        println!("published {} events in {:.1} s", events.len(), t.elapsed().as_secs_f64());
        sink = RunningSink::start("sink", &bus, &topics, cfg);
        started = Instant::now();
    }
    sink.wait_idle(Duration::from_secs(3600)).await;
    // wait_idle returns after 1.5 s without work.
    let took = started.elapsed().as_secs_f64() - 1.5;
    sink.stop().await;
    let rounds: usize = std::env::var("BENCH_SWEEPS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if mode == "backlog" && rounds > 0 {
        let before = emu.state.counters().total;
        let sweep = support::sweeps(&events, rounds);
        let t = Instant::now();
        for slice in sweep.chunks(10_000) {
            publish(publisher.as_ref(), &topics, slice).await;
        }
        println!("[sweep] published {} sweep events in {:.1} s", sweep.len(), t.elapsed().as_secs_f64());
        let (own0, children0) = (cpu_seconds("self"), children_cpu_seconds());
        let sink = RunningSink::start("sink", &bus, &topics, sink_config(&emu));
        let started = Instant::now();
        // From the sink's start (its ledger load included), and from its first partitions (read
        // from `/status`, refreshed every commit interval): on the MockCluster the second is what
        // the sink does, the first adds the mock coordinator's wait (a new member of a group whose
        // previous member left is assigned only after that member's session timeout, 45 s; a real
        // broker rebalances at once: `core/tests/bus_conformance.rs`, `closed_member_leaves_its_group`).
        sink.wait_assigned(Duration::from_secs(600)).await;
        let assigned = started.elapsed().as_secs_f64();
        sink.wait_idle(Duration::from_secs(3600)).await;
        let took = started.elapsed().as_secs_f64() - 1.5;
        let (own, children) = (cpu_seconds("self") - own0, children_cpu_seconds() - children0);
        sink.stop().await;
        let per = |s: f64| s * 1e6 / sweep.len() as f64;
        println!(
            "[sweep] CPU while draining (1.5 s idle tail included): this process (sink, emulator, MockCluster) {own:.2} s = {:.1} µs/event; child processes (nats-server) {children:.2} s = {:.1} µs/event",
            per(own),
            per(children)
        );
        println!(
            "[sweep] {} unchanged sweep events ({rounds} sweeps of {} entities; ledger_batch {}) drained in {took:.2} s = {:.0} events/s end to end; {} requests",
            sweep.len(),
            sweep.len() / rounds,
            sink_config(&emu).ledger_batch,
            sweep.len() as f64 / took,
            emu.state.counters().total - before
        );
        println!(
            "[sweep] from the first partitions assigned ({assigned:.2} s after the start): drained in {:.2} s = {:.0} events/s",
            took - assigned,
            sweep.len() as f64 / (took - assigned)
        );
    }

    let c = emu.state.counters();
    let n = events.len() as f64;
    let mut by_method: std::collections::BTreeMap<String, u64> = Default::default();
    for r in &c.by_route {
        *by_method.entry(format!("{} {}", r.method, r.status)).or_default() += r.count;
    }
    let assets = emu.state.entities(1, "Assets").len();
    let actors = emu.state.entities(1, "Actors").len();
    println!(
        "[{mode}] {} entities, {} events ({} creates, {} repeats, {} burst updates in bursts of {}, {} single updates, {} deletes)",
        entities,
        events.len(),
        mix.creates,
        mix.repeats,
        mix.burst_updates,
        mix.burst_len,
        mix.single_updates,
        mix.deletes
    );
    println!(
        "[{mode}] lower bound (oracle seeing the whole stream): {} requests ({} creates, {} patch groups, {} batch-deletes) = {:.3} per event",
        oracle.requests(),
        oracle.creates,
        oracle.patches,
        oracle.deletes,
        oracle.requests() as f64 / n
    );
    println!(
        "[{mode}] sink: {} requests = {:.3} per event = {:.3}x the lower bound (event by event: {:.3} per event; naive GET-then-write 2.000); 429s {}; by method/status {by_method:?}",
        c.total,
        c.total as f64 / n,
        c.total as f64 / oracle.requests().max(1) as f64,
        mix.event_by_event() as f64 / n,
        c.too_many_requests
    );
    println!(
        "[{mode}] drained in {took:.1} s ({:.0} events/s end to end); emulator now holds {assets} assets, {actors} actors (expected {} live); peak RSS of this process so far {} MiB",
        n / took,
        entities - mix.deletes,
        peak_rss_kib() / 1024
    );
}

/// This process's peak resident set (`VmHWM`), in KiB; 0 where `/proc` is missing.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) of process `pid` ("self" for this one), from `/proc`; 0 elsewhere.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// CPU seconds of this process's child processes (the nats-server the harness spawned).
fn children_cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    let mut total = 0.0;
    for t in tasks.flatten() {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            total += cpu_seconds(pid);
        }
    }
    total
}
