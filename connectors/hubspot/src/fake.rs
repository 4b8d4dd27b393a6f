//! A fake HubSpot account (feature `fake`) for tests and the quickstart, written from HubSpot's
//! public CRM v3 documentation (developers.hubspot.com: "CRM API | Search" — filter groups, operators,
//! one sort, `limit` ≤ 200, `after` paging, the 10 000-result cap; "CRM objects" — the list endpoint
//! with `archived=true`, `archivedAt`; "Associations v4" batch read; "Batch read" of contacts; "API
//! usage guidelines" — private-app tokens, `X-HubSpot-RateLimit-*` headers, 429 bodies). See
//! `docs/hubspot-api.md` for what each fact is and where it comes from.
//!
//! - Auth: `Authorization: Bearer <private app token>`, 401 otherwise with HubSpot's error body.
//! - `POST /crm/v3/objects/<object>/search`: `filterGroups` (OR of groups, AND inside; at most 5
//!   groups, 10 filters per group, 25 in all), the documented operators, at most one sort, `limit`
//!   ≤ 200, `after` = an offset token; an `after` at or past the cap (10 000, settable with
//!   [`FakeHubSpot::set_search_cap`] so a test crosses it with few records) is a 400. Records of the
//!   same sort value come highest id first: HubSpot documents no order among equal values, and this
//!   one is the opposite of the id order a client could wrongly rely on. Search answers carry no
//!   rate-limit headers (the search endpoint's own limit does not report them).
//! - `GET /crm/v3/objects/<object>`: id order, `limit` ≤ 100, `after`, `archived=true` for the
//!   archived records (with `archivedAt`).
//! - `POST /crm/v4/associations/tickets/contacts/batch/read`, `POST /crm/v3/objects/contacts/batch/read`.
//! - 429 (from [`Fake::throttle_next`]) with HubSpot's `RATE_LIMIT` body and the ten-second window
//!   headers; every other answer reports the daily quota (`X-HubSpot-RateLimit-Daily`,
//!   `-Daily-Remaining`) and the ten-second window.
//!
//! Times are ISO 8601 UTC with milliseconds, from a simulated clock that ticks 250 ms per write.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use dastra_connect_core::source::StreamKind;
use dastra_connect_core::testkit::fake::{self, Fake, RecordStore, authorization, id_of};
use serde_json::{Map, Value, json};

use crate::config::HubSpotObject;

pub use dastra_connect_core::testkit::fake::Logged;

/// Sample data shipped with the crate (`samples/*.json`).
pub const SAMPLES: &[(HubSpotObject, &str)] = &[
    (HubSpotObject::Companies, include_str!("../samples/companies.json")),
    (HubSpotObject::Tickets, include_str!("../samples/tickets.json")),
    (HubSpotObject::Contacts, include_str!("../samples/contacts.json")),
];

/// The private-app token the fake accepts.
pub const TOKEN: &str = "pat-eu1-5f3c8a1e-0000-4a5b-9c7d-fake0hubspot";
/// The privacy pipeline of the sample tickets.
pub const PRIVACY_PIPELINE: &str = "31582647";
/// Its stages in the samples: new, identity check, in progress, done, rejected.
pub const STAGES: [&str; 5] = ["71234561", "71234562", "71234563", "71234564", "71234565"];

/// HubSpot's own part of the state.
pub struct HubSpotState {
    live: RecordStore<HubSpotObject>,
    archived: RecordStore<HubSpotObject>,
    /// ticket id → contact ids.
    contacts_of: BTreeMap<u64, Vec<u64>>,
    token: String,
    cap: usize,
    daily_limit: u64,
    daily_used: u64,
    /// An update to make before the n-th search from now.
    pending: Option<(usize, HubSpotObject, u64, Value)>,
}

impl Default for HubSpotState {
    fn default() -> Self {
        HubSpotState {
            live: RecordStore::default(),
            archived: RecordStore::default(),
            contacts_of: BTreeMap::new(),
            token: TOKEN.into(),
            cap: 10_000,
            daily_limit: 500_000,
            daily_used: 0,
            pending: None,
        }
    }
}

dastra_connect_core::fake_handle!(
    /// The fake's state; clone it freely (shared). Derefs to the [`Fake`] skeleton (clock,
    /// throttling, log).
    FakeHubSpot(HubSpotState),
    "fake HubSpot"
);

fn hubspot_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Epoch milliseconds of a filter value or a property: digits, or an ISO 8601 date-time / date.
fn millis(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis())
}

fn tick(s: &mut fake::FakeStore<HubSpotState>) -> String {
    hubspot_time(s.tick(chrono::Duration::milliseconds(250)))
}

/// Sets `properties` on a record and stamps its modification time. False when absent.
fn update(s: &mut fake::FakeStore<HubSpotState>, object: HubSpotObject, id: u64, properties: &Value) -> bool {
    let now = tick(s);
    let Some(mut r) = s.sys.live.remove(object, id) else { return false };
    if let Some(p) = r.get_mut("properties").and_then(Value::as_object_mut) {
        for (k, v) in properties.as_object().into_iter().flatten() {
            p.insert(k.clone(), v.clone());
        }
        p.insert(object.modified_property().into(), json!(now));
    }
    r["updatedAt"] = json!(now);
    s.sys.live.push(object, r);
    true
}

/// Stamps a new record: `id`, `createdAt`/`updatedAt`, `createdate`, the modification property.
fn stamp_new(object: HubSpotObject, id: u64, now: &str, props: Value) -> Value {
    let mut p = props.as_object().cloned().unwrap_or_default();
    p.insert("hs_object_id".into(), json!(id.to_string()));
    p.entry("createdate").or_insert(json!(now));
    p.insert(object.modified_property().into(), json!(now));
    json!({"id": id, "createdAt": p["createdate"].clone(), "updatedAt": now, "properties": p})
}

impl FakeHubSpot {
    /// An empty account accepting [`TOKEN`].
    pub fn new() -> FakeHubSpot {
        let start =
            DateTime::parse_from_rfc3339("2025-06-02T08:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        FakeHubSpot(Fake::new(start, 9000, HubSpotState::default()))
    }

    /// An account holding the bundled samples (companies, privacy tickets and their contacts).
    pub fn with_samples() -> FakeHubSpot {
        let f = FakeHubSpot::new();
        {
            let mut s = f.lock();
            s.sys.live.load_samples(SAMPLES);
            let links: Vec<(u64, Vec<u64>)> = s
                .sys
                .live
                .list(HubSpotObject::Tickets)
                .iter()
                .map(|t| {
                    let ids =
                        t.pointer("/associations/contacts").and_then(Value::as_array).cloned().unwrap_or_default();
                    (id_of(t), ids.iter().filter_map(Value::as_u64).collect())
                })
                .collect();
            for (t, c) in links {
                if !c.is_empty() {
                    s.sys.contacts_of.insert(t, c);
                }
            }
        }
        f
    }

    /// Creates a record with `properties` (strings); returns its id.
    pub fn insert(&self, object: HubSpotObject, properties: Value) -> u64 {
        self.insert_many(object, vec![properties])[0]
    }

    /// Creates records in one write (an import): they share one modification time. Returns their ids.
    pub fn insert_many(&self, object: HubSpotObject, records: Vec<Value>) -> Vec<u64> {
        let mut s = self.lock();
        let now = tick(&mut s);
        let mut ids = Vec::new();
        for props in records {
            let id = s.next_id();
            s.sys.live.push(object, stamp_new(object, id, &now, props));
            ids.push(id);
        }
        ids
    }

    /// Sets properties of a record (a `PATCH`): its modification time becomes now. False when absent.
    pub fn update(&self, object: HubSpotObject, id: u64, properties: Value) -> bool {
        update(&mut self.lock(), object, id, &properties)
    }

    /// The same update, made by someone else just before the fake answers its `n`-th search from
    /// now (1 = the next): a record saved while a client pages through a search.
    pub fn update_before_search(&self, n: usize, object: HubSpotObject, id: u64, properties: Value) {
        self.lock().sys.pending = Some((n, object, id, properties));
    }

    /// Archives a record (HubSpot's delete): it leaves the search and appears in the archived
    /// listing with `archivedAt`. False when absent.
    pub fn archive(&self, object: HubSpotObject, id: u64) -> bool {
        let mut s = self.lock();
        let now = tick(&mut s);
        let Some(mut r) = s.sys.live.remove(object, id) else { return false };
        r["archivedAt"] = json!(now);
        r["updatedAt"] = json!(now);
        s.sys.archived.push(object, r);
        true
    }

    /// Deletes a record for good (a GDPR delete, or an archived record purged after the restore
    /// period): it leaves the search and the archived listing alike. False when absent.
    pub fn purge(&self, object: HubSpotObject, id: u64) -> bool {
        let mut s = self.lock();
        tick(&mut s);
        let live = s.sys.live.remove(object, id).is_some();
        s.sys.archived.remove(object, id).is_some() || live
    }

    /// Associates a contact with a ticket.
    pub fn associate(&self, ticket: u64, contact: u64) {
        self.lock().sys.contacts_of.entry(ticket).or_default().push(contact);
    }

    /// Every live record of an object, as HubSpot shows it.
    pub fn records(&self, object: HubSpotObject) -> Vec<Value> {
        self.lock().sys.live.list(object).iter().map(|r| render(r, None)).collect()
    }

    /// The cap on results one search can page through (HubSpot: 10 000).
    pub fn set_search_cap(&self, cap: usize) {
        self.lock().sys.cap = cap;
    }

    /// The daily quota the headers report: `limit`, of which `used` are spent.
    pub fn set_daily_usage(&self, limit: u64, used: u64) {
        let mut s = self.lock();
        s.sys.daily_limit = limit;
        s.sys.daily_used = used;
    }

    /// Requests counted against the daily quota so far.
    pub fn daily_used(&self) -> u64 {
        self.lock().sys.daily_used
    }

    /// The router.
    pub fn router(&self) -> Router {
        let r = Router::new()
            .route("/crm/v3/objects/{object}/search", post(search))
            .route("/crm/v3/objects/contacts/batch/read", post(batch_read_contacts))
            .route("/crm/v3/objects/{object}", get(list))
            .route("/crm/v4/associations/tickets/contacts/batch/read", post(ticket_contacts))
            .with_state(self.clone());
        self.logged(r)
    }
}

/// A stored record as the API shows it: string id, requested properties only (all when `None`),
/// `archived`, no internal fields.
fn render(r: &Value, properties: Option<&[String]>) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(id_of(r).to_string()));
    let all = r.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    let props: Map<String, Value> = match properties {
        None => all,
        Some(want) => {
            let mut keep = Map::new();
            for k in want.iter().map(String::as_str).chain(["hs_object_id", "createdate"]) {
                keep.insert(k.to_owned(), all.get(k).cloned().unwrap_or(Value::Null));
            }
            keep
        }
    };
    out.insert("properties".into(), Value::Object(props));
    for k in ["createdAt", "updatedAt"] {
        out.insert(k.into(), r.get(k).cloned().unwrap_or(Value::Null));
    }
    let archived = r.get("archivedAt").is_some();
    out.insert("archived".into(), json!(archived));
    if archived {
        out.insert("archivedAt".into(), r["archivedAt"].clone());
    }
    Value::Object(out)
}

fn error(status: StatusCode, category: &str, message: &str) -> Response {
    let body = json!({"status": "error", "message": message, "correlationId": "5a1b2c3d-0000-4000-8000-fakehubspot00",
                      "category": category});
    (status, axum::Json(body)).into_response()
}

/// Auth, throttling and the daily count; `Err` is the answer to give instead.
fn admit(fake: &FakeHubSpot, headers: &HeaderMap, search: bool) -> Result<HeaderMap, Box<Response>> {
    let mut s = fake.lock();
    if authorization(headers, "Bearer") != Some(s.sys.token.as_str()) {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
        )));
    }
    s.sys.daily_used += 1;
    let mut h = HeaderMap::new();
    let num = |n: u64| HeaderValue::from_str(&n.to_string()).unwrap_or(HeaderValue::from_static("0"));
    if s.take_throttle() {
        let body = json!({"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT", "correlationId": "5a1b2c3d-0000-4000-8000-fakehubspot01",
            "policyName": "TEN_SECONDLY_ROLLING", "groupName": "privateapps:1234567"});
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        let rh = resp.headers_mut();
        rh.insert("x-hubspot-ratelimit-max", num(190));
        rh.insert("x-hubspot-ratelimit-remaining", num(0));
        rh.insert("x-hubspot-ratelimit-interval-milliseconds", num(10_000));
        return Err(Box::new(resp));
    }
    if !search {
        h.insert("x-hubspot-ratelimit-daily", num(s.sys.daily_limit));
        h.insert("x-hubspot-ratelimit-daily-remaining", num(s.sys.daily_limit.saturating_sub(s.sys.daily_used)));
        h.insert("x-hubspot-ratelimit-max", num(190));
        h.insert("x-hubspot-ratelimit-remaining", num(189));
        h.insert("x-hubspot-ratelimit-interval-milliseconds", num(10_000));
    }
    Ok(h)
}

/// The object a path names (404 otherwise), then [`admit`].
fn object_and_admit(
    fake: &FakeHubSpot,
    name: &str,
    headers: &HeaderMap,
    search: bool,
) -> Result<(HubSpotObject, HeaderMap), Box<Response>> {
    let Some(object) = HubSpotObject::from_stream(name) else {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            &format!("Unable to infer object type from: {name}"),
        )));
    };
    Ok((object, admit(fake, headers, search)?))
}

/// A record's value of a property (`hs_object_id` is the id).
fn property(r: &Value, name: &str) -> Option<String> {
    if name == "hs_object_id" {
        return Some(id_of(r).to_string());
    }
    match r.pointer(&format!("/properties/{name}"))? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => match (millis(a), millis(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => a.to_lowercase().cmp(&b.to_lowercase()),
        },
    }
}

fn matches(r: &Value, f: &Value) -> Result<bool, String> {
    use std::cmp::Ordering::*;
    let name = f.get("propertyName").and_then(Value::as_str).ok_or("a filter has no propertyName")?;
    let op = f.get("operator").and_then(Value::as_str).ok_or("a filter has no operator")?;
    let text = |k: &str| f.get(k).map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
    let have = property(r, name);
    let value = text("value");
    let values: Vec<String> = f
        .get("values")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect())
        .unwrap_or_default();
    let need = |v: Option<String>| v.ok_or_else(|| format!("operator {op} needs a value"));
    Ok(match op {
        "HAS_PROPERTY" => have.is_some(),
        "NOT_HAS_PROPERTY" => have.is_none(),
        "IN" => have.is_some_and(|h| values.iter().any(|v| compare(&h, v) == Equal)),
        "NOT_IN" => have.is_none_or(|h| values.iter().all(|v| compare(&h, v) != Equal)),
        "CONTAINS_TOKEN" => {
            let v = need(value)?.to_lowercase();
            have.is_some_and(|h| h.to_lowercase().split_whitespace().any(|t| t == v.trim_matches('*')))
        }
        "NOT_CONTAINS_TOKEN" => {
            let v = need(value)?.to_lowercase();
            have.is_none_or(|h| !h.to_lowercase().split_whitespace().any(|t| t == v))
        }
        "BETWEEN" => {
            let (lo, hi) = (need(value)?, need(text("highValue"))?);
            have.is_some_and(|h| compare(&h, &lo) != Less && compare(&h, &hi) != Greater)
        }
        "EQ" | "NEQ" | "LT" | "LTE" | "GT" | "GTE" => {
            let v = need(value)?;
            let Some(h) = have else { return Ok(op == "NEQ") };
            let o = compare(&h, &v);
            match op {
                "EQ" => o == Equal,
                "NEQ" => o != Equal,
                "LT" => o == Less,
                "LTE" => o != Greater,
                "GT" => o == Greater,
                _ => o != Less,
            }
        }
        other => return Err(format!("Unknown operator {other}")),
    })
}

async fn search(
    State(fake): State<FakeHubSpot>,
    Path(object): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let (object, h) = match object_and_admit(&fake, &object, &headers, true) {
        Ok(ok) => ok,
        Err(resp) => return *resp,
    };
    let bad = |m: String| error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &m);
    let groups = body.get("filterGroups").and_then(Value::as_array).cloned().unwrap_or_default();
    let counts: Vec<usize> =
        groups.iter().map(|g| g.get("filters").and_then(Value::as_array).map_or(0, Vec::len)).collect();
    if groups.len() > 5 || counts.iter().any(|n| *n > 10) || counts.iter().sum::<usize>() > 25 {
        return bad("There was a problem with the request: at most 5 filterGroups, 10 filters per group and 25 filters in total.".into());
    }
    let sorts = body.get("sorts").and_then(Value::as_array).cloned().unwrap_or_default();
    if sorts.len() > 1 {
        return bad("Only one sort is supported.".into());
    }
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(10) as usize;
    if limit > 200 {
        return bad(format!("limit must be less than or equal to 200, but was {limit}"));
    }
    let after: usize = match body.get("after") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_str().map(str::parse::<usize>).or_else(|| v.as_u64().map(|n| Ok(n as usize))) {
            Some(Ok(n)) => n,
            _ => return bad(format!("Invalid after: {v}")),
        },
    };
    let properties: Option<Vec<String>> = body
        .get("properties")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect());
    let mut s = fake.lock();
    match s.sys.pending.take() {
        Some((1, o, id, props)) => {
            update(&mut s, o, id, &props);
        }
        Some((n, o, id, props)) => s.sys.pending = Some((n - 1, o, id, props)),
        None => {}
    }
    if after >= s.sys.cap {
        return bad(format!(
            "There was a problem with the request: paging past {} results is not supported; narrow the search.",
            s.sys.cap
        ));
    }
    let mut rows = Vec::new();
    for r in s.sys.live.list(object) {
        let mut ok = groups.is_empty();
        for g in &groups {
            let mut all = true;
            for f in g.get("filters").and_then(Value::as_array).into_iter().flatten() {
                match matches(&r, f) {
                    Ok(true) => {}
                    Ok(false) => all = false,
                    Err(m) => return bad(m),
                }
            }
            ok |= all;
        }
        if ok {
            rows.push(r);
        }
    }
    let (sort_by, desc) = match sorts.first() {
        Some(s) => (
            s.get("propertyName").and_then(Value::as_str).unwrap_or("hs_object_id").to_owned(),
            s.get("direction").and_then(Value::as_str) == Some("DESCENDING"),
        ),
        None => ("hs_object_id".to_owned(), false),
    };
    rows.sort_by(|a, b| {
        let o = match (property(a, &sort_by), property(b, &sort_by)) {
            (Some(x), Some(y)) => compare(&x, &y),
            (x, y) => x.is_some().cmp(&y.is_some()),
        };
        let o = if desc { o.reverse() } else { o };
        // Equal sort values: highest id first (HubSpot documents no order).
        o.then_with(|| id_of(b).cmp(&id_of(a)))
    });
    let total = rows.len();
    let end = after.saturating_add(limit).min(total).min(s.sys.cap);
    let page: Vec<Value> = rows[after.min(end)..end].iter().map(|r| render(r, properties.as_deref())).collect();
    let mut answer = json!({"total": total, "results": page});
    if after + limit < total {
        answer["paging"] = json!({"next": {"after": (after + limit).to_string()}});
    }
    (h, axum::Json(answer)).into_response()
}

async fn list(
    State(fake): State<FakeHubSpot>,
    Path(object): Path<String>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let (object, h) = match object_and_admit(&fake, &object, &headers, false) {
        Ok(ok) => ok,
        Err(resp) => return *resp,
    };
    let get = |k: &str| params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let limit = get("limit").and_then(|v| v.parse::<usize>().ok()).unwrap_or(10);
    if limit > 100 {
        return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "limit must be at most 100");
    }
    let after = get("after").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let properties: Option<Vec<String>> = get("properties").map(|p| p.split(',').map(str::to_owned).collect());
    let s = fake.lock();
    let store = if get("archived").as_deref() == Some("true") { &s.sys.archived } else { &s.sys.live };
    let mut rows = store.list(object);
    rows.retain(|r| id_of(r) > after);
    rows.sort_by_key(id_of);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut answer = json!({"results": rows.iter().map(|r| render(r, properties.as_deref())).collect::<Vec<_>>()});
    if more && let Some(last) = rows.last() {
        answer["paging"] = json!({"next": {"after": id_of(last).to_string(),
            "link": format!("/crm/v3/objects/{}?after={}", object.path(), id_of(last))}});
    }
    (h, axum::Json(answer)).into_response()
}

fn input_ids(body: &Value) -> Vec<u64> {
    body.get("inputs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("id").and_then(|v| v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64())))
        .collect()
}

async fn ticket_contacts(
    State(fake): State<FakeHubSpot>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let h = match admit(&fake, &headers, false) {
        Ok(h) => h,
        Err(resp) => return *resp,
    };
    let s = fake.lock();
    let results: Vec<Value> = input_ids(&body)
        .into_iter()
        .filter_map(|t| {
            let to = s.sys.contacts_of.get(&t)?;
            Some(json!({"from": {"id": t.to_string()}, "to": to.iter().map(|c| json!({"toObjectId": c,
                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 16, "label": null}]})).collect::<Vec<_>>()}))
        })
        .collect();
    (h, axum::Json(json!({"status": "COMPLETE", "results": results}))).into_response()
}

async fn batch_read_contacts(
    State(fake): State<FakeHubSpot>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let h = match admit(&fake, &headers, false) {
        Ok(h) => h,
        Err(resp) => return *resp,
    };
    let properties: Option<Vec<String>> = body
        .get("properties")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect());
    let s = fake.lock();
    let wanted = input_ids(&body);
    let results: Vec<Value> = s
        .sys
        .live
        .list(HubSpotObject::Contacts)
        .iter()
        .filter(|c| wanted.contains(&id_of(c)))
        .map(|c| render(c, properties.as_deref()))
        .collect();
    (h, axum::Json(json!({"status": "COMPLETE", "results": results}))).into_response()
}
