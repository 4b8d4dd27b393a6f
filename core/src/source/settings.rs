//! [`SourceSettings`]: the engine's knobs every source config embeds under `sync:`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// How a source polls, pages and sweeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    /// Pause between two polls once caught up. Default `30s`.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub poll_interval: Duration,
    /// How far before the cursor each poll starts again, for records committed late with an older
    /// modification time. Default `60s`.
    #[serde(default = "default_look_back", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub look_back: Duration,
    /// Records per request (1–10000). Default 200.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Time between two snapshot sweeps (full scan, then deletes for keys gone). `null` disables
    /// sweeps. Default `24h`.
    #[serde(default = "default_sweep_interval", with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub sweep_interval: Option<Duration>,
    /// Run a sweep at start when the source has a cursor but no completed sweep on record (a fresh
    /// source's first poll reads everything and counts as the first sweep). Default true.
    #[serde(default = "default_true")]
    pub sweep_on_start: bool,
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_look_back() -> Duration {
    Duration::from_secs(60)
}
fn default_page_size() -> u32 {
    200
}
fn default_sweep_interval() -> Option<Duration> {
    Some(Duration::from_secs(24 * 3600))
}
fn default_true() -> bool {
    true
}

impl Default for SourceSettings {
    fn default() -> Self {
        Self {
            poll_interval: default_poll_interval(),
            look_back: default_look_back(),
            page_size: default_page_size(),
            sweep_interval: default_sweep_interval(),
            sweep_on_start: true,
        }
    }
}

impl SourceSettings {
    /// Checks ranges (no I/O); `at` is the key path of this block.
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.page_size) {
            return Err(ConfigError::new(format!("{at}.page_size"), "must be between 1 and 10000"));
        }
        if self.poll_interval.is_zero() {
            return Err(ConfigError::new(format!("{at}.poll_interval"), "must be positive"));
        }
        if self.sweep_interval.is_some_and(|d| d < Duration::from_secs(1)) {
            return Err(ConfigError::new(format!("{at}.sweep_interval"), "must be at least 1s (or null)"));
        }
        Ok(())
    }
}
