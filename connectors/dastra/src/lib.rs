//! Dastra: the API model and client, the quota limiter (and, later, the sink and the webhook receiver).
//!
//! - [`model`] — serde DTOs named exactly as Dastra's OpenAPI document.
//! - [`client`] — [`DastraClient`] with auth, timeouts, retries and the no-duplicate-create rule.
//! - [`quota`] — [`QuotaLimiter`], the process-wide rate limiter with priority classes.
//! - [`config`] — [`DastraClientConfig`].
//! - [`webhook`] — the webhook receiver.
//! - [`health`] — the `GET /me` connectivity check.

pub mod client;
pub mod config;
pub mod error;
pub mod health;
pub mod model;
pub mod quota;
pub mod sink;
pub mod webhook;

pub use client::metrics::MetricsObserver;
pub use client::resources::{
    Actors, Archivable, Areas, Assets, BatchDeletable, BatchPatchable, Contracts, DataFields, DataProcessings,
    DataRetentionRules, DataSubjectRequests, ExternalKeyed, HasWorkflow, KeyLookup, ListQuery, Patchable, Resource,
    Routes, Tasks, Teams,
};
pub use client::{AttemptOutcome, DastraClient, RequestEvent, RequestObserver};
pub use config::{AuthConfig, DastraClientConfig, RetryConfig};
pub use error::{DastraError, Redactor, TransportKind};
pub use quota::{Priority, QuotaConfig, QuotaGrant, QuotaLimiter, QuotaSnapshot, QuotaWindow};
