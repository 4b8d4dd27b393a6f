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
use super::dedupe::{DateRefusal, Dedupe};
use super::signature::verify;
use crate::model::common::parse_datetime;

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
pub(super) struct Shared {
    config: Arc<WebhookReceiverConfig>,
    publisher: Arc<dyn Publisher>,
    topic: String,
    source: String,
    pub(super) connector: String,
    metrics: Metrics,
    dedupe: Arc<Dedupe>,
    /// Also send the id as `Nats-Msg-Id` (JetStream drops a second publish of it in its window).
    nats_msg_id: bool,
}

/// The fields of Dastra's `WebhookPayload` the receiver reads; the body is forwarded unchanged.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Envelope {
    pub(super) event_type: Option<String>,
    pub(super) date: Option<String>,
    pub(super) data: Option<serde_json::Value>,
}

/// The router serving `config.path`, publishing with `publisher` to `topic` once per id in
/// `dedupe`'s window; `nats_msg_id` adds JetStream's `Nats-Msg-Id` header.
pub fn router(
    config: WebhookReceiverConfig,
    publisher: Arc<dyn Publisher>,
    topic: String,
    connector: &str,
    metrics: Metrics,
    dedupe: Arc<Dedupe>,
    nats_msg_id: bool,
) -> axum::Router {
    routes(Shared {
        config: Arc::new(config),
        publisher,
        topic,
        source: format!("/connectors/{connector}"),
        connector: connector.to_owned(),
        metrics,
        dedupe,
        nats_msg_id,
    })
}

fn routes(shared: Shared) -> axum::Router {
    let limit = shared.config.max_body_bytes;
    let path = shared.config.path.clone();
    axum::Router::new().route(&path, post(receive)).layer(DefaultBodyLimit::max(limit)).with_state(shared)
}

/// Which entity family an event is about, for the message key (one entity's events stay in order).
pub(super) fn family(event_type: &str) -> &'static str {
    match event_type {
        t if t.starts_with("DataSubject") => "dsr",
        t if t.starts_with("Task") => "task",
        t if t.starts_with("Processing") => "processing",
        t if t.starts_with("DataBreach") => "breach",
        _ => "event",
    }
}

/// The CloudEvents id of one change: derived from the entity family, its id and its `dateUpdate`
/// (`dateCreation` while it has none), so every delivery of one change gets the same id whatever
/// its event type or the other fields of the body; a body without them is identified by its hash.
pub fn event_id(family: &str, entity_id: &str, data: Option<&serde_json::Value>, body: &[u8]) -> String {
    let changed = data.and_then(|d| {
        ["dateUpdate", "dateCreation"].iter().find_map(|f| d.get(*f).and_then(|v| v.as_str()).and_then(parse_datetime))
    });
    match changed {
        Some(at) if family != "event" => {
            let at = at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            hex::encode(&Sha256::digest(format!("{family}:{entity_id}:{at}").as_bytes())[..16])
        }
        _ => hex::encode(&Sha256::digest(body)[..16]),
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
    store(&s, body, env, Origin::Webhook).await
}

/// Where a body comes from: the webhook (its `date` is checked against the window) or the backfill
/// poller (built from the API's answer; its `date` is the entity's change date, possibly older).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Webhook,
    Backfill,
}

/// How long storing one body may take: Dastra gives up after 10 s (API notes §5.1), and an answer
/// it receives (503) shows in its webhook error log, where a timeout shows only as a timeout.
const STORE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(8);

/// Publishes `body` once per change id in the dedupe window; answers what the webhook caller gets.
/// Gives up after [`STORE_DEADLINE`] with 503 (a publish already sent may still land; its id is
/// then not recorded, and a later copy is caught by `Nats-Msg-Id` on NATS only).
pub(super) async fn store(s: &Shared, body: Bytes, env: Envelope, origin: Origin) -> (StatusCode, &'static str) {
    match tokio::time::timeout(STORE_DEADLINE, store_once(s, body, env, origin)).await {
        Ok(answer) => answer,
        Err(_) => {
            tracing::error!(connector = %s.connector, "webhook not stored: the bus did not answer in time");
            if origin == Origin::Webhook {
                s.metrics.webhooks_received.with_label_values(&[&s.connector, "other", "503"]).inc();
            }
            (StatusCode::SERVICE_UNAVAILABLE, "could not store the event in time")
        }
    }
}

async fn store_once(s: &Shared, body: Bytes, env: Envelope, origin: Origin) -> (StatusCode, &'static str) {
    let count = |event: &str, status: StatusCode| {
        if origin == Origin::Backfill {
            return;
        }
        s.metrics.webhooks_received.with_label_values(&[&s.connector, event, status.as_str()]).inc();
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
    let Some(date) = env.date.as_deref().and_then(parse_datetime) else {
        tracing::warn!(connector = %s.connector, "webhook rejected: no valid `date`");
        count(label, StatusCode::BAD_REQUEST);
        return (StatusCode::BAD_REQUEST, "body has no valid `date`");
    };
    if let Some(why) =
        (origin == Origin::Webhook).then(|| s.dedupe.check_date(date, chrono::Utc::now()).err()).flatten()
    {
        let reason = match why {
            DateRefusal::TooOld => "`date` is older than the dedupe window (possible replay)",
            DateRefusal::InFuture => "`date` is further in the future than the allowed clock skew",
        };
        tracing::warn!(connector = %s.connector, %date, reason, "webhook rejected");
        count(label, StatusCode::UNPROCESSABLE_ENTITY);
        return (StatusCode::UNPROCESSABLE_ENTITY, reason);
    }
    let family = family(&event_type);
    let key = format!("dastra:{family}:{entity_id}");
    let id = event_id(family, &entity_id, env.data.as_ref(), &body);
    let _one_at_a_time = s.dedupe.lock(&id).await;
    match s.dedupe.seen(&id).await {
        Ok(true) => {
            tracing::info!(connector = %s.connector, %id, "webhook already published: duplicate not republished");
            count(label, StatusCode::OK);
            return (StatusCode::OK, "already stored");
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(connector = %s.connector, error = %e, "webhook not stored: dedupe window unreadable");
            count(label, StatusCode::SERVICE_UNAVAILABLE);
            return (StatusCode::SERVICE_UNAVAILABLE, "could not store the event");
        }
    }
    let mut msg = OutboundMessage::new(s.topic.clone(), key.clone().into_bytes(), body.clone())
        .with_header("ce_specversion", "1.0")
        .with_header("ce_id", id.clone())
        .with_header("ce_source", s.source.clone())
        .with_header("ce_type", format!("io.dastra.webhook.{event_type}.v1"))
        .with_header("ce_subject", key)
        .with_header("content-type", "application/json");
    if let Some(date) = env.date {
        msg = msg.with_header("ce_time", date);
    }
    if s.nats_msg_id {
        msg = msg.with_header("Nats-Msg-Id", id.clone());
    }
    match s.publisher.publish(msg).await {
        Ok(_) => {
            if let Err(e) = s.dedupe.record(&id, date).await {
                // The event is stored; only a later duplicate of it may be published again.
                tracing::warn!(connector = %s.connector, error = %e, %id, "published webhook not recorded in the dedupe window");
            }
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
    /// The bus; with `backfill`, also one smallest list of DSRs with the backfill's credentials
    /// and workspace (`validate --check-connectivity`, readiness).
    fn health_checks(
        &self,
        ctx: &ConnectorContext,
    ) -> anyhow::Result<Vec<Arc<dyn dastra_connect_core::health::HealthCheck>>> {
        let mut checks: Vec<Arc<dyn dastra_connect_core::health::HealthCheck>> =
            vec![Arc::new(dastra_connect_core::health::BusCheck::new(ctx.bus.clone()))];
        if let Some(b) = &self.config.backfill {
            checks.push(Arc::new(super::backfill::BackfillCheck::new((**b).clone())));
        }
        Ok(checks)
    }

    async fn run(self: Box<Self>, ctx: ConnectorContext, shutdown: CancellationToken) -> anyhow::Result<()> {
        let topic = ctx.topics.dastra_events();
        ctx.bus.ensure_topics(&[dastra_connect_core::bus::TopicSpec::new(topic.clone())]).await?;
        let publisher = ctx.bus.publisher().await?;
        let ready = ctx.admin.readiness(&ctx.name);
        let store =
            dastra_connect_core::state::open(&ctx.bus, &ctx.topics.state(&format!("webhook-dedupe-{}", ctx.name)))
                .await?;
        let dedupe = Arc::new(Dedupe::new(store, self.config.dedupe_window, self.config.max_clock_skew));
        let pruner =
            tokio::spawn(prune_loop(dedupe.clone(), self.config.dedupe_window, shutdown.clone(), ctx.name.clone()));
        let shared = Shared {
            config: Arc::new(self.config.clone()),
            publisher,
            topic,
            source: format!("/connectors/{}", ctx.name),
            connector: ctx.name.clone(),
            metrics: ctx.metrics.clone(),
            dedupe,
            nats_msg_id: matches!(ctx.bus, dastra_connect_core::bus::BusConfig::Nats(_)),
        };
        let backfill = match &self.config.backfill {
            Some(b) => {
                let ns = ctx.topics.state(&format!("webhook-backfill-{}", ctx.name));
                let checkpoints = dastra_connect_core::state::open(&ctx.bus, &ns).await?;
                let poller =
                    super::backfill::Poller::new(shared.clone(), (**b).clone(), checkpoints, self.config.dedupe_window);
                Some(tokio::spawn(poller.run(shutdown.clone())))
            }
            None => None,
        };
        // Listen only once the stores are open: a body accepted before would find no window.
        let listener = tokio::net::TcpListener::bind(self.config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", self.config.listen))?;
        let addr = listener.local_addr()?;
        let path = self.config.path.clone();
        let app = routes(shared);
        tracing::info!(connector = %ctx.name, %addr, %path, "webhook receiver listening");
        ready.set(true);
        axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
        ready.set(false);
        pruner.abort();
        if let Some(b) = backfill {
            b.abort();
        }
        Ok(())
    }
}

/// Removes expired ids from the dedupe window now and then (every 1/24 of the window, at least a
/// minute apart); any replica may do it, deletes are idempotent.
async fn prune_loop(dedupe: Arc<Dedupe>, window: std::time::Duration, shutdown: CancellationToken, name: String) {
    let every = (window / 24).max(std::time::Duration::from_secs(60));
    loop {
        match dedupe.prune(chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(connector = %name, removed = n, "dedupe window pruned"),
            Err(e) => tracing::warn!(connector = %name, error = %e, "dedupe window not pruned"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
