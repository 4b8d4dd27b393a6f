//! Proves that broken input is a typed error and never a panic (every truncation of every
//! encoding, thousands of deterministic byte corruptions, wrong magic, unknown schemas, wrong
//! kinds, bad headers), and that schema evolution works: a reader whose schema has a new optional
//! field reads data written with the old schema, in single-object and Confluent form.

use std::sync::Arc;

use apache_avro::Schema;
use dastra_connect_core::Classify;
use dastra_connect_core::codec::registry::stub::StubRegistry;
use dastra_connect_core::codec::schemas::{payload_schema_source, schemas};
use dastra_connect_core::codec::{
    Codec, CodecError, RegistryConfig, SchemaRegistryClient, decode_structured, encode_structured, frame_confluent,
};
use dastra_connect_core::event::samples::{sample_event, sample_payloads};
use dastra_connect_core::event::{ChangeEvent, EntityKind, Payload};
use serde_json::Value as Json;

const DECODE_CODES: &[&str] = &[
    "truncated",
    "bad_magic",
    "empty_value",
    "unknown_schema",
    "schema_mismatch",
    "invalid_avro",
    "invalid_json",
    "invalid_key",
    "invalid_enum",
    "invalid_payload",
    "invalid_event",
];

type Headers = Vec<(String, Vec<u8>)>;

fn write(schema: &Schema, value: apache_avro::types::Value) -> Vec<u8> {
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .expect("datum")
}

async fn codec_with_stub(stub: &StubRegistry) -> (Codec, tokio::task::JoinHandle<()>) {
    let (url, h) = stub.spawn().await.expect("stub");
    (Codec::confluent(Arc::new(SchemaRegistryClient::new(RegistryConfig::new(url)).expect("c"))), h)
}

fn check(err: CodecError) -> &'static str {
    let code = err.code();
    assert!(DECODE_CODES.contains(&code), "unexpected code {code}: {err}");
    // Display must be a sentence, not empty.
    assert!(!err.to_string().is_empty());
    code
}

#[tokio::test]
async fn every_truncation_is_a_typed_error() {
    let stub = StubRegistry::new();
    let (confluent, server) = codec_with_stub(&stub).await;
    let mut seen = std::collections::BTreeSet::new();
    for codec in [Codec::single_object(), Codec::json(), confluent.clone()] {
        for p in sample_payloads() {
            let bytes = codec.encode(&p.kind().default_topic(), &p).await.expect("encode");
            for len in 0..bytes.len() {
                match confluent.decode(p.kind(), &bytes[..len]).await {
                    Err(e) => {
                        seen.insert(check(e));
                    }
                    // A prefix can only decode if it is the whole datum, which it is not
                    // (records end with the custom-field map, whose terminator is the last byte).
                    Ok(v) => panic!("{:?} prefix {len}/{} decoded as {v:?}", codec.format(), bytes.len()),
                }
            }
            // Trailing garbage is rejected too.
            let mut longer = bytes.clone();
            longer.push(0);
            if codec.format() != dastra_connect_core::codec::WireFormat::Json {
                assert_eq!(check(confluent.decode(p.kind(), &longer).await.unwrap_err()), "invalid_avro");
            }
        }
    }
    for code in ["truncated", "empty_value", "invalid_json"] {
        assert!(seen.contains(code), "{seen:?}");
    }
    server.abort();
}

#[tokio::test]
async fn corrupted_bytes_never_panic() {
    let stub = StubRegistry::new();
    let (confluent, server) = codec_with_stub(&stub).await;
    // Deterministic xorshift so a failure is reproducible.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ok, mut failed) = (0u32, 0u32);
    for codec in [Codec::single_object(), confluent.clone()] {
        for p in sample_payloads() {
            let bytes = codec.encode(&p.kind().default_topic(), &p).await.expect("encode");
            for _ in 0..300 {
                let mut b = bytes.clone();
                // Corrupt 1-3 bytes of the datum (keep the header so the datum decoder is exercised).
                let header = if codec.format() == dastra_connect_core::codec::WireFormat::Confluent { 5 } else { 10 };
                for _ in 0..(1 + next() % 3) {
                    let i = header + (next() as usize) % (b.len() - header);
                    b[i] = next() as u8;
                }
                match confluent.decode(p.kind(), &b).await {
                    Ok(_) => ok += 1, // a corrupted string byte can still be valid data
                    Err(e) => {
                        check(e);
                        failed += 1;
                    }
                }
            }
        }
    }
    println!("corruptions: {failed} rejected, {ok} still decodable");
    assert!(failed > 0);
    // Huge length prefixes must not allocate or panic: a string length of i64::MAX/2.
    let mut b = vec![0xC3, 0x01];
    b.extend_from_slice(&schemas().expect("s").payload(EntityKind::Asset).fingerprint);
    b.extend_from_slice(&[0, 0, 2, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
    check(Codec::single_object().decode(EntityKind::Asset, &b).await.unwrap_err());
    server.abort();
}

#[tokio::test]
async fn wrong_magic_schema_and_kind_are_reported() {
    let so = Codec::single_object();
    let asset = &sample_payloads()[0];
    let bytes = so.encode("t", asset).await.expect("encode");
    // Decoding an Asset message as an Actor.
    assert_eq!(check(so.decode(EntityKind::Actor, &bytes).await.unwrap_err()), "schema_mismatch");
    // Unknown fingerprint.
    let mut unknown = bytes.clone();
    unknown[2] ^= 0xFF;
    assert_eq!(check(so.decode(EntityKind::Asset, &unknown).await.unwrap_err()), "unknown_schema");
    // Bad magic.
    assert_eq!(check(so.decode(EntityKind::Asset, b"\x07abc").await.unwrap_err()), "bad_magic");
    assert_eq!(check(so.decode(EntityKind::Asset, b"[1,2]").await.unwrap_err()), "bad_magic");
    assert_eq!(check(so.decode(EntityKind::Asset, b"").await.unwrap_err()), "empty_value");
    // Confluent framing without a registry.
    let err = so.decode(EntityKind::Asset, &frame_confluent(1, b"x")).await.unwrap_err();
    assert_eq!(err.code(), "no_registry");
    // Unknown registry id.
    let stub = StubRegistry::new();
    let (confluent, server) = codec_with_stub(&stub).await;
    assert_eq!(
        check(confluent.decode(EntityKind::Asset, &frame_confluent(99, b"x")).await.unwrap_err()),
        "unknown_schema"
    );
    // An Actor schema id used for an Asset topic.
    let actor_msg = confluent.encode("dastra.changes.actor", &sample_payloads()[1]).await.expect("e");
    assert_eq!(check(confluent.decode(EntityKind::Asset, &actor_msg).await.unwrap_err()), "schema_mismatch");
    // JSON: malformed, wrong types, invalid enum symbol, invalid entity key.
    for (text, code) in [
        (&br#"{"label": "#[..], "invalid_json"),
        (br#"{"label": 5}"#, "invalid_json"),
        (br#"{"type": "Spaceship"}"#, "invalid_json"),
        (br#"{"supplier": "not a key"}"#, "invalid_json"),
    ] {
        let kind = if text.starts_with(br#"{"supplier"#) { EntityKind::Contract } else { EntityKind::Asset };
        assert_eq!(check(so.decode(kind, text).await.unwrap_err()), code, "{}", String::from_utf8_lossy(text));
    }
    // Avro: an invalid entity key inside a valid datum.
    let schema = &schemas().expect("s").payload(EntityKind::Contract).schema;
    let Payload::Contract(mut c) = sample_payloads()[2].clone() else { panic!() };
    c.supplier = None;
    let mut datum_value = dastra_connect_core::codec::payload_to_value(&Payload::Contract(c)).expect("v");
    if let apache_avro::types::Value::Record(fields) = &mut datum_value {
        for (name, v) in fields.iter_mut() {
            if name == "supplier" {
                *v = apache_avro::types::Value::Union(
                    1,
                    Box::new(apache_avro::types::Value::String("NOT A KEY".into())),
                );
            }
        }
    }
    let datum = write(schema, datum_value);
    let err = dastra_connect_core::codec::decode_datum(EntityKind::Contract, schema, &datum).unwrap_err();
    assert_eq!(check(err), "invalid_avro");
    server.abort();
}

#[tokio::test]
async fn bad_headers_are_typed_errors() {
    let codec = Codec::single_object();
    let event = sample_event(EntityKind::Asset);
    let value = event.encode_value(&codec, "dastra.changes.asset").await.expect("v");
    let good: Vec<(String, Vec<u8>)> = event.ce_headers(&codec).into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    let with = |name: &str, val: Option<&[u8]>| -> Vec<(String, Vec<u8>)> {
        let mut h: Vec<_> = good.iter().filter(|(k, _)| k != name).cloned().collect();
        if let Some(v) = val {
            h.push((name.to_owned(), v.to_vec()));
        }
        h
    };
    let cases: Vec<(Headers, &str)> = vec![
        (with("ce_type", None), "missing_header"),
        (with("ce_subject", None), "missing_header"),
        (with("ce_sequence", None), "missing_header"),
        (with("ce_id", Some(&[0xFF, 0xFE])), "missing_header"),
        (with("ce_type", Some(b"io.dastra.connect.asset.merge.v1")), "invalid_event"),
        (with("ce_type", Some(b"io.dastra.connect.actor.upsert.v1")), "invalid_event"),
        (with("ce_type", Some(b"io.dastra.connect.asset.delete.v1")), "invalid_event"),
        (with("ce_subject", Some(b"servicenow:asset")), "invalid_key"),
        (with("ce_time", Some(b"yesterday")), "invalid_event"),
        (with("ce_specversion", Some(b"0.3")), "invalid_event"),
        (with("traceparent", Some(b"garbage")), "invalid_event"),
        (with("ce_sequence", Some(b"has space")), "invalid_event"),
    ];
    for (headers, code) in cases {
        let err = ChangeEvent::from_parts(&headers, &value, &codec).await.unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert_eq!(err.class(), dastra_connect_core::ErrorClass::Permanent);
    }
    // Upper-case header names and a missing recordedtime are accepted.
    let upper: Vec<_> = with("ce_recordedtime", None).into_iter().map(|(k, v)| (k.to_uppercase(), v)).collect();
    let back = ChangeEvent::from_parts(&upper, &value, &codec).await.expect("decode");
    assert_eq!(back.recorded_time, back.time);
    // A payload that breaks upsert rules is rejected even if it decodes.
    let empty = codec.encode("t", &Payload::Asset(Default::default())).await.expect("v");
    assert_eq!(ChangeEvent::from_parts(&good, &empty, &codec).await.unwrap_err().code(), "invalid_payload");
    // Structured envelope: truncations.
    let bytes = encode_structured(&event).expect("e");
    for len in 0..bytes.len() {
        check(decode_structured(&bytes[..len]).unwrap_err());
    }
}

/// The bundled asset schema minus its last fields: what a producer built before they existed.
fn old_asset_schema() -> String {
    let mut v: Json = serde_json::from_str(payload_schema_source(EntityKind::Asset)).expect("json");
    let fields = v["fields"].as_array_mut().expect("fields");
    fields.retain(|f| !matches!(f["name"].as_str(), Some("supportType" | "attachments" | "customFields" | "tags")));
    v.to_string()
}

fn old_asset_datum(old: &Schema) -> Vec<u8> {
    use apache_avro::types::Record;
    let mut r = Record::new(old).expect("record");
    r.put("snapshot", false);
    r.put("deleted", false);
    r.put("label", apache_avro::types::Value::Union(1, Box::new("Old CRM".into())));
    r.put("type", apache_avro::types::Value::Union(1, Box::new(apache_avro::types::Value::Enum(0, "Software".into()))));
    for f in [
        "description",
        "logoUrl",
        "address",
        "zipCode",
        "city",
        "countryCode",
        "applicationState",
        "applicationType",
        "hostingType",
        "developmentType",
        "maintenanceType",
    ] {
        r.put(f, apache_avro::types::Value::Union(0, Box::new(apache_avro::types::Value::Null)));
    }
    write(old, r.into())
}

#[tokio::test]
async fn new_reader_reads_old_writer_data() {
    let old_text = old_asset_schema();
    let old = Schema::parse_str(&old_text).expect("old schema");
    let datum = old_asset_datum(&old);

    // Single-object: the reader must be told the old writer schema.
    let fp = dastra_connect_core::codec::schemas::fingerprint(&old);
    let mut msg = vec![0xC3, 0x01];
    msg.extend_from_slice(&fp);
    msg.extend_from_slice(&datum);
    let codec = Codec::single_object();
    assert_eq!(codec.decode(EntityKind::Asset, &msg).await.unwrap_err().code(), "unknown_schema");
    assert_eq!(codec.add_writer_schema(&old_text).expect("add"), fp);
    let Payload::Asset(a) = codec.decode(EntityKind::Asset, &msg).await.expect("decode old") else { panic!() };
    assert_eq!(a.label.as_deref(), Some("Old CRM"));
    assert_eq!(a.support_type, None);
    assert!(a.tags.is_empty() && a.custom_fields.is_empty() && a.attachments.is_empty());

    // Confluent: the registry supplies the old writer schema by id; nothing to configure.
    let stub = StubRegistry::new();
    let (confluent, server) = codec_with_stub(&stub).await;
    let client = confluent.registry().expect("r");
    let old_id = client.register("dastra.changes.asset-value", &old_text).await.expect("register old");
    let Payload::Asset(b) =
        confluent.decode(EntityKind::Asset, &frame_confluent(old_id, &datum)).await.expect("decode")
    else {
        panic!()
    };
    assert_eq!(a, b);
    // And the new version registers as version 2 of the same subject.
    confluent.encode("dastra.changes.asset", &sample_payloads()[0]).await.expect("encode new");
    assert_eq!(client.latest("dastra.changes.asset-value").await.expect("latest").version, 2);

    // The other direction: a newer writer with an extra field is read by today's reader.
    let mut newer: Json = serde_json::from_str(payload_schema_source(EntityKind::Asset)).expect("json");
    newer["fields"].as_array_mut().expect("f").push(serde_json::json!(
        {"name": "hostName", "type": ["null", "string"], "default": null}));
    let newer = Schema::parse_str(&newer.to_string()).expect("newer");
    let mut value = dastra_connect_core::codec::payload_to_value(&sample_payloads()[0]).expect("v");
    if let apache_avro::types::Value::Record(f) = &mut value {
        f.push(("hostName".into(), apache_avro::types::Value::Union(1, Box::new("srv01".into()))));
    }
    let datum = write(&newer, value);
    let back = dastra_connect_core::codec::decode_datum(EntityKind::Asset, &newer, &datum).expect("read newer");
    assert_eq!(back, sample_payloads()[0]);
    server.abort();
}

#[test]
fn schemas_parse_and_fingerprints_differ() {
    let s = schemas().expect("schemas");
    let mut fps = std::collections::HashSet::new();
    for k in EntityKind::ALL {
        assert!(fps.insert(s.payload(k).fingerprint), "{k}");
    }
    assert!(fps.insert(s.envelope_fingerprint));
}
