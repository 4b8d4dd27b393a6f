//! The CloudEvents `sequence` attribute: the source version of an entity as a string that sorts in
//! version order, so the sink can drop any event older than what it already applied.
//!
//! Formats (build them with the helpers, compare them with [`cmp_sequence`]):
//! - a counter (`sys_mod_count`, LSN, revision): [`sequence_from_u64`] → 20 zero-padded digits,
//!   e.g. `00000000000000000042`;
//! - a modification time with a tie-breaker (`SystemModstamp`, `updated_at` + record version or
//!   id): [`sequence_from_time`] → `2024-05-01T10:00:00.123456789Z/00000000000000000007`
//!   (RFC 3339 UTC with exactly nine fractional digits, `/`, the zero-padded tie-breaker).
//!
//! Both are fixed-width within one source, so plain byte order is version order. [`cmp_sequence`]
//! also orders unpadded decimal numbers numerically (`9` < `10`) so that a source publishing raw
//! counters still compares correctly. One entity must keep one format for its whole life.

use std::cmp::Ordering;

use chrono::{DateTime, SecondsFormat, Utc};

/// Longest accepted sequence, in bytes.
pub const MAX_SEQUENCE_LEN: usize = 128;

/// A counter version as a sortable sequence (20 zero-padded digits, the width of `u64::MAX`).
pub fn sequence_from_u64(version: u64) -> String {
    format!("{version:020}")
}

/// A timestamp version with a tie-breaker as a sortable sequence.
pub fn sequence_from_time(time: DateTime<Utc>, tie_breaker: u64) -> String {
    format!("{}/{tie_breaker:020}", time.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

/// Orders two sequences of the same entity: numerically when both are plain decimal numbers (any
/// width, leading zeros ignored), by bytes otherwise.
pub fn cmp_sequence(a: &str, b: &str) -> Ordering {
    let is_num = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if is_num(a) && is_num(b) {
        let a = a.trim_start_matches('0');
        let b = b.trim_start_matches('0');
        return a.len().cmp(&b.len()).then_with(|| a.cmp(b));
    }
    a.cmp(b)
}

/// `true` when `candidate` is strictly newer than `applied`.
pub fn is_newer(candidate: &str, applied: &str) -> bool {
    cmp_sequence(candidate, applied) == Ordering::Greater
}

/// Checks that a sequence is non-empty printable ASCII of at most [`MAX_SEQUENCE_LEN`] bytes
/// (it travels in a message header).
pub fn validate_sequence(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("empty sequence");
    }
    if s.len() > MAX_SEQUENCE_LEN {
        return Err("sequence longer than 128 bytes");
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("sequence must be printable ASCII without spaces");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn counters_sort_numerically() {
        assert_eq!(cmp_sequence("9", "10"), Ordering::Less);
        assert_eq!(cmp_sequence("0010", "10"), Ordering::Equal);
        assert_eq!(cmp_sequence(&sequence_from_u64(9), &sequence_from_u64(10)), Ordering::Less);
        assert!(is_newer(&sequence_from_u64(u64::MAX), &sequence_from_u64(u64::MAX - 1)));
        assert!(!is_newer("5", "5"));
    }

    #[test]
    fn times_sort_with_tie_breaker() {
        let t1 = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
        let t2 = t1 + chrono::Duration::nanoseconds(1);
        let a = sequence_from_time(t1, 7);
        assert_eq!(a, "2024-05-01T10:00:00.000000000Z/00000000000000000007");
        assert!(is_newer(&sequence_from_time(t1, 8), &a));
        assert!(is_newer(&sequence_from_time(t2, 0), &sequence_from_time(t1, 99)));
        assert!(validate_sequence(&a).is_ok());
        assert!(validate_sequence("a b").is_err());
        assert!(validate_sequence("").is_err());
    }
}
