//! The Dastra sink (`type: dastra_sink`): consumes change events from Kafka or NATS and upserts them
//! into Dastra idempotently, coalescing per entity and within the API quota. See `README.md` of this
//! crate and DESIGN.md §6.
//!
//! Roles: [`config`] (what users set), [`ledger`] (what Dastra holds, on the bus), [`apply`] (one
//! event → the cheapest requests), [`driver`] (consume, coalesce, commit), [`tracker`] (commit
//! watermarks), [`dlq`] (dead-letter records).

pub mod apply;
pub mod config;
pub mod dlq;
pub mod driver;
pub mod ledger;
pub mod tracker;

use std::sync::Arc;

use async_trait::async_trait;
use dastra_connect_core::bus::TopicSpec;
use dastra_connect_core::connector::{Connector, ConnectorContext};
use dastra_connect_core::state;
use dastra_connect_core::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

pub use config::DastraSinkConfig;

use crate::client::{RequestEvent, RequestObserver};
use crate::{DastraClient, QuotaLimiter};

/// The sink connector.
pub struct DastraSink {
    config: DastraSinkConfig,
}

impl DastraSink {
    /// A sink for `config` (validated by the caller).
    pub fn new(config: DastraSinkConfig) -> Self {
        Self { config }
    }
}

/// Counts every Dastra request attempt in the metric catalogue.
struct MetricsObserver {
    name: String,
    metrics: Metrics,
}

impl RequestObserver for MetricsObserver {
    fn request_done(&self, e: &RequestEvent) {
        let status = e.status.map(|s| s.to_string());
        let status = status.as_deref().or(e.transport_error).unwrap_or("none");
        let m = &self.metrics;
        m.dastra_requests.with_label_values(&[&self.name, e.method, e.route, status]).inc();
        m.dastra_request_seconds.with_label_values(&[&self.name, e.method, e.route]).observe(e.duration.as_secs_f64());
        m.quota_wait_seconds.with_label_values(&[&self.name, e.priority.as_str()]).inc_by(e.quota_wait.as_secs_f64());
        if e.status == Some(429) {
            m.dastra_throttled.with_label_values(&[&self.name]).inc();
        }
    }
}

/// State-store names of a sink instance.
pub fn store_names(ctx: &ConnectorContext) -> [String; 3] {
    [
        ctx.topics.state(&format!("ledger-{}", ctx.name)),
        ctx.topics.state(&format!("pending-{}", ctx.name)),
        ctx.topics.state(&format!("parked-{}", ctx.name)),
    ]
}

#[async_trait]
impl Connector for DastraSink {
    async fn run(self: Box<Self>, ctx: ConnectorContext, shutdown: CancellationToken) -> anyhow::Result<()> {
        let topics: Vec<String> = self.config.kinds().into_iter().map(|k| ctx.topics.changes(k)).collect();
        let dlq_topic = ctx.topics.dlq();
        let mut specs: Vec<TopicSpec> = topics.iter().cloned().map(TopicSpec::new).collect();
        specs.push(TopicSpec::new(dlq_topic.clone()));
        ctx.bus.ensure_topics(&specs).await?;
        let ready = ctx.admin.readiness(&ctx.name);

        let [ledger_ns, pending_ns, parked_ns] = store_names(&ctx);
        let ledger = sink_ledger(&ctx, &ledger_ns).await?;
        let pending = state::open(&ctx.bus, &pending_ns).await?;
        let parked = state::open(&ctx.bus, &parked_ns).await?;
        let quota = QuotaLimiter::new(&self.config.dastra.quota);
        let observer = Arc::new(MetricsObserver { name: ctx.name.clone(), metrics: ctx.metrics.clone() });
        let client = DastraClient::new(&self.config.dastra, quota.clone(), Some(observer))?;
        let publisher = ctx.bus.publisher().await?;
        let subscriber = ctx.bus.subscriber(&ctx.name, &topics).await?;
        tracing::info!(connector = %ctx.name, ledger = ledger.len(), pending = pending.len(), parked = parked.len(), "dastra sink started");

        let status = Arc::new(parking_lot::Mutex::new(driver::SinkStatus::default()));
        {
            let status = status.clone();
            let quota = quota.clone();
            ctx.admin.status_provider(&ctx.name, move || {
                serde_json::json!({
                    "type": "dastra_sink",
                    "sink": *status.lock(),
                    "quota": format!("{:?}", quota.snapshot()),
                })
            });
        }
        let shared = Arc::new(driver::Shared {
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
        });
        ready.set(true);
        let result = driver::Driver::new(shared, status).run(subscriber, shutdown).await;
        ready.set(false);
        result
    }
}

async fn sink_ledger(ctx: &ConnectorContext, ns: &str) -> anyhow::Result<ledger::Ledger> {
    Ok(ledger::Ledger::new(state::open(&ctx.bus, ns).await?))
}
