//! The HubSpot CRM v3 client, on the engine's [`SourceHttp`] (private-app token as
//! `Authorization: Bearer`; 429, 408 and 5xx retried with full-jitter backoff, `Retry-After` when
//! given; secret-free errors). Only HubSpot's calls:
//!
//! - `POST /crm/v3/objects/<object>/search`: filters, one sort, `limit` ≤ 200, `after` paging;
//! - `GET /crm/v3/objects/<object>?archived=true`: the archived (deleted) records, `after` paging;
//! - `POST /crm/v4/associations/tickets/contacts/batch/read` and
//!   `POST /crm/v3/objects/contacts/batch/read`: the contact of each ticket (the data subject).
//!
//! The daily quota (`X-HubSpot-RateLimit-Daily`, `-Daily-Remaining`) feeds the engine's API budget
//! ([`ApiQuota`]): requests stop at `http.max_api_share` of it. The facts behind each call are in
//! `docs/hubspot-api.md`.

use std::collections::BTreeMap;

use dastra_connect_core::source::{ApiQuota, ApiUsage, SourceAuth, SourceError, SourceHttp};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use url::Url;

use crate::config::{HubSpotConfig, HubSpotObject};

const SYSTEM: &str = "hubspot";

/// Requests per second when `http.max_requests_per_second` is not set: under the search endpoint's
/// 5 per second per account, which every search of this source counts against.
pub const DEFAULT_REQUESTS_PER_SECOND: f64 = 4.0;

/// Most results one search request returns.
pub const MAX_SEARCH_LIMIT: u32 = 200;
/// Most records one list request returns.
pub const MAX_LIST_LIMIT: u32 = 100;
/// Most inputs of one batch read.
pub const MAX_BATCH: usize = 100;

/// One page of a search.
#[derive(Debug, Clone, Default)]
pub struct SearchPage {
    /// Everything the search matches (not only what can be paged through).
    pub total: u64,
    /// The objects of this page.
    pub results: Vec<Value>,
    /// `paging.next.after`: the token of the next page, when there is one.
    pub next: Option<String>,
}

/// Talks to one HubSpot account.
pub struct HubSpotClient {
    base: Url,
    http: SourceHttp,
    share: f64,
}

fn bad(what: &str, detail: impl Into<String>) -> SourceError {
    SourceError::BadResponse { system: SYSTEM.into(), what: what.to_owned(), detail: detail.into() }
}

impl HubSpotClient {
    /// A client for the configured account.
    pub fn new(config: &HubSpotConfig) -> Result<HubSpotClient, SourceError> {
        let mut base = config.url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let auth = SourceAuth::Bearer { token: config.token.clone() };
        let mut settings = config.http.clone();
        // The search endpoint's own limit (5 per second per account) is below the burst limit:
        // unless told otherwise, stay under it.
        settings.max_requests_per_second.get_or_insert(DEFAULT_REQUESTS_PER_SECOND);
        let http = SourceHttp::new(SYSTEM, auth, settings)?.with_quota(ApiQuota {
            usage: daily_usage,
            // HubSpot signals its limits with 429 only.
            limited: |_, _| false,
        });
        Ok(HubSpotClient { base, http, share: config.http.max_api_share })
    }

    /// How many 429 answers were waited out.
    pub fn throttled(&self) -> u64 {
        self.http.throttled()
    }

    fn url(&self, path: &str) -> Result<Url, SourceError> {
        self.base.join(path).map_err(|e| SourceError::Config(format!("bad HubSpot URL for `{path}`: {e}")))
    }

    /// `POST /crm/v3/objects/<object>/search` with `body` (`filterGroups`, `sorts`, `properties`,
    /// `limit`, `after`).
    pub async fn search(&self, object: HubSpotObject, body: &Value) -> Result<SearchPage, SourceError> {
        if self.http.api_usage().is_some_and(|u| u.reached(self.share)) {
            self.read_usage(object).await?;
        }
        let path = format!("crm/v3/objects/{}/search", object.path());
        let what = format!("/{path}");
        let answer = self.http.post_json(self.url(&path)?, body, &what).await?.body;
        let results = answer
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| bad(&what, "the answer has no `results` array"))?;
        Ok(SearchPage {
            total: answer.get("total").and_then(Value::as_u64).unwrap_or(results.len() as u64),
            next: next_after(&answer),
            results,
        })
    }

    /// While the daily budget is spent, the engine lets one request through now and then to read
    /// the usage again; a search answer cannot be that request (it reports no usage, so the budget
    /// would stay spent for good). This one-record listing is, before any search.
    async fn read_usage(&self, object: HubSpotObject) -> Result<(), SourceError> {
        let path = format!("crm/v3/objects/{}", object.path());
        let mut url = self.url(&path)?;
        url.query_pairs_mut().append_pair("limit", "1");
        self.http.get_json(url, &format!("/{path} (API usage)")).await.map(drop)
    }

    /// `GET /crm/v3/objects/<object>?archived=true&limit=100[&after=…]`: one page of archived
    /// records (each with `archivedAt`) and the next page's token.
    pub async fn list_archived(
        &self,
        object: HubSpotObject,
        after: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), SourceError> {
        let path = format!("crm/v3/objects/{}", object.path());
        let what = format!("/{path} (archived)");
        let mut url = self.url(&path)?;
        url.query_pairs_mut()
            .append_pair("archived", "true")
            .append_pair("limit", &MAX_LIST_LIMIT.to_string())
            .append_pair("properties", object.modified_property());
        if let Some(a) = after {
            url.query_pairs_mut().append_pair("after", a);
        }
        let answer = self.http.get_json(url, &what).await?.body;
        let results = answer
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| bad(&what, "the answer has no `results` array"))?;
        Ok((results, next_after(&answer)))
    }

    /// The first contact associated with each ticket (`ticket id → contact id`), through the v4
    /// associations batch read. Tickets without a contact are absent.
    pub async fn ticket_contacts(&self, tickets: &[String]) -> Result<BTreeMap<String, String>, SourceError> {
        let path = "crm/v4/associations/tickets/contacts/batch/read";
        let what = format!("/{path}");
        let mut out = BTreeMap::new();
        for chunk in tickets.chunks(MAX_BATCH) {
            let inputs: Vec<Value> = chunk.iter().map(|id| json!({"id": id})).collect();
            let answer = self.http.post_json(self.url(path)?, &json!({"inputs": inputs}), &what).await?.body;
            for r in answer.get("results").and_then(Value::as_array).into_iter().flatten() {
                let from = r.pointer("/from/id").and_then(id_text);
                // The lowest contact id: a stable choice when several contacts are associated.
                let to = r
                    .get("to")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.get("toObjectId").and_then(id_text))
                    .min_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
                if let (Some(from), Some(to)) = (from, to) {
                    out.insert(from, to);
                }
            }
        }
        Ok(out)
    }

    /// `POST /crm/v3/objects/contacts/batch/read`: the contacts `ids` with `properties`, by id.
    pub async fn read_contacts(
        &self,
        ids: &[String],
        properties: &[String],
    ) -> Result<BTreeMap<String, Value>, SourceError> {
        let path = "crm/v3/objects/contacts/batch/read";
        let what = format!("/{path}");
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(MAX_BATCH) {
            let inputs: Vec<Value> = chunk.iter().map(|id| json!({"id": id})).collect();
            let body = json!({"properties": properties, "inputs": inputs});
            let answer = self.http.post_json(self.url(path)?, &body, &what).await?.body;
            for c in answer.get("results").and_then(Value::as_array).into_iter().flatten() {
                if let Some(id) = c.get("id").and_then(id_text) {
                    out.insert(id, c.clone());
                }
            }
        }
        Ok(out)
    }
}

/// The daily quota a private app's answers report: `X-HubSpot-RateLimit-Daily` (the limit) and
/// `X-HubSpot-RateLimit-Daily-Remaining`. Search answers carry neither; the other calls do.
pub fn daily_usage(headers: &HeaderMap) -> Option<ApiUsage> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    let limit = number("x-hubspot-ratelimit-daily")?;
    let remaining = number("x-hubspot-ratelimit-daily-remaining")?;
    Some(ApiUsage { used: limit.saturating_sub(remaining), limit })
}

/// HubSpot ids are strings of digits in JSON, numbers in some association answers.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn next_after(answer: &Value) -> Option<String> {
    answer.pointer("/paging/next/after").and_then(id_text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_daily_quota_is_read_from_hubspot_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(daily_usage(&h), None, "a search answer says nothing");
        h.insert("x-hubspot-ratelimit-daily", HeaderValue::from_static("500000"));
        h.insert("x-hubspot-ratelimit-daily-remaining", HeaderValue::from_static("499123"));
        assert_eq!(daily_usage(&h), Some(ApiUsage { used: 877, limit: 500_000 }));
        h.insert("x-hubspot-ratelimit-daily-remaining", HeaderValue::from_static("n/a"));
        assert_eq!(daily_usage(&h), None);
    }
}
