//! The webhook receiver publishes each change once: the emulator's real delivery, then copies of
//! its exact signed body sent again (one after the other, concurrently to one replica, to a second
//! replica sharing the dedupe store, and after a restart) leave one event on the bus (nats-server,
//! MockCluster); a validly signed body dated outside the window is refused (422) and not
//! published; a new change of the same entity still is. Signatures: missing or wrong → 401, a
//! second configured key (rotation) accepted; an oversized body → 413.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dastra_connect_core::bus::{BusConfig, SubscriberEvent, TopicSpec};
use dastra_connect_core::connector::{Connector, Topics};
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_core::testkit::{self, Broker};
use dastra_connect_dastra::webhook::{Dedupe, WebhookReceiver, WebhookReceiverConfig, event_id, sign};
use dastra_emulator::EmulatorConfig;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod common;

use common::{emu_post, free_port, subscribe_webhook};

const NAME: &str = "hooks";
const NEXT_KEY: &str = "rotated-key";

struct Replica {
    url: String,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    async fn start(bus: &BusConfig, topics: &Topics, key: &str, port: u16) -> Self {
        let ctx = common::context(NAME, bus, topics, &Metrics::new());
        let config: WebhookReceiverConfig = serde_json::from_value(json!({
            "listen": format!("127.0.0.1:{port}"),
            // The webhook's key and the next one during a key rotation.
            "signing_keys": [key, NEXT_KEY],
            "max_body_bytes": 64 * 1024,
        }))
        .unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Box::new(WebhookReceiver::new(config)).run(ctx, shutdown.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "receiver never listened");
            assert!(!task.is_finished(), "receiver stopped: {:?}", task.await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { url: format!("http://127.0.0.1:{port}/webhooks/dastra"), shutdown, task }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.unwrap().unwrap().unwrap();
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &str, signature: &str) -> (u16, String) {
    let r = http.post(url).header("Dastra-Signature", signature).body(body.to_owned()).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn scenario(broker: Broker) {
    let topics = Topics::default();
    let topic = topics.dastra_events();
    let store = format!("webhook-dedupe-{NAME}");
    let bus = broker.bus_with_stores(&topics, std::slice::from_ref(&store)).await;
    if let Broker::Kafka(k) = &broker {
        k.create_topic(&topic, 3);
    }
    bus.ensure_topics(&[TopicSpec::new(topic.clone())]).await.unwrap();
    let nats = matches!(broker, Broker::Nats(_));

    let emu = dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![])).await.unwrap();
    let http = reqwest::Client::new();
    let (port_a, port_b) = (free_port(), free_port());
    let key = subscribe_webhook(&emu, port_a, &["DataSubjectCreation"]).await;
    let a = Replica::start(&bus, &topics, &key, port_a).await;
    let b = Replica::start(&bus, &topics, &key, port_b).await;

    // The real delivery.
    let dsr = emu_post(
        &emu,
        "/v1/ws/1/DataSubjectRequests",
        json!({"title": "Access request", "areaId": 1, "locale": "en", "purposes": ["Access"]}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let delivered = loop {
        if let Some(d) = emu.state.webhook_deliveries().into_iter().find(|d| d.status.is_some()) {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "no webhook delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(delivered.status, Some(200), "{delivered:?}");
    let (body, sig) = (delivered.body.clone(), delivered.signature.clone());

    // Copies of the exact signed body: one after the other, concurrently to one replica, to the other replica.
    assert_eq!(post(&http, &a.url, &body, &sig).await, (200, "already stored".into()));
    let copies: Vec<_> = (0..4).map(|_| post(&http, &a.url, &body, &sig)).collect();
    for r in futures::future::join_all(copies).await {
        assert_eq!(r.0, 200, "{r:?}");
    }
    assert_eq!(post(&http, &b.url, &body, &sig).await, (200, "already stored".into()));

    // A new change of another DSR, sent concurrently to both replicas: on NATS `Nats-Msg-Id`
    // makes it one event; on Kafka two replicas at the same moment may both publish (documented),
    // so there it goes to one replica only.
    let mut other = serde_json::from_str::<Value>(&body).unwrap();
    other["data"]["id"] = json!(dsr["id"].as_i64().unwrap() + 1000);
    let other = other.to_string();
    let other_sig = sign(&key, other.as_bytes());
    if nats {
        let (ra, rb) = tokio::join!(post(&http, &a.url, &other, &other_sig), post(&http, &b.url, &other, &other_sig));
        assert_eq!((ra.0, rb.0), (200, 200), "{ra:?} {rb:?}");
    } else {
        assert_eq!(post(&http, &a.url, &other, &other_sig).await.0, 200);
    }

    // After a restart of both replicas the window still holds the id.
    a.stop().await;
    b.stop().await;
    let a = Replica::start(&bus, &topics, &key, port_a).await;
    assert_eq!(post(&http, &a.url, &body, &sig).await, (200, "already stored".into()));

    // Signatures: missing or wrong → 401; the rotated key is accepted; an oversized body → 413.
    assert_eq!(http.post(&a.url).body(body.clone()).send().await.unwrap().status(), 401);
    assert_eq!(post(&http, &a.url, &body, &sign("not-the-key", body.as_bytes())).await.0, 401);
    let mut rotated = serde_json::from_str::<Value>(&body).unwrap();
    rotated["data"]["id"] = json!(dsr["id"].as_i64().unwrap() + 2000);
    let rotated = rotated.to_string();
    assert_eq!(post(&http, &a.url, &rotated, &sign(NEXT_KEY, rotated.as_bytes())).await, (200, "stored".into()));
    let big = format!(r#"{{"eventType":"DataSubjectCreation","pad":"{}"}}"#, "x".repeat(65 * 1024));
    assert_eq!(post(&http, &a.url, &big, &sign(&key, big.as_bytes())).await.0, 413);

    // A captured body replayed later: validly signed, dated outside the window → refused.
    let mut old = serde_json::from_str::<Value>(&body).unwrap();
    old["date"] = json!((chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339());
    old["data"]["dateUpdate"] = json!("2020-01-01T00:00:00Z");
    let old = old.to_string();
    let (status, text) = post(&http, &a.url, &old, &sign(&key, old.as_bytes())).await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("older than the dedupe window"), "{text}");
    let mut future = serde_json::from_str::<Value>(&old).unwrap();
    future["date"] = json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    let future = future.to_string();
    assert_eq!(post(&http, &a.url, &future, &sign(&key, future.as_bytes())).await.0, 422);

    // A new change of the same DSR (same key, so after the copies in its partition) is published.
    let mut next = serde_json::from_str::<Value>(&body).unwrap();
    next["data"]["dateUpdate"] = json!((chrono::Utc::now()).to_rfc3339());
    next["data"]["title"] = json!("Access request (changed)");
    let next = next.to_string();
    assert_eq!(post(&http, &a.url, &next, &sign(&key, next.as_bytes())).await, (200, "stored".into()));

    let mut reader = bus.subscriber(&testkit::unique("reader"), std::slice::from_ref(&topic)).await.unwrap();
    let dsr_key = format!("dastra:dsr:{}", dsr["id"]);
    let other_key = format!("dastra:dsr:{}", dsr["id"].as_i64().unwrap() + 1000);
    let (mut titles, mut others) = (Vec::new(), 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !titles.contains(&"Access request (changed)".to_owned()) || others == 0 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = tokio::time::timeout(left, reader.next_event()).await.expect("events on the bus").unwrap();
        if let SubscriberEvent::Message(m) = event {
            let k = String::from_utf8(m.key.to_vec()).unwrap();
            let v: Value = serde_json::from_slice(m.payload.as_deref().unwrap()).unwrap();
            if k == dsr_key {
                titles.push(v["data"]["title"].as_str().unwrap().to_owned());
            } else if k == other_key {
                others += 1;
            }
        }
    }
    // Anything published twice would sit before the control event of its key; give the other key a moment.
    while let Ok(event) = tokio::time::timeout(Duration::from_secs(2), reader.next_event()).await {
        if let SubscriberEvent::Message(m) = event.unwrap()
            && m.key.as_ref() == other_key.as_bytes()
        {
            others += 1;
        }
    }
    assert_eq!(titles, ["Access request", "Access request (changed)"], "each change once, the replay not at all");
    assert_eq!(others, 1, "the concurrent copies sent to two replicas make one event");

    // The window is pruned by date: once every recorded date is older than the window, nothing is left.
    a.stop().await;
    let state = dastra_connect_core::state::open(&bus, &topics.state(&store)).await.unwrap();
    assert_eq!(state.len(), 4, "{:?}", state.snapshot());
    let dedupe = Dedupe::new(state.clone(), Duration::from_secs(24 * 3600), Duration::from_secs(300));
    assert_eq!(dedupe.prune(chrono::Utc::now()).await.unwrap(), 0);
    assert_eq!(dedupe.prune(chrono::Utc::now() + chrono::Duration::days(2)).await.unwrap(), 4);
    assert!(dedupe.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_replays_publish_once_on_nats() {
    scenario(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_replays_publish_once_on_kafka() {
    scenario(Broker::kafka()).await;
}

#[test]
fn one_change_has_one_id_whatever_the_body() {
    let a = json!({"id": 7, "dateUpdate": "2026-01-02T03:04:05.1234567", "title": "x"});
    let b = json!({"id": 7, "dateUpdate": "2026-01-02T03:04:05.1234567Z", "title": "y", "state": "Open"});
    let later = json!({"id": 7, "dateUpdate": "2026-01-02T03:04:06Z"});
    assert_eq!(event_id("dsr", "7", Some(&a), b"one body"), event_id("dsr", "7", Some(&b), b"another body"));
    assert_ne!(event_id("dsr", "7", Some(&a), b"b"), event_id("dsr", "7", Some(&later), b"b"));
    assert_ne!(event_id("dsr", "7", Some(&a), b"b"), event_id("task", "7", Some(&a), b"b"));
    let created = json!({"id": 7, "dateCreation": "2026-01-02T03:04:05Z", "dateUpdate": null});
    assert_eq!(event_id("dsr", "7", Some(&created), b"x"), event_id("dsr", "7", Some(&created), b"y"));
    // Without a change date the body itself is the identity.
    assert_ne!(event_id("event", "7", Some(&a), b"x"), event_id("event", "7", Some(&a), b"y"));
    assert_ne!(event_id("dsr", "7", None, b"x"), event_id("dsr", "7", None, b"y"));
}
