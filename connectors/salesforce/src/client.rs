//! The Salesforce REST API client: SOQL through `GET /services/data/v<version>/query?q=…` (or
//! `queryAll`, which also returns deleted records), following `nextRecordsUrl` until `done`, with
//! an OAuth 2.0 client-credentials token. Requests go through the engine's [`SourceHttp`]: retries,
//! backoff, and the API budget — [`limit_info`] reads `Sforce-Limit-Info: api-usage=USED/MAX`, and
//! `403 [{"errorCode": "REQUEST_LIMIT_EXCEEDED"}]` is retried like a 429
//! ([`request_limit_exceeded`]).

use std::time::Duration;

use dastra_connect_core::source::{ApiQuota, ApiUsage, SourceAuth, SourceError, SourceHttp, StreamKind};
use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use crate::config::{SalesforceAuth, SalesforceConfig, SalesforceObject};

const SYSTEM: &str = "salesforce";

/// `Sforce-Limit-Info: api-usage=10018/100000; per-app-api-usage=…` → the org's daily usage.
pub fn limit_info(headers: &HeaderMap) -> Option<ApiUsage> {
    let v = headers.get("sforce-limit-info")?.to_str().ok()?;
    let usage = v.split(';').map(str::trim).find_map(|part| part.strip_prefix("api-usage="))?;
    let (used, limit) = usage.split_once('/')?;
    Some(ApiUsage { used: used.trim().parse().ok()?, limit: limit.trim().parse().ok()? })
}

/// Salesforce's "too many requests": 403 with an error whose `errorCode` is
/// `REQUEST_LIMIT_EXCEEDED` (the org's API request limit, or its concurrent long-request limit).
pub fn request_limit_exceeded(status: u16, body: &str) -> bool {
    if status != 403 {
        return false;
    }
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(errors)) => {
            errors.iter().any(|e| e.get("errorCode").and_then(Value::as_str) == Some("REQUEST_LIMIT_EXCEEDED"))
        }
        _ => false,
    }
}

/// Talks to one org.
pub struct SalesforceClient {
    base: Url,
    data: Url,
    http: SourceHttp,
}

impl SalesforceClient {
    /// A client for the configured org.
    pub fn new(config: &SalesforceConfig) -> Result<SalesforceClient, SourceError> {
        let mut base = config.instance_url.clone();
        base.set_path("/");
        let data = base
            .join(&format!("services/data/v{}/", config.api_version))
            .map_err(|e| SourceError::Config(format!("bad Salesforce URL: {e}")))?;
        let token_url = config.token_url().ok_or_else(|| SourceError::Config("no OAuth2 token URL".into()))?;
        let refresh_before = Duration::from_secs(60);
        let auth = match &config.auth {
            SalesforceAuth::ClientCredentials { client_id, client_secret, .. } => SourceAuth::Oauth2 {
                token_url,
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                scope: None,
                refresh_before,
            },
            SalesforceAuth::JwtBearer { client_id, username, private_key, audience, .. } => SourceAuth::JwtBearer {
                token_url,
                issuer: client_id.clone(),
                subject: username.clone(),
                audience: audience.clone(),
                private_key: private_key.clone(),
                refresh_before,
            },
        };
        let http = SourceHttp::new(SYSTEM, auth, config.http.clone())?
            .with_quota(ApiQuota { usage: limit_info, limited: request_limit_exceeded });
        Ok(SalesforceClient { base, data, http })
    }

    /// How many rate-limit answers (429, `REQUEST_LIMIT_EXCEEDED`) were waited out.
    pub fn throttled(&self) -> u64 {
        self.http.throttled()
    }

    /// The org's API usage as last reported.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        self.http.api_usage()
    }

    /// Requests not sent because the API budget was spent.
    pub fn budget_refusals(&self) -> u64 {
        self.http.budget_refusals()
    }

    /// Runs `soql` (`all`: through `queryAll`, deleted records included) and follows
    /// `nextRecordsUrl` until the result is `done` or `want` records were read.
    pub async fn query(
        &self,
        object: SalesforceObject,
        soql: &str,
        all: bool,
        want: usize,
    ) -> Result<Vec<Value>, SourceError> {
        // Errors name the resource and the object, never the query (its literals are data).
        let resource = if all { "queryAll" } else { "query" };
        let what = format!("/{resource} ({})", object.sobject());
        let mut url = self
            .data
            .join(resource)
            .map_err(|e| SourceError::Config(format!("bad Salesforce URL for `{}`: {e}", object.stream())))?;
        url.query_pairs_mut().append_pair("q", soql);
        let mut out = Vec::new();
        loop {
            let body = self.http.get_json(url, &what).await?.body;
            let bad = |detail: &str| SourceError::BadResponse {
                system: SYSTEM.into(),
                what: what.clone(),
                detail: detail.to_owned(),
            };
            let records = body.get("records").and_then(Value::as_array).ok_or_else(|| bad("no `records` array"))?;
            out.extend(records.iter().cloned());
            let done = body.get("done").and_then(Value::as_bool).ok_or_else(|| bad("no `done` flag"))?;
            if done || out.len() >= want {
                break;
            }
            let next = body
                .get("nextRecordsUrl")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("`done` is false but there is no `nextRecordsUrl`"))?;
            url = self.base.join(next).map_err(|e| bad(&format!("unusable nextRecordsUrl: {e}")))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn reads_the_limit_header_and_the_limit_error() {
        let mut h = HeaderMap::new();
        assert_eq!(limit_info(&h), None);
        h.insert("sforce-limit-info", HeaderValue::from_static("api-usage=10018/100000; api-bursts=1/750"));
        assert_eq!(limit_info(&h), Some(ApiUsage { used: 10018, limit: 100000 }));
        h.insert(
            "sforce-limit-info",
            HeaderValue::from_static("per-app-api-usage=17/250(appName=sample-connected-app); api-usage=25/5000"),
        );
        assert_eq!(limit_info(&h), Some(ApiUsage { used: 25, limit: 5000 }));
        let body = r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert!(request_limit_exceeded(403, body));
        assert!(!request_limit_exceeded(400, body));
        assert!(!request_limit_exceeded(403, r#"[{"errorCode":"INSUFFICIENT_ACCESS"}]"#));
        assert!(!request_limit_exceeded(403, "REQUEST_LIMIT_EXCEEDED"));
    }
}
