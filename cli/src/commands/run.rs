//! `dastra-connect run`: start the admin server and every configured connector; stop them all on
//! SIGTERM/SIGINT or when one fails fatally.

use std::path::Path;

use dastra_connect_core::admin::Admin;
use dastra_connect_core::connector::ConnectorContext;
use dastra_connect_core::telemetry::{Metrics, init_tracing};
use tokio_util::sync::CancellationToken;

use crate::app_config::AppConfig;

/// Runs the config at `path` until a signal arrives or a connector fails.
pub async fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = AppConfig::load(path)?;
    let _telemetry = init_tracing(&cfg.telemetry)?;
    let codec = cfg.codec()?;
    let metrics = Metrics::new();
    let admin = Admin::new(metrics.clone());
    let shutdown = CancellationToken::new();
    let (admin_addr, admin_task) = admin
        .serve(cfg.admin.listen, shutdown.clone().cancelled_owned())
        .await
        .map_err(|e| anyhow::anyhow!("admin.listen {}: {e}", cfg.admin.listen))?;
    tracing::info!(%admin_addr, connectors = ?cfg.connector_names(), "dastra-connect starting");

    tokio::spawn(stop_on_signal(shutdown.clone()));

    let mut tasks = tokio::task::JoinSet::new();
    for (name, connector) in &cfg.connectors {
        let ctx = ConnectorContext {
            name: name.clone(),
            bus: cfg.bus.clone(),
            topics: cfg.topics.clone(),
            codec: codec.clone(),
            metrics: metrics.clone(),
            admin: admin.clone(),
        };
        let token = shutdown.child_token();
        let built = connector.build();
        let name = name.clone();
        tasks.spawn(async move { (name, built.run(ctx, token).await) });
    }

    let mut failed = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((name, Ok(()))) => tracing::info!(connector = %name, "connector stopped"),
            Ok((name, Err(e))) => {
                tracing::error!(connector = %name, error = %format!("{e:#}"), "connector failed; stopping the others");
                failed.push(name);
                shutdown.cancel();
            }
            Err(e) => {
                tracing::error!(error = %e, "connector task panicked; stopping the others");
                failed.push("<panicked>".into());
                shutdown.cancel();
            }
        }
    }
    shutdown.cancel();
    let _ = admin_task.await;
    if failed.is_empty() { Ok(()) } else { anyhow::bail!("connector(s) failed: {}", failed.join(", ")) }
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
