//! The Debezium reader on real brokers, for each record format Debezium's converters write — JSON
//! with the schema envelope and without it (Kafka MockCluster and NATS JetStream) and Confluent
//! Avro serialized by PyPI confluent-kafka's AvroSerializer through the in-repo registry stub
//! (Kafka): first sync from snapshot reads, an undecodable record and a row the mapping rejects
//! dead-lettered with their reasons, incremental create and update, a delete whose `before` holds
//! only the primary key (followed by its Kafka tombstone), an older copy of an update that must not
//! win, and a restart with a replaced mapping that resumes from the committed offsets (nothing lost,
//! nothing read twice); and Avro records that wait, undead-lettered, for a registry that is down.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../core/tests/py/support.rs"]
mod support;

mod cdc;

use dastra_connect_test_harness as common;

use std::time::Duration;

use cdc::*;
use common::*;

use dastra_connect_core::codec::RegistryConfig;
use dastra_connect_core::codec::registry::stub::StubRegistry;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{EntityKind, Op, Payload, is_newer};
use dastra_connect_debezium::{DebeziumSource, ReaderConfig, ReaderKind};
use serde_json::{Value, json};

const TOPIC: &str = "erp.public.suppliers";
const WAIT: Duration = Duration::from_secs(60);

/// The record formats of Debezium's converters.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    /// `JsonConverter` with `schemas.enable=true`.
    JsonEnvelope,
    /// `JsonConverter` with `schemas.enable=false`.
    Json,
    /// `AvroConverter` (Confluent wire format).
    Avro,
}

fn connect_row_schema(name: &str, field: &str) -> Value {
    json!({"type": "struct", "optional": true, "name": name, "field": field, "fields": [
        {"type": "int32", "optional": false, "field": "id"},
        {"type": "string", "optional": true, "field": "name"},
        {"type": "string", "optional": true, "field": "country"},
        {"type": "string", "optional": true, "field": "email"}]})
}

/// The Kafka Connect JSON schema of the envelope (what `schemas.enable=true` writes beside it).
fn connect_envelope_schema() -> Value {
    json!({"type": "struct", "optional": false, "name": "erp.public.suppliers.Envelope", "version": 1, "fields": [
        connect_row_schema("erp.public.suppliers.Value", "before"),
        connect_row_schema("erp.public.suppliers.Value", "after"),
        {"type": "struct", "optional": false, "name": "io.debezium.connector.postgresql.Source", "field": "source", "fields": [
            {"type": "string", "optional": false, "field": "version"},
            {"type": "string", "optional": false, "field": "connector"},
            {"type": "string", "optional": false, "field": "name"},
            {"type": "int64", "optional": false, "field": "ts_ms"},
            {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "field": "snapshot"},
            {"type": "string", "optional": false, "field": "db"},
            {"type": "string", "optional": false, "field": "schema"},
            {"type": "string", "optional": false, "field": "table"},
            {"type": "int64", "optional": true, "field": "txId"},
            {"type": "int64", "optional": true, "field": "lsn"},
            {"type": "int64", "optional": true, "field": "xmin"}]},
        {"type": "string", "optional": false, "field": "op"},
        {"type": "int64", "optional": true, "field": "ts_ms"},
        {"type": "struct", "optional": true, "name": "event.block", "field": "transaction", "fields": [
            {"type": "string", "optional": false, "field": "id"},
            {"type": "int64", "optional": false, "field": "total_order"},
            {"type": "int64", "optional": false, "field": "data_collection_order"}]}]})
}

/// The Avro schemas Debezium's AvroConverter registers for the table (key, value).
fn avro_schemas() -> (Value, Value) {
    let opt = |name: &str| json!({"name": name, "type": ["null", "string"], "default": null});
    let key = json!({"type": "record", "name": "Key", "namespace": TOPIC,
                     "fields": [{"name": "id", "type": "int"}], "connect.name": "erp.public.suppliers.Key"});
    let value_row = json!({"type": "record", "name": "Value", "fields": [
        {"name": "id", "type": "int"}, opt("name"), opt("country"), opt("email")],
        "connect.name": "erp.public.suppliers.Value"});
    let source = json!({"type": "record", "name": "Source", "namespace": "io.debezium.connector.postgresql", "fields": [
        {"name": "version", "type": "string"}, {"name": "connector", "type": "string"},
        {"name": "name", "type": "string"}, {"name": "ts_ms", "type": "long"},
        {"name": "snapshot", "type": [{"type": "string", "connect.version": 1,
            "connect.parameters": {"allowed": "true,last,false,incremental"}, "connect.default": "false",
            "connect.name": "io.debezium.data.Enum"}, "null"], "default": "false"},
        {"name": "db", "type": "string"}, {"name": "schema", "type": "string"}, {"name": "table", "type": "string"},
        {"name": "txId", "type": ["null", "long"], "default": null},
        {"name": "lsn", "type": ["null", "long"], "default": null},
        {"name": "xmin", "type": ["null", "long"], "default": null}]});
    let value = json!({"type": "record", "name": "Envelope", "namespace": TOPIC, "fields": [
        {"name": "before", "type": ["null", value_row], "default": null},
        {"name": "after", "type": ["null", "Value"], "default": null},
        {"name": "source", "type": source},
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": ["null", "long"], "default": null},
        {"name": "transaction", "type": ["null", {"type": "record", "name": "block", "namespace": "event", "fields": [
            {"name": "id", "type": "string"}, {"name": "total_order", "type": "long"},
            {"name": "data_collection_order", "type": "long"}]}], "default": null}],
        "connect.name": "erp.public.suppliers.Envelope"});
    (key, value)
}

/// Encodes (key, value) pairs in `format`; Avro through Python's AvroSerializer and `registry`.
fn encode(format: Format, items: &[(Value, Value)], registry: Option<&str>) -> Vec<(Vec<u8>, Vec<u8>)> {
    match format {
        Format::Json => {
            items.iter().map(|(k, v)| (serde_json::to_vec(k).unwrap(), serde_json::to_vec(v).unwrap())).collect()
        }
        Format::JsonEnvelope => {
            let key_schema = json!({"type": "struct", "optional": false, "name": "erp.public.suppliers.Key",
                                    "fields": [{"type": "int32", "optional": false, "field": "id"}]});
            items
                .iter()
                .map(|(k, v)| {
                    let k = json!({"schema": key_schema, "payload": k});
                    let v = json!({"schema": connect_envelope_schema(), "payload": v});
                    (serde_json::to_vec(&k).unwrap(), serde_json::to_vec(&v).unwrap())
                })
                .collect()
        }
        Format::Avro => {
            let (key_schema, value_schema) = avro_schemas();
            let req = json!({"topic": TOPIC, "key_schema": key_schema, "value_schema": value_schema,
                             "items": items.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>()});
            let reply = support::run("debezium_avro.py", &[registry.unwrap()], &req);
            reply["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        hex::decode(m["key"].as_str().unwrap()).unwrap(),
                        hex::decode(m["value"].as_str().unwrap()).unwrap(),
                    )
                })
                .collect()
        }
    }
}

/// The reader's config for the suppliers table with `mapping`.
fn config(mapping: &str, registry: Option<&url::Url>) -> ReaderConfig {
    let mut c: ReaderConfig = serde_json::from_value(json!({
        "topics": [{"topic": TOPIC, "mapping": mapping, "params": {"tags": ["erp"]}}],
        "key_system": "erp",
        "consumer": {"linger": "50ms", "batch_size": 100}
    }))
    .unwrap();
    c.registry = registry.map(|u| RegistryConfig::new(u.clone()));
    c.validate("test", ReaderKind::Debezium).unwrap();
    c
}

async fn scenario(broker: Broker, format: Format) {
    let topics = Topics::default();
    let bus = bus_with_inputs(&broker, &topics, &[TOPIC]).await;
    let stub = StubRegistry::new();
    let (registry, _server) = stub.spawn().await.unwrap();
    let key = |id: i64| json!({"id": id});
    let items = vec![
        (key(1), event("suppliers", "r", None, Some(row(1, Some("Acme"), Some("FR"))), 100)),
        (key(2), event("suppliers", "r", None, Some(row(2, Some("Globex"), Some("DE"))), 100)),
        (key(3), event("suppliers", "r", None, Some(row(3, Some("Initech"), Some("FR"))), 100)),
        (key(5), event("suppliers", "r", None, Some(row(5, Some("Nowhere Ltd"), None)), 100)),
        (
            key(2),
            event(
                "suppliers",
                "u",
                Some(row(2, Some("Globex"), Some("DE"))),
                Some(row(2, Some("Globex Europe"), Some("DE"))),
                200,
            ),
        ),
        (key(4), event("suppliers", "c", None, Some(row(4, Some("Umbrella"), Some("FR"))), 210)),
        // REPLICA IDENTITY DEFAULT: the old row holds only the primary key.
        (key(3), event("suppliers", "d", Some(row(3, None, None)), None, 300)),
        // An older copy of the update of supplier 2 (LSN 150 < 200), read after the newer one.
        (
            key(2),
            event(
                "suppliers",
                "u",
                Some(row(2, Some("Globex"), Some("DE"))),
                Some(row(2, Some("Globex stale"), Some("DE"))),
                150,
            ),
        ),
        (
            key(1),
            event(
                "suppliers",
                "u",
                Some(row(1, Some("Acme"), Some("FR"))),
                Some(row(1, Some("Acme Group"), Some("FR"))),
                400,
            ),
        ),
    ];
    let registry_text = registry.to_string();
    let encoded = tokio::task::spawn_blocking(move || encode(format, &items, Some(&registry_text))).await.unwrap();
    let rec = |i: usize| (encoded[i].0.clone(), Some(encoded[i].1.clone()));
    let mapping = include_str!("../samples/suppliers-actors.jq");
    let cfg = config(mapping, (format == Format::Avro).then_some(&registry));
    let reader = Reader::start(&bus, &topics).await;

    // 1. First sync: the snapshot reads, a record no converter wrote, a row the mapping rejects.
    let mut first: Vec<_> = (0..4).map(rec).collect();
    first.insert(2, (encoded[2].0.clone(), Some(b"\x01not a change event".to_vec())));
    produce(&bus, TOPIC, first).await;
    let source = RunningSource::start(&bus, &topics, Box::new(DebeziumSource::new(cfg.clone())));
    reader
        .wait_until("the snapshot", WAIT, |r| {
            count(&r.latest(), EntityKind::Actor, Op::Upsert) == 3 && r.dlq().len() == 2
        })
        .await;
    let l = reader.latest();
    let Payload::Actor(acme) = &l["erp:actor:1"].data else { panic!() };
    assert!(acme.snapshot, "a snapshot read is marked as such");
    assert_eq!(acme.tags, vec!["erp".to_owned()]);
    assert_eq!(acme.country_code.as_deref(), Some("FR"));
    assert_eq!(acme.email.as_deref(), Some("dpo@acme.example"));
    let mut reasons: Vec<String> = reader.dlq().iter().map(|d| d.header("dastra_dlq_reason").unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons, ["mapping_error", "undecodable"]);
    let rejected =
        reader.dlq().into_iter().find(|d| d.header("dastra_dlq_reason").as_deref() == Some("mapping_error")).unwrap();
    assert_eq!(rejected.header("dastra_dlq_source_record").as_deref(), Some(r#"{"id":5}"#));
    assert_eq!(rejected.header("dastra_dlq_source_stream").as_deref(), Some(TOPIC));
    assert!(rejected.header("dastra_dlq_error").unwrap().contains("supplier 5 has no country"));
    assert_eq!(serde_json::from_slice::<Value>(&rejected.value).unwrap()["op"], "r", "the decoded event is kept");

    // 2. Incremental: an update and a create.
    produce(&bus, TOPIC, vec![rec(4), rec(5)]).await;
    reader
        .wait_until("the update and the create", WAIT, |r| {
            let l = r.latest();
            actor_name(&l, "erp", "2").as_deref() == Some("Globex Europe") && actor_name(&l, "erp", "4").is_some()
        })
        .await;
    let Payload::Actor(globex) = &reader.latest()["erp:actor:2"].data else { panic!() };
    assert!(!globex.snapshot);

    // 3. Delete with a key-only `before`, then the tombstone Debezium writes after it.
    produce(&bus, TOPIC, vec![rec(6), (encoded[6].0.clone(), None)]).await;
    reader.wait_until("the delete", WAIT, |r| r.latest().get("erp:actor:3").is_some_and(|e| e.op == Op::Delete)).await;

    // 4. The older copy is published with its own (older) version, so it cannot win.
    produce(&bus, TOPIC, vec![rec(7)]).await;
    let of = |r: &Reader, k: &str| r.events().into_iter().filter(|e| e.key.as_str() == k).collect::<Vec<_>>();
    reader.wait_until("the older copy", WAIT, |r| of(r, "erp:actor:2").len() == 3).await;
    let copies = of(&reader, "erp:actor:2");
    assert!(is_newer(&copies[1].sequence, &copies[2].sequence), "LSN 200 sorts after LSN 150");
    assert_eq!(actor_name(&reader.latest(), "erp", "2").as_deref(), Some("Globex Europe"));
    let deletes = reader.events().into_iter().filter(|e| e.op == Op::Delete).count();
    assert_eq!(deletes, 1, "the tombstone after the delete publishes nothing");
    source.stop().await;

    // 5. Restart with a replaced mapping: only what came while it was down is read.
    produce(&bus, TOPIC, vec![rec(8)]).await;
    let upper = r#"{kind: "actor", id: (.id | tostring), data: {actorType: "Morale", companyName: (.name | ascii_upcase), countryCode: .country}}"#;
    let source = RunningSource::start(
        &bus,
        &topics,
        Box::new(DebeziumSource::new(config(upper, (format == Format::Avro).then_some(&registry)))),
    );
    reader
        .wait_until("the update made while stopped", WAIT, |r| {
            actor_name(&r.latest(), "erp", "1").as_deref() == Some("ACME GROUP")
        })
        .await;
    source.stop().await;
    assert_eq!(of(&reader, "erp:actor:1").len(), 2, "snapshot read and the update, nothing re-read");
    assert_eq!(of(&reader, "erp:actor:4").len(), 1);
    assert_eq!(reader.dlq().len(), 2);
    if format == Format::Avro {
        assert_eq!(stub.schema_count(), 2, "key and envelope schemas, registered by the Python serializer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_with_schema_envelope_on_nats() {
    scenario(Broker::nats().await, Format::JsonEnvelope).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_with_schema_envelope_on_kafka() {
    scenario(Broker::kafka(), Format::JsonEnvelope).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_without_schema_on_nats() {
    scenario(Broker::nats().await, Format::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_without_schema_on_kafka() {
    scenario(Broker::kafka(), Format::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_through_the_registry_on_kafka() {
    scenario(Broker::kafka(), Format::Avro).await;
}

/// A schema registry that is down when the reader starts: its Avro records wait (nothing
/// published, nothing dead-lettered, the batch retried) and go through once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_records_wait_for_a_registry_that_is_down() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let bus = bus_with_inputs(&broker, &topics, &[TOPIC]).await;
    let stub = StubRegistry::new();
    let (registry, server) = stub.spawn().await.unwrap();
    let items = vec![
        (json!({"id": 1}), event("suppliers", "r", None, Some(row(1, Some("Acme"), Some("FR"))), 100)),
        (json!({"id": 2}), event("suppliers", "r", None, Some(row(2, Some("Globex"), Some("DE"))), 100)),
    ];
    let url = registry.to_string();
    let encoded = tokio::task::spawn_blocking(move || encode(Format::Avro, &items, Some(&url))).await.unwrap();
    // The schemas are registered; now the registry goes away.
    server.abort();
    let _ = server.await;
    produce(&bus, TOPIC, encoded.into_iter().map(|(k, v)| (k, Some(v))).collect()).await;
    let reader = Reader::start(&bus, &topics).await;
    let mapping = include_str!("../samples/suppliers-actors.jq");
    let source = RunningSource::start(&bus, &topics, Box::new(DebeziumSource::new(config(mapping, Some(&registry)))));
    let retried = |s: &RunningSource| s.metric("dastra_connect_poll_errors_total").unwrap_or(0.0);
    let deadline = tokio::time::Instant::now() + WAIT;
    while retried(&source) < 2.0 {
        assert!(tokio::time::Instant::now() < deadline, "the batch was not retried");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reader.events().is_empty() && reader.dlq().is_empty(), "nothing published while the registry is down");

    // The registry comes back at the same address.
    let addr = format!("{}:{}", registry.host_str().unwrap(), registry.port().unwrap());
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    let app = stub.router();
    let back = tokio::spawn(async move { axum::serve(listener, app).await });
    reader.wait_until("the records", WAIT, |r| count(&r.latest(), EntityKind::Actor, Op::Upsert) == 2).await;
    assert!(reader.dlq().is_empty(), "a registry outage dead-letters nothing");
    source.stop().await;
    back.abort();
}
