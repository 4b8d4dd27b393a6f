//! Authentication headers: `X-API-Key`, HTTP Basic with the key as user name, or an OAuth2
//! client-credentials bearer token fetched from the token endpoint, cached, refreshed `refresh_before`
//! its expiry, and fetched by one caller at a time (the others wait for it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use dastra_connect_core::config::Secret;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use tokio::time::Instant;
use url::Url;

use crate::config::AuthConfig;
use crate::error::{DastraError, Redactor};

/// A header to put on an API request, marked sensitive so HTTP libraries never log it.
pub(crate) struct AuthHeader {
    pub name: HeaderName,
    pub value: HeaderValue,
    /// The bearer token used, to invalidate exactly this one after a 401.
    pub token: Option<Secret>,
}

struct CachedToken {
    token: Secret,
    /// When to fetch a new one (expiry minus `refresh_before`).
    refresh_at: Instant,
}

pub(crate) struct OAuth {
    token_url: Url,
    client_id: String,
    client_secret: Secret,
    scope: String,
    refresh_before: Duration,
    timeout: Duration,
    cache: tokio::sync::Mutex<Option<CachedToken>>,
    fetches: AtomicU64,
}

pub(crate) enum Auth {
    ApiKey(Secret),
    Basic(Secret),
    OAuth2(Box<OAuth>),
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn sensitive(v: &str) -> Result<HeaderValue, DastraError> {
    let mut h = HeaderValue::from_str(v).map_err(|_| DastraError::Build {
        route: "auth",
        detail: "the credential contains characters not allowed in an HTTP header".into(),
    })?;
    h.set_sensitive(true);
    Ok(h)
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

impl Auth {
    pub(crate) fn new(config: &AuthConfig, timeout: Duration) -> Self {
        match config {
            AuthConfig::ApiKey { api_key } => Auth::ApiKey(api_key.clone()),
            AuthConfig::Basic { api_key } => Auth::Basic(api_key.clone()),
            AuthConfig::Oauth2 { token_url, client_id, client_secret, scope, refresh_before } => {
                Auth::OAuth2(Box::new(OAuth {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    scope: scope.clone(),
                    refresh_before: *refresh_before,
                    timeout,
                    cache: tokio::sync::Mutex::new(None),
                    fetches: AtomicU64::new(0),
                }))
            }
        }
    }

    /// The static secrets, for the redactor.
    pub(crate) fn secrets(&self) -> Vec<String> {
        match self {
            Auth::ApiKey(k) | Auth::Basic(k) => {
                vec![
                    k.expose().to_owned(),
                    base64::engine::general_purpose::STANDARD.encode(format!("{}:", k.expose())),
                ]
            }
            Auth::OAuth2(o) => vec![
                o.client_secret.expose().to_owned(),
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    o.client_id,
                    o.client_secret.expose()
                )),
            ],
        }
    }

    /// Number of token requests made so far (0 unless OAuth2).
    pub(crate) fn token_fetches(&self) -> u64 {
        match self {
            Auth::OAuth2(o) => o.fetches.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    pub(crate) async fn header(&self, http: &reqwest::Client, redactor: &Redactor) -> Result<AuthHeader, DastraError> {
        match self {
            Auth::ApiKey(k) => Ok(AuthHeader {
                name: HeaderName::from_static("x-api-key"),
                value: sensitive(k.expose())?,
                token: None,
            }),
            Auth::Basic(k) => {
                // Older docs: the private key as user name, password irrelevant.
                Ok(AuthHeader { name: AUTHORIZATION, value: sensitive(&basic(k.expose(), ""))?, token: None })
            }
            Auth::OAuth2(o) => {
                let token = o.token(http, redactor).await?;
                Ok(AuthHeader {
                    name: AUTHORIZATION,
                    value: sensitive(&format!("Bearer {}", token.expose()))?,
                    token: Some(token),
                })
            }
        }
    }

    /// Forgets `used` after a 401 (unless another caller already replaced it). Returns true when a new
    /// token will be fetched, i.e. one more attempt makes sense.
    pub(crate) async fn invalidate(&self, used: Option<&Secret>) -> bool {
        let (Auth::OAuth2(o), Some(used)) = (self, used) else { return false };
        let mut cache = o.cache.lock().await;
        if cache.as_ref().is_some_and(|c| &c.token == used) {
            *cache = None;
        }
        true
    }
}

impl OAuth {
    async fn token(&self, http: &reqwest::Client, redactor: &Redactor) -> Result<Secret, DastraError> {
        // Holding the lock while fetching makes concurrent callers wait for one fetch.
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("scope", &self.scope)
            .finish();
        let resp = http
            .post(self.token_url.clone())
            .header(AUTHORIZATION, sensitive(&basic(&self.client_id, self.client_secret.expose()))?)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| DastraError::Token {
                status: None,
                detail: redactor.redact(&e.to_string()),
                retryable: true,
            })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| DastraError::Token {
            status: Some(status),
            detail: redactor.redact(&e.to_string()),
            retryable: true,
        })?;
        if !(200..300).contains(&status) {
            return Err(DastraError::Token {
                status: Some(status),
                detail: redactor.excerpt(&bytes, 300),
                retryable: status == 429 || status >= 500,
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&bytes).map_err(|e| DastraError::Token {
            status: Some(status),
            detail: format!("unreadable token response ({e}): {}", redactor.excerpt(&bytes, 200)),
            retryable: false,
        })?;
        // Dastra documents expires_in = 3600; assume that when it is missing.
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        // Refresh before expiry, but never sooner than half the lifetime (short-lived test tokens).
        let early = self.refresh_before.min(lifetime / 2);
        let token = Secret::new(parsed.access_token);
        *cache = Some(CachedToken { token: token.clone(), refresh_at: Instant::now() + lifetime - early });
        Ok(token)
    }
}
