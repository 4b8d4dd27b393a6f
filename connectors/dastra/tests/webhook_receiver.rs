//! The webhook receiver end to end: the emulator delivers signed DSR and Task webhooks to the running
//! connector, which publishes each one to `<prefix>.events` on a real bus (nats-server, MockCluster)
//! before answering 200; forged bodies get 401 and are not published.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use dastra_connect_core::admin::Admin;
use dastra_connect_core::bus::{BusConfig, SubscriberEvent, TopicSpec};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::config::Secret;
use dastra_connect_core::connector::{Connector, ConnectorContext, Topics};
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_core::testkit::{self, NatsServer};
use dastra_connect_dastra::webhook::{WebhookReceiver, WebhookReceiverConfig};
use dastra_emulator::EmulatorConfig;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn scenario(bus: BusConfig, prepare: impl Fn(&str)) {
    // Each test has its own broker, so the default prefix (covered by the NATS stream's subjects) is fine.
    let topics = Topics::default();
    let topic = topics.dastra_events();
    prepare(&topic);
    bus.ensure_topics(&[TopicSpec::new(topic.clone())]).await.unwrap();

    let emu = dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![])).await.unwrap();
    let http = reqwest::Client::new();
    let port = free_port();
    let hook_url = format!("http://127.0.0.1:{port}/webhooks/dastra");
    let sub: Value = http
        .post(emu.url("/v1/WebHookUrls"))
        .header("X-API-Key", "emulator-key")
        .json(&json!({"url": hook_url, "workSpaceId": 1, "subscribedEvents": ["DataSubjectCreation", "TaskCreation"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = sub["signatureKey"].as_str().expect("signatureKey").to_owned();

    let metrics = Metrics::new();
    let ctx = ConnectorContext {
        name: "hooks".into(),
        bus: bus.clone(),
        topics: topics.clone(),
        codec: Codec::single_object(),
        metrics: metrics.clone(),
        admin: Admin::new(metrics.clone()),
    };
    let config = WebhookReceiverConfig {
        listen: ([127, 0, 0, 1], port).into(),
        path: "/webhooks/dastra".into(),
        signing_keys: vec![Secret::new(key)],
        require_signature: true,
        max_body_bytes: 64 * 1024,
        dedupe_window: Duration::from_secs(24 * 3600),
        max_clock_skew: Duration::from_secs(300),
        backfill: None,
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(Box::new(WebhookReceiver::new(config)).run(ctx, shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "receiver never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let dsr: Value = http
        .post(emu.url("/v1/ws/1/DataSubjectRequests"))
        .header("X-API-Key", "emulator-key")
        .json(&json!({"title": "Access request", "areaId": 1, "locale": "en", "purposes": ["Access"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task_dto: Value = http
        .post(emu.url("/v1/ws/1/Tasks"))
        .header("X-API-Key", "emulator-key")
        .json(&json!({"label": "Find the data"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // A forged delivery is refused and never published.
    let forged = http
        .post(&hook_url)
        .header("Dastra-Signature", "AAAA")
        .body(r#"{"eventType":"DataSubjectCreation","data":{"id":999999}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    let mut sub = bus.subscriber(&testkit::unique("reader"), std::slice::from_ref(&topic)).await.unwrap();
    type Headers = Vec<(String, Vec<u8>)>;
    let mut got: BTreeMap<String, (Value, Headers)> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got.len() < 2 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(event) = tokio::time::timeout(left, sub.next_event()).await else {
            panic!("two webhooks expected on the bus; got {got:?}; deliveries {:?}", emu.state.webhook_deliveries());
        };
        let event = event.unwrap();
        if let SubscriberEvent::Message(m) = event {
            let body: Value = serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap();
            got.insert(String::from_utf8(m.key.to_vec()).unwrap(), (body, m.headers));
        }
    }
    let dsr_key = format!("dastra:dsr:{}", dsr["id"]);
    let task_key = format!("dastra:task:{}", task_dto["id"]);
    assert_eq!(got.keys().cloned().collect::<Vec<_>>(), {
        let mut v = vec![dsr_key.clone(), task_key.clone()];
        v.sort();
        v
    });
    let (body, headers) = &got[&dsr_key];
    assert_eq!(body["eventType"], "DataSubjectCreation");
    assert_eq!(body["data"]["title"], "Access request");
    let header =
        |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8(v.clone()).unwrap());
    assert_eq!(header("ce_type").as_deref(), Some("io.dastra.webhook.DataSubjectCreation.v1"));
    assert_eq!(header("ce_source").as_deref(), Some("/connectors/hooks"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert!(!got.contains_key("dastra:dsr:999999"), "forged body published");

    // Dastra saw 200s (it blocks a webhook after 5 errors).
    let deliveries = emu.state.webhook_deliveries();
    assert!(deliveries.iter().filter(|d| d.status == Some(200)).count() >= 2, "{deliveries:?}");
    let text = metrics.render();
    assert!(
        text.contains(
            r#"dastra_connect_webhooks_received_total{connector="hooks",event="DataSubjectCreation",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"status="401"} 1"#), "{text}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_reach_nats() {
    let nats = NatsServer::start().await;
    scenario(nats.bus_config(), |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_reach_kafka() {
    // The MockCluster has no CreateTopics API: the topic is made here and the bus told not to create.
    let kafka = testkit::mock_kafka(1);
    let mut cfg = kafka.kafka_config();
    cfg.create_topics = false;
    scenario(BusConfig::Kafka(cfg), |t| {
        kafka.create_topic(t, 3);
        kafka.create_topic(&Topics::default().state("webhook-dedupe-hooks"), 1);
    })
    .await;
}
