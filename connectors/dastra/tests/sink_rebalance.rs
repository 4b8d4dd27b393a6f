//! Rebalances keep their promise: while two to three sink replicas join and leave the consumer group
//! every few seconds under a create-heavy stream (Dastra answering slowly, so creates are in flight
//! when partitions move), every entity exists exactly once and at its newest version. The old owner
//! finishes its in-flight work and commits before the partitions are handed over (revocations are
//! held until then), and the new owner reads the ledger to its end before applying anything. On NATS,
//! where replicas own partitions by index, a rolling restart that changes `replicas` keeps one owner
//! per partition (partition leases).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::{AssetType, ProcessingType};
use dastra_connect_core::event::{Asset, ChangeEvent, DataProcessing, EntityKey, Payload};
use dastra_emulator::{FaultKind, FaultRule};

const ASSETS: usize = 90;
const PROCESSINGS: usize = 30;

fn batch(round: usize, version: u64) -> Vec<ChangeEvent> {
    let mut out = Vec::new();
    for i in (round * 15)..((round + 1) * 15).min(ASSETS) {
        out.push(event(
            &format!("cmdb:asset:a{i}"),
            version,
            Payload::Asset(Asset {
                label: Some(format!("Asset {i}")),
                asset_type: Some(AssetType::Software),
                description: Some(format!("v{version}")),
                ..Default::default()
            }),
        ));
    }
    for i in (round * 5)..((round + 1) * 5).min(PROCESSINGS) {
        out.push(event(
            &format!("grc:processing:p{i}"),
            version,
            Payload::DataProcessing(DataProcessing {
                label: Some(format!("Processing {i}")),
                description: Some(format!("v{version}")),
                processing_type: Some(ProcessingType::Default),
                assets: vec![EntityKey::parse(&format!("cmdb:asset:a{}", (i * 3) % ASSETS)).unwrap()],
                ..Default::default()
            }),
        ));
    }
    out
}

async fn churn(bus: BusConfig, topics: Topics) {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    }
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    // Slow answers: creates are in flight when partitions move.
    emu.state.add_fault(FaultRule::always(FaultKind::Latency { ms: 60 })).unwrap();
    let publisher = bus.publisher().await.unwrap();
    // The hand-over waits at most this long for in-flight work; it must stay well under the
    // group's session timeout (6 s here, 45 s by default), or the coordinator evicts the member.
    let config = || {
        let mut c = sink_config(&emu);
        c.shutdown_grace = Duration::from_secs(3);
        c
    };
    let mut replicas = vec![RunningSink::start("sink", &bus, &topics, config())];
    replicas[0].wait_assigned(Duration::from_secs(60)).await;
    let rounds = ASSETS / 15;
    for round in 0..rounds {
        publish(publisher.as_ref(), &topics, &batch(round, 1)).await;
        publish(publisher.as_ref(), &topics, &batch(round, 2)).await;
        // Every round the group changes: a replica joins (up to three), or the oldest leaves.
        if round % 3 == 2 && replicas.len() > 1 {
            replicas.remove(0).stop().await;
        } else if replicas.len() < 3 {
            replicas.push(RunningSink::start("sink", &bus, &topics, config()));
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    loop {
        let (assets, processings) = (descriptions_by_ref(&emu, "Assets"), descriptions_by_ref(&emu, "DataProcessings"));
        let right = |m: &BTreeMap<String, String>, n: usize| m.len() == n && m.values().all(|d| d == "v2");
        if right(&assets, ASSETS) && right(&processings, PROCESSINGS) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let states: Vec<String> = replicas.iter().map(|r| r.admin.status_json().to_string()).collect();
            panic!(
                "never converged: {} assets, {} processings\n{}",
                assets.len(),
                processings.len(),
                states.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for r in &replicas {
        r.wait_idle(Duration::from_secs(60)).await;
    }
    for r in replicas {
        r.stop().await;
    }
    assert_eq!(emu.state.entities(1, "Assets").len(), ASSETS, "each asset exactly once");
    assert_eq!(emu.state.entities(1, "DataProcessings").len(), PROCESSINGS, "each processing exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_joining_and_leaving_create_nothing_twice_on_kafka() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let mut bus = broker.bus(&topics, "sink").await;
    short_sessions(&mut bus);
    churn(bus, topics).await;
}

/// The same on tansu, a real Kafka-protocol broker (its coordinator: joins and graceful leaves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_joining_and_leaving_create_nothing_twice_on_tansu() {
    let tansu = dastra_connect_core::testkit::Tansu::start().await;
    let mut cfg = tansu.kafka_config();
    cfg.topic_partitions = 4;
    let mut bus = BusConfig::Kafka(cfg);
    short_sessions(&mut bus);
    churn(bus, Topics::default()).await;
}

/// The sharp case: every create is in flight (Dastra takes 2.5 s to apply a POST) when a second
/// replica joins. The old owner keeps the revoked partitions until those POSTs are answered and
/// recorded; the new owner reads the ledger first, finds the entities by their `ref`, and creates
/// nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_in_flight_during_a_rebalance_is_not_repeated_by_the_new_owner() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let mut bus = broker.bus(&topics, "sink").await;
    short_sessions(&mut bus);
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    emu.state.add_fault(FaultRule::always(FaultKind::Latency { ms: 2500 }).method("POST")).unwrap();
    let config = || {
        let mut c = sink_config(&emu);
        c.shutdown_grace = Duration::from_secs(5);
        c
    };
    let a = RunningSink::start("sink", &bus, &topics, config());
    a.wait_assigned(Duration::from_secs(60)).await;
    let n = 8;
    let events: Vec<ChangeEvent> = batch(0, 1).into_iter().filter(|e| e.kind().as_str() == "asset").take(n).collect();
    publish(bus.publisher().await.unwrap().as_ref(), &topics, &events).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = RunningSink::start("sink", &bus, &topics, config());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while descriptions_by_ref(&emu, "Assets").len() < n {
        assert!(tokio::time::Instant::now() < deadline, "never created: {:?}", descriptions_by_ref(&emu, "Assets"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Anything created twice arrives within a POST's time after the first.
    tokio::time::sleep(Duration::from_secs(6)).await;
    a.stop().await;
    b.stop().await;
    assert_eq!(emu.state.entities(1, "Assets").len(), n, "each asset exactly once");
}

/// NATS, `replicas` changing from 2 to 3 in a rolling restart: for a while old replicas (`i/2`) and
/// new ones (`i/3`) run side by side and their static shares overlap (partition 2 is `0/2`'s and
/// `2/3`'s). Partition leases keep one owner per partition: the new replica takes a partition only
/// once its old owner has let it go (graceful stop) or its lease has expired. Creates are in flight
/// all along (Dastra answers every POST after 400 ms); every entity ends exactly once at its newest
/// version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_replicas_changing_in_a_rolling_restart_create_nothing_twice() {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    }
    let nats = dastra_connect_core::testkit::NatsServer::start().await;
    let topics = Topics::default();
    let replica = |index: u32, of: u32| {
        let mut n = nats.nats_config();
        n.replicas = of;
        n.replica_index = index;
        BusConfig::Nats(n)
    };
    let bus = replica(0, 1);
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    emu.state.add_fault(FaultRule::always(FaultKind::Latency { ms: 400 }).method("POST")).unwrap();
    let config = || {
        let mut c = sink_config(&emu);
        c.shutdown_grace = Duration::from_secs(3);
        c
    };
    let publisher = bus.publisher().await.unwrap();
    let start = |index: u32, of: u32| RunningSink::start("sink", &replica(index, of), &topics, config());
    let mut old = vec![start(0, 2), start(1, 2)];
    for r in &old {
        r.wait_assigned(Duration::from_secs(60)).await;
    }
    let mut new = Vec::new();
    let rounds = ASSETS / 15;
    for round in 0..rounds {
        publish(publisher.as_ref(), &topics, &batch(round, 1)).await;
        publish(publisher.as_ref(), &topics, &batch(round, 2)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The rolling restart, highest ordinal first: 2/3 joins beside both old replicas, then
        // 1/2 → 1/3, then 0/2 → 0/3.
        match round {
            0 => new.push(start(2, 3)),
            2 => {
                old.remove(1).stop().await;
                new.push(start(1, 3));
            }
            4 => {
                old.remove(0).stop().await;
                new.push(start(0, 3));
            }
            _ => {}
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    loop {
        let (assets, processings) = (descriptions_by_ref(&emu, "Assets"), descriptions_by_ref(&emu, "DataProcessings"));
        let right = |m: &BTreeMap<String, String>, n: usize| m.len() == n && m.values().all(|d| d == "v2");
        if right(&assets, ASSETS) && right(&processings, PROCESSINGS) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never converged: {} assets, {} processings",
            assets.len(),
            processings.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for r in &new {
        r.wait_idle(Duration::from_secs(60)).await;
    }
    // Anything created twice arrives within a POST's time after the first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for r in new {
        r.stop().await;
    }
    descriptions_by_ref(&emu, "Assets");
    assert_eq!(emu.state.entities(1, "Assets").len(), ASSETS, "each asset exactly once");
    assert_eq!(emu.state.entities(1, "DataProcessings").len(), PROCESSINGS, "each processing exactly once");
}
