//! `tracing` set-up: human or JSON logs on stderr, `RUST_LOG`-style filtering, and an optional OTLP/HTTP
//! trace exporter.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for log pipelines.
    Json,
}

/// Logging and tracing settings (`telemetry:` in the config file).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Log filter in `RUST_LOG` syntax; the `RUST_LOG` environment variable wins when set.
    #[serde(default = "default_level")]
    pub log_level: String,
    /// Log line format.
    #[serde(default)]
    pub log_format: LogFormat,
    /// OTLP/HTTP endpoint for traces (e.g. `http://otel-collector:4318/v1/traces`); none = no export.
    #[serde(default)]
    pub otlp_endpoint: Option<url::Url>,
    /// `service.name` reported with the traces.
    #[serde(default = "default_service")]
    pub service_name: String,
}

fn default_level() -> String {
    "info".into()
}
fn default_service() -> String {
    "dastra-connect".into()
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_level: default_level(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            service_name: default_service(),
        }
    }
}

/// Target of the per-connector span the CLI runs each connector in (its name on every log line);
/// never exported as a trace span.
pub const CONNECTOR_SPAN_TARGET: &str = "dastra_connect::connector";

/// Keeps the trace exporter alive; dropping it flushes pending spans.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Installs the global subscriber. Call once, early in `main`.
pub fn init_tracing(cfg: &TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log_level))
        .map_err(|e| anyhow::anyhow!("telemetry.log_level `{}` is not a valid filter: {e}", cfg.log_level))?;
    let fmt = match cfg.log_format {
        LogFormat::Text => {
            use std::io::IsTerminal;
            // Colour codes only for people: files and log collectors get plain text.
            let ansi = std::io::stderr().is_terminal();
            tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).boxed()
        }
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    let mut provider = None;
    let otel = match &cfg.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(endpoint.as_str())
                .build()
                .map_err(|e| anyhow::anyhow!("telemetry.otlp_endpoint: cannot build the OTLP exporter: {e}"))?;
            let p = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder().with_service_name(cfg.service_name.clone()).build(),
                )
                .build();
            let layer = tracing_opentelemetry::layer().with_tracer(p.tracer("dastra-connect"));
            provider = Some(p);
            // The exporter's own HTTP client spans would otherwise be exported too.
            let quiet = tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::TRACE)
                .with_target("h2", tracing::level_filters::LevelFilter::OFF)
                .with_target("hyper", tracing::level_filters::LevelFilter::OFF)
                .with_target("reqwest", tracing::level_filters::LevelFilter::OFF)
                // The per-connector span lives as long as the process: for traces, the spans under
                // it (a poll, an applied event) are the roots, not it.
                .with_target(CONNECTOR_SPAN_TARGET, tracing::level_filters::LevelFilter::OFF);
            Some(layer.with_filter(quiet))
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| anyhow::anyhow!("tracing was already initialised: {e}"))?;
    Ok(TelemetryGuard { provider })
}
