//! [`SourceConnector`]: the `Connector` of every source, written once. A connector crate describes
//! its source ([`SourceDefinition`], usually on its config type): the engine streams, how to build
//! the system (client + start-up checks), the key system and `sync:` settings, and its `/status`
//! document. Running it is always the same: compile the streams (a bad mapping stops here), build
//! the system, publish the status, run the [`SourceEngine`] until shutdown.
//!
//! Its health checks are the bus and the source system itself ([`SystemCheck`]): the system is built
//! (client, token, start-up checks) and answers an authenticated read. While the engine runs, its
//! own successful calls count as the check passing, so a busy source pays no extra request; an idle
//! one pays one per `admin.health_interval`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::cursor::Cursor;
use super::engine::{DeletedRecord, Page, SourceEngine, SourceRecord, SourceSystem, StreamSpec};
use super::{SourceError, SourceSettings};
use crate::connector::{Connector, ConnectorContext};
use crate::health::{BusCheck, HealthCheck, HealthError};
use crate::{Classify as _, ErrorClass};

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
    definition: Arc<D>,
    system: Arc<SharedSystem>,
}

impl<D: SourceDefinition> SourceConnector<D> {
    /// A connector for `definition` (a config validated by the caller).
    pub fn new(definition: D) -> Self {
        SourceConnector { definition: Arc::new(definition), system: Arc::default() }
    }

    /// What it runs.
    pub fn definition(&self) -> &D {
        &self.definition
    }
}

#[async_trait]
impl<D: SourceDefinition> Connector for SourceConnector<D> {
    fn health_checks(&self, ctx: &ConnectorContext) -> anyhow::Result<Vec<Arc<dyn HealthCheck>>> {
        // The first configured stream is the one probed (a config lists at least one).
        let stream = self.definition.streams()?.into_iter().next().map(|s| s.name);
        let system = SystemCheck {
            definition: self.definition.clone() as Arc<dyn SourceDefinition>,
            system: self.system.clone(),
            stream,
            seen: AtomicU64::new(u64::MAX),
        };
        Ok(vec![Arc::new(BusCheck::new(ctx.bus.clone())), Arc::new(system)])
    }

    async fn run(self: Box<Self>, ctx: ConnectorContext, shutdown: CancellationToken) -> anyhow::Result<()> {
        let d = self.definition;
        let streams = d.streams()?;
        let system = self.system.get(d.as_ref()).await?;
        let (key_system, sync) = d.settings();
        SourceEngine::new(ctx, system, key_system, streams, sync.clone()).run_with_status(d.status(), shutdown).await
    }
}

/// The system a connector's health check and engine share: built once (the first successful build
/// wins; a failed one is retried by the next caller), with a count of the calls that succeeded.
#[derive(Default)]
struct SharedSystem {
    built: OnceCell<Arc<Tracked>>,
}

impl SharedSystem {
    async fn tracked(&self, definition: &dyn SourceDefinition) -> Result<Arc<Tracked>, SourceError> {
        self.built
            .get_or_try_init(|| async {
                let inner = definition.system().await?;
                Ok(Arc::new(Tracked { inner, succeeded: AtomicU64::new(0) }))
            })
            .await
            .cloned()
    }

    async fn get(&self, definition: &dyn SourceDefinition) -> Result<Arc<dyn SourceSystem>, SourceError> {
        Ok(self.tracked(definition).await? as Arc<dyn SourceSystem>)
    }
}

/// A system that counts its successful calls (the health check's evidence that it works).
struct Tracked {
    inner: Arc<dyn SourceSystem>,
    succeeded: AtomicU64,
}

impl Tracked {
    fn note<T>(&self, r: Result<T, SourceError>) -> Result<T, SourceError> {
        if r.is_ok() {
            self.succeeded.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

#[async_trait]
impl SourceSystem for Tracked {
    async fn fetch_changes(&self, stream: &str, after: &Cursor, limit: u32) -> Result<Page<SourceRecord>, SourceError> {
        self.note(self.inner.fetch_changes(stream, after, limit).await)
    }

    async fn fetch_all(
        &self,
        stream: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> Result<Page<SourceRecord>, SourceError> {
        self.note(self.inner.fetch_all(stream, after_id, limit).await)
    }

    async fn probe(&self, stream: &str) -> Result<(), SourceError> {
        self.note(self.inner.probe(stream).await)
    }

    fn has_delete_feed(&self, stream: &str) -> bool {
        self.inner.has_delete_feed(stream)
    }

    async fn fetch_deletes(
        &self,
        stream: &str,
        after: &Cursor,
        limit: u32,
    ) -> Result<Page<DeletedRecord>, SourceError> {
        self.note(self.inner.fetch_deletes(stream, after, limit).await)
    }
}

/// The source system answers with the configured credentials: the system is built (client, OAuth2
/// token, start-up checks such as ServiceNow's filter fields) and answers an authenticated read of
/// the first stream ([`SourceSystem::probe`]). When the engine's own calls succeeded since the
/// previous check, that is the answer and no request is sent. Refused credentials and a
/// configuration the system rejects are fatal.
struct SystemCheck {
    definition: Arc<dyn SourceDefinition>,
    system: Arc<SharedSystem>,
    stream: Option<String>,
    /// The success count at the previous check (`u64::MAX`: no check yet).
    seen: AtomicU64,
}

fn health_error(e: &SourceError) -> HealthError {
    match e.class() {
        ErrorClass::Fatal => HealthError::fatal("source", e.to_string()),
        _ => HealthError::transient("source", e.to_string()),
    }
}

#[async_trait]
impl HealthCheck for SystemCheck {
    fn name(&self) -> &str {
        "source"
    }

    async fn check(&self) -> Result<(), HealthError> {
        let system = self.system.tracked(self.definition.as_ref()).await.map_err(|e| health_error(&e))?;
        let now = system.succeeded.load(Ordering::Relaxed);
        let before = self.seen.swap(now, Ordering::Relaxed);
        if before != u64::MAX && now > before {
            return Ok(());
        }
        let Some(stream) = &self.stream else { return Ok(()) };
        system.probe(stream).await.map_err(|e| health_error(&e))?;
        self.seen.store(system.succeeded.load(Ordering::Relaxed), Ordering::Relaxed);
        Ok(())
    }
}
