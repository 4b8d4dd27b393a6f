//! Traces over OTLP/HTTP: an event published with a `traceparent` is applied by a sink process
//! configured with `telemetry.otlp_endpoint`, and the collector receives the sink's span in the
//! source's trace (same trace id) — the trace runs from the publisher through the bus to Dastra.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use dastra_connect_core::bus::{OutboundMessage, TopicSpec};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::AssetType;
use dastra_connect_core::event::{Asset, ChangeEvent, EntityKey, EntityKind, Payload, sequence_from_u64};
use dastra_connect_core::testkit::NatsServer;
use dastra_emulator::EmulatorConfig;
use parking_lot::Mutex;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_span_joins_the_publishers_trace_at_the_collector() {
    // A minimal OTLP/HTTP collector: keeps every body posted to /v1/traces.
    let bodies: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post({
            let bodies = bodies.clone();
            move |body: Bytes| async move {
                bodies.lock().push(body);
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let nats = NatsServer::start().await;
    let bus = nats.bus_config();
    let topics = Topics::default();
    let specs: Vec<TopicSpec> = EntityKind::ALL.iter().map(|k| TopicSpec::new(topics.changes(*k))).collect();
    bus.ensure_topics(&specs).await.unwrap();
    let emu = dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![])).await.unwrap();

    let data = Payload::Asset(Asset {
        label: Some("Traced".into()),
        asset_type: Some(AssetType::Software),
        ..Default::default()
    });
    let event = ChangeEvent::new(
        "/connectors/t",
        EntityKey::parse("cmdb:asset:traced").unwrap(),
        sequence_from_u64(1),
        chrono::Utc::now(),
        data,
    )
    .unwrap()
    .with_traceparent(format!("00-{TRACE_ID}-00f067aa0ba902b7-01"));
    let codec = Codec::single_object();
    let topic = topics.changes(EntityKind::Asset);
    let mut msg = OutboundMessage::new(
        topic.clone(),
        b"cmdb:asset:traced".to_vec(),
        event.encode_value(&codec, &topic).await.unwrap(),
    );
    for (k, v) in event.ce_headers(&codec) {
        msg = msg.with_header(k, v.into_bytes());
    }
    bus.publisher().await.unwrap().publish(msg).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sink.yaml");
    std::fs::write(
        &config,
        format!(
            "bus:\n  type: nats\n  servers: [\"{}\"]\nadmin:\n  listen: 127.0.0.1:0\ntelemetry:\n  otlp_endpoint: {collector}\n  service_name: sink-under-test\nconnectors:\n  sink:\n    type: dastra_sink\n    dastra:\n      base_url: {}\n      workspace_id: 1\n      auth: {{ type: api_key, api_key: emulator-key }}\n",
            nats.url(),
            emu.base_url
        ),
    )
    .unwrap();
    let mut sink = Command::new(env!("CARGO_BIN_EXE_dastra-connect"))
        .args(["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while emu.state.entities(1, "Assets").is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the event was never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGTERM: a clean stop flushes the span exporter.
    Command::new("kill").args(["-TERM", &sink.id().to_string()]).status().unwrap();
    assert!(sink.wait().unwrap().success());

    let trace_id: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).unwrap()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = bodies.lock().iter().any(|b| {
            let has = |needle: &[u8]| b.windows(needle.len()).any(|w| w == needle);
            has(b"dastra_sink.apply") && has(&trace_id) && has(b"sink-under-test")
        });
        if found {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no exported span carried the publisher's trace id ({} bodies)",
            bodies.lock().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
