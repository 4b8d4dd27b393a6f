//! Readers of existing topics: **Debezium** change-event topics (`type: debezium`) and any other
//! topic of the company's own streams (`type: topic`), turned into change events through jq
//! mappings. One reader ([`reader::TopicReader`]) does the consuming, decoding, mapping, deletes,
//! publishing and committing; a [`reader::RecordRule`] says what a record means
//! ([`DebeziumRule`], [`TopicRule`]). See the crate README for configuration and guarantees, and
//! `docs/debezium-events.md` for the Debezium format facts.

pub mod config;
pub mod debezium;
pub mod decode;
pub mod envelope;
pub mod health;
pub mod reader;
pub mod samples;
pub mod topic;

use std::sync::Arc;

use async_trait::async_trait;
use dastra_connect_core::connector::{Connector, ConnectorContext};
use dastra_connect_core::health::HealthCheck;
use tokio_util::sync::CancellationToken;

pub use config::{ConsumerSettings, ReaderConfig, ReaderKind, TopicConfig};
pub use debezium::DebeziumRule;
pub use reader::TopicReader;
pub use topic::TopicRule;

/// `type: debezium`: reads Debezium change-event topics.
pub struct DebeziumSource {
    config: ReaderConfig,
}

impl DebeziumSource {
    /// A connector for `config` (validated by the caller).
    pub fn new(config: ReaderConfig) -> Self {
        DebeziumSource { config }
    }
}

#[async_trait]
impl Connector for DebeziumSource {
    fn health_checks(&self, ctx: &ConnectorContext) -> anyhow::Result<Vec<Arc<dyn HealthCheck>>> {
        health::reader_checks(&self.config, ctx)
    }

    async fn run(self: Box<Self>, ctx: ConnectorContext, shutdown: CancellationToken) -> anyhow::Result<()> {
        let rule = DebeziumRule::new(&self.config, self.config.key_system(ReaderKind::Debezium))?;
        TopicReader::new(rule, ReaderKind::Debezium.as_str(), self.config).run(ctx, shutdown).await
    }
}

/// `type: topic`: reads any existing topic with `key`/`version`/`delete` programs.
pub struct TopicSource {
    config: ReaderConfig,
}

impl TopicSource {
    /// A connector for `config` (validated by the caller).
    pub fn new(config: ReaderConfig) -> Self {
        TopicSource { config }
    }
}

#[async_trait]
impl Connector for TopicSource {
    fn health_checks(&self, ctx: &ConnectorContext) -> anyhow::Result<Vec<Arc<dyn HealthCheck>>> {
        health::reader_checks(&self.config, ctx)
    }

    async fn run(self: Box<Self>, ctx: ConnectorContext, shutdown: CancellationToken) -> anyhow::Result<()> {
        let rule = TopicRule::new(&self.config, self.config.key_system(ReaderKind::Topic))?;
        TopicReader::new(rule, ReaderKind::Topic.as_str(), self.config).run(ctx, shutdown).await
    }
}
