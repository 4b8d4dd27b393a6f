//! The Coupa Core API client: `GET /api/<resource>` with query arguments (`attr[op]=value`),
//! `order_by`/`dir`, `offset`/`limit` (Coupa returns at most 50 records per request), always with
//! `Accept: application/json` (Coupa answers XML otherwise). Requests go through the engine's
//! [`SourceHttp`] (retries on 429/408/5xx with `Retry-After` and full-jitter backoff), with OAuth2
//! client credentials (token cached, refreshed before expiry and after a 401) or the legacy
//! `X-COUPA-API-KEY` header.

use std::time::Duration;

use dastra_connect_core::source::{SourceAuth, SourceError, SourceHttp, StreamKind};
use reqwest::header::HeaderName;
use serde_json::Value;
use url::Url;

use crate::config::{CoupaAuth, CoupaConfig, CoupaResource};

const SYSTEM: &str = "coupa";

/// Coupa's cap on records per request.
pub const MAX_LIMIT: u32 = 50;

/// Talks to one Coupa instance.
pub struct CoupaClient {
    base: Url,
    http: SourceHttp,
}

impl CoupaClient {
    /// A client for the configured instance.
    pub fn new(config: &CoupaConfig) -> Result<CoupaClient, SourceError> {
        let mut base = config.url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let auth = match &config.auth {
            CoupaAuth::Oauth2 { client_id, client_secret, scope, .. } => {
                let token_url = config.token_url().ok_or_else(|| SourceError::Config("no OAuth2 token URL".into()))?;
                SourceAuth::Oauth2 {
                    token_url,
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    scope: Some(scope.clone()),
                    refresh_before: Duration::from_secs(300),
                }
            }
            CoupaAuth::ApiKey { api_key } => {
                SourceAuth::Header { name: HeaderName::from_static("x-coupa-api-key"), value: api_key.clone() }
            }
        };
        Ok(CoupaClient { base, http: SourceHttp::new(SYSTEM, auth, config.http.clone())? })
    }

    /// How many 429 answers were waited out.
    pub fn throttled(&self) -> u64 {
        self.http.throttled()
    }

    /// `GET /api/<resource>?<params>`: the JSON array of records.
    pub async fn list(&self, resource: CoupaResource, params: &[(String, String)]) -> Result<Vec<Value>, SourceError> {
        let what = format!("/{}", resource.path());
        let mut url = self
            .base
            .join(resource.path())
            .map_err(|e| SourceError::Config(format!("bad Coupa URL for `{}`: {e}", resource.stream())))?;
        url.query_pairs_mut().extend_pairs(params.iter());
        let body = self.http.get_json(url, &what).await?.body;
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
