//! A Confluent Schema Registry client (the REST API subset a serializer needs), with caches so
//! that a steady stream of messages makes no registry calls, and an in-memory stub of the same
//! REST routes ([`stub`]) for tests and the quickstart.
//!
//! Subjects follow TopicNameStrategy: `<topic>-value`. Register-or-lookup: with `auto_register`
//! the schema is `POST`ed to `/subjects/{subject}/versions` (idempotent in Confluent: an identical
//! schema returns its existing id); without it, `POST /subjects/{subject}` looks it up and a
//! schema the registry does not hold is an error.

pub mod stub;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema;
use parking_lot::Mutex;
use serde::Deserialize;
use url::Url;

use crate::config::Secret;
use crate::error::{Classify, ErrorClass};

/// Content type of Schema Registry requests and responses.
pub const REGISTRY_CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The TopicNameStrategy subject of a topic's values.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// What went wrong talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Network failure or timeout: the registry may come back.
    #[error("schema registry unreachable: {0}")]
    Unavailable(String),
    /// The registry answered with an error status.
    #[error("schema registry answered {status} (error code {error_code}): {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Confluent `error_code` (0 when absent).
        error_code: i64,
        /// Confluent `message`.
        message: String,
    },
    /// The registry's answer is not what the API documents.
    #[error("unexpected schema registry response: {0}")]
    InvalidResponse(String),
    /// A schema from the registry does not parse as Avro.
    #[error("schema {id} from the registry is not valid Avro: {reason}")]
    InvalidSchema {
        /// Schema id.
        id: u32,
        /// Parser message.
        reason: String,
    },
    /// The client configuration is unusable (bad URL).
    #[error("invalid schema registry configuration: {0}")]
    Config(String),
}

impl Classify for RegistryError {
    fn class(&self) -> ErrorClass {
        match self {
            RegistryError::Unavailable(_) => ErrorClass::Retryable,
            RegistryError::Status { status, .. } => {
                if *status == 408 || *status == 429 || *status >= 500 {
                    ErrorClass::Retryable
                } else {
                    ErrorClass::Permanent
                }
            }
            RegistryError::InvalidResponse(_) => ErrorClass::Retryable,
            RegistryError::InvalidSchema { .. } => ErrorClass::Permanent,
            RegistryError::Config(_) => ErrorClass::Fatal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            RegistryError::Unavailable(_) => "registry_unavailable",
            // 40403 schema not found, 40401 subject not found: the message's writer is unknown.
            RegistryError::Status { status: 404, .. } => "unknown_schema",
            RegistryError::Status { status, .. } if *status == 408 || *status == 429 || *status >= 500 => {
                "registry_unavailable"
            }
            RegistryError::Status { .. } => "registry_rejected",
            RegistryError::InvalidResponse(_) => "registry_invalid_response",
            RegistryError::InvalidSchema { .. } => "unknown_schema",
            RegistryError::Config(_) => "registry_config",
        }
    }
}

/// How to reach the registry (the `registry:` block of a Confluent codec config).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL, e.g. `http://registry:8081`.
    pub url: Url,
    /// Basic-auth user.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic-auth password (never logged).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Register schemas that are missing (`true`, default) or only look them up (`false`, for
    /// registries where producers may not write).
    #[serde(default = "default_true")]
    pub auto_register: bool,
    /// Per-request timeout (default `10s`).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

fn default_true() -> bool {
    true
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl RegistryConfig {
    /// Defaults for a URL: no auth, auto-register, 10 s timeout.
    pub fn new(url: Url) -> RegistryConfig {
        RegistryConfig { url, username: None, password: None, auto_register: true, timeout: Duration::from_secs(10) }
    }
}

#[derive(Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaResponse {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
}

/// One registered version of a subject.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubjectVersion {
    /// Subject.
    pub subject: String,
    /// Global schema id.
    pub id: u32,
    /// Version within the subject.
    pub version: u32,
    /// Schema text.
    pub schema: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: i64,
    #[serde(default)]
    message: String,
}

/// A Schema Registry client with an id cache per (subject, schema) and a schema cache per id.
#[derive(Debug)]
pub struct SchemaRegistryClient {
    config: RegistryConfig,
    http: reqwest::Client,
    /// subject → schema text → id (nested so that a hit borrows the strings instead of copying
    /// the schema text, several KB, on every encode).
    ids: Mutex<HashMap<String, HashMap<String, u32>>>,
    schemas: Mutex<HashMap<u32, Arc<Schema>>>,
}

impl SchemaRegistryClient {
    /// Builds a client (no I/O).
    pub fn new(config: RegistryConfig) -> Result<SchemaRegistryClient, RegistryError> {
        if config.url.cannot_be_a_base() {
            return Err(RegistryError::Config(format!("{} is not a base URL", config.url)));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| RegistryError::Config(e.to_string()))?;
        Ok(SchemaRegistryClient { config, http, ids: Mutex::new(HashMap::new()), schemas: Mutex::new(HashMap::new()) })
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn url(&self, segments: &[&str]) -> Result<Url, RegistryError> {
        let mut url = self.config.url.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| RegistryError::Config("URL cannot be a base".into()))?;
            path.pop_if_empty();
            // push() percent-encodes each segment, so any subject name is safe.
            for s in segments {
                path.push(s);
            }
        }
        Ok(url)
    }

    async fn send<T: serde::de::DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, RegistryError> {
        let mut request = request.header(reqwest::header::ACCEPT, REGISTRY_CONTENT_TYPE);
        if let Some(user) = &self.config.username {
            request = request.basic_auth(user, self.config.password.as_ref().map(|p| p.expose()));
        }
        let response = request.send().await.map_err(|e| RegistryError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| RegistryError::Unavailable(e.without_url().to_string()))?;
        if !status.is_success() {
            let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
            return Err(RegistryError::Status {
                status: status.as_u16(),
                error_code: parsed.as_ref().map_or(0, |b| b.error_code),
                message: parsed
                    .map_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect(), |b| b.message),
            });
        }
        serde_json::from_slice(&body).map_err(|e| RegistryError::InvalidResponse(e.to_string()))
    }

    fn json_post(&self, url: Url, schema: &str) -> reqwest::RequestBuilder {
        let body = serde_json::json!({ "schema": schema }).to_string();
        self.http.post(url).header(reqwest::header::CONTENT_TYPE, REGISTRY_CONTENT_TYPE).body(body)
    }

    /// The id of `schema` under `subject`: from the cache, else registered (auto-register) or
    /// looked up. One registry call per (subject, schema) for the client's lifetime.
    pub async fn id_for(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        if let Some(id) = self.ids.lock().get(subject).and_then(|by_schema| by_schema.get(schema)) {
            return Ok(*id);
        }
        let id = if self.config.auto_register {
            self.register(subject, schema).await?
        } else {
            self.lookup(subject, schema).await?.id
        };
        self.ids.lock().entry(subject.to_owned()).or_default().insert(schema.to_owned(), id);
        Ok(id)
    }

    /// `POST /subjects/{subject}/versions`: registers (or finds) the schema, returns its id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let url = self.url(&["subjects", subject, "versions"])?;
        let r: IdResponse = self.send(self.json_post(url, schema)).await?;
        Ok(r.id)
    }

    /// `POST /subjects/{subject}`: the version of `subject` holding this schema (404 if none).
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<SubjectVersion, RegistryError> {
        let url = self.url(&["subjects", subject])?;
        self.send(self.json_post(url, schema)).await
    }

    /// `GET /subjects`: the registered subjects. The cheapest authenticated call the API has, used
    /// as the registry's health check.
    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        let url = self.url(&["subjects"])?;
        self.send(self.http.get(url)).await
    }

    /// `GET /subjects/{subject}/versions/latest`.
    pub async fn latest(&self, subject: &str) -> Result<SubjectVersion, RegistryError> {
        let url = self.url(&["subjects", subject, "versions", "latest"])?;
        self.send(self.http.get(url)).await
    }

    /// `GET /schemas/ids/{id}`, parsed and cached (ids are immutable in a registry).
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        if let Some(s) = self.schemas.lock().get(&id) {
            return Ok(s.clone());
        }
        let url = self.url(&["schemas", "ids", &id.to_string()])?;
        let r: SchemaResponse = self.send(self.http.get(url)).await?;
        if let Some(t) = r.schema_type.as_deref()
            && t != "AVRO"
        {
            return Err(RegistryError::InvalidSchema { id, reason: format!("schema type {t} is not AVRO") });
        }
        let schema =
            Schema::parse_str(&r.schema).map_err(|e| RegistryError::InvalidSchema { id, reason: e.to_string() })?;
        let schema = Arc::new(schema);
        self.schemas.lock().insert(id, schema.clone());
        Ok(schema)
    }
}
