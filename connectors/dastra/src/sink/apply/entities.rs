//! Mapping of payloads to Dastra DTOs: the dispatch over entity kinds, the shared helpers (payload
//! JSON without event-only fields, normalising through the typed DTO, deletes by policy), and the
//! Asset and Actor mappings. The other kinds live in their own modules (`contract`, `datafield`,
//! `dataset`, `task`, `processing`, `relationship`, `dsr`).
//!
//! Every mapping starts from the payload's JSON, drops what is not a DTO field (`snapshot`,
//! `deleted`, tags by label), sets the external key field, and lets the typed DTO check names,
//! types and enum values.

use dastra_connect_core::event::{ChangeEvent, Payload};
use serde_json::{Map, Value};

use super::engine::{SinkResource, UpsertInput, upsert};
use super::{ApplyCtx, ApplyError, Outcome, SkipReason};
use super::{contract, datafield, dataset, dsr, processing, relationship, task};
use crate::client::resources::{Actors, Assets, ExternalKeyed};
use crate::model::{Filter, fit_external_key};
use crate::sink::config::{ActorKey, DeletePolicy};
use crate::sink::ledger::{EntryState, LedgerEntry};

impl SinkResource for Assets {
    const BATCH_ROUTES: bool = true;
    fn created_id(c: &Self::Created) -> Option<String> {
        c.id.map(|i| i.to_string())
    }
    fn read_id(r: &Self::Read) -> Option<String> {
        r.id.map(|i| i.to_string())
    }
    fn parse_id(t: &str) -> Option<i32> {
        t.parse().ok()
    }
}

impl SinkResource for Actors {
    const BATCH_ROUTES: bool = true;
    fn created_id(c: &Self::Created) -> Option<String> {
        c.id.map(|i| i.to_string())
    }
    fn read_id(r: &Self::Read) -> Option<String> {
        r.id.map(|i| i.to_string())
    }
    fn parse_id(t: &str) -> Option<i32> {
        t.parse().ok()
    }
}

/// The payload's JSON without the event-only fields.
pub(super) fn payload_json(payload: &impl serde::Serialize) -> Result<Map<String, Value>, ApplyError> {
    match serde_json::to_value(payload) {
        Ok(Value::Object(mut m)) => {
            for f in ["snapshot", "deleted", "tags"] {
                m.remove(f);
            }
            // Absent and null mean the same to the sink; dropping nulls keeps the hashes stable.
            m.retain(|_, v| !v.is_null());
            if m.get("customFields").is_some_and(|v| v.as_object().is_some_and(Map::is_empty)) {
                m.remove("customFields");
            }
            Ok(m)
        }
        Ok(_) => Err(ApplyError::invalid("invalid_payload", "payload is not an object")),
        Err(e) => Err(ApplyError::invalid("invalid_payload", e.to_string())),
    }
}

/// Normalises content through the typed DTO: unknown names or bad enum values fail here (permanent),
/// and what is sent is exactly what the DTO serialises.
pub(super) fn through_dto<T: serde::de::DeserializeOwned + serde::Serialize>(
    content: Map<String, Value>,
) -> Result<Value, ApplyError> {
    let dto: T = serde_json::from_value(Value::Object(content))
        .map_err(|e| ApplyError::invalid("invalid_value", e.to_string()))?;
    let mut v = serde_json::to_value(&dto).map_err(|e| ApplyError::invalid("invalid_value", e.to_string()))?;
    if let Value::Object(m) = &mut v {
        m.retain(|_, v| !v.is_null());
    }
    Ok(v)
}

/// The `{type}` segment of the CloudStorage link route for an asset (inferred).
pub const ASSET_LINK_TYPE: &str = "Asset";

/// Applies one event to the entity's resource.
pub(super) async fn apply_entity(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    current: Option<LedgerEntry>,
) -> Result<Outcome, ApplyError> {
    let key = &event.key;
    match &event.data {
        Payload::Asset(a) => {
            let ext = fit_external_key(key.as_str(), Assets::KEY_MAX_LEN);
            let find = || async {
                let found = ctx.client.find_by_external_key::<Assets>(&ext).await?;
                Ok(found.first().and_then(Assets::read_id))
            };
            if a.deleted {
                return delete::<Assets, _, _>(ctx, event, current, find).await;
            }
            super::content::precheck(ctx, &a.attachments)?;
            let mut m = payload_json(a)?;
            m.remove("attachments");
            m.insert("ref".into(), Value::String(ext.clone()));
            let content = through_dto::<crate::model::Asset>(m)?;
            // A processing lists its assets as `AssetDto`s, whose `label` and `type` are required:
            // they are kept with the asset's ledger entry so that processings need no GET.
            let label = content.get("label").and_then(Value::as_str).unwrap_or_default().to_owned();
            let ty = content.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
            let input = UpsertInput {
                key,
                sequence: &event.sequence,
                content,
                current,
                partial_create: false,
                hash_view: None,
            };
            let outcome = upsert::<Assets, _, _>(ctx, input, find).await?;
            let outcome = with_links(outcome, |links| {
                links.insert("label".into(), label);
                links.insert("type".into(), ty);
            });
            super::content::with_documents(ctx, event, outcome, &a.attachments, ASSET_LINK_TYPE).await
        }
        Payload::Actor(a) if a.deleted => {
            // Deleting needs no lookup filter unless an intent is open; the natural key may be
            // absent from a delete event, so an open intent falls back to the custom-field key.
            let filter = match &ctx.policy.actor_key {
                ActorKey::CustomField { name } => Some(Filter::equal(format!("CustomFields.{name}"), key.as_str())),
                ActorKey::NaturalKey => natural_actor_filter(&payload_json(a)?).ok(),
            };
            let find = || {
                let filter = filter.clone();
                async move {
                    match filter {
                        Some(f) => Ok(ctx.client.find_by_filter::<Actors>(f).await?.first().and_then(Actors::read_id)),
                        None => Ok(None),
                    }
                }
            };
            delete::<Actors, _, _>(ctx, event, current, find).await
        }
        Payload::Actor(a) => {
            let mut m = payload_json(a)?;
            // Instants travel as epoch milliseconds; Dastra wants ISO 8601.
            m.remove("dpaSignatureDate");
            if let Some(d) = super::refs::instant(&a.dpa_signature_date) {
                m.insert("dpaSignatureDate".into(), d);
            }
            let filter = match &ctx.policy.actor_key {
                ActorKey::NaturalKey => natural_actor_filter(&m)?,
                ActorKey::CustomField { name } => {
                    let cf = m.entry("customFields").or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(cf) = cf {
                        cf.insert(name.clone(), Value::String(key.as_str().to_owned()));
                    }
                    Filter::equal(format!("CustomFields.{name}"), key.as_str())
                }
            };
            let content = through_dto::<crate::model::Actor>(m)?;
            let input = UpsertInput {
                key,
                sequence: &event.sequence,
                content,
                current,
                partial_create: false,
                hash_view: None,
            };
            upsert::<Actors, _, _>(ctx, input, || {
                let filter = filter.clone();
                async move {
                    let found = ctx.client.find_by_filter::<Actors>(filter).await?;
                    Ok(found.first().and_then(Actors::read_id))
                }
            })
            .await
        }
        Payload::Contract(c) => contract::apply(ctx, event, c, current).await,
        Payload::DataField(f) => datafield::apply(ctx, event, f, current).await,
        Payload::Dataset(d) => dataset::apply(ctx, event, d, current).await,
        Payload::Task(t) => task::apply(ctx, event, t, current).await,
        Payload::DataProcessing(p) => processing::apply(ctx, event, p, current).await,
        Payload::Relationship(r) => relationship::apply(ctx, event, r, current).await,
        Payload::DataSubjectRequest(d) => dsr::apply(ctx, event, d, current).await,
    }
}

/// The lookup after an open intent of a resource without an external-key field (DataFields,
/// datasets): the first entity its natural key `filter` matches. With no filter (a delete event may
/// carry no content) nothing is found: the entity is treated as never created.
pub(super) async fn find_natural<R: SinkResource>(
    ctx: &ApplyCtx<'_>,
    filter: Option<Filter>,
) -> Result<Option<String>, crate::error::DastraError> {
    match filter {
        Some(f) => Ok(ctx.client.find_by_filter::<R>(f).await?.first().and_then(R::read_id)),
        None => Ok(None),
    }
}

/// Adds links to the entry an outcome records (when it records one).
pub(super) fn with_links(
    mut outcome: Outcome,
    f: impl FnOnce(&mut std::collections::BTreeMap<String, String>),
) -> Outcome {
    match &mut outcome {
        Outcome::Applied { entry, .. } | Outcome::Skipped { entry: Some(entry), .. } => f(&mut entry.links),
        _ => {}
    }
    outcome
}

/// Company name for legal persons, given + family name for natural persons.
fn natural_actor_filter(m: &Map<String, Value>) -> Result<Filter, ApplyError> {
    let text = |f: &str| m.get(f).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(company) = text("companyName") {
        return Ok(Filter::equal("CompanyName", company));
    }
    match (text("givenName"), text("familyName")) {
        (Some(g), Some(f)) => Ok(Filter::and(vec![Filter::equal("GivenName", g), Filter::equal("FamilyName", f)])),
        _ => Err(ApplyError::invalid(
            "missing_field",
            "an Actor needs companyName, or givenName and familyName, to be matched by natural key",
        )),
    }
}

/// Deletes (or archives / ignores) an entity by policy, with `DELETE <collection>/{id}` for both
/// `delete` and `archive` (resources Dastra cannot archive). A delete of an unknown entity records
/// the version, so that an older upsert arriving later cannot bring it back.
pub(super) async fn delete<R, F, Fut>(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    current: Option<LedgerEntry>,
    find: F,
) -> Result<Outcome, ApplyError>
where
    R: SinkResource,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, crate::error::DastraError>>,
{
    remove(ctx, event, current, find, |id_text, _policy| async move {
        R::parse_id(&id_text)
            .ok_or_else(|| ApplyError::invalid("ledger_bad_id", format!("ledger id {id_text:?} is not a Dastra id")))?;
        // A 404 is already gone.
        ctx.delete::<R>(&id_text).await?;
        Ok(1)
    })
    .await
}

/// The policy skeleton of every delete: resolve the Dastra id (looking up after an open intent),
/// honour `ignore`, else call `removal(id, policy)` (`delete` or `archive`), which answers the
/// number of requests it sent.
pub(super) async fn remove<F, Fut, D, DFut>(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    current: Option<LedgerEntry>,
    find: F,
    removal: D,
) -> Result<Outcome, ApplyError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, crate::error::DastraError>>,
    D: FnOnce(String, DeletePolicy) -> DFut,
    DFut: std::future::Future<Output = Result<u32, ApplyError>>,
{
    let mut tombstone = LedgerEntry::intent();
    tombstone.state = EntryState::Deleted;
    tombstone.version = Some(event.sequence.clone());
    let mut requests = 0;
    let id_text = match current.as_ref().map(|e| (e.state, e.id.clone())) {
        Some((EntryState::Live, Some(id))) => id,
        // The create may have reached Dastra before the process died: look before concluding.
        // Likewise a live entry without an id (a generic relationship whose id was not read back
        // after its POST): found by what the entry records.
        Some((EntryState::Intent, _) | (EntryState::Live, None)) => {
            requests += 1;
            match find().await? {
                Some(id) => id,
                None => return Ok(Outcome::Skipped { reason: SkipReason::Cancelled, entry: Some(tombstone) }),
            }
        }
        _ => return Ok(Outcome::Skipped { reason: SkipReason::Cancelled, entry: Some(tombstone) }),
    };
    let policy = ctx.policy.delete_policy(event.kind());
    if policy == DeletePolicy::Ignore {
        let mut kept = current.unwrap_or_else(|| LedgerEntry::live(id_text));
        kept.version = Some(event.sequence.clone());
        return Ok(Outcome::Skipped { reason: SkipReason::Ignored, entry: Some(kept) });
    }
    requests += removal(id_text.clone(), policy).await?;
    tombstone.id = Some(id_text);
    if let Some(cur) = current {
        tombstone.links = cur.links;
        if policy == DeletePolicy::Archive {
            // What the archived record holds: a restore must clear what the new version lacks.
            tombstone.fields = cur.fields;
        }
    }
    // How it was removed: an archived entity that comes back at the source is restored, not
    // created a second time (it still holds its external key).
    let how = if policy == DeletePolicy::Archive { REMOVED_ARCHIVED } else { "deleted" };
    tombstone.links.insert(REMOVED.into(), how.into());
    Ok(Outcome::Applied { entry: tombstone, requests })
}

/// Ledger link recording how a deleted entity was removed.
const REMOVED: &str = "removed";
const REMOVED_ARCHIVED: &str = "archived";

/// Before an upsert: an entity the sink archived (delete policy `archive`) is restored with
/// `restore(id)` and handed to the upsert as live with field hashes that match nothing, so that the
/// PATCH writes the whole new version: every field it has, and a clear of every field the archived
/// record held that it lacks. Answers the entry to upsert against and the requests sent. When the archived entity is
/// gone from Dastra (404), the upsert creates it.
pub(super) async fn revive<F, Fut>(
    current: Option<LedgerEntry>,
    restore: F,
) -> Result<(Option<LedgerEntry>, u32), ApplyError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), ApplyError>>,
{
    let Some(cur) = current else { return Ok((None, 0)) };
    let archived =
        cur.state == EntryState::Deleted && cur.links.get(REMOVED).map(String::as_str) == Some(REMOVED_ARCHIVED);
    let Some(id) = cur.id.clone().filter(|_| archived) else { return Ok((Some(cur), 0)) };
    let mut links = cur.links.clone();
    links.remove(REMOVED);
    match restore(id.clone()).await {
        Ok(()) => {
            let mut live = LedgerEntry::live(id);
            live.version = cur.version.clone();
            live.links = links;
            live.fields = crate::sink::ledger::FieldHashes::from_map(&super::engine::rewrite_all(&cur.fields));
            Ok((Some(live), 1))
        }
        Err(e) if e.status() == Some(404) => {
            let mut gone = cur;
            gone.id = None;
            gone.links = links;
            Ok((Some(gone), 1))
        }
        Err(e) => Err(e),
    }
}

/// Adds requests sent before the upsert to its outcome (a restore turns a skip into an apply).
pub(super) fn plus_requests(outcome: Outcome, extra: u32, revived: Option<LedgerEntry>) -> Outcome {
    if extra == 0 {
        return outcome;
    }
    match outcome {
        Outcome::Applied { entry, requests } => Outcome::Applied { entry, requests: requests + extra },
        Outcome::Skipped { entry, .. } => match entry.or(revived) {
            Some(entry) => Outcome::Applied { entry, requests: extra },
            None => Outcome::Skipped { reason: SkipReason::Unchanged, entry: None },
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archived(id: &str) -> LedgerEntry {
        let mut e = LedgerEntry::intent();
        e.state = EntryState::Deleted;
        e.id = Some(id.into());
        e.version = Some("7".into());
        e.links.insert(REMOVED.into(), REMOVED_ARCHIVED.into());
        e.links.insert("state".into(), "Open".into());
        let held = std::collections::BTreeMap::from([
            ("city".to_owned(), "h1".to_owned()),
            ("description".to_owned(), "h2".to_owned()),
        ]);
        e.fields = crate::sink::ledger::FieldHashes::from_map(&held);
        e
    }

    fn not_found() -> ApplyError {
        ApplyError::Dastra(crate::error::DastraError::Http {
            route: "POST /v1/ws/{workspaceId}/Contracts/restore/{id}",
            status: 404,
            attempts: 1,
            excerpt: String::new(),
            invalid_fields: Vec::new(),
        })
    }

    #[tokio::test]
    async fn an_archived_entity_is_restored_and_fully_patched_a_deleted_one_is_not() {
        let (entry, n) = revive(Some(archived("42")), |id| async move {
            assert_eq!(id, "42");
            Ok(())
        })
        .await
        .unwrap();
        let entry = entry.unwrap();
        assert_eq!(n, 1);
        assert_eq!((entry.state, entry.id.as_deref(), entry.hash.as_deref()), (EntryState::Live, Some("42"), None));
        let fields = entry.fields.to_map();
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["city", "description"], "what the archived record held");
        assert!(fields.values().all(String::is_empty), "hashes that match nothing: every field is PATCHed");
        assert_eq!(entry.version.as_deref(), Some("7"));
        assert_eq!(entry.links.get("state").map(String::as_str), Some("Open"));
        assert!(!entry.links.contains_key(REMOVED));

        // Hard-deleted: nothing to restore, the upsert creates.
        let mut deleted = archived("42");
        deleted.links.insert(REMOVED.into(), "deleted".into());
        let (entry, n) =
            revive(Some(deleted.clone()), |_| async { panic!("no restore of a deleted entity") }).await.unwrap();
        assert_eq!((entry, n), (Some(deleted), 0));

        // Archived, then removed by a person: restore answers 404, the upsert creates.
        let (entry, n) = revive(Some(archived("42")), |_| async { Err(not_found()) }).await.unwrap();
        let entry = entry.unwrap();
        assert_eq!((entry.state, entry.id, n), (EntryState::Deleted, None, 1));
    }

    #[test]
    fn requests_before_the_upsert_are_counted_and_turn_a_skip_into_an_apply() {
        let live = LedgerEntry::live("1");
        let skipped = Outcome::Skipped { reason: SkipReason::Unchanged, entry: Some(live.clone()) };
        assert_eq!(plus_requests(skipped.clone(), 0, None), skipped);
        assert_eq!(plus_requests(skipped, 1, None), Outcome::Applied { entry: live.clone(), requests: 1 });
        let applied = Outcome::Applied { entry: live.clone(), requests: 2 };
        assert_eq!(plus_requests(applied, 1, None), Outcome::Applied { entry: live, requests: 3 });
    }
}
