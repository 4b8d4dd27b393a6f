//! Proves that every payload type round-trips through every codec (Avro single-object, Confluent
//! wire format against the in-repo registry stub, JSON, raw datum, the structured envelope) and
//! through the CloudEvents binary-mode headers, and that decoding auto-detects the format.

use std::sync::Arc;

use dastra_connect_core::codec::registry::stub::StubRegistry;
use dastra_connect_core::codec::{
    Codec, RegistryConfig, SchemaRegistryClient, WireFormat, decode_datum, decode_structured, detect, encode_datum,
    encode_structured, schemas::schemas,
};
use dastra_connect_core::event::samples::{sample_event, sample_payloads};
use dastra_connect_core::event::{ChangeEvent, EntityKind, Payload};

async fn confluent_codec(stub: &StubRegistry) -> (Codec, tokio::task::JoinHandle<()>) {
    let (url, handle) = stub.spawn().await.expect("stub registry starts");
    let client = SchemaRegistryClient::new(RegistryConfig::new(url)).expect("client");
    (Codec::confluent(Arc::new(client)), handle)
}

fn tombstones() -> Vec<Payload> {
    EntityKind::ALL.iter().map(|k| Payload::tombstone(*k, true)).collect()
}

#[tokio::test]
async fn every_payload_round_trips_in_every_codec() {
    let stub = StubRegistry::new();
    let (confluent, server) = confluent_codec(&stub).await;
    let codecs = [Codec::single_object(), Codec::json(), confluent.clone()];
    let payloads: Vec<Payload> = sample_payloads().into_iter().chain(tombstones()).collect();
    assert_eq!(payloads.len(), 2 * EntityKind::ALL.len());
    for codec in &codecs {
        for p in &payloads {
            let topic = p.kind().default_topic();
            let bytes = codec.encode(&topic, p).await.expect("encode");
            assert_eq!(detect(&bytes).expect("detect"), codec.format());
            // The confluent codec decodes all formats; the others decode their own.
            let back = confluent.decode(p.kind(), &bytes).await.expect("decode");
            assert_eq!(&back, p, "{:?} {}", codec.format(), p.kind());
            let back = codec.decode(p.kind(), &bytes).await.expect("decode own");
            assert_eq!(&back, p);
        }
    }
    // Raw datums with the bundled writer schema.
    for p in &payloads {
        let datum = encode_datum(p).expect("datum");
        let writer = &schemas().expect("schemas").payload(p.kind()).schema;
        assert_eq!(&decode_datum(p.kind(), writer, &datum).expect("decode datum"), p);
    }
    // TopicNameStrategy subjects, one schema each.
    assert_eq!(stub.schema_count(), EntityKind::ALL.len());
    server.abort();
}

#[tokio::test]
async fn events_round_trip_through_headers_and_value() {
    let stub = StubRegistry::new();
    let (confluent, server) = confluent_codec(&stub).await;
    for codec in [Codec::single_object(), Codec::json(), confluent.clone()] {
        for kind in EntityKind::ALL {
            let event = sample_event(kind);
            let topic = kind.default_topic();
            let value = event.encode_value(&codec, &topic).await.expect("value");
            let headers: Vec<(String, Vec<u8>)> =
                event.ce_headers(&codec).into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
            let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
            for h in [
                "ce_id",
                "ce_source",
                "ce_type",
                "ce_subject",
                "ce_time",
                "ce_specversion",
                "ce_sequence",
                "ce_recordedtime",
                "content-type",
                "traceparent",
            ] {
                assert!(names.contains(&h), "missing header {h}");
            }
            let back = ChangeEvent::from_parts(&headers, &value, &confluent).await.expect("from_parts");
            assert_eq!(back, event, "{:?} {kind}", codec.format());
        }
    }
    server.abort();
}

#[tokio::test]
async fn structured_envelope_round_trips() {
    for kind in EntityKind::ALL {
        let event = sample_event(kind);
        let bytes = encode_structured(&event).expect("encode");
        assert_eq!(detect(&bytes).expect("detect"), WireFormat::AvroSingleObject);
        assert_eq!(decode_structured(&bytes).expect("decode"), event);
        let mut del = sample_event(kind);
        del.data = Payload::tombstone(kind, true);
        del.op = dastra_connect_core::event::Op::Delete;
        del.traceparent = None;
        assert_eq!(decode_structured(&encode_structured(&del).expect("e")).expect("d"), del);
    }
}

#[tokio::test]
async fn registry_ids_are_cached() {
    let stub = StubRegistry::new();
    let (codec, server) = confluent_codec(&stub).await;
    let p = &sample_payloads()[0];
    let mut last = Vec::new();
    for _ in 0..50 {
        last = codec.encode("dastra.changes.asset", p).await.expect("encode");
    }
    assert_eq!(stub.request_count(), 1, "one registration for 50 encodes");
    // A second codec (no cache yet) decodes 50 messages with one schema fetch.
    let client = SchemaRegistryClient::new(codec.registry().expect("r").config().clone()).expect("c");
    let reader = Codec::single_object().with_registry(Arc::new(client));
    for _ in 0..50 {
        assert_eq!(&reader.decode(EntityKind::Asset, &last).await.expect("decode"), p);
    }
    assert_eq!(stub.request_count(), 2);
    // Subject naming and latest-version lookup over REST.
    let latest = codec.registry().expect("r").latest("dastra.changes.asset-value").await.expect("latest");
    assert_eq!(latest.version, 1);
    assert_eq!(u32::from_be_bytes([last[1], last[2], last[3], last[4]]), latest.id);
    server.abort();
}

#[tokio::test]
async fn lookup_only_mode_fails_for_unregistered_schemas() {
    let stub = StubRegistry::new();
    let (url, server) = stub.spawn().await.expect("stub");
    let mut config = RegistryConfig::new(url);
    config.auto_register = false;
    let codec = Codec::confluent(Arc::new(SchemaRegistryClient::new(config.clone()).expect("c")));
    let p = &sample_payloads()[1];
    let err = codec.encode("dastra.changes.actor", p).await.unwrap_err();
    assert_eq!(dastra_connect_core::Classify::code(&err), "unknown_schema");
    // Once registered (by an auto-registering producer) the lookup finds it.
    let mut auto = config.clone();
    auto.auto_register = true;
    let producer = Codec::confluent(Arc::new(SchemaRegistryClient::new(auto).expect("c")));
    let a = producer.encode("dastra.changes.actor", p).await.expect("register");
    let b = codec.encode("dastra.changes.actor", p).await.expect("lookup");
    // Same schema id; the datums may differ in map entry order (apache-avro maps are hash maps).
    assert_eq!(a[..5], b[..5]);
    assert_eq!(&codec.decode(EntityKind::Actor, &b).await.expect("decode"), p);
    server.abort();
}

#[tokio::test]
async fn unreachable_registry_is_retryable() {
    // Bind then drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("a").port();
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}")).expect("url");
    let codec = Codec::confluent(Arc::new(SchemaRegistryClient::new(RegistryConfig::new(url)).expect("c")));
    let err = codec.encode("dastra.changes.asset", &sample_payloads()[0]).await.unwrap_err();
    assert_eq!(dastra_connect_core::Classify::code(&err), "registry_unavailable");
    assert!(dastra_connect_core::Classify::is_retryable(&err));
}

#[tokio::test]
async fn json_is_readable_by_hand() {
    let text = br#"  {"label":"Payroll","type":"Software","customFields":{"a":"b"},"unknownFutureField":1}"#;
    let p = Codec::single_object().decode(EntityKind::Asset, text).await.expect("decode");
    let Payload::Asset(a) = p else { panic!("not an asset") };
    assert_eq!(a.label.as_deref(), Some("Payroll"));
    assert_eq!(a.custom_fields.get("a").map(String::as_str), Some("b"));
    assert!(!a.deleted);
}

#[tokio::test]
async fn codec_config_from_yaml() {
    use dastra_connect_core::codec::CodecConfig;
    let c: CodecConfig = serde_yaml::from_str(
        "format: confluent\nregistry:\n  url: http://127.0.0.1:8081\n  username: u\n  password: p\n  timeout: 3s\n",
    )
    .expect("yaml");
    let CodecConfig::Confluent { registry } = &c else { panic!("{c:?}") };
    assert!(registry.auto_register);
    assert_eq!(registry.timeout, std::time::Duration::from_secs(3));
    assert_eq!(format!("{:?}", registry.password), "Some(***)");
    assert_eq!(c.build().expect("build").format(), WireFormat::Confluent);
    let so: CodecConfig = serde_yaml::from_str("format: avro_single_object").expect("yaml");
    assert_eq!(so.build().expect("build").format(), WireFormat::AvroSingleObject);
    assert_eq!(CodecConfig::default(), so);
    for bad in
        ["format: confluent\nregistry:\n  url: http://x\n  urll: y\n", "format: json\nextra: 1\n", "format: protobuf\n"]
    {
        assert!(serde_yaml::from_str::<CodecConfig>(bad).is_err(), "{bad}");
    }
}
