//! The admin HTTP server every process runs: `/metrics` (Prometheus text), `/healthz` (the process is
//! alive), `/readyz` (every component that registered a readiness flag is ready) and `/status` (a JSON
//! document each component contributes to: partitions, lag, quota state, parked keys…).

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

/// Shared state of the admin server: metrics, readiness flags and status providers.
#[derive(Clone)]
pub struct Admin {
    metrics: Metrics,
    ready: Arc<RwLock<BTreeMap<String, Arc<AtomicBool>>>>,
    status: Arc<RwLock<BTreeMap<String, StatusFn>>>,
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

impl Admin {
    /// A new admin state around `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics, ready: Default::default(), status: Default::default() }
    }

    /// The metrics this server exposes.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Registers a component that starts not ready; `/readyz` answers 200 only when all are ready.
    pub fn readiness(&self, component: &str) -> Readiness {
        let flag = Arc::new(AtomicBool::new(false));
        self.ready.write().insert(component.to_owned(), flag.clone());
        Readiness(flag)
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
        out.insert("ready".into(), self.not_ready().is_empty().into());
        for (k, f) in providers {
            out.insert(k, f());
        }
        serde_json::Value::Object(out)
    }

    fn not_ready(&self) -> Vec<String> {
        self.ready.read().iter().filter(|(_, f)| !f.load(Ordering::Acquire)).map(|(k, _)| k.clone()).collect()
    }

    /// The axum router with the four routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/status", get(status))
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
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}", waiting.join(", ")))
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
}
