//! Prints the sink's throughput through decode → coalesce → plan on one core, with no bus:
//! pre-encoded messages are decoded with `ChangeEvent::from_parts`, coalesced per entity key in
//! batches of `max_buffered` (newest sequence wins, as the driver does), and each survivor goes
//! through the real `sink::apply::apply` (DTO mapping, content and field hashes, comparison with
//! the ledger entry, patch operations) and is recorded in a ledger held in memory.
//!
//! Two streams over the same entities (Assets and Actors), both after a seeding pass that created
//! every entity (not timed):
//! - `no-request`: as many unchanged repeats as the churn stream has (snapshot sweeps of the
//!   seeded content): nothing to send, so the figure is pure CPU (no network at all).
//! - `churn`: the rest of the churn stream (repeats, bursts of updates, single updates, deletes);
//!   the events that need a request send it to the emulator in this process (quota off), over
//!   loopback HTTP: "Dastra answering instantly".
//!
//! `cargo bench -p dastra-connect-dastra --bench pipeline` (env `BENCH_ENTITIES`, default 10 000).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dastra_connect_core::codec::Codec;
use dastra_connect_core::config::Secret;
use dastra_connect_core::event::{ChangeEvent, EntityKey, cmp_sequence};
use dastra_connect_core::state::{MemoryStore, StateStore};
use dastra_connect_dastra::sink::apply::fingerprint::source_fingerprint;
use dastra_connect_dastra::sink::apply::{ApplyCtx, Outcome, apply};
use dastra_connect_dastra::sink::config::SinkPolicy;
use dastra_connect_dastra::sink::ledger::{Ledger, content_hashes};
use dastra_connect_dastra::{AuthConfig, DastraClient, DastraClientConfig, QuotaLimiter, QuotaWindow};
use dastra_emulator::EmulatorConfig;
use support::{Message, Mix};

const BATCH: usize = 20_000;
/// Passes of the `no-request` stream (the best is reported, every one printed).
const ROUNDS: usize = 5;

/// CPU time consumed so far by the calling thread (the sink's one core), whatever else runs: the
/// first field of Linux's `/proc/thread-self/schedstat` (nanoseconds on a CPU).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    Duration::from_nanos(text.split_whitespace().next().and_then(|n| n.parse().ok()).expect("schedstat run time"))
}

#[derive(Default)]
struct Times {
    /// CPU time of the sink's thread over the whole run (decode + coalesce + plan + its side of
    /// the HTTP exchanges; the emulator runs on another thread).
    cpu: Duration,
    decode: Duration,
    coalesce: Duration,
    plan: Duration,
    events: usize,
    applied: usize,
    outcomes: HashMap<&'static str, usize>,
}

async fn run(ctx: &ApplyCtx<'_>, ledger: &Ledger, codec: &Codec, msgs: &[Message]) -> Times {
    let mut t = Times::default();
    let cpu_start = thread_cpu();
    for batch in msgs.chunks(BATCH) {
        let start = Instant::now();
        let mut decoded = Vec::with_capacity(batch.len());
        for (headers, value) in batch {
            decoded.push(ChangeEvent::from_parts(headers, value, codec).await.unwrap());
        }
        let after_decode = Instant::now();
        let mut order: Vec<EntityKey> = Vec::new();
        let mut newest: HashMap<EntityKey, ChangeEvent> = HashMap::with_capacity(batch.len());
        for e in decoded {
            match newest.get_mut(&e.key) {
                Some(held) => {
                    if cmp_sequence(&e.sequence, &held.sequence).is_ge() {
                        *held = e;
                    }
                }
                None => {
                    order.push(e.key.clone());
                    newest.insert(e.key.clone(), e);
                }
            }
        }
        let after_coalesce = Instant::now();
        for key in &order {
            let event = &newest[key];
            let outcome = apply(ctx, event).await.unwrap();
            let (label, entry) = match outcome {
                Outcome::Applied { entry, .. } => ("applied", Some(entry)),
                Outcome::Skipped { reason, entry } => (reason.as_str(), entry),
                Outcome::Pending { .. } => ("pending", None),
            };
            *t.outcomes.entry(label).or_default() += 1;
            if let Some(entry) = entry {
                ledger.put(key, &entry).await.unwrap();
            }
        }
        let end = Instant::now();
        t.decode += after_decode - start;
        t.coalesce += after_coalesce - after_decode;
        t.plan += end - after_coalesce;
        t.events += batch.len();
        t.applied += order.len();
    }
    t.cpu = thread_cpu() - cpu_start;
    t
}

fn report(name: &str, t: &Times, requests: u64) {
    let total = t.decode + t.coalesce + t.plan;
    let rate = |d: Duration| t.events as f64 / d.as_secs_f64();
    let mut outcomes: Vec<_> = t.outcomes.iter().collect();
    outcomes.sort();
    println!(
        "{name:<10} {:>7} events → {:>6} after coalescing {outcomes:?}; {requests} Dastra requests",
        t.events, t.applied
    );
    println!(
        "           per core: {:>9.0} events per CPU-second of the sink's thread ({:.2} µs CPU/event)",
        rate(t.cpu),
        t.cpu.as_secs_f64() * 1e6 / t.events as f64
    );
    println!(
        "           wall: decode+coalesce+plan {:>9.0} ev/s ({:.2} µs/event) | decode {:.2} µs, coalesce {:.2} µs, plan {:.2} µs per consumed event; decode+coalesce alone {:.0} ev/s",
        rate(total),
        total.as_secs_f64() * 1e6 / t.events as f64,
        t.decode.as_secs_f64() * 1e6 / t.events as f64,
        t.coalesce.as_secs_f64() * 1e6 / t.events as f64,
        t.plan.as_secs_f64() * 1e6 / t.events as f64,
        rate(t.decode + t.coalesce),
    );
}

fn main() {
    // Dastra (the emulator) answers from its own thread, so that the sink's thread CPU time is the
    // sink's alone; the sink runs on one current-thread runtime, as one core would.
    let emu_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let emu = emu_rt.block_on(dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![]))).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(bench(&emu));
}

async fn bench(emu: &dastra_emulator::RunningEmulator) {
    let entities: usize = std::env::var("BENCH_ENTITIES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let mut config = DastraClientConfig::new(
        emu.base_url.parse().unwrap(),
        1,
        AuthConfig::ApiKey { api_key: Secret::new("emulator-key") },
    );
    // "Quota disabled": one window no run can reach (the client needs at least one).
    config.quota.windows = vec![QuotaWindow { limit: 1_000_000, per: Duration::from_secs(1) }];
    let client = DastraClient::new(&config, QuotaLimiter::new(&config.quota), None).unwrap();
    let seeded = Arc::new(MemoryStore::new("bench"));
    let ledger = Ledger::new(seeded.clone());
    let policy = SinkPolicy::default();
    let ctx = ApplyCtx { client: &client, ledger: &ledger, policy: &policy, objects: None, batcher: None };
    let codec = Codec::single_object();

    let mix = Mix::churn(entities);
    let events = support::stream(entities, mix, 0x5EED);
    let (creates, rest) = events.split_at(entities);
    // The same number of repeats, all of the seeded content (the churn stream's repeats follow its
    // updates, so they are not all unchanged against the seed).
    let unchanged = Mix { repeats: mix.repeats, ..Mix { creates: entities, ..Mix::default() } };
    let repeats = support::stream(entities, unchanged, 0x5EED).split_off(entities);
    let seed_msgs = support::encode(creates, &codec).await;
    let repeat_msgs = support::encode(&repeats, &codec).await;
    let rest_msgs = support::encode(rest, &codec).await;
    println!("{entities} entities (Assets and Actors), single-object Avro, batches of {BATCH}, one core:");

    let before = emu.state.counters().total;
    let t = run(&ctx, &ledger, &codec, &seed_msgs).await;
    report("seed", &t, emu.state.counters().total - before);

    // Pure CPU, so measured as the best of `ROUNDS` passes, each from a copy of the seeded ledger
    // (a pass bumps the versions: a second pass over the same ledger would be all `stale`). On a
    // machine shared with other builds the median hides less of the neighbours' noise than the best.
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let copy = MemoryStore::new("bench");
        copy.put_batch(seeded.snapshot().into_iter().map(|(k, v)| (k, Some(v))).collect()).await.unwrap();
        let fork = Ledger::new(Arc::new(copy));
        let fork_ctx = ApplyCtx { client: &client, ledger: &fork, policy: &policy, objects: None, batcher: None };
        let before = emu.state.counters().total;
        let t = run(&fork_ctx, &fork, &codec, &repeat_msgs).await;
        rounds.push((t, emu.state.counters().total - before));
    }
    let per_core: Vec<f64> = rounds.iter().map(|(t, _)| t.events as f64 / t.cpu.as_secs_f64()).collect();
    let best = (0..rounds.len()).max_by(|a, b| per_core[*a].total_cmp(&per_core[*b])).unwrap();
    let mut sorted = per_core.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "no-request rounds, events per sink-thread CPU-second: {:?} (median {:.0}); best round:",
        per_core.iter().map(|r| r.round() as u64).collect::<Vec<_>>(),
        sorted[sorted.len() / 2]
    );
    report("no-request", &rounds[best].0, rounds[best].1);

    // Same ledger: the repeats are now stale for the churn pass's older versions, as they would be
    // on a redelivery; the churn pass carries its own, newer, changes.
    let ledger = Ledger::new(Arc::new(MemoryStore::new("bench")));
    let ctx = ApplyCtx { client: &client, ledger: &ledger, policy: &policy, objects: None, batcher: None };
    let _ = run(&ctx, &ledger, &codec, &seed_msgs).await;
    let before = emu.state.counters().total;
    let t = run(&ctx, &ledger, &codec, &rest_msgs).await;
    report("churn", &t, emu.state.counters().total - before);
    breakdown(&ctx, &ledger).await;
}

/// Where a plan's time goes, per step the sink takes for an unchanged Asset (the parts reachable
/// from outside the sink: ledger read, content hashing, ledger write).
async fn breakdown(ctx: &ApplyCtx<'_>, ledger: &Ledger) {
    const N: u32 = 50_000;
    let key = support::key(0);
    let entry = ledger.get(&key).unwrap();
    let mut content = support::content(0, 0, false).to_json_value().unwrap();
    if let serde_json::Value::Object(m) = &mut content {
        m.retain(|k, v| !v.is_null() && !matches!(k.as_str(), "snapshot" | "deleted" | "tags" | "customFields"));
    }
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..N {
            f();
        }
        t.elapsed().as_secs_f64() * 1e6 / f64::from(N)
    };
    let get = time(&mut || {
        std::hint::black_box(ledger.get(std::hint::black_box(&key)));
    });
    let hashes = time(&mut || {
        std::hint::black_box(content_hashes(std::hint::black_box(&content)));
    });
    let to_json = time(&mut || {
        std::hint::black_box(support::content(0, 0, false).to_json_value().unwrap());
    });
    let repeat = ChangeEvent::new(
        "bench",
        key.clone(),
        dastra_connect_core::event::sequence_from_u64(u64::MAX / 2),
        chrono::Utc::now(),
        support::content(0, 0, true),
    )
    .unwrap();
    let fingerprint = time(&mut || {
        std::hint::black_box(source_fingerprint(ctx, std::hint::black_box(&repeat)));
    });
    let ser = time(&mut || {
        std::hint::black_box(dastra_connect_dastra::sink::ledger::encode_entry(std::hint::black_box(&entry)));
    });
    println!(
        "plan steps for one unchanged Asset: ledger get (binary entry decoded) {get:.2} µs, source fingerprint (snapshot repeat) {fingerprint:.2} µs, ledger entry encoded {ser:.2} µs; skipped by the fingerprint: payload to JSON {to_json:.2} µs (incl. building it), content_hashes {hashes:.2} µs, DTO round trip"
    );
}
