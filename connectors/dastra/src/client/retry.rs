//! Retry policy (after Vector's `sinks/util/retries.rs`): what to do with each outcome, and how long
//! to wait. Full-jitter exponential backoff with a cap; a 429's `Retry-After` is a floor (and is sent
//! to the quota limiter, which pauses every request of the process). Creates are special: a POST that
//! may have been applied is never repeated blindly (see [`Verdict::Ambiguous`]).

use std::time::Duration;

use rand::Rng;

use crate::config::RetryConfig;
use crate::error::TransportKind;

/// Whether repeating a request can change the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// GET, PUT, DELETE, a JSON Patch of replaces…: repeating it is harmless.
    Idempotent,
    /// A POST that creates (or an append): repeating it after it took effect would duplicate.
    Create,
}

/// What to do after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Success.
    Done,
    /// Transient and safe to repeat: wait and try again (if attempts remain).
    Retry,
    /// Retrying gives the same answer.
    Permanent,
    /// The request may have been applied and must not be repeated blindly.
    Ambiguous,
}

/// Classifies an HTTP status for a request of the given safety.
///
/// A 429 is safe to repeat even for a create: the rate limiter refuses before the request is
/// processed. A 408 or 5xx on a create may come after the write (a gateway timing out on a slow
/// backend), so it is ambiguous.
pub fn classify_status(status: u16, safety: Safety) -> Verdict {
    match status {
        200..=299 => Verdict::Done,
        429 => Verdict::Retry,
        408 | 500..=599 => match safety {
            Safety::Idempotent => Verdict::Retry,
            Safety::Create => Verdict::Ambiguous,
        },
        _ => Verdict::Permanent,
    }
}

/// Classifies a transport failure: a connect failure never reached Dastra; a timeout or a broken
/// connection might have.
pub fn classify_transport(kind: TransportKind, safety: Safety) -> Verdict {
    match (kind, safety) {
        (TransportKind::Connect, _) | (_, Safety::Idempotent) => Verdict::Retry,
        (_, Safety::Create) => Verdict::Ambiguous,
    }
}

/// Backoff schedule and attempt budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (≥ 1).
    pub max_attempts: u32,
    /// Cap of the first retry's delay.
    pub initial_backoff: Duration,
    /// Largest delay.
    pub max_backoff: Duration,
    /// Pause after a 429 without `Retry-After`.
    pub default_retry_after: Duration,
}

impl From<&RetryConfig> for RetryPolicy {
    fn from(c: &RetryConfig) -> Self {
        Self {
            max_attempts: c.max_attempts.max(1),
            initial_backoff: c.initial_backoff,
            max_backoff: c.max_backoff,
            default_retry_after: c.default_retry_after,
        }
    }
}

impl RetryPolicy {
    /// The upper bound of the delay before retry number `retry` (1 = first retry):
    /// `min(max_backoff, initial_backoff × 2^(retry-1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(30);
        self.initial_backoff.saturating_mul(1u32 << exp).min(self.max_backoff)
    }

    /// Full jitter: uniform in `[0, ceiling(retry)]`, then at least `floor` (a `Retry-After`).
    pub fn delay(&self, retry: u32, floor: Option<Duration>) -> Duration {
        let cap = self.ceiling(retry);
        let jittered = if cap.is_zero() { cap } else { rand::rng().random_range(Duration::ZERO..=cap) };
        floor.map_or(jittered, |f| jittered.max(f))
    }

    /// True when another attempt is allowed after `attempts` made.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }
}

/// Parses `Retry-After`: delta-seconds, or an HTTP date (converted to a delay from `now`).
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let when: std::time::SystemTime = when.with_timezone(&chrono::Utc).into();
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            default_retry_after: Duration::from_secs(5),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_inside() {
        let p = policy();
        assert_eq!(p.ceiling(1), Duration::from_millis(100));
        assert_eq!(p.ceiling(2), Duration::from_millis(200));
        assert_eq!(p.ceiling(4), Duration::from_millis(800));
        assert_eq!(p.ceiling(5), Duration::from_secs(1));
        assert_eq!(p.ceiling(99), Duration::from_secs(1));
        for retry in 1..8 {
            let d = p.delay(retry, None);
            assert!(d <= p.ceiling(retry));
        }
        assert!(p.delay(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        assert!(p.may_retry(3) && !p.may_retry(4));
    }

    #[test]
    fn creates_are_only_retried_when_surely_not_applied() {
        assert_eq!(classify_status(201, Safety::Create), Verdict::Done);
        assert_eq!(classify_status(429, Safety::Create), Verdict::Retry);
        assert_eq!(classify_status(503, Safety::Create), Verdict::Ambiguous);
        assert_eq!(classify_status(503, Safety::Idempotent), Verdict::Retry);
        assert_eq!(classify_status(408, Safety::Idempotent), Verdict::Retry);
        assert_eq!(classify_status(400, Safety::Idempotent), Verdict::Permanent);
        assert_eq!(classify_status(404, Safety::Create), Verdict::Permanent);
        assert_eq!(classify_transport(TransportKind::Connect, Safety::Create), Verdict::Retry);
        assert_eq!(classify_transport(TransportKind::Timeout, Safety::Create), Verdict::Ambiguous);
        assert_eq!(classify_transport(TransportKind::Broken, Safety::Create), Verdict::Ambiguous);
        assert_eq!(classify_transport(TransportKind::Timeout, Safety::Idempotent), Verdict::Retry);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 1.5 ", now), Some(Duration::from_millis(1500)));
        // 1445412480 = Wed, 21 Oct 2015 07:28:00 GMT.
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
