//! A fake NetBox (feature `fake`) for tests and the quickstart, written from NetBox's public REST
//! API documentation (netboxlabs.com/docs/netbox: "REST API Overview", "REST API Filtering",
//! "Authentication"): list endpoints `/api/dcim/devices/`, `/api/virtualization/virtual-machines/`,
//! `/api/dcim/sites/`, `/api/tenancy/tenants/` answering `{count, next, previous, results}` with
//! `limit`/`offset` pagination (default page 50, `MAX_PAGE_SIZE` 1000, `limit=0` = the maximum) and
//! absolute `next`/`previous` links; `ordering` (comma-separated, `-` for descending); lookup filters
//! `last_updated__gte`, `last_updated__gt`, `id__gt`, `id__lt`, and `status`, `tag`, `site_id`,
//! `tenant_id`, `role`; authentication `Authorization: Token <key>` (and `Bearer` for v2 tokens)
//! with `403 {"detail": "Invalid token"}` otherwise; the change log (`/api/core/object-changes/`,
//! `/api/extras/object-changes/` for 3.x) with `action`, `changed_object_type`, `time__gte` and
//! `ordering=time,id`, written on every delete (NetBox's session authentication comes first,
//! so DRF answers 403, not 401). Like django-filter, unknown query parameters are ignored.
//!
//! NetBox has no rate limit of its own; the 429 with `Retry-After` and DRF's throttling message
//! here is what a throttling reverse proxy or DRF throttle class in front of it answers.
//! Times are `last_updated` with microseconds from a simulated clock that ticks one second per
//! write. [`FakeNetBox::set_public_base`] makes `next` links name another host, as NetBox does
//! behind a TLS-terminating proxy.

use std::collections::{HashMap, HashSet};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use dastra_connect_core::source::StreamKind;
use dastra_connect_core::testkit::fake::{self, Fake, RecordStore, authorization, id_of, offset_page, retry_after};
use serde_json::{Value, json};

use crate::config::NetBoxObject;

pub use dastra_connect_core::testkit::fake::Logged;

/// Sample data shipped with the crate (`samples/*.json`).
pub const SAMPLES: &[(NetBoxObject, &str)] = &[
    (NetBoxObject::Tenants, include_str!("../samples/tenants.json")),
    (NetBoxObject::Sites, include_str!("../samples/sites.json")),
    (NetBoxObject::Devices, include_str!("../samples/devices.json")),
    (NetBoxObject::VirtualMachines, include_str!("../samples/virtual_machines.json")),
];

/// NetBox's own part of the state.
#[derive(Default)]
pub struct NetBoxState {
    objects: RecordStore<NetBoxObject>,
    /// The change log (`action=delete` entries only: the source reads nothing else).
    changes: Vec<Value>,
    tokens: HashSet<String>,
    public_base: Option<String>,
}

dastra_connect_core::fake_handle!(
    /// The fake's state; clone it freely (shared). Derefs to the [`Fake`] skeleton (clock,
    /// throttling, log).
    FakeNetBox(NetBoxState),
    "fake NetBox"
);

/// The token the fake accepts by default.
pub const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

fn nb_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// One second and a few microseconds per write: distinct, increasing `last_updated`.
fn tick(s: &mut fake::FakeStore<NetBoxState>) -> String {
    nb_time(s.tick(chrono::Duration::microseconds(1_000_123)))
}

impl FakeNetBox {
    /// An empty NetBox accepting [`TOKEN`].
    pub fn new() -> FakeNetBox {
        let start = parse_time("2025-06-01T09:00:00Z").unwrap_or_default();
        let mut state = NetBoxState::default();
        state.tokens.insert(TOKEN.into());
        FakeNetBox(Fake::new(start, 1000, state))
    }

    /// A NetBox holding the bundled samples.
    pub fn with_samples() -> FakeNetBox {
        let f = FakeNetBox::new();
        f.lock().sys.objects.load_samples(SAMPLES);
        f
    }

    /// Accepts another token.
    pub fn add_token(&self, token: &str) {
        self.lock().sys.tokens.insert(token.into());
    }

    /// `next`/`previous` links use this base instead of the request's host.
    pub fn set_public_base(&self, base: &str) {
        self.lock().sys.public_base = Some(base.trim_end_matches('/').to_owned());
    }

    /// Creates an object (sets `id`, `url`, `display`, `created`, `last_updated`). Returns its id.
    pub fn insert(&self, object: NetBoxObject, mut record: Value) -> u64 {
        let mut s = self.lock();
        let now = tick(&mut s);
        let id = s.next_id();
        if let Some(obj) = record.as_object_mut() {
            let display = obj.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
            obj.insert("id".into(), json!(id));
            obj.insert("url".into(), json!(format!("https://netbox.example.com/{}{id}/", object.path())));
            obj.insert("display".into(), json!(display));
            obj.insert("created".into(), json!(now));
            obj.insert("last_updated".into(), json!(now));
        }
        s.sys.objects.push(object, record);
        id
    }

    /// Sets fields of an object (a `PATCH`): `last_updated` becomes now. False when absent.
    pub fn update(&self, object: NetBoxObject, id: u64, fields: Value) -> bool {
        let mut s = self.lock();
        let now = tick(&mut s);
        s.sys.objects.update(object, id, &fields, &[("last_updated", json!(now))])
    }

    /// Deletes an object and records an `action=delete` object change. False when absent.
    pub fn delete(&self, object: NetBoxObject, id: u64) -> bool {
        self.remove(object, id, true)
    }

    /// Deletes an object whose change record is gone (pruned by `CHANGELOG_RETENTION`, or deleted
    /// by a script that bypassed the change log). False when absent.
    pub fn delete_unlogged(&self, object: NetBoxObject, id: u64) -> bool {
        self.remove(object, id, false)
    }

    fn remove(&self, object: NetBoxObject, id: u64, logged: bool) -> bool {
        let mut s = self.lock();
        let now = tick(&mut s);
        let Some(gone) = s.sys.objects.remove(object, id) else { return false };
        if logged {
            let change_id = s.next_id();
            let change = json!({
                "id": change_id, "url": format!("https://netbox.example.com/api/core/object-changes/{change_id}/"),
                "time": now, "user_name": "admin", "request_id": format!("6b3c0b1e-0000-4000-8000-{change_id:012}"),
                "action": {"value": "delete", "label": "Deleted"}, "changed_object_type": object.content_type(),
                "changed_object_id": id, "object_repr": gone.get("name").cloned().unwrap_or(Value::Null),
                "prechange_data": gone, "postchange_data": null
            });
            s.sys.changes.push(change);
        }
        true
    }

    /// Every object of a type.
    pub fn records(&self, object: NetBoxObject) -> Vec<Value> {
        self.lock().sys.objects.list(object)
    }

    /// An object by name.
    pub fn by_name(&self, object: NetBoxObject, name: &str) -> Option<Value> {
        self.records(object).into_iter().find(|r| r["name"] == name)
    }

    /// The router.
    pub fn router(&self) -> Router {
        let mut r = Router::new();
        for &o in NetBoxObject::all() {
            r = r.route(&format!("/{}", o.path()), get(move |st, h, u, q| list(Some(o), st, h, u, q)));
        }
        for path in ["/api/core/object-changes/", "/api/extras/object-changes/"] {
            r = r.route(path, get(|st, h, u, q| list(None, st, h, u, q)));
        }
        self.logged(r.with_state(self.clone()))
    }
}

fn detail(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({"detail": text}))).into_response()
}

/// A value of a field for ordering and filters.
fn field<'a>(r: &'a Value, name: &str) -> &'a Value {
    r.get(name).unwrap_or(&Value::Null)
}

fn cmp_field(a: &Value, b: &Value, name: &str) -> std::cmp::Ordering {
    match name {
        "id" => id_of(a).cmp(&id_of(b)),
        "last_updated" | "created" | "time" => {
            let t = |v: &Value| field(v, name).as_str().and_then(parse_time);
            t(a).cmp(&t(b))
        }
        _ => field(a, name).as_str().unwrap_or("").cmp(field(b, name).as_str().unwrap_or("")),
    }
}

fn matches(r: &Value, key: &str, value: &str) -> Result<bool, String> {
    let time = |v: &str| parse_time(v).ok_or_else(|| format!("Enter a valid date/time: {v}"));
    let rec_time = || field(r, "last_updated").as_str().and_then(parse_time);
    let num = |v: &str| v.parse::<u64>().map_err(|_| format!("Enter a number: {v}"));
    Ok(match key {
        "last_updated__gte" => {
            let v = time(value)?;
            rec_time().is_some_and(|t| t >= v)
        }
        "last_updated__gt" => {
            let v = time(value)?;
            rec_time().is_some_and(|t| t > v)
        }
        "id__gt" => id_of(r) > num(value)?,
        "id__lt" => id_of(r) < num(value)?,
        "id" => id_of(r) == num(value)?,
        "time__gte" => {
            let v = time(value)?;
            field(r, "time").as_str().and_then(parse_time).is_some_and(|t| t >= v)
        }
        "action" => field(r, "action").get("value").and_then(Value::as_str) == Some(value),
        "changed_object_type" => field(r, "changed_object_type").as_str() == Some(value),
        "status" => field(r, "status").get("value").and_then(Value::as_str) == Some(value),
        "tag" => field(r, "tags").as_array().is_some_and(|t| t.iter().any(|t| t["slug"] == value)),
        "site_id" => field(r, "site").get("id").and_then(Value::as_u64) == Some(num(value)?),
        "tenant_id" => field(r, "tenant").get("id").and_then(Value::as_u64) == Some(num(value)?),
        "role" => field(r, "role").get("slug").and_then(Value::as_str) == Some(value),
        _ => true,
    })
}

async fn list(
    object: Option<NetBoxObject>,
    State(fake): State<FakeNetBox>,
    headers: HeaderMap,
    uri: Uri,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    answer(object, &fake, &headers, &uri, &params)
}

fn answer(
    object: Option<NetBoxObject>,
    fake: &FakeNetBox,
    headers: &HeaderMap,
    uri: &Uri,
    params: &HashMap<String, String>,
) -> Response {
    let mut s = fake.lock();
    let token = authorization(headers, "Token").or_else(|| authorization(headers, "Bearer"));
    match token {
        None => return detail(StatusCode::FORBIDDEN, "Authentication credentials were not provided."),
        Some(t) if !s.sys.tokens.contains(t.trim()) => return detail(StatusCode::FORBIDDEN, "Invalid token"),
        Some(_) => {}
    }
    if s.take_throttle() {
        return retry_after(detail(
            StatusCode::TOO_MANY_REQUESTS,
            "Request was throttled. Expected available in 1 second.",
        ));
    }
    // `None`: the change log.
    let mut rows: Vec<Value> = match object {
        Some(o) => s.sys.objects.list(o),
        None => s.sys.changes.clone(),
    };
    for (k, v) in params {
        if matches!(k.as_str(), "limit" | "offset" | "ordering" | "brief" | "format") {
            continue;
        }
        let mut kept = Vec::with_capacity(rows.len());
        for r in rows {
            match matches(&r, k, v) {
                Ok(true) => kept.push(r),
                Ok(false) => {}
                Err(e) => return (StatusCode::BAD_REQUEST, axum::Json(json!({k.clone(): [e]}))).into_response(),
            }
        }
        rows = kept;
    }
    let ordering: Vec<String> =
        params.get("ordering").map(|o| o.split(',').map(str::to_owned).collect()).unwrap_or_default();
    rows.sort_by(|a, b| {
        for o in ordering.iter().map(String::as_str).chain(["id"]) {
            let (name, desc) = o.strip_prefix('-').map(|n| (n, true)).unwrap_or((o, false));
            let c = cmp_field(a, b, name);
            let c = if desc { c.reverse() } else { c };
            if c != std::cmp::Ordering::Equal {
                return c;
            }
        }
        std::cmp::Ordering::Equal
    });
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => 50,
        Some(Ok(0)) => 1000,
        Some(Ok(n)) => n.min(1000),
        Some(Err(_)) => 50,
    };
    let offset = params.get("offset").and_then(|o| o.parse::<usize>().ok()).unwrap_or(0);
    let count = rows.len();
    let page = offset_page(count, offset, limit);
    let results: Vec<Value> = rows.drain(page.rows.clone()).collect();
    let base = s.sys.public_base.clone().unwrap_or_else(|| {
        let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        format!("http://{host}")
    });
    let link = |off: usize| {
        let mut q: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| *k != "offset" && *k != "limit")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        q.sort();
        q.push(("limit".into(), limit.to_string()));
        q.push(("offset".into(), off.to_string()));
        let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(q).finish();
        format!("{base}{}?{query}", uri.path())
    };
    let next = page.next.map(link);
    let previous = page.previous.map(link);
    axum::Json(json!({"count": count, "next": next, "previous": previous, "results": results})).into_response()
}
