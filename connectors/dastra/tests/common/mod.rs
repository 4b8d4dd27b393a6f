//! Shared harness of the sink tests: a bus (real nats-server or MockCluster), the emulator, a running
//! sink connector, event builders, "wait until the sink is idle", the real driver over stores
//! that fail on demand (`driver`), and the runner of the property tests (`prop`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dastra_connect_core::admin::Admin;
use dastra_connect_core::bus::{BusConfig, OutboundMessage, Publisher, TopicSpec};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::config::Secret;
use dastra_connect_core::connector::{Connector, ConnectorContext, Topics};
use dastra_connect_core::event::{ChangeEvent, EntityKey, EntityKind, Payload, sequence_from_u64};
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_core::testkit::{self, NatsServer};
use dastra_connect_dastra::sink::{DastraSink, DastraSinkConfig};
use dastra_connect_dastra::{AuthConfig, DastraClientConfig};
use dastra_emulator::{EmulatorConfig, RunningEmulator};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod driver;
mod prop;

// Not every test binary that includes this module uses them.
#[allow(unused_imports)]
pub use driver::*;
#[allow(unused_imports)]
pub use prop::*;

// Not every test binary that includes this module uses all of them.
#[allow(unused_imports)]
pub use dastra_connect_core::testkit::{BIG_KAFKA_PARTITIONS, BIG_MESSAGE_BYTES, Broker};

/// The bus of a sink scenario.
#[allow(async_fn_in_trait)]
pub trait SinkBus {
    /// The bus config, with every change topic, the DLQ and the state topics of sink `sink_name`
    /// created (the MockCluster has no CreateTopics API).
    async fn bus(&self, topics: &Topics, sink_name: &str) -> BusConfig;
}

impl SinkBus for Broker {
    async fn bus(&self, topics: &Topics, sink_name: &str) -> BusConfig {
        let stores = ["ledger", "pending", "parked"].map(|s| format!("{s}-{sink_name}"));
        self.bus_with_stores(topics, &stores).await
    }
}

/// A sink config pointing at the emulator.
pub fn sink_config(emu: &RunningEmulator) -> DastraSinkConfig {
    let dastra = DastraClientConfig::new(
        emu.base_url.parse().unwrap(),
        1,
        AuthConfig::ApiKey { api_key: Secret::new("emulator-key") },
    );
    let yaml = serde_json::json!({ "dastra": dastra, "commit_interval": "200ms" });
    let mut cfg: DastraSinkConfig = serde_json::from_value(yaml).unwrap();
    cfg.dastra.auth = AuthConfig::ApiKey { api_key: Secret::new("emulator-key") };
    // `DASTRA_LEDGER_BATCH=0` runs the tests and benches with the ledger's write batch off (each
    // write awaited on its own, as before it existed).
    if let Some(n) = std::env::var("DASTRA_LEDGER_BATCH").ok().and_then(|v| v.parse().ok()) {
        cfg.ledger_batch = n;
    }
    // `DASTRA_BATCH_WINDOW_MS=0` runs them with Dastra's batch routes unused (every request on its
    // own route, as before the request batcher).
    if let Some(ms) = std::env::var("DASTRA_BATCH_WINDOW_MS").ok().and_then(|v| v.parse().ok()) {
        cfg.batch_window = Duration::from_millis(ms);
    }
    cfg
}

/// A running sink.
pub struct RunningSink {
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
    pub admin: Admin,
    pub metrics: Metrics,
}

impl RunningSink {
    pub fn start(name: &str, bus: &BusConfig, topics: &Topics, config: DastraSinkConfig) -> Self {
        let metrics = Metrics::new();
        let admin = Admin::new(metrics.clone());
        let ctx = ConnectorContext {
            name: name.into(),
            bus: bus.clone(),
            topics: topics.clone(),
            codec: Codec::single_object(),
            metrics: metrics.clone(),
            admin: admin.clone(),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Box::new(DastraSink::new(config)).run(ctx, shutdown.clone()));
        Self { shutdown, task, admin, metrics }
    }

    /// Waits until the sink has consumed and committed everything and holds no work, for `quiet`
    /// in a row.
    pub async fn wait_idle(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut quiet_since: Option<tokio::time::Instant> = None;
        loop {
            let s = self.admin.status_json();
            let sink = &s.as_object().and_then(|o| o.values().find(|v| v.get("sink").is_some())).cloned();
            let idle = sink.as_ref().is_some_and(|v| {
                let k = &v["sink"];
                k["in_flight"] == 0
                    && k["buffered"] == 0
                    && k["uncommitted"].as_array().is_some_and(|a| a.iter().all(|p| p[1] == 0))
                    && !k["partitions"].as_array().is_none_or(|a| a.is_empty())
            });
            if idle {
                let since = *quiet_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > Duration::from_millis(1500) {
                    return;
                }
            } else {
                quiet_since = None;
            }
            assert!(tokio::time::Instant::now() < deadline, "sink never became idle: {s}");
            assert!(!self.task.is_finished(), "sink stopped early");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the sink owns partitions (a Kafka group join takes seconds): a test that times
    /// its publications relative to the sink's work starts from here.
    pub async fn wait_assigned(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.admin.status_json();
            let owned = s
                .as_object()
                .and_then(|o| o.values().find_map(|v| v.get("sink")))
                .is_some_and(|k| k["partitions"].as_array().is_some_and(|a| !a.is_empty()));
            if owned {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "the sink was never assigned partitions: {s}");
            assert!(!self.task.is_finished(), "sink stopped early");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task).await.unwrap().unwrap().unwrap();
    }
}

/// Publishes events (binary-mode CloudEvents, single-object Avro) and waits for the acks.
pub async fn publish(publisher: &dyn Publisher, topics: &Topics, events: &[ChangeEvent]) {
    let codec = Codec::single_object();
    let mut msgs = Vec::new();
    for e in events {
        let topic = topics.changes(e.kind());
        let value = e.encode_value(&codec, &topic).await.unwrap();
        let mut msg = OutboundMessage::new(topic, e.key.as_str().as_bytes().to_vec(), value);
        for (k, v) in e.ce_headers(&codec) {
            msg = msg.with_header(k, v.into_bytes());
        }
        msgs.push(msg);
    }
    publisher.publish_batch(msgs).await.unwrap();
}

/// A change event from `source` with a counter version.
pub fn event(key: &str, version: u64, data: Payload) -> ChangeEvent {
    ChangeEvent::new(
        "/connectors/test",
        EntityKey::parse(key).unwrap(),
        sequence_from_u64(version),
        chrono::Utc::now(),
        data,
    )
    .unwrap()
}

/// Requests the emulator answered, by method and status, excluding reads.
pub fn writes(emu: &RunningEmulator) -> u64 {
    emu.state.counters().by_route.iter().filter(|r| r.method != "GET").map(|r| r.count).sum()
}

/// All requests the emulator answered.
pub fn requests(emu: &RunningEmulator) -> u64 {
    emu.state.counters().total
}

/// A fresh emulator without quota.
pub async fn emulator() -> RunningEmulator {
    dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![])).await.unwrap()
}

/// Ensures topics exist (NATS: the stream).
pub async fn ensure(bus: &BusConfig, topics: &Topics) {
    let mut specs: Vec<TopicSpec> = EntityKind::ALL.iter().map(|k| TopicSpec::new(topics.changes(*k))).collect();
    specs.push(TopicSpec::new(topics.dlq()));
    bus.ensure_topics(&specs).await.unwrap();
}

/// Reads every message of the DLQ topic currently there: `(key, reason header, value length)`.
pub async fn read_dlq(bus: &BusConfig, topics: &Topics, expect: usize) -> Vec<(String, String, usize)> {
    use dastra_connect_core::bus::SubscriberEvent;
    let mut sub = bus.subscriber(&testkit::unique("dlq-reader"), &[topics.dlq()]).await.unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.len() < expect {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(ev) = tokio::time::timeout(left, sub.next_event()).await else {
            panic!("expected {expect} DLQ records, got {out:?}");
        };
        if let SubscriberEvent::Message(m) = ev.unwrap() {
            let reason =
                m.header("dastra_dlq_reason").map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            out.push((String::from_utf8_lossy(&m.key).into_owned(), reason, m.payload.map(|p| p.len()).unwrap_or(0)));
        }
    }
    out
}

impl RunningSink {
    /// Waits until the sink `name` has read at least `n` change events in all (so that events just
    /// published are in, which [`RunningSink::wait_idle`] alone cannot know on a slow broker), then
    /// until it is idle.
    pub async fn wait_consumed(&self, name: &str, n: u64, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let read: u64 = EntityKind::ALL
                .iter()
                .map(|k| self.metrics.events_consumed.with_label_values(&[name, k.as_str()]).get())
                .sum();
            if read >= n {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the sink read {read} of {n} events");
            assert!(!self.task.is_finished(), "sink stopped early");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_idle(deadline.saturating_duration_since(tokio::time::Instant::now())).await;
    }
}

/// What a test that drives `sink::apply::apply` directly needs: a nats-server (keep it alive),
/// the emulator, a client for it, and a ledger in a real KV bucket named `ledger_ns`.
pub struct ApplyRig {
    pub nats: NatsServer,
    pub emu: RunningEmulator,
    pub client: dastra_connect_dastra::DastraClient,
    pub ledger: dastra_connect_dastra::sink::ledger::Ledger,
}

impl ApplyRig {
    pub async fn start(ledger_ns: &str) -> Self {
        let nats = NatsServer::start().await;
        let emu = emulator().await;
        let config = sink_config(&emu);
        let quota = dastra_connect_dastra::QuotaLimiter::new(&config.dastra.quota);
        let client = dastra_connect_dastra::DastraClient::new(&config.dastra, quota, None).unwrap();
        let store = dastra_connect_core::state::open(&nats.bus_config(), ledger_ns).await.unwrap();
        let ledger = dastra_connect_dastra::sink::ledger::Ledger::new(store);
        Self { nats, emu, client, ledger }
    }
}

/// Applies `event` with `sink::apply::apply` and records its entry, as the driver does; answers the
/// outcome.
pub async fn step(
    ctx: &dastra_connect_dastra::sink::apply::ApplyCtx<'_>,
    event: &ChangeEvent,
) -> dastra_connect_dastra::sink::apply::Outcome {
    use dastra_connect_dastra::sink::apply::{Outcome, apply};
    let outcome = apply(ctx, event).await.unwrap();
    let entry = match &outcome {
        Outcome::Applied { entry, .. } => Some(entry),
        Outcome::Skipped { entry, .. } => entry.as_ref(),
        Outcome::Pending { .. } => None,
    };
    if let Some(entry) = entry {
        ctx.ledger.put(&event.key, entry).await.unwrap();
    }
    outcome
}

/// `ref` → description of every entity of `family` in workspace 1 that has its `ref` yet (a
/// processing gets it from the PATCH right after its create); panics on a duplicate `ref`.
pub fn descriptions_by_ref(emu: &RunningEmulator, family: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for e in emu.state.entities(1, family) {
        let Some(r) = e["ref"].as_str().filter(|r| !r.is_empty()).map(str::to_owned) else { continue };
        let d = e["description"].as_str().unwrap_or_default().to_owned();
        assert!(out.insert(r.clone(), d).is_none(), "{family}: {r} exists twice");
    }
    out
}

/// Two replicas of a sink on one nats-server: `replicas: 2`, indexes 0 and 1.
pub fn nats_replica_pair(nats: &NatsServer) -> (BusConfig, BusConfig) {
    let mut a = nats.nats_config();
    a.replicas = 2;
    a.replica_index = 0;
    let mut b = a.clone();
    b.replica_index = 1;
    (BusConfig::Nats(a), BusConfig::Nats(b))
}

/// Short group sessions for a Kafka bus (6 s, heartbeats every 0.5 s), so that a killed or departed
/// member's partitions move on quickly; the default 45 s would dominate the tests.
pub fn short_sessions(bus: &mut BusConfig) {
    if let BusConfig::Kafka(k) = bus {
        k.properties.insert("session.timeout.ms".into(), "6000".into());
        k.properties.insert("heartbeat.interval.ms".into(), "500".into());
    }
}

/// A free TCP port on 127.0.0.1 (for a webhook receiver to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `POST <path>` on the emulator with its API key; the JSON answer.
pub async fn emu_post(emu: &RunningEmulator, path: &str, body: serde_json::Value) -> serde_json::Value {
    reqwest::Client::new()
        .post(emu.url(path))
        .header("X-API-Key", "emulator-key")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// What a person does in Dastra's UI: `DELETE <path>` on the emulator with its API key, which must
/// succeed.
pub async fn emu_delete(emu: &RunningEmulator, path: &str) {
    let status =
        reqwest::Client::new().delete(emu.url(path)).header("X-API-Key", "emulator-key").send().await.unwrap().status();
    assert!(status.is_success(), "DELETE {path} answered {status}");
}

/// Subscribes a webhook in workspace 1 to `events`, posting to the receiver on `port`; its signature key.
pub async fn subscribe_webhook(emu: &RunningEmulator, port: u16, events: &[&str]) -> String {
    let url = format!("http://127.0.0.1:{port}/webhooks/dastra");
    let sub =
        emu_post(emu, "/v1/WebHookUrls", serde_json::json!({"url": url, "workSpaceId": 1, "subscribedEvents": events}))
            .await;
    sub["signatureKey"].as_str().expect("signatureKey").to_owned()
}

/// The context a connector named `name` gets from the framework, reporting to `metrics`.
pub fn context(name: &str, bus: &BusConfig, topics: &Topics, metrics: &Metrics) -> ConnectorContext {
    ConnectorContext {
        name: name.into(),
        bus: bus.clone(),
        topics: topics.clone(),
        codec: Codec::single_object(),
        metrics: metrics.clone(),
        admin: Admin::new(metrics.clone()),
    }
}

/// A Software Asset labelled `label`.
pub fn software_asset(label: &str) -> Payload {
    Payload::Asset(dastra_connect_core::event::Asset {
        label: Some(label.into()),
        asset_type: Some(dastra_connect_core::event::enums::AssetType::Software),
        ..Default::default()
    })
}

/// `(target id, label)` of every generic relationship in workspace 1 of the emulator.
pub fn generic_links(emu: &RunningEmulator) -> Vec<(String, String)> {
    emu.state
        .entities(1, "GenericRelationships")
        .iter()
        .map(|l| {
            (
                l["target"]["id"].as_str().unwrap_or_default().to_owned(),
                l["label"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
