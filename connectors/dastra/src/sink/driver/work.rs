//! One worker: apply a key's newest event, record its effect in the ledger, retry what is
//! retryable; what it ended with goes back to the loop.

use super::*;

/// How a worker ended: its result and the attempts it took. A worker still retrying at shutdown is
/// aborted instead, and its offsets stay open (redelivered to the next owner).
pub(super) struct Finished {
    /// The outcome, or the error that is not worth retrying.
    pub(super) result: Result<Outcome, ApplyError>,
    /// Attempts it took.
    pub(super) attempts: u32,
}

/// The quota class of an event: DSRs and deletes first (legal deadlines, privacy impact), then
/// live changes, then snapshot sweeps and backfills (`data.is_snapshot()`). A work's requests wait
/// for the quota in its class ([`Work::class`]), and the driver starts ready keys in the same order
/// (`ReadyKeys`), so a live change does not queue behind a backlog already read.
pub(crate) fn priority_of(event: &ChangeEvent) -> Priority {
    if event.kind() == dastra_connect_core::event::EntityKind::DataSubjectRequest
        || event.op == dastra_connect_core::event::Op::Delete
    {
        Priority::Urgent
    } else if event.data.is_snapshot() {
        Priority::Backfill
    } else {
        Priority::Live
    }
}

/// Applies one work item and records its effect in the ledger, retrying retryable failures with
/// capped exponential backoff until they succeed or the process shuts down.
pub(super) async fn work_on(shared: &SinkServices, work: &Work) -> Finished {
    let client = shared.client.with_priority(work.class);
    let ctx = ApplyCtx {
        client: &client,
        ledger: &shared.ledger,
        policy: &shared.config.policy,
        objects: shared.objects.as_deref(),
        batcher: Some(&shared.batcher),
    };
    let mut attempts = 0u32;
    let mut delay = Duration::from_millis(200);
    loop {
        attempts += 1;
        let result = apply(&ctx, &work.event).await;
        let result = match result {
            Ok(outcome) => record(shared, work, outcome).await,
            Err(e) => Err(e),
        };
        match result {
            Err(e) if e.class() == ErrorClass::Retryable => {
                tracing::warn!(connector = %shared.name, key = %work.event.key, attempts, code = e.code(), error = %e, "apply failed; retrying");
                tokio::time::sleep(jitter(delay)).await;
                delay = (delay * 2).min(shared.config.max_backoff);
            }
            result => return Finished { result, attempts },
        }
    }
}

/// Stores the outcome's ledger entry (durably) before the offsets may be released; with batching
/// on, the entry of a skip is left to the driver (see `Driver::finish`).
async fn record(shared: &SinkServices, work: &Work, outcome: Outcome) -> Result<Outcome, ApplyError> {
    let entry = match &outcome {
        Outcome::Applied { entry, .. } => Some(entry),
        // Nothing but a ledger write: the driver stages it in the ledger's write batch and
        // releases the offsets once that batch is durable.
        Outcome::Skipped { .. } if stages(shared, work) => None,
        Outcome::Skipped { entry, .. } => entry.as_ref(),
        Outcome::Pending { .. } => None,
    };
    if let Some(entry) = entry {
        shared.ledger.put(&work.event.key, entry).await?;
    }
    Ok(outcome)
}

/// Whether a skip's ledger entry goes to the ledger's write batch. Not for an event re-driven from
/// the pending store: it has no offset left to hold back, and its entry must be durable before its
/// pending entry is removed.
pub(super) fn stages(shared: &SinkServices, work: &Work) -> bool {
    shared.ledger.batching() && !work.from_pending
}

fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    let ms = d.as_millis().max(1) as u64;
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}
