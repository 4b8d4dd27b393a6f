//! [`SourceConnector`]: the `Connector` of every source, written once. A connector crate describes
//! its source ([`SourceDefinition`], usually on its config type): the engine streams, how to build
//! the system (client + start-up checks), the key system and `sync:` settings, and its `/status`
//! document. Running it is always the same: compile the streams (a bad mapping stops here), build
//! the system, publish the status, run the [`SourceEngine`] until shutdown.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::engine::{SourceEngine, SourceSystem, StreamSpec};
use super::{SourceError, SourceSettings};
use crate::connector::{Connector, ConnectorContext};

/// What a source connector fills in.
#[async_trait]
pub trait SourceDefinition: Send + Sync + 'static {
    /// The engine streams, one per configured stream with its compiled mapping.
    fn streams(&self) -> Result<Vec<StreamSpec>, SourceError>;
    /// The system the engine reads: the client, then any start-up check against the system (an
    /// error here stops the connector before anything is published).
    async fn system(&self) -> Result<Arc<dyn SourceSystem>, SourceError>;
    /// The system segment of the entity keys (`key_system`) and the `sync:` settings (polling,
    /// look-back, page size, sweeps).
    fn settings(&self) -> (&str, &SourceSettings);
    /// The connector's `/status` document: its type and what it reads.
    fn status(&self) -> Value;
}

/// A source connector: runs its [`SourceDefinition`] on the engine.
pub struct SourceConnector<D> {
    definition: D,
}

impl<D: SourceDefinition> SourceConnector<D> {
    /// A connector for `definition` (a config validated by the caller).
    pub fn new(definition: D) -> Self {
        SourceConnector { definition }
    }

    /// What it runs.
    pub fn definition(&self) -> &D {
        &self.definition
    }
}

#[async_trait]
impl<D: SourceDefinition> Connector for SourceConnector<D> {
    async fn run(self: Box<Self>, ctx: ConnectorContext, shutdown: CancellationToken) -> anyhow::Result<()> {
        let d = self.definition;
        let streams = d.streams()?;
        let system = d.system().await?;
        let (key_system, sync) = d.settings();
        SourceEngine::new(ctx, system, key_system, streams, sync.clone()).run_with_status(d.status(), shutdown).await
    }
}
