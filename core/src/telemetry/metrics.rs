//! The one place where every metric of dastra-connect is defined.
//!
//! Names follow `dastra_connect_<subject>_<unit>[_total]`; labels are low-cardinality (`connector`,
//! `entity`, `route`, `method`, `status`, `reason`, `class`). Never put an entity key, an id or a
//! message in a label.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// A function that sets gauges from live state right before the metrics are rendered.
type RefreshFn = Arc<dyn Fn() + Send + Sync>;

/// All metric families, registered in one [`Registry`]. Cheap to clone (the families are `Arc`s).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Gauges derived from live state (quota windows…), refreshed at every render, by key.
    refreshers: Arc<Mutex<BTreeMap<String, RefreshFn>>>,
    /// Change events read from the bus by a sink. Labels: connector, entity.
    pub events_consumed: IntCounterVec,
    /// Events whose effect reached Dastra. Labels: connector, entity, op.
    pub events_applied: IntCounterVec,
    /// Events that needed no request. Labels: connector, entity, reason (stale, unchanged, coalesced, cancelled).
    pub events_skipped: IntCounterVec,
    /// Events published by sources. Labels: connector, entity, op.
    pub events_published: IntCounterVec,
    /// Records read from a source system. Labels: connector, entity.
    pub records_polled: IntCounterVec,
    /// Failed polls of a source system. Labels: connector, code.
    pub poll_errors: IntCounterVec,
    /// Seconds between now and the source cursor. Labels: connector, entity.
    pub cursor_lag_seconds: GaugeVec,
    /// Duration of the last full snapshot sweep. Labels: connector, entity.
    pub snapshot_duration_seconds: GaugeVec,
    /// Requests sent to Dastra. Labels: connector, method, route, status.
    pub dastra_requests: IntCounterVec,
    /// Latency of Dastra requests. Labels: connector, method, route.
    pub dastra_request_seconds: HistogramVec,
    /// Dastra answers 429. Labels: connector.
    pub dastra_throttled: IntCounterVec,
    /// Requests avoided by coalescing and skipping. Labels: connector, reason.
    pub requests_saved: IntCounterVec,
    /// Quota tokens available now. Labels: connector, window.
    pub quota_tokens: GaugeVec,
    /// Time spent waiting for quota. Labels: connector, priority.
    pub quota_wait_seconds: CounterVec,
    /// 1 while Dastra's quota, not the work, holds requests back (a request waits for a slot now,
    /// a 429 pause runs, or a request waited within the last shortest window); else 0. Labels:
    /// connector. Autoscalers read it: replicas share one quota, so adding pods cannot help.
    pub quota_saturated: IntGaugeVec,
    /// Events sent to the dead-letter queue. Labels: connector, reason.
    pub dlq_events: IntCounterVec,
    /// References waiting for their target entity. Labels: connector.
    pub pending_references: IntGaugeVec,
    /// Keys parked behind a failed event. Labels: connector.
    pub parked_keys: IntGaugeVec,
    /// Messages behind the end of each partition. Labels: connector, topic, partition.
    pub consumer_lag: IntGaugeVec,
    /// Entries in the sink ledger. Labels: connector.
    pub ledger_entries: IntGaugeVec,
    /// Failed attempts to write a batch of ledger entries (each retry counts); the events of the
    /// batch stay uncommitted until one succeeds. Labels: connector.
    pub ledger_batch_write_failures: IntCounterVec,
    /// Webhooks received from Dastra. Labels: connector, event, status.
    pub webhooks_received: IntCounterVec,
}

fn counter(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(format!("dastra_connect_{name}"), help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    register(reg, Box::new(c.clone()), name);
    c
}

fn fcounter(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    let c = CounterVec::new(Opts::new(format!("dastra_connect_{name}"), help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    register(reg, Box::new(c.clone()), name);
    c
}

fn gauge(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(format!("dastra_connect_{name}"), help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    register(reg, Box::new(g.clone()), name);
    g
}

fn igauge(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(format!("dastra_connect_{name}"), help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    register(reg, Box::new(g.clone()), name);
    g
}

fn register(reg: &Registry, c: Box<dyn prometheus::core::Collector>, name: &str) {
    // Names are static and unique in this file; a duplicate is a programming error caught by the tests.
    reg.register(c).unwrap_or_else(|e| panic!("metric {name} registered twice: {e}"));
}

impl Metrics {
    /// Creates every family in a fresh registry.
    pub fn new() -> Self {
        let r = Registry::new();
        let latency = HistogramVec::new(
            HistogramOpts::new("dastra_connect_dastra_request_seconds", "Latency of requests to Dastra.")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["connector", "method", "route"],
        )
        .unwrap_or_else(|e| panic!("histogram malformed: {e}"));
        register(&r, Box::new(latency.clone()), "dastra_request_seconds");
        Self {
            events_consumed: counter(
                &r,
                "events_consumed_total",
                "Change events read from the bus.",
                &["connector", "entity"],
            ),
            events_applied: counter(
                &r,
                "events_applied_total",
                "Change events whose effect reached Dastra.",
                &["connector", "entity", "op"],
            ),
            events_skipped: counter(
                &r,
                "events_skipped_total",
                "Change events that needed no Dastra request.",
                &["connector", "entity", "reason"],
            ),
            events_published: counter(
                &r,
                "events_published_total",
                "Change events published by a source.",
                &["connector", "entity", "op"],
            ),
            records_polled: counter(
                &r,
                "records_polled_total",
                "Records read from a source system.",
                &["connector", "entity"],
            ),
            poll_errors: counter(&r, "poll_errors_total", "Failed polls of a source system.", &["connector", "code"]),
            cursor_lag_seconds: gauge(&r, "cursor_lag_seconds", "Age of the source cursor.", &["connector", "entity"]),
            snapshot_duration_seconds: gauge(
                &r,
                "snapshot_duration_seconds",
                "Duration of the last snapshot sweep.",
                &["connector", "entity"],
            ),
            dastra_requests: counter(
                &r,
                "dastra_requests_total",
                "Requests sent to Dastra.",
                &["connector", "method", "route", "status"],
            ),
            dastra_request_seconds: latency,
            dastra_throttled: counter(
                &r,
                "dastra_throttled_total",
                "Dastra answers 429 Too Many Requests.",
                &["connector"],
            ),
            requests_saved: counter(
                &r,
                "requests_saved_total",
                "Dastra requests avoided by coalescing and skipping.",
                &["connector", "reason"],
            ),
            quota_tokens: gauge(
                &r,
                "quota_tokens",
                "Quota tokens available now, per window.",
                &["connector", "window"],
            ),
            quota_wait_seconds: fcounter(
                &r,
                "quota_wait_seconds_total",
                "Time spent waiting for Dastra quota.",
                &["connector", "priority"],
            ),
            quota_saturated: igauge(
                &r,
                "quota_saturated",
                "1 while Dastra's quota holds requests back (waiting now, 429 pause, or a wait in the last window).",
                &["connector"],
            ),
            dlq_events: counter(
                &r,
                "dlq_events_total",
                "Events sent to the dead-letter queue.",
                &["connector", "reason"],
            ),
            pending_references: igauge(
                &r,
                "pending_references",
                "References waiting for their target entity.",
                &["connector"],
            ),
            parked_keys: igauge(&r, "parked_keys", "Entity keys parked behind a failed event.", &["connector"]),
            consumer_lag: igauge(
                &r,
                "consumer_lag_messages",
                "Messages not yet consumed, per partition.",
                &["connector", "topic", "partition"],
            ),
            ledger_entries: igauge(&r, "ledger_entries", "Entries in the sink ledger.", &["connector"]),
            ledger_batch_write_failures: counter(
                &r,
                "ledger_batch_write_failures_total",
                "Failed attempts to write a batch of sink ledger entries (retried until one succeeds).",
                &["connector"],
            ),
            webhooks_received: counter(
                &r,
                "webhooks_received_total",
                "Webhooks received from Dastra.",
                &["connector", "event", "status"],
            ),
            registry: r,
            refreshers: Arc::default(),
        }
    }

    /// Registers `refresh` under `key` (replacing an earlier one with the same key): it runs right
    /// before every [`render`](Self::render), so gauges read from live state (the quota limiter) are
    /// current when Prometheus scrapes. Keep it cheap; it must not call `render`.
    pub fn refresh_on_render(&self, key: impl Into<String>, refresh: impl Fn() + Send + Sync + 'static) {
        self.refreshers.lock().insert(key.into(), Arc::new(refresh));
    }

    /// The registry, to register more collectors (process metrics, library metrics).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let refreshers: Vec<RefreshFn> = self.refreshers.lock().values().cloned().collect();
        for refresh in refreshers {
            refresh();
        }
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_follows_the_naming_spec_and_renders() {
        let m = Metrics::new();
        m.events_consumed.with_label_values(&["sink", "asset"]).inc();
        m.dastra_requests.with_label_values(&["sink", "POST", "/Assets", "201"]).inc_by(3);
        m.dastra_request_seconds.with_label_values(&["sink", "POST", "/Assets"]).observe(0.02);
        let text = m.render();
        assert!(text.contains("dastra_connect_events_consumed_total{connector=\"sink\",entity=\"asset\"} 1"), "{text}");
        assert!(text.contains("dastra_connect_dastra_requests_total{connector=\"sink\",method=\"POST\",route=\"/Assets\",status=\"201\"} 3"));
        for fam in m.registry().gather() {
            let name = fam.name();
            assert!(name.starts_with("dastra_connect_"), "{name}");
            let kind = fam.get_field_type();
            if kind == prometheus::proto::MetricType::COUNTER {
                assert!(name.ends_with("_total"), "counter {name} must end with _total");
            }
        }
    }

    #[test]
    fn refreshers_run_before_every_render_and_replace_by_key() {
        let m = Metrics::new();
        let state = Arc::new(std::sync::atomic::AtomicI64::new(1));
        let (gauge, live) = (m.quota_saturated.clone(), state.clone());
        m.refresh_on_render("sink", move || {
            gauge.with_label_values(&["sink"]).set(live.load(std::sync::atomic::Ordering::Relaxed));
        });
        assert!(m.render().contains("dastra_connect_quota_saturated{connector=\"sink\"} 1"));
        state.store(0, std::sync::atomic::Ordering::Relaxed);
        assert!(m.render().contains("dastra_connect_quota_saturated{connector=\"sink\"} 0"), "read at render time");
        let gauge = m.quota_saturated.clone();
        m.refresh_on_render("sink", move || gauge.with_label_values(&["sink"]).set(7));
        assert!(m.render().contains("dastra_connect_quota_saturated{connector=\"sink\"} 7"), "same key replaces");
        assert_eq!(m.refreshers.lock().len(), 1);
    }
}
