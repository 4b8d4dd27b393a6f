//! A fake OpenMetadata (feature `fake`) for tests and the quickstart, answering the shapes of
//! OpenMetadata's published JSON schemas and REST API (`docs/openmetadata-api.md`): entity lists
//! `/api/v1/tables`, `/api/v1/services/databaseServices`, `/api/v1/pipelines` answering `{data,
//! paging: {after, total}}` ordered by fully qualified name, with `limit` (default 10) and an opaque
//! `after` cursor, `fields` (entity and column `tags` only when asked for), `include`
//! (`non-deleted` by default, `deleted`, `all`) and the `database` / `service` filters; one entity
//! `/api/v1/<entities>/{id}` (404 when absent or soft-deleted, unless `include`); the change events
//! feed `/api/v1/events?entityCreated=<types>&entityUpdated=…&entityRestored=…&entitySoftDeleted=…
//! &entityDeleted=…&timestamp=<ms>` (`*` for every type; events at or after the timestamp, oldest
//! first); lineage `/api/v1/lineage/{type}/{id}` (`{entity, nodes, upstreamEdges, downstreamEdges}`,
//! edges by entity id). Authentication: `Authorization: Bearer <bot JWT>`, else 401
//! `{"code": 401, "message": …}`. Every write ticks a simulated clock one second (`updatedAt` in
//! epoch milliseconds), bumps `version` by 0.1 and records a change event.

use std::collections::{BTreeMap, HashSet};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::DateTime;
use dastra_connect_core::source::StreamKind;
use dastra_connect_core::testkit::fake::{Fake, authorization, retry_after};
use serde_json::{Value, json};

use crate::config::OmEntity;

pub use dastra_connect_core::testkit::fake::Logged;

/// Sample data shipped with the crate (`samples/*.json`).
pub const SAMPLES: &[(OmEntity, &str)] = &[
    (OmEntity::DatabaseServices, include_str!("../samples/database_services.json")),
    (OmEntity::Tables, include_str!("../samples/tables.json")),
    (OmEntity::Pipelines, include_str!("../samples/pipelines.json")),
];

/// The sample lineage: `{pipeline, upstream: [table FQN], downstream: [table FQN]}`.
pub const SAMPLE_LINEAGE: &str = include_str!("../samples/lineage.json");

/// A bot JWT the fake accepts by default (an unsigned example token; the fake does not verify it).
pub const TOKEN: &str =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJpbmdlc3Rpb24tYm90IiwiaXNCb3QiOnRydWV9.c2lnbmF0dXJl";

/// OpenMetadata's own part of the state.
#[derive(Default)]
pub struct OmState {
    entities: BTreeMap<OmEntity, Vec<Value>>,
    events: Vec<Value>,
    /// Lineage edges `(from id, to id)`.
    edges: Vec<(String, String)>,
    tokens: HashSet<String>,
}

dastra_connect_core::fake_handle!(
    /// The fake's state; clone it freely (shared). Derefs to the [`Fake`] skeleton (clock,
    /// throttling, log).
    FakeOpenMetadata(OmState),
    "fake OpenMetadata"
);

fn uuid_from(n: u64) -> String {
    format!("{:08x}-0c3e-4a5b-9d7f-{n:012x}", n.wrapping_mul(2_654_435_761) & 0xffff_ffff)
}

/// A stable uuid (version 4 layout) for a reference to an entity the fake does not hold.
fn ref_uuid(entity_type: &str, name: &str) -> String {
    // FNV-1a: deterministic, no dependency.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in entity_type.bytes().chain([b':']).chain(name.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (h >> 20) & 0xfff,
        h & 0xffff_ffff_ffff
    )
}

fn fqn(v: &Value) -> &str {
    v.get("fullyQualifiedName").and_then(Value::as_str).unwrap_or("")
}

fn entity_ref(entity: OmEntity, v: &Value) -> Value {
    json!({"id": v["id"], "type": entity.entity_type(), "name": v["name"], "fullyQualifiedName": v["fullyQualifiedName"],
           "deleted": v["deleted"]})
}

impl FakeOpenMetadata {
    /// An empty OpenMetadata accepting [`TOKEN`].
    pub fn new() -> FakeOpenMetadata {
        let start = DateTime::parse_from_rfc3339("2025-06-01T09:00:00Z").map(|t| t.to_utc()).unwrap_or_default();
        let mut state = OmState::default();
        state.tokens.insert(TOKEN.into());
        FakeOpenMetadata(Fake::new(start, 0, state))
    }

    /// An OpenMetadata holding the bundled samples.
    pub fn with_samples() -> FakeOpenMetadata {
        let f = FakeOpenMetadata::new();
        for (entity, text) in SAMPLES {
            let list: Vec<Value> = serde_json::from_str(text).unwrap_or_default();
            for e in list {
                f.insert(*entity, e);
            }
        }
        let lineage: Vec<Value> = serde_json::from_str(SAMPLE_LINEAGE).unwrap_or_default();
        for l in lineage {
            let names = |k: &str| -> Vec<String> {
                l[k].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
            };
            let p = l["pipeline"].as_str().unwrap_or("");
            f.add_lineage(p, &names("upstream"), &names("downstream"));
        }
        f
    }

    fn event(
        s: &mut dastra_connect_core::testkit::fake::FakeStore<OmState>,
        ty: &str,
        entity: OmEntity,
        v: &Value,
        prev: f64,
    ) {
        let id = s.next_id();
        let e = json!({
            "id": uuid_from(id), "eventType": ty, "entityType": entity.entity_type(), "entityId": v["id"],
            "entityFullyQualifiedName": v["fullyQualifiedName"], "previousVersion": prev,
            "currentVersion": v["version"], "userName": "ingestion-bot", "timestamp": v["updatedAt"]
        });
        s.sys.events.push(e);
    }

    /// Creates an entity (sets `id`, `href`, `version` 0.1, `updatedAt`, `updatedBy`, `deleted`;
    /// `fullyQualifiedName` defaults to `name`; columns get their FQN) and records `entityCreated`.
    /// Returns its id.
    pub fn insert(&self, entity: OmEntity, mut v: Value) -> String {
        let mut s = self.lock();
        let now = s.tick(chrono::Duration::seconds(1)).timestamp_millis();
        let n = s.next_id();
        let id = uuid_from(n);
        if let Some(o) = v.as_object_mut() {
            let name = o.get("name").cloned().unwrap_or(Value::Null);
            o.entry("fullyQualifiedName").or_insert(name);
            o.insert("id".into(), json!(id));
            o.insert("href".into(), json!(format!("http://openmetadata:8585/{}/{id}", entity.path())));
            o.insert("version".into(), json!(0.1));
            o.insert("updatedAt".into(), json!(now));
            o.insert("updatedBy".into(), json!("ingestion-bot"));
            o.insert("deleted".into(), json!(false));
        }
        // References (`service`, `database`, `databaseSchema`) carry the referred entity's uuid:
        // the database service's own when the fake holds it, else one derived from the reference's
        // FQN (the same reference always gets the same id).
        for field in ["service", "database", "databaseSchema"] {
            let Some(r) = v.get(field).filter(|r| r.is_object()).cloned() else { continue };
            let name = r["fullyQualifiedName"].as_str().or_else(|| r["name"].as_str()).unwrap_or("").to_owned();
            let known = s
                .sys
                .entities
                .get(&OmEntity::DatabaseServices)
                .and_then(|l| l.iter().find(|e| fqn(e) == name))
                .map(|e| e["id"].clone());
            let id = known.unwrap_or_else(|| json!(ref_uuid(r["type"].as_str().unwrap_or(""), &name)));
            v[field]["id"] = id;
        }
        let table_fqn = fqn(&v).to_owned();
        if let Some(cols) = v.get_mut("columns").and_then(Value::as_array_mut) {
            for c in cols {
                let name = c["name"].as_str().unwrap_or("").to_owned();
                if let Some(o) = c.as_object_mut() {
                    o.entry("fullyQualifiedName").or_insert(json!(format!("{table_fqn}.{name}")));
                    o.entry("tags").or_insert(json!([]));
                }
            }
        }
        // A creation has no earlier version: `previousVersion` is the current one (0.1), as the
        // schema's minimum says.
        Self::event(&mut s, "entityCreated", entity, &v, 0.1);
        s.sys.entities.entry(entity).or_default().push(v);
        id
    }

    fn write(&self, entity: OmEntity, fqn_: &str, ty: &str, f: impl FnOnce(&mut Value)) -> bool {
        let mut s = self.lock();
        let now = s.tick(chrono::Duration::seconds(1)).timestamp_millis();
        let Some(list) = s.sys.entities.get_mut(&entity) else { return false };
        let Some(pos) = list.iter().position(|v| fqn(v) == fqn_) else { return false };
        let v = &mut list[pos];
        f(v);
        let prev = v["version"].as_f64().unwrap_or(0.1);
        v["version"] = json!(((prev * 10.0).round() + 1.0) / 10.0);
        v["updatedAt"] = json!(now);
        let v = if ty == "entityDeleted" { list.remove(pos) } else { list[pos].clone() };
        Self::event(&mut s, ty, entity, &v, prev);
        true
    }

    /// Sets fields of an entity (a PATCH) and records `entityUpdated`. False when absent.
    pub fn update(&self, entity: OmEntity, fqn: &str, fields: Value) -> bool {
        self.write(entity, fqn, "entityUpdated", |v| {
            if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
                o.extend(f);
            }
        })
    }

    /// Replaces the tags of one column of a table (`["PII.Sensitive"]`) and records `entityUpdated`.
    pub fn tag_column(&self, table: &str, column: &str, tags: &[&str]) -> bool {
        let tags: Vec<Value> = tags
            .iter()
            .map(|t| json!({"tagFQN": t, "source": "Classification", "labelType": "Manual", "state": "Confirmed"}))
            .collect();
        self.write(OmEntity::Tables, table, "entityUpdated", |v| {
            for c in v["columns"].as_array_mut().into_iter().flatten() {
                if c["name"] == column {
                    c["tags"] = json!(tags);
                }
            }
        })
    }

    /// Soft-deletes an entity (`deleted: true`) and records `entitySoftDeleted`.
    pub fn soft_delete(&self, entity: OmEntity, fqn: &str) -> bool {
        self.write(entity, fqn, "entitySoftDeleted", |v| v["deleted"] = json!(true))
    }

    /// Restores a soft-deleted entity and records `entityRestored`.
    pub fn restore(&self, entity: OmEntity, fqn: &str) -> bool {
        self.write(entity, fqn, "entityRestored", |v| v["deleted"] = json!(false))
    }

    /// Deletes an entity for good (`hardDelete=true`) and records `entityDeleted`.
    pub fn hard_delete(&self, entity: OmEntity, fqn: &str) -> bool {
        self.write(entity, fqn, "entityDeleted", |_| {})
    }

    /// Lineage of a pipeline: `upstream` tables → pipeline → `downstream` tables (by FQN).
    pub fn add_lineage(&self, pipeline: &str, upstream: &[String], downstream: &[String]) {
        let mut s = self.lock();
        let id_of = |s: &OmState, e: OmEntity, name: &str| {
            s.entities
                .get(&e)
                .and_then(|l| l.iter().find(|v| fqn(v) == name))
                .map(|v| v["id"].as_str().unwrap_or("").to_owned())
        };
        let Some(p) = id_of(&s.sys, OmEntity::Pipelines, pipeline) else { return };
        for t in upstream {
            if let Some(t) = id_of(&s.sys, OmEntity::Tables, t) {
                s.sys.edges.push((t, p.clone()));
            }
        }
        for t in downstream {
            if let Some(t) = id_of(&s.sys, OmEntity::Tables, t) {
                s.sys.edges.push((p.clone(), t));
            }
        }
    }

    /// An entity by FQN (deleted ones included).
    pub fn by_fqn(&self, entity: OmEntity, name: &str) -> Option<Value> {
        self.lock().sys.entities.get(&entity).and_then(|l| l.iter().find(|v| fqn(v) == name).cloned())
    }

    /// The router.
    pub fn router(&self) -> Router {
        let mut r = Router::new();
        for &e in OmEntity::all() {
            r = r
                .route(&format!("/{}", e.path()), get(move |st, h, q| list(e, st, h, q)))
                .route(&format!("/{}/{{id}}", e.path()), get(move |st, h, p, q| one(e, st, h, p, q)));
        }
        r = r.route("/api/v1/events", get(events)).route("/api/v1/lineage/{ty}/{id}", get(lineage));
        self.logged(r.with_state(self.clone()))
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"code": status.as_u16(), "message": message}))).into_response()
}

/// Authentication and throttling, as every route does them first.
fn gate(f: &FakeOpenMetadata, headers: &HeaderMap) -> Option<Response> {
    let mut s = f.lock();
    match authorization(headers, "Bearer") {
        Some(t) if s.sys.tokens.contains(t) => {}
        _ => return Some(error(StatusCode::UNAUTHORIZED, "Not Authorized! Token not present or invalid")),
    }
    if s.take_throttle() {
        return Some(retry_after(error(StatusCode::TOO_MANY_REQUESTS, "Too many requests")));
    }
    None
}

/// An entity as answered for `fields`: `tags` (entity and columns) only when asked for.
fn shaped(v: &Value, fields: &str) -> Value {
    let mut v = v.clone();
    if !fields.split(',').any(|f| f.trim() == "tags") {
        if let Some(o) = v.as_object_mut() {
            o.remove("tags");
        }
        for c in v.get_mut("columns").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(o) = c.as_object_mut() {
                o.remove("tags");
            }
        }
    }
    v
}

fn included(v: &Value, include: Option<&String>) -> bool {
    let deleted = v["deleted"].as_bool().unwrap_or(false);
    match include.map(String::as_str) {
        Some("all") => true,
        Some("deleted") => deleted,
        _ => !deleted,
    }
}

async fn list(
    entity: OmEntity,
    State(f): State<FakeOpenMetadata>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = gate(&f, &headers) {
        return r;
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 10,
        Some(Ok(n)) if (1..=1_000_000).contains(&n) => n,
        _ => return error(StatusCode::BAD_REQUEST, "query param limit must be greater than or equal to 1"),
    };
    let fields = q.get("fields").cloned().unwrap_or_default();
    let s = f.lock();
    let mut all: Vec<&Value> = s
        .sys
        .entities
        .get(&entity)
        .into_iter()
        .flatten()
        .filter(|v| included(v, q.get("include")))
        .filter(|v| q.get("database").is_none_or(|d| fqn(v).starts_with(&format!("{d}."))))
        .filter(|v| q.get("service").is_none_or(|sv| v["service"]["name"].as_str() == Some(sv)))
        .collect();
    all.sort_by(|a, b| fqn(a).cmp(fqn(b)));
    let total = all.len();
    // The cursor is opaque to clients; here: the hex of the last FQN answered.
    let start = match q.get("after") {
        None => 0,
        Some(c) => {
            let Some(last) = hex_decode(c) else { return error(StatusCode::BAD_REQUEST, "invalid cursor") };
            all.iter().position(|v| fqn(v) > last.as_str()).unwrap_or(total)
        }
    };
    let page: Vec<Value> = all.iter().skip(start).take(limit).map(|v| shaped(v, &fields)).collect();
    let mut paging = json!({"total": total});
    if start + page.len() < total
        && let Some(last) = page.last()
    {
        paging["after"] = json!(hex_encode(fqn(last)));
    }
    axum::Json(json!({"data": page, "paging": paging})).into_response()
}

fn hex_encode(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> =
        (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect();
    String::from_utf8(bytes?).ok()
}

async fn one(
    entity: OmEntity,
    State(f): State<FakeOpenMetadata>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = gate(&f, &headers) {
        return r;
    }
    let fields = q.get("fields").cloned().unwrap_or_default();
    let s = f.lock();
    match s.sys.entities.get(&entity).into_iter().flatten().find(|v| v["id"] == id.as_str()) {
        Some(v) if included(v, q.get("include")) => axum::Json(shaped(v, &fields)).into_response(),
        _ => error(StatusCode::NOT_FOUND, &format!("{} instance for {id} not found", entity.entity_type())),
    }
}

async fn events(
    State(f): State<FakeOpenMetadata>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = gate(&f, &headers) {
        return r;
    }
    let Some(Ok(ts)) = q.get("timestamp").map(|t| t.parse::<i64>()) else {
        return error(StatusCode::BAD_REQUEST, "query param timestamp must not be null");
    };
    let wanted = |ty: &str, entity_type: &str| {
        q.get(ty).is_some_and(|list| list.split(',').any(|t| t.trim() == "*" || t.trim() == entity_type))
    };
    let s = f.lock();
    let mut data: Vec<Value> = s
        .sys
        .events
        .iter()
        .filter(|e| e["timestamp"].as_i64().is_some_and(|t| t >= ts))
        .filter(|e| wanted(e["eventType"].as_str().unwrap_or(""), e["entityType"].as_str().unwrap_or("")))
        .cloned()
        .collect();
    data.sort_by_key(|e| e["timestamp"].as_i64());
    axum::Json(json!({"data": data})).into_response()
}

async fn lineage(
    State(f): State<FakeOpenMetadata>,
    headers: HeaderMap,
    Path((ty, id)): Path<(String, String)>,
) -> Response {
    if let Some(r) = gate(&f, &headers) {
        return r;
    }
    let s = f.lock();
    let find = |id: &str| {
        OmEntity::all().iter().find_map(|e| {
            s.sys.entities.get(e).and_then(|l| l.iter().find(|v| v["id"] == id)).map(|v| entity_ref(*e, v))
        })
    };
    let Some(me) = find(&id).filter(|r| r["type"] == ty.as_str()) else {
        return error(StatusCode::NOT_FOUND, &format!("{ty} instance for {id} not found"));
    };
    let edge = |(from, to): &(String, String)| json!({"fromEntity": from, "toEntity": to});
    let up: Vec<Value> = s.sys.edges.iter().filter(|(_, to)| *to == id).map(edge).collect();
    let down: Vec<Value> = s.sys.edges.iter().filter(|(from, _)| *from == id).map(edge).collect();
    let nodes: Vec<Value> = s
        .sys
        .edges
        .iter()
        .filter_map(|(from, to)| {
            if *to == id {
                find(from)
            } else if *from == id {
                find(to)
            } else {
                None
            }
        })
        .collect();
    axum::Json(json!({"entity": me, "nodes": nodes, "upstreamEdges": up, "downstreamEdges": down})).into_response()
}
