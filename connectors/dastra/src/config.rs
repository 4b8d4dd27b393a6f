//! `DastraClientConfig`: where Dastra is, how to authenticate, timeouts, retries and the quota.
//! Validated without I/O by [`DastraClientConfig::validate`]; unknown keys are errors.

use std::time::Duration;

use dastra_connect_core::config::{ConfigError, Secret};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::quota::QuotaConfig;

/// Connection settings of the Dastra API client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DastraClientConfig {
    /// API root. Default `https://api.dastra.eu` (the emulator: `http://127.0.0.1:<port>`).
    #[serde(default = "default_base_url")]
    pub base_url: Url,
    /// The workspace the sink writes to (`/v1/ws/{workspaceId}/…`).
    pub workspace_id: i32,
    /// How to authenticate.
    pub auth: AuthConfig,
    /// Timeout of one HTTP attempt (connect + request + response body). Default `30s`.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout. Default `10s`.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub connect_timeout: Duration,
    /// Retry policy for transient failures.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Dastra's rate limit, shared by every request of the process.
    #[serde(default)]
    pub quota: QuotaConfig,
    /// Page size for list and lookup calls (1–500). Default 100.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Bytes of a response body kept in error messages (secrets redacted). Default 512.
    #[serde(default = "default_excerpt")]
    pub error_excerpt_bytes: usize,
}

/// Authentication to Dastra (docs/dastra-api.md §1.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// `X-API-Key: <private key>` (current, simplest).
    ApiKey {
        /// The private API key.
        api_key: Secret,
    },
    /// HTTP Basic with the private key as user name (older documented form).
    Basic {
        /// The private API key.
        api_key: Secret,
    },
    /// OAuth2 client credentials: `POST <token_url>` with Basic `public:private`, form
    /// `grant_type=client_credentials&scope=api1`; the token is cached and refreshed before expiry.
    Oauth2 {
        /// Token endpoint. Default `https://account.dastra.eu/connect/token`.
        #[serde(default = "default_token_url")]
        token_url: Url,
        /// The public key (OAuth client id).
        client_id: String,
        /// The private key (OAuth client secret).
        client_secret: Secret,
        /// Scope. Default `api1`.
        #[serde(default = "default_scope")]
        scope: String,
        /// Refresh this long before the token expires. Default `60s`.
        #[serde(default = "default_refresh_before", with = "humantime_serde")]
        #[schemars(with = "String")]
        refresh_before: Duration,
    },
}

/// Retries with full-jitter exponential backoff: attempt `n` (from 1) waits a uniform random time in
/// `[0, min(max_backoff, initial_backoff × 2^(n-1))]`, but at least a 429's `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in total, the first included (1 = no retry). Default 6.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Backoff cap of the first retry. Default `500ms`.
    #[serde(default = "default_initial_backoff", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub initial_backoff: Duration,
    /// Largest backoff. Default `30s`.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_backoff: Duration,
    /// Pause used after a 429 that carries no `Retry-After`. Default `5s`.
    #[serde(default = "default_pause_429", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub default_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            default_retry_after: default_pause_429(),
        }
    }
}

fn default_base_url() -> Url {
    // A constant, valid URL.
    Url::parse("https://api.dastra.eu").unwrap_or_else(|_| unreachable!("constant URL"))
}
fn default_token_url() -> Url {
    Url::parse("https://account.dastra.eu/connect/token").unwrap_or_else(|_| unreachable!("constant URL"))
}
fn default_scope() -> String {
    "api1".into()
}
fn default_refresh_before() -> Duration {
    Duration::from_secs(60)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_page_size() -> u32 {
    100
}
fn default_excerpt() -> usize {
    512
}
fn default_attempts() -> u32 {
    6
}
fn default_initial_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_pause_429() -> Duration {
    Duration::from_secs(5)
}

impl DastraClientConfig {
    /// The key under which the process shares one quota limiter between everything that calls
    /// Dastra with this config's credential: base URL, workspace and a SHA-256 fingerprint of the
    /// credential (never the credential itself).
    pub fn quota_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let credential = match &self.auth {
            AuthConfig::ApiKey { api_key } | AuthConfig::Basic { api_key } => api_key.expose().to_owned(),
            AuthConfig::Oauth2 { client_id, client_secret, .. } => format!("{client_id}:{}", client_secret.expose()),
        };
        let fingerprint = hex::encode(&Sha256::digest(credential.as_bytes())[..8]);
        format!("{}|ws{}|{fingerprint}", self.base_url, self.workspace_id)
    }

    /// A config with defaults for everything but the essentials (handy in tests and the quickstart).
    pub fn new(base_url: Url, workspace_id: i32, auth: AuthConfig) -> Self {
        Self {
            base_url,
            workspace_id,
            auth,
            request_timeout: default_request_timeout(),
            connect_timeout: default_connect_timeout(),
            retry: RetryConfig::default(),
            quota: QuotaConfig::default(),
            page_size: default_page_size(),
            error_excerpt_bytes: default_excerpt(),
        }
    }

    /// Checks values without I/O; the error names the key (relative to this struct).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.base_url.scheme(), "http" | "https") {
            return Err(ConfigError::new("base_url", "must be an http or https URL"));
        }
        if self.base_url.cannot_be_a_base() {
            return Err(ConfigError::new("base_url", "must be a base URL such as https://api.dastra.eu"));
        }
        if self.workspace_id <= 0 {
            return Err(ConfigError::new("workspace_id", "must be a positive workspace id"));
        }
        match &self.auth {
            AuthConfig::ApiKey { api_key } | AuthConfig::Basic { api_key } => {
                if api_key.is_empty() {
                    return Err(ConfigError::new("auth.api_key", "is empty"));
                }
            }
            AuthConfig::Oauth2 { token_url, client_id, client_secret, scope, .. } => {
                if !matches!(token_url.scheme(), "http" | "https") {
                    return Err(ConfigError::new("auth.token_url", "must be an http or https URL"));
                }
                if client_id.is_empty() {
                    return Err(ConfigError::new("auth.client_id", "is empty"));
                }
                if client_secret.is_empty() {
                    return Err(ConfigError::new("auth.client_secret", "is empty"));
                }
                if scope.is_empty() {
                    return Err(ConfigError::new("auth.scope", "is empty"));
                }
            }
        }
        if self.request_timeout.is_zero() {
            return Err(ConfigError::new("request_timeout", "must be longer than zero"));
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new("connect_timeout", "must be longer than zero"));
        }
        if self.retry.max_attempts == 0 {
            return Err(ConfigError::new("retry.max_attempts", "must be at least 1"));
        }
        if self.retry.initial_backoff > self.retry.max_backoff {
            return Err(ConfigError::new("retry.initial_backoff", "must not exceed retry.max_backoff"));
        }
        if !(1..=500).contains(&self.page_size) {
            return Err(ConfigError::new("page_size", "must be between 1 and 500 (Dastra's maximum)"));
        }
        self.quota.validate().map_err(|reason| {
            let (path, reason) = reason
                .split_once(": ")
                .map_or(("quota".to_owned(), reason.clone()), |(p, r)| (p.to_owned(), r.to_owned()));
            ConfigError::new(path, reason)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dastra_connect_core::config::from_yaml_str_with_env;

    #[test]
    fn yaml_with_oauth_and_defaults_loads_and_validates() {
        let yaml = r#"
workspace_id: 42
auth:
  type: oauth2
  client_id: pub
  client_secret: ${PRIV}
retry:
  max_attempts: 3
quota:
  windows: [{limit: 250, per: 1m}]
"#;
        let cfg: DastraClientConfig = from_yaml_str_with_env(yaml, |k| (k == "PRIV").then(|| "s3cr3t".to_owned()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(cfg.validate().is_ok());
        assert_eq!(cfg.base_url.as_str(), "https://api.dastra.eu/");
        assert_eq!(cfg.retry.max_attempts, 3);
        assert_eq!(cfg.quota.windows.len(), 1);
        assert!(
            matches!(&cfg.auth, AuthConfig::Oauth2 { scope, token_url, .. } if scope == "api1" && token_url.as_str() == "https://account.dastra.eu/connect/token")
        );
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let yaml = "workspace_id: 1\nauth: {type: api_key, api_key: k, apikey2: x}\n";
        let err = from_yaml_str_with_env::<DastraClientConfig>(yaml, |_| None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("auth") && err.contains("apikey2"), "{err}");
        let yaml = "workspace_id: 1\nauth: {type: api_key, api_key: k}\nretries: {}\n";
        assert!(from_yaml_str_with_env::<DastraClientConfig>(yaml, |_| None).is_err());
    }

    #[test]
    fn the_json_schema_of_the_config_generates() {
        let schema = serde_json::to_value(schemars::schema_for!(DastraClientConfig)).unwrap_or_default();
        let text = schema.to_string();
        assert!(text.contains("workspace_id") && text.contains("oauth2") && text.contains("safety_margin"), "{text}");
    }

    #[test]
    fn validate_names_the_bad_key() {
        let mut cfg = DastraClientConfig::new(default_base_url(), 1, AuthConfig::ApiKey { api_key: Secret::new("k") });
        assert!(cfg.validate().is_ok());
        cfg.page_size = 501;
        assert_eq!(cfg.validate().err().map(|e| e.path), Some("page_size".into()));
        cfg.page_size = 100;
        cfg.quota.windows[0].limit = 0;
        assert_eq!(cfg.validate().err().map(|e| e.path), Some("quota.windows[0].limit".into()));
        cfg.quota = QuotaConfig::default();
        cfg.auth = AuthConfig::ApiKey { api_key: Secret::new("") };
        assert_eq!(cfg.validate().err().map(|e| e.path), Some("auth.api_key".into()));
    }
}
