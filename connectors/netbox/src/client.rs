//! The NetBox REST API client: `GET /api/<app>/<model>/` with filters, `ordering`, `limit`/`offset`,
//! answers `{count, next, previous, results}`; `Authorization: Token <key>` (or `Bearer` for v2
//! tokens). Requests go through the engine's [`SourceHttp`]: retries with full-jitter backoff that
//! honour `Retry-After` on 429/503 (NetBox itself does not rate-limit, the reverse proxy in front
//! of it often does), the optional client-side rate.

use dastra_connect_core::config::Secret;
use dastra_connect_core::source::{HttpSettings, SourceAuth, SourceError, SourceHttp, StreamKind};
use reqwest::header::AUTHORIZATION;
use serde_json::Value;
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
    http: SourceHttp,
    base: Url,
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
        let auth = SourceAuth::Header { name: AUTHORIZATION, value: Secret::new(format!("{word} {}", token.expose())) };
        Ok(NetBoxClient { http: SourceHttp::new(SYSTEM, auth, settings)?, base })
    }

    /// How many 429 answers were waited out.
    pub fn throttled(&self) -> u64 {
        self.http.throttled()
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
        let body = self.http.get_json(url, &what).await?.body;
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
}
