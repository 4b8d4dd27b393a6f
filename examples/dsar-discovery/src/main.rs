//! `dsar-discovery`: runs the example discovery worker against a bus (see README.md).

use std::path::PathBuf;

use clap::Parser;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dsar_discovery::{CustomerDb, Discovery};
use tokio_util::sync::CancellationToken;

/// Answers Dastra's new data subject requests from a sample customer database.
#[derive(Parser)]
struct Args {
    /// NATS server URL (JetStream), e.g. nats://127.0.0.1:4222.
    #[arg(long, conflicts_with = "kafka", required_unless_present = "kafka")]
    nats: Option<String>,
    /// Kafka bootstrap servers, e.g. 127.0.0.1:9092.
    #[arg(long)]
    kafka: Option<String>,
    /// Topic prefix (as `topics.prefix` of the dastra-connect config).
    #[arg(long, default_value = "dastra")]
    prefix: String,
    /// The customer database (JSON array of records).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/customers.json"))]
    customers: PathBuf,
    /// Consumer group (Kafka) / durable consumer name (NATS).
    #[arg(long, default_value = "dsar-discovery")]
    group: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into())).init();
    let args = Args::parse();
    let bus: BusConfig = match (&args.nats, &args.kafka) {
        (Some(url), _) => serde_json::from_value(serde_json::json!({"type": "nats", "servers": [url]}))?,
        (None, Some(brokers)) => serde_json::from_value(serde_json::json!({"type": "kafka", "brokers": brokers}))?,
        (None, None) => anyhow::bail!("give --nats or --kafka"),
    };
    let db = CustomerDb::load(&args.customers)?;
    let shutdown = CancellationToken::new();
    let worker = Discovery::new(db, Topics { prefix: args.prefix });
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    tracing::info!("dsar-discovery running; Ctrl-C stops it");
    worker.run(&bus, &args.group, shutdown, || tracing::info!("partitions assigned")).await
}
