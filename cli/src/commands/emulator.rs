//! `dastra-connect emulator`: serve the local Dastra API emulator (for the quickstart, docker-compose
//! and trying the connectors without a Dastra account).

use std::net::{IpAddr, SocketAddr};

use clap::Args;
use dastra_emulator::{ApiKey, EmulatorConfig, WorkspaceSeed};

/// Options of `emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The API key clients send as `X-API-Key` (also the OAuth2 client secret and the Basic user).
    #[arg(long, env = "DASTRA_EMULATOR_API_KEY", default_value = "emulator-key")]
    pub api_key: String,
    /// Id of the seeded workspace (it gets an Area so DataProcessings and DSRs can be created).
    #[arg(long, default_value_t = 1)]
    pub workspace: i64,
    /// Quota windows per key: `off`, or `<limit>/<period>,…` (Dastra: `500/60s,10000/600s`).
    #[arg(long, default_value = "500/60s,10000/600s")]
    pub quota: String,
    /// Seed of the emulator's randomness (ids, fault sampling).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Serves the emulator until Ctrl-C / SIGTERM.
pub async fn execute(args: EmulatorArgs) -> anyhow::Result<()> {
    let quota = EmulatorConfig::parse_quota(&args.quota).map_err(|e| anyhow::anyhow!("--quota: {e}"))?;
    let config = EmulatorConfig {
        workspaces: vec![WorkspaceSeed { id: args.workspace, label: format!("Workspace {}", args.workspace) }],
        api_keys: vec![ApiKey {
            key: args.api_key,
            public_key: "emulator-client".into(),
            workspace: None,
            name: "default".into(),
        }],
        quota,
        seed: args.seed,
        ..EmulatorConfig::default()
    };
    let handle = dastra_emulator::serve(config, SocketAddr::new(args.bind, args.port)).await?;
    eprintln!(
        "Dastra emulator on {url} (workspace {ws}; API: {url}/v1/ws/{ws}/…; page: {url}/; admin: {url}/__admin/…)",
        url = handle.base_url(),
        ws = args.workspace
    );
    let token = tokio_util::sync::CancellationToken::new();
    super::run::stop_on_signal(token.clone()).await;
    handle.shutdown().await;
    Ok(())
}
