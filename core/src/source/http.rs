//! HTTP plumbing of source systems: authentication ([`SourceAuth`]: basic, bearer/API token, OAuth2
//! client credentials or JWT bearer (RS256 assertions) with cached tokens refreshed before expiry
//! and after a 401), retries with
//! full-jitter backoff that honour `Retry-After` on 429/503, an optional client-side request rate,
//! an API usage budget for systems that report their daily quota in response headers ([`ApiQuota`]:
//! requests stop above `http.max_api_share` of the quota until a later reading is below it), and
//! pagination helpers ([`next_link`] for RFC 8288 `Link` headers, [`offset_pages`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use super::SourceError;
use crate::config::{ConfigError, Secret};

/// How to authenticate to a source system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceAuth {
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// `Authorization: Bearer <token>` (API tokens, personal access tokens).
    Bearer {
        /// The token.
        token: Secret,
    },
    /// OAuth2 client credentials: `POST token_url` with `grant_type=client_credentials`, the client id
    /// and secret in the form body; the token is cached, refreshed `refresh_before` its expiry and
    /// after a 401.
    Oauth2 {
        /// Token endpoint (ServiceNow: `https://<instance>.service-now.com/oauth_token.do`).
        token_url: Url,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: Secret,
        /// Scope, if the system wants one.
        #[serde(default)]
        scope: Option<String>,
        /// Refresh this long before expiry. Default `60s`.
        #[serde(default = "default_refresh_before", with = "humantime_serde")]
        #[schemars(with = "String")]
        refresh_before: Duration,
    },
    /// A fixed credential header set by a connector from its own configuration (NetBox's
    /// `Authorization: Token <t>`, Coupa's `X-COUPA-API-KEY`); not a user-facing choice.
    #[serde(skip)]
    #[schemars(skip)]
    Header {
        /// Header name.
        name: reqwest::header::HeaderName,
        /// Header value (the credential).
        value: Secret,
    },
    /// OAuth 2.0 JWT bearer grant (RFC 7523): `POST token_url` with
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and an `assertion` — a JWT signed
    /// RS256 with the client's RSA key, claims `iss`, `sub`, `aud` and `exp` (now + 3 min). The token
    /// is cached like the client-credentials one. Set by a connector from its own configuration
    /// (Salesforce's `jwt_bearer`); not a user-facing choice.
    #[serde(skip)]
    #[schemars(skip)]
    JwtBearer {
        /// Token endpoint.
        token_url: Url,
        /// `iss`: the client id.
        issuer: String,
        /// `sub`: the user the token acts as.
        subject: String,
        /// `aud`: the authorization server.
        audience: String,
        /// The RSA private key, PEM (`BEGIN PRIVATE KEY` PKCS#8 or `BEGIN RSA PRIVATE KEY` PKCS#1).
        private_key: Secret,
        /// Refresh this long before expiry.
        refresh_before: Duration,
    },
}

/// The JWT grant type of RFC 7523.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Reads an RSA private key in PEM (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`). The error
/// never contains the key.
pub fn rsa_key(pem: &Secret) -> Result<aws_lc_rs::rsa::KeyPair, String> {
    use base64::Engine;
    let text = pem.expose().trim();
    let (label, body) = ["PRIVATE KEY", "RSA PRIVATE KEY"]
        .into_iter()
        .find_map(|label| {
            let begin = format!("-----BEGIN {label}-----");
            let end = format!("-----END {label}-----");
            let inner = text.strip_prefix(begin.as_str())?.strip_suffix(end.as_str())?;
            Some((label, inner))
        })
        .ok_or(
            "not a PEM `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1); an encrypted key must be decrypted first",
        )?;
    let der: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(der).map_err(|_| "the PEM body is not base64")?;
    let key = if label == "PRIVATE KEY" {
        aws_lc_rs::rsa::KeyPair::from_pkcs8(&der)
    } else {
        aws_lc_rs::rsa::KeyPair::from_der(&der)
    };
    key.map_err(|e| format!("not a usable RSA private key ({e})"))
}

/// A JWT `header.claims.signature`, RS256.
fn signed_jwt(key: &aws_lc_rs::rsa::KeyPair, claims: &serde_json::Value) -> Result<String, String> {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let input = format!("{}.{}", b64(br#"{"alg":"RS256"}"#), b64(claims.to_string().as_bytes()));
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "signing failed".to_owned())?;
    Ok(format!("{input}.{}", b64(&sig)))
}

fn default_refresh_before() -> Duration {
    Duration::from_secs(60)
}

/// Timeouts, retries and rate of requests to a source system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Timeout of one attempt. Default `60s`.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Attempts per request for 429, 408, 5xx and transport errors (1 = no retry). Default 6.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, full jitter. Default `500ms`.
    #[serde(default = "default_backoff", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub initial_backoff: Duration,
    /// Longest single wait (also caps `Retry-After`). Default `60s`.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_backoff: Duration,
    /// Client-side limit in requests per second (the system's documented rate), none by default.
    #[serde(default)]
    pub max_requests_per_second: Option<f64>,
    /// Share of the system's daily API quota this connector may use (0 < x ≤ 1), for systems that
    /// report their usage in response headers (Salesforce `Sforce-Limit-Info`, HubSpot
    /// `X-HubSpot-RateLimit-Daily*`); ignored by the others. Once a response reports usage at or
    /// above this share, requests are refused (poll error `source_api_budget`) until a later reading
    /// is below it. Default 0.5, leaving half the quota to the system's other integrations.
    #[serde(default = "default_max_api_share")]
    pub max_api_share: f64,
    /// While the budget is spent, one request is let through this often to read the usage again
    /// (the quota is a rolling or daily window the connector cannot see). Default `15m`.
    #[serde(default = "default_api_budget_recheck", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub api_budget_recheck: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_attempts() -> u32 {
    6
}
fn default_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(60)
}
fn default_max_api_share() -> f64 {
    0.5
}
fn default_api_budget_recheck() -> Duration {
    Duration::from_secs(15 * 60)
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
            max_attempts: default_attempts(),
            initial_backoff: default_backoff(),
            max_backoff: default_max_backoff(),
            max_requests_per_second: None,
            max_api_share: default_max_api_share(),
            api_budget_recheck: default_api_budget_recheck(),
        }
    }
}

impl HttpSettings {
    /// Checks ranges (no I/O).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::new(format!("{at}.max_attempts"), "must be at least 1"));
        }
        if self.max_requests_per_second.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err(ConfigError::new(format!("{at}.max_requests_per_second"), "must be a positive number"));
        }
        if !(self.max_api_share > 0.0 && self.max_api_share <= 1.0) {
            return Err(ConfigError::new(
                format!("{at}.max_api_share"),
                "must be a share of the daily quota above 0 and at most 1 (e.g. 0.5)",
            ));
        }
        if self.api_budget_recheck < Duration::from_secs(1) {
            return Err(ConfigError::new(format!("{at}.api_budget_recheck"), "must be at least 1s"));
        }
        Ok(())
    }
}

struct Token {
    value: Secret,
    refresh_at: Instant,
}

/// API usage a system reported: `used` of `limit` requests in its current quota window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ApiUsage {
    /// Requests used in the window.
    pub used: u64,
    /// Requests allowed in the window.
    pub limit: u64,
}

impl ApiUsage {
    /// Whether `used` has reached `share` of `limit` (a zero limit is always spent).
    pub fn reached(&self, share: f64) -> bool {
        self.limit == 0 || self.used as f64 >= share * self.limit as f64
    }
}

/// How a system reports its API quota, given by its connector with [`SourceHttp::with_quota`].
/// The engine then keeps requests under `http.max_api_share` of the quota.
#[derive(Debug, Clone, Copy)]
pub struct ApiQuota {
    /// Reads the usage from a response's headers (any status); `None` when they do not say.
    pub usage: fn(&HeaderMap) -> Option<ApiUsage>,
    /// Whether an error answer `(status, body)` means "rate-limited" and is retried like a 429
    /// (Salesforce answers 403 `REQUEST_LIMIT_EXCEEDED`). A system that only uses 429 returns false.
    pub limited: fn(u16, &str) -> bool,
}

/// The budget's state: the last reading and, while spent, when the next probe may go.
#[derive(Debug, Default)]
struct Budget {
    usage: Option<ApiUsage>,
    blocked_until: Option<Instant>,
}

/// An authenticated HTTP client for one source system.
pub struct SourceHttp {
    system: String,
    client: reqwest::Client,
    auth: SourceAuth,
    settings: HttpSettings,
    token: Mutex<Option<Token>>,
    next_slot: Mutex<Instant>,
    throttled: AtomicU64,
    token_fetches: AtomicU64,
    quota: Option<ApiQuota>,
    budget: std::sync::Mutex<Budget>,
    budget_refusals: AtomicU64,
}

/// A successful JSON answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status (2xx).
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as JSON.
    pub body: serde_json::Value,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

const EXCERPT: usize = 300;

fn excerpt(text: &str) -> String {
    let mut s: String = text.chars().take(EXCERPT).collect();
    if text.chars().count() > EXCERPT {
        s.push('…');
    }
    s
}

impl SourceHttp {
    /// A client for `system` (used in errors and logs).
    pub fn new(system: &str, auth: SourceAuth, settings: HttpSettings) -> Result<SourceHttp, SourceError> {
        // A credential that cannot travel in a header is a config error: say so at start, not at
        // the first request.
        if let SourceAuth::Header { value, .. } = &auth
            && HeaderValue::from_str(value.expose()).is_err()
        {
            return Err(SourceError::Config(format!(
                "the {system} credential contains characters not allowed in an HTTP header"
            )));
        }
        if let SourceAuth::JwtBearer { private_key, .. } = &auth {
            rsa_key(private_key).map_err(|e| SourceError::Config(format!("the {system} JWT private key: {e}")))?;
        }
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(15)))
            .user_agent(concat!("dastra-connect/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(SourceHttp {
            system: system.to_owned(),
            client,
            auth,
            settings,
            token: Mutex::new(None),
            next_slot: Mutex::new(Instant::now()),
            throttled: AtomicU64::new(0),
            token_fetches: AtomicU64::new(0),
            quota: None,
            budget: std::sync::Mutex::new(Budget::default()),
            budget_refusals: AtomicU64::new(0),
        })
    }

    /// Keeps requests under `http.max_api_share` of the quota `quota` reads from the answers.
    pub fn with_quota(mut self, quota: ApiQuota) -> SourceHttp {
        self.quota = Some(quota);
        self
    }

    /// The last API usage the system reported (systems with an [`ApiQuota`]).
    pub fn api_usage(&self) -> Option<ApiUsage> {
        self.budget_state().usage
    }

    /// How many requests were refused because the API budget was spent.
    pub fn budget_refusals(&self) -> u64 {
        self.budget_refusals.load(Ordering::Relaxed)
    }

    fn budget_state(&self) -> std::sync::MutexGuard<'_, Budget> {
        // A poisoned lock only means a panic elsewhere while holding two plain fields.
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a request while the budget is spent; once `api_budget_recheck` has passed, lets this
    /// one through (as the probe that reads the usage again) and holds the others back.
    fn check_budget(&self, what: &str) -> Result<(), SourceError> {
        if self.quota.is_none() {
            return Ok(());
        }
        let mut b = self.budget_state();
        let Some(until) = b.blocked_until else { return Ok(()) };
        let now = Instant::now();
        if now < until {
            self.budget_refusals.fetch_add(1, Ordering::Relaxed);
            let (used, limit) = b.usage.map(|u| (u.used, u.limit)).unwrap_or((0, 0));
            return Err(SourceError::ApiBudget {
                system: self.system.clone(),
                what: what.to_owned(),
                used,
                limit,
                share: self.settings.max_api_share,
                retry_in_secs: (until - now).as_secs().max(1),
            });
        }
        b.blocked_until = Some(now + self.settings.api_budget_recheck);
        Ok(())
    }

    /// Records the usage an answer reports: spent at or above the share blocks further requests.
    /// True when this answer says the budget is spent.
    fn note_usage(&self, headers: &HeaderMap) -> bool {
        let Some(quota) = &self.quota else { return false };
        let Some(usage) = (quota.usage)(headers) else { return false };
        let share = self.settings.max_api_share;
        let mut b = self.budget_state();
        b.usage = Some(usage);
        if usage.reached(share) {
            if b.blocked_until.is_none() {
                tracing::warn!(system = %self.system, used = usage.used, limit = usage.limit, max_api_share = share,
                    "API budget spent: no further requests until the system reports usage below the share");
            }
            b.blocked_until = Some(Instant::now() + self.settings.api_budget_recheck);
            true
        } else {
            if b.blocked_until.take().is_some() {
                tracing::info!(system = %self.system, used = usage.used, limit = usage.limit, "API budget available again");
            }
            false
        }
    }

    /// How many 429 answers were received (and waited out) so far.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// How many OAuth tokens were fetched so far.
    pub fn token_fetches(&self) -> u64 {
        self.token_fetches.load(Ordering::Relaxed)
    }

    /// `GET url` expecting JSON, with auth, rate limit and retries. `what` names the request in
    /// errors (a path, never the query string, which may carry data).
    pub async fn get_json(&self, url: Url, what: &str) -> Result<HttpResponse, SourceError> {
        self.send_json(reqwest::Method::GET, url, None, what).await
    }

    /// `POST url` with a JSON `body`, expecting JSON (search endpoints that take their query in the
    /// body, e.g. HubSpot's): the same auth, rate limit and retries as [`SourceHttp::get_json`].
    pub async fn post_json(&self, url: Url, body: &serde_json::Value, what: &str) -> Result<HttpResponse, SourceError> {
        self.send_json(reqwest::Method::POST, url, Some(body), what).await
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        url: Url,
        body: Option<&serde_json::Value>,
        what: &str,
    ) -> Result<HttpResponse, SourceError> {
        let mut attempt = 0u32;
        let mut refreshed_after_401 = false;
        // A request admitted by the budget keeps its retries (a probe that meets a 5xx is not
        // refused by its own probe slot) unless one of its answers says the budget is spent.
        let mut admitted = false;
        loop {
            attempt += 1;
            if !admitted {
                self.check_budget(what)?;
                admitted = true;
            }
            self.pace().await;
            let auth = self.auth_header(what).await?;
            let name = match &self.auth {
                SourceAuth::Header { name, .. } => name.clone(),
                _ => reqwest::header::AUTHORIZATION,
            };
            let mut req =
                self.client.request(method.clone(), url.clone()).header(reqwest::header::ACCEPT, "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(h) = &auth {
                req = req.header(name, h.clone());
            }
            let retry_wait = match req.send().await {
                Err(e) => {
                    let err = SourceError::Transport {
                        system: self.system.clone(),
                        what: what.to_owned(),
                        detail: e.without_url().to_string(),
                    };
                    if attempt >= self.settings.max_attempts {
                        return Err(err);
                    }
                    tracing::warn!(system = %self.system, what, attempt, error = %err, "source request failed, retrying");
                    self.backoff(attempt)
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    if self.note_usage(&headers) {
                        admitted = false;
                    }
                    let text = resp.text().await.map_err(|e| SourceError::Transport {
                        system: self.system.clone(),
                        what: what.to_owned(),
                        detail: e.without_url().to_string(),
                    })?;
                    if (200..300).contains(&status) {
                        let body = if text.trim().is_empty() {
                            serde_json::Value::Null
                        } else {
                            serde_json::from_str(&text).map_err(|e| SourceError::BadResponse {
                                system: self.system.clone(),
                                what: what.to_owned(),
                                detail: format!("not JSON ({e}): {}", excerpt(&text)),
                            })?
                        };
                        return Ok(HttpResponse { status, headers, body });
                    }
                    let oauth = matches!(self.auth, SourceAuth::Oauth2 { .. } | SourceAuth::JwtBearer { .. });
                    if status == 401 && oauth && !refreshed_after_401 {
                        // The token may have been revoked or expired early: fetch a new one once.
                        refreshed_after_401 = true;
                        *self.token.lock().await = None;
                        continue;
                    }
                    let limited = status == 429 || self.quota.is_some_and(|q| (q.limited)(status, &text));
                    if (status == 401 || status == 403) && !limited {
                        return Err(SourceError::Unauthorized {
                            system: self.system.clone(),
                            what: what.to_owned(),
                            status,
                            detail: excerpt(&text),
                        });
                    }
                    let retryable = limited || status == 408 || status >= 500;
                    if !retryable {
                        return Err(SourceError::Http {
                            system: self.system.clone(),
                            what: what.to_owned(),
                            status,
                            detail: excerpt(&text),
                        });
                    }
                    if limited {
                        self.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    if attempt >= self.settings.max_attempts {
                        return Err(if limited {
                            SourceError::Throttled {
                                system: self.system.clone(),
                                what: what.to_owned(),
                                attempts: attempt,
                            }
                        } else {
                            SourceError::Http {
                                system: self.system.clone(),
                                what: what.to_owned(),
                                status,
                                detail: excerpt(&text),
                            }
                        });
                    }
                    let wait = retry_after(&headers).map(|d| d.min(self.settings.max_backoff));
                    let wait = wait.unwrap_or_else(|| self.backoff(attempt));
                    tracing::warn!(system = %self.system, what, status, attempt, wait_ms = wait.as_millis() as u64, "source request throttled or failed, retrying");
                    wait
                }
            };
            tokio::time::sleep(retry_wait).await;
        }
    }

    /// Full jitter: uniform in `[0, min(max, initial·2^(attempt-1))]`.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.settings.initial_backoff.saturating_mul(1u32 << (attempt - 1).min(16));
        let cap = exp.min(self.settings.max_backoff);
        let ms = cap.as_millis().min(u64::MAX as u128) as u64;
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    /// Waits for the next request slot when a client-side rate is configured.
    async fn pace(&self) {
        let Some(rate) = self.settings.max_requests_per_second else { return };
        let gap = Duration::from_secs_f64(1.0 / rate);
        let wait_until = {
            let mut next = self.next_slot.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + gap;
            slot
        };
        tokio::time::sleep_until(wait_until).await;
    }

    async fn auth_header(&self, what: &str) -> Result<Option<HeaderValue>, SourceError> {
        let sensitive = |v: String| -> Result<HeaderValue, SourceError> {
            let mut h = HeaderValue::from_str(&v).map_err(|_| {
                SourceError::Config("a credential contains characters not allowed in an HTTP header".into())
            })?;
            h.set_sensitive(true);
            Ok(h)
        };
        match &self.auth {
            SourceAuth::Basic { username, password } => {
                use base64::Engine;
                let raw = format!("{username}:{}", password.expose());
                sensitive(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))).map(Some)
            }
            SourceAuth::Bearer { token } => sensitive(format!("Bearer {}", token.expose())).map(Some),
            SourceAuth::Header { value, .. } => sensitive(value.expose().to_owned()).map(Some),
            SourceAuth::Oauth2 { .. } | SourceAuth::JwtBearer { .. } => {
                let token = self.oauth_token(what).await?;
                sensitive(format!("Bearer {}", token.expose())).map(Some)
            }
        }
    }

    async fn oauth_token(&self, what: &str) -> Result<Secret, SourceError> {
        let mut cache = self.token.lock().await;
        if let Some(t) = cache.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let token_what = format!("{what} (OAuth token)");
        let (token_url, refresh_before, form) = match &self.auth {
            SourceAuth::Oauth2 { token_url, client_id, client_secret, scope, refresh_before } => {
                let mut form = vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", client_id.clone()),
                    ("client_secret", client_secret.expose().to_owned()),
                ];
                if let Some(s) = scope {
                    form.push(("scope", s.clone()));
                }
                (token_url, refresh_before, form)
            }
            SourceAuth::JwtBearer { token_url, issuer, subject, audience, private_key, refresh_before } => {
                let exp = chrono::Utc::now().timestamp() + 180;
                let claims = serde_json::json!({"iss": issuer, "sub": subject, "aud": audience, "exp": exp});
                let jwt = rsa_key(private_key)
                    .and_then(|k| signed_jwt(&k, &claims))
                    .map_err(|e| SourceError::Config(format!("cannot sign the {} JWT assertion: {e}", self.system)))?;
                (token_url, refresh_before, vec![("grant_type", JWT_BEARER_GRANT.to_owned()), ("assertion", jwt)])
            }
            _ => return Err(SourceError::Config("not an OAuth2 configuration".into())),
        };
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form.iter()).finish();
        let resp = self
            .client
            .post(token_url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| SourceError::Transport {
                system: self.system.clone(),
                what: token_what.clone(),
                detail: e.without_url().to_string(),
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(if status == 400 || status == 401 || status == 403 {
                SourceError::Unauthorized {
                    system: self.system.clone(),
                    what: token_what,
                    status,
                    detail: excerpt(&text),
                }
            } else {
                SourceError::Http { system: self.system.clone(), what: token_what, status, detail: excerpt(&text) }
            });
        }
        let parsed: TokenResponse = serde_json::from_str(&text).map_err(|e| SourceError::BadResponse {
            system: self.system.clone(),
            what: token_what,
            detail: format!("token answer without access_token: {e}"),
        })?;
        self.token_fetches.fetch_add(1, Ordering::Relaxed);
        // ServiceNow sends expires_in as a number; some servers send a string.
        let expires = parsed
            .expires_in
            .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
            .unwrap_or(300);
        let lifetime = Duration::from_secs(expires).saturating_sub(*refresh_before).max(Duration::from_secs(1));
        let value = Secret::new(parsed.access_token);
        *cache = Some(Token { value: value.clone(), refresh_at: Instant::now() + lifetime });
        Ok(value)
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok().or(Some(Duration::ZERO))
}

/// The `rel="next"` target of an RFC 8288 `Link` header, if any.
pub fn next_link(headers: &HeaderMap) -> Option<Url> {
    link_rel(headers, "next")
}

/// The target of relation `rel` in the `Link` headers.
pub fn link_rel(headers: &HeaderMap, rel: &str) -> Option<Url> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(text) = value.to_str() else { continue };
        for part in split_links(text) {
            let part = part.trim();
            let Some(end) = part.find('>') else { continue };
            let Some(target) = part.get(1..end).filter(|_| part.starts_with('<')) else { continue };
            let has_rel = part[end + 1..].split(';').any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .map(|r| r.trim_matches('"').split_ascii_whitespace().any(|r| r.eq_ignore_ascii_case(rel)))
                    .unwrap_or(false)
            });
            if has_rel && let Ok(url) = Url::parse(target) {
                return Some(url);
            }
        }
    }
    None
}

/// Splits a `Link` header at the commas between links (not those inside `<…>`).
fn split_links(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '<' => depth = true,
            '>' => depth = false,
            ',' if !depth => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// Offset/limit pages: `(offset, limit)` pairs from 0 while the previous page was full. Call
/// [`OffsetPages::next_page`] with the number of records the last page returned.
#[derive(Debug, Clone)]
pub struct OffsetPages {
    limit: u32,
    offset: u64,
    done: bool,
}

/// Offset pagination with pages of `limit`.
pub fn offset_pages(limit: u32) -> OffsetPages {
    OffsetPages { limit: limit.max(1), offset: 0, done: false }
}

impl OffsetPages {
    /// The `(offset, limit)` of the page to fetch now, `None` once a short page was seen.
    pub fn current(&self) -> Option<(u64, u32)> {
        (!self.done).then_some((self.offset, self.limit))
    }
    /// Records that the current page returned `count` records.
    pub fn next_page(&mut self, count: usize) {
        if count < self.limit as usize {
            self.done = true;
        }
        self.offset += count as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Classify;
    use std::sync::Arc;

    #[test]
    fn parses_link_headers_and_retry_after() {
        let mut h = HeaderMap::new();
        h.append(
            reqwest::header::LINK,
            HeaderValue::from_static(
                "<https://x.service-now.com/api/now/table/cmdb_ci?sysparm_offset=0&sysparm_limit=2>;rel=\"first\",<https://x.service-now.com/api/now/table/cmdb_ci?sysparm_offset=2&sysparm_limit=2>;rel=\"next\"",
            ),
        );
        let next = next_link(&h).unwrap();
        assert_eq!(next.query(), Some("sysparm_offset=2&sysparm_limit=2"));
        assert!(link_rel(&h, "last").is_none());
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past means now");
    }

    #[test]
    fn max_api_share_must_be_a_share() {
        for bad in [0.0, -0.1, 1.01, f64::NAN, f64::INFINITY] {
            let s = HttpSettings { max_api_share: bad, ..Default::default() };
            let e = s.validate("connectors.crm.http").unwrap_err().to_string();
            assert!(e.contains("connectors.crm.http.max_api_share"), "{bad}: {e}");
        }
        for good in [0.01, 0.5, 1.0] {
            HttpSettings { max_api_share: good, ..Default::default() }.validate("h").unwrap();
        }
        let s = HttpSettings { api_budget_recheck: Duration::from_millis(10), ..Default::default() };
        assert!(s.validate("h").unwrap_err().to_string().contains("h.api_budget_recheck"));
        let parsed: HttpSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed.max_api_share, 0.5);
    }

    /// A local system that reports `used`/100 in a `X-Usage` header, answers `403 LIMIT` while
    /// `limited` > 0 and `500` without the header while `failing` > 0 (decrementing them), and
    /// counts the requests that reached it.
    struct QuotaServer {
        used: Arc<AtomicU64>,
        limited: Arc<AtomicU64>,
        failing: Arc<AtomicU64>,
        hits: Arc<AtomicU64>,
        url: Url,
    }

    async fn quota_server() -> QuotaServer {
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        let counter = || Arc::new(AtomicU64::new(0));
        let (used, limited, failing, hits) = (counter(), counter(), counter(), counter());
        let (u, l, f, h) = (used.clone(), limited.clone(), failing.clone(), hits.clone());
        let app = axum::Router::new().route(
            "/data",
            axum::routing::get(move || {
                let (u, l, f, h) = (u.clone(), l.clone(), f.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    if f.load(Ordering::SeqCst) > 0 {
                        f.fetch_sub(1, Ordering::SeqCst);
                        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
                    }
                    let header = [("x-usage", format!("{}/100", u.load(Ordering::SeqCst)))];
                    if l.load(Ordering::SeqCst) > 0 {
                        l.fetch_sub(1, Ordering::SeqCst);
                        return (StatusCode::FORBIDDEN, header, "LIMIT").into_response();
                    }
                    (StatusCode::OK, header, "{\"ok\":true}").into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/data", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        QuotaServer { used, limited, failing, hits, url }
    }

    fn usage_header(h: &HeaderMap) -> Option<ApiUsage> {
        let (used, limit) = h.get("x-usage")?.to_str().ok()?.split_once('/')?;
        Some(ApiUsage { used: used.parse().ok()?, limit: limit.parse().ok()? })
    }

    fn quota_client(recheck: Duration) -> SourceHttp {
        let settings = HttpSettings {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_api_share: 0.5,
            api_budget_recheck: recheck,
            ..Default::default()
        };
        SourceHttp::new("sys", SourceAuth::Bearer { token: Secret::new("t0ken-s3cret") }, settings)
            .unwrap()
            .with_quota(ApiQuota { usage: usage_header, limited: |status, body| status == 403 && body == "LIMIT" })
    }

    #[tokio::test]
    async fn requests_stop_at_the_share_of_the_quota_and_resume_below_it() {
        let srv = quota_server().await;
        let http = quota_client(Duration::from_millis(300));
        srv.used.store(40, Ordering::SeqCst);
        http.get_json(srv.url.clone(), "/data").await.unwrap();
        assert_eq!(http.api_usage(), Some(ApiUsage { used: 40, limit: 100 }));
        // This answer reports 50/100: the share is reached, the next request is not sent.
        srv.used.store(50, Ordering::SeqCst);
        http.get_json(srv.url.clone(), "/data").await.unwrap();
        let err = http.get_json(srv.url.clone(), "/data").await.unwrap_err();
        assert_eq!(srv.hits.load(Ordering::SeqCst), 2, "the refused request never reached the system");
        assert_eq!(err.code(), "source_api_budget");
        assert_eq!(err.class(), crate::ErrorClass::Retryable);
        let text = err.to_string();
        assert!(text.contains("50 of 100") && text.contains("http.max_api_share"), "{text}");
        assert!(!text.contains("t0ken-s3cret"));
        assert_eq!(http.budget_refusals(), 1);
        // After the recheck interval one request reads the usage again; still spent → refused again.
        tokio::time::sleep(Duration::from_millis(350)).await;
        http.get_json(srv.url.clone(), "/data").await.unwrap();
        assert_eq!(http.get_json(srv.url.clone(), "/data").await.unwrap_err().code(), "source_api_budget");
        assert_eq!(srv.hits.load(Ordering::SeqCst), 3);
        // The window moved on: the next probe meets a 500 first, keeps its retry, sees 10/100, and
        // requests flow again.
        srv.used.store(10, Ordering::SeqCst);
        srv.failing.store(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(350)).await;
        for _ in 0..3 {
            http.get_json(srv.url.clone(), "/data").await.unwrap();
        }
        assert_eq!(srv.hits.load(Ordering::SeqCst), 7);
        assert_eq!(http.budget_refusals(), 2);
    }

    #[tokio::test]
    async fn a_rate_limit_answer_the_connector_names_is_retried_like_a_429() {
        let srv = quota_server().await;
        let http = quota_client(Duration::from_secs(60));
        srv.limited.store(2, Ordering::SeqCst);
        http.get_json(srv.url.clone(), "/data").await.unwrap();
        assert_eq!(http.throttled(), 2);
        assert_eq!(srv.hits.load(Ordering::SeqCst), 3);
        srv.limited.store(5, Ordering::SeqCst);
        let err = http.get_json(srv.url.clone(), "/data").await.unwrap_err();
        assert_eq!(err.code(), "source_throttled", "{err}");
        // Without a quota, the same 403 is refused credentials (fatal).
        let plain =
            SourceHttp::new("sys", SourceAuth::Bearer { token: Secret::new("x") }, HttpSettings::default()).unwrap();
        srv.limited.store(1, Ordering::SeqCst);
        assert_eq!(plain.get_json(srv.url.clone(), "/data").await.unwrap_err().code(), "source_unauthorized");
    }

    /// A fresh RSA key as PKCS#8 PEM.
    fn pem_key() -> (Secret, aws_lc_rs::rsa::KeyPair) {
        use aws_lc_rs::encoding::AsDer;
        use base64::Engine;
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der: aws_lc_rs::encoding::Pkcs8V1Der = key.as_der().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        (Secret::new(format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))), key)
    }

    #[test]
    fn jwt_assertions_are_rs256_signed_and_verifiable() {
        use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
        use base64::Engine;
        let (pem, original) = pem_key();
        let key = rsa_key(&pem).unwrap();
        let claims =
            serde_json::json!({"iss": "client", "sub": "user@example.com", "aud": "https://login.example", "exp": 1});
        let jwt = signed_jwt(&key, &claims).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        assert_eq!(b64.decode(parts[0]).unwrap(), br#"{"alg":"RS256"}"#);
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&b64.decode(parts[1]).unwrap()).unwrap(), claims);
        let public = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, original.public_key().as_ref().to_vec());
        let signed = format!("{}.{}", parts[0], parts[1]);
        public.verify(signed.as_bytes(), &b64.decode(parts[2]).unwrap()).unwrap();
        assert!(public.verify(b"other", &b64.decode(parts[2]).unwrap()).is_err());
        // Bad keys are refused without echoing them.
        for bad in ["s3cret-not-a-key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"] {
            let e = rsa_key(&Secret::new(bad)).unwrap_err();
            assert!(!e.contains("s3cret") && !e.contains("AAAA"), "{e}");
        }
        let auth = SourceAuth::JwtBearer {
            token_url: Url::parse("http://127.0.0.1:1/token").unwrap(),
            issuer: "c".into(),
            subject: "u".into(),
            audience: "a".into(),
            private_key: Secret::new("garbage"),
            refresh_before: Duration::from_secs(60),
        };
        let Err(e) = SourceHttp::new("sys", auth, HttpSettings::default()) else {
            panic!("a bad key is a config error")
        };
        assert_eq!(e.code(), "source_config");
    }

    #[test]
    fn offset_pages_stop_after_a_short_page() {
        let mut p = offset_pages(10);
        assert_eq!(p.current(), Some((0, 10)));
        p.next_page(10);
        assert_eq!(p.current(), Some((10, 10)));
        p.next_page(3);
        assert_eq!(p.current(), None);
    }
}
