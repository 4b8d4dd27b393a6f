//! Connectivity checks of a connector ([`HealthCheck`]): run before the connector is reported ready,
//! periodically while it runs (a failure makes `/readyz` answer 503 with the reason; a fatal one, such
//! as credentials the system rejects, stops the process), and by `dastra-connect validate
//! --check-connectivity`. Checks never consume or publish anything.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::AdminClient;

use crate::Classify as _;
use crate::bus::{BusConfig, BusError};
use crate::config::ConfigError;

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {message}")]
pub struct HealthError {
    /// Which check (`bus`, `dastra`, …).
    pub check: String,
    /// What went wrong, for an operator (never a secret).
    pub message: String,
    /// True when retrying cannot help (rejected credentials, bad config): the process stops.
    pub fatal: bool,
}

impl HealthError {
    /// A failure that may go away (network, broker down, 5xx).
    pub fn transient(check: &str, message: impl Into<String>) -> Self {
        Self { check: check.to_owned(), message: message.into(), fatal: false }
    }
    /// A failure that retrying cannot fix.
    pub fn fatal(check: &str, message: impl Into<String>) -> Self {
        Self { check: check.to_owned(), message: message.into(), fatal: true }
    }
}

/// One cheap, read-only, repeatable check of something a connector depends on.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Short name shown in `/readyz`, `/status` and `validate --check-connectivity` (`bus`, `dastra`).
    fn name(&self) -> &str;
    /// Runs the check once.
    async fn check(&self) -> Result<(), HealthError>;
}

/// Runs `checks` in order; the first failure wins.
pub async fn run_all(checks: &[Arc<dyn HealthCheck>]) -> Result<(), HealthError> {
    for c in checks {
        c.check().await?;
    }
    Ok(())
}

/// The bus is reachable with the configured credentials: Kafka answers a metadata request for the
/// cluster (no topic named, so nothing is auto-created); NATS accepts a connection and answers a
/// JetStream account-info request.
pub struct BusCheck {
    bus: BusConfig,
}

impl BusCheck {
    /// A check of `bus`.
    pub fn new(bus: BusConfig) -> Self {
        Self { bus }
    }
}

#[async_trait]
impl HealthCheck for BusCheck {
    fn name(&self) -> &str {
        "bus"
    }

    async fn check(&self) -> Result<(), HealthError> {
        // Bad config and rejected credentials (the bus error's own class) cannot heal by retrying.
        let fail = |e: BusError| match e {
            BusError::Config { .. } => HealthError::fatal("bus", e.to_string()),
            other if other.class() == crate::ErrorClass::Fatal => HealthError::fatal("bus", other.to_string()),
            other => HealthError::transient("bus", other.to_string()),
        };
        self.bus.validate().map_err(fail)?;
        match &self.bus {
            BusConfig::Kafka(k) => {
                let admin: AdminClient<crate::bus::kafka::TracingContext> = k
                    .client_config()
                    .create_with_context(crate::bus::kafka::TracingContext::current())
                    .map_err(|e| fail(BusError::kafka("create admin client", e)))?;
                let timeout = k.timeout.min(Duration::from_secs(10));
                let brokers = tokio::task::spawn_blocking(move || {
                    admin.inner().fetch_metadata(None, timeout).map(|m| m.brokers().len())
                })
                .await
                .map_err(|e| HealthError::transient("bus", format!("metadata task failed: {e}")))?
                .map_err(|e| fail(BusError::kafka("fetch metadata", e)))?;
                if brokers == 0 {
                    return Err(HealthError::transient("bus", "the Kafka cluster lists no broker"));
                }
                Ok(())
            }
            BusConfig::Nats(n) => {
                let client = crate::bus::nats::connect(n).await.map_err(fail)?;
                let js = crate::bus::nats::jetstream(n, client);
                js.query_account()
                    .await
                    .map_err(|e| HealthError::transient("bus", format!("JetStream account info: {e}")))?;
                Ok(())
            }
        }
    }
}

impl From<ConfigError> for HealthError {
    fn from(e: ConfigError) -> Self {
        HealthError::fatal("config", e.to_string())
    }
}
