//! The backfill poller: Dastra never retries a webhook it failed to deliver, so the receiver lists
//! the DSRs and Tasks changed since its checkpoint and publishes each change as the webhook would —
//! through the same dedupe window, under the same event id ([`super::event_id`]), so a change that
//! came by webhook too is published once.
//!
//! - A poll lists, per family, `GET …/DataSubjectRequests` and `GET …/Tasks` filtered on
//!   `DateUpdate ≥ checkpoint` or `DateCreation ≥ checkpoint`, sorted by `DateUpdate` ascending, at
//!   most `max_pages_per_poll` pages each: at most `2 × max_pages_per_poll` requests per interval
//!   (plus a token request with OAuth: the client is built each poll, see `client`).
//! - Requests go through the process's quota limiter for the same base URL, workspace and
//!   credential (the sink's, when a sink of this process registered one) at `Urgent` priority.
//! - The checkpoint (newest change date published, per family) is kept in a state store on the
//!   bus, `<prefix>-connect.state.webhook-backfill-<connector>`, and advanced only after every
//!   record of the poll was published. The first poll starts `dedupe_window` back.
//! - **Inferred**: Dastra accepts `DateUpdate`/`DateCreation` in `filters` and `sortBy` (both are
//!   properties of the DTOs; the filter rules take any property, docs/dastra-api.md §2.3).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use dastra_connect_core::state::StateStore;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::BackfillConfig;
use super::receiver::{Envelope, Origin, Shared, store};
use crate::client::DastraClient;
use crate::client::resources::{DataSubjectRequests, ListQuery, Resource, Tasks};
use crate::model::common::parse_datetime;
use crate::model::filter::{Filter, FilterOperator};
use crate::quota::{Priority, QuotaLimiter};

/// The backfill's connectivity check: one `GET …/DataSubjectRequests?page=1&size=1` with its own
/// credentials and workspace — what every poll starts with, at the smallest page — through the
/// same quota limiter the poller uses. It proves the API key, the workspace id and the route;
/// `GET /me` would prove only the key.
pub(super) struct BackfillCheck {
    config: BackfillConfig,
}

impl BackfillCheck {
    pub(super) fn new(config: BackfillConfig) -> Self {
        Self { config }
    }
}

#[async_trait::async_trait]
impl dastra_connect_core::health::HealthCheck for BackfillCheck {
    fn name(&self) -> &str {
        "backfill"
    }

    async fn check(&self) -> Result<(), dastra_connect_core::health::HealthError> {
        use dastra_connect_core::health::HealthError;
        let ws = self.config.dastra.workspace_id;
        let client = client(&self.config).map_err(|e| HealthError::fatal("backfill", format!("{e:#}")))?;
        let query = ListQuery { page: Some(1), size: Some(1), ..ListQuery::default() };
        match client.list_raw::<DataSubjectRequests>(&query).await {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.status() {
                Some(status @ (401 | 403)) => HealthError::fatal(
                    "backfill",
                    format!(
                        "Dastra rejected the API key for workspace {ws} (HTTP {status} listing DataSubjectRequests): check `backfill.dastra.auth` and `backfill.dastra.workspace_id`"
                    ),
                ),
                Some(404) => HealthError::fatal(
                    "backfill",
                    format!(
                        "Dastra has no workspace {ws} (HTTP 404 listing DataSubjectRequests): check `backfill.dastra.workspace_id` and `backfill.dastra.base_url`"
                    ),
                ),
                // Token endpoint refusals, build errors, transport: the sink's check's wording.
                _ => HealthError { check: "backfill".into(), ..crate::health::classify(&e) },
            }),
        }
    }
}

/// A client on the limiter registered now for the backfill's API key (a sink starting after the
/// receiver registers its own, and the next poll uses it).
fn client(config: &BackfillConfig) -> anyhow::Result<DastraClient> {
    let dastra = &config.dastra;
    let quota = QuotaLimiter::shared(&dastra.quota_key(), || QuotaLimiter::new(&dastra.quota));
    Ok(DastraClient::new(dastra, quota, None)?.with_priority(Priority::Urgent))
}

/// The poller of one receiver.
pub(super) struct Poller {
    shared: Shared,
    config: BackfillConfig,
    checkpoints: Arc<dyn StateStore>,
    window: Duration,
}

/// Dastra's date form (7 fractional digits, `Z`), which also sorts as text.
fn dastra_time(t: DateTime<Utc>) -> String {
    use chrono::Timelike;
    format!("{}.{:07}Z", t.format("%Y-%m-%dT%H:%M:%S"), t.nanosecond() % 1_000_000_000 / 100)
}

/// When `item` last changed: `dateUpdate`, else `dateCreation`.
fn changed_at(item: &Value) -> Option<DateTime<Utc>> {
    ["dateUpdate", "dateCreation"].iter().find_map(|f| item.get(*f).and_then(Value::as_str).and_then(parse_datetime))
}

impl Poller {
    pub(super) fn new(
        shared: Shared,
        config: BackfillConfig,
        checkpoints: Arc<dyn StateStore>,
        window: Duration,
    ) -> Self {
        Self { shared, config, checkpoints, window }
    }

    pub(super) async fn run(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.poll().await {
                tracing::warn!(connector = %self.shared.connector, error = %e, "backfill poll failed; retried next interval");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }

    /// A client on the limiter registered now for this API key.
    fn client(&self) -> anyhow::Result<DastraClient> {
        client(&self.config)
    }

    /// One poll of both families.
    async fn poll(&self) -> anyhow::Result<()> {
        let client = self.client()?;
        self.poll_family::<DataSubjectRequests>(&client, "dsr", ["DataSubjectCreation", "DataSubjectUpdate"]).await?;
        self.poll_family::<Tasks>(&client, "task", ["TaskCreation", "TaskEdit"]).await
    }

    async fn poll_family<R: Resource>(
        &self,
        client: &DastraClient,
        family: &str,
        [created, updated]: [&str; 2],
    ) -> anyhow::Result<()> {
        let key = format!("checkpoint:{family}");
        let since = self
            .checkpoints
            .get(&key)
            .and_then(|v| std::str::from_utf8(&v).ok().and_then(parse_datetime))
            .unwrap_or_else(|| Utc::now() - chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::MAX));
        let from = json!(dastra_time(since));
        let rule = |field: &str| Filter::Rule {
            field: field.into(),
            operator: FilterOperator::GreaterThanInclusive,
            value: Some(from.clone()),
        };
        let filter = Filter::or(vec![rule("DateUpdate"), rule("DateCreation")]);
        let mut newest = since;
        for page in 1..=self.config.max_pages_per_poll {
            let query = ListQuery {
                page: Some(page),
                sort_by: Some("DateUpdate".into()),
                asc: Some(true),
                filters: Some(filter.clone()),
                ..ListQuery::default()
            };
            let list = client.list_raw::<R>(&query).await?;
            for item in &list.items {
                let Some(at) = changed_at(item) else { continue };
                let updated_at = item.get("dateUpdate").and_then(Value::as_str).and_then(parse_datetime);
                let created_at = item.get("dateCreation").and_then(Value::as_str).and_then(parse_datetime);
                let event_type = if updated_at.is_none() || updated_at == created_at { created } else { updated };
                let date = dastra_time(at);
                let body = json!({
                    "eventType": event_type,
                    "eventName": event_type,
                    "data": item,
                    "date": date,
                    "backfill": true,
                });
                let env = Envelope { event_type: Some(event_type.into()), date: Some(date), data: Some(item.clone()) };
                let (status, why) = store(&self.shared, Bytes::from(body.to_string()), env, Origin::Backfill).await;
                if status != StatusCode::OK {
                    let id = item.get("id").cloned().unwrap_or(Value::Null);
                    anyhow::bail!("{family} {id}: not published ({status}: {why})");
                }
                newest = newest.max(at);
            }
            if !list.has_more() {
                break;
            }
        }
        if newest > since {
            self.checkpoints.put(&key, Bytes::from(dastra_time(newest))).await?;
        }
        Ok(())
    }
}
