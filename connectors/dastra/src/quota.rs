//! The Dastra quota limiter: every request the process sends to Dastra first takes a slot here, so the
//! whole process stays under Dastra's windows (500 requests / 60 s and 10 000 / 600 s by default) and
//! never earns a 429.
//!
//! # Why a sliding log, and why it can never exceed Dastra's windows
//!
//! Dastra does not say whether its windows are fixed (counter reset every minute), sliding, or token
//! buckets. A token bucket or GCRA of rate N/W on our side would still allow N + burst requests in some
//! W-long interval (the burst at the edge of a window plus a full window of refill), which a sliding
//! or fixed-window server could reject. So the hard guarantee here is a **sliding log** per window: the
//! timestamps of the last grants are kept and a grant is only made when fewer than `limit` grants lie
//! in the last `per + safety_margin`. That bounds the count in *every* interval of length `per` —
//! hence also in every fixed window, the first minute of a token bucket, and any sliding window the
//! server might use. The `safety_margin` (default 1 s) absorbs the difference between when we take a
//! slot and when Dastra's clock counts the request (network jitter can make two requests sent `per`
//! apart arrive slightly less than `per` apart).
//!
//! On top of the hard limit, a GCRA pacer (emission interval = `(per + margin) / limit` of the tightest
//! window, burst tolerance `burst`) spreads grants over the window instead of spending a minute's quota
//! in the first second: an urgent request arriving behind a backlog then waits one interval (≈ 122 ms at
//! 500/min), not a minute. The pacer never grants more than the sliding logs allow; it only delays.
//! Utilisation under a backlog is `per / (per + margin)` of the limit (≈ 98 % with the defaults).
//!
//! # Priorities, pause, share
//! - Waiters queue per [`Priority`] class, FIFO within a class; a class is served only when every
//!   higher class is empty (strict priority: DSR work and deletes, then live changes, then backfill).
//! - [`QuotaLimiter::pause_until`] (called on a 429 with its `Retry-After`) stops every grant until then.
//! - [`QuotaLimiter::set_share`] gives this replica `limit × owned / total` of each window (rounded
//!   down, so the replicas' shares never sum above the limit). An *increase* is phased in: the added
//!   slots are recorded as used at the moment of the change, so they become usable one window later,
//!   after the replica that gave the partitions up has aged its own grants out. A decrease applies at
//!   once. Together, the replicas never exceed the limit across a rebalance.
//!
//! # Saturation
//! The limiter is *saturated* when quota, not the work itself, is what holds requests back: a request
//! is queued for a slot right now, a 429 pause is running, or a request had to wait for its slot
//! within the last (shortest) window. [`QuotaSnapshot::saturated`] reports it
//! (`dastra_connect_quota_saturated`); autoscalers read it so they do not add replicas, which share
//! the same quota and cannot make Dastra answer faster.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Priority classes of Dastra work, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Data-subject-request work and deletes: legal deadlines, privacy impact.
    Urgent = 0,
    /// Live changes from the sources.
    Live = 1,
    /// Snapshot sweeps, backfills, reconciliation.
    Backfill = 2,
}

impl Priority {
    /// All classes, highest first.
    pub const ALL: [Priority; 3] = [Priority::Urgent, Priority::Live, Priority::Backfill];

    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Urgent => "urgent",
            Priority::Live => "live",
            Priority::Backfill => "backfill",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One quota window: at most `limit` requests in any `per`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaWindow {
    /// Requests allowed per window.
    pub limit: u32,
    /// Window length (e.g. `60s`, `10m`).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub per: Duration,
}

/// Quota settings (the whole process; replicas split it with [`QuotaLimiter::set_share`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// The windows, all enforced at once. Default: 500 per 60 s and 10 000 per 600 s (Dastra's).
    #[serde(default = "default_windows")]
    pub windows: Vec<QuotaWindow>,
    /// Added to every window's length to absorb clock and network jitter. Default `1s`.
    #[serde(default = "default_margin", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub safety_margin: Duration,
    /// Requests that may go back to back before pacing applies. Default 5.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_windows() -> Vec<QuotaWindow> {
    vec![
        QuotaWindow { limit: 500, per: Duration::from_secs(60) },
        QuotaWindow { limit: 10_000, per: Duration::from_secs(600) },
    ]
}
fn default_margin() -> Duration {
    Duration::from_secs(1)
}
fn default_burst() -> u32 {
    5
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self { windows: default_windows(), safety_margin: default_margin(), burst: default_burst() }
    }
}

impl QuotaConfig {
    /// Checks the values (no I/O). Errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.windows.is_empty() {
            return Err("quota.windows: at least one window is needed".into());
        }
        for (i, w) in self.windows.iter().enumerate() {
            if w.limit == 0 {
                return Err(format!("quota.windows[{i}].limit: must be at least 1"));
            }
            if w.per.is_zero() {
                return Err(format!("quota.windows[{i}].per: must be longer than zero"));
            }
        }
        Ok(())
    }
}

/// What a caller got from [`QuotaLimiter::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaGrant {
    /// How long the caller waited for the slot (for the quota-wait metric).
    pub waited: Duration,
}

/// A window's state, for metrics and `/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowSnapshot {
    /// The configured limit of the whole process.
    pub limit: u32,
    /// This replica's share of it.
    pub share: u32,
    /// Window length (without the safety margin), in seconds.
    pub per_seconds: f64,
    /// Slots used in the current (margin-extended) window.
    pub used: u32,
    /// Slots free right now (`share - used`, never negative).
    pub available: u32,
}

/// The limiter's state, for metrics and `/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaSnapshot {
    /// One entry per configured window.
    pub windows: Vec<WindowSnapshot>,
    /// Waiters per class: urgent, live, backfill.
    pub waiters: [usize; 3],
    /// Remaining pause after a 429, if any.
    pub paused_for: Option<Duration>,
    /// Partitions owned / all partitions.
    pub owned_partitions: u32,
    /// All partitions.
    pub total_partitions: u32,
    /// Grants since start.
    pub granted_total: u64,
    /// Pauses since start (one per 429 reported).
    pub pauses_total: u64,
    /// Quota is the bottleneck: a request waits for a slot now, a 429 pause is running, or a request
    /// waited for its slot within the last shortest window (see the module docs).
    pub saturated: bool,
}

/// The shared limiter. Cheap to clone; every clone shares the same state.
#[derive(Clone)]
pub struct QuotaLimiter {
    inner: Arc<Mutex<State>>,
}

impl std::fmt::Debug for QuotaLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaLimiter").field("state", &self.snapshot()).finish()
    }
}

struct WindowState {
    limit: u32,
    per: Duration,
    len: Duration,
    share: u32,
    log: VecDeque<Instant>,
}

impl WindowState {
    fn purge(&mut self, now: Instant) {
        while let Some(&t) = self.log.front() {
            if t + self.len <= now {
                self.log.pop_front();
            } else {
                break;
            }
        }
    }
}

struct Waiter {
    ticket: u64,
    notify: Arc<Notify>,
}

struct State {
    windows: Vec<WindowState>,
    burst: u32,
    owned: u32,
    total: u32,
    paused_until: Option<Instant>,
    tat: Option<Instant>,
    queues: [VecDeque<Waiter>; 3],
    next_ticket: u64,
    granted: u64,
    pauses: u64,
    /// When a request last got its slot after having had to wait for it.
    last_wait: Option<Instant>,
}

/// When the head waiter may go.
enum Readiness {
    Now,
    At(Instant),
    /// A share of zero: wait until the share changes.
    Never,
}

impl State {
    fn head(&self) -> Option<(usize, u64)> {
        self.queues.iter().enumerate().find_map(|(i, q)| q.front().map(|w| (i, w.ticket)))
    }

    fn wake_head(&self) {
        if let Some((class, _)) = self.head()
            && let Some(w) = self.queues[class].front()
        {
            w.notify.notify_one();
        }
    }

    /// Emission interval of the pacer: the tightest window's `len / share`.
    fn interval(&self) -> Option<Duration> {
        let mut worst = Duration::ZERO;
        for w in &self.windows {
            if w.share == 0 {
                return None;
            }
            worst = worst.max(w.len / w.share);
        }
        Some(worst)
    }

    fn readiness(&mut self, now: Instant) -> Readiness {
        let mut at = now;
        if let Some(p) = self.paused_until {
            if p > now {
                at = at.max(p);
            } else {
                self.paused_until = None;
            }
        }
        for w in &mut self.windows {
            w.purge(now);
            if w.share == 0 {
                return Readiness::Never;
            }
            let used = w.log.len();
            let share = w.share as usize;
            if used >= share {
                // The grant that must age out for a slot to free up.
                let t = w.log[used - share];
                at = at.max(t + w.len);
            }
        }
        let Some(interval) = self.interval() else { return Readiness::Never };
        if let Some(tat) = self.tat {
            let tau = interval * self.burst;
            if tat > now + tau {
                at = at.max(tat - tau);
            }
        }
        if at > now { Readiness::At(at) } else { Readiness::Now }
    }

    fn record(&mut self, now: Instant) {
        for w in &mut self.windows {
            w.log.push_back(now);
        }
        if let Some(interval) = self.interval() {
            let base = self.tat.map_or(now, |t| t.max(now));
            self.tat = Some(base + interval);
        }
        self.granted += 1;
    }

    fn apply_share(&mut self, now: Instant, owned: u32, total: u32, phase_in: bool) {
        self.owned = owned;
        self.total = total;
        for w in &mut self.windows {
            let new = if total == 0 {
                0
            } else {
                // Rounded down so the replicas' shares never sum above the limit.
                u32::try_from(u64::from(w.limit) * u64::from(owned.min(total)) / u64::from(total)).unwrap_or(w.limit)
            };
            if phase_in && new > w.share {
                w.purge(now);
                for _ in 0..(new - w.share) {
                    w.log.push_back(now);
                }
            }
            w.share = new;
        }
    }
}

/// Removes a waiter that gave up (its future was dropped) so it never blocks the queue.
struct WaiterGuard<'a> {
    inner: &'a Mutex<State>,
    class: usize,
    ticket: u64,
    done: bool,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.inner.lock();
        let was_head = st.head().map(|(_, t)| t) == Some(self.ticket);
        st.queues[self.class].retain(|w| w.ticket != self.ticket);
        if was_head {
            st.wake_head();
        }
    }
}

/// The process-wide registry of limiters, by [`DastraClientConfig::quota_key`](crate::config::DastraClientConfig::quota_key).
static REGISTRY: std::sync::OnceLock<Mutex<std::collections::HashMap<String, QuotaLimiter>>> =
    std::sync::OnceLock::new();

impl QuotaLimiter {
    /// Makes `self` the limiter other parts of the process find under `key` (the sink registers
    /// its limiter, so the webhook receiver's backfill of the same API key queues behind the same
    /// quota). A later registration under the same key replaces it.
    pub fn register(&self, key: &str) {
        REGISTRY.get_or_init(Default::default).lock().insert(key.to_owned(), self.clone());
    }

    /// The limiter registered under `key`, or `make()` registered under it now.
    pub fn shared(key: &str, make: impl FnOnce() -> QuotaLimiter) -> QuotaLimiter {
        REGISTRY.get_or_init(Default::default).lock().entry(key.to_owned()).or_insert_with(make).clone()
    }

    /// Whether `self` and `other` are the same limiter (clones of one).
    pub fn same_as(&self, other: &QuotaLimiter) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A limiter with the whole quota (share 1/1). Call [`validate`](QuotaConfig::validate) first;
    /// invalid windows (limit 0) simply never grant.
    pub fn new(config: &QuotaConfig) -> Self {
        let windows = config
            .windows
            .iter()
            .map(|w| WindowState {
                limit: w.limit,
                per: w.per,
                len: w.per + config.safety_margin,
                share: w.limit,
                log: VecDeque::new(),
            })
            .collect();
        Self {
            inner: Arc::new(Mutex::new(State {
                windows,
                burst: config.burst,
                owned: 1,
                total: 1,
                paused_until: None,
                tat: None,
                queues: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
                next_ticket: 0,
                granted: 0,
                pauses: 0,
                last_wait: None,
            })),
        }
    }

    /// How long `requests` back-to-back requests take under `config` with the whole quota: the
    /// limiter's own rules (every window's sliding log, the pacer and its burst) run on a logical
    /// clock, with Dastra answering instantly. `None` when the config never grants (a limit of 0).
    pub fn drain_time(config: &QuotaConfig, requests: u64) -> Option<Duration> {
        let limiter = Self::new(config);
        let mut st = limiter.inner.lock();
        let start = Instant::now();
        let mut now = start;
        let mut last = start;
        for _ in 0..requests {
            loop {
                match st.readiness(now) {
                    Readiness::Now => break,
                    Readiness::At(t) => now = t,
                    Readiness::Never => return None,
                }
            }
            st.record(now);
            last = now;
        }
        Some(last - start)
    }

    /// Waits for a slot in every window, fairly (FIFO) within `priority` and after every waiter of a
    /// higher class. Cancel-safe: dropping the future gives the place up.
    pub async fn acquire(&self, priority: Priority) -> QuotaGrant {
        let start = Instant::now();
        let class = priority.index();
        let notify = Arc::new(Notify::new());
        let ticket = {
            let mut st = self.inner.lock();
            st.next_ticket += 1;
            let ticket = st.next_ticket;
            st.queues[class].push_back(Waiter { ticket, notify: notify.clone() });
            ticket
        };
        let mut guard = WaiterGuard { inner: &self.inner, class, ticket, done: false };
        // Whether the quota held this request back (it was at the head and no slot was free).
        let mut held = false;
        loop {
            let wait = {
                let mut st = self.inner.lock();
                if st.head().map(|(_, t)| t) == Some(ticket) {
                    let now = Instant::now();
                    match st.readiness(now) {
                        Readiness::Now => {
                            st.record(now);
                            if held {
                                st.last_wait = Some(now);
                            }
                            st.queues[class].pop_front();
                            guard.done = true;
                            st.wake_head();
                            return QuotaGrant { waited: now.saturating_duration_since(start) };
                        }
                        Readiness::At(at) => {
                            held = true;
                            Some(at)
                        }
                        Readiness::Never => {
                            held = true;
                            None
                        }
                    }
                } else {
                    None
                }
            };
            match wait {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = notify.notified() => {}
                    }
                }
                None => notify.notified().await,
            }
        }
    }

    /// Stops every grant until `until` (a 429's `Retry-After`). Never shortens an existing pause.
    pub fn pause_until(&self, until: Instant) {
        let mut st = self.inner.lock();
        st.paused_until = Some(st.paused_until.map_or(until, |p| p.max(until)));
        st.pauses += 1;
        st.wake_head();
    }

    /// Sets this replica's share to `owned / total` partitions (see the module docs for how an
    /// increase is phased in). `total == 0` or `owned == 0` stops granting until the next change.
    pub fn set_share(&self, owned_partitions: u32, total_partitions: u32) {
        let mut st = self.inner.lock();
        st.apply_share(Instant::now(), owned_partitions, total_partitions, true);
        st.wake_head();
    }

    /// Sets the share without phasing an increase in: for the first assignment of a process, which
    /// starts with the full share. (A process that called `set_share(0, n)` before its first
    /// assignment would otherwise wait one full window before sending anything.)
    pub fn init_share(&self, owned_partitions: u32, total_partitions: u32) {
        let mut st = self.inner.lock();
        st.apply_share(Instant::now(), owned_partitions, total_partitions, false);
        st.wake_head();
    }

    /// The current state, for metrics and `/status`.
    pub fn snapshot(&self) -> QuotaSnapshot {
        let now = Instant::now();
        let mut st = self.inner.lock();
        let shortest = st.windows.iter().map(|w| w.per).min().unwrap_or_default();
        let waiters = [st.queues[0].len(), st.queues[1].len(), st.queues[2].len()];
        let paused = st.paused_until.is_some_and(|p| p > now);
        let waited_recently = st.last_wait.is_some_and(|t| now.saturating_duration_since(t) < shortest);
        // Someone is queued and the head cannot go now: the quota holds it (not mere lock contention).
        let blocked_now = waiters.iter().any(|n| *n > 0) && !matches!(st.readiness(now), Readiness::Now);
        let windows = st
            .windows
            .iter_mut()
            .map(|w| {
                w.purge(now);
                let used = u32::try_from(w.log.len()).unwrap_or(u32::MAX);
                WindowSnapshot {
                    limit: w.limit,
                    share: w.share,
                    per_seconds: w.per.as_secs_f64(),
                    used,
                    available: w.share.saturating_sub(used),
                }
            })
            .collect();
        QuotaSnapshot {
            windows,
            waiters,
            paused_for: st.paused_until.and_then(|p| p.checked_duration_since(now)).filter(|d| !d.is_zero()),
            owned_partitions: st.owned,
            total_partitions: st.total,
            granted_total: st.granted,
            pauses_total: st.pauses,
            saturated: paused || waited_recently || blocked_now,
        }
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
