//! Emulator configuration: API keys and the workspaces they may reach, OAuth clients, quota
//! windows, webhook blocking threshold and the seed of the emulator's randomness.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::EmulatorError;

/// One API key as Dastra issues them: a private part (used by `X-API-Key`, Basic, and as the OAuth2
/// client secret) and a public part (the OAuth2 client id), bound to one workspace or to the whole
/// organisation (docs/dastra-api.md §1.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiKey {
    /// The private key (secret). Never logged: the request log names keys by `name`.
    pub key: String,
    /// The public key, used as OAuth2 `client_id`.
    pub public_key: String,
    /// The workspace the key is bound to; `None` = every workspace of the organisation.
    pub workspace: Option<i64>,
    /// A label used in logs and counters instead of the secret.
    pub name: String,
}

/// One workspace to create at start (with a seeded Area, so DataProcessings and DSRs can be created).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkspaceSeed {
    /// Workspace id (Dastra uses int32 workspace ids).
    pub id: i64,
    /// Workspace label.
    pub label: String,
}

/// One quota window: at most `limit` requests per `period`, per API key.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuotaWindow {
    /// Requests allowed in one window.
    pub limit: u32,
    /// Window length.
    pub period: Duration,
}

/// Shape of `GET /v1/Workspaces`: the documented example (`{items,total}`, docs/dastra-api.md §7 #20) or the
/// OpenAPI document's `WorkSpaceListDto`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum WorkspaceListShape {
    /// `{ "items": [WorkSpaceDto], "total": n }` as shown in Dastra's authentication page.
    #[default]
    ItemsTotal,
    /// `WorkSpaceListDto { workSpaces: [...] , ... }` as typed in SPEC-2022.
    SpecListDto,
}

/// Everything the emulator needs to start. `Default` gives one workspace (id 1), one
/// organisation-wide key `emulator-key` (public part `emulator-client`), Dastra's quota and seed 42.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmulatorConfig {
    /// Workspaces created at start.
    pub workspaces: Vec<WorkspaceSeed>,
    /// Accepted API keys.
    pub api_keys: Vec<ApiKey>,
    /// Quota windows per key; empty = quota disabled.
    pub quota: Vec<QuotaWindow>,
    /// Lifetime of OAuth2 access tokens (Dastra: 3600 s).
    pub token_lifetime: Duration,
    /// A webhook is blocked once its error count exceeds this (Dastra: "more than 5 errors").
    pub webhook_max_errors: u32,
    /// Timeout of one webhook delivery (Dastra: 10 s).
    pub webhook_timeout: Duration,
    /// Delay before a webhook is sent (Dastra: up to 60–120 s; 0 by default, docs/dastra-api.md §7 #12).
    pub webhook_delay: Duration,
    /// Seed of every random choice (uuids, fault sampling, tokens, webhook keys).
    pub seed: u64,
    /// Shape of `GET /v1/Workspaces`.
    pub workspace_list_shape: WorkspaceListShape,
    /// Request-log capacity (oldest entries are dropped first).
    pub request_log_capacity: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            workspaces: vec![WorkspaceSeed { id: 1, label: "Emulated workspace".into() }],
            api_keys: vec![ApiKey {
                key: "emulator-key".into(),
                public_key: "emulator-client".into(),
                workspace: None,
                name: "default".into(),
            }],
            quota: Self::dastra_quota(),
            token_lifetime: Duration::from_secs(3600),
            webhook_max_errors: 5,
            webhook_timeout: Duration::from_secs(10),
            webhook_delay: Duration::ZERO,
            seed: 42,
            workspace_list_shape: WorkspaceListShape::default(),
            request_log_capacity: 10_000,
        }
    }
}

impl EmulatorConfig {
    /// Dastra's published quota: 500 requests per 60 s and 10 000 per 600 s.
    pub fn dastra_quota() -> Vec<QuotaWindow> {
        vec![
            QuotaWindow { limit: 500, period: Duration::from_secs(60) },
            QuotaWindow { limit: 10_000, period: Duration::from_secs(600) },
        ]
    }

    /// A config with one workspace and one key bound to the whole organisation.
    pub fn single(api_key: &str, workspace: i64) -> Self {
        Self {
            workspaces: vec![WorkspaceSeed { id: workspace, label: format!("Workspace {workspace}") }],
            api_keys: vec![ApiKey {
                key: api_key.into(),
                public_key: format!("{api_key}-client"),
                workspace: None,
                name: "default".into(),
            }],
            ..Self::default()
        }
    }

    /// Builder: replace the quota windows (`vec![]` disables the quota).
    pub fn with_quota(mut self, quota: Vec<QuotaWindow>) -> Self {
        self.quota = quota;
        self
    }

    /// Builder: set the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Parses the CLI `--quota` value: `off`, or comma-separated `<limit>/<period>` windows where
    /// period is a number with unit `ms`, `s`, `m` or `h` (`500/60s,10000/600s`, `50/2s`, `500/1m`).
    pub fn parse_quota(text: &str) -> Result<Vec<QuotaWindow>, EmulatorError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") || text.eq_ignore_ascii_case("none") {
            return Ok(Vec::new());
        }
        let bad = |why: &str| EmulatorError::InvalidQuota { text: text.to_string(), reason: why.to_string() };
        let mut windows = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (limit, period) = part.split_once('/').ok_or_else(|| bad("expected <limit>/<period>"))?;
            let limit: u32 = limit.trim().parse().map_err(|_| bad("limit is not a positive integer"))?;
            if limit == 0 {
                return Err(bad("limit must be at least 1"));
            }
            let period =
                parse_period(period.trim()).ok_or_else(|| bad("period must look like 60s, 1m, 500ms or 1h"))?;
            if period.is_zero() {
                return Err(bad("period must be longer than zero"));
            }
            windows.push(QuotaWindow { limit, period });
        }
        if windows.is_empty() {
            return Err(bad("no window given (use `off` to disable the quota)"));
        }
        Ok(windows)
    }
}

fn parse_period(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quota_forms() -> Result<(), EmulatorError> {
        let q = EmulatorConfig::parse_quota("500/60s,10000/600s")?;
        assert_eq!(q, EmulatorConfig::dastra_quota());
        let q = EmulatorConfig::parse_quota("50/2s")?;
        assert_eq!(q, vec![QuotaWindow { limit: 50, period: Duration::from_secs(2) }]);
        assert_eq!(EmulatorConfig::parse_quota("500/1m")?[0].period, Duration::from_secs(60));
        assert_eq!(EmulatorConfig::parse_quota("5/250ms")?[0].period, Duration::from_millis(250));
        assert!(EmulatorConfig::parse_quota("off")?.is_empty());
        Ok(())
    }

    #[test]
    fn rejects_bad_quota() {
        for bad in ["", "500", "0/60s", "x/60s", "500/60y", "500/0s"] {
            assert!(EmulatorConfig::parse_quota(bad).is_err(), "{bad} should be rejected");
        }
    }
}
