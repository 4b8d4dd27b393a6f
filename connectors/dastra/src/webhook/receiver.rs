//! The HTTP side of the webhook receiver and its publishing to the bus.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use dastra_connect_core::bus::{OutboundMessage, Publisher};
use dastra_connect_core::connector::{Connector, ConnectorContext};
use dastra_connect_core::telemetry::Metrics;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::WebhookReceiverConfig;
use super::signature::verify;

/// The `dastra_webhook_receiver` connector.
pub struct WebhookReceiver {
    config: WebhookReceiverConfig,
}

impl WebhookReceiver {
    /// A receiver for `config` (validated by the caller).
    pub fn new(config: WebhookReceiverConfig) -> Self {
        Self { config }
    }
}

#[derive(Clone)]
struct Shared {
    config: Arc<WebhookReceiverConfig>,
    publisher: Arc<dyn Publisher>,
    topic: String,
    source: String,
    connector: String,
    metrics: Metrics,
}

/// The fields of Dastra's `WebhookPayload` the receiver reads; the body is forwarded unchanged.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    event_type: Option<String>,
    date: Option<String>,
    data: Option<serde_json::Value>,
}

/// The router serving `config.path`, publishing with `publisher` to `topic`.
pub fn router(
    config: WebhookReceiverConfig,
    publisher: Arc<dyn Publisher>,
    topic: String,
    connector: &str,
    metrics: Metrics,
) -> axum::Router {
    let limit = config.max_body_bytes;
    let path = config.path.clone();
    let shared = Shared {
        config: Arc::new(config),
        publisher,
        topic,
        source: format!("/connectors/{connector}"),
        connector: connector.to_owned(),
        metrics,
    };
    axum::Router::new().route(&path, post(receive)).layer(DefaultBodyLimit::max(limit)).with_state(shared)
}

/// Which entity family an event is about, for the message key (one entity's events stay in order).
fn family(event_type: &str) -> &'static str {
    match event_type {
        t if t.starts_with("DataSubject") => "dsr",
        t if t.starts_with("Task") => "task",
        t if t.starts_with("Processing") => "processing",
        t if t.starts_with("DataBreach") => "breach",
        _ => "event",
    }
}

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> (StatusCode, &'static str) {
    let count = |event: &str, status: StatusCode| {
        s.metrics.webhooks_received.with_label_values(&[&s.connector, event, status.as_str()]).inc();
    };
    if s.config.require_signature {
        let sig = headers.get("dastra-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
        if sig.is_empty() || !s.config.signing_keys.iter().any(|k| verify(k.expose(), &body, sig)) {
            tracing::warn!(connector = %s.connector, "webhook rejected: missing or invalid Dastra-Signature");
            count("unknown", StatusCode::UNAUTHORIZED);
            return (StatusCode::UNAUTHORIZED, "invalid signature");
        }
    }
    let env: Envelope = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(connector = %s.connector, error = %e, "webhook rejected: body is not a Dastra webhook payload");
            count("unknown", StatusCode::BAD_REQUEST);
            return (StatusCode::BAD_REQUEST, "body is not a webhook payload");
        }
    };
    let event_type = env.event_type.unwrap_or_else(|| "Unknown".into());
    // A stable low-cardinality label: Dastra's NotificationChannel names, anything else folded.
    let label = if event_type.chars().all(|c| c.is_ascii_alphanumeric()) && event_type.len() <= 48 {
        event_type.as_str()
    } else {
        "other"
    };
    let entity_id = env
        .data
        .as_ref()
        .and_then(|d| d.get("id"))
        .map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))
        .unwrap_or_else(|| "unknown".into());
    let key = format!("dastra:{}:{entity_id}", family(&event_type));
    // Dastra may deliver the same body twice; the same body gives the same CloudEvents id.
    let id = hex::encode(&Sha256::digest(&body)[..16]);
    let mut msg = OutboundMessage::new(s.topic.clone(), key.clone().into_bytes(), body.clone())
        .with_header("ce_specversion", "1.0")
        .with_header("ce_id", id)
        .with_header("ce_source", s.source.clone())
        .with_header("ce_type", format!("io.dastra.webhook.{event_type}.v1"))
        .with_header("ce_subject", key)
        .with_header("content-type", "application/json");
    if let Some(date) = env.date {
        msg = msg.with_header("ce_time", date);
    }
    match s.publisher.publish(msg).await {
        Ok(_) => {
            count(label, StatusCode::OK);
            (StatusCode::OK, "stored")
        }
        Err(e) => {
            // Dastra does not retry: a 503 at least shows up in its webhook error log.
            tracing::error!(connector = %s.connector, error = %e, "webhook not stored: publish failed");
            count(label, StatusCode::SERVICE_UNAVAILABLE);
            (StatusCode::SERVICE_UNAVAILABLE, "could not store the event")
        }
    }
}

#[async_trait]
impl Connector for WebhookReceiver {
    async fn run(self: Box<Self>, ctx: ConnectorContext, shutdown: CancellationToken) -> anyhow::Result<()> {
        let topic = ctx.topics.dastra_events();
        ctx.bus.ensure_topics(&[dastra_connect_core::bus::TopicSpec::new(topic.clone())]).await?;
        let publisher = ctx.bus.publisher().await?;
        let ready = ctx.admin.readiness(&ctx.name);
        let listener = tokio::net::TcpListener::bind(self.config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", self.config.listen))?;
        let addr = listener.local_addr()?;
        let path = self.config.path.clone();
        let app = router(self.config, publisher, topic, &ctx.name, ctx.metrics.clone());
        tracing::info!(connector = %ctx.name, %addr, %path, "webhook receiver listening");
        ready.set(true);
        axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
        ready.set(false);
        Ok(())
    }
}
