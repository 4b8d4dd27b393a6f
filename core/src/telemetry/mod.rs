//! Telemetry: the Prometheus metric catalogue ([`metrics`]), `tracing` set-up with an optional OTLP
//! exporter ([`tracing_setup`]) and W3C trace context carried in message headers ([`propagation`]).

pub mod metrics;
pub mod propagation;
pub mod tracing_setup;

pub use metrics::Metrics;
pub use tracing_setup::{LogFormat, TelemetryConfig, TelemetryGuard, init_tracing};
