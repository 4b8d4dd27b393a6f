//! `dastra-connect plan` against what the sink then really sends (Kafka MockCluster and a real
//! nats-server, the emulator).
//!
//! A sink first applies a seed stream (assets, actors, links, processings) so that the ledger
//! knows entities, and a contract waits in its pending store for a supplier only the backlog
//! creates; then a generated backlog — new entities, updates, unchanged repeats, stale duplicates,
//! deletes, relationships and contracts and processings published before what they reference — is
//! published while no sink runs. `plan_backlog` (what the `plan` command runs) predicts the
//! requests of the sink's next run from its committed offsets; the sink then runs on the same
//! backlog against the emulator, and the prediction must be within 5 % of the requests it sent.
//! The plan must not have committed offsets (the sink consumes the whole backlog afterwards) nor
//! written the ledger (same entries before and after).
//!
//! `DASTRA_PLAN_SEED=<n>` picks another backlog; `--nocapture` prints the comparison per kind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::*;
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::{ActorType, AssetType, ProcessingType, VendorType};
use dastra_connect_core::event::{
    Actor, Asset, ChangeEvent, Contract, DataProcessing, EntityKey, Payload, Relationship,
};
use dastra_connect_core::state;
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_dastra::sink::DastraSinkConfig;
use dastra_connect_dastra::sink::plan::{BacklogRange, REQUEST_KINDS, plan_backlog, request_kind};
use dastra_connect_dastra::{QuotaConfig, QuotaWindow};

const SINK: &str = "sink";
/// Keys of each sort the backlog draws from (the seed creates the lower part of each range).
const ASSETS: usize = 240;
const ACTORS: usize = 80;
const LINKS: usize = 120;
const CONTRACTS: usize = 40;
const PROCESSINGS: usize = 20;

fn key(k: &str) -> EntityKey {
    EntityKey::parse(k).unwrap()
}

fn asset(i: usize, city: &str) -> Payload {
    Payload::Asset(Asset {
        label: Some(format!("Asset {i}")),
        asset_type: Some(AssetType::Software),
        city: Some(city.into()),
        ..Default::default()
    })
}

fn actor(i: usize, country: &str) -> Payload {
    Payload::Actor(Actor {
        actor_type: Some(ActorType::Morale),
        vendor_type: Some(VendorType::B2B),
        company_name: Some(format!("Vendor {i}")),
        country_code: Some(country.into()),
        ..Default::default()
    })
}

fn link(i: usize, label: &str) -> Payload {
    Payload::Relationship(Relationship {
        origin: Some(key(&format!("vm:actor:v{}", i % ACTORS))),
        target: Some(key(&format!("cmdb:asset:a{}", i % ASSETS))),
        label: Some(label.into()),
        ..Default::default()
    })
}

fn contract(i: usize, description: &str) -> Payload {
    Payload::Contract(Contract {
        label: Some(format!("Contract {i}")),
        description: Some(description.into()),
        supplier: Some(key(&format!("vm:actor:v{}", i % ACTORS))),
        assets: vec![key(&format!("cmdb:asset:a{}", (i * 3) % ASSETS))],
        ..Default::default()
    })
}

fn processing(i: usize, description: &str) -> Payload {
    Payload::DataProcessing(DataProcessing {
        label: Some(format!("Processing {i}")),
        description: Some(description.into()),
        processing_type: Some(ProcessingType::Vendor),
        assets: vec![key(&format!("cmdb:asset:a{}", (i * 7) % ASSETS))],
        area_ref: Some("default".into()),
        ..Default::default()
    })
}

fn deleted(k: &str) -> Payload {
    if k.contains(":asset:") {
        Payload::Asset(Asset { deleted: true, ..Default::default() })
    } else if k.contains(":actor:") {
        Payload::Actor(Actor { deleted: true, ..Default::default() })
    } else {
        Payload::Relationship(Relationship { deleted: true, ..Default::default() })
    }
}

/// A seeded stream builder: per-key versions, the last payload of each key, every event emitted.
struct Gen {
    rng: u64,
    versions: HashMap<String, u64>,
    last: BTreeMap<String, Payload>,
    emitted: Vec<ChangeEvent>,
}

impl Gen {
    fn new(seed: u64) -> Self {
        Self { rng: seed | 1, versions: HashMap::new(), last: BTreeMap::new(), emitted: Vec::new() }
    }

    fn below(&mut self, n: usize) -> usize {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }

    fn emit(&mut self, k: &str, data: Payload) -> ChangeEvent {
        let v = self.versions.entry(k.to_owned()).or_default();
        *v += 1;
        let e = event(k, *v, data.clone());
        self.last.insert(k.to_owned(), data);
        self.emitted.push(e.clone());
        e
    }

    fn seed(&mut self) -> Vec<ChangeEvent> {
        let mut out = Vec::new();
        for i in 0..ASSETS / 2 {
            out.push(self.emit(&format!("cmdb:asset:a{i}"), asset(i, "Lyon")));
        }
        for i in 0..ACTORS / 2 {
            out.push(self.emit(&format!("vm:actor:v{i}"), actor(i, "FR")));
        }
        for i in 0..LINKS / 3 {
            out.push(self.emit(&format!("vm:relationship:r{i}"), link(i, "uses")));
        }
        for i in 0..PROCESSINGS / 3 {
            out.push(self.emit(&format!("grc:processing:p{i}"), processing(i, "v1")));
        }
        // Waits in the pending store for its supplier, which only the backlog creates.
        let waiting = Payload::Contract(Contract {
            label: Some("Waiting contract".into()),
            supplier: Some(key(&format!("vm:actor:v{}", ACTORS - 1))),
            ..Default::default()
        });
        out.push(self.emit("legal:contract:waiting", waiting));
        out
    }

    /// `n` events of every sort; what the sink never saw (a30.., v15.., r10.., c*, p3..) is created.
    fn backlog(&mut self, n: usize) -> Vec<ChangeEvent> {
        const CITIES: [&str; 3] = ["Lyon", "Paris", "Nantes"];
        const COUNTRIES: [&str; 3] = ["FR", "DE", "IT"];
        let mut out = Vec::new();
        while out.len() < n {
            let roll = self.below(100);
            let e = match roll {
                0..=29 => {
                    let i = self.below(ASSETS);
                    let city = CITIES[self.below(3)];
                    self.emit(&format!("cmdb:asset:a{i}"), asset(i, city))
                }
                30..=39 => {
                    // An unchanged repeat (a snapshot sweep) of a key already published.
                    let keys: Vec<String> = self.last.keys().cloned().collect();
                    let k = keys[self.below(keys.len())].clone();
                    let data = self.last[&k].clone();
                    self.emit(&k, data)
                }
                40..=49 => {
                    let i = self.below(ACTORS);
                    let c = COUNTRIES[self.below(3)];
                    self.emit(&format!("vm:actor:v{i}"), actor(i, c))
                }
                50..=64 => {
                    let i = self.below(LINKS);
                    let label = ["uses", "hosts"][self.below(2)];
                    self.emit(&format!("vm:relationship:r{i}"), link(i, label))
                }
                65..=69 => {
                    let k = match self.below(3) {
                        0 => format!("cmdb:asset:a{}", self.below(ASSETS)),
                        1 => format!("vm:actor:v{}", self.below(ACTORS)),
                        _ => format!("vm:relationship:r{}", self.below(LINKS)),
                    };
                    self.emit(&k, deleted(&k))
                }
                70..=74 => {
                    // A late duplicate of an older event (stale).
                    let i = self.below(self.emitted.len());
                    let e = self.emitted[i].clone();
                    self.emitted.push(e.clone());
                    e
                }
                75..=86 => {
                    let i = self.below(CONTRACTS);
                    let d = format!("terms {}", self.below(3));
                    self.emit(&format!("legal:contract:c{i}"), contract(i, &d))
                }
                _ => {
                    let i = self.below(PROCESSINGS);
                    let d = format!("v{}", self.below(3));
                    self.emit(&format!("grc:processing:p{i}"), processing(i, &d))
                }
            };
            out.push(e);
        }
        out
    }
}

/// The sink's config: the emulator, and a quota of 3000/min (20 ms between requests) so that a
/// few hundred requests take seconds, Dastra still answering slower than the backlog is consumed
/// (the plan's coalescing model; under Dastra's 500/min, 122 ms, all the more).
fn config(emu: &dastra_emulator::RunningEmulator) -> DastraSinkConfig {
    let mut cfg = sink_config(emu);
    cfg.dastra.quota = QuotaConfig {
        windows: vec![QuotaWindow { limit: 3000, per: Duration::from_secs(60) }],
        safety_margin: Duration::from_secs(1),
        burst: 5,
    };
    cfg
}

/// The sink's requests per kind, from its `dastra_connect_dastra_requests_total{method, route}`.
fn sent_by_kind(metrics: &Metrics) -> (BTreeMap<&'static str, u64>, BTreeMap<String, u64>) {
    let mut out: BTreeMap<&'static str, u64> = REQUEST_KINDS.iter().map(|k| (*k, 0)).collect();
    let mut routes = BTreeMap::new();
    for f in metrics.registry().gather().iter().filter(|f| f.name() == "dastra_connect_dastra_requests_total") {
        for m in f.get_metric() {
            let label = |n: &str| m.get_label().iter().find(|l| l.name() == n).map(|l| l.value().to_owned());
            let kind = request_kind(&label("method").unwrap_or_default(), &label("route").unwrap_or_default());
            *out.entry(kind).or_default() += m.get_counter().get_value() as u64;
            let route = format!("{} {}", label("method").unwrap_or_default(), label("route").unwrap_or_default());
            *routes.entry(route).or_default() += m.get_counter().get_value() as u64;
        }
    }
    (out, routes)
}

fn consumed(metrics: &Metrics) -> u64 {
    metrics
        .registry()
        .gather()
        .iter()
        .filter(|f| f.name() == "dastra_connect_events_consumed_total")
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value() as u64).collect::<Vec<_>>())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_predicts_the_sinks_requests_within_5_percent_kafka() {
    scenario(Broker::kafka(), "Kafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_predicts_the_sinks_requests_within_5_percent_nats() {
    scenario(Broker::nats().await, "NATS").await;
}

async fn scenario(broker: Broker, bus_name: &str) {
    let seed: u64 = std::env::var("DASTRA_PLAN_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_2026);
    let topics = Topics::default();
    let mut bus = broker.bus(&topics, SINK).await;
    short_sessions(&mut bus);
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();
    let mut generator = Gen::new(seed);

    // The ledger knows the seeded entities, and the sink's group committed them.
    let seeded = generator.seed();
    publish(publisher.as_ref(), &topics, &seeded).await;
    let sink = RunningSink::start(SINK, &bus, &topics, config(&emu));
    sink.wait_idle(Duration::from_secs(120)).await;
    sink.stop().await;
    let seed_requests = requests(&emu);

    let mut backlog = generator.backlog(1399);
    backlog.push(generator.emit(&format!("vm:actor:v{}", ACTORS - 1), actor(ACTORS - 1, "FR")));
    publish(publisher.as_ref(), &topics, &backlog).await;

    let ledger_ns = topics.state(&format!("ledger-{SINK}"));
    let ledger_before = state::open(&bus, &ledger_ns).await.unwrap().snapshot();
    assert!(!ledger_before.is_empty());

    let started = Instant::now();
    let cfg = config(&emu);
    let plan =
        plan_backlog(&bus, &topics, SINK, &cfg, &Codec::single_object(), &BacklogRange::Uncommitted).await.unwrap();
    let plan_time = started.elapsed();
    println!("{}", plan.table());
    assert_eq!(requests(&emu), seed_requests, "the plan sent nothing to Dastra");
    assert_eq!(plan.events.messages, backlog.len() as u64, "the plan read the backlog after the committed offsets");
    assert_eq!(plan.events.pending_store, 1, "the contract waiting for its supplier is planned too");

    // The plan wrote nothing: the ledger read afresh from the bus holds the same entries.
    let ledger_after = state::open(&bus, &ledger_ns).await.unwrap().snapshot();
    assert_eq!(ledger_after, ledger_before, "the plan wrote the ledger");
    // And a second plan of the same backlog is the same plan (nothing it did stayed behind).
    let again =
        plan_backlog(&bus, &topics, SINK, &cfg, &Codec::single_object(), &BacklogRange::Uncommitted).await.unwrap();
    assert_eq!(again.by_kind, plan.by_kind);

    // The sink's next run: it still sees the whole backlog (the plan committed nothing).
    let run_started = Instant::now();
    let sink = RunningSink::start(SINK, &bus, &topics, config(&emu));
    // Idle is not enough on its own: a loaded machine can leave a just-assigned partition quiet
    // for longer than `wait_idle`'s quiet window before its first message.
    let deadline = Instant::now() + Duration::from_secs(180);
    while consumed(&sink.metrics) < backlog.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "the sink consumed {} of the {} backlog events after the plan",
            consumed(&sink.metrics),
            backlog.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sink.wait_idle(Duration::from_secs(240)).await;
    let run_time = run_started.elapsed();
    assert_eq!(consumed(&sink.metrics), backlog.len() as u64, "the sink consumed the whole backlog after the plan");
    let (actual, actual_routes) = sent_by_kind(&sink.metrics);
    sink.stop().await;
    let actual_total: u64 = actual.values().sum();
    assert_eq!(actual_total, requests(&emu) - seed_requests, "the sink's count and the emulator's agree");

    println!(
        "plan accuracy on {bus_name} (seed {seed:#x}, {} events, plan {plan_time:.1?}, sink run {run_time:.1?}):",
        backlog.len()
    );
    println!("{:<8} {:>9} {:>7} {:>7}", "kind", "predicted", "actual", "diff");
    for k in REQUEST_KINDS {
        let (p, a) = (plan.by_kind.get(k).copied().unwrap_or(0), actual[k]);
        println!("{k:<8} {p:>9} {a:>7} {:>+7}", p as i64 - a as i64);
    }
    for (route, p) in &plan.by_route {
        let a = actual_routes.get(route).copied().unwrap_or(0);
        if *p != a {
            println!("  {route}: predicted {p}, sent {a}");
        }
    }
    for (route, a) in &actual_routes {
        if !plan.by_route.contains_key(route) {
            println!("  {route}: predicted 0, sent {a}");
        }
    }
    let diff = plan.requests as f64 - actual_total as f64;
    println!(
        "{:<8} {:>9} {actual_total:>7} {:>+7} ({:+.2} %)",
        "total",
        plan.requests,
        diff as i64,
        100.0 * diff / actual_total as f64
    );
    println!(
        "predicted time under 3000/60s: {:.1} s; coalescing saved {} requests ({} without)",
        plan.seconds.unwrap(),
        plan.saved.requests_saved_by_coalescing,
        plan.saved.requests_without_coalescing
    );
    assert!(actual_total > 100, "a backlog worth predicting: {actual_total} requests");
    assert!(
        diff.abs() <= 0.05 * actual_total as f64,
        "predicted {} requests, the sink sent {actual_total}: {:?} vs {actual:?}",
        plan.requests,
        plan.by_kind
    );
    // Coalescing and skipping were exercised.
    assert!(plan.saved.coalesced_events > 0 && plan.saved.requests_saved_by_coalescing > 0, "{:?}", plan.saved);
    assert!(plan.saved.skipped.values().sum::<u64>() > 0, "{:?}", plan.saved);
}
