//! Applying one (coalesced) change event to Dastra: map the payload to Dastra's DTO, compare with the
//! ledger, and send the cheapest requests — nothing for non-changes, a JSON Patch of only the changed
//! fields for updates, a POST guarded by an intent record and a lookup for creates, and the
//! configured delete policy for deletes.
//!
//! The driver ([`super::driver`]) calls [`apply`] for one key at a time, so per-key order holds and no
//! two requests for one entity race.

mod batcher;
pub mod content;
mod contract;
mod datafield;
mod dataset;
mod dsr;
mod engine;
mod entities;
pub mod fingerprint;
mod native;
mod processing;
mod refs;
mod relationship;
mod task;

use dastra_connect_core::event::{ChangeEvent, EntityKey};
use dastra_connect_core::state::StateError;
use dastra_connect_core::{Classify, ErrorClass};

use super::config::SinkPolicy;
use super::ledger::{EntryState, Ledger, LedgerEntry};
use crate::DastraClient;
use crate::error::DastraError;

pub use batcher::RequestBatcher;
pub use content::{MAX_ATTACHMENT_BYTES, ObjectError, ObjectStore};
pub use engine::{SinkResource, patch_ops, upsert};
pub use native::SYSTEM as NATIVE_SYSTEM;
pub use task::{TASK_KEY_FIELD, TASK_LINK_TYPE, TASK_TEAM_FIELD, email_digest};

/// Everything [`apply`] needs.
pub struct ApplyCtx<'a> {
    /// The Dastra client (its priority class is chosen by the driver).
    pub client: &'a DastraClient,
    /// The ledger (resolves references; records intents).
    pub ledger: &'a Ledger,
    /// Entity policies (deletes, actor keys).
    pub policy: &'a SinkPolicy,
    /// The bus-side object store attachments may name (NATS only; `None` on Kafka).
    pub objects: Option<&'a dyn ObjectStore>,
    /// Groups deletes and identical patches of keys worked on at once into Dastra's batch routes;
    /// `None`: every request on its own route (`plan`, and `batch_window = 0`).
    pub batcher: Option<&'a RequestBatcher>,
}

impl ApplyCtx<'_> {
    /// Deletes the entity `id` of `R` (a 404 is success), through the batcher when there is one.
    pub(crate) async fn delete<R: SinkResource>(&self, id: &str) -> Result<(), DastraError> {
        match self.batcher {
            Some(b) => b.delete::<R>(self.client, id).await,
            None => batcher::delete_one::<R>(self.client, id).await,
        }
    }

    /// Archives the entity `id` of `R` (a 404 is success), through the batcher when there is one.
    pub(crate) async fn archive<R: SinkResource>(&self, id: &str) -> Result<(), DastraError> {
        match self.batcher {
            Some(b) => b.archive::<R>(self.client, id).await,
            None => batcher::archive_one::<R>(self.client, id).await,
        }
    }

    /// Restores the archived entity `id` of `R`, through the batcher when there is one (a 404 is
    /// returned: the record is gone, the caller creates it).
    pub(crate) async fn restore<R: SinkResource>(&self, id: &str) -> Result<(), DastraError> {
        match self.batcher {
            Some(b) => b.restore::<R>(self.client, id).await,
            None => batcher::restore_one::<R>(self.client, id).await,
        }
    }

    /// Patches the entity `id` of `R`, through the batcher when there is one.
    pub(crate) async fn patch<R: SinkResource>(
        &self,
        id: &R::Id,
        ops: &[crate::model::PatchOperation],
    ) -> Result<(), DastraError> {
        match self.batcher {
            Some(b) => b.patch::<R>(self.client, id, ops).await,
            None => self.client.patch::<R>(id, ops).await,
        }
    }
}

/// Why an event needed no request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Older than (or as old as) the version already applied.
    Stale,
    /// The mapped content equals what was last sent.
    Unchanged,
    /// A delete of an entity the sink never created (create + delete cancelled out).
    Cancelled,
    /// A delete under the `ignore` policy.
    Ignored,
}

impl SkipReason {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stale => "stale",
            Self::Unchanged => "unchanged",
            Self::Cancelled => "cancelled",
            Self::Ignored => "ignored",
        }
    }
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Requests were sent; the new ledger entry (not yet stored: the driver stores it).
    Applied {
        /// The entry to record.
        entry: LedgerEntry,
        /// Requests sent (including lookups).
        requests: u32,
    },
    /// Nothing was sent; `entry` is the entry to record when it changed (e.g. a newer version with
    /// the same content), `None` when the ledger stays as it is.
    Skipped {
        /// Why.
        reason: SkipReason,
        /// Entry to record, if any.
        entry: Option<LedgerEntry>,
    },
    /// The event references entities Dastra does not have yet; retry when they appear.
    Pending {
        /// The missing entity keys.
        missing: Vec<EntityKey>,
    },
}

/// Why applying failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Dastra answered an error or could not be reached (after the client's own retries).
    #[error(transparent)]
    Dastra(#[from] DastraError),
    /// The ledger could not record an intent.
    #[error("ledger: {0}")]
    State(#[from] StateError),
    /// An attachment's content could not be fetched (URL or object store).
    #[error("attachment fetch: {message}")]
    Fetch {
        /// True for network failures and 5xx answers (tried again), false for 4xx and oversize.
        retryable: bool,
        /// What failed (file name and cause; never the content).
        message: String,
    },
    /// The event cannot be expressed as a valid Dastra DTO (a permanent error: DLQ).
    #[error("{code}: {message}")]
    Invalid {
        /// Stable code (`missing_field`, `invalid_value`, …).
        code: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl ApplyError {
    /// An invalid-event error.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }

    /// The HTTP status, when Dastra answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Dastra(e) => e.status(),
            _ => None,
        }
    }
}

impl Classify for ApplyError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Dastra(e) => e.class(),
            Self::State(e) => match e.class() {
                ErrorClass::Permanent => ErrorClass::Fatal,
                c => c,
            },
            Self::Fetch { retryable: true, .. } => ErrorClass::Retryable,
            Self::Fetch { .. } | Self::Invalid { .. } => ErrorClass::Permanent,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            Self::Dastra(e) => e.code(),
            Self::State(e) => e.code(),
            Self::Fetch { .. } => "attachment_fetch",
            Self::Invalid { code, .. } => code,
        }
    }
}

/// Applies `event` (already checked not stale by the driver, but checked again here).
pub async fn apply(ctx: &ApplyCtx<'_>, event: &ChangeEvent) -> Result<Outcome, ApplyError> {
    let mut current = ctx.ledger.get(&event.key);
    if current.as_ref().is_some_and(|e| e.is_stale(&event.sequence)) {
        return Ok(Outcome::Skipped { reason: SkipReason::Stale, entry: None });
    }
    let src = fingerprint::source_fingerprint(ctx, event);
    if let Some(outcome) = repeat_of(src.as_deref(), event, &mut current) {
        return Ok(outcome);
    }
    let outcome = entities::apply_entity(ctx, event, current).await?;
    Ok(with_fingerprint(outcome, src))
}

/// What [`apply`] answers, without a request or an await, for an event that repeats the source
/// content last sent for a live entity (snapshot sweeps, re-publishing sources): `Skipped` with
/// the entry moved on to the event's version. `None`: the event needs [`apply`]. `current` is the
/// key's ledger entry, already checked not to make the event stale. The driver answers such
/// events itself instead of starting a worker for them.
pub fn repeat(ctx: &ApplyCtx<'_>, event: &ChangeEvent, current: LedgerEntry) -> Option<Outcome> {
    // Only an entry that can match is worth the fingerprint.
    if current.state != EntryState::Live || current.src.is_none() {
        return None;
    }
    let src = fingerprint::source_fingerprint(ctx, event)?;
    repeat_of(Some(&src), event, &mut Some(current))
}

fn repeat_of(src: Option<&str>, event: &ChangeEvent, current: &mut Option<LedgerEntry>) -> Option<Outcome> {
    let src = src?;
    let mut entry = current.take_if(|cur| cur.state == EntryState::Live && cur.src.as_deref() == Some(src))?;
    // The same source content as what was last sent, against the same references: nothing to
    // map, nothing to send; only the version moves on.
    entry.version = Some(event.sequence.clone());
    Some(Outcome::Skipped { reason: SkipReason::Unchanged, entry: Some(entry) })
}

/// Records the event's fingerprint with the entry of a live entity whose content is now this
/// event's mapping (sent, or found equal). Deletes and half-done creates carry none.
fn with_fingerprint(mut outcome: Outcome, src: Option<String>) -> Outcome {
    if let Outcome::Applied { entry, .. } | Outcome::Skipped { entry: Some(entry), .. } = &mut outcome
        && entry.state == EntryState::Live
    {
        entry.src = src;
    }
    outcome
}
