//! Proves wire compatibility with Confluent's official client (PyPI confluent-kafka 2.16
//! `SchemaRegistryClient` + `AvroSerializer` / `AvroDeserializer`), both pointed at our registry
//! stub served on a free port: every payload type serialized in Python decodes in Rust, and every
//! message our Confluent codec produces decodes in Python — one Python run per direction.

#[path = "py/support.rs"]
mod support;

use std::sync::Arc;

use dastra_connect_core::codec::registry::stub::StubRegistry;
use dastra_connect_core::codec::schemas::payload_schema_source;
use dastra_connect_core::codec::{Codec, RegistryConfig, SchemaRegistryClient, unframe_confluent};
use dastra_connect_core::event::samples::sample_payloads;
use dastra_connect_core::event::{EntityKind, Payload};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_and_ours_read_each_other() {
    let stub = StubRegistry::new();
    let (url, server) = stub.spawn().await.expect("stub");
    let codec = Codec::confluent(Arc::new(SchemaRegistryClient::new(RegistryConfig::new(url.clone())).expect("c")));
    let payloads: Vec<Payload> =
        sample_payloads().into_iter().chain(EntityKind::ALL.iter().map(|k| Payload::tombstone(*k, false))).collect();

    // Python first (so the registry learns the schemas from the official client), Rust decodes.
    let items: Vec<Value> = payloads
        .iter()
        .map(|p| {
            json!({
                "topic": p.kind().default_topic(),
                "schema": payload_schema_source(p.kind()),
                "record": p.to_json_value().expect("json"),
            })
        })
        .collect();
    let url_text = url.to_string();
    let reply = tokio::task::spawn_blocking(move || {
        support::run("confluent_check.py", &["serialize", &url_text], &json!({ "items": items }))
    })
    .await
    .expect("join");
    let messages = reply["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), payloads.len());
    let mut python_ids = Vec::new();
    for (p, m) in payloads.iter().zip(messages) {
        let bytes = hex::decode(m.as_str().expect("hex")).expect("hex");
        python_ids.push(unframe_confluent(&bytes).expect("framed").0);
        assert_eq!(&codec.decode(p.kind(), &bytes).await.expect("rust decodes python"), p, "{}", p.kind());
    }
    let kinds: std::collections::BTreeSet<_> = payloads.iter().map(|p| p.kind()).collect();
    assert_eq!(stub.schema_count(), kinds.len(), "one schema per payload type");

    // Rust encodes (finding the ids Python registered), Python decodes.
    let mut items = Vec::new();
    for (p, python_id) in payloads.iter().zip(&python_ids) {
        let topic = p.kind().default_topic();
        let bytes = codec.encode(&topic, p).await.expect("encode");
        assert_eq!(unframe_confluent(&bytes).expect("framed").0, *python_id, "same subject+schema, same id");
        items.push(json!({"topic": topic, "message": hex::encode(bytes)}));
    }
    let url_text = url.to_string();
    let reply = tokio::task::spawn_blocking(move || {
        support::run("confluent_check.py", &["deserialize", &url_text], &json!({ "items": items }))
    })
    .await
    .expect("join");
    let records = reply["records"].as_array().expect("records");
    for (p, r) in payloads.iter().zip(records) {
        assert_eq!(r, &p.to_json_value().expect("json"), "python decodes rust {}", p.kind());
    }
    server.abort();
}
