//! Shared harness of the ServiceNow source tests: a bus (real nats-server or MockCluster) with the
//! topics created, the fake ServiceNow, a running source connector, and a reader that collects and
//! decodes everything published to the change topics and the DLQ.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dastra_connect_core::admin::Admin;
use dastra_connect_core::bus::{BusConfig, SubscriberEvent, TopicSpec};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::config::Secret;
use dastra_connect_core::connector::{Connector, ConnectorContext, Topics};
use dastra_connect_core::event::{ChangeEvent, EntityKind};
use dastra_connect_core::source::{SourceAuth, SourceEngine};
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_core::testkit::{self, MockKafka, NatsServer};
use dastra_connect_servicenow::fake::RunningFake;
use dastra_connect_servicenow::{ServiceNowConfig, ServiceNowSource};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The broker a scenario runs on; dropping it stops the broker.
pub enum Broker {
    /// A real nats-server with JetStream.
    Nats(NatsServer),
    /// librdkafka's MockCluster.
    Kafka(MockKafka),
}

/// Names of the source and sink instances used by the scenarios.
pub const SOURCE: &str = "servicenow-test";
pub const SINK: &str = "sink";

impl Broker {
    pub async fn nats() -> Self {
        Broker::Nats(NatsServer::start().await)
    }

    pub fn kafka() -> Self {
        Broker::Kafka(testkit::mock_kafka(1))
    }

    /// The bus config with every topic the source and the sink use created (the MockCluster has no
    /// CreateTopics API) and, on NATS, the stream.
    pub async fn bus(&self, topics: &Topics) -> BusConfig {
        let bus = match self {
            Broker::Nats(n) => n.bus_config(),
            Broker::Kafka(k) => {
                for kind in EntityKind::ALL {
                    k.create_topic(&topics.changes(kind), 3);
                }
                k.create_topic(&topics.dlq(), 1);
                for s in ["source", "known"] {
                    k.create_topic(&topics.state(&format!("{s}-{SOURCE}")), 1);
                }
                for s in ["ledger", "pending", "parked"] {
                    k.create_topic(&topics.state(&format!("{s}-{SINK}")), 1);
                }
                let mut cfg = k.kafka_config();
                cfg.create_topics = false;
                BusConfig::Kafka(cfg)
            }
        };
        let mut specs: Vec<TopicSpec> = EntityKind::ALL.iter().map(|k| TopicSpec::new(topics.changes(*k))).collect();
        specs.push(TopicSpec::new(topics.dlq()));
        bus.ensure_topics(&specs).await.unwrap();
        bus
    }
}

/// A source config for the fake, basic auth `admin`/`admin`, fast polling.
pub fn config(fake: &RunningFake) -> ServiceNowConfig {
    let yaml = format!(
        r#"
instance_url: {url}
auth: {{type: basic, username: admin, password: admin}}
sync: {{poll_interval: 300ms, look_back: 60s, page_size: 4, sweep_interval: 1h}}
http: {{initial_backoff: 50ms, max_backoff: 2s}}
"#,
        url = fake.base_url
    );
    let c: ServiceNowConfig = serde_yaml::from_str(&yaml).unwrap();
    c.validate("test").unwrap();
    c
}

/// OAuth2 client credentials against the fake's token endpoint.
pub fn oauth(fake: &RunningFake) -> SourceAuth {
    SourceAuth::Oauth2 {
        token_url: format!("{}/oauth_token.do", fake.base_url).parse().unwrap(),
        client_id: "dastra".into(),
        client_secret: Secret::new("dastra-secret"),
        scope: None,
        refresh_before: Duration::from_secs(60),
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
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
    pub metrics: Metrics,
}

impl RunningSource {
    pub fn start(bus: &BusConfig, topics: &Topics, config: ServiceNowConfig) -> Self {
        let (ctx, metrics, _admin) = context(SOURCE, bus, topics);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(Box::new(ServiceNowSource::new(config)).run(ctx, shutdown.clone()));
        Self { shutdown, task, metrics }
    }

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
    pub topic: String,
    pub key: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub value: Vec<u8>,
    /// The decoded change event (None for DLQ records).
    pub event: Option<ChangeEvent>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Collects everything published to the change topics and the DLQ.
pub struct Reader {
    pub got: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reader {
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
                // Read each value on its own: the lock is not reentrant.
                let count = self.got.lock().len();
                let keys: Vec<String> = self.latest().keys().cloned().collect();
                panic!("timed out waiting for {what}; got {count} messages: {keys:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The state-store names the source uses (for tests that inspect checkpoints).
pub fn store_names(bus: &BusConfig, topics: &Topics) -> [String; 2] {
    let (ctx, _, _) = context(SOURCE, bus, topics);
    SourceEngine::store_names(&ctx)
}
