//! Proves interoperability with an independent Avro implementation (Python fastavro): for every
//! payload type (upserts and deletes) fastavro verifies our single-object header (fingerprint it
//! computes itself), decodes our single-object and raw datums to exactly the expected content, and
//! its own encodings — unchanged and with a field changed — decode in Rust. The structured
//! envelope (parsed in Rust with `Schema::parse_list`) is checked the same way.

#[path = "py/support.rs"]
mod support;

use dastra_connect_core::codec::schemas::{ENVELOPE_SCHEMA_SOURCE, payload_schema_source, schemas};
use dastra_connect_core::codec::{
    Codec, decode_datum, decode_structured, encode_datum, encode_single_object, encode_structured,
};
use dastra_connect_core::event::samples::{sample_event, sample_payloads};
use dastra_connect_core::event::{EntityKind, Payload};
use serde_json::{Value, json};

fn hex_bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

#[tokio::test]
async fn fastavro_reads_ours_and_we_read_fastavro() {
    let payloads: Vec<Payload> =
        sample_payloads().into_iter().chain(EntityKind::ALL.iter().map(|k| Payload::tombstone(*k, true))).collect();
    let schemas_json: serde_json::Map<String, Value> = EntityKind::ALL
        .iter()
        .map(|k| (k.as_str().to_owned(), Value::String(payload_schema_source(*k).to_owned())))
        .collect();
    let items: Vec<Value> = payloads
        .iter()
        .map(|p| {
            json!({
                "kind": p.kind().as_str(),
                "raw": hex::encode(encode_datum(p).expect("datum")),
                "single_object": hex::encode(encode_single_object(p).expect("so")),
                "expected": p.to_json_value().expect("json"),
            })
        })
        .collect();
    let events: Vec<Value> = EntityKind::ALL
        .iter()
        .map(|k| json!({"kind": k.as_str(), "structured": hex::encode(encode_structured(&sample_event(*k)).expect("env"))}))
        .collect();
    let request =
        json!({"schemas": schemas_json, "envelope": ENVELOPE_SCHEMA_SOURCE, "items": items, "events": events});
    let reply =
        tokio::task::spawn_blocking(move || support::run("fastavro_check.py", &[], &request)).await.expect("join");

    let out_items = reply["items"].as_array().expect("items");
    assert_eq!(out_items.len(), payloads.len());
    let codec = Codec::single_object();
    for (p, out) in payloads.iter().zip(out_items) {
        let kind = p.kind();
        assert_eq!(out["decoded"], p.to_json_value().expect("json"), "{kind}");
        // fastavro's raw re-encoding and its single-object message decode to the same payload.
        let writer = &schemas().expect("s").payload(kind).schema;
        assert_eq!(&decode_datum(kind, writer, &hex_bytes(&out["reencoded"])).expect("raw"), p, "{kind}");
        assert_eq!(&codec.decode(kind, &hex_bytes(&out["single_object"])).await.expect("so"), p, "{kind}");
        // A record fastavro changed: exactly that field differs.
        let mutated = codec.decode(kind, &hex_bytes(&out["mutated"])).await.expect("mutated");
        let field = out["mutated_field"].as_str().expect("field");
        let mut expected = p.to_json_value().expect("json");
        expected[field] = Value::String("written by fastavro ✓".into());
        assert_eq!(mutated.to_json_value().expect("json"), expected, "{kind}");
    }

    let out_events = reply["events"].as_array().expect("events");
    for (kind, out) in EntityKind::ALL.iter().zip(out_events) {
        let event = sample_event(*kind);
        assert_eq!(out["id"], event.id.as_str());
        assert_eq!(out["type"], event.event_type().as_str());
        assert_eq!(out["subject"], event.key.as_str());
        assert_eq!(out["sequence"], event.sequence.as_str());
        assert_eq!(out["time"], event.time.timestamp_micros());
        assert_eq!(out["recordedtime"], event.recorded_time.timestamp_micros());
        assert_eq!(out["traceparent"], event.traceparent.as_deref().expect("tp"));
        assert_eq!(out["data"], event.data.to_json_value().expect("json"));
        assert_eq!(decode_structured(&hex_bytes(&out["reencoded"])).expect("fastavro envelope"), event);
    }
}
