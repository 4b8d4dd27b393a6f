//! Resolving what an event names indirectly: referenced entities (entity key → Dastra id from the
//! ledger, or "pending" when Dastra does not have them yet), areas (`areaRef` → area id, looked up
//! once by `?ref=` and cached in the ledger), workflow steps (state → step id, cached likewise), and
//! the conversions every mapping needs (ids, instants).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, SecondsFormat, Utc};
use dastra_connect_core::event::EntityKey;
use reqwest::Method;
use serde_json::Value;

use super::{ApplyCtx, ApplyError, Outcome};
use crate::client::resources::{Areas, ListQuery};
use crate::client::retry::Safety;
use crate::client::{Call, Payload as CallPayload};
use crate::sink::ledger::{EntryState, Ledger, LedgerEntry};

/// Collects the Dastra ids of referenced entities and the keys Dastra does not have yet.
pub(super) struct Refs<'a> {
    ledger: &'a Ledger,
    missing: Vec<EntityKey>,
}

impl<'a> Refs<'a> {
    pub(super) fn new(ledger: &'a Ledger) -> Self {
        Self { ledger, missing: Vec::new() }
    }

    /// The live ledger entry of `key`. A key never seen (or only intended) is recorded as missing;
    /// a key deleted at the source is dropped from the reference with a warning — waiting for it
    /// would wait forever.
    /// A `dastra:` key names the Dastra entity itself (see `native`): live without an event of its own.
    pub(super) fn entry(&mut self, key: &EntityKey) -> Option<LedgerEntry> {
        match self.ledger.get(key) {
            Some(e) if e.state == EntryState::Live && e.id.is_some() => Some(e),
            None if super::native::id(key).is_some() => super::native::first_entry(key),
            Some(e) if e.state == EntryState::Deleted => {
                tracing::warn!(reference = %key, "referenced entity was deleted at the source; reference dropped");
                None
            }
            _ => {
                if !self.missing.contains(key) {
                    self.missing.push(key.clone());
                }
                None
            }
        }
    }

    /// The Dastra id (as text) of `key`, see [`Refs::entry`].
    pub(super) fn id(&mut self, key: &EntityKey) -> Option<String> {
        self.entry(key).and_then(|e| e.id)
    }

    /// `Some(Pending)` when any reference is missing.
    pub(super) fn pending(self) -> Option<Outcome> {
        (!self.missing.is_empty()).then_some(Outcome::Pending { missing: self.missing })
    }
}

/// An int32 Dastra id from its ledger text.
pub(super) fn int_id(text: &str) -> Result<i32, ApplyError> {
    text.parse().map_err(|_| ApplyError::invalid("ledger_bad_id", format!("ledger id {text:?} is not an int32 id")))
}

/// A uuid Dastra id from its ledger text.
pub(super) fn uuid_id(text: &str) -> Result<uuid::Uuid, ApplyError> {
    text.parse().map_err(|_| ApplyError::invalid("ledger_bad_id", format!("ledger id {text:?} is not a uuid")))
}

/// An instant as Dastra writes them (ISO 8601, milliseconds, `Z`).
pub(super) fn instant(t: &Option<DateTime<Utc>>) -> Option<Value> {
    t.map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
}

/// One lookup at a time per cached name, process-wide: keys applied concurrently that need the same
/// area or workflow wait for the first lookup instead of repeating it.
fn lookup_lock(name: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    LOCKS.get_or_init(Default::default).lock().entry(name.to_owned()).or_default().clone()
}

/// The Dastra id of the area named `area_ref` (its `ref`), or of the workspace's first area when
/// the event names none (Dastra requires an area for DataProcessings and DSRs). Looked up once
/// (`GET Areas?ref=`) and cached in the ledger: areas are configuration, not synced data. An unknown
/// `ref` is a permanent error (the event goes to the DLQ until someone creates the area).
pub(super) async fn area_id(ctx: &ApplyCtx<'_>, area_ref: Option<&str>) -> Result<i32, ApplyError> {
    let name = match area_ref {
        Some(r) => format!("area:{r}"),
        None => "area:".to_owned(),
    };
    if let Some(id) = ctx.ledger.get_aux(&name).and_then(|e| e.id) {
        return int_id(&id);
    }
    let lock = lookup_lock(&name);
    let _one = lock.lock().await;
    if let Some(id) = ctx.ledger.get_aux(&name).and_then(|e| e.id) {
        return int_id(&id);
    }
    let found = match area_ref {
        Some(r) => ctx.client.find_by_external_key::<Areas>(r).await?,
        None => {
            let q = ListQuery { size: Some(1), ..ListQuery::default() };
            ctx.client.list::<Areas>(&q).await?.items
        }
    };
    let id = found.first().and_then(|a| a.id).ok_or_else(|| match area_ref {
        Some(r) => ApplyError::invalid("unknown_area", format!("no Dastra area has the ref {r:?}")),
        None => ApplyError::invalid("unknown_area", "the Dastra workspace has no area"),
    })?;
    ctx.ledger.put_aux(&name, &LedgerEntry::live(id.to_string())).await?;
    Ok(id)
}

/// Workflow steps of a `WorkflowType` (`DataSubject`, `Task`…): mapped state → id of the first step
/// (by `order`) with that state. `GET Workflows/{type}` once, then from the ledger.
pub(super) async fn workflow_steps(ctx: &ApplyCtx<'_>, ty: &str) -> Result<BTreeMap<String, String>, ApplyError> {
    let name = format!("workflow:{ty}");
    if let Some(e) = ctx.ledger.get_aux(&name) {
        return Ok(e.links);
    }
    let lock = lookup_lock(&name);
    let _one = lock.lock().await;
    if let Some(e) = ctx.ledger.get_aux(&name) {
        return Ok(e.links);
    }
    let client = ctx.client;
    let call = Call {
        method: Method::GET,
        method_label: "GET",
        route: "GET /v1/ws/{workspaceId}/Workflows/{type}",
        path: client.ws_path(&format!("Workflows/{ty}")),
        query: Vec::new(),
        payload: CallPayload::None,
        safety: Safety::Idempotent,
        priority: client.priority(),
    };
    let steps: Option<Vec<Value>> = client.call_json(call).await?;
    let mut steps = steps.unwrap_or_default();
    steps.sort_by_key(|s| s.get("order").and_then(Value::as_i64).unwrap_or(i64::MAX));
    let mut by_state = BTreeMap::new();
    for s in &steps {
        if let (Some(state), Some(id)) =
            (s.get("mappedState").and_then(Value::as_str), s.get("id").and_then(Value::as_i64))
        {
            by_state.entry(state.to_owned()).or_insert_with(|| id.to_string());
        }
    }
    let mut entry = LedgerEntry::live(ty);
    entry.links = by_state.clone();
    ctx.ledger.put_aux(&name, &entry).await?;
    Ok(by_state)
}
