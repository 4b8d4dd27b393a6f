//! `DastraClient`: the HTTP client of the Dastra API. Every attempt first takes a slot from the shared
//! [`QuotaLimiter`], then sends with the configured auth and per-request timeout; transient failures
//! are retried with full-jitter backoff ([`retry`]), a 429 pauses the whole process until its
//! `Retry-After`, and a create whose outcome is unknown comes back as
//! [`DastraError::AmbiguousCreate`] instead of being repeated. Typed per-entity methods are in
//! [`resources`].

pub mod auth;
pub mod directory;
pub mod dry_run;
pub mod metrics;
pub mod resources;
pub mod retry;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use self::auth::Auth;
use self::retry::{RetryPolicy, Safety, Verdict, classify_status, classify_transport, parse_retry_after};
use crate::config::DastraClientConfig;
use crate::error::{DastraError, Redactor, TransportKind};
use crate::model::{AttachmentUpload, ProblemDetails};
use crate::quota::{Priority, QuotaGrant, QuotaLimiter};

/// How one attempt ended, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx.
    Success,
    /// Failed, and will be retried.
    Retrying,
    /// Failed for good (permanent, ambiguous or out of attempts).
    Failed,
}

/// One HTTP attempt, reported to a [`RequestObserver`].
#[derive(Debug, Clone)]
pub struct RequestEvent {
    /// HTTP method (`GET`, `POST`…).
    pub method: &'static str,
    /// Route template (low-cardinality), e.g. `POST /v1/ws/{workspaceId}/Assets`.
    pub route: &'static str,
    /// Status, when Dastra answered.
    pub status: Option<u16>,
    /// Error code of a transport failure (`dastra_timeout`…), when there was no answer.
    pub transport_error: Option<&'static str>,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// Time on the wire (after the quota slot was granted).
    pub duration: Duration,
    /// Time spent waiting for the quota slot.
    pub quota_wait: Duration,
    /// The priority class of the request.
    pub priority: Priority,
}

/// Receives one event per HTTP attempt (count requests, observe latency, count 429s). Called inline:
/// keep it cheap and non-blocking.
pub trait RequestObserver: Send + Sync {
    /// One attempt finished.
    fn request_done(&self, event: &RequestEvent);

    /// The client was built with `quota` (so an observer can export the limiter's state).
    fn quota_attached(&self, _quota: &QuotaLimiter) {}
}

/// Body of a request.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    None,
    Json(Bytes),
    /// A file in a multipart form, under the given part name.
    Multipart(AttachmentUpload, &'static str),
}

/// One logical call (possibly several attempts).
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    pub method_label: &'static str,
    pub route: &'static str,
    /// Path relative to the base URL, e.g. `v1/ws/12/Assets/5`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub payload: Payload,
    pub safety: Safety,
    pub priority: Priority,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    workspace_id: i32,
    auth: Auth,
    retry: RetryPolicy,
    quota: QuotaLimiter,
    observer: Option<Arc<dyn RequestObserver>>,
    redactor: Redactor,
    excerpt_bytes: usize,
    page_size: u32,
    request_timeout: Duration,
    directory: directory::Directory,
    /// Set by [`DastraClient::dry_run`]: nothing is sent, every call is recorded and answered here.
    dry_run: Option<dry_run::DryRun>,
}

/// The Dastra API client. Cheap to clone; clones share connections, token cache and quota.
#[derive(Clone)]
pub struct DastraClient {
    inner: Arc<Inner>,
    priority: Priority,
    /// A quota slot already granted to this handle ([`DastraClient::reserve`]): its next call's
    /// first attempt uses it instead of waiting again.
    prepaid: Option<Arc<parking_lot::Mutex<Option<QuotaGrant>>>>,
}

impl std::fmt::Debug for DastraClient {
    // Never prints credentials: only where it points.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DastraClient")
            .field("base_url", &self.inner.base.as_str())
            .field("workspace_id", &self.inner.workspace_id)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

impl DastraClient {
    /// Builds a client (no I/O). `quota` is shared by everything the process sends to Dastra: pass
    /// the same limiter to every client of the process.
    pub fn new(
        config: &DastraClientConfig,
        quota: QuotaLimiter,
        observer: Option<Arc<dyn RequestObserver>>,
    ) -> Result<Self, DastraError> {
        config.validate().map_err(|e| DastraError::Build { route: "config", detail: e.to_string() })?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("dastra-connect/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DastraError::Build { route: "client", detail: e.to_string() })?;
        let mut base = config.base_url.clone();
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let auth = Auth::new(&config.auth, config.request_timeout);
        let redactor = Redactor::new(auth.secrets());
        if let Some(o) = &observer {
            o.quota_attached(&quota);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                workspace_id: config.workspace_id,
                auth,
                retry: RetryPolicy::from(&config.retry),
                quota,
                observer,
                redactor,
                excerpt_bytes: config.error_excerpt_bytes,
                page_size: config.page_size,
                request_timeout: config.request_timeout,
                directory: directory::Directory::default(),
                dry_run: None,
            }),
            priority: Priority::Live,
            prepaid: None,
        })
    }

    /// A client that sends nothing and takes no quota: every request is recorded in the returned
    /// [`dry_run::DryRun`] and answered as Dastra is predicted to answer (see [`dry_run`]). Used by
    /// `dastra-connect plan` to run the sink's own apply code without touching Dastra.
    pub fn dry_run(config: &DastraClientConfig) -> Result<(Self, dry_run::DryRun), DastraError> {
        let quota = QuotaLimiter::new(&config.quota);
        let mut client = Self::new(config, quota, None)?;
        let record = dry_run::DryRun::default();
        if let Some(inner) = Arc::get_mut(&mut client.inner) {
            inner.dry_run = Some(record.clone());
        }
        Ok((client, record))
    }

    /// True for a [`DastraClient::dry_run`] client (nothing is sent).
    pub fn is_dry_run(&self) -> bool {
        self.inner.dry_run.is_some()
    }

    /// A handle whose requests queue in `priority` (deletes always go as [`Priority::Urgent`]).
    pub fn with_priority(&self, priority: Priority) -> Self {
        Self { inner: self.inner.clone(), priority, prepaid: None }
    }

    /// Waits for one request's quota slot in `priority` and answers a handle whose next call sends
    /// at once on that slot (later attempts of it wait as usual). The sink's request batcher
    /// waits for the slot before it seals a batch, so members keep joining while the quota holds
    /// the request back, and a member given up in the meantime is left out of the request.
    /// Dropping the handle unused wastes the slot. A dry-run client answers at once.
    pub async fn reserve(&self, priority: Priority) -> Self {
        let grant = if self.is_dry_run() {
            QuotaGrant { waited: Duration::ZERO }
        } else {
            self.inner.quota.acquire(priority).await
        };
        Self { inner: self.inner.clone(), priority, prepaid: Some(Arc::new(parking_lot::Mutex::new(Some(grant)))) }
    }

    fn take_prepaid(&self) -> Option<QuotaGrant> {
        self.prepaid.as_ref().and_then(|p| p.lock().take())
    }

    /// The priority class of this handle.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The shared quota limiter (for `/status` and metrics).
    pub fn quota(&self) -> &QuotaLimiter {
        &self.inner.quota
    }

    /// The workspace this client writes to.
    pub fn workspace_id(&self) -> i32 {
        self.inner.workspace_id
    }

    /// Default page size for lists and lookups.
    pub fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    /// OAuth2 token requests made so far (0 with API-key auth).
    pub fn token_fetches(&self) -> u64 {
        self.inner.auth.token_fetches()
    }

    pub(crate) fn ws_path(&self, rest: &str) -> String {
        format!("v1/ws/{}/{rest}", self.inner.workspace_id)
    }

    pub(crate) fn json_body<T: serde::Serialize + ?Sized>(
        route: &'static str,
        body: &T,
    ) -> Result<Payload, DastraError> {
        serde_json::to_vec(body)
            .map(|v| Payload::Json(Bytes::from(v)))
            .map_err(|e| DastraError::Build { route, detail: format!("body does not serialize: {e}") })
    }

    /// Sends and decodes the JSON answer. An empty body reads as JSON `null` (so `()` and `Option<T>`
    /// accept routes that answer nothing).
    pub(crate) async fn call_json<R: DeserializeOwned>(&self, call: Call) -> Result<R, DastraError> {
        let route = call.route;
        let body = self.execute(call).await?;
        let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"null" } else { &body };
        serde_json::from_slice(text).map_err(|e| DastraError::Decode {
            route,
            detail: e.to_string(),
            excerpt: self.inner.redactor.excerpt(&body, self.inner.excerpt_bytes),
        })
    }

    /// Sends and ignores the answer body.
    pub(crate) async fn call_unit(&self, call: Call) -> Result<(), DastraError> {
        self.execute(call).await.map(|_| ())
    }

    fn build(&self, call: &Call, auth: &auth::AuthHeader) -> Result<reqwest::RequestBuilder, DastraError> {
        let url = self
            .inner
            .base
            .join(&call.path)
            .map_err(|e| DastraError::Build { route: call.route, detail: format!("bad path: {e}") })?;
        let mut req = self
            .inner
            .http
            .request(call.method.clone(), url)
            .timeout(self.inner.request_timeout)
            .header(ACCEPT, "application/json")
            .header(auth.name.clone(), auth.value.clone());
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        // Continue the source's trace into Dastra (no-op when no OpenTelemetry layer is installed).
        let mut trace = Vec::new();
        if dastra_connect_core::telemetry::propagation::inject(&tracing::Span::current(), &mut trace) {
            for (k, v) in trace {
                req = req.header(k, v);
            }
        }
        req = match &call.payload {
            Payload::None => req,
            Payload::Json(b) => req.header(CONTENT_TYPE, "application/json").body(b.clone()),
            Payload::Multipart(file, part_name) => {
                let part = reqwest::multipart::Part::stream_with_length(
                    reqwest::Body::from(file.content.clone()),
                    file.content.len() as u64,
                )
                .file_name(file.file_name.clone())
                .mime_str(&file.content_type)
                .map_err(|e| DastraError::Build { route: call.route, detail: format!("bad content type: {e}") })?;
                // `File` for DSR attachments (the OpenAPI document); `file` for CloudStorage (inferred).
                req.multipart(reqwest::multipart::Form::new().part(*part_name, part))
            }
        };
        Ok(req)
    }

    // One argument per field of the event; a struct for a private helper would only move the list.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        call: &Call,
        attempt: u32,
        status: Option<u16>,
        transport: Option<&'static str>,
        outcome: AttemptOutcome,
        started: Instant,
        quota_wait: Duration,
    ) {
        if let Some(o) = &self.inner.observer {
            o.request_done(&RequestEvent {
                method: call.method_label,
                route: call.route,
                status,
                transport_error: transport,
                attempt,
                outcome,
                duration: started.elapsed(),
                quota_wait,
                priority: call.priority,
            });
        }
    }

    /// The retry loop. Returns the body of a 2xx answer.
    pub(crate) async fn execute(&self, call: Call) -> Result<Bytes, DastraError> {
        let inner = &self.inner;
        if let Some(dry) = &inner.dry_run {
            return Ok(dry.answer(&call));
        }
        let mut attempt: u32 = 0;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let grant = match self.take_prepaid() {
                Some(grant) if attempt == 1 => grant,
                _ => inner.quota.acquire(call.priority).await,
            };
            let auth = match inner.auth.header(&inner.http, &inner.redactor).await {
                Ok(a) => a,
                Err(e) if e_is_retryable_token(&e) && inner.retry.may_retry(attempt) => {
                    tokio::time::sleep(inner.retry.delay(attempt, None)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let redactor = match &auth.token {
                Some(t) => inner.redactor.with(t.expose()),
                None => inner.redactor.clone(),
            };
            let req = self.build(&call, &auth)?;
            let started = Instant::now();
            let sent = req.send().await;
            let (status, headers, body) = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(b) => (status, headers, b),
                        Err(e) => {
                            // The status line came but the body broke. For a create that answered 2xx
                            // the entity exists but its id is lost: ambiguous, like a timeout.
                            let kind = if e.is_timeout() { TransportKind::Timeout } else { TransportKind::Broken };
                            let delay =
                                self.transport_verdict(&call, attempt, kind, &e, &redactor, started, grant.waited)?;
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                    }
                }
                Err(e) => {
                    let kind = if e.is_connect() {
                        TransportKind::Connect
                    } else if e.is_timeout() {
                        TransportKind::Timeout
                    } else {
                        TransportKind::Broken
                    };
                    let delay = self.transport_verdict(&call, attempt, kind, &e, &redactor, started, grant.waited)?;
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };

            if status == 401 && !reauthenticated && inner.auth.invalidate(auth.token.as_ref()).await {
                // The token may have been revoked or expired early: fetch a new one once.
                reauthenticated = true;
                self.report(&call, attempt, Some(status), None, AttemptOutcome::Retrying, started, grant.waited);
                continue;
            }

            let retry_after = headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            if status == 429 {
                // Everyone stops until Dastra says so, not just this request.
                let pause = retry_after.unwrap_or(inner.retry.default_retry_after);
                inner.quota.pause_until(Instant::now() + pause);
                tracing::warn!(
                    route = call.route,
                    pause_ms = pause.as_millis() as u64,
                    "Dastra answered 429: pausing every request"
                );
            }
            let verdict = classify_status(status, call.safety);
            let retrying = verdict == Verdict::Retry && inner.retry.may_retry(attempt);
            let outcome = match (verdict, retrying) {
                (Verdict::Done, _) => AttemptOutcome::Success,
                (_, true) => AttemptOutcome::Retrying,
                _ => AttemptOutcome::Failed,
            };
            self.report(&call, attempt, Some(status), None, outcome, started, grant.waited);
            match verdict {
                Verdict::Done => return Ok(body),
                Verdict::Retry if retrying => {
                    tracing::debug!(route = call.route, status, attempt, "retrying Dastra request");
                    if status != 429 {
                        tokio::time::sleep(inner.retry.delay(attempt, retry_after)).await;
                    }
                    // After a 429 the quota pause does the waiting (for every request at once).
                    continue;
                }
                Verdict::Ambiguous => {
                    return Err(DastraError::AmbiguousCreate {
                        route: call.route,
                        cause: format!("Dastra answered {status}: {}", redactor.excerpt(&body, 200)),
                    });
                }
                Verdict::Retry | Verdict::Permanent => {
                    let invalid_fields = serde_json::from_slice::<ProblemDetails>(&body)
                        .ok()
                        .and_then(|p| p.errors)
                        .map(|e| e.into_keys().collect())
                        .unwrap_or_default();
                    return Err(DastraError::Http {
                        route: call.route,
                        status,
                        attempts: attempt,
                        excerpt: redactor.excerpt(&body, inner.excerpt_bytes),
                        invalid_fields,
                    });
                }
            }
        }
    }

    /// Decides after a transport failure: `Ok(delay)` to retry after `delay`, `Err` to give up.
    #[allow(clippy::too_many_arguments)]
    fn transport_verdict(
        &self,
        call: &Call,
        attempt: u32,
        kind: TransportKind,
        error: &reqwest::Error,
        redactor: &Redactor,
        started: Instant,
        quota_wait: Duration,
    ) -> Result<Duration, DastraError> {
        let detail = redactor.redact(&error_chain(error));
        let code = match kind {
            TransportKind::Connect => "dastra_connect",
            TransportKind::Timeout => "dastra_timeout",
            TransportKind::Broken => "dastra_connection_broken",
        };
        match classify_transport(kind, call.safety) {
            Verdict::Retry if self.inner.retry.may_retry(attempt) => {
                tracing::debug!(route = call.route, error = code, attempt, "retrying Dastra request");
                self.report(call, attempt, None, Some(code), AttemptOutcome::Retrying, started, quota_wait);
                Ok(self.inner.retry.delay(attempt, None))
            }
            Verdict::Ambiguous => {
                self.report(call, attempt, None, Some(code), AttemptOutcome::Failed, started, quota_wait);
                Err(DastraError::AmbiguousCreate { route: call.route, cause: format!("{code}: {detail}") })
            }
            _ => {
                self.report(call, attempt, None, Some(code), AttemptOutcome::Failed, started, quota_wait);
                Err(DastraError::Transport { route: call.route, kind, attempts: attempt, detail })
            }
        }
    }
}

fn e_is_retryable_token(e: &DastraError) -> bool {
    matches!(e, DastraError::Token { retryable: true, .. })
}

/// The error with its sources (reqwest's top-level message alone rarely says what happened).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
