//! Dastra's batch routes (`POST Assets/batch-delete`, `PATCH Assets` with `{ids, patch}`) used by
//! the sink's request batcher, under the hazards that break batching: members that Dastra refuses
//! (split until the refused one is alone), records a person deleted in Dastra (a 404 inside a batch
//! patch: split, then created again), transient 503s on the batch routes, graceful restarts and
//! kills in the middle of a batch. Real driver, real nats-server and MockCluster, the emulator as
//! Dastra.
//!
//! The property: at the end every key holds the content of its newest event, exactly once, a
//! deleted key is gone, and the ledger records every key's newest version — as without batching.
//! The fixed case checks that batching happens at all and that a refused member alone reaches
//! the DLQ.
//!
//! Case count and seed: `DASTRA_PROPTEST_CASES` (default 3 per bus) and `DASTRA_PROPTEST_SEED`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::AssetType;
use dastra_connect_core::event::{Asset, ChangeEvent, Payload};
use dastra_emulator::{FaultKind, FaultRule, RunningEmulator};
use proptest::prelude::*;
use serde_json::Value;

const KEYS: usize = 12;
/// The owner every live key gets last, so that a record a person deleted is created again.
const FINAL_OWNER: u8 = 9;

fn key(k: usize) -> String {
    format!("t:asset:b{k}")
}

fn payload(k: usize, owner: Option<u8>) -> Payload {
    match owner {
        Some(o) => Payload::Asset(Asset {
            label: Some(format!("B{k}")),
            asset_type: Some(AssetType::Software),
            // Several keys moving to the same owner get identical patches: one `PATCH Assets`.
            description: Some(format!("owner {o}")),
            ..Default::default()
        }),
        None => Payload::Asset(Asset { deleted: true, ..Default::default() }),
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// These keys get this owner (created when they are not alive).
    Owner(Vec<usize>, u8),
    /// These keys are deleted at the source.
    Delete(Vec<usize>),
    /// A person deletes this key's record in Dastra (if it has one).
    PersonDeletes(usize),
    /// The next this many requests on the batch routes are answered 503.
    Flaky(u64),
    /// Let the sink work for this many ms.
    Pause(u64),
    /// Stop gracefully and start again.
    Restart,
    /// After this many ms, abort the sink task (nothing drains or commits), start again.
    Kill(u64),
}

fn keys() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::btree_set(0..KEYS, 2..=8).prop_map(|s| s.into_iter().collect())
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (keys(), 0u8..3).prop_map(|(k, o)| Step::Owner(k, o)),
        3 => keys().prop_map(Step::Delete),
        1 => (0..KEYS).prop_map(Step::PersonDeletes),
        1 => (1u64..4).prop_map(Step::Flaky),
        1 => prop_oneof![Just(0u64), Just(100), Just(400)].prop_map(Step::Pause),
        1 => Just(Step::Restart),
        2 => (0u64..600).prop_map(Step::Kill),
    ]
}

fn scenario() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(), 4..12).prop_map(|mut steps| {
        steps.insert(0, Step::Owner((0..KEYS).collect(), 0));
        steps
    })
}

#[derive(Default)]
struct Model {
    /// The owner of every live key; deleted keys are absent.
    alive: BTreeMap<usize, u8>,
    next_seq: u64,
    newest: BTreeMap<String, String>,
}

impl Model {
    fn events(&mut self, changes: &[(usize, Option<u8>)]) -> Vec<ChangeEvent> {
        changes
            .iter()
            .map(|&(k, owner)| {
                match owner {
                    Some(o) => self.alive.insert(k, o),
                    None => self.alive.remove(&k),
                };
                self.next_seq += 1;
                let ev = event(&key(k), self.next_seq, payload(k, owner));
                self.newest.insert(key(k), ev.sequence.clone());
                ev
            })
            .collect()
    }
}

fn sink_cfg(emu: &RunningEmulator, window_ms: u64) -> dastra_connect_dastra::sink::DastraSinkConfig {
    let mut cfg = sink_config(emu);
    cfg.batch_window = Duration::from_millis(window_ms);
    cfg.shutdown_grace = Duration::from_secs(5);
    cfg.max_backoff = Duration::from_secs(1);
    cfg
}

async fn start(bus: &BusConfig, topics: &Topics, emu: &RunningEmulator, window_ms: u64) -> RunningSink {
    let sink = RunningSink::start("sink", bus, topics, sink_cfg(emu, window_ms));
    sink.wait_assigned(Duration::from_secs(60)).await;
    sink
}

fn records(emu: &RunningEmulator, k: usize) -> Vec<Value> {
    emu.state.entities(1, "Assets").into_iter().filter(|a| a["ref"].as_str() == Some(key(k).as_str())).collect()
}

/// What a person does in Dastra's UI: delete the record.
async fn person_deletes(emu: &RunningEmulator, k: usize) {
    for r in records(emu, k) {
        let id = r["id"].as_i64().unwrap();
        emu_delete(emu, &format!("/v1/ws/1/Assets/{id}")).await;
    }
}

/// Dastra holds every live key's newest content once and no deleted key; the ledger every key's
/// newest version.
async fn check_final(bus: &BusConfig, topics: &Topics, emu: &RunningEmulator, model: &Model) -> Result<(), String> {
    let mut errors = Vec::new();
    for k in 0..KEYS {
        let found = records(emu, k);
        match model.alive.get(&k) {
            Some(o) => {
                let want = format!("owner {o}");
                let got: Vec<_> = found.iter().map(|a| a["description"].as_str().unwrap_or("?")).collect();
                if got != [want.as_str()] {
                    errors.push(format!("{}: Dastra holds {got:?}, expected [{want:?}]", key(k)));
                }
            }
            None if !found.is_empty() => errors.push(format!("{}: deleted, Dastra holds {found:?}", key(k))),
            None => {}
        }
    }
    let ledger = durable_ledger(bus, topics).await;
    for (k, seq) in &model.newest {
        if ledger.get(k).cloned().flatten().as_deref() != Some(seq.as_str()) {
            errors.push(format!("{k}: ledger holds {:?}, newest event {seq}", ledger.get(k)));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

async fn run(bus_kind: Bus, steps: &[Step]) -> Result<(), String> {
    let topics = Topics::default();
    let (_broker, bus) = broker_bus(bus_kind, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();
    let mut model = Model::default();
    let mut sink = start(&bus, &topics, &emu, 50).await;
    let last = vec![Step::Pause(300)];
    for step in steps.iter().chain(&last) {
        match step {
            Step::Owner(keys, o) => {
                let events = model.events(&keys.iter().map(|&k| (k, Some(*o))).collect::<Vec<_>>());
                publish(publisher.as_ref(), &topics, &events).await;
            }
            Step::Delete(keys) => {
                let events = model.events(&keys.iter().map(|&k| (k, None)).collect::<Vec<_>>());
                publish(publisher.as_ref(), &topics, &events).await;
            }
            Step::PersonDeletes(k) => person_deletes(&emu, *k).await,
            Step::Flaky(n) => {
                for rule in [
                    FaultRule::always(FaultKind::Error { status: 503 }).method("PATCH").route("/Assets$"),
                    FaultRule::always(FaultKind::Error { status: 503 }).method("POST").route("/Assets/batch-delete$"),
                ] {
                    emu.state.add_fault(rule.count(*n)).unwrap();
                }
            }
            Step::Pause(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            Step::Restart => {
                sink.stop().await;
                sink = start(&bus, &topics, &emu, 50).await;
            }
            Step::Kill(ms) => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                sink.task.abort();
                let _ = sink.task.await;
                sink = start(&bus, &topics, &emu, 50).await;
            }
        }
    }
    // A record a person deleted comes back with the next change of its key.
    let live: Vec<(usize, Option<u8>)> = model.alive.keys().map(|&k| (k, Some(FINAL_OWNER))).collect();
    let events = model.events(&live);
    publish(publisher.as_ref(), &topics, &events).await;
    sink.wait_idle(Duration::from_secs(120)).await;
    sink.stop().await;
    check_final(&bus, &topics, &emu, &model).await
}

fn property(bus: Bus) {
    common::property(
        &format!("{bus:?}"),
        3,
        0xba7c_0016,
        scenario(),
        |steps| format!("{} steps", steps.len()),
        async |steps| run(bus, steps).await,
    );
}

#[test]
fn batched_deletes_and_patches_end_exact_under_refusals_and_kills_on_nats() {
    property(Bus::Nats);
}

#[test]
fn batched_deletes_and_patches_end_exact_under_refusals_and_kills_on_kafka() {
    property(Bus::Kafka);
}

/// The ids of a batch request's body (`{ids}` of a collection PATCH, the array of a batch-delete).
fn batch_ids(body: &Option<Value>) -> usize {
    match body {
        Some(Value::Array(ids)) => ids.len(),
        Some(Value::Object(o)) => o.get("ids").and_then(Value::as_array).map_or(0, Vec::len),
        _ => 0,
    }
}

/// Eight keys get the same new owner while four others are deleted: the eight travel in
/// `PATCH Assets` requests and the four in `batch-delete` requests. Dastra refuses the patch of one
/// of the eight (a 400 for that id alone, on both routes) and a person has deleted another one's
/// record: the refused key alone reaches the DLQ and keeps its old content, the deleted one is
/// created again, the other six are patched.
async fn refused_member(bus_kind: Bus) {
    let topics = Topics::default();
    let (_broker, bus) = broker_bus(bus_kind, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();
    let mut model = Model::default();
    // A long window: all twelve are in flight before any group is sent, however loaded the machine.
    let mut cfg = sink_cfg(&emu, 400);
    cfg.max_in_flight = 16;
    let sink = RunningSink::start("sink", &bus, &topics, cfg);
    sink.wait_assigned(Duration::from_secs(60)).await;
    let created = model.events(&(0..KEYS).map(|k| (k, Some(0))).collect::<Vec<_>>());
    publish(publisher.as_ref(), &topics, &created).await;
    sink.wait_consumed("sink", KEYS as u64, Duration::from_secs(60)).await;

    let refused = records(&emu, 3)[0]["id"].as_i64().unwrap();
    for rule in [
        FaultRule::always(FaultKind::Error { status: 400 }).method("PATCH").route(&format!("/Assets/{refused}$")),
        FaultRule::always(FaultKind::Error { status: 400 })
            .method("PATCH")
            .route("/Assets$")
            .body(&format!(r#""ids":\[[^\]]*\b{refused}\b"#)),
    ] {
        emu.state.add_fault(rule).unwrap();
    }
    person_deletes(&emu, 7).await;
    let mark = emu.state.request_log().last().map_or(0, |r| r.seq);

    let mut changes: Vec<(usize, Option<u8>)> = (0..8).map(|k| (k, Some(1))).collect();
    changes.extend((8..KEYS).map(|k| (k, None)));
    let events = model.events(&changes);
    publish(publisher.as_ref(), &topics, &events).await;
    sink.wait_consumed("sink", (KEYS + changes.len()) as u64, Duration::from_secs(60)).await;
    sink.stop().await;

    let dlq = read_dlq(&bus, &topics, 1).await;
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].0, key(3), "the refused key alone goes to the DLQ: {dlq:?}");
    // The refused key keeps what it had; the model says what it would have had otherwise.
    model.alive.insert(3, 0);
    model.newest.insert(key(3), created[3].sequence.clone());
    let log: Vec<_> = emu.state.request_log().into_iter().filter(|r| r.seq > mark).collect();
    let summary: Vec<String> =
        log.iter().map(|r| format!("{} {} {} ids={}", r.method, r.route, r.status, batch_ids(&r.body))).collect();
    let batch_patched = log
        .iter()
        .filter(|r| r.method == "PATCH" && r.route.ends_with("/Assets") && r.status == 200)
        .map(|r| batch_ids(&r.body))
        .max()
        .unwrap_or(0);
    let batch_deleted = log
        .iter()
        .filter(|r| r.method == "POST" && r.route.ends_with("/batch-delete") && r.status == 200)
        .map(|r| batch_ids(&r.body))
        .sum::<usize>();
    assert!(batch_patched >= 2, "some patch went as a batch of several ids: {summary:#?}");
    assert_eq!(batch_deleted, 4, "the four deletes went as batch-deletes: {summary:#?}");
    let singles = log.iter().filter(|r| r.method == "DELETE").count();
    assert_eq!(singles, 0, "no delete on its own: {summary:#?}");
    // The one refused id is tried on its own; nothing is sent for it more than the split needs.
    let refused_alone = log.iter().filter(|r| r.path.ends_with(&format!("/Assets/{refused}"))).count();
    assert_eq!(refused_alone, 1, "{summary:#?}");
    let recreated = log.iter().filter(|r| r.method == "POST" && r.route.ends_with("/Assets")).count();
    assert_eq!(recreated, 1, "the record a person deleted is created again, once: {summary:#?}");
    if let Err(e) = check_final(&bus, &topics, &emu, &model).await {
        panic!("{e}\nrequests: {summary:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_member_alone_goes_to_the_dlq_on_nats() {
    refused_member(Bus::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_member_alone_goes_to_the_dlq_on_kafka() {
    refused_member(Bus::Kafka).await;
}
