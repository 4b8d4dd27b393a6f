//! `GET <collection>`: dedicated parameters, `q`, `filters`, `sortBy`/`asc`, and paging with
//! `page` (1-based), `size` (default 20, clamped to 500) and `skip` (docs/dastra-api.md §2.2, §7 #4).

use serde_json::{Value, json};

use super::Ctx;
use super::crud::render;
use crate::entities::{IdType, Kind, ListShape, ParamMode};
use crate::error::ApiError;
use crate::filters::{self, lookup};
use crate::openapi::spec;
use crate::store::Id;

fn int_param(ctx: &Ctx<'_>, name: &str) -> Result<Option<i64>, ApiError> {
    match ctx.param(name) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i32>()
            .map(|i| Some(i64::from(i)))
            .map_err(|_| ApiError::field(name, format!("The value '{v}' is not valid for {name}."))),
    }
}

fn bool_param(ctx: &Ctx<'_>, name: &str) -> Result<Option<bool>, ApiError> {
    match ctx.param(name) {
        None | Some("") => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(ApiError::field(name, format!("The value '{v}' is not valid for {name}."))),
    }
}

/// Whether `name` is a property of the family (document properties, extensions, customFields).
fn known_field(kind: &Kind, name: &str) -> bool {
    let output = spec().properties(kind.output_schema);
    let update = spec().properties(kind.update_schema);
    output.iter().chain(update.iter()).any(|p| p.eq_ignore_ascii_case(name))
        || kind.extensions.iter().any(|(e, _)| e.eq_ignore_ascii_case(name))
        || (kind.custom_fields && name.eq_ignore_ascii_case("customFields"))
}

fn param_matches(value: Option<&Value>, wanted: &[&str], mode: ParamMode) -> bool {
    let eq = |v: &Value, w: &str| match v {
        Value::String(s) => s.eq_ignore_ascii_case(w),
        Value::Number(n) => n.to_string() == w,
        Value::Bool(b) => b.to_string().eq_ignore_ascii_case(w),
        _ => false,
    };
    let Some(v) = value else { return false };
    match mode {
        ParamMode::Equal | ParamMode::AnyOf => wanted.iter().any(|w| eq(v, w)),
        ParamMode::ArrayContainsAny => v.as_array().is_some_and(|a| a.iter().any(|i| wanted.iter().any(|w| eq(i, w)))),
    }
}

/// Selects, sorts and pages the items of a family.
pub(crate) fn list(ctx: &Ctx<'_>, ws: i64, kind: &'static Kind) -> Result<Value, ApiError> {
    let page = int_param(ctx, "page")?.unwrap_or(1).max(1);
    let size = match int_param(ctx, "size")? {
        Some(s) if s >= 1 => s.min(500),
        _ => 20,
    };
    let skip = int_param(ctx, "skip")?.map(|s| s.max(0));
    let asc = bool_param(ctx, "asc")?.unwrap_or(true);
    let sort_by = ctx.param("sortBy").filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(s) = &sort_by
        && !known_field(kind, s)
    {
        return Err(ApiError::field("sortBy", format!("Unknown field '{s}'.")));
    }
    let filter = match ctx.param("filters").filter(|f| !f.trim().is_empty()) {
        Some(text) => Some(filters::parse(text, &|f| known_field(kind, f)).map_err(|e| ApiError::field("filters", e))?),
        None => None,
    };
    let q = ctx.param("q").map(str::to_lowercase).filter(|q| !q.is_empty());
    let archived_param = kind.params.iter().any(|(p, _, _)| *p == "archived");
    let archived = if archived_param { bool_param(ctx, "archived")? } else { None };
    for (param, _, mode) in kind.params {
        if *mode == ParamMode::Equal && matches!(*param, "areaId" | "parentId") {
            int_param(ctx, param)?;
        }
    }
    if kind.params.iter().any(|(p, _, _)| *p == "ids") {
        for id in ctx.params("ids") {
            let ty = kind.id;
            if Id::parse(ty, id).is_none() {
                let what = if ty == IdType::Int { "an integer" } else { "a uuid" };
                return Err(ApiError::field("ids", format!("The value '{id}' is not {what}.")));
            }
        }
    }

    let store = ctx.state.inner.store.lock();
    let ws_ref = store.workspaces.get(&ws).ok_or(ApiError::NotFound)?;
    let collection = ws_ref.collections.get(kind.name).ok_or(ApiError::NotFound)?;
    let mut selected: Vec<(u64, &Value)> = collection
        .items
        .values()
        .filter(|item| {
            let v = &item.value;
            // Archived items are listed only when asked for (docs/dastra-api.md §7 #17).
            if archived_param && v["archived"].as_bool().unwrap_or(false) != archived.unwrap_or(false) {
                return false;
            }
            kind.params.iter().all(|(param, field, mode)| {
                if *param == "archived" {
                    return true;
                }
                let wanted: Vec<&str> = ctx.params(param).into_iter().filter(|w| !w.is_empty()).collect();
                wanted.is_empty() || param_matches(lookup(v, field), &wanted, *mode)
            })
        })
        .filter(|item| filter.as_ref().is_none_or(|f| f.matches(&item.value)))
        .filter(|item| {
            q.as_ref().is_none_or(|q| {
                item.value.as_object().is_some_and(|o| {
                    o.values().any(|v| v.as_str().is_some_and(|s| s.to_lowercase().contains(q.as_str())))
                })
            })
        })
        .map(|item| (item.seq, &item.value))
        .collect();

    // Default order: ascending id (int ids) / creation order (uuid ids).
    if let Some(field) = &sort_by {
        selected.sort_by(|a, b| compare(lookup(a.1, field), lookup(b.1, field)));
    }
    if sort_by.is_none() && kind.id == IdType::Uuid {
        selected.sort_by_key(|(seq, _)| *seq);
    }
    if !asc {
        selected.reverse();
    }
    let total = selected.len();
    let offset = usize::try_from(skip.unwrap_or((page - 1) * size)).unwrap_or(0);
    let take = usize::try_from(size).unwrap_or(20);
    let has_cf = ws_ref.custom_fields.contains_key(kind.name);
    let shape = kind.list;
    let item_schema = match shape {
        ListShape::Paged(s) | ListShape::Array(s) => s,
    };
    let render_item = |v: &Value| render(kind, item_schema, v, has_cf);
    Ok(match shape {
        ListShape::Paged(_) => {
            let items: Vec<Value> = selected.iter().skip(offset).take(take).map(|(_, v)| render_item(v)).collect();
            json!({ "items": items, "total": total, "size": size, "page": page })
        }
        ListShape::Array(_) => Value::Array(selected.iter().map(|(_, v)| render_item(v)).collect()),
    })
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Less,
        (_, None | Some(Value::Null)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}
