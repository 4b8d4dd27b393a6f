//! The generic create-or-update of one entity: intent before POST, lookup before any POST that may
//! repeat an earlier one, JSON Patch of the changed fields only, recreate when a human deleted the
//! entity in Dastra.

use std::future::Future;

use dastra_connect_core::event::EntityKey;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ApplyCtx, ApplyError, Outcome, SkipReason};
use crate::DastraClient;
use crate::client::resources::{Patchable, Resource};
use crate::error::DastraError;
use crate::model::PatchOperation;
use crate::sink::ledger::{EntryState, FieldHashes, LedgerEntry, content_hashes};

/// What the sink needs of a resource beyond the client's view.
pub trait SinkResource: Resource + Patchable {
    /// The Dastra id of a POST answer.
    fn created_id(created: &Self::Created) -> Option<String>;
    /// The Dastra id of a GET/list item.
    fn read_id(read: &Self::Read) -> Option<String>;
    /// Parses an id stored in the ledger.
    fn parse_id(text: &str) -> Option<Self::Id>;
    /// Dastra has `POST <collection>/batch-delete` and `PATCH <collection>` for it (the sink's
    /// batcher groups its deletes and identical patches).
    const BATCH_ROUTES: bool = false;
    /// Dastra archives many of it in one request: `(route template, path under the collection)`
    /// of `POST <collection>/archive` (DataProcessings, Contracts) or `POST Tasks/batch-archive`,
    /// the ids as a JSON array. `None`: every archive goes alone.
    const BATCH_ARCHIVE: Option<(&'static str, &'static str)> = None;
    /// Route template of its own archive of one record (the plan's single route).
    const ARCHIVE_ROUTE: &'static str = <Self as Resource>::ROUTES.archive;
    /// Dastra restores many of it in one request, like [`Self::BATCH_ARCHIVE`]: `POST
    /// <collection>/restore` (DataProcessings, Contracts) or `POST Tasks/batch-restore`.
    const BATCH_RESTORE: Option<(&'static str, &'static str)> = None;
    /// Route template of its own restore of one record.
    const RESTORE_ROUTE: &'static str = <Self as Resource>::ROUTES.restore;
    /// Archives one record on its own route (a 404 is success: a person deleted it already).
    fn archive_one<'a>(client: &'a DastraClient, id: &'a Self::Id) -> BoxFuture<'a, Result<(), DastraError>> {
        let _ = (client, id);
        Box::pin(async {
            Err(DastraError::Build { route: Self::ARCHIVE_ROUTE, detail: format!("{} has no archive", Self::PATH) })
        })
    }
    /// Restores one archived record on its own route (a 404 is the caller's: the record is gone).
    fn restore_one<'a>(client: &'a DastraClient, id: &'a Self::Id) -> BoxFuture<'a, Result<(), DastraError>> {
        let _ = (client, id);
        Box::pin(async {
            Err(DastraError::Build { route: Self::RESTORE_ROUTE, detail: format!("{} has no restore", Self::PATH) })
        })
    }
}

/// The [`SinkResource`] items of a collection that Dastra archives and restores with `POST
/// <collection>/archive/{id}`, `…/restore/{id}` and their batch forms `POST <collection>/archive`,
/// `…/restore` (DataProcessings, Contracts).
macro_rules! archive_routes {
    ($c:literal) => {
        const BATCH_ARCHIVE: Option<(&'static str, &'static str)> =
            Some((concat!("POST /v1/ws/{workspaceId}/", $c, "/archive"), "archive"));
        const BATCH_RESTORE: Option<(&'static str, &'static str)> =
            Some((concat!("POST /v1/ws/{workspaceId}/", $c, "/restore"), "restore"));
        fn archive_one<'a>(
            client: &'a crate::DastraClient,
            id: &'a Self::Id,
        ) -> futures::future::BoxFuture<'a, Result<(), crate::error::DastraError>> {
            Box::pin(client.archive::<Self>(id))
        }
        fn restore_one<'a>(
            client: &'a crate::DastraClient,
            id: &'a Self::Id,
        ) -> futures::future::BoxFuture<'a, Result<(), crate::error::DastraError>> {
            Box::pin(client.restore::<Self>(id))
        }
    };
}
pub(super) use archive_routes;

/// One upsert: the entity, its source version, and the DTO content to send (as JSON, with the
/// external key field already set).
pub struct UpsertInput<'a> {
    /// The entity key.
    pub key: &'a EntityKey,
    /// Source version of the event.
    pub sequence: &'a str,
    /// The DTO, as JSON.
    pub content: Value,
    /// The current ledger entry.
    pub current: Option<LedgerEntry>,
    /// The POST body carries only part of the content (DataProcessings: `{label, areaId,
    /// processingType}`): after the create, the entity is recorded live with what the POST sent and
    /// the rest is PATCHed at once (a failure there is retried as an ordinary update, never as a
    /// second POST).
    pub partial_create: bool,
    /// What identifies the content for the ledger's hashes when `content` carries denormalised
    /// copies of other entities (a processing's `assets` as `{id, label, type}`): the same fields,
    /// with the copies reduced to what the entity itself decides (the asset ids). A rename of an
    /// asset then costs its processings nothing. `None`: `content` itself.
    pub hash_view: Option<Value>,
}

fn to_dto<T: DeserializeOwned>(content: &Value) -> Result<T, ApplyError> {
    serde_json::from_value(content.clone()).map_err(|e| ApplyError::invalid("invalid_value", e.to_string()))
}

/// Creates or updates one entity. `find` looks the entity up in Dastra by its external key (used
/// after an intent whose POST may have happened); it returns the Dastra id if found.
pub async fn upsert<R, F, Fut>(ctx: &ApplyCtx<'_>, input: UpsertInput<'_>, find: F) -> Result<Outcome, ApplyError>
where
    R: SinkResource,
    R::Create: DeserializeOwned,
    R::Write: DeserializeOwned + Serialize,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Option<String>, DastraError>>,
{
    let (hash, fields) = content_hashes(input.hash_view.as_ref().unwrap_or(&input.content));
    let mut requests = 0u32;
    // Dependent-object ids (relationship ids, DSR state, attachments…) survive updates of the entity.
    let kept_links = input.current.as_ref().filter(|e| e.state == EntryState::Live).map(|e| e.links.clone());
    let recorded = |id: String, links: Option<std::collections::BTreeMap<String, String>>| LedgerEntry {
        state: EntryState::Live,
        id: Some(id),
        version: Some(input.sequence.to_owned()),
        hash: Some(hash.clone()),
        fields: FieldHashes::from_map(&fields),
        links: links.unwrap_or_default(),
        src: None,
        attempt: None,
    };

    let mut existing_id: Option<String> = None;
    let mut previous_fields = None;
    match input.current.as_ref().map(|e| (e.state, e)) {
        Some((EntryState::Live, cur)) => {
            if cur.hash.as_deref() == Some(hash.as_str()) {
                let mut entry = cur.clone();
                entry.version = Some(input.sequence.to_owned());
                return Ok(Outcome::Skipped { reason: SkipReason::Unchanged, entry: Some(entry) });
            }
            existing_id = cur.id.clone();
            previous_fields = Some(cur.fields.to_map());
        }
        Some((EntryState::Intent, cur)) => {
            // The earlier POST may have happened: look before creating again. If it did, it wrote
            // the fields the intent lists: all are written again, and those absent now cleared.
            requests += 1;
            existing_id = find().await?;
            previous_fields = Some(rewrite_all(&cur.fields));
        }
        Some((EntryState::Deleted, _)) | None => {}
    }

    if let Some(id_text) = existing_id {
        let id = R::parse_id(&id_text)
            .ok_or_else(|| ApplyError::invalid("ledger_bad_id", format!("ledger id {id_text:?} is not a Dastra id")))?;
        let ops = patch_ops(&input.content, &fields, previous_fields.as_ref());
        requests += 1;
        let result = if ops.is_empty() { Ok(()) } else { ctx.patch::<R>(&id, &ops).await };
        match result {
            Ok(()) => return Ok(Outcome::Applied { entry: recorded(id_text, kept_links), requests }),
            // Deleted in Dastra by a person: the source still has it, so it is created again.
            Err(e) if e.status() == Some(404) => {
                tracing::warn!(key = %input.key, id = %id_text, "entity vanished from Dastra; creating it again");
            }
            Err(e) => return Err(e.into()),
        }
    }

    // Create: record the intent first, so a crash or an ambiguous answer leads to a lookup, never to
    // a second POST.
    // The intent names the version attempted, so that after a crash nothing older is applied first.
    // It also lists the fields the POST writes, so that a lookup that finds the entity knows
    // which ones to clear.
    let body: R::Create = to_dto(&input.content)?;
    let sent_fields = if input.partial_create {
        let sent = serde_json::to_value(&body).map_err(|e| ApplyError::invalid("invalid_value", e.to_string()))?;
        content_hashes(&sent).1
    } else {
        fields.clone()
    };
    let open = input.current.as_ref().filter(|e| e.state == EntryState::Intent);
    if open.is_none_or(|e| e.attempt.as_deref() != Some(input.sequence) || e.fields.to_map() != sent_fields) {
        let mut intent = LedgerEntry::intent_for(input.current.as_ref(), input.sequence);
        intent.fields = FieldHashes::from_map(&sent_fields);
        ctx.ledger.put(input.key, &intent).await?;
    }
    requests += 1;
    let created = ctx.client.create::<R>(&body).await?;
    let id = R::created_id(&created)
        .ok_or_else(|| ApplyError::invalid("dastra_no_id", format!("Dastra created {} but returned no id", R::PATH)))?;
    if input.partial_create {
        let sent = serde_json::to_value(&body).map_err(|e| ApplyError::invalid("invalid_value", e.to_string()))?;
        let sent_hash = content_hashes(&sent).0;
        // Live with what the POST carried, at the previous version: if the PATCH below fails, the
        // retry sees a live entity and PATCHes the difference.
        let partial = LedgerEntry {
            state: EntryState::Live,
            id: Some(id.clone()),
            version: input.current.as_ref().and_then(|e| e.version.clone()),
            hash: Some(sent_hash),
            fields: FieldHashes::from_map(&sent_fields),
            links: Default::default(),
            src: None,
            attempt: None,
        };
        ctx.ledger.put(input.key, &partial).await?;
        let ops: Vec<PatchOperation> = patch_ops(&input.content, &fields, Some(&sent_fields))
            .into_iter()
            .filter(|op| op.value.as_ref().is_some_and(|v| !v.is_null()))
            .collect();
        if !ops.is_empty() {
            let typed = R::parse_id(&id)
                .ok_or_else(|| ApplyError::invalid("dastra_bad_id", format!("Dastra returned the id {id:?}")))?;
            requests += 1;
            ctx.client.patch::<R>(&typed, &ops).await?;
        }
    }
    Ok(Outcome::Applied { entry: recorded(id, None), requests })
}

/// Field hashes that match no content: every field they name is written again by the next PATCH,
/// and those the content lacks are cleared. Used where Dastra holds a whole earlier version whose
/// exact content is unknown (an archived entity being restored, a create found by lookup).
pub fn rewrite_all(fields: &FieldHashes) -> std::collections::BTreeMap<String, String> {
    fields.to_map().into_keys().map(|k| (k, String::new())).collect()
}

/// JSON Patch operations turning what was last sent (known by field hashes) into `content`, whose
/// field hashes are `now`. With no previous hashes (after a reconciling lookup) every field is set.
pub fn patch_ops(
    content: &Value,
    now: &std::collections::BTreeMap<String, String>,
    previous: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<PatchOperation> {
    let Value::Object(map) = content else { return Vec::new() };
    let mut ops = Vec::new();
    for (field, value) in map {
        if previous.and_then(|p| p.get(field)) == now.get(field) {
            continue;
        }
        // `add` sets a member whether or not the stored document has it (`replace` fails on an
        // absent member under RFC 6902, e.g. `ref` right after a DataProcessing create).
        ops.push(PatchOperation::set(format!("/{field}"), value.clone()));
    }
    if let Some(prev) = previous {
        for field in prev.keys().filter(|f| !map.contains_key(*f)) {
            // Sent before, absent now: the source cleared it. `remove`, not a null: many of
            // Dastra's fields (enums, booleans) are not nullable in its schema, and a removed
            // member is what an absent one is (ASP.NET resets the property to its default).
            ops.push(PatchOperation::remove(format!("/{field}")));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changed_and_cleared_fields_are_patched() {
        let before = json!({"label": "CRM", "type": "Software", "city": "Lyon"});
        let (_, prev) = content_hashes(&before);
        let after = json!({"label": "CRM 2", "type": "Software"});
        let (_, now) = content_hashes(&after);
        let ops = patch_ops(&after, &now, Some(&prev));
        let paths: Vec<_> = ops.iter().map(|o| (o.path.as_str(), o.value.clone())).collect();
        assert_eq!(paths, vec![("/label", Some(json!("CRM 2"))), ("/city", None)]);
        assert_eq!(ops[1].op, "remove");
        assert_eq!(patch_ops(&after, &now, None).len(), 2, "no previous hashes: every field");
    }
}
