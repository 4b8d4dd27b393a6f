//! `dastra-connect schemas`: the JSON Schema of the config (generated from the config types, checked in
//! under `schemas/config/`), and the Avro schemas of the events.

use std::path::PathBuf;

use clap::Subcommand;

use crate::app_config::AppConfig;

/// Where the generated config schema is checked in, relative to the repository root.
pub const CONFIG_SCHEMA_PATH: &str = "schemas/config/dastra-connect.schema.json";

/// Subcommands of `schemas`.
#[derive(Debug, Subcommand)]
pub enum SchemasCommand {
    /// Print the JSON Schema of the config file, write it with `--write`, or fail on drift with `--check`.
    Config {
        /// Compare with the checked-in file and fail if it differs.
        #[arg(long, conflicts_with = "write")]
        check: bool,
        /// Write the checked-in file.
        #[arg(long)]
        write: bool,
        /// The checked-in file.
        #[arg(long, default_value = CONFIG_SCHEMA_PATH)]
        path: PathBuf,
    },
    /// Print the Avro schemas of the change events (the files under `schemas/`, as the code uses them).
    Avro,
    /// Register every payload schema in a Confluent-compatible schema registry under its
    /// TopicNameStrategy subject `<prefix>.changes.<entity>-value` (idempotent: an existing schema
    /// keeps its id).
    Register {
        /// The registry's base URL.
        #[arg(long)]
        registry: url::Url,
        /// Topic prefix (as `topics.prefix` in the config).
        #[arg(long, default_value = "dastra")]
        prefix: String,
        /// Basic-auth user.
        #[arg(long, env = "SCHEMA_REGISTRY_USER")]
        username: Option<String>,
        /// Basic-auth password (from the environment only, never the command line).
        #[arg(skip)]
        password: Option<String>,
    },
}

/// The config schema as pretty JSON with a trailing newline.
pub fn config_schema_json() -> String {
    let schema = schemars::schema_for!(AppConfig);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

/// Runs a `schemas` subcommand.
pub async fn execute(cmd: SchemasCommand) -> anyhow::Result<()> {
    match cmd {
        SchemasCommand::Config { check, write, path } => {
            let generated = config_schema_json();
            if check {
                let current = std::fs::read_to_string(&path).unwrap_or_default();
                if current != generated {
                    anyhow::bail!(
                        "{} is out of date with the config types: run `cargo run -p dastra-connect -- schemas config --write`",
                        path.display()
                    );
                }
                println!("{}: up to date", path.display());
            } else if write {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&path, generated)?;
                println!("wrote {}", path.display());
            } else {
                print!("{generated}");
            }
            Ok(())
        }
        SchemasCommand::Register { registry, prefix, username, .. } => {
            use dastra_connect_core::codec::schemas::payload_schema_source;
            use dastra_connect_core::codec::{RegistryConfig, SchemaRegistryClient, value_subject};
            let mut cfg = RegistryConfig::new(registry);
            cfg.username = username;
            cfg.password = std::env::var("SCHEMA_REGISTRY_PASSWORD").ok().map(dastra_connect_core::config::Secret::new);
            let client = SchemaRegistryClient::new(cfg)?;
            let topics = dastra_connect_core::connector::Topics { prefix };
            for kind in dastra_connect_core::event::EntityKind::ALL {
                let subject = value_subject(&topics.changes(kind));
                let id = client.register(&subject, payload_schema_source(kind)).await?;
                println!("{subject}\tid {id}");
            }
            Ok(())
        }
        SchemasCommand::Avro => {
            use dastra_connect_core::codec::schemas::{payload_schema_file, payload_schema_source};
            for kind in dastra_connect_core::event::EntityKind::ALL {
                println!("// {}\n{}", payload_schema_file(kind), payload_schema_source(kind));
            }
            Ok(())
        }
    }
}
