//! A fake Coupa instance (feature `fake`) for tests and the quickstart, written from Coupa's public
//! Core API documentation (compass.coupa.com: "Get Started with the API" — Arguments, Querying
//! Options, Limit and Offset; "OAuth 2.0 and OIDC"; Suppliers API `/api/suppliers`; Contracts API
//! `/api/contracts`): JSON with dashed field names when the request says `Accept:
//! application/json` (XML otherwise); query arguments `attr=value` and `attr[op]=value` with the
//! documented operators (`gt`, `lt`, `gt_or_eq`, `lt_or_eq`, `not_eq`, `contains`, `starts_with`,
//! `in`) on `id`, `updated-at`/`updated_at`, `created-at`, `status`, `name`, `supplier[id]`, dashes
//! and underscores alike; `order_by` + `dir`; `offset` and `limit` (at most 50 records per
//! answer); a bare JSON array as the answer; authentication by the legacy `X-COUPA-API-KEY` header
//! or an OAuth2 bearer token from `POST /oauth2/token` (client credentials, scopes
//! `core.supplier.read`, `core.contract.read` checked per resource → 403), 401 otherwise; 429 with
//! `Retry-After` when throttled. Coupa has no deleted-records feed: a deleted record just vanishes.
//!
//! Times are ISO 8601 with whole seconds in the instance's time zone (+02:00 here), from a simulated
//! clock that ticks one second per write.

use std::collections::{HashMap, HashSet};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use dastra_connect_core::source::StreamKind;
use dastra_connect_core::testkit::fake::{
    self, Fake, OAuthClients, RecordStore, authorization, id_of, offset_page, retry_after,
};
use serde_json::{Value, json};

use crate::config::CoupaResource;

pub use dastra_connect_core::testkit::fake::Logged;

/// Sample data shipped with the crate (`samples/*.json`).
pub const SAMPLES: &[(CoupaResource, &str)] = &[
    (CoupaResource::Suppliers, include_str!("../samples/suppliers.json")),
    (CoupaResource::Contracts, include_str!("../samples/contracts.json")),
];

/// The API key the fake accepts by default.
pub const API_KEY: &str = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0";
/// The OAuth2 client the fake accepts by default.
pub const CLIENT_ID: &str = "dastra-connect";
/// Its secret.
pub const CLIENT_SECRET: &str = "coupa-client-secret";

/// Coupa's own part of the state.
#[derive(Default)]
pub struct CoupaState {
    records: RecordStore<CoupaResource>,
    keys: HashSet<String>,
    oauth: OAuthClients,
}

dastra_connect_core::fake_handle!(
    /// The fake's state; clone it freely (shared). Derefs to the [`Fake`] skeleton (clock,
    /// throttling, log).
    FakeCoupa(CoupaState),
    "fake Coupa"
);

fn zone() -> FixedOffset {
    FixedOffset::east_opt(2 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC offset"))
}

fn coupa_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&zone()).to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // Coupa also takes dates and zone-less times (read in the instance's zone).
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        })
        .ok()?;
    naive.and_local_timezone(zone()).single().map(|t| t.with_timezone(&Utc))
}

/// One second per write.
fn tick(s: &mut fake::FakeStore<CoupaState>) -> String {
    coupa_time(s.tick(chrono::Duration::seconds(1)))
}

impl FakeCoupa {
    /// An empty instance accepting [`API_KEY`] and the OAuth2 client [`CLIENT_ID`].
    pub fn new() -> FakeCoupa {
        let mut state = CoupaState::default();
        state.keys.insert(API_KEY.into());
        state.oauth.add_client(CLIENT_ID, CLIENT_SECRET);
        FakeCoupa(Fake::new(parse_time("2025-06-01T09:00:00+02:00").unwrap_or_default(), 1000, state))
    }

    /// An instance holding the bundled samples.
    pub fn with_samples() -> FakeCoupa {
        let f = FakeCoupa::new();
        f.lock().sys.records.load_samples(SAMPLES);
        f
    }

    /// Creates a record (sets `id`, `created-at`, `updated-at`). Returns its id.
    pub fn insert(&self, resource: CoupaResource, mut record: Value) -> u64 {
        let mut s = self.lock();
        let now = tick(&mut s);
        let id = s.next_id();
        if let Some(obj) = record.as_object_mut() {
            obj.insert("id".into(), json!(id));
            obj.insert("created-at".into(), json!(now));
            obj.insert("updated-at".into(), json!(now));
        }
        s.sys.records.push(resource, record);
        id
    }

    /// Sets fields of a record (a `PUT`): `updated-at` becomes now. False when absent.
    pub fn update(&self, resource: CoupaResource, id: u64, fields: Value) -> bool {
        let mut s = self.lock();
        let now = tick(&mut s);
        s.sys.records.update(resource, id, &fields, &[("updated-at", json!(now))])
    }

    /// Deletes a record (Coupa keeps no trace of it in the API). False when absent.
    pub fn delete(&self, resource: CoupaResource, id: u64) -> bool {
        let mut s = self.lock();
        tick(&mut s);
        s.sys.records.remove(resource, id).is_some()
    }

    /// Every record of a resource.
    pub fn records(&self, resource: CoupaResource) -> Vec<Value> {
        self.lock().sys.records.list(resource)
    }

    /// Revokes every OAuth2 token (the next request with one gets 401).
    pub fn revoke_tokens(&self) {
        self.lock().sys.oauth.revoke_all();
    }

    /// The router.
    pub fn router(&self) -> Router {
        let r = Router::new()
            .route("/api/suppliers", get(|st, h, q| list(CoupaResource::Suppliers, st, h, q)))
            .route("/api/contracts", get(|st, h, q| list(CoupaResource::Contracts, st, h, q)))
            .route("/oauth2/token", post(token))
            .with_state(self.clone());
        self.logged(r)
    }
}

async fn token(State(fake): State<FakeCoupa>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut s = fake.lock();
    let token = format!("coupa-token-{}", s.last_id + 1);
    if s.sys.oauth.issue(&form, &token, None).is_err() {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    s.next_id();
    let scope = form.get("scope").cloned().unwrap_or_default();
    axum::Json(json!({"access_token": token, "token_type": "bearer", "expires_in": 86399, "scope": scope}))
        .into_response()
}

async fn list(
    resource: CoupaResource,
    State(fake): State<FakeCoupa>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    answer(resource, &fake, &headers, &params)
}

fn errors(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({"errors": {"error": [text]}}))).into_response()
}

/// The value a query attribute names: `updated_at` → `updated-at`, `supplier[id]` → nested.
fn attr<'a>(r: &'a Value, name: &str) -> Option<&'a Value> {
    let mut cur = r;
    for part in name.split('[').map(|p| p.trim_end_matches(']').replace('_', "-")) {
        cur = cur.get(&part)?;
    }
    Some(cur)
}

fn compare(v: &Value, attr_name: &str, op: &str, arg: &str) -> bool {
    let is_time = attr_name.ends_with("-at") || attr_name.ends_with("_at") || attr_name.ends_with("date");
    let ord = if is_time {
        match (v.as_str().and_then(parse_time), parse_time(arg)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => return false,
        }
    } else if let (Some(a), Ok(b)) = (v.as_u64(), arg.parse::<u64>()) {
        a.cmp(&b)
    } else {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match op {
            "contains" => return text.contains(arg),
            "starts_with" => return text.starts_with(arg),
            "in" => return arg.split(',').any(|a| a == text),
            _ => text.as_str().cmp(arg),
        }
    };
    use std::cmp::Ordering::*;
    match op {
        "" => ord == Equal,
        "gt" => ord == Greater,
        "lt" => ord == Less,
        "gt_or_eq" => ord != Less,
        "lt_or_eq" => ord != Greater,
        "not_eq" => ord != Equal,
        _ => false,
    }
}

fn answer(resource: CoupaResource, fake: &FakeCoupa, headers: &HeaderMap, params: &[(String, String)]) -> Response {
    let mut s = fake.lock();
    let key = headers.get("x-coupa-api-key").and_then(|v| v.to_str().ok());
    let bearer = authorization(headers, "Bearer");
    let needed = match resource {
        CoupaResource::Suppliers => "core.supplier.read",
        CoupaResource::Contracts => "core.contract.read",
    };
    match (key, bearer) {
        (Some(k), _) if s.sys.keys.contains(k) => {}
        (_, Some(t)) => match s.sys.oauth.valid(t, s.clock) {
            None => return errors(StatusCode::UNAUTHORIZED, "Unauthorized: invalid or expired access token"),
            Some(issued) if !issued.scopes.iter().any(|x| x == needed) => {
                return errors(StatusCode::FORBIDDEN, &format!("Forbidden: the token lacks scope {needed}"));
            }
            Some(_) => {}
        },
        _ => return errors(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
    if s.take_throttle() {
        return retry_after(errors(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded"));
    }
    let accepts_json =
        headers.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"));
    let mut rows: Vec<Value> = s.sys.records.list(resource);
    let mut order_by = "id".to_owned();
    let mut desc = false;
    let mut limit = 50usize;
    let mut offset = 0usize;
    for (k, v) in params {
        match k.as_str() {
            "order_by" => order_by = v.replace('_', "-"),
            "dir" => desc = v == "desc",
            "limit" => limit = v.parse::<usize>().unwrap_or(50).clamp(1, 50),
            "offset" => offset = v.parse().unwrap_or(0),
            "fields" | "return_object" => {}
            _ => {
                // `attr[op]` or `attr[sub][op]`: the last bracket is an operator when it names one.
                const OPS: &[&str] = &["gt", "lt", "gt_or_eq", "lt_or_eq", "not_eq", "contains", "starts_with", "in"];
                let (name, op) = match k.rsplit_once('[') {
                    Some((n, o)) if OPS.contains(&o.trim_end_matches(']')) => {
                        (n.to_owned(), o.trim_end_matches(']').to_owned())
                    }
                    _ => (k.clone(), String::new()),
                };
                rows.retain(|r| attr(r, &name).is_some_and(|x| compare(x, &name, &op, v)));
            }
        }
    }
    rows.sort_by(|a, b| {
        let c = if order_by == "id" {
            id_of(a).cmp(&id_of(b))
        } else {
            let t = |r: &Value| attr(r, &order_by).and_then(Value::as_str).and_then(parse_time);
            t(a).cmp(&t(b)).then_with(|| id_of(a).cmp(&id_of(b)))
        };
        if desc { c.reverse() } else { c }
    });
    let window = offset_page(rows.len(), offset, limit);
    let page: Vec<Value> = rows.drain(window.rows).collect();
    if !accepts_json {
        // Coupa's default representation is XML.
        let tag = resource.stream();
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{tag} type=\"array\"><!-- {} records --></{tag}>",
            page.len()
        );
        return ([("content-type", "application/xml")], body).into_response();
    }
    axum::Json(Value::Array(page)).into_response()
}
