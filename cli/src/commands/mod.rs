//! The subcommands of the binary.

pub mod dlq;
pub mod emulator;
pub mod probe;
pub mod quickstart;
pub mod run;
pub mod schemas;

use std::path::Path;

/// `dastra-connect validate`: parse and validate a config without any I/O beyond reading it.
pub fn validate(path: &Path) -> anyhow::Result<()> {
    let cfg = crate::app_config::AppConfig::load(path)?;
    println!("{}: valid ({} connector(s): {})", path.display(), cfg.connectors.len(), cfg.connector_names().join(", "));
    Ok(())
}
