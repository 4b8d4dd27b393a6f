//! Tenant-level and root routes: `/connect/token`, `/status`, `/me`, `/rate-limiting-state`,
//! `/v1/Workspaces[/{id}]` and `/v1/WebHookUrls[/{id}]` (docs/dastra-api.md §1, §5.5).

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Ctx, ok_empty, ok_json};
use crate::config::WorkspaceListShape;
use crate::error::ApiError;
use crate::openapi::spec;
use crate::state::EmulatorState;
use crate::store::{Store, now_string};

/// `POST /connect/token` (client credentials).
pub(crate) fn token(state: &EmulatorState, parts: &Parts, body: &Bytes) -> Response {
    if parts.method != Method::POST {
        return ApiError::MethodNotAllowed.into_response();
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    let token = state.random_token();
    let result = state.inner.tokens.lock().issue(
        &state.inner.config.api_keys,
        &parts.headers,
        &form,
        state.inner.config.token_lifetime,
        token,
        Instant::now(),
    );
    match result {
        Ok(body) => ok_json(body),
        Err((status, body)) => {
            (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), axum::Json(body)).into_response()
        }
    }
}

/// `GET /status`.
pub(crate) fn status() -> Response {
    ok_json(json!({ "status": "Healthy", "emulator": true, "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /me`: a `UserLightDto`-like view of the key's principal (docs/dastra-api.md §7 #14, a guess).
pub(crate) fn me(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    Ok(ok_json(json!({
        "id": 1,
        "displayName": format!("API ({})", ctx.principal.name),
        "givenName": "API",
        "familyName": ctx.principal.name,
        "email": "api@emulator.invalid",
        "tenantId": 1,
        "role": "API",
        "workspaceId": ctx.principal.workspace,
    })))
}

/// `GET /rate-limiting-state` of the calling key.
pub(crate) fn rate_limiting_state(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    Ok(ok_json(ctx.state.quota_state(&ctx.principal.name)))
}

fn workspace_dto(store: &Store, id: i64) -> Option<Value> {
    let w = store.workspaces.get(&id)?;
    let n: usize = w.collections.values().map(|c| c.items.len()).sum();
    Some(json!({
        "id": w.id, "tenantId": 1, "label": w.label, "logoUrl": null, "primaryColor": null, "secondaryColor": null,
        "state": "Active", "permissions": [], "dataSubjectArchivedRetentionDays": null, "nbEntities": n,
    }))
}

/// `/v1/Workspaces[/{id}]`.
pub(crate) fn workspaces(ctx: &Ctx<'_>, rest: &[&str]) -> Result<Response, ApiError> {
    if ctx.method != Method::GET {
        return Err(if rest.len() <= 1 { ApiError::MethodNotAllowed } else { ApiError::NotFound });
    }
    let store = ctx.state.inner.store.lock();
    match rest {
        [] => {
            let visible: Vec<Value> = store
                .workspaces
                .keys()
                .filter(|id| ctx.principal.workspace.is_none_or(|b| b == **id))
                .filter_map(|id| workspace_dto(&store, *id))
                .map(|w| spec().conform_named("WorkSpaceDto", &w))
                .collect();
            Ok(ok_json(match ctx.state.inner.config.workspace_list_shape {
                WorkspaceListShape::ItemsTotal => json!({ "items": visible, "total": visible.len() }),
                WorkspaceListShape::SpecListDto => json!({ "workSpaces": visible }),
            }))
        }
        [id] => {
            let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
            ctx.principal.check_workspace(id)?;
            let dto = workspace_dto(&store, id).ok_or(ApiError::NotFound)?;
            Ok(ok_json(spec().conform_named("WorkSpaceDto", &dto)))
        }
        _ => Err(ApiError::NotFound),
    }
}

fn validate_webhook(store: &Store, body: &mut Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::BadRequest("The request body must be a JSON object.".into()));
    }
    spec().validate_named("WebHookUrlCreationDto", body).map_err(ApiError::Validation)?;
    let url = body["url"].as_str().unwrap_or_default();
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => return Err(ApiError::field("url", "The url must be an absolute http(s) URL.")),
    }
    if let Some(ws) = body.get("workSpaceId").and_then(Value::as_i64)
        && !store.workspaces.contains_key(&ws)
    {
        return Err(ApiError::field("workSpaceId", format!("The workspace {ws} does not exist.")));
    }
    Ok(())
}

fn render_webhook(store: &Store, w: &Value) -> Value {
    let mut w = w.clone();
    if let Some(ws) = w["workSpaceId"].as_i64()
        && let Some(dto) = workspace_dto(store, ws)
    {
        w["workSpace"] = dto;
    }
    spec().conform_named("WebHookUrlDto", &w)
}

/// `/v1/WebHookUrls[/{id}]`.
pub(crate) fn webhook_urls(ctx: &Ctx<'_>, rest: &[&str]) -> Result<Response, ApiError> {
    let parse = |s: &str| s.parse::<i32>().map(i64::from).map_err(|_| ApiError::NotFound);
    let mut store = ctx.state.inner.store.lock();
    match (rest, &ctx.method) {
        ([], &Method::GET) => {
            let filter = match ctx.param("workspaceId").filter(|s| !s.is_empty()) {
                Some(v) => Some(v.parse::<i64>().map_err(|_| ApiError::field("workspaceId", "Not an integer."))?),
                None => None,
            };
            let list: Vec<Value> = store
                .webhooks
                .values()
                .filter(|w| filter.is_none_or(|f| w["workSpaceId"].as_i64() == Some(f)))
                .map(|w| render_webhook(&store, w))
                .collect();
            Ok(ok_json(Value::Array(list)))
        }
        ([], &Method::POST) => {
            let mut body = ctx.json()?;
            validate_webhook(&store, &mut body)?;
            let id = store.next_webhook_id();
            let key = store.next_uuid().to_string();
            let value = json!({
                "id": id, "url": body["url"], "workSpaceId": body.get("workSpaceId").cloned().unwrap_or(Value::Null),
                "subscribedEvents": body.get("subscribedEvents").cloned().unwrap_or(json!([])),
                "signatureKey": key, "errorMessage": null, "nbErrors": 0, "dateLastError": null, "inError": false,
                "dateCreation": now_string(),
            });
            store.webhooks.insert(id, value.clone());
            Ok(ok_json(render_webhook(&store, &value)))
        }
        ([id], &Method::GET) => {
            let w = store.webhooks.get(&parse(id)?).ok_or(ApiError::NotFound)?;
            Ok(ok_json(render_webhook(&store, w)))
        }
        ([id], &Method::PUT) => {
            let id = parse(id)?;
            let mut body = ctx.json()?;
            validate_webhook(&store, &mut body)?;
            let w = store.webhooks.get_mut(&id).ok_or(ApiError::NotFound)?;
            w["url"] = body["url"].clone();
            w["workSpaceId"] = body.get("workSpaceId").cloned().unwrap_or(Value::Null);
            w["subscribedEvents"] = body.get("subscribedEvents").cloned().unwrap_or(json!([]));
            // Re-saving a subscription un-blocks it and resets its error count (docs/dastra-api.md §7 #12).
            w["nbErrors"] = json!(0);
            w["inError"] = json!(false);
            w["errorMessage"] = Value::Null;
            Ok(ok_empty())
        }
        ([id], &Method::DELETE) => {
            store.webhooks.remove(&parse(id)?).ok_or(ApiError::NotFound)?;
            Ok(ok_empty())
        }
        ([], _) | ([_], _) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}
