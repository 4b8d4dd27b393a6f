//! Config of the webhook receiver connector (`type: dastra_webhook_receiver`).

use std::net::SocketAddr;
use std::time::Duration;

use dastra_connect_core::config::{ConfigError, Secret};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Receives Dastra webhooks and publishes them to the bus.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookReceiverConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Path Dastra posts to (the webhook's URL path).
    #[serde(default = "default_path")]
    pub path: String,
    /// Validation keys of the Dastra webhooks allowed to post here (`signatureKey` of each
    /// `WebHookUrlDto`); a body is accepted when its signature matches any of them.
    #[serde(default)]
    pub signing_keys: Vec<Secret>,
    /// Reject unsigned or wrongly signed bodies (401). Turn off only for local tests.
    #[serde(default = "default_true")]
    pub require_signature: bool,
    /// Largest body accepted, in bytes (413 beyond).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// How long a delivered body's id is remembered (a duplicate within it is not published again)
    /// and how old a body's signed `date` may be (older bodies are refused as possible replays).
    #[serde(default = "default_dedupe_window", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub dedupe_window: Duration,
    /// How far in the future a body's `date` may be (clock difference with Dastra).
    #[serde(default = "default_skew", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_clock_skew: Duration,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8081))
}
fn default_path() -> String {
    "/webhooks/dastra".into()
}
fn default_dedupe_window() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_skew() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_true() -> bool {
    true
}
fn default_max_body() -> usize {
    1024 * 1024
}

impl WebhookReceiverConfig {
    /// Checks the config without I/O.
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if !self.path.starts_with('/') {
            return Err(ConfigError::new(format!("{at}.path"), "must start with `/`"));
        }
        if self.require_signature && (self.signing_keys.is_empty() || self.signing_keys.iter().any(Secret::is_empty)) {
            return Err(ConfigError::new(
                format!("{at}.signing_keys"),
                "at least one non-empty key is needed while `require_signature` is true",
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::new(format!("{at}.max_body_bytes"), "must be at least 1024"));
        }
        if self.dedupe_window < Duration::from_secs(60) {
            return Err(ConfigError::new(format!("{at}.dedupe_window"), "must be at least 1m"));
        }
        if self.max_clock_skew > self.dedupe_window {
            return Err(ConfigError::new(format!("{at}.max_clock_skew"), "must not exceed `dedupe_window`"));
        }
        Ok(())
    }
}
