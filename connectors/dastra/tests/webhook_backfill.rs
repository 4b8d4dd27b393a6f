//! No missed request: with the broker down, the emulator's real webhook for a new DSR gets a non-200
//! (Dastra counts the failure — its `nbErrors` — and never retries); once the broker is back, the receiver's backfill
//! poller lists the DSR from the API and publishes it under the id the webhook would have used,
//! once, through the quota limiter the process registered for that API key (nats-server,
//! MockCluster).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dastra_connect_core::bus::{BusConfig, SubscriberEvent, TopicSpec};
use dastra_connect_core::connector::{Connector, Topics};
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_core::testkit::{self, Broker};
use dastra_connect_dastra::config::{AuthConfig, DastraClientConfig};
use dastra_connect_dastra::quota::QuotaLimiter;
use dastra_connect_dastra::webhook::{BackfillConfig, WebhookReceiver, WebhookReceiverConfig, event_id};
use dastra_emulator::EmulatorConfig;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

mod common;

use common::{emu_post, free_port, subscribe_webhook};

const NAME: &str = "hooks";

async fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scenario(mut broker: Broker) {
    let topics = Topics::default();
    let topic = topics.dastra_events();
    let stores = [format!("webhook-dedupe-{NAME}"), format!("webhook-backfill-{NAME}")];
    let mut bus = broker.bus_with_stores(&topics, &stores).await;
    if let Broker::Kafka(k) = &broker {
        k.create_topic(&topic, 3);
    }
    // A publish to a broker that is down fails after this (librdkafka `message.timeout.ms`, NATS ack).
    match &mut bus {
        BusConfig::Kafka(k) => k.timeout = Duration::from_secs(3),
        BusConfig::Nats(n) => n.timeout = Duration::from_secs(3),
    }
    bus.ensure_topics(&[TopicSpec::new(topic.clone())]).await.unwrap();

    let emu = dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![])).await.unwrap();
    let port = free_port();
    let key = subscribe_webhook(&emu, port, &["DataSubjectCreation"]).await;

    let dastra = DastraClientConfig::new(
        emu.url("/").parse().unwrap(),
        1,
        AuthConfig::ApiKey { api_key: dastra_connect_core::config::Secret::new("emulator-key") },
    );
    // What a sink of this process with the same key would have registered.
    let sinks_quota = QuotaLimiter::new(&dastra.quota);
    sinks_quota.register(&dastra.quota_key());

    let metrics = Metrics::new();
    let ctx = common::context(NAME, &bus, &topics, &metrics);
    let mut config: WebhookReceiverConfig = serde_json::from_value(json!({
        "listen": format!("127.0.0.1:{port}"),
        "signing_keys": [key],
    }))
    .unwrap();
    config.backfill = Some(Box::new(BackfillConfig {
        dastra: dastra.clone(),
        interval: Duration::from_secs(1),
        max_pages_per_poll: 2,
    }));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(Box::new(WebhookReceiver::new(config)).run(ctx, shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "receiver never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The broker goes down; a DSR is created in Dastra and its webhook fails.
    match &mut broker {
        Broker::Nats(n) => n.stop(),
        Broker::Kafka(k) | Broker::KafkaBig(k) => k.all_down(),
    }
    let dsr = emu_post(
        &emu,
        "/v1/ws/1/DataSubjectRequests",
        json!({"title": "Missed request", "areaId": 1, "locale": "en", "purposes": ["Erasure"]}),
    )
    .await;
    let id = dsr["id"].as_i64().unwrap();
    wait_for("the failed delivery", 60, || {
        emu.state
            .webhook_deliveries()
            .iter()
            .any(|d| d.body.contains("Missed request") && (d.status.is_some() || d.error.is_some()))
    })
    .await;
    let delivery = emu.state.webhook_deliveries().into_iter().find(|d| d.body.contains("Missed request")).unwrap();
    assert!(!delivery.ok, "Dastra must see a failure while the broker is down: {delivery:?}");
    // Dastra counts it against the webhook (more than 5 and it stops delivering).
    let hooks: Value = reqwest::Client::new()
        .get(emu.url("/v1/WebHookUrls"))
        .header("X-API-Key", "emulator-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hooks[0]["nbErrors"], 1, "Dastra counted the failed delivery: {hooks}");
    // The receiver gave up on it (503) before the broker comes back.
    wait_for("the receiver's 503", 60, || metrics.render().contains(r#"status="503"} 1"#)).await;

    match &mut broker {
        Broker::Nats(n) => n.resume().await,
        Broker::Kafka(k) | Broker::KafkaBig(k) => k.all_up(),
    }

    // The backfill publishes the DSR under the id the webhook would have carried, once.
    let sent: Value = serde_json::from_str(&delivery.body).unwrap();
    let expected_id = event_id("dsr", &id.to_string(), sent.get("data"), delivery.body.as_bytes());
    let mut reader = bus.subscriber(&testkit::unique("reader"), std::slice::from_ref(&topic)).await.unwrap();
    let dsr_key = format!("dastra:dsr:{id}");
    let mut seen: Vec<(String, Value)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while seen.is_empty() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = tokio::time::timeout(left, reader.next_event()).await.expect("the backfilled DSR").unwrap();
        if let SubscriberEvent::Message(m) = event
            && m.key.as_ref() == dsr_key.as_bytes()
        {
            let ce_id =
                m.headers.iter().find(|(k, _)| k == "ce_id").map(|(_, v)| String::from_utf8(v.clone()).unwrap());
            seen.push((ce_id.unwrap(), serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap()));
        }
    }
    // Three more polls find it again and publish nothing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    while let Ok(event) = tokio::time::timeout(Duration::from_secs(2), reader.next_event()).await {
        if let SubscriberEvent::Message(m) = event.unwrap()
            && m.key.as_ref() == dsr_key.as_bytes()
        {
            seen.push((String::new(), Value::Null));
        }
    }
    assert_eq!(seen.len(), 1, "the missed DSR is published once: {seen:?}");
    let (ce_id, body) = &seen[0];
    assert_eq!(ce_id, &expected_id, "the backfill uses the id of the webhook it replaces");
    assert_eq!(body["eventType"], "DataSubjectCreation");
    assert_eq!(body["data"]["title"], "Missed request");
    // On NATS the client resends a publish that timed out once it reconnects, so the webhook's
    // own body can land after its 503; the backfill's copy then carries the same id and is
    // dropped (`Nats-Msg-Id`). Either way the backfill listed the DSR and moved its checkpoint past it.
    if body.get("backfill").is_none() {
        assert!(matches!(broker, Broker::Nats(_)), "on Kafka the failed webhook's body must not land: {body}");
    }
    let checkpoints = dastra_connect_core::state::open(&bus, &topics.state(&stores[1])).await.unwrap();
    let checkpoint = String::from_utf8(checkpoints.get("checkpoint:dsr").expect("a DSR checkpoint").to_vec()).unwrap();
    assert!(checkpoint.as_str() >= dsr["dateCreation"].as_str().unwrap(), "{checkpoint} vs {dsr}");
    // Its calls went through the limiter registered for this API key.
    assert!(sinks_quota.snapshot().granted_total >= 2, "{:?}", sinks_quota.snapshot());

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), task).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_publishes_a_missed_webhook_on_nats() {
    scenario(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_publishes_a_missed_webhook_on_kafka() {
    scenario(Broker::kafka()).await;
}
