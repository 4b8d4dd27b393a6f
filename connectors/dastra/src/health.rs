//! The Dastra health check: `GET /me`, the cheapest authenticated call (no body, no workspace data),
//! sent through the connector's own client so it takes a slot of the same quota limiter and is
//! counted in its metrics. A 401/403 (or an OAuth2 token endpoint refusing the client) is fatal:
//! retrying with the same credentials cannot help, and running on would only fill the DLQ.

use async_trait::async_trait;
use dastra_connect_core::health::{HealthCheck, HealthError};

use crate::{DastraClient, DastraError};

/// `GET /me` through a connector's client.
pub struct DastraCheck {
    client: DastraClient,
}

impl DastraCheck {
    /// A check through `client` (share it with the connector: same quota, same metrics).
    pub fn new(client: DastraClient) -> Self {
        Self { client }
    }
}

/// The operator-facing meaning of a failed `GET /me`.
pub fn classify(e: &DastraError) -> HealthError {
    match e {
        DastraError::Http { status: status @ (401 | 403), .. } => HealthError::fatal(
            "dastra",
            format!(
                "Dastra rejected the API key (HTTP {status} on GET /me): check `dastra.auth` (key, key type, workspace binding)"
            ),
        ),
        DastraError::Token { status: Some(status @ (400 | 401 | 403)), .. } => HealthError::fatal(
            "dastra",
            format!(
                "Dastra rejected the API key: its OAuth2 token endpoint answered {status} (check `dastra.auth` client id and secret)"
            ),
        ),
        DastraError::Build { .. } => HealthError::fatal("dastra", e.to_string()),
        other => HealthError::transient("dastra", other.to_string()),
    }
}

#[async_trait]
impl HealthCheck for DastraCheck {
    fn name(&self) -> &str {
        "dastra"
    }

    async fn check(&self) -> Result<(), HealthError> {
        self.client.me().await.map(|_| ()).map_err(|e| classify(&e))
    }
}
