//! Generic routes of an entity family: POST (always creates), GET by id, PUT (replaces writable
//! fields), PATCH (JSON Patch), DELETE, collection PATCH `{ids, patch}`, batch delete, workflow
//! moves, archive / restore, DSR close, task archive — validated against the OpenAPI document.

use axum::http::Method;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{Ctx, list, ok_empty, ok_json};
use crate::customfields;
use crate::entities::{Answer, IdType, Kind};
use crate::error::ApiError;
use crate::openapi::spec;
use crate::store::{Id, Item, Store, now_string};

/// Fields the server owns: never taken from a body, kept across PUT and PATCH.
const SYSTEM: &[&str] = &["id", "dateCreation", "dateUpdate", "creator", "workspaceId", "workSpaceId"];

pub(crate) fn route(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind, rest: &[&str]) -> Result<Response, ApiError> {
    let m = &ctx.method;
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (lower.as_slice(), m) {
        ([], &Method::GET) => list::list(ctx, ws, kind).map(ok_json),
        ([], &Method::POST) => create(ctx, ws, kind),
        ([], &Method::PATCH) => batch_patch(ctx, ws, kind),
        ([], &Method::DELETE) => batch_delete(ctx, ws, kind),
        (["batch-delete"], &Method::POST) => batch_delete(ctx, ws, kind),
        (["count"], &Method::GET) if kind.name == "Tasks" => {
            let listed = list::list(ctx, ws, kind)?;
            Ok(ok_json(listed["total"].clone()))
        }
        (["workflow"], &Method::POST) => workflow(ctx, ws, kind),
        (["archive" | "restore"], &Method::POST) if matches!(kind.name, "DataProcessings" | "Contracts") => {
            let ids = id_list(kind, &ctx.json()?)?;
            set_archived_many(ctx, ws, kind, &ids, lower[0] == "archive")
        }
        (["batch-archive" | "batch-restore"], &Method::POST) if kind.name == "Tasks" => {
            let ids = id_list(kind, &ctx.json()?)?;
            set_archived_many(ctx, ws, kind, &ids, lower[0] == "batch-archive")
        }
        (["archive" | "restore", id], &Method::POST)
            if matches!(kind.name, "DataProcessings" | "Contracts" | "DataSubjectRequests") =>
        {
            let id = parse_id(kind, id)?;
            set_archived_many(ctx, ws, kind, &[id], lower[0] == "archive")
        }
        ([id, "archive"], &Method::POST) if kind.name == "Tasks" => {
            let id = parse_id(kind, id)?;
            let archived = ctx.json_opt()?.and_then(|b| b.get("archived").and_then(Value::as_bool)).unwrap_or(true);
            set_archived_many(ctx, ws, kind, &[id], archived)
        }
        ([id, "close"], &Method::POST) if kind.name == "DataSubjectRequests" => {
            close(ctx, ws, kind, parse_id(kind, id)?)
        }
        ([id], &Method::GET) => {
            let id = parse_id(kind, id)?;
            let store = ctx.state.inner.store.lock();
            let v = store.get(ws, kind.name, id).ok_or(ApiError::NotFound)?;
            Ok(ok_json(render_in(&store, ws, kind, kind.output_schema, v)))
        }
        ([id], &Method::PUT) => put(ctx, ws, kind, parse_id(kind, id)?),
        ([id], &Method::PATCH) => patch_one(ctx, ws, kind, parse_id(kind, id)?),
        ([id], &Method::DELETE) => delete(ctx, ws, kind, parse_id(kind, id)?),
        ([], _) | ([_], _) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

pub(crate) fn parse_id(kind: &Kind, text: &str) -> Result<Id, ApiError> {
    Id::parse(kind.id, text).ok_or(ApiError::NotFound)
}

fn id_list(kind: &Kind, body: &Value) -> Result<Vec<Id>, ApiError> {
    let items = body.as_array().ok_or_else(|| ApiError::BadRequest("Expected a JSON array of ids.".into()))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| Id::from_json(kind.id, v).ok_or_else(|| ApiError::field(format!("[{i}]"), "Not a valid id.")))
        .collect()
}

/// Shapes a stored entity for a response: the schema's properties, plus the extensions the 2022
/// document lacks (only when set) and `customFields` (only when the workspace defines some).
pub(crate) fn render(kind: &Kind, schema: &str, stored: &Value, has_custom_fields: bool) -> Value {
    let mut out = spec().conform_named(schema, stored);
    if let Some(map) = out.as_object_mut() {
        for (name, _) in kind.extensions {
            if let Some(v) = stored.get(*name).filter(|v| !v.is_null()) {
                map.insert((*name).to_string(), v.clone());
            }
        }
        if kind.custom_fields && has_custom_fields {
            map.insert("customFields".into(), stored.get("customFields").cloned().unwrap_or_else(|| json!({})));
        }
    }
    out
}

pub(crate) fn render_in(store: &Store, ws: i64, kind: &Kind, schema: &str, stored: &Value) -> Value {
    let has_cf = store.workspaces.get(&ws).is_some_and(|w| w.custom_fields.contains_key(kind.name));
    let mut v = stored.clone();
    if kind.name == "DataSubjectRequests" {
        // The DSR carries its attachments (DataSubjectAttachmentDto[]).
        let id = stored["id"].as_i64();
        let atts: Vec<Value> = store
            .collection(ws, "DataSubjectAttachments")
            .map(|c| {
                c.items.values().filter(|i| i.value["userRequestId"].as_i64() == id).map(|i| i.value.clone()).collect()
            })
            .unwrap_or_default();
        v["attachments"] = Value::Array(atts);
    }
    render(kind, schema, &v, has_cf)
}

/// Removes (case-insensitively) the extension fields and `customFields` from a body, checking the
/// extensions' maxLength.
fn take_extensions(kind: &Kind, body: &mut Value) -> Result<(Map<String, Value>, Option<Value>), ApiError> {
    let mut ext = Map::new();
    let mut cf = None;
    if let Some(obj) = body.as_object_mut() {
        let keys: Vec<String> = obj.keys().cloned().collect();
        for k in keys {
            if let Some((name, max)) = kind.extensions.iter().find(|(e, _)| e.eq_ignore_ascii_case(&k)) {
                let v = obj.remove(&k).unwrap_or(Value::Null);
                match &v {
                    Value::Null => {}
                    Value::String(s) if s.chars().count() <= *max => {}
                    Value::String(_) => {
                        return Err(ApiError::field(
                            *name,
                            format!("The field {name} must be a string with a maximum length of {max}."),
                        ));
                    }
                    _ => return Err(ApiError::field(*name, format!("The field {name} must be a string."))),
                }
                ext.insert((*name).to_string(), v);
            } else if kind.custom_fields && k.eq_ignore_ascii_case("customFields") {
                cf = obj.remove(&k);
            }
        }
    }
    Ok((ext, cf))
}

fn validate(schema: &str, body: &mut Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::BadRequest("The request body must be a JSON object.".into()));
    }
    spec().validate_named(schema, body).map_err(ApiError::Validation)
}

fn custom_fields(store: &Store, ws: i64, kind: &Kind, given: Option<&Value>) -> Result<Option<Value>, ApiError> {
    if !kind.custom_fields {
        return Ok(None);
    }
    let defs = store.workspaces.get(&ws).and_then(|w| w.custom_fields.get(kind.name)).cloned().unwrap_or_default();
    if defs.is_empty() {
        return Ok(None); // nothing defined: every key is unknown, hence dropped
    }
    customfields::validate(&defs, given, true).map(|m| Some(Value::Object(m))).map_err(ApiError::Validation)
}

/// References a body makes to other entities that Dastra would check.
fn check_references(store: &Store, ws: i64, kind: &Kind, body: &Value) -> Result<(), ApiError> {
    let area_required = matches!(kind.name, "DataProcessings" | "DataSubjectRequests");
    if let Some(area) = body.get("areaId").and_then(Value::as_i64)
        && (area_required || area != 0)
        && store.get(ws, "Areas", Id::Int(area)).is_none()
    {
        return Err(ApiError::field("areaId", format!("The area {area} does not exist in this workspace.")));
    }
    if let Some(step) = body.get("workFlowStepId").and_then(Value::as_i64) {
        let known =
            store.workspaces.get(&ws).is_some_and(|w| w.workflows.iter().any(|s| s["id"].as_i64() == Some(step)));
        if !known {
            return Err(ApiError::field("workFlowStepId", format!("The workflow step {step} does not exist.")));
        }
    }
    Ok(())
}

/// Server-computed fields.
fn derive(kind: &Kind, v: &mut Value) {
    let Some(obj) = v.as_object_mut() else { return };
    match kind.name {
        "Actors" => {
            let name =
                obj.get("companyName").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string).or_else(
                    || {
                        let given = obj.get("givenName").and_then(Value::as_str).unwrap_or("");
                        let family = obj.get("familyName").and_then(Value::as_str).unwrap_or("");
                        let full = format!("{given} {family}").trim().to_string();
                        (!full.is_empty()).then_some(full)
                    },
                );
            obj.insert("displayName".into(), name.map_or(Value::Null, Value::String));
            obj.entry("nbReferences").or_insert(json!(0));
        }
        "Teams" => {
            let n = obj.get("users").and_then(Value::as_array).map_or(0, Vec::len);
            obj.insert("nbUsers".into(), json!(n));
            obj.entry("default").or_insert(json!(false));
        }
        "Areas" => {
            obj.entry("order").or_insert(json!(0));
        }
        _ => {}
    }
}

fn defaults(kind: &Kind, ws: i64, v: &mut Map<String, Value>, store: &Store) {
    let initial_step = |ty: &str| {
        store.workspaces.get(&ws).and_then(|w| {
            w.workflows.iter().find(|s| s["type"] == ty && s["initialStep"] == true).and_then(|s| s["id"].as_i64())
        })
    };
    match kind.name {
        "DataProcessings" => {
            v.entry("processingType").or_insert(json!("Default"));
            v.entry("state").or_insert(json!("Active"));
            v.entry("archived").or_insert(json!(false));
            v.insert("workSpaceId".into(), json!(ws));
        }
        "DataSubjectRequests" => {
            v.entry("state").or_insert(json!("Open"));
            v.entry("archived").or_insert(json!(false));
            v.entry("channel").or_insert(json!("Internal"));
            if let Some(step) = initial_step("DataSubject") {
                v.entry("workFlowStepId").or_insert(json!(step));
            }
            let expiry = chrono::Utc::now() + chrono::Months::new(1);
            v.entry("expiryTime").or_insert(json!(crate::store::format_time(expiry)));
        }
        "Tasks" => {
            v.entry("state").or_insert(json!("Open"));
            v.entry("archived").or_insert(json!(false));
            v.insert("workspaceId".into(), json!(ws));
            if let Some(step) = initial_step("Task") {
                v.entry("workFlowStepId").or_insert(json!(step));
            }
        }
        "Contracts" => {
            v.entry("archived").or_insert(json!(false));
        }
        "Areas" => {
            v.entry("type").or_insert(json!("Area"));
        }
        _ => {}
    }
}

fn create(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind) -> Result<Response, ApiError> {
    let mut body = ctx.json()?;
    if !body.is_object() {
        return Err(ApiError::BadRequest("The request body must be a JSON object.".into()));
    }
    let (ext, cf) = take_extensions(kind, &mut body)?;
    validate(kind.create_schema, &mut body)?;
    let mut store = ctx.state.inner.store.lock();
    check_references(&store, ws, kind, &body)?;
    let cf = custom_fields(&store, ws, kind, cf.as_ref())?;
    let id = store.new_id(ws, kind.name, kind.id).ok_or(ApiError::NotFound)?;
    let mut obj = body.as_object().cloned().unwrap_or_default();
    obj.insert("id".into(), id.to_json());
    let now = now_string();
    obj.insert("dateCreation".into(), json!(now));
    obj.insert("dateUpdate".into(), json!(now));
    defaults(kind, ws, &mut obj, &store);
    for (k, v) in ext {
        obj.insert(k, v);
    }
    if let Some(cf) = cf {
        obj.insert("customFields".into(), cf);
    }
    let mut value = Value::Object(obj);
    derive(kind, &mut value);
    let seq = store.next_seq();
    let collection = store.collection_mut(ws, kind.name).ok_or(ApiError::NotFound)?;
    collection.items.insert(id, Item { seq, value: value.clone() });
    let answer = match kind.create_answer {
        Answer::Body(schema) => ok_json(render_in(&store, ws, kind, schema, &value)),
        Answer::Empty => ok_empty(),
    };
    drop(store);
    if let Some(ev) = kind.events {
        ctx.state.emit(ws, ev.created, render_output(ctx, ws, kind, &value));
    }
    Ok(answer)
}

fn render_output(ctx: &Ctx<'_>, ws: i64, kind: &Kind, value: &Value) -> Value {
    let store = ctx.state.inner.store.lock();
    render_in(&store, ws, kind, kind.output_schema, value)
}

/// Replaces the writable fields of `existing` by those of `candidate` (already validated against
/// the update schema). `full` = PUT semantics: omitted arrays become empty (docs/dastra-api.md §7 #6).
fn merge_writable(kind: &Kind, existing: &Value, candidate: &Value, full: bool) -> Value {
    let mut out = existing.as_object().cloned().unwrap_or_default();
    for (name, schema) in spec().writable_properties(kind.update_schema) {
        if SYSTEM.contains(&name.as_str()) {
            continue;
        }
        match candidate.get(&name) {
            Some(v) => {
                out.insert(name, v.clone());
            }
            None if full && schema.get("type").and_then(Value::as_str) == Some("array") => {
                out.insert(name, json!([]));
            }
            None => {
                out.remove(&name);
            }
        }
    }
    out.insert("dateUpdate".into(), json!(now_string()));
    Value::Object(out)
}

fn put(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind, id: Id) -> Result<Response, ApiError> {
    let mut body = ctx.json()?;
    if !body.is_object() {
        return Err(ApiError::BadRequest("The request body must be a JSON object.".into()));
    }
    let (ext, cf) = take_extensions(kind, &mut body)?;
    validate(kind.update_schema, &mut body)?;
    let mut store = ctx.state.inner.store.lock();
    let existing = store.get(ws, kind.name, id).cloned().ok_or(ApiError::NotFound)?;
    check_references(&store, ws, kind, &body)?;
    let cf = custom_fields(&store, ws, kind, cf.as_ref())?;
    let mut value = merge_writable(kind, &existing, &body, true);
    if let Some(obj) = value.as_object_mut() {
        for (name, _) in kind.extensions {
            obj.insert((*name).to_string(), ext.get(*name).cloned().unwrap_or(Value::Null));
        }
        if let Some(cf) = cf {
            obj.insert("customFields".into(), cf);
        }
    }
    derive(kind, &mut value);
    store_value(&mut store, ws, kind, id, value.clone())?;
    let answer = match kind.put_answer {
        Answer::Body(schema) => ok_json(render_in(&store, ws, kind, schema, &value)),
        Answer::Empty => ok_empty(),
    };
    drop(store);
    emit_update(ctx, ws, kind, &existing, &value);
    Ok(answer)
}

fn store_value(store: &mut Store, ws: i64, kind: &Kind, id: Id, value: Value) -> Result<(), ApiError> {
    let item = store.collection_mut(ws, kind.name).and_then(|c| c.items.get_mut(&id)).ok_or(ApiError::NotFound)?;
    item.value = value;
    Ok(())
}

fn emit_update(ctx: &Ctx<'_>, ws: i64, kind: &Kind, before: &Value, after: &Value) {
    let Some(ev) = kind.events else { return };
    let data = render_output(ctx, ws, kind, after);
    ctx.state.emit(ws, ev.updated, data.clone());
    if before.get("state") != after.get("state") {
        ctx.state.emit(ws, ev.state_changed, data);
    }
}

/// Reads a JSON Patch: an array of operations, or Swashbuckle's `{operations: [...]}` rendering.
/// The first path segment is matched case-insensitively against the entity's fields.
fn parse_patch(body: &Value, known: &[String]) -> Result<json_patch::Patch, ApiError> {
    let ops = match body {
        Value::Array(a) => a.clone(),
        Value::Object(o) => match o.iter().find(|(k, _)| k.eq_ignore_ascii_case("operations")).map(|(_, v)| v) {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err(ApiError::field("operations", "operations must be an array.")),
        },
        _ => return Err(ApiError::BadRequest("A JSON Patch document (array of operations) is expected.".into())),
    };
    let mut fixed = Vec::with_capacity(ops.len());
    for (i, mut op) in ops.into_iter().enumerate() {
        let Some(obj) = op.as_object_mut() else {
            return Err(ApiError::field(format!("[{i}]"), "An operation must be an object."));
        };
        for key in ["path", "from"] {
            if let Some(Value::String(p)) = obj.get(key) {
                obj.insert(key.into(), Value::String(canonical_path(p, known)));
            }
        }
        if let Some(Value::String(o)) = obj.get("op") {
            obj.insert("op".into(), Value::String(o.to_ascii_lowercase()));
        }
        fixed.push(op);
    }
    serde_json::from_value(Value::Array(fixed))
        .map_err(|e| ApiError::field("patch", format!("Invalid JSON Patch: {e}")))
}

fn canonical_path(path: &str, known: &[String]) -> String {
    let Some(rest) = path.strip_prefix('/') else { return path.to_string() };
    let (head, tail) = rest.split_once('/').map_or((rest, None), |(h, t)| (h, Some(t)));
    let head = known.iter().find(|k| k.eq_ignore_ascii_case(head)).map_or(head, String::as_str);
    match tail {
        Some(t) => format!("/{head}/{t}"),
        None => format!("/{head}"),
    }
}

fn known_fields(kind: &Kind, existing: &Value) -> Vec<String> {
    let mut known: Vec<String> = spec().properties(kind.update_schema);
    known.extend(spec().properties(kind.output_schema));
    known.extend(kind.extensions.iter().map(|(e, _)| (*e).to_string()));
    known.push("customFields".into());
    if let Some(o) = existing.as_object() {
        known.extend(o.keys().cloned());
    }
    known
}

/// Applies a patch to a stored entity and validates the result; returns the new stored value.
fn patched(store: &Store, ws: i64, kind: &Kind, existing: &Value, body: &Value) -> Result<Value, ApiError> {
    let patch = parse_patch(body, &known_fields(kind, existing))?;
    // On a typed DTO every property exists (null when unset), so `replace` of an unset field works
    // in ASP.NET: mirror that by pre-filling absent properties, and drop those still null after.
    let mut doc = existing.clone();
    let mut prefilled = Vec::new();
    if let Some(obj) = doc.as_object_mut() {
        let names = spec()
            .properties(kind.update_schema)
            .into_iter()
            .chain(kind.extensions.iter().map(|(e, _)| (*e).to_string()));
        for name in names {
            if !obj.contains_key(&name) {
                obj.insert(name.clone(), Value::Null);
                prefilled.push(name);
            }
        }
        if kind.custom_fields && !obj.contains_key("customFields") {
            obj.insert("customFields".into(), json!({}));
        }
    }
    json_patch::patch(&mut doc, &patch)
        .map_err(|e| ApiError::field("patch", format!("The patch cannot be applied: {e}")))?;
    if let Some(obj) = doc.as_object_mut() {
        for name in prefilled {
            if obj.get(&name).is_some_and(Value::is_null) {
                obj.remove(&name);
            }
        }
    }
    let (ext, cf) = take_extensions(kind, &mut doc)?;
    let mut candidate = doc.clone();
    validate(kind.update_schema, &mut candidate)?;
    check_references(store, ws, kind, &candidate)?;
    let cf = custom_fields(store, ws, kind, cf.as_ref())?;
    let mut value = merge_writable(kind, existing, &candidate, false);
    if let Some(obj) = value.as_object_mut() {
        for (name, _) in kind.extensions {
            obj.insert((*name).to_string(), ext.get(*name).cloned().unwrap_or(Value::Null));
        }
        if let Some(cf) = cf {
            obj.insert("customFields".into(), cf);
        }
        // Fields outside the update schema (read-only or output-only) keep their stored value.
        for key in ["archived", "state"] {
            if spec().properties(kind.update_schema).iter().all(|p| p != key)
                && let Some(v) = existing.get(key)
            {
                obj.insert(key.into(), v.clone());
            }
        }
    }
    derive(kind, &mut value);
    Ok(value)
}

fn patch_one(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind, id: Id) -> Result<Response, ApiError> {
    let body = ctx.json()?;
    let mut store = ctx.state.inner.store.lock();
    let existing = store.get(ws, kind.name, id).cloned().ok_or(ApiError::NotFound)?;
    let value = patched(&store, ws, kind, &existing, &body)?;
    store_value(&mut store, ws, kind, id, value.clone())?;
    drop(store);
    emit_update(ctx, ws, kind, &existing, &value);
    Ok(ok_empty())
}

fn batch_patch(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind) -> Result<Response, ApiError> {
    let body = ctx.json()?;
    let get = |name: &str| {
        body.as_object().and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))).map(|(_, v)| v)
    };
    let ids = match get("ids") {
        Some(Value::Null) | None => Vec::new(),
        Some(v) => id_list(kind, v).map_err(|_| ApiError::field("ids", "ids must be an array of ids."))?,
    };
    let patch = get("patch").cloned().unwrap_or(Value::Null);
    let patch = if patch.is_null() { json!([]) } else { patch };
    let mut store = ctx.state.inner.store.lock();
    let mut updates = Vec::with_capacity(ids.len());
    for id in &ids {
        let existing = store.get(ws, kind.name, *id).cloned().ok_or(ApiError::NotFound)?;
        let value = patched(&store, ws, kind, &existing, &patch)?;
        updates.push((*id, existing, value));
    }
    for (id, _, value) in &updates {
        store_value(&mut store, ws, kind, *id, value.clone())?;
    }
    drop(store);
    for (_, before, after) in &updates {
        emit_update(ctx, ws, kind, before, after);
    }
    Ok(ok_empty())
}

fn delete(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind, id: Id) -> Result<Response, ApiError> {
    let mut store = ctx.state.inner.store.lock();
    let has_cf = store.workspaces.get(&ws).is_some_and(|w| w.custom_fields.contains_key(kind.name));
    let removed = store.collection_mut(ws, kind.name).and_then(|c| c.items.remove(&id)).ok_or(ApiError::NotFound)?;
    if kind.name == "DataSubjectRequests"
        && let Some(c) = store.collection_mut(ws, "DataSubjectAttachments")
    {
        c.items.retain(|_, i| i.value["userRequestId"].as_i64() != id_int(id));
    }
    drop(store);
    if let Some(ev) = kind.events
        && let Some(name) = ev.deleted
    {
        ctx.state.emit(ws, name, json!({ "id": id.to_json() }));
    }
    Ok(match kind.delete_answer {
        Answer::Body(schema) => ok_json(render(kind, schema, &removed.value, has_cf)),
        Answer::Empty => ok_empty(),
    })
}

fn id_int(id: Id) -> Option<i64> {
    match id {
        Id::Int(i) => Some(i),
        Id::Uuid(_) => None,
    }
}

fn batch_delete(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind) -> Result<Response, ApiError> {
    let ids = id_list(kind, &ctx.json()?)?;
    let mut removed = Vec::new();
    {
        let mut store = ctx.state.inner.store.lock();
        let c = store.collection_mut(ws, kind.name).ok_or(ApiError::NotFound)?;
        for id in ids {
            if c.items.remove(&id).is_some() {
                removed.push(id);
            }
        }
    }
    if let Some(ev) = kind.events
        && let Some(name) = ev.deleted
    {
        for id in removed {
            ctx.state.emit(ws, name, json!({ "id": id.to_json() }));
        }
    }
    Ok(ok_empty())
}

fn workflow(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind) -> Result<Response, ApiError> {
    let mut body = ctx.json()?;
    let schema = if kind.id == IdType::Uuid { "GuidWorkflowUpdateDto" } else { "Int32WorkflowUpdateDto" };
    validate(schema, &mut body)?;
    let id = body
        .get("id")
        .and_then(|v| Id::from_json(kind.id, v))
        .ok_or_else(|| ApiError::field("id", "The id field is required."))?;
    let step = body
        .get("stepId")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::field("stepId", "The stepId field is required."))?;
    let mut store = ctx.state.inner.store.lock();
    let existing = store.get(ws, kind.name, id).cloned().ok_or(ApiError::NotFound)?;
    let mapped = store
        .workspaces
        .get(&ws)
        .and_then(|w| w.workflows.iter().find(|s| s["id"].as_i64() == Some(step)))
        .map(|s| s["mappedState"].clone())
        .ok_or_else(|| ApiError::field("stepId", format!("The workflow step {step} does not exist.")))?;
    let mut value = existing.clone();
    value["workFlowStepId"] = json!(step);
    value["dateUpdate"] = json!(now_string());
    // The step's mapped state becomes the entity state when the entity's state enum has it.
    let state_schema =
        spec().schema(kind.output_schema).and_then(|s| s.pointer("/properties/state")).map(|s| spec().resolve(s));
    if let (Value::String(m), Some(options)) =
        (&mapped, state_schema.and_then(|s| s.get("enum")).and_then(Value::as_array))
        && options.iter().any(|o| o.as_str() == Some(m.as_str()))
    {
        value["state"] = json!(m);
    }
    store_value(&mut store, ws, kind, id, value.clone())?;
    drop(store);
    emit_update(ctx, ws, kind, &existing, &value);
    Ok(if kind.id == IdType::Uuid { ok_json(body) } else { ok_empty() })
}

fn set_archived_many(
    ctx: &Ctx<'_>,
    ws: i64,
    kind: &'static Kind,
    ids: &[Id],
    archived: bool,
) -> Result<Response, ApiError> {
    let mut changed = Vec::new();
    {
        let mut store = ctx.state.inner.store.lock();
        for id in ids {
            if store.get(ws, kind.name, *id).is_none() {
                return Err(ApiError::NotFound);
            }
        }
        for id in ids {
            let Some(item) = store.collection_mut(ws, kind.name).and_then(|c| c.items.get_mut(id)) else { continue };
            let before = item.value.clone();
            let now = now_string();
            item.value["archived"] = json!(archived);
            let date_field = if kind.name == "DataProcessings" { "dateArchived" } else { "archivedDate" };
            item.value[date_field] = if archived { json!(now) } else { Value::Null };
            item.value["dateUpdate"] = json!(now);
            changed.push((before, item.value.clone()));
        }
    }
    if let Some(ev) = kind.events {
        for (before, after) in changed {
            if archived && before["archived"] != json!(true) {
                ctx.state.emit(ws, ev.archived, render_output(ctx, ws, kind, &after));
            } else {
                emit_update(ctx, ws, kind, &before, &after);
            }
        }
    }
    Ok(ok_empty())
}

fn close(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind, id: Id) -> Result<Response, ApiError> {
    // Body undocumented (EPLIST-2024): accept an optional {closedReason, closedReasonDescription}.
    let body = ctx.json_opt()?.unwrap_or(Value::Null);
    let reason = match body.get("closedReason") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let mut v = v.clone();
            let mut errors = Default::default();
            let schema = json!({"$ref": "#/components/schemas/ClosedReason"});
            spec().validate(&schema, &mut v, "closedReason", &mut errors);
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors));
            }
            Some(v)
        }
    };
    let mut store = ctx.state.inner.store.lock();
    let existing = store.get(ws, kind.name, id).cloned().ok_or(ApiError::NotFound)?;
    let mut value = existing.clone();
    let now = now_string();
    value["state"] = json!("Closed");
    value["dateClosed"] = json!(now);
    value["dateUpdate"] = json!(now);
    if let Some(r) = reason {
        value["closedReason"] = r;
    }
    if let Some(d) = body.get("closedReasonDescription").and_then(Value::as_str) {
        value["closedReasonDescription"] = json!(d);
    }
    store_value(&mut store, ws, kind, id, value.clone())?;
    drop(store);
    emit_update(ctx, ws, kind, &existing, &value);
    Ok(ok_empty())
}
