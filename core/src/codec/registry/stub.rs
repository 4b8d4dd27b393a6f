//! An in-memory stand-in for a Confluent Schema Registry, serving the REST routes our client and
//! Confluent's own clients (e.g. Python `confluent-kafka`'s `AvroSerializer`) use. No
//! Confluent-compatible registry can be installed on the build machines, so tests, the
//! quickstart and docker-less demos use this.
//!
//! Routes: `POST /subjects/{s}/versions` (register; idempotent, global ids shared across
//! subjects like Confluent's), `POST /subjects/{s}` (lookup), `GET /schemas/ids/{id}`,
//! `GET /subjects`, `GET /subjects/{s}/versions`, `GET /subjects/{s}/versions/{n|latest}`.
//! Schemas are compared by Avro Parsing Canonical Form; invalid Avro is refused with 422/42201.
//! Not implemented: compatibility checks, deletes, modes, references, non-Avro schema types.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::REGISTRY_CONTENT_TYPE;

#[derive(Debug, Default)]
struct Inner {
    /// Schema texts by id - 1, with their canonical forms.
    schemas: Vec<(String, String)>,
    /// Versions of each subject: schema ids in version order.
    subjects: BTreeMap<String, Vec<u32>>,
}

/// The stub's state; clone it to keep a handle on a router you serve.
#[derive(Debug, Clone, Default)]
pub struct StubRegistry {
    inner: Arc<Mutex<Inner>>,
    requests: Arc<AtomicU64>,
}

/// A fresh, empty stub registry router.
pub fn router() -> Router {
    StubRegistry::new().router()
}

impl StubRegistry {
    /// An empty registry.
    pub fn new() -> StubRegistry {
        StubRegistry::default()
    }

    /// The axum router serving this registry.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/subjects", get(list_subjects))
            .route("/subjects/{subject}", post(lookup))
            .route("/subjects/{subject}/versions", post(register).get(list_versions))
            .route("/subjects/{subject}/versions/{version}", get(get_version))
            .route("/schemas/ids/{id}", get(get_schema))
            .with_state(self.clone())
    }

    /// How many requests the stub has served (lets tests prove client-side caching).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How many distinct schemas are registered.
    pub fn schema_count(&self) -> usize {
        self.inner.lock().schemas.len()
    }

    /// Serves the registry on `127.0.0.1` on a free port; returns its base URL and the server
    /// task (abort it, or drop the runtime, to stop).
    pub async fn spawn(&self) -> std::io::Result<(url::Url, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let app = self.router();
        let handle = tokio::spawn(async move {
            // The server runs until the task is aborted; an accept error ends it.
            let _ = axum::serve(listener, app).await;
        });
        let url = url::Url::parse(&format!("http://{addr}")).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok((url, handle))
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, REGISTRY_CONTENT_TYPE)], body.to_string()).into_response()
}

fn error(status: StatusCode, code: i64, message: &str) -> Response {
    reply(status, json!({ "error_code": code, "message": message }))
}

/// Reads `{"schema": "...", "schemaType"?: "AVRO"}` and returns the text and its canonical form,
/// or the 422 message.
fn parse_request(body: &[u8]) -> Result<(String, String), &'static str> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "Invalid request body")?;
    if let Some(t) = v.get("schemaType").and_then(Value::as_str)
        && t != "AVRO"
    {
        return Err("Only AVRO schemas are supported by this stub");
    }
    let text = v.get("schema").and_then(Value::as_str).ok_or("Missing schema")?;
    let schema = apache_avro::Schema::parse_str(text).map_err(|_| "Invalid schema")?;
    Ok((text.to_owned(), crate::codec::schemas::canonical_form(&schema)))
}

async fn register(State(reg): State<StubRegistry>, Path(subject): Path<String>, body: Bytes) -> Response {
    reg.count();
    let (text, canonical) = match parse_request(&body) {
        Ok(v) => v,
        Err(m) => return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, m),
    };
    let mut inner = reg.inner.lock();
    let id = match inner.schemas.iter().position(|(_, c)| *c == canonical) {
        Some(i) => i as u32 + 1,
        None => {
            inner.schemas.push((text, canonical));
            inner.schemas.len() as u32
        }
    };
    let versions = inner.subjects.entry(subject).or_default();
    if !versions.contains(&id) {
        versions.push(id);
    }
    reply(StatusCode::OK, json!({ "id": id }))
}

async fn lookup(State(reg): State<StubRegistry>, Path(subject): Path<String>, body: Bytes) -> Response {
    reg.count();
    let (_, canonical) = match parse_request(&body) {
        Ok(v) => v,
        Err(m) => return error(StatusCode::UNPROCESSABLE_ENTITY, 42201, m),
    };
    let inner = reg.inner.lock();
    let Some(versions) = inner.subjects.get(&subject) else {
        return error(StatusCode::NOT_FOUND, 40401, "Subject not found");
    };
    for (i, id) in versions.iter().enumerate() {
        if let Some((text, c)) = inner.schemas.get(*id as usize - 1)
            && *c == canonical
        {
            return reply(StatusCode::OK, json!({ "subject": subject, "id": id, "version": i + 1, "schema": text }));
        }
    }
    error(StatusCode::NOT_FOUND, 40403, "Schema not found")
}

async fn get_schema(State(reg): State<StubRegistry>, Path(id): Path<String>) -> Response {
    reg.count();
    let inner = reg.inner.lock();
    let found = id.parse::<usize>().ok().filter(|i| *i >= 1).and_then(|i| inner.schemas.get(i - 1));
    match found {
        Some((text, _)) => reply(StatusCode::OK, json!({ "schema": text })),
        None => error(StatusCode::NOT_FOUND, 40403, "Schema not found"),
    }
}

async fn list_subjects(State(reg): State<StubRegistry>) -> Response {
    reg.count();
    let inner = reg.inner.lock();
    reply(StatusCode::OK, json!(inner.subjects.keys().collect::<Vec<_>>()))
}

async fn list_versions(State(reg): State<StubRegistry>, Path(subject): Path<String>) -> Response {
    reg.count();
    let inner = reg.inner.lock();
    match inner.subjects.get(&subject) {
        Some(v) => reply(StatusCode::OK, json!((1..=v.len()).collect::<Vec<_>>())),
        None => error(StatusCode::NOT_FOUND, 40401, "Subject not found"),
    }
}

async fn get_version(State(reg): State<StubRegistry>, Path((subject, version)): Path<(String, String)>) -> Response {
    reg.count();
    let inner = reg.inner.lock();
    let Some(versions) = inner.subjects.get(&subject) else {
        return error(StatusCode::NOT_FOUND, 40401, "Subject not found");
    };
    let index = if version == "latest" || version == "-1" {
        versions.len().checked_sub(1)
    } else {
        version.parse::<usize>().ok().filter(|v| *v >= 1 && *v <= versions.len()).map(|v| v - 1)
    };
    let Some(index) = index else {
        return error(StatusCode::NOT_FOUND, 40402, "Version not found");
    };
    let id = versions[index];
    let text = inner.schemas.get(id as usize - 1).map(|(t, _)| t.clone()).unwrap_or_default();
    reply(StatusCode::OK, json!({ "subject": subject, "id": id, "version": index + 1, "schema": text }))
}
