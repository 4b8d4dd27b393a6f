//! Telemetry: Prometheus metrics, tracing (optionally exported over OTLP), W3C trace context carried
//! in message headers, and the admin HTTP server.
