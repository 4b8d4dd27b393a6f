//! What every connector gets from the framework ([`ConnectorContext`]) and the one trait the CLI
//! drives ([`Connector`]). Connectors are a closed, compile-time set: the CLI's config enum names them
//! and one `match` builds them.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::bus::BusConfig;
use crate::codec::Codec;
use crate::health::{BusCheck, HealthCheck};
use crate::telemetry::Metrics;

/// Topic names, derived from one configurable prefix (default `dastra`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    /// Prefix of every topic (`<prefix>.changes.<entity>`, `<prefix>.events`, `<prefix>-connect.dlq`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_prefix() -> String {
    "dastra".into()
}

impl Default for Topics {
    fn default() -> Self {
        Self { prefix: default_prefix() }
    }
}

impl Topics {
    /// `<prefix>.changes.<suffix>` for an entity kind's change events.
    pub fn changes(&self, kind: crate::event::EntityKind) -> String {
        format!("{}.changes.{}", self.prefix, kind.topic_suffix())
    }
    /// `<prefix>.events`: what Dastra's webhooks report.
    pub fn dastra_events(&self) -> String {
        format!("{}.events", self.prefix)
    }
    /// `<prefix>-connect.dlq`: the dead-letter queue.
    pub fn dlq(&self) -> String {
        format!("{}-connect.dlq", self.prefix)
    }
    /// `<prefix>-connect.state.<name>`: a compacted state topic (checkpoints, ledger).
    pub fn state(&self, name: &str) -> String {
        format!("{}-connect.state.{name}", self.prefix)
    }
}

/// Everything the framework hands a connector when it starts.
#[derive(Clone)]
pub struct ConnectorContext {
    /// The connector instance name (`name:` in the config), used as metric label and CloudEvents source.
    pub name: String,
    /// How to reach the bus.
    pub bus: BusConfig,
    /// Topic names.
    pub topics: Topics,
    /// The payload codec (encodes in the configured format, decodes any).
    pub codec: Codec,
    /// The metric catalogue.
    pub metrics: Metrics,
    /// Readiness and `/status` registration.
    pub admin: Admin,
}

/// A running connector.
#[async_trait]
pub trait Connector: Send {
    /// The connectivity checks of this connector (see [`crate::health`]): run before it is reported
    /// ready, periodically while it runs, and by `validate --check-connectivity`. The default checks
    /// the bus; a connector adds a cheap authenticated call to its own system. Called once, before
    /// [`Connector::run`], in the connector's span.
    fn health_checks(&self, ctx: &ConnectorContext) -> anyhow::Result<Vec<Arc<dyn HealthCheck>>> {
        Ok(vec![Arc::new(BusCheck::new(ctx.bus.clone()))])
    }

    /// Runs until `shutdown` is cancelled (then finishes or safely abandons in-flight work, flushes,
    /// commits) or a fatal error occurs.
    async fn run(self: Box<Self>, ctx: ConnectorContext, shutdown: CancellationToken) -> anyhow::Result<()>;
}
