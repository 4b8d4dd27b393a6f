//! HTTP plumbing of source systems: authentication ([`SourceAuth`]: basic, bearer/API token, OAuth2
//! client credentials with cached tokens refreshed before expiry and after a 401), retries with
//! full-jitter backoff that honour `Retry-After` on 429/503, an optional client-side request rate,
//! and pagination helpers ([`next_link`] for RFC 8288 `Link` headers, [`offset_pages`]).

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

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
            max_attempts: default_attempts(),
            initial_backoff: default_backoff(),
            max_backoff: default_max_backoff(),
            max_requests_per_second: None,
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
        Ok(())
    }
}

struct Token {
    value: Secret,
    refresh_at: Instant,
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
        })
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
        loop {
            attempt += 1;
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
                    if status == 401 && matches!(self.auth, SourceAuth::Oauth2 { .. }) && !refreshed_after_401 {
                        // The token may have been revoked or expired early: fetch a new one once.
                        refreshed_after_401 = true;
                        *self.token.lock().await = None;
                        continue;
                    }
                    if status == 401 || status == 403 {
                        return Err(SourceError::Unauthorized {
                            system: self.system.clone(),
                            what: what.to_owned(),
                            status,
                            detail: excerpt(&text),
                        });
                    }
                    let retryable = status == 429 || status == 408 || status >= 500;
                    if !retryable {
                        return Err(SourceError::Http {
                            system: self.system.clone(),
                            what: what.to_owned(),
                            status,
                            detail: excerpt(&text),
                        });
                    }
                    if status == 429 {
                        self.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    if attempt >= self.settings.max_attempts {
                        return Err(if status == 429 {
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
            SourceAuth::Oauth2 { .. } => {
                let token = self.oauth_token(what).await?;
                sensitive(format!("Bearer {}", token.expose())).map(Some)
            }
        }
    }

    async fn oauth_token(&self, what: &str) -> Result<Secret, SourceError> {
        let SourceAuth::Oauth2 { token_url, client_id, client_secret, scope, refresh_before } = &self.auth else {
            return Err(SourceError::Config("not an OAuth2 configuration".into()));
        };
        let mut cache = self.token.lock().await;
        if let Some(t) = cache.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", client_id.clone()),
            ("client_secret", client_secret.expose().to_owned()),
        ];
        if let Some(s) = scope {
            form.push(("scope", s.clone()));
        }
        let token_what = format!("{what} (OAuth token)");
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
    fn offset_pages_stop_after_a_short_page() {
        let mut p = offset_pages(10);
        assert_eq!(p.current(), Some((0, 10)));
        p.next_page(10);
        assert_eq!(p.current(), Some((10, 10)));
        p.next_page(3);
        assert_eq!(p.current(), None);
    }
}
