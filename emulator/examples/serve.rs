//! Serves an emulator on a port for manual exploration: `cargo run -p dastra-emulator --example
//! serve -- 8080 [quota|off] [spec]` (the `dastra-connect emulator` CLI is the real entry point).

use dastra_emulator::{EmulatorConfig, WorkspaceListShape};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(8080);
    let mut config = EmulatorConfig::default();
    if let Some(q) = args.get(2) {
        config.quota = EmulatorConfig::parse_quota(q)?;
    }
    if args.get(3).is_some_and(|s| s == "spec") {
        config.workspace_list_shape = WorkspaceListShape::SpecListDto;
    }
    let handle = dastra_emulator::serve(config, ([127, 0, 0, 1], port).into()).await?;
    println!("Dastra emulator on {} (X-API-Key: emulator-key)", handle.base_url());
    handle.wait().await;
    Ok(())
}
