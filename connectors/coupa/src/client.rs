//! The Coupa Core API client: `GET /api/<resource>` with query arguments (`attr[op]=value`),
//! `order_by`/`dir`, `offset`/`limit` (Coupa returns at most 50 records per request), always with
//! `Accept: application/json` (Coupa answers XML otherwise). OAuth2 client credentials go through
//! the engine's [`SourceHttp`] (token cached, refreshed before expiry and after a 401); the legacy
//! `X-COUPA-API-KEY` header through a small client of this module with the same retry policy
//! (429/408/5xx, `Retry-After`, full-jitter backoff).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dastra_connect_core::source::http::retry_after;
use dastra_connect_core::source::{HttpSettings, SourceAuth, SourceError, SourceHttp};
use rand::Rng;
use reqwest::header::{ACCEPT, HeaderValue};
use serde_json::Value;
use url::Url;

use crate::config::{CoupaAuth, CoupaConfig, CoupaResource};

const SYSTEM: &str = "coupa";

/// Coupa's cap on records per request.
pub const MAX_LIMIT: u32 = 50;

enum Transport {
    OAuth(Box<SourceHttp>),
    ApiKey { client: reqwest::Client, key: HeaderValue, settings: HttpSettings, throttled: AtomicU64 },
}

/// Talks to one Coupa instance.
pub struct CoupaClient {
    base: Url,
    transport: Transport,
}

fn excerpt(text: &str) -> String {
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push('…');
    }
    s
}

impl CoupaClient {
    /// A client for the configured instance.
    pub fn new(config: &CoupaConfig) -> Result<CoupaClient, SourceError> {
        let mut base = config.url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let transport = match &config.auth {
            CoupaAuth::Oauth2 { client_id, client_secret, scope, .. } => {
                let token_url = config.token_url().ok_or_else(|| SourceError::Config("no OAuth2 token URL".into()))?;
                let auth = SourceAuth::Oauth2 {
                    token_url,
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    scope: Some(scope.clone()),
                    refresh_before: Duration::from_secs(300),
                };
                Transport::OAuth(Box::new(SourceHttp::new(SYSTEM, auth, config.http.clone())?))
            }
            CoupaAuth::ApiKey { api_key } => {
                let mut key = HeaderValue::from_str(api_key.expose()).map_err(|_| {
                    SourceError::Config("the Coupa API key contains characters not allowed in an HTTP header".into())
                })?;
                key.set_sensitive(true);
                let client = reqwest::Client::builder()
                    .timeout(config.http.timeout)
                    .connect_timeout(config.http.timeout.min(Duration::from_secs(15)))
                    .user_agent(concat!("dastra-connect/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| SourceError::Config(format!("cannot build the HTTP client: {e}")))?;
                Transport::ApiKey { client, key, settings: config.http.clone(), throttled: AtomicU64::new(0) }
            }
        };
        Ok(CoupaClient { base, transport })
    }

    /// How many 429 answers were waited out.
    pub fn throttled(&self) -> u64 {
        match &self.transport {
            Transport::OAuth(h) => h.throttled(),
            Transport::ApiKey { throttled, .. } => throttled.load(Ordering::Relaxed),
        }
    }

    /// `GET /api/<resource>?<params>`: the JSON array of records.
    pub async fn list(&self, resource: CoupaResource, params: &[(String, String)]) -> Result<Vec<Value>, SourceError> {
        let what = format!("/{}", resource.path());
        let mut url = self
            .base
            .join(resource.path())
            .map_err(|e| SourceError::Config(format!("bad Coupa URL for `{}`: {e}", resource.stream())))?;
        url.query_pairs_mut().extend_pairs(params.iter());
        let body = match &self.transport {
            Transport::OAuth(h) => h.get_json(url, &what).await?.body,
            Transport::ApiKey { client, key, settings, throttled } => {
                get_with_key(client, key, settings, throttled, url, &what).await?
            }
        };
        match body {
            Value::Array(a) => Ok(a),
            _ => Err(SourceError::BadResponse {
                system: SYSTEM.into(),
                what,
                detail: "the answer is not a JSON array".into(),
            }),
        }
    }
}

fn backoff(settings: &HttpSettings, attempt: u32) -> Duration {
    let exp = settings.initial_backoff.saturating_mul(1u32 << (attempt - 1).min(16));
    let cap = exp.min(settings.max_backoff).as_millis().min(u64::MAX as u128) as u64;
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

/// `GET url` with `X-COUPA-API-KEY`, retrying 429/408/5xx and transport errors.
async fn get_with_key(
    client: &reqwest::Client,
    key: &HeaderValue,
    settings: &HttpSettings,
    throttled: &AtomicU64,
    url: Url,
    what: &str,
) -> Result<Value, SourceError> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let sent = client
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .header("X-COUPA-API-KEY", key.clone())
            .send()
            .await;
        let wait = match sent {
            Err(e) => {
                let err = SourceError::Transport {
                    system: SYSTEM.into(),
                    what: what.into(),
                    detail: e.without_url().to_string(),
                };
                if attempt >= settings.max_attempts {
                    return Err(err);
                }
                tracing::warn!(system = SYSTEM, what, attempt, error = %err, "Coupa request failed, retrying");
                backoff(settings, attempt)
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
                    return Err(SourceError::Http {
                        system: SYSTEM.into(),
                        what: what.into(),
                        status,
                        detail: excerpt(&text),
                    });
                }
                if status == 429 {
                    throttled.fetch_add(1, Ordering::Relaxed);
                }
                if attempt >= settings.max_attempts {
                    return Err(if status == 429 {
                        SourceError::Throttled { system: SYSTEM.into(), what: what.into(), attempts: attempt }
                    } else {
                        SourceError::Http { system: SYSTEM.into(), what: what.into(), status, detail: excerpt(&text) }
                    });
                }
                let wait = retry_after(&headers)
                    .map(|d| d.min(settings.max_backoff))
                    .unwrap_or_else(|| backoff(settings, attempt));
                tracing::warn!(
                    system = SYSTEM,
                    what,
                    status,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "Coupa throttled or failed, retrying"
                );
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}
