//! `GenericRelationships` (labelled links between referential objects, string ids) and
//! `DataProcessingRelationships` (processing ↔ processing links, docs/dastra-api.md §3.11, §3.12, §7 #18).

use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::crud::{parse_id, render};
use super::{Ctx, ok_empty, ok_json};
use crate::entities::Kind;
use crate::error::ApiError;
use crate::openapi::spec;
use crate::store::{Id, Item, now_string};

fn validate(schema: &str, body: &mut Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::BadRequest("The request body must be a JSON object.".into()));
    }
    spec().validate_named(schema, body).map_err(ApiError::Validation)
}

/// `…/GenericRelationships[/{id}]`.
pub(crate) fn generic(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind, rest: &[&str]) -> Result<Response, ApiError> {
    match (rest, &ctx.method) {
        ([], &Method::GET) => {
            let object_ids = ctx.params("objectIds");
            let object_type = ctx.param("objectType").filter(|s| !s.is_empty());
            let target_type = ctx.param("targetType").filter(|s| !s.is_empty());
            for (name, value) in [("objectType", object_type), ("targetType", target_type)] {
                if let Some(v) = value {
                    let mut v = json!(v);
                    let mut errors = Default::default();
                    spec().validate(
                        &json!({"$ref": "#/components/schemas/RelationShipObjectType"}),
                        &mut v,
                        name,
                        &mut errors,
                    );
                    if !errors.is_empty() {
                        return Err(ApiError::Validation(errors));
                    }
                }
            }
            let store = ctx.state.inner.store.lock();
            let c = store.collection(ws, kind.name).ok_or(ApiError::NotFound)?;
            let mut items: Vec<&Item> = c
                .items
                .values()
                .filter(|i| {
                    let v = &i.value;
                    let origin = v["originId"].as_str().unwrap_or("");
                    let target = v["target"]["id"].as_str().unwrap_or("");
                    (object_ids.is_empty() || object_ids.iter().any(|o| *o == origin || *o == target))
                        && object_type.is_none_or(|t| {
                            v["originType"].as_str().is_some_and(|o| o.eq_ignore_ascii_case(t))
                                || v["target"]["type"].as_str().is_some_and(|o| o.eq_ignore_ascii_case(t))
                        })
                        && target_type.is_none_or(|t| {
                            v["target"]["type"].as_str().is_some_and(|o| o.eq_ignore_ascii_case(t))
                                || v["originType"].as_str().is_some_and(|o| o.eq_ignore_ascii_case(t))
                        })
                })
                .collect();
            items.sort_by_key(|i| i.seq);
            Ok(ok_json(Value::Array(items.iter().map(|i| render(kind, kind.output_schema, &i.value, false)).collect())))
        }
        ([], &Method::POST) => {
            let mut body = ctx.json()?;
            validate(kind.create_schema, &mut body)?;
            let origin_type = body.get("originType").cloned().unwrap_or(json!("Actor"));
            let target_type = body.get("targetType").cloned().unwrap_or(json!("Actor"));
            let mut targets: Vec<(String, Value)> = body
                .get("targetIds")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(|t| (t.to_string(), Value::Null)).collect())
                .unwrap_or_default();
            let mut store = ctx.state.inner.store.lock();
            if body.get("create").and_then(Value::as_bool) == Some(true)
                && let Some(label) = body.get("newLabel").and_then(Value::as_str)
            {
                // "create the target on the fly": the emulator records the link to a new named target.
                targets.push((store.next_uuid().to_string(), json!(label)));
            }
            let mut created = Vec::new();
            for (target, label) in targets {
                let id = Id::Uuid(store.next_uuid());
                let value = json!({
                    "id": id.to_json(),
                    "originType": origin_type,
                    "originId": body["originId"],
                    "target": {"id": target, "type": target_type, "label": label, "deleted": false, "archived": false},
                    "reverse": body.get("reverse").cloned().unwrap_or(json!(false)),
                    "label": body.get("label").cloned().unwrap_or(Value::Null),
                    "description": body.get("description").cloned().unwrap_or(Value::Null),
                    "dateCreation": now_string(),
                });
                let seq = store.next_seq();
                store
                    .collection_mut(ws, kind.name)
                    .ok_or(ApiError::NotFound)?
                    .items
                    .insert(id, Item { seq, value: value.clone() });
                created.push(value);
            }
            drop(store);
            if let Some(ev) = kind.events {
                for v in created {
                    ctx.state.emit(ws, ev.created, render(kind, kind.output_schema, &v, false));
                }
            }
            Ok(ok_empty())
        }
        ([id], &Method::PUT) => {
            let id = parse_id(kind, id)?;
            let mut body = ctx.json()?;
            validate(kind.update_schema, &mut body)?;
            let mut store = ctx.state.inner.store.lock();
            let item =
                store.collection_mut(ws, kind.name).and_then(|c| c.items.get_mut(&id)).ok_or(ApiError::NotFound)?;
            for key in ["originType", "originId", "target", "reverse", "label", "description"] {
                item.value[key] = body.get(key).cloned().unwrap_or(Value::Null);
            }
            if item.value["originType"].is_null() {
                item.value["originType"] = json!("Actor");
            }
            if item.value["reverse"].is_null() {
                item.value["reverse"] = json!(false);
            }
            Ok(ok_empty())
        }
        ([id], &Method::DELETE) => {
            let id = parse_id(kind, id)?;
            let removed = {
                let mut store = ctx.state.inner.store.lock();
                store.collection_mut(ws, kind.name).and_then(|c| c.items.remove(&id)).ok_or(ApiError::NotFound)?
            };
            if let Some(ev) = kind.events {
                ctx.state.emit(
                    ws,
                    ev.deleted.unwrap_or(ev.archived),
                    render(kind, kind.output_schema, &removed.value, false),
                );
            }
            Ok(ok_empty())
        }
        ([], _) | ([_], _) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}

fn light(processing: &Value, ws: i64) -> Value {
    json!({
        "id": processing["id"], "label": processing["label"], "ref": processing.get("ref").cloned().unwrap_or(Value::Null),
        "description": processing.get("description").cloned().unwrap_or(Value::Null),
        "workspaceId": ws, "archived": processing["archived"], "dateUpdate": processing["dateUpdate"],
        "dateCreation": processing["dateCreation"], "areaId": processing["areaId"], "processingType": processing["processingType"],
    })
}

/// `…/DataProcessingRelationships/{id}` and `…/count/{id}`.
pub(crate) fn processing(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind, rest: &[&str]) -> Result<Response, ApiError> {
    let dp = |s: &str| Id::parse(crate::entities::IdType::Uuid, s).ok_or(ApiError::NotFound);
    let related = |store: &crate::store::Store, id: Id| -> Vec<Value> {
        let text = id.to_string();
        let mut items: Vec<&Item> = store
            .collection(ws, kind.name)
            .map(|c| c.items.values().filter(|i| i.value["sourceId"].as_str() == Some(text.as_str())).collect())
            .unwrap_or_default();
        items.sort_by_key(|i| i.seq);
        items.iter().map(|i| render(kind, kind.output_schema, &i.value, false)).collect()
    };
    match (rest, &ctx.method) {
        ([count, id], &Method::GET) if count.eq_ignore_ascii_case("count") => {
            let id = dp(id)?;
            let store = ctx.state.inner.store.lock();
            store.get(ws, "DataProcessings", id).ok_or(ApiError::NotFound)?;
            Ok(ok_json(json!(related(&store, id).len())))
        }
        ([id], &Method::GET) => {
            let id = dp(id)?;
            let store = ctx.state.inner.store.lock();
            store.get(ws, "DataProcessings", id).ok_or(ApiError::NotFound)?;
            Ok(ok_json(Value::Array(related(&store, id))))
        }
        ([id], &Method::POST) => {
            // Guess of docs/dastra-api.md §7 #18: {id} = an existing relationship (update) or the source
            // processing (create); `element.id` = the related processing.
            let id = dp(id)?;
            let mut body = ctx.json()?;
            validate(kind.create_schema, &mut body)?;
            let mut store = ctx.state.inner.store.lock();
            let target_id = body
                .pointer("/element/id")
                .and_then(Value::as_str)
                .and_then(|s| Id::parse(crate::entities::IdType::Uuid, s));
            let target = match target_id {
                Some(t) => Some(store.get(ws, "DataProcessings", t).cloned().ok_or_else(|| {
                    ApiError::field("element.id", format!("The data processing {t} does not exist."))
                })?),
                None => None,
            };
            let relation_type = body.get("relationShipType").cloned().unwrap_or(json!("Related"));
            if let Some(item) = store.collection_mut(ws, kind.name).and_then(|c| c.items.get_mut(&id)) {
                item.value["relationShipType"] = relation_type;
                if let Some(t) = &target {
                    item.value["element"] = light(t, ws);
                }
                for key in ["label", "url", "areaId"] {
                    if let Some(v) = body.get(key) {
                        item.value[key] = v.clone();
                    }
                }
                let out = render(kind, kind.output_schema, &item.value, false);
                return Ok(ok_json(out));
            }
            store.get(ws, "DataProcessings", id).ok_or(ApiError::NotFound)?;
            let target = target
                .ok_or_else(|| ApiError::field("element.id", "The related processing (element.id) is required."))?;
            let rel_id = Id::Uuid(store.next_uuid());
            let value = json!({
                "id": rel_id.to_json(),
                "sourceId": id.to_string(),
                "element": light(&target, ws),
                "relationShipType": relation_type,
                "areaId": body.get("areaId").cloned().unwrap_or(Value::Null),
                "label": body.get("label").cloned().unwrap_or(Value::Null),
                "url": body.get("url").cloned().unwrap_or(Value::Null),
                "processingType": target["processingType"],
                "workspaceId": ws,
                "create": false,
                "dateCreation": now_string(),
            });
            let seq = store.next_seq();
            store
                .collection_mut(ws, kind.name)
                .ok_or(ApiError::NotFound)?
                .items
                .insert(rel_id, Item { seq, value: value.clone() });
            drop(store);
            let out = render(kind, kind.output_schema, &value, false);
            ctx.state.emit(ws, "ProcessingAddRelation", out.clone());
            Ok(ok_json(out))
        }
        ([id], &Method::DELETE) => {
            let id = parse_id(kind, id)?;
            let removed = {
                let mut store = ctx.state.inner.store.lock();
                store.collection_mut(ws, kind.name).and_then(|c| c.items.remove(&id)).ok_or(ApiError::NotFound)?
            };
            ctx.state.emit(ws, "ProcessingRemoveRelation", render(kind, kind.output_schema, &removed.value, false));
            Ok(ok_empty())
        }
        ([_], _) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    }
}
