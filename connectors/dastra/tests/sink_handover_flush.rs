//! A hand-over while the ledger's batch writes fail: the old owner of a partition must not write
//! anything it staged before the hand-over once the partition is someone else's. Its staged entries
//! are older than what the new owner writes for the same keys; landing later, they would take the
//! ledger back to an older version (a stale event could then apply again, or a PATCH be repeated).
//!
//! Replica A is the real driver over a ledger whose `put_batch` fails while a switch is on (the
//! broker timing out); replica B is a healthy sink in the same Kafka group (librdkafka's
//! MockCluster), the emulator is Dastra. A's sweep entries are staged and never durable when B
//! joins; B takes partitions over, applies a newer change of their keys; then A's store recovers.
//! The durable ledger (a fresh reader of its topic) must still hold B's versions.
//!
//! And the operability side: batch writes that keep failing are counted
//! (`dastra_connect_ledger_batch_write_failures_total`), shown in `/status`
//! (`ledger_writes_failing`) and, once they have failed for `LEDGER_FAILING_NOT_READY_AFTER`
//! without a success, make the sink not ready; a success makes it ready again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use dastra_connect_core::admin::Admin;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::AssetType;
use dastra_connect_core::event::{Asset, ChangeEvent, Payload, sequence_from_u64};
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_dastra::sink::DastraSinkConfig;
use dastra_connect_dastra::sink::driver::{Driver, LEDGER_FAILING_NOT_READY_AFTER, SinkStatus, ledger_not_ready};
use dastra_connect_dastra::sink::ledger::Ledger;
use dastra_emulator::RunningEmulator;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const KEYS: usize = 12;

fn key(k: usize) -> String {
    format!("t:asset:h{k}")
}

/// Asset `k` at content revision `c`; `snapshot` marks a sweep's unchanged repeat.
fn asset(k: usize, c: u64, snapshot: bool) -> Payload {
    Payload::Asset(Asset {
        label: Some(format!("H{k}")),
        asset_type: Some(AssetType::Software),
        description: Some(format!("content {c}")),
        snapshot,
        ..Default::default()
    })
}

fn events(version: u64, content: u64, snapshot: bool) -> Vec<ChangeEvent> {
    (0..KEYS).map(|k| event(&key(k), version, asset(k, content, snapshot))).collect()
}

/// Replica A: the real driver over a ledger whose batch writes fail on demand.
struct FlakyReplica {
    task: JoinHandle<anyhow::Result<()>>,
    status: Arc<parking_lot::Mutex<SinkStatus>>,
    /// Its ledger's store: batch writes fail while it is failing (the broker timing out); single
    /// writes go through (the creates of the first events are recorded).
    store: Arc<FailingStore>,
    metrics: Metrics,
    /// The ledger it writes (shared with the test, to read the staged state).
    ledger: Ledger,
    /// Its readiness, wired as the sink connector wires it.
    admin: Admin,
    shutdown: CancellationToken,
}

async fn start_flaky(bus: &BusConfig, topics: &Topics, partitions: u32, config: DastraSinkConfig) -> FlakyReplica {
    let store = FailingStore::new(sink_store(bus, topics, "ledger").await, &[Write::PutBatch], "ledger batch ack");
    let ledger = Ledger::new(store.clone()).with_batching(config.ledger_batch, config.ledger_batch_delay);
    let stores = DriverStores {
        ledger: ledger.clone(),
        pending: sink_store(bus, topics, "pending").await,
        parked: sink_store(bus, topics, "parked").await,
    };
    let metrics = Metrics::new();
    let (shared, subscriber) = driver_services(bus, topics, config, partitions, stores, metrics.clone()).await;
    let status = Arc::new(parking_lot::Mutex::new(SinkStatus::default()));
    let driver = Driver::new(shared, status.clone());
    // As `DastraSink::run` does around the driver.
    let admin = Admin::new(metrics.clone());
    let condition = ledger.clone();
    admin.ready_condition("sink", move || ledger_not_ready(&condition));
    admin.readiness("sink").set(true);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(driver.run(subscriber, shutdown.clone()));
    FlakyReplica { task, status, store, metrics, ledger, admin, shutdown }
}

/// Waits until `check` holds, polling every 100 ms, or panics with `what` after `timeout`.
async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config(emu: &RunningEmulator) -> DastraSinkConfig {
    let mut c = sink_config(emu);
    c.ledger_batch = 1000;
    c.ledger_batch_delay = Duration::from_millis(5);
    // Long enough that, after the hand-over, the old owner is still draining when the new owner
    // has written its newer entries (it waits for the staged writes at shutdown for this long).
    c.shutdown_grace = Duration::from_secs(15);
    c.max_backoff = Duration::from_secs(1);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_staged_before_a_hand_over_never_land_after_it() {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    }
    let broker = Broker::kafka();
    let topics = Topics::default();
    let mut bus = broker.bus(&topics, "sink").await;
    short_sessions(&mut bus);
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();

    // A owns every partition and creates every asset (version 1, recorded by single writes).
    let a = start_flaky(&bus, &topics, broker.change_partitions(), config(&emu)).await;
    wait_for("A to be assigned", Duration::from_secs(60), async || !a.status.lock().partitions.is_empty()).await;
    publish(publisher.as_ref(), &topics, &events(1, 1, false)).await;
    let v1 = Some(sequence_from_u64(1));
    wait_for("the creates to be recorded", Duration::from_secs(60), async || {
        let l = durable_ledger(&bus, &topics).await;
        (0..KEYS).all(|k| l.get(&key(k)) == Some(&v1))
    })
    .await;

    // The ledger's batch writes start failing; a sweep (version 2, unchanged) is staged in A.
    a.store.fail(true);
    publish(publisher.as_ref(), &topics, &events(2, 1, true)).await;
    let v2 = Some(sequence_from_u64(2));
    wait_for("the sweep to be staged and its batch write refused", Duration::from_secs(60), async || {
        (0..KEYS).all(|k| {
            a.ledger.get(&dastra_connect_core::event::EntityKey::parse(&key(k)).unwrap()).and_then(|e| e.version) == v2
        }) && a.store.refused() > 0
    })
    .await;

    // B joins: A's partitions are revoked (some or all move to B), while A's staged writes fail.
    let b = RunningSink::start("sink", &bus, &topics, config(&emu));
    b.wait_assigned(Duration::from_secs(60)).await;
    // B applies a real change (version 3) of the keys it owns.
    publish(publisher.as_ref(), &topics, &events(3, 2, false)).await;
    let v3 = Some(sequence_from_u64(3));
    let mut newer = BTreeMap::new();
    wait_for("B to record version 3 of some key", Duration::from_secs(60), async || {
        newer = durable_ledger(&bus, &topics).await.into_iter().filter(|(_, v)| *v == v3).collect();
        !newer.is_empty()
    })
    .await;
    b.wait_idle(Duration::from_secs(60)).await;
    let newer: Vec<String> =
        durable_ledger(&bus, &topics).await.into_iter().filter(|(_, v)| *v == v3).map(|(k, _)| k).collect();
    eprintln!("B recorded version 3 of {} keys: {newer:?}", newer.len());
    assert!(!a.task.is_finished() || a.store.refused() > 0);

    // A's store recovers. Whatever A still does, its staged sweep (version 2) must not land over
    // B's version 3.
    a.store.fail(false);
    let ended = tokio::time::timeout(Duration::from_secs(60), a.task).await.expect("A never stopped").unwrap();
    let after = durable_ledger(&bus, &topics).await;
    let regressed: Vec<String> = newer
        .iter()
        .filter(|k| after.get(*k) != Some(&v3))
        .map(|k| format!("{k}: {:?}", after.get(k).cloned().flatten()))
        .collect();
    assert!(
        regressed.is_empty(),
        "entries A staged before the hand-over landed after B's version 3 ({}): {regressed:?}",
        v3.as_deref().unwrap()
    );
    // A gave its staged entries up and stopped (a restart would bring it back); nothing was lost:
    // B, alone now, applies what A never committed, and every key ends at version 3.
    let err = ended.expect_err("A stops once it abandoned its staged writes").to_string();
    assert!(err.contains("staged writes could not be made durable before a hand-over"), "{err}");
    wait_for("B to record version 3 of every key", Duration::from_secs(90), async || {
        let l = durable_ledger(&bus, &topics).await;
        (0..KEYS).all(|k| l.get(&key(k)) == Some(&v3))
    })
    .await;
    b.wait_idle(Duration::from_secs(60)).await;
    let assets = emu.state.entities(1, "Assets");
    assert_eq!(assets.len(), KEYS, "each asset once");
    assert!(assets.iter().all(|a| a["description"] == "content 2"), "{assets:?}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_ledger_batch_writes_are_counted_shown_and_make_the_sink_not_ready_until_they_succeed() {
    let broker = Broker::nats().await;
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();
    let a = start_flaky(&bus, &topics, broker.change_partitions(), config(&emu)).await;
    let failures = || a.metrics.ledger_batch_write_failures.with_label_values(&["sink"]).get();
    wait_for("A to be assigned", Duration::from_secs(60), async || !a.status.lock().partitions.is_empty()).await;
    publish(publisher.as_ref(), &topics, &events(1, 1, false)).await;
    publish(publisher.as_ref(), &topics, &events(2, 1, true)).await;
    let v2 = Some(sequence_from_u64(2));
    wait_for("the sweep to be written", Duration::from_secs(60), async || {
        let l = durable_ledger(&bus, &topics).await;
        (0..KEYS).all(|k| l.get(&key(k)) == Some(&v2))
    })
    .await;
    assert_eq!(failures(), 0);
    assert!(a.admin.not_ready().is_empty(), "{:?}", a.admin.not_ready());

    // The batch writes fail: counted at once, shown in /status, ready still (a blip is retried).
    a.store.fail(true);
    publish(publisher.as_ref(), &topics, &events(3, 1, true)).await;
    wait_for("a failed batch write to be counted", Duration::from_secs(60), async || failures() > 0).await;
    wait_for("/status to show the failing writes", Duration::from_secs(10), async || {
        a.status
            .lock()
            .ledger_writes_failing
            .as_ref()
            .is_some_and(|f| f.attempts > 0 && f.error.contains("ledger batch ack"))
    })
    .await;
    let status = serde_json::to_value(&*a.status.lock()).unwrap();
    assert!(status["ledger_writes_failing"]["failing_for_s"].is_number(), "{status}");
    // Failing for longer than the bound: not ready, with the reason.
    wait_for(
        "the sink to report itself not ready",
        LEDGER_FAILING_NOT_READY_AFTER + Duration::from_secs(30),
        async || !a.admin.not_ready().is_empty(),
    )
    .await;
    let why = a.admin.not_ready().join("; ");
    assert!(why.starts_with("sink: ledger writes failing for") && why.contains("ledger batch ack"), "{why}");
    assert!(!a.task.is_finished(), "the sink runs on while its ledger writes fail");

    // They succeed again: ready, nothing shown, the sweep is durable (and so committed).
    a.store.fail(false);
    let v3 = Some(sequence_from_u64(3));
    wait_for("the sweep to be written after the recovery", Duration::from_secs(60), async || {
        let l = durable_ledger(&bus, &topics).await;
        (0..KEYS).all(|k| l.get(&key(k)) == Some(&v3))
    })
    .await;
    assert!(a.admin.not_ready().is_empty(), "{:?}", a.admin.not_ready());
    assert!(a.ledger.write_failure().is_none());
    wait_for("/status to stop showing failing writes", Duration::from_secs(10), async || {
        a.status.lock().ledger_writes_failing.is_none()
    })
    .await;
    let counted = failures();
    assert_eq!(counted, a.store.refused(), "every refused batch write counted once");
    a.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), a.task).await.unwrap().unwrap().unwrap();
}
