//! DataHub source: reads DataHub's own **MetadataChangeLog** topic (`MetadataChangeLog_Versioned_v1`,
//! Avro through a Confluent schema registry) with the topic reader of `dastra-connect-debezium` and
//! the [`mcl::DataHubRule`]: classified schema fields → DataFields (tag / glossary term →
//! personal-data category and sensitivity), datasets → Dastra datasets grouping them and Assets,
//! data platforms → Assets, data jobs (lineage) → DataProcessings, entity deletes and
//! `status.removed` → deletes. See the crate README and
//! `docs/datahub-mcl.md`.

pub mod config;
pub mod mapping;
pub mod mcl;
pub mod samples;

use std::sync::Arc;

use async_trait::async_trait;
use dastra_connect_core::connector::{Connector, ConnectorContext};
use dastra_connect_core::health::HealthCheck;
use dastra_connect_core::state;
use dastra_connect_debezium::TopicReader;
use tokio_util::sync::CancellationToken;

pub use config::DataHubConfig;
pub use mcl::DataHubRule;

/// `type: datahub`.
pub struct DataHubSource {
    config: DataHubConfig,
}

impl DataHubSource {
    /// A connector for `config` (validated by the caller).
    pub fn new(config: DataHubConfig) -> Self {
        DataHubSource { config }
    }

    /// The state store namespace of the entities' remembered aspects.
    pub fn aspects_store(ctx: &ConnectorContext) -> String {
        ctx.topics.state(&format!("aspects-{}", ctx.name))
    }
}

#[async_trait]
impl Connector for DataHubSource {
    fn health_checks(&self, ctx: &ConnectorContext) -> anyhow::Result<Vec<Arc<dyn HealthCheck>>> {
        dastra_connect_debezium::health::reader_checks(&self.config.reader_config(), ctx)
    }

    async fn run(self: Box<Self>, ctx: ConnectorContext, shutdown: CancellationToken) -> anyhow::Result<()> {
        let store = state::open(&ctx.bus, &Self::aspects_store(&ctx)).await?;
        TopicReader::new(DataHubRule::new(store), "datahub", self.config.reader_config()).run(ctx, shutdown).await
    }
}
