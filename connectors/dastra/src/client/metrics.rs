//! Bridges the client's [`RequestObserver`] hook and the quota snapshot to the project's metric
//! catalogue (`dastra_connect_core::telemetry::Metrics`, the one place metrics are defined).

use std::collections::VecDeque;
use std::sync::Arc;

use dastra_connect_core::telemetry::Metrics;
use parking_lot::Mutex;
use prometheus::{GaugeVec, IntGaugeVec};

use super::{RequestEvent, RequestObserver};
use crate::quota::{QuotaLimiter, QuotaSnapshot};

/// Counts Dastra requests (`dastra_connect_dastra_requests_total{connector,method,route,status}`),
/// observes their latency, counts 429s and quota wait time per priority.
/// Also keeps requests and 429s per minute for the last hour (the status page's chart).
#[derive(Clone)]
pub struct MetricsObserver {
    metrics: Metrics,
    connector: String,
    history: Arc<Mutex<VecDeque<MinuteCount>>>,
}

/// Requests (all attempts) and 429s in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MinuteCount {
    /// Start of the minute, Unix seconds.
    pub minute: i64,
    /// Attempts sent to Dastra.
    pub requests: u64,
    /// Of which answered 429.
    pub throttled: u64,
}

/// Minutes of history kept.
const HISTORY_MINUTES: i64 = 60;

impl MetricsObserver {
    /// Reports into `metrics` under the `connector` label.
    pub fn new(metrics: Metrics, connector: impl Into<String>) -> Self {
        Self { metrics, connector: connector.into(), history: Default::default() }
    }

    fn count(&self, now_secs: i64, throttled: bool) {
        let minute = now_secs - now_secs.rem_euclid(60);
        let mut h = self.history.lock();
        match h.back_mut() {
            Some(last) if last.minute == minute => {
                last.requests += 1;
                last.throttled += u64::from(throttled);
            }
            _ => h.push_back(MinuteCount { minute, requests: 1, throttled: u64::from(throttled) }),
        }
        while h.front().is_some_and(|f| f.minute <= minute - HISTORY_MINUTES * 60) {
            h.pop_front();
        }
    }

    /// The last 60 minutes up to `now_secs`, oldest first, one entry per minute (zeros included).
    pub fn requests_per_minute(&self, now_secs: i64) -> Vec<MinuteCount> {
        let current = now_secs - now_secs.rem_euclid(60);
        let h = self.history.lock();
        (0..HISTORY_MINUTES)
            .rev()
            .map(|back| {
                let minute = current - back * 60;
                h.iter().find(|m| m.minute == minute).copied().unwrap_or(MinuteCount { minute, ..Default::default() })
            })
            .collect()
    }

    /// Sets `dastra_connect_quota_tokens{connector,window}` (`window` = the window length, e.g.
    /// `60s`) and `dastra_connect_quota_saturated{connector}` from a limiter snapshot.
    pub fn export_quota(&self, snapshot: &QuotaSnapshot) {
        export_quota(&self.metrics.quota_tokens, &self.metrics.quota_saturated, &self.connector, snapshot);
    }

    /// Keeps the quota gauges current: they are read from `quota` every time the metrics are
    /// rendered (each Prometheus scrape), not only when `/status` is asked for.
    pub fn watch_quota(&self, quota: &QuotaLimiter) {
        let (tokens, saturated) = (self.metrics.quota_tokens.clone(), self.metrics.quota_saturated.clone());
        let (connector, quota) = (self.connector.clone(), quota.clone());
        // The closure holds the gauges, not `Metrics`, so the registry does not own itself.
        self.metrics.refresh_on_render(format!("quota:{connector}"), move || {
            export_quota(&tokens, &saturated, &connector, &quota.snapshot());
        });
    }
}

fn export_quota(tokens: &GaugeVec, saturated: &IntGaugeVec, connector: &str, snapshot: &QuotaSnapshot) {
    for w in &snapshot.windows {
        let window = format!("{}s", w.per_seconds);
        tokens.with_label_values(&[connector, window.as_str()]).set(f64::from(w.available));
    }
    saturated.with_label_values(&[connector]).set(i64::from(snapshot.saturated));
}

/// The route label without the method (the method has its own label): `/v1/ws/{workspaceId}/Assets`.
fn route_label(route: &str) -> &str {
    route.split_once(' ').map_or(route, |(_, path)| path)
}

impl RequestObserver for MetricsObserver {
    fn quota_attached(&self, quota: &QuotaLimiter) {
        self.watch_quota(quota);
    }

    fn request_done(&self, e: &RequestEvent) {
        let route = route_label(e.route);
        let status = match (e.status, e.transport_error) {
            (Some(s), _) => s.to_string(),
            (None, Some(code)) => code.to_owned(),
            (None, None) => "error".to_owned(),
        };
        let c = self.connector.as_str();
        self.metrics.dastra_requests.with_label_values(&[c, e.method, route, status.as_str()]).inc();
        self.metrics.dastra_request_seconds.with_label_values(&[c, e.method, route]).observe(e.duration.as_secs_f64());
        if e.status == Some(429) {
            self.metrics.dastra_throttled.with_label_values(&[c]).inc();
        }
        self.count(chrono::Utc::now().timestamp(), e.status == Some(429));
        if !e.quota_wait.is_zero() {
            self.metrics
                .quota_wait_seconds
                .with_label_values(&[c, e.priority.as_str()])
                .inc_by(e.quota_wait.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::sync::Arc;

    use super::*;
    use crate::client::AttemptOutcome;
    use crate::quota::{Priority, QuotaConfig, QuotaLimiter};

    #[tokio::test]
    async fn events_and_quota_state_reach_the_catalogue() {
        let metrics = Metrics::new();
        let obs = MetricsObserver::new(metrics.clone(), "sink");
        let ev = RequestEvent {
            method: "POST",
            route: "POST /v1/ws/{workspaceId}/Assets",
            status: Some(429),
            transport_error: None,
            attempt: 1,
            outcome: AttemptOutcome::Retrying,
            duration: Duration::from_millis(30),
            quota_wait: Duration::from_millis(500),
            priority: Priority::Backfill,
        };
        obs.request_done(&ev);
        obs.request_done(&RequestEvent { status: None, transport_error: Some("dastra_timeout"), ..ev.clone() });
        let limiter = QuotaLimiter::new(&QuotaConfig::default());
        limiter.acquire(Priority::Live).await;
        obs.export_quota(&limiter.snapshot());
        let text = metrics.render();
        assert!(text.contains(r#"dastra_connect_dastra_requests_total{connector="sink",method="POST",route="/v1/ws/{workspaceId}/Assets",status="429"} 1"#), "{text}");
        assert!(text.contains(r#"status="dastra_timeout"} 1"#), "{text}");
        assert!(text.contains(r#"dastra_connect_dastra_throttled_total{connector="sink"} 1"#), "{text}");
        assert!(
            text.contains(r#"dastra_connect_quota_wait_seconds_total{connector="sink",priority="backfill"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"dastra_connect_quota_tokens{connector="sink",window="60s"} 499"#), "{text}");
        assert!(text.contains(r#"dastra_connect_quota_saturated{connector="sink"} 0"#), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_keeps_the_quota_gauges_current_at_every_scrape() {
        let metrics = Metrics::new();
        let limiter = QuotaLimiter::new(&QuotaConfig::default());
        let config: crate::DastraClientConfig = serde_json::from_value(serde_json::json!({
            "base_url": "http://127.0.0.1:9", "workspace_id": 1, "auth": {"type": "api_key", "api_key": "k"}
        }))
        .unwrap();
        let observer = Arc::new(MetricsObserver::new(metrics.clone(), "sink"));
        let _client = crate::DastraClient::new(&config, limiter.clone(), Some(observer)).unwrap();
        limiter.acquire(Priority::Live).await;
        let text = metrics.render();
        assert!(text.contains(r#"dastra_connect_quota_tokens{connector="sink",window="60s"} 499"#), "{text}");
        assert!(text.contains(r#"dastra_connect_quota_saturated{connector="sink"} 0"#), "{text}");
        limiter.pause_until(tokio::time::Instant::now() + Duration::from_secs(5));
        assert!(metrics.render().contains(r#"dastra_connect_quota_saturated{connector="sink"} 1"#));
    }

    #[test]
    fn requests_per_minute_cover_the_last_hour() {
        let obs = MetricsObserver::new(Metrics::new(), "sink");
        let t0: i64 = 1_800_000_000; // a whole minute
        obs.count(t0 - 3_600, false); // too old: dropped from the window
        obs.count(t0 + 1, false);
        obs.count(t0 + 59, true);
        obs.count(t0 + 61, false);
        let h = obs.requests_per_minute(t0 + 90);
        assert_eq!(h.len(), 60);
        assert_eq!(h[59], MinuteCount { minute: t0 + 60, requests: 1, throttled: 0 });
        assert_eq!(h[58], MinuteCount { minute: t0, requests: 2, throttled: 1 });
        assert_eq!(h.iter().map(|m| m.requests).sum::<u64>(), 3);
        assert_eq!(h[0].minute, t0 + 60 - 59 * 60);
    }
}
