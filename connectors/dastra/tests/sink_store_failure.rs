//! When the sink cannot write its pending or parked store (the broker refuses or times out), it
//! stops with an error naming the key instead of running on with a stalled commit watermark or an
//! unparked key; nothing is lost: the event was not committed, and the next run applies it. The
//! stores are real NATS KV buckets, wrapped so that their writes fail on demand (the broker
//! timing out), the driver is the real one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::{AssetType, ProcessingType};
use dastra_connect_core::event::{Asset, DataProcessing, EntityKey, Payload};
use dastra_connect_core::state::StateStore;
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_core::testkit::NatsServer;
use dastra_connect_dastra::sink::driver::{Driver, SinkStatus};
use dastra_connect_dastra::sink::ledger::Ledger;
use dastra_emulator::{FaultKind, FaultRule};
use tokio_util::sync::CancellationToken;

/// Which store fails.
#[derive(Clone, Copy, PartialEq)]
enum Failing {
    Pending,
    Parked,
}

/// Runs the real driver over `bus` with the named store failing; answers how the run ended.
async fn run_driver(
    bus: &BusConfig,
    topics: &Topics,
    emu: &dastra_emulator::RunningEmulator,
    failing: Failing,
) -> anyhow::Result<()> {
    // Every write of the store fails, as when the broker times out.
    let flaky = |inner: Arc<dyn StateStore>, on: bool| -> Arc<dyn StateStore> {
        let store = FailingStore::new(inner, &[Write::Put, Write::PutBatch, Write::Delete], "KV put ack");
        store.fail(on);
        store
    };
    let stores = DriverStores {
        ledger: Ledger::new(sink_store(bus, topics, "ledger").await),
        pending: flaky(sink_store(bus, topics, "pending").await, failing == Failing::Pending),
        parked: flaky(sink_store(bus, topics, "parked").await, failing == Failing::Parked),
    };
    let (shared, subscriber) = driver_services(bus, topics, sink_config(emu), 6, stores, Metrics::new()).await;
    let driver = Driver::new(shared, Arc::new(parking_lot::Mutex::new(SinkStatus::default())));
    let shutdown = CancellationToken::new();
    match tokio::time::timeout(Duration::from_secs(60), driver.run(subscriber, shutdown.clone())).await {
        Ok(result) => result,
        Err(_) => panic!("the driver kept running although its store refused writes"),
    }
}

fn asset() -> Payload {
    labelled("CRM")
}

fn labelled(label: &str) -> Payload {
    Payload::Asset(Asset { label: Some(label.into()), asset_type: Some(AssetType::Software), ..Default::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_event_that_cannot_be_recorded_stops_the_sink_and_is_applied_after_the_restart() {
    let nats = NatsServer::start().await;
    let bus = nats.bus_config();
    let topics = Topics::default();
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();
    // A processing whose asset does not exist yet: it must wait in the pending store.
    let dp = Payload::DataProcessing(DataProcessing {
        label: Some("Payroll".into()),
        processing_type: Some(ProcessingType::Default),
        assets: vec![EntityKey::parse("cmdb:asset:crm").unwrap()],
        ..Default::default()
    });
    publish(publisher.as_ref(), &topics, &[event("grc:processing:payroll", 1, dp)]).await;

    let err = run_driver(&bus, &topics, &emu, Failing::Pending).await.unwrap_err().to_string();
    assert!(err.contains("cannot record the pending event of grc:processing:payroll"), "{err}");

    // A healthy sink in the same group gets the processing again (it was never committed), and
    // applies it once its asset appears.
    let sink = RunningSink::start("sink", &bus, &topics, sink_config(&emu));
    publish(publisher.as_ref(), &topics, &[event("cmdb:asset:crm", 1, asset())]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !emu.state.entities(1, "DataProcessings").iter().any(|d| d["ref"] == "grc:processing:payroll") {
        assert!(tokio::time::Instant::now() < deadline, "the processing was lost");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_cannot_be_parked_stops_the_sink_before_anything_overtakes_it() {
    let nats = NatsServer::start().await;
    let bus = nats.bus_config();
    let topics = Topics::default();
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    // Dastra refuses the first create (a permanent 400).
    emu.state
        .add_fault(FaultRule { count: Some(1), ..FaultRule::always(FaultKind::Error { status: 400 }).method("POST") })
        .unwrap();
    let publisher = bus.publisher().await.unwrap();
    // The newer version is consumed while the refused one is in flight, and queued behind it.
    let both = [event("cmdb:asset:crm", 1, asset()), event("cmdb:asset:crm", 2, labelled("CRM 2"))];
    publish(publisher.as_ref(), &topics, &both).await;

    let err = run_driver(&bus, &topics, &emu, Failing::Parked).await.unwrap_err().to_string();
    assert!(err.contains("cannot park cmdb:asset:crm"), "{err}");
    assert!(emu.state.entities(1, "Assets").is_empty(), "nothing overtook the refused event");
    assert_eq!(read_dlq(&bus, &topics, 1).await.len(), 1, "the refused record is in the DLQ");

    // Not committed: the next run gets the record again; Dastra accepts it now.
    let sink = RunningSink::start("sink", &bus, &topics, sink_config(&emu));
    sink.wait_idle(Duration::from_secs(60)).await;
    sink.stop().await;
    let assets = emu.state.entities(1, "Assets");
    assert_eq!(assets.len(), 1, "{assets:?}");
    assert_eq!(assets[0]["label"], "CRM 2", "the newest version wins");
}
