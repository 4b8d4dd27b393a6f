//! `DataSubjectAttachments/{dataSubjectRequestId}`: multipart upload (one part named `File`), list,
//! delete, purge (drop the bytes, keep the references) and download (docs/dastra-api.md §3.7).

use axum::extract::{FromRequest, Multipart};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::crud::render;
use super::{Ctx, ok_empty, ok_json, rebuild};
use crate::entities::{IdType, Kind};
use crate::error::ApiError;
use crate::store::{Id, Item, now_string};

/// Hidden field holding the uploaded bytes (never part of a response: not in the schema).
const CONTENT: &str = "_contentBase64";

pub(crate) async fn route(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind, rest: &[&str]) -> Result<Response, ApiError> {
    let dsr = |s: &str| Id::parse(IdType::Int, s).ok_or(ApiError::NotFound);
    let file = |s: &str| Id::parse(IdType::Uuid, s).ok_or(ApiError::NotFound);
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (lower.as_slice(), &ctx.method) {
        ([id], &Method::POST) => upload(ctx, ws, kind, dsr(id)?).await,
        ([id], &Method::GET) => {
            let request = dsr(id)?;
            let store = ctx.state.inner.store.lock();
            store.get(ws, "DataSubjectRequests", request).ok_or(ApiError::NotFound)?;
            let mut items: Vec<&Item> = store
                .collection(ws, kind.name)
                .map(|c| {
                    c.items.values().filter(|i| Some(&i.value["userRequestId"]) == Some(&request.to_json())).collect()
                })
                .unwrap_or_default();
            items.sort_by_key(|i| i.seq);
            Ok(ok_json(Value::Array(items.iter().map(|i| render(kind, kind.output_schema, &i.value, false)).collect())))
        }
        ([id, "purge"], &Method::POST) => {
            let request = dsr(id)?;
            let mut store = ctx.state.inner.store.lock();
            store.get(ws, "DataSubjectRequests", request).ok_or(ApiError::NotFound)?;
            let now = now_string();
            if let Some(c) = store.collection_mut(ws, kind.name) {
                for item in c.items.values_mut().filter(|i| i.value["userRequestId"] == request.to_json()) {
                    if let Some(o) = item.value.as_object_mut() {
                        o.remove(CONTENT);
                        o.insert("dateFileRemoved".into(), json!(now));
                    }
                }
            }
            Ok(ok_empty())
        }
        ([id, "download", file_id], &Method::GET) => {
            let (request, file_id) = (dsr(id)?, file(file_id)?);
            let store = ctx.state.inner.store.lock();
            let v = store
                .get(ws, kind.name, file_id)
                .filter(|v| v["userRequestId"] == request.to_json())
                .ok_or(ApiError::NotFound)?;
            let bytes = v
                .get(CONTENT)
                .and_then(Value::as_str)
                .and_then(|b| STANDARD.decode(b).ok())
                .ok_or(ApiError::NotFound)?;
            let name = v["fileName"].as_str().unwrap_or("file").replace('"', "");
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            if let Ok(h) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                headers.insert(header::CONTENT_DISPOSITION, h);
            }
            Ok(response)
        }
        ([id, file_id], &Method::DELETE) => {
            let (request, file_id) = (dsr(id)?, file(file_id)?);
            let mut store = ctx.state.inner.store.lock();
            let c = store.collection_mut(ws, kind.name).ok_or(ApiError::NotFound)?;
            match c.items.get(&file_id) {
                Some(i) if i.value["userRequestId"] == request.to_json() => {
                    c.items.remove(&file_id);
                    Ok(ok_empty())
                }
                _ => Err(ApiError::NotFound),
            }
        }
        ([_], _) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

async fn upload(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind, request: Id) -> Result<Response, ApiError> {
    {
        let store = ctx.state.inner.store.lock();
        store.get(ws, "DataSubjectRequests", request).ok_or(ApiError::NotFound)?;
    }
    let (name, bytes) = file_part(ctx, "File", 355).await?;
    let extension = name.rsplit_once('.').map(|(_, e)| format!(".{e}"));
    let mut store = ctx.state.inner.store.lock();
    let id = Id::Uuid(store.next_uuid());
    let now = now_string();
    let value = json!({
        "id": id.to_json(), "fileName": name, "label": name, "extension": extension,
        "size": bytes.len(), "nbDownload": 0, "transmitted": false, "userRequestId": request.to_json(),
        "dateCreation": now, "dateUpdate": now, "deleted": false, "expired": false,
        CONTENT: STANDARD.encode(&bytes),
    });
    let seq = store.next_seq();
    store.collection_mut(ws, kind.name).ok_or(ApiError::NotFound)?.items.insert(id, Item { seq, value: value.clone() });
    drop(store);
    Ok(ok_json(render(kind, kind.output_schema, &value, false)))
}

/// The `file` part of a `multipart/form-data` upload (field name case-insensitive): its file name
/// and bytes. Dastra's validation messages name the field `field` (`File` for DSR attachments,
/// `file` for cloud storage) and cap the file name at `max_name` characters.
pub(super) async fn file_part(
    ctx: &Ctx<'_>,
    field: &str,
    max_name: usize,
) -> Result<(String, axum::body::Bytes), ApiError> {
    let is_multipart = ctx
        .parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::UnsupportedMediaType);
    }
    let invalid =
        |e: axum::extract::multipart::MultipartError| ApiError::BadRequest(format!("Invalid multipart body: {e}"));
    let mut multipart = Multipart::from_request(rebuild(ctx), &())
        .await
        .map_err(|e| ApiError::BadRequest(format!("Invalid multipart body: {e}")))?;
    while let Some(part) = multipart.next_field().await.map_err(invalid)? {
        if part.name().is_some_and(|n| n.eq_ignore_ascii_case("file")) {
            let name = part.file_name().unwrap_or("file").to_string();
            let bytes = part.bytes().await.map_err(invalid)?;
            if name.chars().count() > max_name {
                return Err(ApiError::field(field, format!("The file name must be at most {max_name} characters.")));
            }
            return Ok((name, bytes));
        }
    }
    Err(ApiError::field(field, format!("The {field} field is required.")))
}
