//! The admin HTTP server every process runs: `/metrics` (Prometheus text), `/healthz` (the process is
//! alive), `/readyz` (at least one component registered, and every registered one is ready and its
//! last health check passed), `/status` (a JSON document each component contributes to: partitions,
//! lag, quota state, parked keys…) and a read-only status page rendering it (`/`, `/ui`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::RwLock;

use crate::telemetry::Metrics;

type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;
type ConditionFn = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Shared state of the admin server: metrics, readiness flags, health results and status providers.
#[derive(Clone)]
pub struct Admin {
    metrics: Metrics,
    ready: Arc<RwLock<BTreeMap<String, Arc<AtomicBool>>>>,
    health: Arc<RwLock<BTreeMap<String, Arc<RwLock<HealthState>>>>>,
    status: Arc<RwLock<BTreeMap<String, StatusFn>>>,
    /// Readiness conditions a component reports itself (see [`Admin::ready_condition`]).
    conditions: Arc<RwLock<BTreeMap<String, ConditionFn>>>,
    started: chrono::DateTime<chrono::Utc>,
}

/// A component's readiness switch, returned by [`Admin::readiness`].
#[derive(Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the component ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
}

/// The last health-check result of a component.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HealthState {
    /// True once a check passed and no later one failed.
    pub ok: bool,
    /// Why the last check failed.
    pub error: Option<String>,
    /// When the last check finished.
    pub checked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where a component reports its health-check results, returned by [`Admin::health`].
#[derive(Clone)]
pub struct Health(Arc<RwLock<HealthState>>);

impl Health {
    /// The last check passed.
    pub fn passed(&self) {
        *self.0.write() = HealthState { ok: true, error: None, checked_at: Some(chrono::Utc::now()) };
    }
    /// The last check failed with `error` (shown by `/readyz` and `/status`; never a secret).
    pub fn failed(&self, error: &str) {
        *self.0.write() =
            HealthState { ok: false, error: Some(error.to_owned()), checked_at: Some(chrono::Utc::now()) };
    }
}

impl Admin {
    /// A new admin state around `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            metrics,
            ready: Default::default(),
            health: Default::default(),
            status: Default::default(),
            conditions: Default::default(),
            started: chrono::Utc::now(),
        }
    }

    /// The metrics this server exposes.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Registers a component that starts not ready (or returns the switch it already has);
    /// `/readyz` answers 200 only when at least one component is registered and all are ready and
    /// healthy. The CLI registers every configured connector before starting any, so a connector
    /// that has not started yet keeps the process not ready.
    pub fn readiness(&self, component: &str) -> Readiness {
        let mut map = self.ready.write();
        Readiness(map.entry(component.to_owned()).or_insert_with(|| Arc::new(AtomicBool::new(false))).clone())
    }

    /// Registers health reporting for `component` (not healthy until a check passed), or returns the
    /// handle it already has.
    pub fn health(&self, component: &str) -> Health {
        let mut map = self.health.write();
        Health(map.entry(component.to_owned()).or_default().clone())
    }

    /// Registers a condition of `component`'s readiness, read at every `/readyz` (and `/status`):
    /// while it answers a reason, the started component is not ready, with that reason. For what a
    /// component sees in its own work rather than through a health check (its state store refusing
    /// writes for a while); replaces an earlier one.
    pub fn ready_condition(&self, component: &str, f: impl Fn() -> Option<String> + Send + Sync + 'static) {
        self.conditions.write().insert(component.to_owned(), Arc::new(f));
    }

    /// Registers a function whose JSON result appears under `component` in `/status`.
    pub fn status_provider(&self, component: &str, f: impl Fn() -> serde_json::Value + Send + Sync + 'static) {
        self.status.write().insert(component.to_owned(), Arc::new(f));
    }

    /// The current `/status` document.
    pub fn status_json(&self) -> serde_json::Value {
        let providers: Vec<(String, StatusFn)> =
            self.status.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut out = serde_json::Map::new();
        out.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        out.insert("started_at".into(), self.started.to_rfc3339().into());
        let not_ready = self.not_ready();
        out.insert("ready".into(), not_ready.is_empty().into());
        out.insert("not_ready".into(), not_ready.into());
        let health: serde_json::Map<String, serde_json::Value> = self
            .health
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(&*v.read()).unwrap_or_default()))
            .collect();
        out.insert("health".into(), health.into());
        for (k, f) in providers {
            out.insert(k, f());
        }
        serde_json::Value::Object(out)
    }

    /// Why the process is not ready, one entry per component; empty when ready.
    pub fn not_ready(&self) -> Vec<String> {
        let ready = self.ready.read();
        if ready.is_empty() {
            return vec!["no connector has registered yet".to_owned()];
        }
        let health = self.health.read();
        let conditions = self.conditions.read();
        let mut out = Vec::new();
        for (name, flag) in ready.iter() {
            match health.get(name).map(|h| h.read().clone()) {
                Some(HealthState { ok: false, error: Some(e), .. }) => out.push(format!("{name}: {e}")),
                Some(HealthState { ok: false, .. }) => out.push(format!("{name}: health not checked yet")),
                _ if !flag.load(Ordering::Acquire) => out.push(format!("{name}: starting")),
                _ => {
                    if let Some(why) = conditions.get(name).and_then(|f| f()) {
                        out.push(format!("{name}: {why}"));
                    }
                }
            }
        }
        out
    }

    /// The axum router: `/metrics`, `/healthz`, `/readyz`, `/status` and the status page (`/`, `/ui`).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/status", get(status))
            .route("/", get(crate::status_page::page))
            .route("/ui", get(crate::status_page::page))
            .with_state(self.clone())
    }

    /// Serves the router on `addr` (port 0 picks a free port) until `shutdown` resolves.
    pub async fn serve(
        &self,
        addr: SocketAddr,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let router = self.router();
        let handle = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
                tracing::error!(error = %e, "admin server stopped");
            }
        });
        Ok((local, handle))
    }
}

async fn metrics(State(a): State<Admin>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], a.metrics.render())
}

async fn readyz(State(a): State<Admin>) -> impl IntoResponse {
    let waiting = a.not_ready();
    if waiting.is_empty() {
        (StatusCode::OK, "ready".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}", waiting.join("; ")))
    }
}

async fn status(State(a): State<Admin>) -> impl IntoResponse {
    Json(a.status_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let resp = router.oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn readiness_metrics_and_status() {
        let admin = Admin::new(Metrics::new());
        let r = admin.readiness("sink");
        admin.status_provider("sink", || serde_json::json!({"partitions": [0, 1]}));
        admin.metrics().dlq_events.with_label_values(&["s", "invalid_enum"]).inc();

        assert_eq!(get(admin.router(), "/healthz").await.0, StatusCode::OK);
        let (code, body) = get(admin.router(), "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("sink"));
        r.set(true);
        assert_eq!(get(admin.router(), "/readyz").await.0, StatusCode::OK);

        let (_, metrics) = get(admin.router(), "/metrics").await;
        assert!(metrics.contains("dastra_connect_dlq_events_total{connector=\"s\",reason=\"invalid_enum\"} 1"));
        let (_, status) = get(admin.router(), "/status").await;
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(v["sink"]["partitions"][1], 1);
        assert_eq!(v["ready"], true);
    }

    #[tokio::test]
    async fn a_condition_makes_a_started_component_not_ready_while_it_holds() {
        let admin = Admin::new(Metrics::new());
        let failing = Arc::new(AtomicBool::new(true));
        let f = failing.clone();
        admin.ready_condition("sink", move || f.load(Ordering::SeqCst).then(|| "ledger writes failing".to_owned()));
        let r = admin.readiness("sink");
        assert_eq!(admin.not_ready(), vec!["sink: starting"], "not started yet: that is the reason");
        r.set(true);
        let (code, body) = get(admin.router(), "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("sink: ledger writes failing"), "{body}");
        failing.store(false, Ordering::SeqCst);
        assert_eq!(get(admin.router(), "/readyz").await.0, StatusCode::OK, "read at every request");
    }

    #[tokio::test]
    async fn ready_only_when_every_registered_component_is_ready_and_healthy() {
        let admin = Admin::new(Metrics::new());
        let (code, body) = get(admin.router(), "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "an empty set is not ready");
        assert!(body.contains("no connector"), "{body}");

        // Both connectors registered up front, as `run` does; only one has started.
        let a = admin.readiness("a");
        let _b = admin.readiness("b");
        let ha = admin.health("a");
        a.set(true);
        let (code, body) = get(admin.router(), "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("a: health not checked yet") && body.contains("b: starting"), "{body}");
        ha.passed();
        let (code, body) = get(admin.router(), "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body.contains("a:") && body.contains("b: starting"), "{body}");

        // The same switch comes back to the connector that registers itself later.
        admin.readiness("b").set(true);
        assert_eq!(get(admin.router(), "/readyz").await.0, StatusCode::OK);

        // A failing periodic check makes the process not ready, with the reason.
        ha.failed("dastra: Dastra answered 503");
        let (code, body) = get(admin.router(), "/readyz").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("a: dastra: Dastra answered 503"), "{body}");
        let status = admin.status_json();
        assert_eq!(status["ready"], false);
        assert_eq!(status["health"]["a"]["ok"], false);
        ha.passed();
        assert_eq!(get(admin.router(), "/readyz").await.0, StatusCode::OK);
    }
}
