//! The sink's ordering contract as a property: for random interleavings of versions, duplicates,
//! late redeliveries, references that appear late, deletes and re-creates (archive policy: restore),
//! graceful restarts and kills (the sink task aborted mid-flight: no drain, no commit), against the
//! emulator with faults on (5xx, timeouts after the write, dropped connections), the final Dastra
//! state is the newest version of every key — absent fields cleared — with no duplicate entity.
//! Real driver, real nats-server and MockCluster. The failing combinations found by the independent
//! check are kept as named regressions on both buses.
//!
//! Case count and seed: `DASTRA_PROPTEST_CASES` (default 5 per bus) and `DASTRA_PROPTEST_SEED`
//! (default fixed, so CI is reproducible); a failing case prints its whole scenario.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::{ApplicationState, AssetType, ProcessingState, ProcessingType};
use dastra_connect_core::event::{Asset, ChangeEvent, Contract, DataProcessing, EntityKey, Payload, Relationship};
use dastra_emulator::{FaultKind, FaultRule, RunningEmulator};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

const ASSETS: [&str; 2] = ["t:asset:a0", "t:asset:a1"];
const PROCESSING: &str = "t:processing:p0";
const CONTRACT: &str = "t:contract:c0";
const LINK: &str = "t:relationship:r0";

/// One version of one key: upsert (with content derived from the version) or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    key: usize,
    n: u64,
    delete: bool,
}

const KEYS: [&str; 5] = [ASSETS[0], ASSETS[1], PROCESSING, CONTRACT, LINK];

fn is_asset(key: usize) -> bool {
    key < 2
}

fn k(text: &str) -> EntityKey {
    EntityKey::parse(text).unwrap()
}

/// Content of version `n` of an asset: optional fields come and go with the version, so that
/// "absent now" (a clear, enums included) is exercised.
fn asset_payload(key: usize, n: u64) -> Payload {
    Payload::Asset(Asset {
        label: Some(format!("A{key}")),
        asset_type: Some(AssetType::Software),
        description: (!n.is_multiple_of(3)).then(|| format!("v{n}")),
        city: (!n.is_multiple_of(2)).then(|| format!("City {n}")),
        application_state: (n.is_multiple_of(2)).then_some(ApplicationState::InProduction),
        ..Default::default()
    })
}

/// The assets version `n` of a dependent refers to.
fn assets_of(n: u64) -> Vec<usize> {
    if n.is_multiple_of(2) { vec![0, 1] } else { vec![0] }
}

fn payload(v: &Version) -> Payload {
    let n = v.n;
    match v.key {
        0 | 1 => asset_payload(v.key, n),
        2 => Payload::DataProcessing(DataProcessing {
            deleted: v.delete,
            label: (!v.delete).then(|| "P0".to_owned()),
            description: (!v.delete && !n.is_multiple_of(3)).then(|| format!("v{n}")),
            processing_type: (!v.delete).then_some(ProcessingType::Default),
            processing_state: (!v.delete && n.is_multiple_of(2)).then_some(ProcessingState::InProduction),
            assets: if v.delete { vec![] } else { assets_of(n).into_iter().map(|a| k(ASSETS[a])).collect() },
            ..Default::default()
        }),
        3 => Payload::Contract(Contract {
            deleted: v.delete,
            label: (!v.delete).then(|| "C0".to_owned()),
            description: (!v.delete && !n.is_multiple_of(2)).then(|| format!("v{n}")),
            assets: if v.delete { vec![] } else { assets_of(n).into_iter().map(|a| k(ASSETS[a])).collect() },
            ..Default::default()
        }),
        _ => Payload::Relationship(Relationship {
            deleted: v.delete,
            origin: (!v.delete).then(|| k(ASSETS[0])),
            // The link moves between targets with the version.
            target: (!v.delete).then(|| k(ASSETS[(n % 2) as usize])),
            label: (!v.delete).then(|| format!("link v{n}")),
            ..Default::default()
        }),
    }
}

/// Odd versions come from a snapshot sweep (quota class backfill), even ones are live changes and
/// deletes are urgent: the driver starts keys of the three classes in different lanes.
fn to_event(v: &Version) -> ChangeEvent {
    let mut data = payload(v);
    data.set_snapshot(v.n % 2 == 1);
    event(KEYS[v.key], v.n, data)
}

/// What happens between two publications.
#[derive(Debug, Clone)]
enum Step {
    /// Publish these versions, in this order.
    Publish(Vec<Version>),
    /// Let the sink work for a while (no coalescing across a long pause).
    Pause(u64),
    /// SIGTERM-like stop and start.
    Restart,
    /// The sink task aborted at once (in-flight requests may still land in Dastra) and started again.
    Kill,
}

#[derive(Debug, Clone)]
struct Scenario {
    steps: Vec<Step>,
    faults: bool,
}

fn scenario_strategy() -> impl Strategy<Value = Scenario> {
    // Versions per key: assets 1..=3 (always upserts), dependents 1..=5 (a quarter deletes).
    let per_key = (1u64..=3, 1u64..=3, 1u64..=5, 1u64..=5, 1u64..=5);
    let deletes = proptest::collection::vec(proptest::bool::weighted(0.25), 15);
    (per_key, deletes, any::<bool>(), any::<bool>())
        .prop_flat_map(|((a0, a1, p, c, l), deletes, assets_last, faults)| {
            let mut versions = Vec::new();
            for (key, count) in [a0, a1, p, c, l].into_iter().enumerate() {
                for n in 1..=count {
                    let delete = !is_asset(key) && deletes[(key - 2) * 5 + (n as usize - 1)];
                    versions.push(Version { key, n, delete });
                }
            }
            let len = versions.len();
            (
                Just(versions).prop_shuffle(),
                Just(assets_last),
                Just(faults),
                // Late duplicates: (which version, after how many publications).
                proptest::collection::vec((0..len, 0..=len), 0..4),
                // Cut points and what happens there: 0 pause 0, 1 pause 300 ms, 2 pause 1.5 s,
                // 3 restart, 4 kill.
                proptest::collection::vec((1..=len, 0u8..5), 1..5),
            )
        })
        .prop_map(|(mut order, assets_last, faults, dups, cuts)| {
            if assets_last {
                // References appear only after everything that waits for them.
                order.sort_by_key(|v| is_asset(v.key));
            }
            for (i, at) in dups {
                let v = order[i % order.len()];
                order.insert(at.min(order.len()), v);
            }
            let mut cuts: Vec<(usize, u8)> = cuts;
            cuts.sort();
            cuts.dedup_by_key(|c| c.0);
            let mut steps = Vec::new();
            let mut from = 0;
            for (at, what) in cuts {
                let at = at.min(order.len());
                if at > from {
                    steps.push(Step::Publish(order[from..at].to_vec()));
                    from = at;
                }
                steps.push(match what {
                    0 => Step::Pause(0),
                    1 => Step::Pause(300),
                    2 => Step::Pause(1500),
                    3 => Step::Restart,
                    _ => Step::Kill,
                });
            }
            if from < order.len() {
                steps.push(Step::Publish(order[from..].to_vec()));
            }
            Scenario { steps, faults }
        })
}

/// The newest version of each key among everything published.
fn newest(scenario: &Scenario) -> BTreeMap<usize, Version> {
    let mut out: BTreeMap<usize, Version> = BTreeMap::new();
    for step in &scenario.steps {
        if let Step::Publish(vs) = step {
            for v in vs {
                let e = out.entry(v.key).or_insert(*v);
                if v.n > e.n {
                    *e = *v;
                }
            }
        }
    }
    out
}

#[derive(Clone, Copy, Debug)]
enum Bus {
    Nats,
    Kafka,
}

async fn start_broker(bus: Bus) -> Broker {
    match bus {
        Bus::Nats => Broker::nats().await,
        Bus::Kafka => Broker::kafka(),
    }
}

/// The bus config, with short Kafka sessions so that a killed member's partitions move on quickly.
async fn bus_config(broker: &Broker, topics: &Topics) -> BusConfig {
    let mut bus = broker.bus(topics, "sink").await;
    short_sessions(&mut bus);
    bus
}

fn sink_cfg(emu: &RunningEmulator) -> dastra_connect_dastra::sink::DastraSinkConfig {
    let mut cfg = sink_config(emu);
    cfg.dastra.request_timeout = Duration::from_millis(800);
    cfg.max_backoff = Duration::from_secs(1);
    cfg.shutdown_grace = Duration::from_secs(5);
    for kind in ["processing", "contract"] {
        cfg.policy.deletes.insert(kind.into(), dastra_connect_dastra::sink::config::DeletePolicy::Archive);
    }
    cfg
}

/// A sink that owns its partitions, so that the scenario's pauses are pauses of its work.
async fn start_sink(bus: &BusConfig, topics: &Topics, emu: &RunningEmulator) -> RunningSink {
    let sink = RunningSink::start("sink", bus, topics, sink_cfg(emu));
    sink.wait_assigned(Duration::from_secs(60)).await;
    sink
}

async fn run_scenario(bus_kind: Bus, scenario: &Scenario) -> Result<(), String> {
    let topics = Topics::default();
    let broker = start_broker(bus_kind).await;
    let bus = bus_config(&broker, &topics).await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    if scenario.faults {
        emu.state.add_fault(FaultRule::always(FaultKind::Error { status: 503 }).rate(0.1)).unwrap();
        emu.state
            .add_fault(FaultRule::always(FaultKind::TimeoutAfterWrite { hang_ms: 1000 }).method("POST").rate(0.1))
            .unwrap();
        emu.state.add_fault(FaultRule::always(FaultKind::DropConnection).rate(0.03)).unwrap();
    }
    let publisher = bus.publisher().await.unwrap();
    let mut sink = start_sink(&bus, &topics, &emu).await;
    for step in &scenario.steps {
        match step {
            Step::Publish(vs) => {
                let events: Vec<ChangeEvent> = vs.iter().map(to_event).collect();
                publish(publisher.as_ref(), &topics, &events).await;
            }
            Step::Pause(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Step::Restart => {
                sink.stop().await;
                sink = start_sink(&bus, &topics, &emu).await;
            }
            Step::Kill => {
                // Give it a moment to be mid-work, then abort: nothing drains, nothing commits.
                tokio::time::sleep(Duration::from_millis(150)).await;
                sink.task.abort();
                let _ = sink.task.await;
                sink = start_sink(&bus, &topics, &emu).await;
            }
        }
    }
    // Faults off for the end: what is left converges, and the check reads a settled state.
    emu.state.clear_faults();
    let want = newest(scenario);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        sink.wait_idle(Duration::from_secs(120)).await;
        match check(&emu, &want) {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() > deadline => {
                sink.stop().await;
                return Err(e);
            }
            // Pending events are released on the commit tick: settle again.
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    sink.stop().await;
    Ok(())
}

/// Ids of an entity's asset list (numbers, or objects with an `id`).
fn asset_ids(list: &Value) -> BTreeSet<i64> {
    list.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_i64().or_else(|| x["id"].as_i64())).collect())
        .unwrap_or_default()
}

fn text(v: &Value, field: &str) -> Option<String> {
    v.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// The emulator's workspace against the newest version of every key.
fn check(emu: &RunningEmulator, want: &BTreeMap<usize, Version>) -> Result<(), String> {
    let mut errors = Vec::new();
    let by_ref = |family: &str, r: &str| -> Vec<Value> {
        emu.state.entities(1, family).into_iter().filter(|e| e["ref"].as_str() == Some(r)).collect()
    };
    let mut asset_id = BTreeMap::new();
    for (key, name) in ASSETS.iter().enumerate() {
        let found = by_ref("Assets", name);
        let Some(v) = want.get(&key) else { continue };
        if found.len() != 1 {
            errors.push(format!("{name}: {} assets, expected 1", found.len()));
            continue;
        }
        let a = &found[0];
        asset_id.insert(key, a["id"].as_i64().unwrap_or_default());
        let Payload::Asset(p) = asset_payload(key, v.n) else { unreachable!() };
        let state = a.get("applicationState").filter(|s| !s.is_null()).and_then(Value::as_str).map(str::to_owned);
        let got = (text(a, "description"), text(a, "city"), state);
        let expected = (p.description, p.city, p.application_state.map(|s| s.to_string()));
        if got != expected {
            errors.push(format!(
                "{name}: (description, city, applicationState) = {got:?}, expected v{} {expected:?}",
                v.n
            ));
        }
    }
    let ids_of = |n: u64| -> BTreeSet<i64> { assets_of(n).iter().filter_map(|a| asset_id.get(a).copied()).collect() };
    for (key, family, name) in [(2, "DataProcessings", PROCESSING), (3, "Contracts", CONTRACT)] {
        let Some(v) = want.get(&key) else { continue };
        let found = by_ref(family, name);
        let live: Vec<&Value> = found.iter().filter(|e| e["archived"] != Value::Bool(true)).collect();
        if found.len() > 1 {
            errors.push(format!("{name}: {} records (duplicate)", found.len()));
        }
        if v.delete {
            if !live.is_empty() {
                errors.push(format!("{name}: deleted at v{} but live in Dastra: {:?}", v.n, live));
            }
            continue;
        }
        let [e] = live.as_slice() else {
            errors.push(format!("{name}: expected v{} live, found {found:?}", v.n));
            continue;
        };
        let p = payload(v);
        let (desc, state) = match &p {
            Payload::DataProcessing(d) => (d.description.clone(), d.processing_state.map(|s| s.to_string())),
            Payload::Contract(c) => (c.description.clone(), None),
            _ => unreachable!(),
        };
        let got_state = e.get("processingState").filter(|s| !s.is_null()).and_then(Value::as_str).map(str::to_owned);
        let got = (text(e, "description"), if key == 2 { got_state } else { None }, asset_ids(&e["assets"]));
        let expected = (desc, state, ids_of(v.n));
        if got != expected {
            errors.push(format!(
                "{name}: (description, processingState, assets) = {got:?}, expected v{} {expected:?}",
                v.n
            ));
        }
    }
    if let Some(v) = want.get(&4) {
        let links = emu.state.entities(1, "GenericRelationships");
        if v.delete {
            if !links.is_empty() {
                errors.push(format!("{LINK}: deleted at v{} but Dastra holds {links:?}", v.n));
            }
        } else {
            let target = asset_id.get(&((v.n % 2) as usize)).map(|i| i.to_string());
            let got: Vec<(Option<String>, Option<String>)> =
                links.iter().map(|l| (text(&l["target"], "id"), text(l, "label"))).collect();
            let expected = vec![(target, Some(format!("link v{}", v.n)))];
            if got != expected {
                errors.push(format!("{LINK}: (target, label) = {got:?}, expected v{} {expected:?}", v.n));
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs the property on `bus` with a seeded runner (few shrink steps: each case runs real servers).
fn property(bus: Bus) {
    let cases = env_u64("DASTRA_PROPTEST_CASES", 5) as u32;
    let seed = env_u64("DASTRA_PROPTEST_SEED", 0x5eed_0009);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases, max_shrink_iters: 6, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&scenario_strategy(), |scenario| {
        let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let started = std::time::Instant::now();
        let outcome = rt.block_on(run_scenario(bus, &scenario));
        eprintln!(
            "{bus:?} case {n}: {} steps, {:.1} s, {}",
            scenario.steps.len(),
            started.elapsed().as_secs_f64(),
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        outcome.map_err(|e| TestCaseError::fail(format!("{e}\nscenario: {scenario:#?}")))
    });
    if let Err(e) = result {
        panic!("seed {seed:#x}: {e}");
    }
}

#[test]
fn newest_version_wins_under_any_interleaving_on_nats() {
    property(Bus::Nats);
}

#[test]
fn newest_version_wins_under_any_interleaving_on_kafka() {
    property(Bus::Kafka);
}

// ---- Named regressions: the combinations the independent check found. ----

fn v(key: usize, n: u64) -> Version {
    Version { key, n, delete: false }
}

fn regression(bus: Bus, scenario: Scenario) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if let Err(e) = rt.block_on(run_scenario(bus, &scenario)) {
        panic!("{e}\nscenario: {scenario:#?}");
    }
}

/// v1, v2, v3 of a processing and a contract all wait for their assets; v2 comes again well after
/// v3 (a late duplicate); then the assets. Dastra must end at v3 (it ended at v2).
fn late_duplicate_while_waiting(restart: bool) -> Scenario {
    let mut steps = vec![Step::Publish(vec![v(2, 1), v(3, 1)]), Step::Pause(300)];
    steps.push(Step::Publish(vec![v(2, 2), v(3, 2)]));
    steps.push(Step::Pause(300));
    steps.push(Step::Publish(vec![v(2, 3), v(3, 3)]));
    steps.push(Step::Pause(1500));
    if restart {
        steps.push(Step::Restart);
    }
    steps.push(Step::Publish(vec![v(2, 2), v(3, 2)]));
    steps.push(Step::Pause(1500));
    steps.push(Step::Publish(vec![v(0, 1), v(1, 1)]));
    Scenario { steps, faults: false }
}

#[test]
fn late_duplicate_of_a_waiting_event_on_nats() {
    regression(Bus::Nats, late_duplicate_while_waiting(false));
}

#[test]
fn late_duplicate_of_a_waiting_event_on_kafka() {
    regression(Bus::Kafka, late_duplicate_while_waiting(false));
}

#[test]
fn late_duplicate_of_a_waiting_event_across_a_restart_on_nats() {
    regression(Bus::Nats, late_duplicate_while_waiting(true));
}

#[test]
fn late_duplicate_of_a_waiting_event_across_a_restart_on_kafka() {
    regression(Bus::Kafka, late_duplicate_while_waiting(true));
}

/// `deletes: archive`: v1 sets optional fields, v2 deletes (archived), v3 re-creates without them:
/// the restore must clear them (it kept description and processingState of v1).
fn restore_clears() -> Scenario {
    let del = |key, n| Version { key, n, delete: true };
    Scenario {
        steps: vec![
            Step::Publish(vec![v(0, 1), v(1, 1)]),
            Step::Pause(1500),
            // v2 of the processing has processingState; v1 of the contract has a description.
            Step::Publish(vec![v(2, 2), v(3, 1)]),
            Step::Pause(1500),
            Step::Publish(vec![del(2, 4), del(3, 2)]),
            Step::Pause(1500),
            // v9: no description, no processingState; v4 of the contract: no description.
            Step::Publish(vec![v(2, 9), v(3, 4)]),
        ],
        faults: false,
    }
}

#[test]
fn restore_after_archive_writes_the_whole_new_version_on_nats() {
    regression(Bus::Nats, restore_clears());
}

#[test]
fn restore_after_archive_writes_the_whole_new_version_on_kafka() {
    regression(Bus::Kafka, restore_clears());
}

/// A relationship's newest version is POSTed and the sink dies before recording it; its older
/// versions are redelivered first after the restart. The older ones must not be applied (an extra
/// link to another target survived the source's delete).
fn kill_after_relationship_post() -> Scenario {
    Scenario {
        steps: vec![
            Step::Publish(vec![v(0, 1), v(1, 1)]),
            Step::Pause(1500),
            Step::Publish(vec![v(4, 1), v(4, 2), v(4, 3)]),
            Step::Pause(300),
            Step::Publish(vec![v(4, 4)]),
            Step::Kill,
            Step::Pause(1500),
            Step::Kill,
            Step::Publish(vec![Version { key: 4, n: 5, delete: true }]),
        ],
        faults: true,
    }
}

#[test]
fn kill_after_a_relationship_post_on_nats() {
    regression(Bus::Nats, kill_after_relationship_post());
}

#[test]
fn kill_after_a_relationship_post_on_kafka() {
    regression(Bus::Kafka, kill_after_relationship_post());
}
