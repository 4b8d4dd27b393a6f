//! `parked: wait` keeps the newest unapplied event of a parked key: an older event arriving out of
//! order never replaces a newer event already kept in the pending store — one held behind the
//! parked key, or one waiting for a referenced asset (then the older one is not even sent: it is
//! superseded, see `src/sink/order.rs`). Real driver, real nats-server, emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::ProcessingType;
use dastra_connect_core::event::{DataProcessing, EntityKey, Payload, sequence_from_u64};
use dastra_connect_core::state;
use dastra_connect_dastra::sink::config::ParkedPolicy;
use dastra_emulator::{FaultKind, FaultRule};

fn processing(assets: &[&str]) -> Payload {
    Payload::DataProcessing(DataProcessing {
        label: Some("Payroll".into()),
        processing_type: Some(ProcessingType::Default),
        assets: assets.iter().map(|a| EntityKey::parse(a).unwrap()).collect(),
        ..Default::default()
    })
}

/// The pending entry of `key`, as stored.
async fn kept(bus: &dastra_connect_core::bus::BusConfig, topics: &Topics, key: &str) -> serde_json::Value {
    let pending = state::open(bus, &topics.state("pending-sink")).await.unwrap();
    serde_json::from_slice(&pending.get(key).expect("an event of the key is kept")).unwrap()
}

fn faults_hit(emu: &dastra_emulator::RunningEmulator) -> u64 {
    emu.state.faults().iter().map(|(_, n)| *n).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_event_of_a_parked_key_never_replaces_a_newer_waiting_one() {
    let broker = Broker::nats().await;
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    // Dastra refuses the first create (a permanent 400).
    emu.state
        .add_fault(FaultRule { count: Some(1), ..FaultRule::always(FaultKind::Error { status: 400 }).method("POST") })
        .unwrap();
    let publisher = bus.publisher().await.unwrap();
    let (waiting, parked) = ("grc:processing:payroll", "grc:processing:hr");
    let mut cfg = sink_config(&emu);
    cfg.parked = ParkedPolicy::Wait;
    let sink = RunningSink::start("sink", &bus, &topics, cfg);

    // 1. v3 waits for its asset; v2 arrives after it: superseded, never sent.
    publish(publisher.as_ref(), &topics, &[event(waiting, 3, processing(&["cmdb:asset:crm"]))]).await;
    sink.wait_consumed("sink", 1, Duration::from_secs(60)).await;
    publish(publisher.as_ref(), &topics, &[event(waiting, 2, processing(&[]))]).await;
    sink.wait_consumed("sink", 2, Duration::from_secs(60)).await;
    assert_eq!(faults_hit(&emu), 0, "v2 of {waiting} was not sent");
    assert!(emu.state.entities(1, "DataProcessings").is_empty());

    // 2. v2 of another key is refused and parks it; v3 is then held behind the park; v1, older
    //    still, arrives late (a replay).
    publish(publisher.as_ref(), &topics, &[event(parked, 2, processing(&[]))]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while faults_hit(&emu) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the sink never tried v2 of {parked}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.wait_idle(Duration::from_secs(60)).await;
    publish(publisher.as_ref(), &topics, &[event(parked, 3, processing(&[]))]).await;
    sink.wait_consumed("sink", 4, Duration::from_secs(60)).await;
    publish(publisher.as_ref(), &topics, &[event(parked, 1, processing(&[]))]).await;
    sink.wait_consumed("sink", 5, Duration::from_secs(60)).await;
    sink.stop().await;

    let dlq = read_dlq(&bus, &topics, 1).await;
    assert_eq!(dlq.len(), 1, "only the refused event is dead-lettered under `wait`: {dlq:?}");
    assert_eq!(dlq[0].0, parked);
    let held = kept(&bus, &topics, parked).await;
    assert_eq!(
        (held["sequence"].clone(), held["held"].clone()),
        (serde_json::json!(sequence_from_u64(3)), serde_json::json!(true)),
        "the newest event is held: {held}"
    );
    let waits = kept(&bus, &topics, waiting).await;
    assert_eq!(waits["sequence"], sequence_from_u64(3), "the newest event waits: {waits}");
    assert!(emu.state.entities(1, "DataProcessings").is_empty());
}
