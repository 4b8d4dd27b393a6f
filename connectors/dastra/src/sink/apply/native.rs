//! Entities that live in Dastra, named by their own id: entity keys of the system `dastra`
//! (`dastra:dsr:42`, the keys the webhook receiver publishes Dastra's webhooks under). A tool that
//! consumes `<prefix>.events` answers about such an entity under the same key:
//!
//! - an event about it **updates** that Dastra entity and never creates one (there is no external
//!   key to look up, and a second DSR for one request would be wrong): only the fields the event
//!   carries are PATCHed — an absent field is left as Dastra holds it, not cleared; a 404 (deleted
//!   in Dastra) is a permanent error (DLQ), not a re-create;
//! - a reference to it (a Task's `object`) resolves to the id in the key, without waiting for an
//!   event about it.

use dastra_connect_core::event::EntityKey;
use serde_json::Value;

use super::engine::{SinkResource, patch_ops};
use super::{ApplyCtx, ApplyError, Outcome, SkipReason};
use crate::sink::ledger::{EntryState, FieldHashes, LedgerEntry, content_hashes};

/// The system of entity keys that name a Dastra entity by its Dastra id.
pub const SYSTEM: &str = "dastra";

/// The Dastra id a key names, when it is a `dastra:<entity>:<id>` key.
pub(super) fn id(key: &EntityKey) -> Option<&str> {
    (key.system() == SYSTEM).then(|| key.external_id())
}

/// The entry a `dastra:` key has before the sink ever wrote to it: live, with the id in the key.
pub(super) fn first_entry(key: &EntityKey) -> Option<LedgerEntry> {
    id(key).map(LedgerEntry::live)
}

/// PATCHes the fields of `content` that differ from what was last sent for `key` (all of them the
/// first time); answers the new entry (links kept) and the requests sent.
pub(super) async fn update<R: SinkResource>(
    ctx: &ApplyCtx<'_>,
    key: &EntityKey,
    sequence: &str,
    content: Value,
    current: Option<LedgerEntry>,
) -> Result<Outcome, ApplyError> {
    let Some(id_text) = id(key).map(str::to_owned) else {
        return Err(ApplyError::invalid("invalid_key", format!("{key} does not name a Dastra entity")));
    };
    let current = current.filter(|e| e.state == EntryState::Live).unwrap_or_else(|| LedgerEntry::live(id_text.clone()));
    let (hash, fields) = content_hashes(&content);
    let entry = LedgerEntry {
        state: EntryState::Live,
        id: Some(id_text.clone()),
        version: Some(sequence.to_owned()),
        hash: Some(hash.clone()),
        fields: FieldHashes::from_map(&fields),
        links: current.links.clone(),
        src: None,
        attempt: None,
    };
    if current.hash.as_deref() == Some(hash.as_str()) {
        return Ok(Outcome::Skipped { reason: SkipReason::Unchanged, entry: Some(entry) });
    }
    let typed = R::parse_id(&id_text)
        .ok_or_else(|| ApplyError::invalid("invalid_key", format!("{key}: {id_text:?} is not a Dastra id")))?;
    // Only `add`s: a field the event leaves out is one this tool does not own.
    let ops: Vec<_> =
        patch_ops(&content, &fields, Some(&current.fields.to_map())).into_iter().filter(|o| o.op != "remove").collect();
    if ops.is_empty() {
        return Ok(Outcome::Skipped { reason: SkipReason::Unchanged, entry: Some(entry) });
    }
    match ctx.client.patch::<R>(&typed, &ops).await {
        Ok(()) => Ok(Outcome::Applied { entry, requests: 1 }),
        Err(e) if e.status() == Some(404) => Err(ApplyError::invalid(
            "dastra_not_found",
            format!("{key}: Dastra has no {} {id_text} (deleted there?); a `dastra:` key is never created", R::PATH),
        )),
        Err(e) => Err(e.into()),
    }
}
