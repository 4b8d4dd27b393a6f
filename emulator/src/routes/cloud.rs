//! Workspace users (`GET Users`, `GET Users/{id}`; read only, seeded through the admin API) and
//! Dastra's own document storage: `GET CloudStorage` (providers), `POST CloudStorage/Dastra`
//! (multipart part `file`), `GET CloudStorage/Dastra` (list, `q`), `GET …/Dastra/{fileId}/download`
//! and `POST …/Dastra/link/{fileId}/{type}/{objectId}` (docs/dastra-api.md §3.9, §3.13; the bodies and
//! the provider name are inferred). Links are kept in a hidden `_links` array of the file.

use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::crud::{parse_id, render};
use super::{Ctx, list, ok_empty, ok_json};
use crate::entities::{IdType, Kind};
use crate::error::ApiError;
use crate::store::{Id, Item, now_string};

/// Hidden fields of a stored file (never in a response: not in the schema).
pub(crate) const CONTENT: &str = "_contentBase64";
/// Hidden list of `{type, objectId}` the file is linked to.
pub(crate) const LINKS: &str = "_links";

/// The only provider emulated.
const PROVIDER: &str = "dastra";

pub(crate) fn users(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind, rest: &[&str]) -> Result<Response, ApiError> {
    match (rest, &ctx.method) {
        ([], &Method::GET) => list::list(ctx, ws, kind).map(ok_json),
        ([id], &Method::GET) => {
            let id = parse_id(kind, id)?;
            let store = ctx.state.inner.store.lock();
            let v = store.get(ws, kind.name, id).ok_or(ApiError::NotFound)?;
            Ok(ok_json(render(kind, kind.output_schema, v, false)))
        }
        // No user creation through the API (docs/dastra-api.md §3.9).
        ([], _) | ([_], _) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

/// The workspace collection a link `{type}` names (TaskObjectType / RelationShipObjectType names,
/// plus `Task`); inferred.
fn linked_family(object_type: &str) -> Option<&'static str> {
    Some(match object_type.to_ascii_lowercase().as_str() {
        "task" => "Tasks",
        "asset" => "Assets",
        "actor" => "Actors",
        "dataprocessing" => "DataProcessings",
        "datasubject" | "datasubjectrequest" => "DataSubjectRequests",
        "contract" => "Contracts",
        _ => return None,
    })
}

pub(crate) async fn route(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind, rest: &[&str]) -> Result<Response, ApiError> {
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let file = |s: &str| Id::parse(IdType::Uuid, s).ok_or(ApiError::NotFound);
    match (lower.as_slice(), &ctx.method) {
        ([], &Method::GET) => {
            Ok(ok_json(json!([{ "id": "Dastra", "label": "Dastra", "inError": false, "nbErrors": 0 }])))
        }
        ([p], _) if *p != PROVIDER => Err(ApiError::NotFound),
        ([_], &Method::GET) => list::list(ctx, ws, kind).map(ok_json),
        ([_], &Method::POST) => upload(ctx, ws, kind).await,
        ([p, "link", file_id, object_type, object_id], &Method::POST) if *p == PROVIDER => {
            let file_id = file(file_id)?;
            let family = linked_family(object_type).ok_or(ApiError::NotFound)?;
            let target_kind = crate::entities::kind(family).ok_or(ApiError::NotFound)?;
            let object = parse_id(target_kind, object_id)?;
            let mut store = ctx.state.inner.store.lock();
            store.get(ws, family, object).ok_or(ApiError::NotFound)?;
            let c = store.collection_mut(ws, kind.name).ok_or(ApiError::NotFound)?;
            let item = c.items.get_mut(&file_id).ok_or(ApiError::NotFound)?;
            let link = json!({ "type": rest[3], "objectId": object.to_json() });
            let links = item.value.as_object_mut().map(|o| o.entry(LINKS).or_insert_with(|| json!([])));
            if let Some(Value::Array(links)) = links
                && !links.contains(&link)
            {
                links.push(link);
            }
            Ok(ok_empty())
        }
        ([p, file_id, "download"], &Method::GET) if *p == PROVIDER => {
            let store = ctx.state.inner.store.lock();
            let v = store.get(ws, kind.name, file(file_id)?).ok_or(ApiError::NotFound)?;
            let bytes = v
                .get(CONTENT)
                .and_then(Value::as_str)
                .and_then(|b| STANDARD.decode(b).ok())
                .ok_or(ApiError::NotFound)?;
            let mut response = bytes.into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            Ok(response)
        }
        ([_], _) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

async fn upload(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind) -> Result<Response, ApiError> {
    let (name, bytes) = super::attachments::file_part(ctx, "file", 255).await?;
    let extension = name.rsplit_once('.').map(|(_, e)| format!(".{e}"));
    let mut store = ctx.state.inner.store.lock();
    let id = Id::Uuid(store.next_uuid());
    let now = now_string();
    let value = json!({
        "id": id.to_string(), "label": name, "fileName": name, "extension": extension, "size": bytes.len(),
        "source": "Dastra", "type": "File", "external": false, "builtIn": false, "deleted": false,
        "nbDownload": 0, "dateCreation": now, "dateUpdate": now,
        CONTENT: STANDARD.encode(&bytes), LINKS: [],
    });
    let seq = store.next_seq();
    store.collection_mut(ws, kind.name).ok_or(ApiError::NotFound)?.items.insert(id, Item { seq, value: value.clone() });
    drop(store);
    Ok(ok_json(render(kind, kind.output_schema, &value, false)))
}
