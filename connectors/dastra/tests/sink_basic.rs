//! The sink end to end on both buses: Assets and Actors created, updated with only the changed fields,
//! deleted; the same stream delivered again, a restart, and a replay from offset 0 (a new consumer
//! group on the same ledger) cost zero Dastra requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::{ActorType, AssetType, VendorType};
use dastra_connect_core::event::{Actor, Asset, Payload};

fn asset(label: &str, city: Option<&str>) -> Payload {
    Payload::Asset(Asset {
        label: Some(label.into()),
        asset_type: Some(AssetType::Software),
        city: city.map(str::to_owned),
        ..Default::default()
    })
}

fn vendor(name: &str, country: &str) -> Payload {
    Payload::Actor(Actor {
        dpa_signature_date: chrono::DateTime::from_timestamp_millis(1_676_332_800_000),
        actor_type: Some(ActorType::Morale),
        vendor_type: Some(VendorType::B2B),
        company_name: Some(name.into()),
        country_code: Some(country.into()),
        ..Default::default()
    })
}

async fn scenario(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();

    let stream = vec![
        event("cmdb:asset:crm", 1, asset("CRM", Some("Lyon"))),
        event("cmdb:asset:erp", 1, asset("ERP", None)),
        event("cmdb:asset:crm", 2, asset("CRM", Some("Paris"))),
        event("cmdb:asset:old", 1, asset("Legacy", None)),
        event("vm:actor:acme", 1, vendor("ACME", "FR")),
        event("cmdb:asset:old", 2, Payload::Asset(Asset { deleted: true, ..Default::default() })),
        event("vm:actor:acme", 2, vendor("ACME", "DE")),
    ];
    publish(publisher.as_ref(), &topics, &stream).await;

    let sink = RunningSink::start("sink", &bus, &topics, sink_config(&emu));
    sink.wait_idle(Duration::from_secs(90)).await;

    let assets = emu.state.entities(1, "Assets");
    let mut labels: Vec<(String, Option<String>)> = assets
        .iter()
        .map(|a| (a["label"].as_str().unwrap().to_owned(), a["city"].as_str().map(str::to_owned)))
        .collect();
    labels.sort();
    assert_eq!(labels, vec![("CRM".into(), Some("Paris".into())), ("ERP".into(), None)], "{assets:?}");
    let crm = assets.iter().find(|a| a["label"] == "CRM").unwrap();
    assert_eq!(crm["ref"], "cmdb:asset:crm");
    assert_eq!(crm["type"], "Software");
    let actors = emu.state.entities(1, "Actors");
    let acme: Vec<_> = actors.iter().filter(|a| a["companyName"] == "ACME").collect();
    assert_eq!(acme.len(), 1, "{actors:?}");
    assert_eq!(acme[0]["countryCode"], "DE");
    assert_eq!(acme[0]["dpaSignatureDate"], "2023-02-14T00:00:00.000Z", "instants are sent as ISO 8601");

    // Read as one backlog, each key's versions were coalesced before its first request (the
    // sink reads ahead before it starts keys): one POST per live entity, nothing for the asset
    // created and deleted within the backlog.
    let log = emu.state.request_log();
    let mut writes: Vec<_> =
        log.iter().filter(|r| r.method != "GET").map(|r| (r.method.as_str(), r.route.as_str())).collect();
    writes.sort();
    let posts = [
        ("POST", "/v1/ws/{workspaceId}/Actors"),
        ("POST", "/v1/ws/{workspaceId}/Assets"),
        ("POST", "/v1/ws/{workspaceId}/Assets"),
    ];
    assert_eq!(writes, posts, "{log:#?}");

    // A later update sends only the changed field.
    let update = event("cmdb:asset:crm", 3, asset("CRM", Some("Marseille")));
    publish(publisher.as_ref(), &topics, std::slice::from_ref(&update)).await;
    sink.wait_consumed("sink", stream.len() as u64 + 1, Duration::from_secs(60)).await;
    sink.wait_idle(Duration::from_secs(60)).await;
    let log = emu.state.request_log();
    let patches: Vec<_> = log.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 1, "{log:#?}");
    let paths: Vec<&str> = patches[0]
        .body
        .as_ref()
        .and_then(|b| b.as_array())
        .unwrap()
        .iter()
        .filter_map(|op| op["path"].as_str())
        .collect();
    assert_eq!(paths, ["/city"]);

    // The same stream again: stale versions, no request at all.
    let before = requests(&emu);
    publish(publisher.as_ref(), &topics, &stream).await;
    sink.wait_consumed("sink", 2 * stream.len() as u64 + 1, Duration::from_secs(60)).await;
    assert_eq!(requests(&emu), before, "duplicate delivery must cost nothing");
    sink.stop().await;

    // A restart (new process, same ledger on the bus) replays nothing either.
    let sink = RunningSink::start("sink", &bus, &topics, sink_config(&emu));
    publish(publisher.as_ref(), &topics, &stream[..2]).await;
    // A new process reads from the committed offsets: only the two new records.
    sink.wait_consumed("sink", 2, Duration::from_secs(60)).await;
    assert_eq!(requests(&emu), before, "after a restart the ledger still knows everything");
    sink.stop().await;

    // A replay from offset 0 (a new consumer group, the same ledger): every event again, no request.
    let mut replay_bus = bus.clone();
    match &mut replay_bus {
        BusConfig::Kafka(k) => k.group_id = Some("replay-from-zero".into()),
        BusConfig::Nats(n) => n.group_id = Some("replay-from-zero".into()),
    }
    let sink = RunningSink::start("sink", &replay_bus, &topics, sink_config(&emu));
    sink.wait_consumed("sink", (2 * stream.len() + 3) as u64, Duration::from_secs(90)).await;
    assert_eq!(requests(&emu), before, "a replay from offset 0 costs nothing");
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_sync_on_nats() {
    scenario(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_sync_on_kafka() {
    scenario(Broker::kafka()).await;
}
