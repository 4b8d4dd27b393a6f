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
pub mod order;
pub mod tracker;

use std::sync::Arc;

use async_trait::async_trait;
use dastra_connect_core::bus::TopicSpec;
use dastra_connect_core::connector::{Connector, ConnectorContext};
use dastra_connect_core::state;
use tokio_util::sync::CancellationToken;

pub use config::DastraSinkConfig;

use crate::{DastraClient, MetricsObserver, QuotaLimiter};

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
        let observer = MetricsObserver::new(ctx.metrics.clone(), ctx.name.clone());
        let client = DastraClient::new(&self.config.dastra, quota.clone(), Some(Arc::new(observer.clone())))?;
        let publisher = ctx.bus.publisher().await?;
        let mut total_partitions = 0u32;
        for t in &topics {
            total_partitions += ctx.bus.partition_count(t).await? as u32;
        }
        let subscriber = ctx.bus.subscriber(&ctx.name, &topics).await?;
        tracing::info!(connector = %ctx.name, ledger = ledger.len(), pending = pending.len(), parked = parked.len(), "dastra sink started");

        let status = Arc::new(parking_lot::Mutex::new(driver::SinkStatus::default()));
        {
            let status = status.clone();
            let quota = quota.clone();
            let observer = observer.clone();
            ctx.admin.status_provider(&ctx.name, move || {
                let snapshot = quota.snapshot();
                // /status is polled by people and probes: refresh the quota gauges at the same time.
                observer.export_quota(&snapshot);
                serde_json::json!({
                    "type": "dastra_sink",
                    "sink": *status.lock(),
                    "quota": snapshot,
                })
            });
        }
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
