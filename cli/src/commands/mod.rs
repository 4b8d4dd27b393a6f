//! The subcommands of the binary.

pub mod dlq;
pub mod emulator;
pub mod plan;
pub mod probe;
pub mod quickstart;
pub mod run;
pub mod schemas;

use std::path::Path;

/// `dastra-connect validate`: parse and validate a config without any I/O beyond reading it; with
/// `check_connectivity`, also run every connector's health checks (the bus, Dastra's `GET /me` for
/// the sink) once — the same checks `run` does before starting — without consuming anything.
pub async fn validate(path: &Path, check_connectivity: bool) -> anyhow::Result<()> {
    let cfg = crate::app_config::AppConfig::load(path)?;
    println!("{}: valid ({} connector(s): {})", path.display(), cfg.connectors.len(), cfg.connector_names().join(", "));
    if !check_connectivity {
        return Ok(());
    }
    let codec = cfg.codec()?;
    let admin = dastra_connect_core::admin::Admin::new(dastra_connect_core::telemetry::Metrics::new());
    let mut failed = Vec::new();
    for (name, connector) in &cfg.connectors {
        let ctx = cfg.context(name, &codec, &admin);
        let checks = connector.build().health_checks(&ctx).map_err(|e| anyhow::anyhow!("connector `{name}`: {e:#}"))?;
        for check in checks {
            let outcome = tokio::time::timeout(CHECK_TIMEOUT, check.check()).await;
            match outcome {
                Ok(Ok(())) => println!("  {name}: {} ok", check.name()),
                Ok(Err(e)) => {
                    println!("  {name}: FAILED {e}");
                    failed.push(format!("connector `{name}`: {e}"));
                }
                Err(_) => {
                    println!("  {name}: FAILED {}: no answer within {CHECK_TIMEOUT:?}", check.name());
                    failed.push(format!("connector `{name}`: {}: no answer within {CHECK_TIMEOUT:?}", check.name()));
                }
            }
        }
    }
    if failed.is_empty() { Ok(()) } else { anyhow::bail!("connectivity check failed: {}", failed.join("; ")) }
}

/// How long `validate --check-connectivity` waits for one check.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
