//! The ServiceNow Table API client: `GET /api/now/table/{table}` with `sysparm_query`,
//! `sysparm_fields`, `sysparm_limit`/`sysparm_offset`, raw values (`sysparm_display_value=false`,
//! UTC times) and plain reference ids (`sysparm_exclude_reference_link=true`); `X-Total-Count` for
//! progress. Auth, retries and 429/Retry-After come from [`SourceHttp`].

use dastra_connect_core::source::http::HttpResponse;
use dastra_connect_core::source::{HttpSettings, SourceAuth, SourceError, SourceHttp};
use serde_json::Value;
use url::Url;

/// A page of a table.
#[derive(Debug, Clone)]
pub struct TablePage {
    /// The records (`result`).
    pub records: Vec<Value>,
    /// `X-Total-Count`: records matching the query.
    pub total: Option<u64>,
}

/// Talks to one instance.
pub struct ServiceNowClient {
    http: SourceHttp,
    base: Url,
}

const SYSTEM: &str = "servicenow";

impl ServiceNowClient {
    /// A client for `instance_url`.
    pub fn new(instance_url: &Url, auth: SourceAuth, settings: HttpSettings) -> Result<ServiceNowClient, SourceError> {
        let mut base = instance_url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(ServiceNowClient { http: SourceHttp::new(SYSTEM, auth, settings)?, base })
    }

    /// How many 429 answers were waited out.
    pub fn throttled(&self) -> u64 {
        self.http.throttled()
    }

    /// `GET /api/now/table/{table}`.
    pub async fn table(
        &self,
        table: &str,
        query: &str,
        fields: &[String],
        limit: u32,
        offset: Option<u64>,
    ) -> Result<TablePage, SourceError> {
        let what = format!("/api/now/table/{table}");
        let mut url = self
            .base
            .join(what.trim_start_matches('/'))
            .map_err(|e| SourceError::Config(format!("bad table URL for `{table}`: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if !query.is_empty() {
                q.append_pair("sysparm_query", query);
            }
            if !fields.is_empty() {
                q.append_pair("sysparm_fields", &fields.join(","));
            }
            q.append_pair("sysparm_limit", &limit.to_string());
            if let Some(o) = offset {
                q.append_pair("sysparm_offset", &o.to_string());
            }
            q.append_pair("sysparm_display_value", "false");
            q.append_pair("sysparm_exclude_reference_link", "true");
        }
        let HttpResponse { headers, body, .. } = self.http.get_json(url, &what).await?;
        let total = headers.get("x-total-count").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let records = match body.get("result") {
            Some(Value::Array(a)) => a.clone(),
            _ => {
                return Err(SourceError::BadResponse {
                    system: SYSTEM.into(),
                    what,
                    detail: "the answer has no `result` array".into(),
                });
            }
        };
        Ok(TablePage { records, total })
    }

    /// Checks that `fields` exist on `table`: asks for one record with exactly those fields; the
    /// Table API leaves out fields the table does not have. An empty table proves nothing (then
    /// `Ok(false)`); a missing field is a [`SourceError::Config`].
    pub async fn check_fields(&self, table: &str, fields: &[String], why: &str) -> Result<bool, SourceError> {
        if fields.is_empty() {
            return Ok(true);
        }
        let page = self.table(table, "", fields, 1, None).await?;
        let Some(rec) = page.records.first() else { return Ok(false) };
        for f in fields {
            if rec.get(f).is_none() {
                return Err(SourceError::Config(format!(
                    "table `{table}` has no field `{f}` ({why}); ServiceNow would silently ignore that condition"
                )));
            }
        }
        Ok(true)
    }
}
