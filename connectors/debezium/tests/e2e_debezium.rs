//! End to end on NATS, on the Kafka MockCluster and on tansu (a Kafka-protocol broker process): Debezium change events of two tables (an ERP
//! `suppliers` table → Actors, an inventory `servers` table → Assets) read by the Debezium reader,
//! applied by the real Dastra sink to the emulator: snapshot rows become one Actor or Asset each,
//! an update lands, an older copy of that update read after it is never applied, and a delete
//! removes the entity.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cdc;

use dastra_connect_test_harness as common;

use std::time::Duration;

use cdc::*;
use common::*;
use dastra_connect_core::bus::{BusConfig, TopicSpec};
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::EntityKind;
use dastra_connect_core::testkit::Tansu;
use dastra_connect_debezium::{DebeziumSource, ReaderConfig, ReaderKind};
use serde_json::{Value, json};

const SUPPLIERS: &str = "erp.public.suppliers";
const SERVERS: &str = "erp.public.servers";
const WAIT: Duration = Duration::from_secs(90);

fn server(id: i64, hostname: &str) -> Value {
    json!({"id": id, "hostname": hostname, "datacenter": "Paris-2"})
}

/// (key, value) as `JsonConverter` without schemas writes them; `None` value: a tombstone.
fn rec(id: i64, value: Option<Value>) -> (Vec<u8>, Option<Vec<u8>>) {
    (serde_json::to_vec(&json!({"id": id})).unwrap(), value.map(|v| serde_json::to_vec(&v).unwrap()))
}

fn sent_anywhere(emu: &dastra_emulator::RunningEmulator, text: &str) -> bool {
    emu.state.request_log().iter().any(|r| r.body.as_ref().is_some_and(|b| b.to_string().contains(text)))
}

async fn end_to_end(broker: Broker) {
    let topics = Topics::default();
    let bus = bus_with_inputs(&broker, &topics, &[SUPPLIERS, SERVERS]).await;
    run(&bus, &topics).await;
}

async fn run(bus: &BusConfig, topics: &Topics) {
    let (bus, topics) = (bus.clone(), topics.clone());
    let emu = emulator().await;
    let sink = RunningSink::start(&bus, &topics, sink_config(&emu));
    let cfg: ReaderConfig = serde_json::from_value(json!({
        "key_system": "erp",
        "consumer": {"linger": "50ms"},
        "topics": [
            {"topic": SUPPLIERS, "mapping": include_str!("../samples/suppliers-actors.jq")},
            {"topic": SERVERS, "mapping": include_str!("../samples/servers-assets.jq")}
        ]
    }))
    .unwrap();
    cfg.validate("test", ReaderKind::Debezium).unwrap();
    let source = RunningSource::start(&bus, &topics, Box::new(DebeziumSource::new(cfg)));

    let supplier = |op: &str, id: i64, name: &str, lsn: i64| {
        rec(id, Some(event("suppliers", op, None, Some(row(id, Some(name), Some("FR"))), lsn)))
    };
    produce(&bus, SUPPLIERS, vec![supplier("r", 1, "Acme", 100), supplier("r", 2, "Globex", 100)]).await;
    let servers = vec![
        rec(1, Some(event("servers", "r", None, Some(server(1, "srv-db-01")), 100))),
        rec(2, Some(event("servers", "r", None, Some(server(2, "srv-web-01")), 100))),
    ];
    produce(&bus, SERVERS, servers).await;
    wait_emulator(&emu, "the snapshot", WAIT, |e| {
        labels(e, "Actors", "companyName") == ["Acme", "Globex"]
            && labels(e, "Assets", "label") == ["srv-db-01", "srv-web-01"]
    })
    .await;

    produce(&bus, SUPPLIERS, vec![supplier("u", 2, "Globex Europe", 200)]).await;
    wait_emulator(&emu, "the update", WAIT, |e| labels(e, "Actors", "companyName") == ["Acme", "Globex Europe"]).await;
    // The older copy (LSN 150) comes after the applied update; a later update of the same key is
    // applied after it in offset order, so once that one is in, the copy has been handled.
    produce(&bus, SUPPLIERS, vec![supplier("u", 2, "Globex stale", 150)]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    produce(&bus, SUPPLIERS, vec![supplier("u", 2, "Globex Final", 500)]).await;
    wait_emulator(&emu, "the last update", WAIT, |e| labels(e, "Actors", "companyName") == ["Acme", "Globex Final"])
        .await;
    assert!(!sent_anywhere(&emu, "Globex stale"), "the older copy was never sent to Dastra");

    // Deletes (the old row logged in full for suppliers, key only for servers), then tombstones.
    let gone = |table: &str, id: i64, before: Value| rec(id, Some(event(table, "d", Some(before), None, 600)));
    produce(&bus, SUPPLIERS, vec![gone("suppliers", 1, row(1, Some("Acme"), Some("FR"))), rec(1, None)]).await;
    produce(
        &bus,
        SERVERS,
        vec![gone("servers", 1, json!({"id": 1, "hostname": null, "datacenter": null})), rec(1, None)],
    )
    .await;
    wait_emulator(&emu, "the deletes", WAIT, |e| {
        labels(e, "Actors", "companyName") == ["Globex Final"] && labels(e, "Assets", "label") == ["srv-web-01"]
    })
    .await;
    source.stop().await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppliers_and_servers_into_dastra_on_nats() {
    end_to_end(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppliers_and_servers_into_dastra_on_kafka() {
    end_to_end(Broker::kafka()).await;
}

/// The same on tansu, a Kafka-protocol broker process (not librdkafka's in-process mock): topics
/// created through the broker's CreateTopics API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppliers_and_servers_into_dastra_on_tansu() {
    let tansu = Tansu::start().await;
    let topics = Topics::default();
    let bus = tansu.bus_config();
    let mut specs: Vec<TopicSpec> = EntityKind::ALL.iter().map(|k| TopicSpec::new(topics.changes(*k))).collect();
    specs.extend([topics.dlq(), SUPPLIERS.into(), SERVERS.into()].map(TopicSpec::new));
    let stores = [format!("source-{SOURCE}"), format!("known-{SOURCE}")]
        .into_iter()
        .chain(["ledger", "pending", "parked"].map(|s| format!("{s}-{SINK}")));
    specs.extend(stores.map(|s| TopicSpec::compacted(topics.state(&s))));
    bus.ensure_topics(&specs).await.unwrap();
    run(&bus, &topics).await;
    drop(tansu);
}
