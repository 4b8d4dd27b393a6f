//! Per-key quota: fixed windows (default 500 / 60 s and 10 000 / 600 s, docs/dastra-api.md §1.3), each
//! starting at the key's first request after the previous window ended. Over any window → 429 with
//! `Retry-After` = seconds until that window resets (docs/dastra-api.md §7 #2: scope per key, a guess).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::QuotaWindow;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    used: u32,
}

/// Quota book-keeping for every key.
#[derive(Debug, Default)]
pub struct Quota {
    windows: Vec<QuotaWindow>,
    used: HashMap<String, Vec<Window>>,
    rejected: u64,
}

impl Quota {
    /// A quota with these windows (empty = disabled).
    pub fn new(windows: Vec<QuotaWindow>) -> Self {
        Self { windows, used: HashMap::new(), rejected: 0 }
    }

    /// Replaces the windows and forgets usage.
    pub fn set_windows(&mut self, windows: Vec<QuotaWindow>) {
        self.windows = windows;
        self.used.clear();
    }

    /// The configured windows.
    pub fn windows(&self) -> &[QuotaWindow] {
        &self.windows
    }

    /// Counts one request of `key`; `Err(retry_after_seconds)` when a window is full (the request
    /// is then not counted, like a rejected request at Dastra's gateway).
    pub fn take(&mut self, key: &str, now: Instant) -> Result<(), u64> {
        if self.windows.is_empty() {
            return Ok(());
        }
        let defs = &self.windows;
        let state = self
            .used
            .entry(key.to_string())
            .or_insert_with(|| defs.iter().map(|_| Window { started: now, used: 0 }).collect());
        let mut retry: Option<Duration> = None;
        for (w, def) in state.iter_mut().zip(defs) {
            if now.duration_since(w.started) >= def.period {
                *w = Window { started: now, used: 0 };
            }
            if w.used >= def.limit {
                let left = def.period.saturating_sub(now.duration_since(w.started));
                retry = Some(retry.map_or(left, |r| r.max(left)));
            }
        }
        if let Some(left) = retry {
            self.rejected += 1;
            // Round up so that a client waiting exactly Retry-After seconds finds the window reset.
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            return Err(secs.max(1));
        }
        for w in state.iter_mut() {
            w.used += 1;
        }
        Ok(())
    }

    /// Number of 429s answered.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Body of `GET /rate-limiting-state` for `key` (shape invented, docs/dastra-api.md §7 #2).
    pub fn state_json(&self, key: &str, now: Instant) -> Value {
        let state = self.used.get(key);
        let limits: Vec<Value> = self
            .windows
            .iter()
            .enumerate()
            .map(|(i, def)| {
                let w = state.and_then(|s| s.get(i)).filter(|w| now.duration_since(w.started) < def.period);
                let used = w.map_or(0, |w| w.used);
                let reset_in = w.map_or(Duration::ZERO, |w| def.period.saturating_sub(now.duration_since(w.started)));
                json!({
                    "period": format!("{}s", def.period.as_secs_f64()),
                    "periodSeconds": def.period.as_secs_f64(),
                    "limit": def.limit,
                    "used": used,
                    "remaining": def.limit.saturating_sub(used),
                    "resetInSeconds": reset_in.as_secs_f64(),
                })
            })
            .collect();
        json!({ "enabled": !self.windows.is_empty(), "limits": limits, "rejected": self.rejected })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_fill_and_reset() {
        let mut q = Quota::new(vec![
            QuotaWindow { limit: 2, period: Duration::from_secs(2) },
            QuotaWindow { limit: 3, period: Duration::from_secs(10) },
        ]);
        let t0 = Instant::now();
        assert!(q.take("k", t0).is_ok());
        assert!(q.take("k", t0).is_ok());
        assert_eq!(q.take("k", t0), Err(2));
        assert!(q.take("other", t0).is_ok(), "quota is per key");
        let t1 = t0 + Duration::from_secs(2);
        assert!(q.take("k", t1).is_ok(), "short window reset");
        assert_eq!(q.take("k", t1), Err(8), "long window full: retry after its reset");
        assert_eq!(q.rejected(), 2);
    }

    #[test]
    fn disabled_quota_never_rejects() {
        let mut q = Quota::new(vec![]);
        let t = Instant::now();
        assert!((0..10_000).all(|_| q.take("k", t).is_ok()));
    }
}
