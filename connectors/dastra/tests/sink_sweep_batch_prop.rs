//! Batched ledger writes (`ledger_batch`) as a property: snapshot sweeps of unchanged records
//! interleaved with real changes of the same keys, graceful restarts and kills in the middle of a
//! batch (the sink task aborted: no drain, no flush, no commit). Real driver, real nats-server and
//! MockCluster, the emulator as Dastra.
//!
//! After every kill, before the next sink starts:
//! - the ledger as the bus holds it (a fresh reader of the ledger's topic / bucket) is compared with
//!   the offsets the group committed (what a reader of the same group is not given again): every
//!   event whose offset was committed has its version (or a newer one) in the durable ledger — no
//!   offset is committed past a ledger write that is not durable.
//!
//! At the end: every asset in Dastra holds the content of its newest version (exactly one record
//! per key), and the durable ledger records the newest version of every key.
//!
//! Case count and seed: `DASTRA_PROPTEST_CASES` (default 4 per bus) and `DASTRA_PROPTEST_SEED`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use dastra_connect_core::bus::{BusConfig, SubscriberEvent};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::AssetType;
use dastra_connect_core::event::{Asset, ChangeEvent, EntityKind, Payload, cmp_sequence};
use dastra_emulator::RunningEmulator;
use proptest::prelude::*;

const KEYS: usize = 6;

fn key(k: usize) -> String {
    format!("t:asset:s{k}")
}

/// The content of an asset at content revision `c` (a sweep re-sends the current one).
fn payload(k: usize, c: u64, snapshot: bool) -> Payload {
    Payload::Asset(Asset {
        label: Some(format!("S{k}")),
        asset_type: Some(AssetType::Software),
        description: Some(format!("content {c}")),
        city: c.is_multiple_of(2).then(|| format!("City {c}")),
        snapshot,
        ..Default::default()
    })
}

#[derive(Debug, Clone)]
enum Step {
    /// Every key again with its current content (a snapshot sweep), in this order.
    Sweep(Vec<usize>),
    /// New content for these keys.
    Change(Vec<usize>),
    /// Let the sink work for this many ms.
    Pause(u64),
    /// Stop gracefully (drain, flush, commit) and start again.
    Restart,
    /// After this many ms, abort the sink task (nothing drains, flushes or commits), check the
    /// commits against the durable ledger, start again.
    Kill(u64),
}

#[derive(Debug, Clone)]
struct Scenario {
    steps: Vec<Step>,
    /// `ledger_batch` and `ledger_batch_delay` (ms).
    batch: usize,
    delay_ms: u64,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just((0..KEYS).collect::<Vec<_>>()).prop_shuffle().prop_map(Step::Sweep),
        3 => proptest::collection::btree_set(0..KEYS, 1..=3).prop_map(|s| Step::Change(s.into_iter().collect())),
        1 => prop_oneof![Just(0u64), Just(50), Just(400)].prop_map(Step::Pause),
        1 => Just(Step::Restart),
        3 => (0u64..700).prop_map(Step::Kill),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        proptest::collection::vec(step(), 4..14),
        // Mostly batches that wait for the delay, so that kills land between a commit tick (200 ms)
        // and the flush.
        prop_oneof![1 => Just(1usize), 1 => Just(3), 3 => Just(1000)],
        prop_oneof![1 => Just(5u64), 2 => Just(100), 3 => Just(600)],
    )
        .prop_map(|(mut steps, batch, delay_ms)| {
            // Everything exists before the sweeps and changes.
            steps.insert(0, Step::Change((0..KEYS).collect()));
            Scenario { steps, batch, delay_ms }
        })
}

/// The model: per key the content revision and the sequence of its newest event.
#[derive(Default)]
struct Model {
    content: BTreeMap<usize, u64>,
    next_seq: u64,
    /// Every event published: (key, sequence).
    published: Vec<(String, String)>,
}

impl Model {
    fn events(&mut self, step: &Step) -> Vec<ChangeEvent> {
        let (keys, change) = match step {
            Step::Sweep(keys) => (keys, false),
            Step::Change(keys) => (keys, true),
            _ => return Vec::new(),
        };
        keys.iter()
            .map(|&k| {
                let c = self.content.entry(k).or_default();
                if change {
                    *c += 1;
                }
                self.next_seq += 1;
                let ev = event(&key(k), self.next_seq, payload(k, *c, !change));
                self.published.push((key(k), ev.sequence.clone()));
                ev
            })
            .collect()
    }

    fn newest(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, s) in &self.published {
            out.insert(k.clone(), s.clone());
        }
        out
    }
}

fn sink_cfg(emu: &RunningEmulator, s: &Scenario) -> dastra_connect_dastra::sink::DastraSinkConfig {
    let mut cfg = sink_config(emu);
    cfg.ledger_batch = s.batch;
    cfg.ledger_batch_delay = Duration::from_millis(s.delay_ms);
    cfg.shutdown_grace = Duration::from_secs(5);
    cfg.max_backoff = Duration::from_secs(1);
    cfg
}

async fn start(bus: &BusConfig, topics: &Topics, emu: &RunningEmulator, s: &Scenario) -> RunningSink {
    let sink = RunningSink::start("sink", bus, topics, sink_cfg(emu, s));
    sink.wait_assigned(Duration::from_secs(60)).await;
    sink
}

/// The events a member of the sink's group is given again: everything not committed. Read until
/// nothing more comes for a while; nothing is committed.
async fn uncommitted(bus: &BusConfig, topics: &Topics) -> BTreeSet<(String, String)> {
    let topic = topics.changes(EntityKind::Asset);
    let mut sub = bus.subscriber("sink", std::slice::from_ref(&topic)).await.unwrap();
    let codec = Codec::single_object();
    let mut out = BTreeSet::new();
    let mut assigned = false;
    loop {
        // Long enough for a group join on Kafka; then a quiet second ends the read.
        let wait = if assigned { Duration::from_millis(1500) } else { Duration::from_secs(60) };
        match tokio::time::timeout(wait, sub.next_event()).await {
            Ok(Ok(SubscriberEvent::Message(m))) => {
                assigned = true;
                let value = m.payload.as_ref().expect("a change event");
                let ev = ChangeEvent::from_parts(&m.headers, value, &codec).await.unwrap();
                out.insert((ev.key.as_str().to_owned(), ev.sequence.clone()));
            }
            Ok(Ok(SubscriberEvent::Assigned(_))) => assigned = true,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("observer: {e}"),
            Err(_) if assigned => break,
            Err(_) => panic!("the observer was never assigned the partitions"),
        }
    }
    sub.close().await.unwrap();
    out
}

/// No committed event is newer than what the durable ledger holds for its key.
async fn check_commits(bus: &BusConfig, topics: &Topics, model: &Model) -> Result<(), String> {
    let ledger = durable_ledger(bus, topics).await;
    let again = uncommitted(bus, topics).await;
    eprintln!("  kill: {} of {} events published so far not committed", again.len(), model.published.len());
    let mut errors = Vec::new();
    for (k, seq) in &model.published {
        if again.contains(&(k.clone(), seq.clone())) {
            continue;
        }
        let held = ledger.get(k).cloned().flatten();
        if !held.as_deref().is_some_and(|v| cmp_sequence(v, seq).is_ge()) {
            errors.push(format!("{k}: event {seq} committed, durable ledger holds {held:?}"));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

/// Dastra holds the newest content of every key, once; the ledger the newest version.
async fn check_final(bus: &BusConfig, topics: &Topics, emu: &RunningEmulator, model: &Model) -> Result<(), String> {
    let mut errors = Vec::new();
    let assets = emu.state.entities(1, "Assets");
    for (&k, &c) in &model.content {
        let found: Vec<_> = assets.iter().filter(|a| a["label"].as_str() == Some(&format!("S{k}"))).collect();
        let [a] = found.as_slice() else {
            errors.push(format!("{}: {} records, expected 1", key(k), found.len()));
            continue;
        };
        let got = (a["description"].as_str().map(str::to_owned), a["city"].as_str().map(str::to_owned));
        let want = (Some(format!("content {c}")), c.is_multiple_of(2).then(|| format!("City {c}")));
        if got != want {
            errors.push(format!("{}: (description, city) = {got:?}, expected content {c} {want:?}", key(k)));
        }
    }
    let ledger = durable_ledger(bus, topics).await;
    for (k, seq) in model.newest() {
        if ledger.get(&k).cloned().flatten().as_deref() != Some(seq.as_str()) {
            errors.push(format!("{k}: ledger holds {:?}, newest event {seq}", ledger.get(&k)));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

async fn run(bus_kind: Bus, s: &Scenario) -> Result<(), String> {
    let topics = Topics::default();
    let (_broker, bus) = broker_bus(bus_kind, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();
    let mut model = Model::default();
    let mut sink = start(&bus, &topics, &emu, s).await;
    for step in &s.steps {
        match step {
            Step::Sweep(_) | Step::Change(_) => {
                let events = model.events(step);
                publish(publisher.as_ref(), &topics, &events).await;
            }
            Step::Pause(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Step::Restart => {
                sink.stop().await;
                sink = start(&bus, &topics, &emu, s).await;
            }
            Step::Kill(ms) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                sink.task.abort();
                let _ = sink.task.await;
                check_commits(&bus, &topics, &model).await?;
                sink = start(&bus, &topics, &emu, s).await;
            }
        }
    }
    sink.wait_idle(Duration::from_secs(120)).await;
    sink.stop().await;
    check_final(&bus, &topics, &emu, &model).await
}

fn property(bus: Bus) {
    common::property(
        &format!("{bus:?}"),
        4,
        0x5eed_0016,
        scenario(),
        |s| format!("{} steps, batch {} / {} ms", s.steps.len(), s.batch, s.delay_ms),
        async |s| run(bus, s).await,
    );
}

#[test]
fn sweeps_and_changes_with_batched_ledger_writes_survive_kills_on_nats() {
    property(Bus::Nats);
}

#[test]
fn sweeps_and_changes_with_batched_ledger_writes_survive_kills_on_kafka() {
    property(Bus::Kafka);
}

/// Unchanged sweeps staged behind a long batch delay when the sink is killed: the commit ticks
/// (every 200 ms) have passed, the batch is not written yet. Their offsets must not be committed.
fn killed_before_the_batch_is_written() -> Scenario {
    let all: Vec<usize> = (0..KEYS).collect();
    Scenario {
        steps: vec![
            Step::Change(all.clone()),
            Step::Pause(1500),
            Step::Sweep(all.clone()),
            Step::Pause(350),
            Step::Kill(0),
            Step::Sweep(all.clone()),
            Step::Change(vec![1, 4]),
            Step::Sweep(all),
            Step::Kill(300),
        ],
        batch: 1000,
        delay_ms: 1000,
    }
}

fn regression(bus: Bus, s: Scenario) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if let Err(e) = rt.block_on(run(bus, &s)) {
        panic!("{e}\nscenario: {s:#?}");
    }
}

#[test]
fn killed_before_the_batch_is_written_on_nats() {
    regression(Bus::Nats, killed_before_the_batch_is_written());
}

#[test]
fn killed_before_the_batch_is_written_on_kafka() {
    regression(Bus::Kafka, killed_before_the_batch_is_written());
}
