//! The `dastra-connect` binary: one process for every role (connectors, quickstart, emulator, tools).

mod app_config;
mod commands;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Keeps a company's GDPR register in Dastra in sync with the systems where the truth lives.
#[derive(Debug, Parser)]
#[command(name = "dastra-connect", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the connectors of a config file until SIGTERM/SIGINT.
    Run {
        /// YAML config file (`${ENV}` interpolation, `*_file` secrets).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file; exits non-zero with the key path on error. Connects to nothing unless
    /// `--check-connectivity` is given.
    Validate {
        /// YAML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Also run every connector's health checks once (bus; Dastra `GET /me`), consuming nothing.
        #[arg(long)]
        check_connectivity: bool,
    },
    /// Print, check or register schemas.
    #[command(subcommand)]
    Schemas(commands::schemas::SchemasCommand),
    /// Inspect or redrive the dead-letter queue of a sink.
    #[command(subcommand)]
    Dlq(commands::dlq::DlqCommand),
    /// Predict the Dastra requests of a sink's backlog (per entity type and kind, time under the
    /// quota) without sending anything, committing offsets or writing the ledger.
    Plan(commands::plan::PlanArgs),
    /// Serve the local Dastra API emulator.
    Emulator(commands::emulator::EmulatorArgs),
    /// Run the whole product on this machine with embedded defaults and print a summary.
    Quickstart(commands::quickstart::QuickstartArgs),
    /// GET an http:// URL and exit 0 on a 2xx answer (container healthchecks: no shell or curl needed).
    Probe(commands::probe::ProbeArgs),
}

/// The process's allocator. mimalloc instead of the system's (glibc) malloc: no per-block header and
/// size classes 12.5 % apart where glibc rounds a block plus its header up to 16 B, and pages of
/// freed blocks returned to the kernel. The ledger's cache (one block per entity) is most of a
/// sink's memory: measured with 1 M entries loaded from the NATS KV store, 167 B per entity instead
/// of 249 B (BENCHMARKS.md §5b).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run { config } => commands::run::run(&config).await,
            Command::Validate { config, check_connectivity } => commands::validate(&config, check_connectivity).await,
            Command::Schemas(cmd) => commands::schemas::execute(cmd).await,
            Command::Dlq(cmd) => commands::dlq::execute(cmd).await,
            Command::Plan(args) => commands::plan::execute(args).await,
            Command::Emulator(args) => commands::emulator::execute(args).await,
            Command::Quickstart(args) => commands::quickstart::execute(args).await,
            Command::Probe(args) => commands::probe::execute(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
