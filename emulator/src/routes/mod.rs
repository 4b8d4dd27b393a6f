//! Entry point of every emulated Dastra request: log and count it, authenticate, apply the quota,
//! apply injected faults, then dispatch on the path segments case-insensitively (ASP.NET routing is
//! case-insensitive, docs/dastra-api.md §1.1 / §7 #15).

mod attachments;
mod cloud;
mod crud;
mod list;
mod relations;
mod tenant;
mod workflows;

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::observe::{LoggedRequest, route_template};
use crate::server::ConnKill;
use crate::state::EmulatorState;

/// Largest request body accepted (attachments included).
const MAX_BODY: usize = 32 * 1024 * 1024;

/// What one request is about, for the handlers.
pub(crate) struct Ctx<'a> {
    pub state: &'a EmulatorState,
    pub principal: Principal,
    pub method: Method,
    pub query: Vec<(String, String)>,
    pub body: Bytes,
    pub parts: &'a Parts,
}

impl Ctx<'_> {
    /// Query parameter values by name, case-insensitively, with or without a trailing `[]`.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| {
                let k = k.strip_suffix("[]").unwrap_or(k);
                k.eq_ignore_ascii_case(name)
            })
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// First value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params(name).into_iter().next()
    }

    /// The body as JSON; 400 when absent or malformed.
    pub fn json(&self) -> Result<Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest("A non-empty request body is required.".into()));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::BadRequest(format!("The request body is not valid JSON: {e}")))
    }

    /// The body as JSON, `None` when empty.
    pub fn json_opt(&self) -> Result<Option<Value>, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) { Ok(None) } else { self.json().map(Some) }
    }
}

/// 200 with a JSON body.
pub(crate) fn ok_json(value: Value) -> Response {
    axum::Json(value).into_response()
}

/// 200 with an empty body.
pub(crate) fn ok_empty() -> Response {
    StatusCode::OK.into_response()
}

enum Outcome {
    Answer(Response),
    /// Close the connection without answering.
    Drop,
    /// The request was applied: hold, then close the connection without answering.
    HangThenDrop(Duration),
}

/// The fallback handler serving every Dastra path.
pub(crate) async fn handle(State(state): State<EmulatorState>, req: Request) -> Response {
    let started = Instant::now();
    let kill = req.extensions().get::<ConnectInfo<ConnKill>>().map(|c| c.0.clone());
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let mut entry = LoggedRequest {
        seq: 0,
        time: crate::store::now_string(),
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_string),
        route: route_template(&path),
        status: 0,
        duration_ms: 0.0,
        key: None,
        faults: Vec::new(),
        body: None,
    };
    let outcome = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => {
            entry.body = log_body(&bytes);
            process(&state, &parts, bytes, &mut entry).await
        }
        Err(_) => {
            Outcome::Answer(ApiError::BadRequest("The request body is too large or unreadable.".into()).into_response())
        }
    };
    if let Outcome::HangThenDrop(hang) = outcome {
        // Logged now: the client may give up and close the connection during the hang, which
        // cancels this handler.
        let in_process = kill.is_none();
        entry.status = if in_process { 504 } else { 0 };
        if in_process {
            entry.faults.push("no_connection_to_drop".into());
        }
        entry.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        state.record(entry);
        tokio::time::sleep(hang).await;
        return match kill {
            Some(k) => {
                k.kill();
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
            None => StatusCode::GATEWAY_TIMEOUT.into_response(),
        };
    }
    let response = match outcome {
        Outcome::Answer(r) => r,
        Outcome::HangThenDrop(_) => StatusCode::GATEWAY_TIMEOUT.into_response(),
        Outcome::Drop => match kill {
            Some(k) => {
                k.kill();
                // Never written: the connection's I/O now fails, so hyper closes it silently.
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
            // In-process use (no connection to close): the closest visible equivalent.
            None => {
                entry.faults.push("no_connection_to_drop".into());
                StatusCode::GATEWAY_TIMEOUT.into_response()
            }
        },
    };
    entry.status = if entry.faults.iter().any(|f| f == "drop_connection")
        && !entry.faults.iter().any(|f| f == "no_connection_to_drop")
    {
        0
    } else {
        response.status().as_u16()
    };
    entry.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    state.record(entry);
    response
}

fn log_body(bytes: &Bytes) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    if bytes.len() > 64 * 1024 {
        return Some(Value::String(format!("<{} bytes>", bytes.len())));
    }
    serde_json::from_slice(bytes).ok().or_else(|| Some(Value::String(format!("<{} bytes, not JSON>", bytes.len()))))
}

async fn process(state: &EmulatorState, parts: &Parts, body: Bytes, entry: &mut LoggedRequest) -> Outcome {
    let path = parts.uri.path();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is = |i: usize, s: &str| segments.get(i).is_some_and(|x| x.eq_ignore_ascii_case(s));

    // Routes that need no API key: the token endpoint (on account.dastra.eu in reality) and status.
    if segments.len() == 2 && is(0, "connect") && is(1, "token") {
        return Outcome::Answer(tenant::token(state, parts, &body));
    }
    if segments.len() == 1 && is(0, "status") && parts.method == Method::GET {
        return Outcome::Answer(tenant::status());
    }

    let now = Instant::now();
    let principal = {
        let tokens = state.inner.tokens.lock();
        tokens.authenticate(&state.inner.config.api_keys, &parts.headers, now)
    };
    let principal = match principal {
        Ok(p) => p,
        Err(e) => return Outcome::Answer(e.into_response()),
    };
    entry.key = Some(principal.name.clone());
    if let Err(retry_after) = state.inner.quota.lock().take(&principal.name, now) {
        return Outcome::Answer(ApiError::TooManyRequests { retry_after }.into_response());
    }

    let decision = state.inner.faults.lock().decide(parts.method.as_str(), path, &body);
    entry.faults = decision.labels();
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    if decision.drop {
        return Outcome::Drop;
    }
    if let Some(status) = decision.error {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({"title": "Injected fault", "status": status.as_u16()});
        return Outcome::Answer((status, axum::Json(body)).into_response());
    }

    let query =
        parts.uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let ctx = Ctx { state, principal, method: parts.method.clone(), query, body, parts };
    let response = match dispatch(&ctx, &segments).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Some(hang) = decision.timeout_after_write {
        return Outcome::HangThenDrop(hang.max(Duration::from_millis(1)));
    }
    Outcome::Answer(response)
}

async fn dispatch(ctx: &Ctx<'_>, segments: &[&str]) -> Result<Response, ApiError> {
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match lower.as_slice() {
        ["me"] => tenant::me(ctx),
        ["rate-limiting-state"] => tenant::rate_limiting_state(ctx),
        ["v1", "workspaces", rest @ ..] => tenant::workspaces(ctx, rest),
        ["v1", "webhookurls", ..] => tenant::webhook_urls(ctx, &segments[2..]),
        ["v1", "ws", ws, family, ..] => {
            let ws: i64 = ws.parse().map_err(|_| ApiError::NotFound)?;
            ctx.principal.check_workspace(ws)?;
            if !ctx.state.inner.store.lock().workspaces.contains_key(&ws) {
                return Err(ApiError::NotFound);
            }
            let rest = &segments[4..];
            if family.eq_ignore_ascii_case("workflows") {
                return workflows::route(ctx, ws, rest);
            }
            let kind = crate::entities::kind(family).ok_or(ApiError::NotFound)?;
            match kind.name {
                "GenericRelationships" => relations::generic(ctx, ws, kind, rest),
                "DataProcessingRelationships" => relations::processing(ctx, ws, kind, rest),
                "DataSubjectAttachments" => attachments::route(ctx, ws, kind, rest).await,
                "Users" => cloud::users(ctx, ws, kind, rest),
                "CloudStorage" => cloud::route(ctx, ws, kind, rest).await,
                _ => crud::route(ctx, ws, kind, rest),
            }
        }
        _ => Err(ApiError::NotFound),
    }
}

/// Rebuilds the request for extractors that need it (multipart).
pub(crate) fn rebuild(ctx: &Ctx<'_>) -> Request {
    let mut builder = Request::builder().method(ctx.parts.method.clone()).uri(ctx.parts.uri.clone());
    for (k, v) in &ctx.parts.headers {
        builder = builder.header(k, v);
    }
    builder.body(Body::from(ctx.body.clone())).unwrap_or_else(|_| Request::new(Body::empty()))
}
