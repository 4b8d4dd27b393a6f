//! A fake Salesforce org (feature `fake`) for tests and the quickstart, written from the public REST
//! API Developer Guide (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/):
//! "Execute a SOQL Query" (`GET /services/data/vXX.X/query?q=…`: `totalSize`, `done`,
//! `nextRecordsUrl`, `records[]` with `attributes {type, url}`; relationship fields as nested
//! objects), "QueryAll" (`/queryAll`: deleted records too, `IsDeleted = true`), "Limit Info Header"
//! (`Sforce-Limit-Info: api-usage=USED/MAX` on every answer), "Status Codes and Error Responses"
//! (errors as `[{"message", "errorCode"}]`; 403 `REQUEST_LIMIT_EXCEEDED` when the org is over its
//! API request limit; 401 `INVALID_SESSION_ID`; 400 `MALFORMED_QUERY`/`INVALID_FIELD`), and the
//! OAuth 2.0 client credentials and JWT bearer flows (`POST /services/oauth2/token`, answer without
//! `expires_in`; a JWT assertion must be RS256-signed by a registered key, with the registered
//! `iss`/`sub`, `aud` `https://login.salesforce.com` or `https://test.salesforce.com`, and an `exp`
//! not passed).
//!
//! It parses the SOQL the connector sends and a little more: `SELECT f, Rel.f FROM Object [WHERE
//! cond] [ORDER BY f [ASC|DESC], …] [LIMIT n]` where `cond` combines `field op literal` (`=`, `!=`,
//! `<`, `<=`, `>`, `>=`, `IN (…)`) with `AND`, `OR` and parentheses; literals are quoted strings
//! (backslash escapes), unquoted dateTimes (`2024-05-01T10:00:07Z`), numbers, `true`/`false`/`null`.
//! `Contact.<field>` on a Case is resolved through its `ContactId`; other relationship fields are
//! stored nested (`RecordType: {DeveloperName: …}`). Results come in batches of
//! [`FakeSalesforce::set_batch_size`] (2000 by default) behind a `nextRecordsUrl`.
//!
//! Times are `2025-06-01T09:00:00.000+0000` from a simulated clock that ticks one second per write.
//! Ids are 18 characters, `001…` accounts, `500…` cases, `003…` contacts, increasing.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use dastra_connect_core::testkit::fake::{self, Fake, OAuthClients, authorization};
use serde_json::{Map, Value, json};

use crate::config::SalesforceObject;
use crate::source::parse_time;
use dastra_connect_core::source::StreamKind;

pub use dastra_connect_core::testkit::fake::Logged;

/// Sample data shipped with the crate (`samples/*.json`).
pub const SAMPLES: &[(SalesforceObject, &str)] = &[
    (SalesforceObject::Accounts, include_str!("../samples/accounts.json")),
    (SalesforceObject::Contacts, include_str!("../samples/contacts.json")),
    (SalesforceObject::Cases, include_str!("../samples/cases.json")),
];

/// The connected app's consumer key the fake accepts.
pub const CLIENT_ID: &str = "3MVG9dastra.connect.fake";
/// Its consumer secret.
pub const CLIENT_SECRET: &str = "salesforce-consumer-secret";

/// Salesforce's own part of the state.
pub struct SalesforceState {
    records: BTreeMap<SalesforceObject, Vec<Value>>,
    oauth: OAuthClients,
    used: u64,
    limit: u64,
    batch_size: usize,
    /// Query locators: the rows still to serve.
    cursors: HashMap<String, Vec<Value>>,
    next_locator: u64,
    /// JWT bearer users: `(iss, sub, RSA public key)`.
    jwt: Vec<(String, String, Vec<u8>)>,
}

impl Default for SalesforceState {
    fn default() -> Self {
        SalesforceState {
            records: BTreeMap::new(),
            oauth: OAuthClients::default(),
            used: 0,
            limit: 100_000,
            batch_size: 2000,
            cursors: HashMap::new(),
            next_locator: 0,
            jwt: Vec::new(),
        }
    }
}

dastra_connect_core::fake_handle!(
    /// The fake's state; clone it freely (shared). Derefs to the [`Fake`] skeleton (clock,
    /// throttling — answered `403 REQUEST_LIMIT_EXCEEDED` —, log).
    FakeSalesforce(SalesforceState),
    "fake Salesforce"
);

/// A Salesforce dateTime as the REST API writes it.
pub fn sf_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn prefix(object: SalesforceObject) -> &'static str {
    match object {
        SalesforceObject::Accounts => "001",
        SalesforceObject::Cases => "500",
        SalesforceObject::Contacts => "003",
    }
}

fn object_named(name: &str) -> Option<SalesforceObject> {
    [SalesforceObject::Accounts, SalesforceObject::Cases, SalesforceObject::Contacts]
        .into_iter()
        .find(|o| o.sobject().eq_ignore_ascii_case(name))
}

fn tick(s: &mut fake::FakeStore<SalesforceState>) -> String {
    sf_time(s.tick(chrono::Duration::seconds(1)))
}

impl FakeSalesforce {
    /// An empty org accepting the client [`CLIENT_ID`].
    pub fn new() -> FakeSalesforce {
        let mut state = SalesforceState::default();
        state.oauth.add_client(CLIENT_ID, CLIENT_SECRET);
        let start = parse_time("2025-06-01T09:00:00.000+0000").unwrap_or_default();
        FakeSalesforce(Fake::new(start, 1000, state))
    }

    /// An org holding the bundled samples.
    pub fn with_samples() -> FakeSalesforce {
        let f = FakeSalesforce::new();
        {
            let mut s = f.lock();
            for (object, text) in SAMPLES {
                let rows: Vec<Value> =
                    serde_json::from_str(text).unwrap_or_else(|e| panic!("sample {}: {e}", object.stream()));
                s.sys.records.entry(*object).or_default().extend(rows);
            }
        }
        f
    }

    /// Creates a record (sets `Id`, `CreatedDate`, `SystemModstamp`, `IsDeleted`). Returns its Id.
    pub fn insert(&self, object: SalesforceObject, mut record: Value) -> String {
        let mut s = self.lock();
        let now = tick(&mut s);
        let id = format!("{}8d0{:09}AAA", prefix(object), s.next_id());
        if let Some(obj) = record.as_object_mut() {
            obj.insert("Id".into(), json!(id));
            obj.entry("CreatedDate").or_insert(json!(now));
            obj.insert("SystemModstamp".into(), json!(now));
            obj.insert("IsDeleted".into(), json!(false));
        }
        s.sys.records.entry(object).or_default().push(record);
        id
    }

    /// Sets fields of a record (a `PATCH`): `SystemModstamp` becomes now. False when absent.
    pub fn update(&self, object: SalesforceObject, id: &str, fields: Value) -> bool {
        self.touch(object, id, |r| {
            for (k, v) in fields.as_object().into_iter().flatten() {
                r.insert(k.clone(), v.clone());
            }
        })
    }

    /// Deletes a record to the recycle bin: `IsDeleted = true`, `SystemModstamp` now; only
    /// `queryAll` still returns it. False when absent.
    pub fn delete(&self, object: SalesforceObject, id: &str) -> bool {
        self.touch(object, id, |r| {
            r.insert("IsDeleted".into(), json!(true));
        })
    }

    /// Removes a record for good (the recycle bin emptied, or older than ~15 days).
    pub fn purge(&self, object: SalesforceObject, id: &str) -> bool {
        let mut s = self.lock();
        tick(&mut s);
        let list = s.sys.records.entry(object).or_default();
        let before = list.len();
        list.retain(|r| r["Id"] != id);
        list.len() < before
    }

    fn touch(&self, object: SalesforceObject, id: &str, f: impl FnOnce(&mut Map<String, Value>)) -> bool {
        let mut s = self.lock();
        let now = tick(&mut s);
        let Some(r) = s.sys.records.entry(object).or_default().iter_mut().find(|r| r["Id"] == id) else {
            return false;
        };
        let Some(obj) = r.as_object_mut() else { return false };
        f(obj);
        obj.insert("SystemModstamp".into(), json!(now));
        true
    }

    /// Every record of an object, deleted ones included (as stored).
    pub fn records(&self, object: SalesforceObject) -> Vec<Value> {
        self.lock().sys.records.get(&object).cloned().unwrap_or_default()
    }

    /// Sets the org's daily API usage (`used` of `limit`), as `Sforce-Limit-Info` reports it.
    pub fn set_usage(&self, used: u64, limit: u64) {
        let mut s = self.lock();
        s.sys.used = used;
        s.sys.limit = limit;
    }

    /// The org's daily API usage `(used, limit)`.
    pub fn usage(&self) -> (u64, u64) {
        let s = self.lock();
        (s.sys.used, s.sys.limit)
    }

    /// Records per query answer before a `nextRecordsUrl` (Salesforce: 2000 by default).
    pub fn set_batch_size(&self, n: usize) {
        self.lock().sys.batch_size = n.max(1);
    }

    /// Pre-authorizes `username` for the app [`CLIENT_ID`] with a fresh RSA key (the certificate
    /// uploaded to the app) and returns the private key as PEM (PKCS#8).
    pub fn jwt_user(&self, username: &str) -> String {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        use aws_lc_rs::signature::KeyPair;
        use base64::Engine;
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .unwrap_or_else(|e| panic!("RSA key generation: {e}"));
        let der: Pkcs8V1Der = key.as_der().unwrap_or_else(|e| panic!("PKCS#8 export: {e}"));
        let public = key.public_key().as_ref().to_vec();
        self.lock().sys.jwt.push((CLIENT_ID.to_owned(), username.to_owned(), public));
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let lines: Vec<String> = b64.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"))
    }

    /// Revokes every token (the next request with one gets 401 `INVALID_SESSION_ID`).
    pub fn revoke_tokens(&self) {
        self.lock().sys.oauth.revoke_all();
    }

    /// The router.
    pub fn router(&self) -> Router {
        let r = Router::new()
            .route("/services/oauth2/token", post(token))
            .route("/services/data/{version}/query", get(|st, h, v, q| query(false, st, h, v, q)))
            .route("/services/data/{version}/queryAll", get(|st, h, v, q| query(true, st, h, v, q)))
            .route("/services/data/{version}/query/{locator}", get(more))
            .route("/services/data/{version}/queryAll/{locator}", get(more))
            .with_state(self.clone());
        self.logged(r)
    }
}

async fn token(
    State(fake): State<FakeSalesforce>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut s = fake.lock();
    let token = format!("00Dfake!token-{}", s.last_id + 1);
    let refused = |error: &str, description: &str| {
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error, "error_description": description}))).into_response()
    };
    if form.get("grant_type").map(String::as_str) == Some(dastra_connect_core::source::http::JWT_BEARER_GRANT) {
        if !jwt_valid(&s.sys.jwt, form.get("assertion").map(String::as_str).unwrap_or_default()) {
            return refused("invalid_grant", "invalid assertion");
        }
        s.sys.oauth.grant(&token, Vec::new(), None);
    } else if s.sys.oauth.issue(&form, &token, None).is_err() {
        return refused("invalid_client", "invalid client credentials");
    }
    s.next_id();
    let issued = s.clock.timestamp_millis().to_string();
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    axum::Json(
        json!({"access_token": token, "instance_url": format!("http://{host}"), "id": "https://login.salesforce.com/id/00Dfake/005fake",
        "token_type": "Bearer", "issued_at": issued, "signature": "fake"}),
    )
    .into_response()
}

/// A JWT bearer assertion: RS256 by a registered key, its `iss`/`sub`, a Salesforce `aud`, `exp`
/// not passed (real time: the assertion is made from the real clock).
fn jwt_valid(users: &[(String, String, Vec<u8>)], assertion: &str) -> bool {
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, sig] = parts[..] else { return false };
    let (Ok(header), Ok(claims), Ok(sig)) = (b64.decode(header), b64.decode(claims), b64.decode(sig)) else {
        return false;
    };
    let header: Value = serde_json::from_slice(&header).unwrap_or_default();
    let claims: Value = serde_json::from_slice(&claims).unwrap_or_default();
    if header["alg"] != "RS256" {
        return false;
    }
    let aud_ok = ["https://login.salesforce.com", "https://test.salesforce.com"].iter().any(|a| claims["aud"] == *a);
    let exp_ok = claims["exp"].as_i64().is_some_and(|e| e > Utc::now().timestamp());
    let signed = assertion.rsplit_once('.').map(|(s, _)| s).unwrap_or_default();
    aud_ok
        && exp_ok
        && users.iter().any(|(iss, sub, key)| {
            claims["iss"] == iss.as_str()
                && claims["sub"] == sub.as_str()
                && UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key).verify(signed.as_bytes(), &sig).is_ok()
        })
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!([{"message": message, "errorCode": code}]))).into_response()
}

/// Auth, API version, request limit: what every data request goes through. `Some` is the refusal.
fn refusal(s: &mut fake::FakeStore<SalesforceState>, headers: &HeaderMap, version: &str) -> Option<Response> {
    let ok = authorization(headers, "Bearer").is_some_and(|t| s.sys.oauth.valid(t, s.clock).is_some());
    if !ok {
        return Some(error(StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID", "Session expired or invalid"));
    }
    let major = version.strip_prefix('v').and_then(|v| v.split('.').next()).and_then(|m| m.parse::<u32>().ok());
    if !major.is_some_and(|m| (20..=66).contains(&m)) {
        return Some(error(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist"));
    }
    if s.take_throttle() || s.sys.used >= s.sys.limit {
        return Some(error(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."));
    }
    s.sys.used += 1;
    None
}

fn with_usage(s: &fake::FakeStore<SalesforceState>, mut resp: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={}/{}", s.sys.used, s.sys.limit)) {
        resp.headers_mut().insert("sforce-limit-info", v);
    }
    resp
}

async fn query(
    all: bool,
    State(fake): State<FakeSalesforce>,
    headers: HeaderMap,
    Path(version): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut s = fake.lock();
    if let Some(resp) = refusal(&mut s, &headers, &version) {
        return with_usage(&s, resp);
    }
    let Some(q) = params.get("q") else {
        return with_usage(&s, error(StatusCode::BAD_REQUEST, "MALFORMED_QUERY", "A query string is required"));
    };
    let resp = match run_query(&s.sys, q, all, &version) {
        Ok(rows) => page(&mut s.sys, rows, &version, all),
        Err((code, message)) => error(StatusCode::BAD_REQUEST, code, &message),
    };
    with_usage(&s, resp)
}

async fn more(
    State(fake): State<FakeSalesforce>,
    headers: HeaderMap,
    Path((version, locator)): Path<(String, String)>,
) -> Response {
    let mut s = fake.lock();
    if let Some(resp) = refusal(&mut s, &headers, &version) {
        return with_usage(&s, resp);
    }
    let resp = match s.sys.cursors.remove(&locator) {
        Some(rows) => page(&mut s.sys, rows, &version, false),
        None => error(StatusCode::BAD_REQUEST, "INVALID_QUERY_LOCATOR", "invalid query locator"),
    };
    with_usage(&s, resp)
}

/// One answer: the first batch, the rest behind a locator.
fn page(sys: &mut SalesforceState, mut rows: Vec<Value>, version: &str, all: bool) -> Response {
    let total = rows.len();
    let rest = if rows.len() > sys.batch_size { rows.split_off(sys.batch_size) } else { Vec::new() };
    let mut body = json!({"totalSize": total, "done": rest.is_empty(), "records": rows});
    if !rest.is_empty() {
        sys.next_locator += 1;
        let locator = format!("01gD0000000{:07}-{}", sys.next_locator, sys.batch_size);
        let resource = if all { "queryAll" } else { "query" };
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/{resource}/{locator}"));
        sys.cursors.insert(locator, rest);
    }
    axum::Json(body).into_response()
}

type QueryError = (&'static str, String);

fn malformed(text: impl Into<String>) -> QueryError {
    ("MALFORMED_QUERY", text.into())
}

/// Runs a SOQL query over the stored records: the selected rows in order, shaped as the API
/// returns them.
fn run_query(sys: &SalesforceState, q: &str, all: bool, version: &str) -> Result<Vec<Value>, QueryError> {
    let parsed = parse_select(q)?;
    let object = object_named(&parsed.object)
        .ok_or_else(|| ("INVALID_TYPE", format!("sObject type '{}' is not supported", parsed.object)))?;
    let stored = sys.records.get(&object).cloned().unwrap_or_default();
    let contacts = sys.records.get(&SalesforceObject::Contacts).cloned().unwrap_or_default();
    let known = |field: &str| -> bool {
        let root = field.split('.').next().unwrap_or(field);
        // The object's "describe": standard fields the connector selects, relationships, and
        // whatever a stored record holds (custom fields of the samples and tests).
        ["Id", "IsDeleted", "SystemModstamp", "CreatedDate"].contains(&root)
            || (object == SalesforceObject::Cases && ["Contact", "RecordType"].contains(&root))
            || crate::mapping::base_fields(object).iter().any(|f| f.split('.').next() == Some(root))
            || stored.iter().any(|r| r.get(root).is_some())
    };
    for f in parsed
        .fields
        .iter()
        .chain(parsed.order.iter().map(|(f, _)| f))
        .chain(parsed.filter.iter().flat_map(Cond::fields))
    {
        if !known(f) {
            return Err(("INVALID_FIELD", format!("No such column '{f}' on entity '{}'", object.sobject())));
        }
    }
    // Resolves a field of a stored record, relationship paths included.
    let value = |r: &Value, field: &str| -> Value {
        if let Some(rest) = field.strip_prefix("Contact.") {
            let contact =
                r.get("ContactId").and_then(Value::as_str).and_then(|id| contacts.iter().find(|c| c["Id"] == id));
            return contact.and_then(|c| c.get(rest)).cloned().unwrap_or(Value::Null);
        }
        field.split('.').try_fold(r, |cur, k| cur.get(k)).cloned().unwrap_or(Value::Null)
    };
    let mut rows: Vec<&Value> = stored
        .iter()
        .filter(|r| all || r.get("IsDeleted") != Some(&Value::Bool(true)))
        .filter(|r| parsed.filter.as_ref().is_none_or(|c| c.eval(&|f: &str| value(r, f))))
        .collect();
    rows.sort_by(|a, b| {
        for (f, desc) in &parsed.order {
            let o = compare(&value(a, f), &value(b, f));
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    if let Some(n) = parsed.limit {
        rows.truncate(n);
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let id = r["Id"].as_str().unwrap_or_default();
            let mut out = Map::new();
            out.insert(
                "attributes".into(),
                json!({"type": object.sobject(), "url": format!("/services/data/{version}/sobjects/{}/{id}", object.sobject())}),
            );
            for f in &parsed.fields {
                match f.split_once('.') {
                    None => {
                        out.insert(f.clone(), value(r, f));
                    }
                    Some((rel, sub)) => {
                        let linked = if rel == "Contact" { value(r, "ContactId") } else { r.get(rel).cloned().unwrap_or(Value::Null) };
                        if linked.is_null() {
                            out.entry(rel.to_owned()).or_insert(Value::Null);
                            continue;
                        }
                        let entry = out.entry(rel.to_owned()).or_insert_with(|| json!({"attributes": {"type": rel}}));
                        if entry.is_null() {
                            continue;
                        }
                        entry[sub] = value(r, f);
                    }
                }
            }
            Value::Object(out)
        })
        .collect())
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Value::Null, Value::Null) => Equal,
        (Value::Null, _) => Less,
        (_, Value::Null) => Greater,
        (Value::String(x), Value::String(y)) => match (parse_time(x), parse_time(y)) {
            (Some(s), Some(t)) => s.cmp(&t),
            _ => x.cmp(y),
        },
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// A parsed `SELECT`.
struct Select {
    fields: Vec<String>,
    object: String,
    filter: Option<Cond>,
    order: Vec<(String, bool)>,
    limit: Option<usize>,
}

/// A literal of a condition.
#[derive(Debug, Clone)]
enum Lit {
    Str(String),
    Time(DateTime<Utc>),
    Num(f64),
    Bool(bool),
    Null,
}

/// A WHERE condition.
#[derive(Debug, Clone)]
enum Cond {
    Cmp(String, String, Lit),
    In(String, Vec<Lit>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

impl Cond {
    fn fields(&self) -> Vec<&String> {
        match self {
            Cond::Cmp(f, _, _) | Cond::In(f, _) => vec![f],
            Cond::And(a, b) | Cond::Or(a, b) => a.fields().into_iter().chain(b.fields()).collect(),
        }
    }

    fn eval(&self, value: &dyn Fn(&str) -> Value) -> bool {
        match self {
            Cond::And(a, b) => a.eval(value) && b.eval(value),
            Cond::Or(a, b) => a.eval(value) || b.eval(value),
            Cond::In(f, list) => {
                let v = value(f);
                list.iter().any(|l| cmp_lit(&v, l) == Some(std::cmp::Ordering::Equal))
            }
            Cond::Cmp(f, op, lit) => {
                let v = value(f);
                let Some(o) = cmp_lit(&v, lit) else { return op == "!=" };
                use std::cmp::Ordering::*;
                match op.as_str() {
                    "=" => o == Equal,
                    "!=" => o != Equal,
                    "<" => o == Less,
                    "<=" => o != Greater,
                    ">" => o == Greater,
                    ">=" => o != Less,
                    _ => false,
                }
            }
        }
    }
}

/// Compares a stored value with a literal; `None` when they cannot compare (a null, a type clash).
fn cmp_lit(v: &Value, lit: &Lit) -> Option<std::cmp::Ordering> {
    match (v, lit) {
        (Value::Null, Lit::Null) => Some(std::cmp::Ordering::Equal),
        (Value::String(s), Lit::Str(t)) => Some(s.as_str().cmp(t.as_str())),
        (Value::String(s), Lit::Time(t)) => parse_time(s).map(|x| x.cmp(t)),
        (Value::Number(n), Lit::Num(x)) => n.as_f64()?.partial_cmp(x),
        (Value::Bool(b), Lit::Bool(x)) => Some(b.cmp(x)),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Op(String),
    Open,
    Close,
    Comma,
}

fn tokenize(q: &str) -> Result<Vec<Tok>, QueryError> {
    let mut out = Vec::new();
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(malformed("unterminated string literal")),
                        Some('\\') => {
                            let e = chars.get(i + 1).ok_or_else(|| malformed("bad escape"))?;
                            s.push(match e {
                                'n' => '\n',
                                'r' => '\r',
                                't' => '\t',
                                'b' => '\u{8}',
                                'f' => '\u{c}',
                                '\\' | '\'' | '"' | '_' | '%' => *e,
                                _ => return Err(malformed(format!("invalid escape sequence \\{e}"))),
                            });
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            s.push(*c);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            '=' | '!' | '<' | '>' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = if ["!=", "<=", ">=", "<>"].contains(&two.as_str()) { two } else { c.to_string() };
                if op == "!" {
                    return Err(malformed("unexpected token: '!'"));
                }
                i += op.len();
                out.push(Tok::Op(if op == "<>" { "!=".into() } else { op }));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' || c == '+' || c == ':' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_.-+:".contains(chars[i])) {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            c => return Err(malformed(format!("unexpected character '{c}'"))),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn word(&mut self, what: &str) -> Result<String, QueryError> {
        match self.next() {
            Some(Tok::Word(w)) => Ok(w),
            other => Err(malformed(format!("expected {what}, found {other:?}"))),
        }
    }
    fn or(&mut self) -> Result<Cond, QueryError> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Cond, QueryError> {
        let mut left = self.atom()?;
        while self.keyword("AND") {
            left = Cond::And(Box::new(left), Box::new(self.atom()?));
        }
        Ok(left)
    }
    fn atom(&mut self) -> Result<Cond, QueryError> {
        if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let c = self.or()?;
            if self.next() != Some(Tok::Close) {
                return Err(malformed("expected ')'"));
            }
            return Ok(c);
        }
        let field = self.word("a field")?;
        if self.keyword("IN") {
            if self.next() != Some(Tok::Open) {
                return Err(malformed("expected '(' after IN"));
            }
            let mut list = vec![self.literal()?];
            loop {
                match self.next() {
                    Some(Tok::Comma) => list.push(self.literal()?),
                    Some(Tok::Close) => break,
                    other => return Err(malformed(format!("expected ',' or ')', found {other:?}"))),
                }
            }
            return Ok(Cond::In(field, list));
        }
        let op = match self.next() {
            Some(Tok::Op(op)) => op,
            other => return Err(malformed(format!("expected an operator after {field}, found {other:?}"))),
        };
        Ok(Cond::Cmp(field, op, self.literal()?))
    }
    fn literal(&mut self) -> Result<Lit, QueryError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Word(w)) => {
                if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") {
                    return Ok(Lit::Bool(w.eq_ignore_ascii_case("true")));
                }
                if w.eq_ignore_ascii_case("null") {
                    return Ok(Lit::Null);
                }
                if let Ok(t) = DateTime::parse_from_rfc3339(&w) {
                    return Ok(Lit::Time(t.with_timezone(&Utc)));
                }
                w.parse::<f64>().map(Lit::Num).map_err(|_| malformed(format!("unexpected token: '{w}'")))
            }
            other => Err(malformed(format!("expected a literal, found {other:?}"))),
        }
    }
}

fn parse_select(q: &str) -> Result<Select, QueryError> {
    let mut p = Parser { toks: tokenize(q)?, pos: 0 };
    if !p.keyword("SELECT") {
        return Err(malformed("a query starts with SELECT"));
    }
    let mut fields = vec![p.word("a field")?];
    while p.peek() == Some(&Tok::Comma) {
        p.pos += 1;
        fields.push(p.word("a field")?);
    }
    if !p.keyword("FROM") {
        return Err(malformed("expected FROM"));
    }
    let object = p.word("an object")?;
    let filter = if p.keyword("WHERE") { Some(p.or()?) } else { None };
    let mut order = Vec::new();
    if p.keyword("ORDER") {
        if !p.keyword("BY") {
            return Err(malformed("expected BY"));
        }
        loop {
            let f = p.word("a field")?;
            let desc = if p.keyword("DESC") {
                true
            } else {
                p.keyword("ASC");
                false
            };
            order.push((f, desc));
            if p.peek() != Some(&Tok::Comma) {
                break;
            }
            p.pos += 1;
        }
    }
    let limit = if p.keyword("LIMIT") {
        Some(p.word("a number")?.parse::<usize>().map_err(|_| malformed("LIMIT takes a number"))?)
    } else {
        None
    };
    if let Some(t) = p.peek() {
        return Err(malformed(format!("unexpected token: {t:?}")));
    }
    Ok(Select { fields, object, filter, order, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_queries_the_source_sends() {
        let q = "SELECT Id, Contact.Email FROM Case WHERE Reason IN ('Privacy Request', 'GDPR') AND \
                 (SystemModstamp > 2024-05-01T10:00:07Z OR (SystemModstamp = 2024-05-01T10:00:07Z AND Id > '500A\\'')) \
                 ORDER BY SystemModstamp, Id LIMIT 200";
        let s = parse_select(q).unwrap();
        assert_eq!(s.fields, ["Id", "Contact.Email"]);
        assert_eq!(s.object, "Case");
        assert_eq!(s.order, [("SystemModstamp".to_owned(), false), ("Id".to_owned(), false)]);
        assert_eq!(s.limit, Some(200));
        let rec = json!({"Reason": "GDPR", "SystemModstamp": "2024-05-01T10:00:07.000+0000", "Id": "500B"});
        let value = |f: &str| rec.get(f).cloned().unwrap_or(Value::Null);
        assert!(s.filter.as_ref().unwrap().eval(&value));
        let rec = json!({"Reason": "GDPR", "SystemModstamp": "2024-05-01T10:00:07.000+0000", "Id": "500A"});
        let value = |f: &str| rec.get(f).cloned().unwrap_or(Value::Null);
        assert!(!s.filter.as_ref().unwrap().eval(&value), "not strictly after");
        assert!(parse_select("SELECT Id FROM Account WHERE Name = 'x").is_err());
        assert!(parse_select("SELECT Id FROM Account LIMIT 5 garbage").is_err());
        assert!(parse_select("SELECT FROM Account").is_err());
    }

    #[test]
    fn an_empty_org_knows_the_standard_fields_and_refuses_others() {
        let sys = SalesforceState::default();
        let q = "SELECT Id, Name, BillingCountryCode FROM Account WHERE Type = 'x' ORDER BY Id LIMIT 5";
        assert_eq!(run_query(&sys, q, false, "v60.0").unwrap(), Vec::<Value>::new());
        let q = "SELECT Id, Contact.Email FROM Case WHERE RecordType.DeveloperName = 'P' LIMIT 5";
        assert!(run_query(&sys, q, false, "v60.0").is_ok());
        let err = run_query(&sys, "SELECT Id, Nope__c FROM Account", false, "v60.0").unwrap_err();
        assert_eq!(err.0, "INVALID_FIELD");
        assert_eq!(run_query(&sys, "SELECT Id FROM Opportunity", false, "v60.0").unwrap_err().0, "INVALID_TYPE");
    }
}
