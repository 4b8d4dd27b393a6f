//! Config of the webhook receiver connector (`type: dastra_webhook_receiver`).

use std::net::SocketAddr;
use std::time::Duration;

use dastra_connect_core::config::{ConfigError, Secret};

use crate::config::DastraClientConfig;
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
    /// Polls Dastra for DSRs and Tasks changed since its checkpoint and publishes them as the
    /// webhook would (same event ids), so a delivery Dastra failed to make is not lost.
    #[serde(default)]
    pub backfill: Option<Box<BackfillConfig>>,
}

/// The backfill poller of the webhook receiver.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillConfig {
    /// The Dastra API it lists from (a sink of this process with the same base URL, workspace and
    /// credential shares its quota limiter).
    pub dastra: DastraClientConfig,
    /// Time between two polls.
    #[serde(default = "default_backfill_interval", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub interval: Duration,
    /// Pages listed per family (DSRs, Tasks) and poll at most: a poll costs at most
    /// `2 × max_pages_per_poll` requests (plus an OAuth token when due).
    #[serde(default = "default_backfill_pages")]
    pub max_pages_per_poll: u32,
}

fn default_backfill_interval() -> Duration {
    Duration::from_secs(5 * 60)
}
fn default_backfill_pages() -> u32 {
    5
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
        if let Some(b) = &self.backfill {
            b.dastra.validate().map_err(|e| ConfigError::new(format!("{at}.backfill.dastra"), e.to_string()))?;
            if b.interval < Duration::from_secs(1) {
                return Err(ConfigError::new(format!("{at}.backfill.interval"), "must be at least 1s"));
            }
            if b.max_pages_per_poll == 0 {
                return Err(ConfigError::new(format!("{at}.backfill.max_pages_per_poll"), "must be at least 1"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(extra: serde_json::Value) -> WebhookReceiverConfig {
        let mut v = serde_json::json!({"signing_keys": ["k"]});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn window_and_backfill_rules_name_the_key() {
        assert!(parse(serde_json::json!({})).validate("c").is_ok());
        let err = parse(serde_json::json!({"dedupe_window": "10s"})).validate("c").unwrap_err();
        assert_eq!(err.path, "c.dedupe_window");
        let err = parse(serde_json::json!({"dedupe_window": "1h", "max_clock_skew": "2h"})).validate("c").unwrap_err();
        assert_eq!(err.path, "c.max_clock_skew");
        let dastra = serde_json::json!({"workspace_id": 1, "auth": {"type": "api_key", "api_key": "x"}});
        let ok = parse(serde_json::json!({"backfill": {"dastra": dastra}}));
        assert!(ok.validate("c").is_ok());
        let b = ok.backfill.as_ref().unwrap();
        assert_eq!((b.interval, b.max_pages_per_poll), (Duration::from_secs(300), 5));
        let err =
            parse(serde_json::json!({"backfill": {"dastra": dastra, "interval": "0s"}})).validate("c").unwrap_err();
        assert_eq!(err.path, "c.backfill.interval");
        let err = parse(serde_json::json!({"backfill": {"dastra": dastra, "max_pages_per_poll": 0}}))
            .validate("c")
            .unwrap_err();
        assert_eq!(err.path, "c.backfill.max_pages_per_poll");
        let bad = serde_json::json!({"workspace_id": 0, "auth": {"type": "api_key", "api_key": "x"}});
        let err = parse(serde_json::json!({"backfill": {"dastra": bad}})).validate("c").unwrap_err();
        assert_eq!(err.path, "c.backfill.dastra");
        assert!(err.reason.contains("workspace_id"), "{err:?}");
        let unknown = serde_json::json!({"signing_keys": ["k"], "backfill": {"dastra": dastra, "every": "1m"}});
        assert!(serde_json::from_value::<WebhookReceiverConfig>(unknown).is_err());
    }
}
