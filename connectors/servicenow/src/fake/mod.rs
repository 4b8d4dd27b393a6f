//! A fake ServiceNow instance (feature `fake`) for tests and the quickstart, written from
//! ServiceNow's public REST documentation: the Table API (`GET /api/now/table/{tableName}` with
//! `sysparm_query`, `sysparm_fields` incl. dot-walking, `sysparm_limit`, `sysparm_offset`,
//! `sysparm_display_value` (`false`/`true`/`all`), `sysparm_exclude_reference_link`; answers
//! `{"result": […]}` with `X-Total-Count` and RFC 8288 `Link` headers first/prev/next/last; errors
//! `{"error": {"message", "detail"}, "status": "failure"}`), the OAuth token endpoint
//! (`POST /oauth_token.do`, `grant_type=client_credentials`), HTTP Basic auth, rate limiting (429
//! with `Retry-After` and `X-RateLimit-*`), `sys_audit_delete` (`tablename`, `documentkey`,
//! `sys_created_on`), table inheritance (`cmdb_ci` returns every `cmdb_ci_*` class, each record with
//! its `sys_class_name`) and the documented trap that **an invalid query condition (unknown field) is
//! silently ignored** (the `glide.invalid_query.returns_no_rows=false` default).
//!
//! Times are `YYYY-MM-DD HH:MM:SS` UTC from a simulated clock that ticks one second per write, so
//! tests are deterministic and need not sleep across second boundaries.

mod table;

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dastra_connect_core::testkit::fake::{self, Fake, OAuthClients, TokenRefusal, authorization, retry_after};
use serde_json::{Value, json};

pub use dastra_connect_core::testkit::fake::Logged;

/// Sample data shipped with the crate (`samples/*.json`): locations, suppliers, users and CIs.
pub const SAMPLES: &[(&str, &str)] = &[
    ("cmn_location", include_str!("../../samples/cmn_location.json")),
    ("core_company", include_str!("../../samples/core_company.json")),
    ("sys_user", include_str!("../../samples/sys_user.json")),
    ("cmdb_ci", include_str!("../../samples/cmdb_ci.json")),
];

/// Reference fields of the tables the fake knows: field → referenced table.
pub(crate) fn reference_table(field: &str) -> Option<&'static str> {
    Some(match field {
        "location" => "cmn_location",
        "vendor" | "manufacturer" | "company" => "core_company",
        "owned_by" | "assigned_to" | "managed_by" | "supported_by" => "sys_user",
        _ => return None,
    })
}

/// ServiceNow's own part of the state.
#[derive(Default)]
pub struct ServiceNowState {
    /// Records by concrete table (a CI lives in its class table).
    tables: BTreeMap<String, Vec<Value>>,
    users: HashMap<String, String>,
    oauth: OAuthClients,
    token_lifetime_secs: i64,
}

dastra_connect_core::fake_handle!(
    /// The fake's state; clone it freely (shared). Derefs to the [`Fake`] skeleton (clock,
    /// throttling, log).
    FakeServiceNow(ServiceNowState),
    "fake ServiceNow"
);

/// One second per write.
fn tick(s: &mut fake::FakeStore<ServiceNowState>) -> String {
    crate::query::format_time(s.tick(chrono::Duration::seconds(1)))
}

impl FakeServiceNow {
    /// An empty instance with user `admin`/`admin` and OAuth client `dastra`/`dastra-secret`.
    pub fn new() -> FakeServiceNow {
        let mut state = ServiceNowState::default();
        state.users.insert("admin".into(), "admin".into());
        state.oauth.add_client("dastra", "dastra-secret");
        state.token_lifetime_secs = 1800;
        let start = crate::query::parse_time("2025-06-01 09:00:00").unwrap_or_default();
        FakeServiceNow(Fake::new(start, 0, state))
    }

    /// An instance holding the bundled samples.
    pub fn with_samples() -> FakeServiceNow {
        let f = FakeServiceNow::new();
        for (table, text) in SAMPLES {
            // The samples are part of the crate and parsed by its tests; a broken file is a bug.
            let records: Vec<Value> = serde_json::from_str(text).unwrap_or_else(|e| panic!("sample {table}: {e}"));
            for r in records {
                let class = r.get("sys_class_name").and_then(Value::as_str).unwrap_or(table).to_owned();
                f.lock().sys.tables.entry(class).or_default().push(r);
            }
        }
        f
    }

    /// Moves the clock forward.
    pub fn advance(&self, secs: i64) {
        self.lock().tick(chrono::Duration::seconds(secs));
    }

    /// Adds a Basic-auth user.
    pub fn add_user(&self, user: &str, password: &str) {
        self.lock().sys.users.insert(user.into(), password.into());
    }

    /// Sets how long issued OAuth tokens live.
    pub fn set_token_lifetime(&self, secs: i64) {
        self.lock().sys.token_lifetime_secs = secs;
    }

    /// Revokes every OAuth token (the next request with one gets 401).
    pub fn revoke_tokens(&self) {
        self.lock().sys.oauth.revoke_all();
    }

    /// Inserts a record into `table` (its class): sets `sys_id` (if absent), `sys_class_name`,
    /// `sys_created_on`, `sys_updated_on` (now), `sys_mod_count` 0. Returns the `sys_id`.
    pub fn insert(&self, table: &str, mut record: Value) -> String {
        let mut s = self.lock();
        let now = tick(&mut s);
        let generated = format!("{:032x}", 0xfa4e_0000_0000_0000_u64 + s.next_id());
        let obj = record.as_object_mut();
        let Some(obj) = obj else { return String::new() };
        let id = obj.get("sys_id").and_then(Value::as_str).map(str::to_owned).unwrap_or(generated);
        obj.insert("sys_id".into(), json!(id));
        obj.insert("sys_class_name".into(), json!(table));
        obj.insert("sys_created_on".into(), json!(now));
        obj.insert("sys_updated_on".into(), json!(now));
        obj.insert("sys_mod_count".into(), json!("0"));
        s.sys.tables.entry(table.to_owned()).or_default().push(record);
        id
    }

    /// Updates fields of a record (any class): bumps `sys_mod_count`, sets `sys_updated_on` to now.
    /// Returns false when there is no such record.
    pub fn update(&self, sys_id: &str, fields: Value) -> bool {
        let mut s = self.lock();
        let now = tick(&mut s);
        for records in s.sys.tables.values_mut() {
            if let Some(r) = records.iter_mut().find(|r| r["sys_id"] == sys_id) {
                if let (Some(obj), Some(f)) = (r.as_object_mut(), fields.as_object()) {
                    for (k, v) in f {
                        obj.insert(k.clone(), v.clone());
                    }
                    let n: u64 =
                        obj.get("sys_mod_count").and_then(Value::as_str).and_then(|v| v.parse().ok()).unwrap_or(0);
                    obj.insert("sys_mod_count".into(), json!((n + 1).to_string()));
                    obj.insert("sys_updated_on".into(), json!(now));
                }
                return true;
            }
        }
        false
    }

    /// Deletes a record; with `audited` an entry goes to `sys_audit_delete` (tables are audited
    /// only when configured so in ServiceNow). Returns false when there is no such record.
    pub fn delete(&self, sys_id: &str, audited: bool) -> bool {
        let mut s = self.lock();
        let now = tick(&mut s);
        let mut found = None;
        for (table, records) in s.sys.tables.iter_mut() {
            if let Some(i) = records.iter().position(|r| r["sys_id"] == sys_id) {
                records.remove(i);
                found = Some(table.clone());
                break;
            }
        }
        let Some(table) = found else { return false };
        if audited {
            let id = format!("{:032x}", 0xa0d1_0000_0000_0000_u64 + s.next_id());
            let entry = json!({"sys_id": id, "tablename": table, "documentkey": sys_id, "sys_created_on": now,
                               "sys_updated_on": now, "sys_mod_count": "0", "sys_class_name": "sys_audit_delete"});
            s.sys.tables.entry("sys_audit_delete".into()).or_default().push(entry);
        }
        true
    }

    /// A record by id (any class).
    pub fn get(&self, sys_id: &str) -> Option<Value> {
        self.lock().sys.tables.values().flatten().find(|r| r["sys_id"] == sys_id).cloned()
    }

    /// Every record of a concrete table.
    pub fn records(&self, table: &str) -> Vec<Value> {
        self.lock().sys.tables.get(table).cloned().unwrap_or_default()
    }

    /// The router.
    pub fn router(&self) -> Router {
        let r = Router::new()
            .route("/api/now/table/{table}", get(table_get))
            .route("/api/now/v2/table/{table}", get(table_get))
            .route("/oauth_token.do", post(token))
            .with_state(self.clone());
        self.logged(r)
    }
}

fn sn_error(status: StatusCode, message: &str, detail: &str) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "detail": detail}, "status": "failure"}))).into_response()
}

/// Checks Basic or Bearer credentials.
fn authorised(f: &FakeServiceNow, headers: &HeaderMap) -> bool {
    use base64::Engine;
    let s = f.lock();
    if let Some(b) = authorization(headers, "Basic") {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b.trim()) else { return false };
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let Some((u, p)) = raw.split_once(':') else { return false };
        return s.sys.users.get(u).is_some_and(|pw| pw == p);
    }
    authorization(headers, "Bearer").is_some_and(|t| s.sys.oauth.valid(t, s.clock).is_some())
}

async fn table_get(
    State(f): State<FakeServiceNow>,
    Path(table): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&f, &headers) {
        return sn_error(StatusCode::UNAUTHORIZED, "User Not Authenticated", "Required to provide Auth information");
    }
    if f.lock().take_throttle() {
        let mut resp = retry_after(sn_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit exceeded",
            "The rate limit rule for this user and resource has been exceeded",
        ));
        let h = resp.headers_mut();
        h.insert("x-ratelimit-limit", HeaderValue::from_static("100"));
        h.insert("x-ratelimit-rule", HeaderValue::from_static("fake-table-api"));
        return resp;
    }
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("localhost").to_owned();
    let answer = {
        let s = f.lock();
        table::select(&s.sys.tables, &table, &params, &format!("http://{host}"))
    };
    match answer {
        Err(msg) => sn_error(StatusCode::BAD_REQUEST, &msg, ""),
        Ok(page) => {
            let mut resp = axum::Json(json!({"result": page.records})).into_response();
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&page.total.to_string()) {
                h.insert("x-total-count", v);
            }
            if let Some(link) = page.link
                && let Ok(v) = HeaderValue::from_str(&link)
            {
                h.insert("link", v);
            }
            resp
        }
    }
}

async fn token(State(f): State<FakeServiceNow>, Form(form): Form<HashMap<String, String>>) -> Response {
    let mut s = f.lock();
    let token = format!("fake-token-{:016x}", s.last_id + 1);
    let lifetime = s.sys.token_lifetime_secs;
    let expires = s.clock + chrono::Duration::seconds(lifetime);
    match s.sys.oauth.issue(&form, &token, Some(expires)) {
        Err(TokenRefusal::UnsupportedGrant) => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "unsupported_grant_type", "error_description": "unsupported grant type"})),
        )
            .into_response(),
        Err(TokenRefusal::InvalidClient) => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "access_denied", "error_description": "access_denied"})),
        )
            .into_response(),
        Ok(_) => {
            s.next_id();
            axum::Json(
                json!({"access_token": token, "scope": "useraccount", "token_type": "Bearer", "expires_in": lifetime}),
            )
            .into_response()
        }
    }
}
