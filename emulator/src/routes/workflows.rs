//! `…/Workflows`: all steps, the steps of one `WorkflowType`, and PUT of a step list (shapes from
//! SPEC-2021 `WorkFlowStepDto`, docs/dastra-api.md §3.10).

use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Ctx, ok_empty, ok_json};
use crate::error::ApiError;
use crate::openapi::spec;

fn workflow_type(text: &str) -> Result<String, ApiError> {
    // Real payloads say "DataSubjectRequest" where the 2022 enum says "DataSubject" (docs/dastra-api.md §4.5).
    let text = if text.eq_ignore_ascii_case("DataSubjectRequest") { "DataSubject" } else { text };
    let mut v = json!(text);
    let mut errors = Default::default();
    spec().validate(&json!({"$ref": "#/components/schemas/WorkflowType"}), &mut v, "type", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(v.as_str().unwrap_or_default().to_string())
}

pub(crate) fn route(ctx: &Ctx<'_>, ws: i64, rest: &[&str]) -> Result<Response, ApiError> {
    let render = |s: &Value| spec().conform_named("WorkFlowStepDto", s);
    match (rest, &ctx.method) {
        ([], &Method::GET) => {
            let store = ctx.state.inner.store.lock();
            let w = store.workspaces.get(&ws).ok_or(ApiError::NotFound)?;
            Ok(ok_json(Value::Array(w.workflows.iter().map(render).collect())))
        }
        ([ty], &Method::GET) => {
            let ty = workflow_type(ty)?;
            let store = ctx.state.inner.store.lock();
            let w = store.workspaces.get(&ws).ok_or(ApiError::NotFound)?;
            Ok(ok_json(Value::Array(w.workflows.iter().filter(|s| s["type"] == json!(ty)).map(render).collect())))
        }
        ([], &Method::PUT) => {
            let body = ctx.json()?;
            let steps =
                body.as_array().ok_or_else(|| ApiError::BadRequest("Expected an array of WorkFlowStepDto.".into()))?;
            let mut validated = Vec::new();
            let mut errors = crate::openapi::FieldErrors::new();
            let schema = json!({"$ref": "#/components/schemas/WorkFlowStepDto"});
            for (i, step) in steps.iter().enumerate() {
                let mut s = step.clone();
                spec().validate(&schema, &mut s, &format!("[{i}]"), &mut errors);
                validated.push((step.get("id").and_then(Value::as_i64), s));
            }
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
            let mut store = ctx.state.inner.store.lock();
            let w = store.workspaces.get_mut(&ws).ok_or(ApiError::NotFound)?;
            let types: Vec<Value> =
                validated.iter().map(|(_, s)| s.get("type").cloned().unwrap_or(json!("DataSubject"))).collect();
            w.workflows.retain(|s| !types.contains(&s["type"]));
            let mut next = w.workflows.iter().filter_map(|s| s["id"].as_i64()).max().unwrap_or(0);
            for (order, ((id, mut s), ty)) in validated.into_iter().zip(types).enumerate() {
                let id = id
                    .filter(|i| *i > 0 && w.workflows.iter().all(|x| x["id"].as_i64() != Some(*i)))
                    .unwrap_or_else(|| {
                        next += 1;
                        next
                    });
                s["id"] = json!(id);
                s["type"] = ty;
                s["initialStep"] = json!(order == 0);
                w.workflows.push(s);
            }
            Ok(ok_empty())
        }
        ([], _) | ([_], _) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}
