//! The Dastra sink (`type: dastra_sink`): consumes change events from Kafka or NATS and upserts them
//! into Dastra idempotently, coalescing per entity and within the API quota. See `README.md` of this
//! crate.
//!
//! Roles: [`config`] (what users set), [`ledger`] (what Dastra holds, on the bus), [`apply`] (one
//! event → the cheapest requests), [`order`] (the newest version wins: one rule for every path),
//! [`driver`] (consume, coalesce, commit; split into the loop, its workers, held events and
//! offsets), [`tracker`] (commit watermarks), [`dlq`] (dead-letter records).

pub mod apply;
pub mod config;
pub mod dlq;
pub mod driver;
pub mod ledger;
pub mod objects;
pub mod order;
pub mod plan;
pub mod tracker;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use dastra_connect_core::bus::TopicSpec;
use dastra_connect_core::connector::{Connector, ConnectorContext};
use dastra_connect_core::health::{BusCheck, HealthCheck};
use dastra_connect_core::state;
use tokio_util::sync::CancellationToken;

pub use config::DastraSinkConfig;

use crate::{DastraClient, MetricsObserver, QuotaLimiter};

/// The sink connector.
pub struct DastraSink {
    config: DastraSinkConfig,
    /// The quota, metrics observer and client, built once: the health check and the driver share them.
    parts: OnceLock<Parts>,
}

#[derive(Clone)]
struct Parts {
    quota: QuotaLimiter,
    observer: MetricsObserver,
    client: DastraClient,
}

impl DastraSink {
    /// A sink for `config` (validated by the caller).
    pub fn new(config: DastraSinkConfig) -> Self {
        Self { config, parts: OnceLock::new() }
    }

    fn parts(&self, ctx: &ConnectorContext) -> anyhow::Result<Parts> {
        if let Some(p) = self.parts.get() {
            return Ok(p.clone());
        }
        let quota = QuotaLimiter::new(&self.config.dastra.quota);
        let observer = MetricsObserver::new(ctx.metrics.clone(), ctx.name.clone());
        let client = DastraClient::new(&self.config.dastra, quota.clone(), Some(Arc::new(observer.clone())))?;
        let parts = self.parts.get_or_init(|| Parts { quota, observer, client }).clone();
        // The webhook receiver's backfill in this process, with the same key, queues behind it.
        parts.quota.register(&self.config.dastra.quota_key());
        Ok(parts)
    }
}

/// State-store names of a sink instance.
pub fn store_names(ctx: &ConnectorContext) -> [String; 3] {
    store_names_of(&ctx.topics, &ctx.name)
}

/// State-store names (ledger, pending, parked) of the sink `name` under `topics`.
pub fn store_names_of(topics: &dastra_connect_core::connector::Topics, name: &str) -> [String; 3] {
    [
        topics.state(&format!("ledger-{name}")),
        topics.state(&format!("pending-{name}")),
        topics.state(&format!("parked-{name}")),
    ]
}

#[async_trait]
impl Connector for DastraSink {
    /// The bus, then `GET /me` through the sink's own client (same quota, same metrics).
    fn health_checks(&self, ctx: &ConnectorContext) -> anyhow::Result<Vec<Arc<dyn HealthCheck>>> {
        let client = self.parts(ctx)?.client;
        Ok(vec![Arc::new(BusCheck::new(ctx.bus.clone())), Arc::new(crate::health::DastraCheck::new(client))])
    }

    async fn run(self: Box<Self>, ctx: ConnectorContext, shutdown: CancellationToken) -> anyhow::Result<()> {
        let topics: Vec<String> = self.config.kinds().into_iter().map(|k| ctx.topics.changes(k)).collect();
        let dlq_topic = ctx.topics.dlq();
        let mut specs: Vec<TopicSpec> = topics.iter().cloned().map(TopicSpec::new).collect();
        specs.push(TopicSpec::new(dlq_topic.clone()));
        ctx.bus.ensure_topics(&specs).await?;
        let ready = ctx.admin.readiness(&ctx.name);

        let [ledger_ns, pending_ns, parked_ns] = store_names(&ctx);
        let ledger = sink_ledger(&ctx, &ledger_ns)
            .await?
            .with_encoding(self.config.ledger_encoding)
            .with_batching(self.config.ledger_batch, self.config.ledger_batch_delay);
        let pending = state::open(&ctx.bus, &pending_ns).await?;
        let parked = state::open(&ctx.bus, &parked_ns).await?;
        let Parts { quota, observer, client } = self.parts(&ctx)?;
        let publisher = ctx.bus.publisher().await?;
        let mut total_partitions = 0u32;
        for t in &topics {
            total_partitions += ctx.bus.partition_count(t).await? as u32;
        }
        let objects: Option<Arc<dyn apply::ObjectStore>> = match &ctx.bus {
            dastra_connect_core::bus::BusConfig::Nats(n) => Some(Arc::new(objects::NatsObjects::connect(n).await?)),
            _ => None,
        };
        let subscriber = ctx.bus.subscriber(&ctx.name, &topics).await?;
        tracing::info!(connector = %ctx.name, ledger = ledger.len(), pending = pending.len(), parked = parked.len(), "dastra sink started");

        let status = Arc::new(parking_lot::Mutex::new(driver::SinkStatus::default()));
        {
            let status = status.clone();
            let quota = quota.clone();
            let observer = observer.clone();
            let (metrics, name) = (ctx.metrics.clone(), ctx.name.clone());
            ctx.admin.status_provider(&ctx.name, move || {
                let snapshot = quota.snapshot();
                // /status is polled by people and probes: refresh the quota gauges at the same time.
                observer.export_quota(&snapshot);
                serde_json::json!({
                    "type": "dastra_sink",
                    "sink": *status.lock(),
                    "quota": snapshot,
                    "requests_per_minute": observer.requests_per_minute(chrono::Utc::now().timestamp()),
                    "throttled_total": counter_total(&metrics, "dastra_connect_dastra_throttled_total", &name, None),
                    "dlq": counter_total(&metrics, "dastra_connect_dlq_events_total", &name, Some("reason")),
                    "redrive_command": format!("dastra-connect dlq redrive --config <this config file> --connector {name}"),
                })
            });
        }
        let batcher = apply::RequestBatcher::new(self.config.batch_window, self.config.batch_max);
        let shared = Arc::new(driver::SinkServices {
            name: ctx.name.clone(),
            config: self.config,
            client,
            ledger,
            pending,
            parked,
            publisher,
            dlq_topic,
            codec: ctx.codec.clone(),
            metrics: ctx.metrics.clone(),
            quota,
            total_partitions,
            objects,
            batcher,
        });
        {
            // Batch writes of the ledger failing for a while make the sink not ready (read at each
            // `/readyz`): it runs on, but commits nothing of what it staged.
            let ledger = shared.ledger.clone();
            ctx.admin.ready_condition(&ctx.name, move || driver::ledger_not_ready(&ledger));
        }
        ready.set(true);
        let result = driver::Driver::new(shared, status).run(subscriber, shutdown).await;
        ready.set(false);
        result
    }
}

/// The value of counter `family` for `connector`: a number, or per value of `by` when given.
fn counter_total(
    metrics: &dastra_connect_core::telemetry::Metrics,
    family: &str,
    connector: &str,
    by: Option<&str>,
) -> serde_json::Value {
    let mut total = 0u64;
    let mut split = serde_json::Map::new();
    for f in metrics.registry().gather().iter().filter(|f| f.name() == family) {
        for m in f.get_metric() {
            let label = |n: &str| m.get_label().iter().find(|l| l.name() == n).map(|l| l.value().to_owned());
            if label("connector").as_deref() != Some(connector) {
                continue;
            }
            let v = m.get_counter().get_value() as u64;
            total += v;
            if let Some(b) = by {
                let key = label(b).unwrap_or_default();
                let old = split.get(&key).and_then(serde_json::Value::as_u64).unwrap_or(0);
                split.insert(key, (old + v).into());
            }
        }
    }
    if by.is_some() { serde_json::json!({"total": total, "by_reason": split}) } else { total.into() }
}

async fn sink_ledger(ctx: &ConnectorContext, ns: &str) -> anyhow::Result<ledger::Ledger> {
    Ok(ledger::Ledger::new(state::open(&ctx.bus, ns).await?))
}
