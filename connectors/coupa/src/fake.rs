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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::config::CoupaResource;

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

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    /// Path.
    pub path: String,
    /// Query parameters.
    pub params: BTreeMap<String, String>,
    /// Status answered.
    pub status: u16,
}

#[derive(Default)]
struct Store {
    records: BTreeMap<CoupaResource, Vec<Value>>,
    clock: Option<DateTime<Utc>>,
    keys: HashSet<String>,
    clients: HashMap<String, String>,
    tokens: HashMap<String, Vec<String>>,
    throttle_next: u32,
    log: Vec<Logged>,
    next_id: u64,
}

/// The fake's state; clone it freely (shared).
#[derive(Clone, Default)]
pub struct FakeCoupa {
    inner: Arc<Mutex<Store>>,
}

/// A fake served on a local port.
pub struct RunningFake {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The state.
    pub state: FakeCoupa,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

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

fn id_of(v: &Value) -> u64 {
    v.get("id").and_then(Value::as_u64).unwrap_or(0)
}

impl FakeCoupa {
    /// An empty instance accepting [`API_KEY`] and the OAuth2 client [`CLIENT_ID`].
    pub fn new() -> FakeCoupa {
        let f = FakeCoupa::default();
        {
            let mut s = f.inner.lock();
            s.keys.insert(API_KEY.into());
            s.clients.insert(CLIENT_ID.into(), CLIENT_SECRET.into());
            s.clock = parse_time("2025-06-01T09:00:00+02:00");
            s.next_id = 1000;
        }
        f
    }

    /// An instance holding the bundled samples.
    pub fn with_samples() -> FakeCoupa {
        let f = FakeCoupa::new();
        for (resource, text) in SAMPLES {
            // The samples are part of the crate and parsed by its tests; a broken file is a bug.
            let records: Vec<Value> = serde_json::from_str(text).unwrap_or_else(|e| panic!("sample {resource:?}: {e}"));
            f.inner.lock().records.entry(*resource).or_default().extend(records);
        }
        f
    }

    fn tick(s: &mut Store) -> String {
        let t = s.clock.unwrap_or(DateTime::<Utc>::UNIX_EPOCH) + chrono::Duration::seconds(1);
        s.clock = Some(t);
        coupa_time(t)
    }

    /// Creates a record (sets `id`, `created-at`, `updated-at`). Returns its id.
    pub fn insert(&self, resource: CoupaResource, mut record: Value) -> u64 {
        let mut s = self.inner.lock();
        let now = Self::tick(&mut s);
        s.next_id += 1;
        let id = s.next_id;
        if let Some(obj) = record.as_object_mut() {
            obj.insert("id".into(), json!(id));
            obj.insert("created-at".into(), json!(now));
            obj.insert("updated-at".into(), json!(now));
        }
        s.records.entry(resource).or_default().push(record);
        id
    }

    /// Sets fields of a record (a `PUT`): `updated-at` becomes now. False when absent.
    pub fn update(&self, resource: CoupaResource, id: u64, fields: Value) -> bool {
        let mut s = self.inner.lock();
        let now = Self::tick(&mut s);
        let Some(r) = s.records.entry(resource).or_default().iter_mut().find(|r| id_of(r) == id) else { return false };
        if let (Some(obj), Some(f)) = (r.as_object_mut(), fields.as_object()) {
            for (k, v) in f {
                obj.insert(k.clone(), v.clone());
            }
            obj.insert("updated-at".into(), json!(now));
        }
        true
    }

    /// Deletes a record (Coupa keeps no trace of it in the API). False when absent.
    pub fn delete(&self, resource: CoupaResource, id: u64) -> bool {
        let mut s = self.inner.lock();
        Self::tick(&mut s);
        let list = s.records.entry(resource).or_default();
        let before = list.len();
        list.retain(|r| id_of(r) != id);
        list.len() < before
    }

    /// Every record of a resource.
    pub fn records(&self, resource: CoupaResource) -> Vec<Value> {
        self.inner.lock().records.get(&resource).cloned().unwrap_or_default()
    }

    /// The next `n` API requests are answered 429.
    pub fn throttle_next(&self, n: u32) {
        self.inner.lock().throttle_next = n;
    }

    /// Revokes every OAuth2 token (the next request with one gets 401).
    pub fn revoke_tokens(&self) {
        self.inner.lock().tokens.clear();
    }

    /// Requests answered so far.
    pub fn log(&self) -> Vec<Logged> {
        self.inner.lock().log.clone()
    }

    /// How many requests were answered with `status`.
    pub fn count_status(&self, status: u16) -> usize {
        self.inner.lock().log.iter().filter(|l| l.status == status).count()
    }

    /// The router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/suppliers", get(|st, h, u, q| list(CoupaResource::Suppliers, st, h, u, q)))
            .route("/api/contracts", get(|st, h, u, q| list(CoupaResource::Contracts, st, h, u, q)))
            .route("/oauth2/token", post(token))
            .with_state(self.clone())
    }

    /// Serves the fake on `127.0.0.1:<free port>`.
    pub async fn spawn(self) -> std::io::Result<RunningFake> {
        self.spawn_on("127.0.0.1:0").await
    }

    /// Serves the fake on `addr`.
    pub async fn spawn_on(self, addr: &str) -> std::io::Result<RunningFake> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let app = self.router();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake Coupa stopped");
            }
        });
        Ok(RunningFake { base_url, state: self, task })
    }
}

async fn token(State(fake): State<FakeCoupa>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut s = fake.inner.lock();
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id").and_then(|id| s.clients.get(id)) == form.get("client_secret");
    let status = if ok { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
    s.log.push(Logged { path: "/oauth2/token".into(), params: BTreeMap::new(), status: status.as_u16() });
    if !ok {
        return (status, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    s.next_id += 1;
    let token = format!("coupa-token-{}", s.next_id);
    let scope = form.get("scope").cloned().unwrap_or_default();
    s.tokens.insert(token.clone(), scope.split_whitespace().map(str::to_owned).collect());
    axum::Json(json!({"access_token": token, "token_type": "bearer", "expires_in": 86399, "scope": scope}))
        .into_response()
}

async fn list(
    resource: CoupaResource,
    State(fake): State<FakeCoupa>,
    headers: HeaderMap,
    uri: Uri,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let resp = answer(resource, &fake, &headers, &params);
    fake.inner.lock().log.push(Logged {
        path: uri.path().to_owned(),
        params: params.iter().cloned().collect(),
        status: resp.status().as_u16(),
    });
    resp
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
    let mut s = fake.inner.lock();
    let key = headers.get("x-coupa-api-key").and_then(|v| v.to_str().ok());
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let needed = match resource {
        CoupaResource::Suppliers => "core.supplier.read",
        CoupaResource::Contracts => "core.contract.read",
    };
    match (key, bearer) {
        (Some(k), _) if s.keys.contains(k) => {}
        (_, Some(t)) => match s.tokens.get(t) {
            None => return errors(StatusCode::UNAUTHORIZED, "Unauthorized: invalid or expired access token"),
            Some(scopes) if !scopes.iter().any(|x| x == needed) => {
                return errors(StatusCode::FORBIDDEN, &format!("Forbidden: the token lacks scope {needed}"));
            }
            Some(_) => {}
        },
        _ => return errors(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
    if s.throttle_next > 0 {
        s.throttle_next -= 1;
        let mut r = errors(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
        r.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return r;
    }
    let accepts_json =
        headers.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("application/json"));
    let mut rows: Vec<Value> = s.records.get(&resource).cloned().unwrap_or_default();
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
    let page: Vec<Value> = rows.into_iter().skip(offset).take(limit).collect();
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
