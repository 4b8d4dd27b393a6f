//! [`SourceError`]: what polling a source system and publishing its events can fail with.

use crate::bus::BusError;
use crate::codec::CodecError;
use crate::state::StateError;
use crate::{Classify, ErrorClass};

/// A failure of a source (the source system's API, the bus, the state store).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source system answered with an error status.
    #[error("{system} answered {status} to {what}: {detail}")]
    Http {
        /// The system (`servicenow`).
        system: String,
        /// What was requested (path without query).
        what: String,
        /// HTTP status.
        status: u16,
        /// An excerpt of the error body (never credentials).
        detail: String,
    },
    /// The source system refused the credentials (401/403) or the token endpoint did.
    #[error("{system} refused the credentials ({status}) for {what}: {detail}")]
    Unauthorized {
        /// The system.
        system: String,
        /// What was requested.
        what: String,
        /// HTTP status.
        status: u16,
        /// An excerpt of the error body.
        detail: String,
    },
    /// Still rate-limited after every retry.
    #[error(
        "{system} kept answering 429 Too Many Requests (or its rate-limit equivalent) for {what} after {attempts} attempts"
    )]
    Throttled {
        /// The system.
        system: String,
        /// What was requested.
        what: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The connector's share of the system's API quota is spent (`http.max_api_share`): the request
    /// was not sent. Retried at later polls; one request per `http.api_budget_recheck` reads the
    /// usage again.
    #[error(
        "{system}: request for {what} not sent: {used} of {limit} API requests used, at or above the configured share {share} (http.max_api_share); next check in {retry_in_secs}s"
    )]
    ApiBudget {
        /// The system.
        system: String,
        /// What was requested.
        what: String,
        /// Requests used in the system's window, as last reported.
        used: u64,
        /// Requests allowed in the window.
        limit: u64,
        /// The configured share.
        share: f64,
        /// Seconds until a request may read the usage again.
        retry_in_secs: u64,
    },
    /// The request did not complete (connect, timeout, reset).
    #[error("request to {system} for {what} failed: {detail}")]
    Transport {
        /// The system.
        system: String,
        /// What was requested.
        what: String,
        /// The transport error.
        detail: String,
    },
    /// The answer could not be read (not JSON, missing fields, bad timestamps).
    #[error("{system} returned an unreadable answer for {what}: {detail}")]
    BadResponse {
        /// The system.
        system: String,
        /// What was requested.
        what: String,
        /// Why.
        detail: String,
    },
    /// The configuration does not work against this instance (an unknown field in a query, a table
    /// that does not exist). Fatal: fix the config.
    #[error("invalid source configuration: {0}")]
    Config(String),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// An event could not be encoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl Classify for SourceError {
    fn class(&self) -> ErrorClass {
        match self {
            SourceError::Http { status, .. } if *status == 408 || *status >= 500 => ErrorClass::Retryable,
            SourceError::Http { .. } => ErrorClass::Permanent,
            SourceError::Unauthorized { .. } | SourceError::Config(_) => ErrorClass::Fatal,
            SourceError::Throttled { .. } | SourceError::Transport { .. } | SourceError::ApiBudget { .. } => {
                ErrorClass::Retryable
            }
            SourceError::BadResponse { .. } => ErrorClass::Permanent,
            SourceError::State(e) => e.class(),
            SourceError::Bus(e) => e.class(),
            SourceError::Codec(e) => e.class(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            SourceError::Http { status, .. } if *status >= 500 => "source_http_5xx",
            SourceError::Http { .. } => "source_http_4xx",
            SourceError::Unauthorized { .. } => "source_unauthorized",
            SourceError::Throttled { .. } => "source_throttled",
            SourceError::ApiBudget { .. } => "source_api_budget",
            SourceError::Transport { .. } => "source_transport",
            SourceError::BadResponse { .. } => "source_bad_response",
            SourceError::Config(_) => "source_config",
            SourceError::State(e) => e.code(),
            SourceError::Bus(e) => e.code(),
            SourceError::Codec(e) => e.code(),
        }
    }
}
