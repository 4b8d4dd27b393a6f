//! [`RegistryCheck`]: the topic reader's schema registry answers (one `GET /subjects`), a health
//! check of `type: debezium`, `type: topic` and `type: datahub` beside the bus check, run before
//! the connector is ready, periodically while it runs and by `validate --check-connectivity`.

use std::sync::Arc;

use async_trait::async_trait;
use dastra_connect_core::codec::registry::{RegistryError, SchemaRegistryClient};
use dastra_connect_core::connector::ConnectorContext;
use dastra_connect_core::health::{BusCheck, HealthCheck, HealthError};

use crate::config::ReaderConfig;

/// The check's name in `/readyz`, `/status` and `validate --check-connectivity`.
pub const NAME: &str = "schema_registry";

/// The schema registry the reader decodes Avro with answers an authenticated `GET /subjects`.
/// Unreachable or a 5xx: transient (the reader retries its lookups too); 401/403: fatal (the
/// credentials are refused, retrying cannot help).
pub struct RegistryCheck {
    client: Arc<SchemaRegistryClient>,
}

impl RegistryCheck {
    /// A check of `client`'s registry.
    pub fn new(client: Arc<SchemaRegistryClient>) -> Self {
        RegistryCheck { client }
    }
}

/// The registry's URL for messages: scheme, host, port and path, never a user or password.
fn where_(client: &SchemaRegistryClient) -> String {
    let mut url = client.config().url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

#[async_trait]
impl HealthCheck for RegistryCheck {
    fn name(&self) -> &str {
        NAME
    }

    async fn check(&self) -> Result<(), HealthError> {
        let at = where_(&self.client);
        match self.client.subjects().await {
            Ok(_) => Ok(()),
            Err(RegistryError::Status { status: status @ (401 | 403), .. }) => Err(HealthError::fatal(
                NAME,
                format!("{at} refused the credentials (HTTP {status}): check the registry's username and password"),
            )),
            Err(e) => Err(HealthError::transient(NAME, format!("GET {at}subjects failed: {e}"))),
        }
    }
}

/// The registry a reader with `config` decodes with: its own `registry`, else the codec's.
pub fn registry_client(
    config: &ReaderConfig,
    ctx: &ConnectorContext,
) -> Result<Option<Arc<SchemaRegistryClient>>, RegistryError> {
    Ok(match (&config.registry, ctx.codec.registry()) {
        (Some(r), _) => Some(Arc::new(SchemaRegistryClient::new(r.clone())?)),
        (None, r) => r.cloned(),
    })
}

/// The checks of a topic reader: the bus, and the schema registry when there is one.
pub fn reader_checks(config: &ReaderConfig, ctx: &ConnectorContext) -> anyhow::Result<Vec<Arc<dyn HealthCheck>>> {
    let mut checks: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(BusCheck::new(ctx.bus.clone()))];
    if let Some(client) = registry_client(config, ctx)? {
        checks.push(Arc::new(RegistryCheck::new(client)));
    }
    Ok(checks)
}
