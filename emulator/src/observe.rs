//! Observation: a bounded request log and counters by method / route template / status, so tests
//! of other crates can assert how many requests (and 429s) a sync cost.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One logged request. The API key appears only by its configured name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoggedRequest {
    /// Sequence number (1-based, never reused until reset).
    pub seq: u64,
    /// When the request arrived (RFC 3339).
    pub time: String,
    /// HTTP method.
    pub method: String,
    /// Path as sent.
    pub path: String,
    /// Query string as sent.
    pub query: Option<String>,
    /// Route template (`/v1/ws/{workspaceId}/Assets/{id}`).
    pub route: String,
    /// Status answered (0 = connection dropped without an answer).
    pub status: u16,
    /// Handling time in milliseconds (with injected latency).
    pub duration_ms: f64,
    /// Name of the API key used, if authenticated.
    pub key: Option<String>,
    /// Faults applied.
    pub faults: Vec<String>,
    /// Request body, when JSON (truncated bodies are logged as a string).
    pub body: Option<Value>,
}

/// Counter key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CounterKey {
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Status (0 = dropped).
    pub status: u16,
}

/// Log and counters.
#[derive(Debug, Default)]
pub struct Observer {
    log: VecDeque<LoggedRequest>,
    capacity: usize,
    seq: u64,
    counters: BTreeMap<CounterKey, u64>,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Requests answered (all routes, all statuses, dropped included).
    pub total: u64,
    /// 429 answers.
    pub too_many_requests: u64,
    /// One row per (method, route, status).
    pub by_route: Vec<CounterRow>,
}

/// One counter row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CounterRow {
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Status.
    pub status: u16,
    /// Count.
    pub count: u64,
}

impl Counters {
    /// Sum of counts matching a method and route template (any status).
    pub fn count(&self, method: &str, route: &str) -> u64 {
        self.by_route
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.route.eq_ignore_ascii_case(route))
            .map(|r| r.count)
            .sum()
    }

    /// Sum of counts with this status.
    pub fn with_status(&self, status: u16) -> u64 {
        self.by_route.iter().filter(|r| r.status == status).map(|r| r.count).sum()
    }
}

impl Observer {
    /// A log keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, ..Self::default() }
    }

    /// Records one request; fills in its sequence number.
    pub fn record(&mut self, mut entry: LoggedRequest) {
        self.seq += 1;
        entry.seq = self.seq;
        *self
            .counters
            .entry(CounterKey { method: entry.method.clone(), route: entry.route.clone(), status: entry.status })
            .or_default() += 1;
        if self.capacity > 0 {
            if self.log.len() >= self.capacity {
                self.log.pop_front();
            }
            self.log.push_back(entry);
        }
    }

    /// The log, oldest first.
    pub fn log(&self) -> Vec<LoggedRequest> {
        self.log.iter().cloned().collect()
    }

    /// Counter snapshot.
    pub fn counters(&self) -> Counters {
        let by_route: Vec<CounterRow> = self
            .counters
            .iter()
            .map(|(k, v)| CounterRow { method: k.method.clone(), route: k.route.clone(), status: k.status, count: *v })
            .collect();
        Counters {
            total: by_route.iter().map(|r| r.count).sum(),
            too_many_requests: by_route.iter().filter(|r| r.status == 429).map(|r| r.count).sum(),
            by_route,
        }
    }

    /// Clears log and counters.
    pub fn clear(&mut self) {
        self.log.clear();
        self.counters.clear();
        self.seq = 0;
    }
}

/// Route template of a path: `/v1/ws/{workspaceId}/<Family>/{id}/…`, ids (ints, uuids) replaced.
pub fn route_template(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        out.push('/');
        let ws_slot = i == 2
            && segments.first().is_some_and(|v| v.eq_ignore_ascii_case("v1"))
            && segments.get(1).is_some_and(|v| v.eq_ignore_ascii_case("ws"));
        if ws_slot {
            out.push_str("{workspaceId}");
        } else if s.parse::<i64>().is_ok() || uuid::Uuid::parse_str(s).is_ok() {
            out.push_str("{id}");
        } else if let Some(k) = crate::entities::kind(s) {
            out.push_str(k.name);
        } else {
            out.push_str(s);
        }
    }
    if out.is_empty() { "/".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        assert_eq!(route_template("/v1/ws/7/assets/12"), "/v1/ws/{workspaceId}/Assets/{id}");
        assert_eq!(
            route_template("/v1/ws/1/DataProcessings/6f1c2a4e-8a0b-4c1d-9e2f-000000000001"),
            "/v1/ws/{workspaceId}/DataProcessings/{id}"
        );
        assert_eq!(
            route_template("/v1/ws/1/DataSubjectRequests/3/close"),
            "/v1/ws/{workspaceId}/DataSubjectRequests/{id}/close"
        );
        assert_eq!(route_template("/me"), "/me");
    }
}
