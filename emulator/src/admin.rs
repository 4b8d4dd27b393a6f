//! The admin API under `/__admin` (off the Dastra paths, no API key): workspace dumps, counters,
//! request log, fault rules, quota, custom-field definitions, users, webhook deliveries and reset.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{EmulatorConfig, QuotaWindow};
use crate::faults::FaultRule;
use crate::state::EmulatorState;
use crate::store::CustomFieldDef;

fn bad(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message.into() }))).into_response()
}

/// Routes mounted at `/__admin`.
pub fn router() -> Router<EmulatorState> {
    Router::new()
        .route("/dump", get(dump))
        .route("/dump/{workspace}", get(dump_workspace))
        .route("/counters", get(counters))
        .route("/requests", get(requests))
        .route("/faults", get(list_faults).post(add_faults).delete(clear_faults))
        .route("/quota", get(get_quota).put(set_quota))
        .route("/custom-fields/{workspace}/{family}", put(define_custom_fields))
        .route("/users/{workspace}", post(add_users))
        .route("/webhook-deliveries", get(deliveries))
        .route("/reset", post(reset))
}

async fn dump(State(state): State<EmulatorState>) -> Json<Value> {
    Json(state.dump())
}

async fn dump_workspace(State(state): State<EmulatorState>, Path(ws): Path<i64>) -> Response {
    match state.dump_workspace(ws) {
        Some(d) => Json(d).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn counters(State(state): State<EmulatorState>) -> Json<Value> {
    Json(serde_json::to_value(state.counters()).unwrap_or_default())
}

#[derive(Deserialize)]
struct Since {
    since: Option<u64>,
}

async fn requests(State(state): State<EmulatorState>, Query(q): Query<Since>) -> Json<Value> {
    let since = q.since.unwrap_or(0);
    let log: Vec<_> = state.request_log().into_iter().filter(|e| e.seq > since).collect();
    Json(serde_json::to_value(log).unwrap_or_default())
}

async fn list_faults(State(state): State<EmulatorState>) -> Json<Value> {
    let rules: Vec<Value> = state
        .faults()
        .into_iter()
        .map(|(rule, hits)| {
            let mut v = serde_json::to_value(rule).unwrap_or_default();
            v["hits"] = json!(hits);
            v
        })
        .collect();
    Json(Value::Array(rules))
}

/// Body: one rule or an array of rules, e.g. `{"kind":"error","status":503,"route":"/Assets","rate":0.5}`.
async fn add_faults(State(state): State<EmulatorState>, Json(body): Json<Value>) -> Response {
    let items = match body {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut rules = Vec::new();
    for item in items {
        match serde_json::from_value::<FaultRule>(item) {
            Ok(r) => rules.push(r),
            Err(e) => return bad(format!("invalid fault rule: {e}")),
        }
    }
    for r in rules {
        if let Err(e) = state.add_fault(r) {
            return bad(e);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(State(state): State<EmulatorState>) -> StatusCode {
    state.clear_faults();
    StatusCode::NO_CONTENT
}

async fn get_quota(State(state): State<EmulatorState>) -> Json<Value> {
    let windows: Vec<Value> = state
        .inner
        .quota
        .lock()
        .windows()
        .iter()
        .map(|w: &QuotaWindow| json!({"limit": w.limit, "periodSeconds": w.period.as_secs_f64()}))
        .collect();
    Json(json!({ "windows": windows }))
}

/// Body: `{"quota": "50/2s"}` (same syntax as `--quota`, `off` disables).
async fn set_quota(State(state): State<EmulatorState>, Json(body): Json<Value>) -> Response {
    let Some(text) = body.get("quota").and_then(Value::as_str) else {
        return bad("expected {\"quota\": \"<limit>/<period>,… | off\"}");
    };
    match EmulatorConfig::parse_quota(text) {
        Ok(w) => {
            state.set_quota(w);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad(e.to_string()),
    }
}

async fn define_custom_fields(
    State(state): State<EmulatorState>,
    Path((ws, family)): Path<(i64, String)>,
    Json(body): Json<Value>,
) -> Response {
    let defs: Vec<CustomFieldDef> = match serde_json::from_value(body) {
        Ok(d) => d,
        Err(e) => return bad(format!("invalid custom field definitions: {e}")),
    };
    match state.define_custom_fields(ws, &family, defs) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad(e),
    }
}

/// Body: one `UserDto` or an array (at least `email`); answers the created users with their ids.
/// Dastra has no user-creation endpoint (users are invited or come through SCIM): this seeds them.
async fn add_users(State(state): State<EmulatorState>, Path(ws): Path<i64>, Json(body): Json<Value>) -> Response {
    let items = match body {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut created = Vec::new();
    for item in items {
        match state.add_user(ws, item) {
            Ok(v) => created.push(v),
            Err(e) => return bad(e),
        }
    }
    Json(Value::Array(created)).into_response()
}

async fn deliveries(State(state): State<EmulatorState>) -> Json<Value> {
    Json(serde_json::to_value(state.webhook_deliveries()).unwrap_or_default())
}

async fn reset(State(state): State<EmulatorState>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}
