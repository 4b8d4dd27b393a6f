//! Two sink replicas share the partitions (NATS: `replicas: 2`, indexes 0 and 1; Kafka: one consumer
//! group) while contracts and processings wait in the shared pending store for suppliers and assets
//! that arrive later: each waiting event is released only by the replica that owns its partition,
//! so every entity exists exactly once and at its newest version. (Both replicas used to release
//! every resolved entry of the shared store: the same contract was created twice.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::{ActorType, AssetType, ProcessingType, VendorType};
use dastra_connect_core::event::{Actor, Asset, ChangeEvent, Contract, DataProcessing, EntityKey, Payload};

const N: usize = 24;

fn k(text: &str) -> EntityKey {
    EntityKey::parse(text).unwrap()
}

fn waiting(version: u64) -> Vec<ChangeEvent> {
    let mut out = Vec::new();
    for i in 0..N {
        out.push(event(
            &format!("vm:contract:c{i}"),
            version,
            Payload::Contract(Contract {
                label: Some(format!("Contract {i}")),
                description: Some(format!("v{version}")),
                supplier: Some(k(&format!("vm:actor:s{i}"))),
                ..Default::default()
            }),
        ));
        out.push(event(
            &format!("grc:processing:p{i}"),
            version,
            Payload::DataProcessing(DataProcessing {
                label: Some(format!("Processing {i}")),
                description: Some(format!("v{version}")),
                processing_type: Some(ProcessingType::Default),
                assets: vec![k(&format!("cmdb:asset:a{i}"))],
                ..Default::default()
            }),
        ));
    }
    out
}

fn references() -> Vec<ChangeEvent> {
    let mut out = Vec::new();
    for i in 0..N {
        out.push(event(
            &format!("vm:actor:s{i}"),
            1,
            Payload::Actor(Actor {
                actor_type: Some(ActorType::Morale),
                vendor_type: Some(VendorType::B2B),
                company_name: Some(format!("Supplier {i}")),
                country_code: Some("FR".into()),
                ..Default::default()
            }),
        ));
        out.push(event(
            &format!("cmdb:asset:a{i}"),
            1,
            Payload::Asset(Asset {
                label: Some(format!("Asset {i}")),
                asset_type: Some(AssetType::Software),
                ..Default::default()
            }),
        ));
    }
    out
}

async fn scenario(bus_a: BusConfig, bus_b: BusConfig, topics: Topics, partitions: usize) {
    ensure(&bus_a, &topics).await;
    let emu = emulator().await;
    let publisher = bus_a.publisher().await.unwrap();
    let a = RunningSink::start("sink", &bus_a, &topics, sink_config(&emu));
    let b = RunningSink::start("sink", &bus_b, &topics, sink_config(&emu));
    // The group settled: every partition of every change topic owned by exactly one of the two.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let owned = |s: &RunningSink| -> Vec<String> {
            let st = s.admin.status_json();
            st.as_object()
                .and_then(|o| o.values().find_map(|v| v.get("sink")))
                .and_then(|k| k["partitions"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        };
        let (pa, pb) = (owned(&a), owned(&b));
        let all: std::collections::BTreeSet<&String> = pa.iter().chain(pb.iter()).collect();
        if !pa.is_empty() && !pb.is_empty() && all.len() == pa.len() + pb.len() && all.len() == partitions {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the two replicas never split the partitions: {pa:?} {pb:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Everything waits: two versions of each, then the references.
    publish(publisher.as_ref(), &topics, &waiting(1)).await;
    publish(publisher.as_ref(), &topics, &waiting(2)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    publish(publisher.as_ref(), &topics, &references()).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (contracts, processings) =
            (descriptions_by_ref(&emu, "Contracts"), descriptions_by_ref(&emu, "DataProcessings"));
        let done = |m: &BTreeMap<String, String>| m.len() == N && m.values().all(|d| d == "v2");
        if done(&contracts) && done(&processings) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never converged: {} contracts, {} processings\nreplica a: {}\nreplica b: {}",
            contracts.len(),
            processings.len(),
            a.admin.status_json(),
            b.admin.status_json()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.wait_idle(Duration::from_secs(60)).await;
    b.wait_idle(Duration::from_secs(60)).await;
    // Still exactly once after both settled (a late second release would show now).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for family in ["Contracts", "DataProcessings", "Assets", "Actors"] {
        assert_eq!(emu.state.entities(1, family).len(), N, "{family}: each exactly once");
    }
    assert_eq!(
        descriptions_by_ref(&emu, "Contracts").len() + descriptions_by_ref(&emu, "DataProcessings").len(),
        2 * N
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_release_each_waiting_event_once_on_nats() {
    let nats = dastra_connect_core::testkit::NatsServer::start().await;
    let (a, b) = nats_replica_pair(&nats);
    let partitions = nats.nats_config().partitions as usize * dastra_connect_core::event::EntityKind::ALL.len();
    scenario(a, b, Topics::default(), partitions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_release_each_waiting_event_once_on_kafka() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    let partitions = broker.change_partitions() as usize * dastra_connect_core::event::EntityKind::ALL.len();
    scenario(bus.clone(), bus, topics, partitions).await;
}
