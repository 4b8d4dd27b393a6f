//! `dastra-connect run`: start the admin server and every configured connector; stop them all on
//! SIGTERM/SIGINT or when one fails fatally.
//!
//! Each connector runs in a `connector` span (its name is on every log line it causes, bus and HTTP
//! layers included), behind its health checks: they must pass once before the connector starts
//! (transient failures are retried, a fatal one such as a rejected API key stops the process with
//! the connector's name and the reason), then run every `admin.health_interval`; a failure makes
//! `/readyz` answer 503 with the reason. Every configured connector is registered before any starts,
//! so `/readyz` is 503 until all of them are ready. A panicking connector is logged with its name
//! and stops the process.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dastra_connect_core::admin::{Admin, Health};
use dastra_connect_core::connector::{Connector, ConnectorContext};
use dastra_connect_core::health::{self, HealthCheck, HealthError};
use dastra_connect_core::telemetry::tracing_setup::CONNECTOR_SPAN_TARGET;
use dastra_connect_core::telemetry::{Metrics, init_tracing};
use futures::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::app_config::AppConfig;

/// Runs the config at `path` until a signal arrives or a connector fails.
pub async fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = AppConfig::load(path)?;
    let _telemetry = init_tracing(&cfg.telemetry)?;
    log_panics();
    let codec = cfg.codec()?;
    let admin = Admin::new(Metrics::new());
    // Registered before any starts: /readyz stays 503 until every one of them is ready.
    for name in cfg.connectors.keys() {
        admin.readiness(name);
        admin.health(name);
    }
    let shutdown = CancellationToken::new();
    let (admin_addr, admin_task) = admin
        .serve(cfg.admin.listen, shutdown.clone().cancelled_owned())
        .await
        .map_err(|e| anyhow::anyhow!("admin.listen {}: {e}", cfg.admin.listen))?;
    tracing::info!(%admin_addr, connectors = ?cfg.connector_names(), "dastra-connect starting");

    tokio::spawn(stop_on_signal(shutdown.clone()));

    let mut tasks = tokio::task::JoinSet::new();
    for (name, connector) in &cfg.connectors {
        let ctx = cfg.context(name, &codec, &admin);
        let span = connector_span(name);
        let built = connector.build();
        let checks =
            span.in_scope(|| built.health_checks(&ctx)).map_err(|e| anyhow::anyhow!("connector `{name}`: {e:#}"))?;
        let supervised = Supervised {
            name: name.clone(),
            connector: built,
            ctx,
            checks,
            health: admin.health(name),
            every: cfg.admin.health_interval,
            token: shutdown.child_token(),
        };
        tasks.spawn(supervised.run().instrument(span));
    }

    let mut failed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((name, Ok(()))) => tracing::info!(connector = %name, "connector stopped"),
            Ok((name, Err(e))) => {
                tracing::error!(connector = %name, error = %format!("{e:#}"), "connector failed; stopping the others");
                failed.push(format!("connector `{name}`: {e:#}"));
                shutdown.cancel();
            }
            Err(e) => {
                // Panics are caught inside the task (with the name); this is a cancelled task.
                tracing::error!(error = %e, "connector task ended abnormally; stopping the others");
                failed.push(format!("a connector task ended abnormally: {e}"));
                shutdown.cancel();
            }
        }
    }
    shutdown.cancel();
    let _ = admin_task.await;
    if failed.is_empty() { Ok(()) } else { anyhow::bail!("{}", failed.join("; ")) }
}

/// The span every log line of connector `name` is written in. Its target is left out of trace
/// export ([`CONNECTOR_SPAN_TARGET`]): a process-long span would otherwise become the root
/// of every trace the connector starts.
pub fn connector_span(name: &str) -> tracing::Span {
    tracing::info_span!(target: CONNECTOR_SPAN_TARGET, "connector", connector = %name)
}

/// A connector with its health checks, run under supervision.
struct Supervised {
    name: String,
    connector: Box<dyn Connector>,
    ctx: ConnectorContext,
    checks: Vec<Arc<dyn HealthCheck>>,
    health: Health,
    every: Duration,
    token: CancellationToken,
}

impl Supervised {
    async fn run(self) -> (String, anyhow::Result<()>) {
        let Supervised { name, connector, ctx, checks, health, every, token } = self;
        if let Err(e) = wait_healthy(&checks, &health, &token).await {
            return (name, Err(anyhow::anyhow!("{e}")));
        }
        if token.is_cancelled() {
            return (name, Ok(()));
        }
        let fatal = Arc::new(parking_lot::Mutex::new(None));
        let monitor = tokio::spawn(monitor(checks, health, every, token.clone(), fatal.clone()).in_current_span());
        let outcome = AssertUnwindSafe(connector.run(ctx, token.clone())).catch_unwind().await;
        monitor.abort();
        let result = match outcome {
            Ok(r) => r,
            Err(panic) => {
                let what = panic_message(panic.as_ref());
                tracing::error!(panic = %what, "connector panicked; stopping the process");
                Err(anyhow::anyhow!("panicked: {what}"))
            }
        };
        if let Some(e) = fatal.lock().take() {
            return (name, Err(anyhow::anyhow!("{e}")));
        }
        (name, result)
    }
}

/// Runs the checks until they pass (transient failures are retried with backoff) or one fails
/// fatally. Returns `Ok` early when `token` is cancelled.
async fn wait_healthy(
    checks: &[Arc<dyn HealthCheck>],
    health: &Health,
    token: &CancellationToken,
) -> Result<(), HealthError> {
    let mut delay = Duration::from_secs(1);
    loop {
        match health::run_all(checks).await {
            Ok(()) => {
                health.passed();
                return Ok(());
            }
            Err(e) if e.fatal => {
                health.failed(&e.to_string());
                tracing::error!(error = %e, "health check failed fatally");
                return Err(e);
            }
            Err(e) => {
                health.failed(&e.to_string());
                tracing::warn!(error = %e, retry_in_s = delay.as_secs(), "health check failed; not starting yet");
            }
        }
        tokio::select! {
            _ = token.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Re-runs the checks every `every` while the connector runs; a fatal failure is stored in `fatal`
/// and stops the connector.
async fn monitor(
    checks: Vec<Arc<dyn HealthCheck>>,
    health: Health,
    every: Duration,
    token: CancellationToken,
    fatal: Arc<parking_lot::Mutex<Option<HealthError>>>,
) {
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match health::run_all(&checks).await {
            Ok(()) => health.passed(),
            Err(e) if e.fatal => {
                health.failed(&e.to_string());
                tracing::error!(error = %e, "health check failed fatally; stopping the connector");
                *fatal.lock() = Some(e);
                token.cancel();
                return;
            }
            Err(e) => {
                health.failed(&e.to_string());
                tracing::warn!(error = %e, "health check failed; reported not ready");
            }
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// Panics go to the log too, inside the span where they happen (the connector's), with where.
fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(panic = %panic_message(info.payload()), %location, "panic");
        default(info);
    }));
}

/// Cancels `token` on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
pub async fn stop_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                    _ = token.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use dastra_connect_core::bus::{BusConfig, NatsConfig};
    use dastra_connect_core::codec::Codec;
    use dastra_connect_core::connector::Topics;

    struct Panics;

    #[async_trait]
    impl Connector for Panics {
        async fn run(self: Box<Self>, _: ConnectorContext, _: CancellationToken) -> anyhow::Result<()> {
            panic!("boom in the mapping");
        }
    }

    /// A check that passes or fails as told, counting its runs.
    struct Scripted(parking_lot::Mutex<Vec<Result<(), HealthError>>>);

    #[async_trait]
    impl HealthCheck for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        async fn check(&self) -> Result<(), HealthError> {
            let mut left = self.0.lock();
            if left.len() > 1 { left.remove(0) } else { left[0].clone() }
        }
    }

    fn supervised(connector: Box<dyn Connector>, script: Vec<Result<(), HealthError>>) -> (Supervised, Admin) {
        let admin = Admin::new(Metrics::new());
        let ctx = ConnectorContext {
            name: "crm-sink".into(),
            bus: BusConfig::Nats(NatsConfig::new("nats://127.0.0.1:1")),
            topics: Topics::default(),
            codec: Codec::json(),
            metrics: admin.metrics().clone(),
            admin: admin.clone(),
        };
        let s = Supervised {
            name: "crm-sink".into(),
            connector,
            ctx,
            checks: vec![Arc::new(Scripted(parking_lot::Mutex::new(script)))],
            health: admin.health("crm-sink"),
            every: Duration::from_millis(20),
            token: CancellationToken::new(),
        };
        (s, admin)
    }

    #[tokio::test]
    async fn a_panicking_connector_ends_with_its_name_and_the_panic_message() {
        let (s, _admin) = supervised(Box::new(Panics), vec![Ok(())]);
        let (name, result) = s.run().await;
        assert_eq!(name, "crm-sink");
        let err = format!("{:#}", result.unwrap_err());
        assert!(err.contains("panicked: boom in the mapping"), "{err}");
    }

    struct RunsUntilCancelled;

    #[async_trait]
    impl Connector for RunsUntilCancelled {
        async fn run(self: Box<Self>, ctx: ConnectorContext, token: CancellationToken) -> anyhow::Result<()> {
            ctx.admin.readiness(&ctx.name).set(true);
            token.cancelled().await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_transient_failure_delays_the_start_and_a_later_fatal_one_stops_the_connector() {
        let script = vec![
            Err(HealthError::transient("dastra", "Dastra answered 503")),
            Ok(()),
            Ok(()),
            Err(HealthError::fatal("dastra", "Dastra rejected the API key (HTTP 401 on GET /me)")),
        ];
        let (s, admin) = supervised(Box::new(RunsUntilCancelled), script);
        let (_, result) = tokio::time::timeout(Duration::from_secs(30), s.run()).await.unwrap();
        let err = format!("{:#}", result.unwrap_err());
        assert!(err.contains("Dastra rejected the API key"), "{err}");
        assert!(
            admin.not_ready().iter().any(|r| r.contains("crm-sink: dastra: Dastra rejected")),
            "{:?}",
            admin.not_ready()
        );
    }
}
