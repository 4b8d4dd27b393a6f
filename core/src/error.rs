//! Error classification shared by every crate: each error knows whether retrying can help and has a
//! stable, low-cardinality code used as a metric label and a DLQ header.

/// What the caller should do with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Transient: retry with backoff (timeouts, 5xx, 429, broker not reachable).
    Retryable,
    /// The input or request is wrong: retrying gives the same answer (DLQ it, park the key).
    Permanent,
    /// The process cannot go on (bad config, lost fencing, corrupted state): stop and report.
    Fatal,
}

/// Implemented by every error type of the project.
pub trait Classify {
    /// How to react to this error.
    fn class(&self) -> ErrorClass;
    /// Stable snake_case code, used as metric label `reason` and DLQ header `dastra_error_code`.
    fn code(&self) -> &'static str;
    /// Shorthand for `class() == Retryable`.
    fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }
}
