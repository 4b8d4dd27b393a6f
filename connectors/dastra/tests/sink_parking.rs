//! `parked: wait` keeps the newest unapplied event of a parked key: an older event arriving out of
//! order behind the refused one never replaces a newer event already waiting in the pending store
//! (here, one waiting for a referenced asset). Real driver, real nats-server, emulator.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_event_of_a_parked_key_never_replaces_a_newer_waiting_one() {
    let broker = Broker::nats().await;
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    // Dastra refuses the first create (a permanent 400): the processing's v2.
    emu.state
        .add_fault(FaultRule { count: Some(1), ..FaultRule::always(FaultKind::Error { status: 400 }).method("POST") })
        .unwrap();
    let publisher = bus.publisher().await.unwrap();
    let key = "grc:processing:payroll";
    let mut cfg = sink_config(&emu);
    cfg.parked = ParkedPolicy::Wait;
    let sink = RunningSink::start("sink", &bus, &topics, cfg);
    // v3 waits for its asset; v2 (no references) is refused and parks the key.
    publish(
        publisher.as_ref(),
        &topics,
        &[event(key, 3, processing(&["cmdb:asset:crm"])), event(key, 2, processing(&[]))],
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while emu.state.faults().iter().map(|(_, n)| *n).sum::<u64>() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the sink never tried v2");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.wait_idle(Duration::from_secs(60)).await;
    // v1, older still, arrives late (a replay), once the key is parked.
    publish(publisher.as_ref(), &topics, &[event(key, 1, processing(&[]))]).await;
    sink.wait_consumed("sink", 3, Duration::from_secs(60)).await;
    sink.wait_idle(Duration::from_secs(60)).await;
    sink.stop().await;

    let dlq = read_dlq(&bus, &topics, 1).await;
    assert_eq!(dlq.len(), 1, "only the refused event is dead-lettered under `wait`: {dlq:?}");
    let pending = state::open(&bus, &topics.state("pending-sink")).await.unwrap();
    let kept: serde_json::Value =
        serde_json::from_slice(&pending.get(key).expect("an event of the key waits")).unwrap();
    assert_eq!(kept["sequence"], sequence_from_u64(3), "the newest event is kept: {kept}");
    assert!(emu.state.entities(1, "DataProcessings").is_empty());
}
