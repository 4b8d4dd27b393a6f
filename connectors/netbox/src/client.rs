//! The NetBox REST API client: `GET /api/<app>/<model>/` with filters, `ordering`, `limit`/`offset`,
//! answers `{count, next, previous, results}`; `Authorization: Token <key>` (or `Bearer` for v2
//! tokens); retries with full-jitter backoff that honour `Retry-After` on 429/503 (NetBox itself
//! does not rate-limit, the reverse proxy in front of it often does).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dastra_connect_core::config::Secret;
use dastra_connect_core::source::http::retry_after;
use dastra_connect_core::source::{HttpSettings, SourceError};
use rand::Rng;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::config::{NetBoxObject, TokenScheme};

const SYSTEM: &str = "netbox";

/// A page of a list endpoint.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// `count`: objects matching the filters.
    pub count: Option<u64>,
    /// `next`: the following page, rebased on the configured URL.
    pub next: Option<Url>,
    /// `results`.
    pub results: Vec<Value>,
}

/// Talks to one NetBox.
pub struct NetBoxClient {
    client: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    settings: HttpSettings,
    throttled: AtomicU64,
    next_slot: Mutex<Instant>,
}

fn excerpt(text: &str) -> String {
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push('…');
    }
    s
}

impl NetBoxClient {
    /// A client for the NetBox at `url`.
    pub fn new(
        url: &Url,
        token: &Secret,
        scheme: TokenScheme,
        settings: HttpSettings,
    ) -> Result<NetBoxClient, SourceError> {
        let mut base = url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let word = match scheme {
            TokenScheme::Token => "Token",
            TokenScheme::Bearer => "Bearer",
        };
        let mut auth = HeaderValue::from_str(&format!("{word} {}", token.expose())).map_err(|_| {
            SourceError::Config("the NetBox token contains characters not allowed in an HTTP header".into())
        })?;
        auth.set_sensitive(true);
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(15)))
            .user_agent(concat!("dastra-connect/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SourceError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(NetBoxClient {
            client,
            base,
            auth,
            settings,
            throttled: AtomicU64::new(0),
            next_slot: Mutex::new(Instant::now()),
        })
    }

    /// How many 429 answers were waited out.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// The list URL of `object` with `params`.
    pub fn list_url(&self, object: NetBoxObject, params: &[(String, String)]) -> Result<Url, SourceError> {
        let mut url = self
            .base
            .join(object.path())
            .map_err(|e| SourceError::Config(format!("bad NetBox URL for `{}`: {e}", object.stream())))?;
        url.query_pairs_mut().extend_pairs(params.iter());
        Ok(url)
    }

    /// The change-log URL (`endpoint` relative to the root) with `params`.
    pub fn change_log_url(&self, endpoint: &str, params: &[(String, String)]) -> Result<Url, SourceError> {
        let mut url =
            self.base.join(endpoint).map_err(|e| SourceError::Config(format!("bad NetBox change-log URL: {e}")))?;
        url.query_pairs_mut().extend_pairs(params.iter());
        Ok(url)
    }

    /// One page at `url` (a [`NetBoxClient::list_url`] or a `next` link).
    pub async fn page(&self, object: NetBoxObject, url: Url) -> Result<ListPage, SourceError> {
        self.page_at(object.path(), url).await
    }

    /// One page of the list endpoint `path` (relative to the root) at `url`.
    pub async fn page_at(&self, path: &str, url: Url) -> Result<ListPage, SourceError> {
        let what = format!("/{path}");
        let body = self.get_json(url, &what).await?;
        let bad = |detail: &str| SourceError::BadResponse {
            system: SYSTEM.into(),
            what: what.clone(),
            detail: detail.into(),
        };
        let results = match body.get("results") {
            Some(Value::Array(a)) => a.clone(),
            _ => return Err(bad("the answer has no `results` array")),
        };
        // NetBox builds `next` from the request it saw: behind a TLS-terminating proxy it says
        // `http://` or an internal host. Keep only its query and apply it to our own URL.
        let next = match body.get("next").and_then(Value::as_str) {
            None => None,
            Some(link) => {
                let parsed = Url::parse(link).map_err(|e| bad(&format!("unreadable `next` link: {e}")))?;
                let mut own = self
                    .base
                    .join(path)
                    .map_err(|e| SourceError::Config(format!("bad NetBox URL for `{path}`: {e}")))?;
                own.set_query(parsed.query());
                Some(own)
            }
        };
        Ok(ListPage { count: body.get("count").and_then(Value::as_u64), next, results })
    }

    async fn pace(&self) {
        let Some(rate) = self.settings.max_requests_per_second else { return };
        let gap = Duration::from_secs_f64(1.0 / rate);
        let at = {
            let mut next = self.next_slot.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + gap;
            slot
        };
        tokio::time::sleep_until(at).await;
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.settings.initial_backoff.saturating_mul(1u32 << (attempt - 1).min(16));
        let cap = exp.min(self.settings.max_backoff).as_millis().min(u64::MAX as u128) as u64;
        Duration::from_millis(rand::rng().random_range(0..=cap))
    }

    /// `GET url` with the token, retrying 429/408/5xx and transport errors.
    async fn get_json(&self, url: Url, what: &str) -> Result<Value, SourceError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.pace().await;
            let sent = self
                .client
                .get(url.clone())
                .header(ACCEPT, "application/json")
                .header(AUTHORIZATION, self.auth.clone())
                .send()
                .await;
            let wait = match sent {
                Err(e) => {
                    let err = SourceError::Transport {
                        system: SYSTEM.into(),
                        what: what.into(),
                        detail: e.without_url().to_string(),
                    };
                    if attempt >= self.settings.max_attempts {
                        return Err(err);
                    }
                    tracing::warn!(system = SYSTEM, what, attempt, error = %err, "NetBox request failed, retrying");
                    self.backoff(attempt)
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let text = resp.text().await.map_err(|e| SourceError::Transport {
                        system: SYSTEM.into(),
                        what: what.into(),
                        detail: e.without_url().to_string(),
                    })?;
                    if (200..300).contains(&status) {
                        return serde_json::from_str(&text).map_err(|e| SourceError::BadResponse {
                            system: SYSTEM.into(),
                            what: what.into(),
                            detail: format!("not JSON ({e}): {}", excerpt(&text)),
                        });
                    }
                    if status == 401 || status == 403 {
                        return Err(SourceError::Unauthorized {
                            system: SYSTEM.into(),
                            what: what.into(),
                            status,
                            detail: excerpt(&text),
                        });
                    }
                    if !(status == 429 || status == 408 || status >= 500) {
                        // 400 names an unknown filter (NetBox validates filter values): a config error.
                        return Err(SourceError::Http {
                            system: SYSTEM.into(),
                            what: what.into(),
                            status,
                            detail: excerpt(&text),
                        });
                    }
                    if status == 429 {
                        self.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    if attempt >= self.settings.max_attempts {
                        return Err(if status == 429 {
                            SourceError::Throttled { system: SYSTEM.into(), what: what.into(), attempts: attempt }
                        } else {
                            SourceError::Http {
                                system: SYSTEM.into(),
                                what: what.into(),
                                status,
                                detail: excerpt(&text),
                            }
                        });
                    }
                    let wait = retry_after(&headers)
                        .map(|d| d.min(self.settings.max_backoff))
                        .unwrap_or_else(|| self.backoff(attempt));
                    tracing::warn!(
                        system = SYSTEM,
                        what,
                        status,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "NetBox throttled or failed, retrying"
                    );
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}
