//! Test harness shared by the source connectors' tests: a bus (real nats-server or MockCluster) with
//! the topics created, a running source connector, a reader that collects and decodes everything
//! published to the change topics and the DLQ, and the Dastra sink + emulator for end-to-end runs.
//! Test support: it panics with a message on any failure, so `unwrap` is its way to fail a test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dastra_connect_core::admin::Admin;
use dastra_connect_core::bus::{BusConfig, SubscriberEvent, TopicSpec};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::config::Secret;
use dastra_connect_core::connector::{Connector, ConnectorContext, Topics};
use dastra_connect_core::event::{ChangeEvent, EntityKind, Payload};
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_core::testkit;
use dastra_connect_dastra::sink::{DastraSink, DastraSinkConfig};
use dastra_connect_dastra::{AuthConfig, DastraClientConfig};
use dastra_emulator::{EmulatorConfig, RunningEmulator};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Names of the source and sink instances used by the scenarios.
pub const SOURCE: &str = "source-test";
/// Name of the sink instance in end-to-end scenarios.
pub const SINK: &str = "sink";

pub use dastra_connect_core::testkit::Broker;

/// The bus of a source scenario.
#[allow(async_fn_in_trait)]
pub trait SourceBus {
    /// The bus config with every topic the source and the sink use created (the MockCluster has no
    /// CreateTopics API) and, on NATS, the stream.
    async fn bus(&self, topics: &Topics) -> BusConfig;
}

impl SourceBus for Broker {
    async fn bus(&self, topics: &Topics) -> BusConfig {
        let stores = [format!("source-{SOURCE}"), format!("known-{SOURCE}")]
            .into_iter()
            .chain(["ledger", "pending", "parked"].map(|s| format!("{s}-{SINK}")))
            .collect::<Vec<_>>();
        let bus = self.bus_with_stores(topics, &stores).await;
        let mut specs: Vec<TopicSpec> = EntityKind::ALL.iter().map(|k| TopicSpec::new(topics.changes(*k))).collect();
        specs.push(TopicSpec::new(topics.dlq()));
        bus.ensure_topics(&specs).await.unwrap();
        bus
    }
}

/// A connector context on `bus`.
pub fn context(name: &str, bus: &BusConfig, topics: &Topics) -> (ConnectorContext, Metrics, Admin) {
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
    (ctx, metrics, admin)
}

/// A running source connector.
pub struct RunningSource {
    /// Cancels the connector.
    pub shutdown: CancellationToken,
    /// The connector's task.
    pub task: JoinHandle<anyhow::Result<()>>,
    /// The connector's metrics.
    pub metrics: Metrics,
}

impl RunningSource {
    /// Runs `connector` on `bus` as instance [`SOURCE`].
    pub fn start(bus: &BusConfig, topics: &Topics, connector: Box<dyn Connector>) -> Self {
        let (ctx, metrics, _admin) = context(SOURCE, bus, topics);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(connector.run(ctx, shutdown.clone()));
        Self { shutdown, task, metrics }
    }

    /// Runs `connector` like [`RunningSource::start`], answering its health checks too (the same
    /// connector instance: they share its system, as under `dastra-connect run`).
    pub fn start_checked(
        bus: &BusConfig,
        topics: &Topics,
        connector: Box<dyn Connector>,
    ) -> (Self, Vec<Arc<dyn dastra_connect_core::health::HealthCheck>>) {
        let (ctx, metrics, _admin) = context(SOURCE, bus, topics);
        let checks = connector.health_checks(&ctx).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(connector.run(ctx, shutdown.clone()));
        (Self { shutdown, task, metrics }, checks)
    }

    /// Cancels the connector and waits for it to return cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task).await.unwrap().unwrap().unwrap();
    }

    /// A metric sample from the rendered exposition (first line starting with `prefix`).
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        self.metrics.render().lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

/// A message read back.
#[derive(Debug, Clone)]
pub struct Received {
    /// Topic.
    pub topic: String,
    /// Message key.
    pub key: String,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Value.
    pub value: Vec<u8>,
    /// The decoded change event (None for DLQ records).
    pub event: Option<ChangeEvent>,
}

impl Received {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Collects everything published to the change topics and the DLQ.
pub struct Reader {
    /// Everything received so far.
    pub got: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reader {
    /// Subscribes to every change topic and the DLQ from the beginning.
    pub async fn start(bus: &BusConfig, topics: &Topics) -> Reader {
        let mut names: Vec<String> = EntityKind::ALL.iter().map(|k| topics.changes(*k)).collect();
        names.push(topics.dlq());
        let group = testkit::unique("reader");
        let mut sub = bus.subscriber(&group, &names).await.unwrap();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = got.clone();
        let dlq = topics.dlq();
        let task = tokio::spawn(async move {
            let codec = Codec::single_object();
            loop {
                let Ok(ev) = sub.next_event().await else { break };
                if let SubscriberEvent::Message(m) = ev {
                    let value = m.payload.as_ref().map(|p| p.to_vec()).unwrap_or_default();
                    let event = if m.topic == dlq {
                        None
                    } else {
                        Some(
                            ChangeEvent::from_parts(&m.headers, &value, &codec)
                                .await
                                .expect("a change event that decodes"),
                        )
                    };
                    sink.lock().push(Received {
                        topic: m.topic.clone(),
                        key: String::from_utf8_lossy(&m.key).into_owned(),
                        headers: m.headers.clone(),
                        value,
                        event,
                    });
                }
            }
        });
        Reader { got, task }
    }

    /// Every decoded change event.
    pub fn events(&self) -> Vec<ChangeEvent> {
        self.got.lock().iter().filter_map(|r| r.event.clone()).collect()
    }

    /// DLQ records.
    pub fn dlq(&self) -> Vec<Received> {
        self.got.lock().iter().filter(|r| r.event.is_none()).cloned().collect()
    }

    /// The newest event per key (by sequence), ignoring duplicates.
    pub fn latest(&self) -> BTreeMap<String, ChangeEvent> {
        let mut out: BTreeMap<String, ChangeEvent> = BTreeMap::new();
        for e in self.events() {
            match out.get(e.key.as_str()) {
                Some(old) if !dastra_connect_core::event::is_newer(&e.sequence, &old.sequence) => {}
                _ => {
                    out.insert(e.key.as_str().to_owned(), e);
                }
            }
        }
        out
    }

    /// Waits until `pred` holds on the reader (polling), panicking with `what` after `timeout`.
    pub async fn wait_until(&self, what: &str, timeout: Duration, pred: impl Fn(&Reader) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !pred(self) {
            if tokio::time::Instant::now() >= deadline {
                // One lock at a time: the mutex is not reentrant.
                let n = self.got.lock().len();
                let latest: Vec<String> = self.latest().iter().map(|(k, e)| format!("{k} {:?}", e.op)).collect();
                let dlq: Vec<Option<String>> = self.dlq().iter().map(|d| d.header("dastra_dlq_error")).collect();
                panic!("timed out waiting for {what}; got {n} messages: {latest:#?}; DLQ: {dlq:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Upserts (op) of `kind` among the newest events.
pub fn count(latest: &BTreeMap<String, ChangeEvent>, kind: EntityKind, op: dastra_connect_core::event::Op) -> usize {
    latest.values().filter(|e| e.kind() == kind && e.op == op).count()
}

/// The newest event of an Asset (by label), Actor (by company name) or Contract (by label).
pub fn by_label<'a>(latest: &'a BTreeMap<String, ChangeEvent>, label: &str) -> Option<&'a ChangeEvent> {
    latest.values().find(|e| match &e.data {
        Payload::Asset(a) => a.label.as_deref() == Some(label),
        Payload::Actor(a) => a.company_name.as_deref() == Some(label),
        Payload::Contract(c) => c.label.as_deref() == Some(label),
        _ => false,
    })
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
    cfg
}

/// A fresh emulator without quota.
pub async fn emulator() -> RunningEmulator {
    dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![])).await.unwrap()
}

/// A running sink.
pub struct RunningSink {
    /// Cancels the connector.
    pub shutdown: CancellationToken,
    /// The connector's task.
    pub task: JoinHandle<anyhow::Result<()>>,
    /// The connector's admin state (`/status`).
    pub admin: Admin,
}

impl RunningSink {
    /// Runs the Dastra sink as instance [`SINK`].
    pub fn start(bus: &BusConfig, topics: &Topics, config: DastraSinkConfig) -> Self {
        let (ctx, _metrics, admin) = context(SINK, bus, topics);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Box::new(DastraSink::new(config)).run(ctx, shutdown.clone()));
        Self { shutdown, task, admin }
    }

    /// Cancels the sink and waits for it to return cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task).await.unwrap().unwrap().unwrap();
    }
}

/// Waits until `pred` holds on the emulator's workspace 1, panicking with a dump after `timeout`.
pub async fn wait_emulator(
    emu: &RunningEmulator,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&RunningEmulator) -> bool,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !pred(emu) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what} in the emulator: assets {:?} actors {:?} contracts {:?} relationships {:?}; failed requests {:?}",
            labels(emu, "Assets", "label"),
            labels(emu, "Actors", "companyName"),
            labels(emu, "Contracts", "label"),
            emu.state.entities(1, "GenericRelationships").len(),
            emu.state
                .request_log()
                .iter()
                .filter(|r| r.status >= 400)
                .map(|r| format!("{} {} {}", r.method, r.path, r.status))
                .take(10)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sorted values of `field` of a family in workspace 1.
pub fn labels(emu: &RunningEmulator, family: &str, field: &str) -> Vec<String> {
    let mut v: Vec<String> =
        emu.state.entities(1, family).iter().filter_map(|e| e[field].as_str().map(str::to_owned)).collect();
    v.sort();
    v
}
