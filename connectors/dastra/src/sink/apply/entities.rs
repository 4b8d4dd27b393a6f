//! Per-entity mapping from change-event payloads to Dastra DTOs, and the resource each one goes to.
//!
//! Payload field names are Dastra's DTO names already, so the mapping starts from the payload's JSON,
//! drops what is not a DTO field (`snapshot`, `deleted`, tags by label), sets the external key field,
//! and lets the typed DTO check names, types and enum values.

use dastra_connect_core::event::{ChangeEvent, Payload};
use serde_json::{Map, Value};

use super::engine::{SinkResource, UpsertInput, upsert};
use super::{ApplyCtx, ApplyError, Outcome, SkipReason};
use crate::client::resources::{Actors, Assets, ExternalKeyed};
use crate::model::{Filter, fit_external_key};
use crate::sink::config::{ActorKey, DeletePolicy};
use crate::sink::ledger::{EntryState, LedgerEntry};

impl SinkResource for Assets {
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
fn payload_json(payload: &impl serde::Serialize) -> Result<Map<String, Value>, ApplyError> {
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
fn through_dto<T: serde::de::DeserializeOwned + serde::Serialize>(
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
            let mut m = payload_json(a)?;
            m.insert("ref".into(), Value::String(ext.clone()));
            let content = through_dto::<crate::model::Asset>(m)?;
            let input = UpsertInput { key, sequence: &event.sequence, content, current };
            upsert::<Assets, _, _>(ctx, input, find).await
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
            let input = UpsertInput { key, sequence: &event.sequence, content, current };
            upsert::<Actors, _, _>(ctx, input, || {
                let filter = filter.clone();
                async move {
                    let found = ctx.client.find_by_filter::<Actors>(filter).await?;
                    Ok(found.first().and_then(Actors::read_id))
                }
            })
            .await
        }
        other => Err(ApplyError::invalid(
            "unsupported_entity",
            format!("the sink does not write {} entities yet", other.kind()),
        )),
    }
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

/// Deletes (or archives / ignores) an entity by policy. A delete of an unknown entity records the
/// version, so that an older upsert arriving later cannot bring it back.
async fn delete<R, F, Fut>(
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
    let mut tombstone = LedgerEntry::intent();
    tombstone.state = EntryState::Deleted;
    tombstone.version = Some(event.sequence.clone());
    let id_text = match current.as_ref().map(|e| (e.state, e.id.clone())) {
        Some((EntryState::Live, Some(id))) => id,
        // The create may have reached Dastra before the process died: look before concluding.
        Some((EntryState::Intent, _)) => match find().await? {
            Some(id) => id,
            None => return Ok(Outcome::Skipped { reason: SkipReason::Cancelled, entry: Some(tombstone) }),
        },
        _ => return Ok(Outcome::Skipped { reason: SkipReason::Cancelled, entry: Some(tombstone) }),
    };
    match ctx.policy.delete_policy(event.kind()) {
        DeletePolicy::Ignore => {
            let mut kept = current.unwrap_or_else(|| LedgerEntry::live(id_text));
            kept.version = Some(event.sequence.clone());
            Ok(Outcome::Skipped { reason: SkipReason::Ignored, entry: Some(kept) })
        }
        DeletePolicy::Delete | DeletePolicy::Archive => {
            let id = R::parse_id(&id_text).ok_or_else(|| {
                ApplyError::invalid("ledger_bad_id", format!("ledger id {id_text:?} is not a Dastra id"))
            })?;
            match ctx.client.delete::<R>(&id).await {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
            tombstone.id = Some(id_text);
            Ok(Outcome::Applied { entry: tombstone, requests: 1 })
        }
    }
}
