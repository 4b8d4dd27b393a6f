//! Data subject requests. `refId` (≤355, hidden from the requester) holds the entity key. The
//! content goes through the generic upsert (POST with the whole DTO; PATCH of changed fields). The
//! payload's `state` is not PATCHed: a change of state moves the request along its workflow —
//! `POST DataSubjectRequests/{id}/close` for `Closed` (with the closing reason), else `POST
//! DataSubjectRequests/workflow {id, stepId}` to the first step mapped to that state (steps read
//! once from `GET Workflows/DataSubject` and cached in the ledger), else (no step maps it) a PATCH
//! of `state`. The state last applied is kept in the ledger entry's links (`state`).
//!
//! Attachments ([`super::content`]): each file's content (URL, inline or object store) is checked
//! against its SHA-256 when given and uploaded (`POST DataSubjectAttachments/{dsrId}`, multipart
//! part `File`); the Dastra file id and the content's checksum are kept in links (`file:<name>`,
//! `sha:<name>`), so unchanged content costs no upload, a changed one replaces the file, and a file
//! gone from the payload is deleted. An upload that may have happened is first looked up by name.
//!
//! Deletes: `DELETE DataSubjectRequests/{id}` (irreversible in Dastra) or, under `archive`,
//! `POST DataSubjectRequests/archive/{id}`.

use dastra_connect_core::event::{Attachment, ChangeEvent, DataSubjectRequest};
use serde_json::{Value, json};

use super::content::{self, Target};
use super::engine::{SinkResource, UpsertInput, upsert};
use super::entities::{payload_json, plus_requests, remove, revive, through_dto};
use super::refs::{area_id, int_id, workflow_steps};
use super::{ApplyCtx, ApplyError, Outcome};
use crate::client::resources::{DataSubjectRequests, ExternalKeyed};
use crate::model::{AttachmentUpload, DataSubjectRequestClose, PatchOperation};
use crate::sink::config::DeletePolicy;
use crate::sink::ledger::{EntryState, LedgerEntry};

/// Dastra's state of a request it just created.
const INITIAL_STATE: &str = "Open";

impl SinkResource for DataSubjectRequests {
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

pub(super) async fn apply(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    d: &DataSubjectRequest,
    current: Option<LedgerEntry>,
) -> Result<Outcome, ApplyError> {
    let key = &event.key;
    let ext = DataSubjectRequests::key_value(key.as_str());
    let find = || async {
        let found = ctx.client.find_by_external_key::<DataSubjectRequests>(&ext).await?;
        Ok(found.first().and_then(DataSubjectRequests::read_id))
    };
    // A `dastra:dsr:<id>` key is the Dastra request itself (a tool answering a webhook): update only.
    let native = super::native::id(key).is_some();
    let current = if native { current.or_else(|| super::native::first_entry(key)) } else { current };
    if d.deleted {
        return remove(ctx, event, current, find, |id_text, policy| async move {
            let id = int_id(&id_text)?;
            match policy {
                DeletePolicy::Archive => ctx.client.archive::<DataSubjectRequests>(&id).await?,
                _ => ctx.client.delete::<DataSubjectRequests>(&id).await?,
            }
            Ok(1)
        })
        .await;
    }

    content::precheck(ctx, &d.attachments)?;
    // A native request keeps its area unless the event names one.
    let area = if native && d.area_ref.is_none() { None } else { Some(area_id(ctx, d.area_ref.as_deref()).await?) };
    let mut m = payload_json(d)?;
    for f in ["areaRef", "state", "attachments", "dateDemand", "demandId", "expiryTime"] {
        m.remove(f);
    }
    // The event carries instants as epoch milliseconds; the DTO's `expiryTime` is a date-time.
    if let Some(expiry) = d.expiry_time {
        m.insert("expiryTime".into(), json!(expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    if !native {
        m.insert("refId".into(), Value::String(ext.clone()));
    }
    if let Some(area) = area {
        m.insert("areaId".into(), json!(area));
    }
    let mut content = through_dto::<crate::model::DataSubjectRequest>(m)?;
    // The typed model defaults an absent area to 0: a native request without `areaRef` keeps its own.
    if let (None, Value::Object(obj)) = (area, &mut content) {
        obj.remove("areaId");
    }
    // `demandId` is a DTO field the typed model does not carry.
    if let (Some(demand), Value::Object(obj)) = (&d.demand_id, &mut content) {
        obj.insert("demandId".into(), json!(demand));
    }
    let (current, restored) =
        revive(current, |id| async move { Ok(ctx.client.restore::<DataSubjectRequests>(&int_id(&id)?).await?) })
            .await?;
    let revived = current.clone();
    let was_live = current.as_ref().is_some_and(|c| c.state == EntryState::Live);
    let input =
        UpsertInput { key, sequence: &event.sequence, content, current, partial_create: false, hash_view: None };
    let outcome = if native {
        let UpsertInput { key, sequence, content, current, .. } = input;
        plus_requests(
            super::native::update::<DataSubjectRequests>(ctx, key, sequence, content, current).await?,
            restored,
            revived,
        )
    } else {
        plus_requests(upsert::<DataSubjectRequests, _, _>(ctx, input, find).await?, restored, revived)
    };

    let (mut entry, mut requests, applied) = match outcome {
        Outcome::Applied { entry, requests } => (entry, requests, true),
        Outcome::Skipped { entry: Some(entry), .. } => (entry, 0, false),
        other => return Ok(other),
    };
    let Some(id_text) = entry.id.clone() else { return Ok(Outcome::Applied { entry, requests }) };
    let id = int_id(&id_text)?;
    if !was_live && applied && !entry.links.contains_key("state") {
        entry.links.insert("state".into(), INITIAL_STATE.into());
    }

    if let Some(state) = &d.state {
        let state = state.to_string();
        if entry.links.get("state") != Some(&state) {
            requests += move_to_state(ctx, id, &state, d).await?;
            entry.links.insert("state".into(), state);
        }
    }
    requests += content::sync(ctx, event, &DsrFiles { ctx, dsr_id: id }, &d.attachments, &mut entry).await?;

    if requests == 0 && !applied {
        return Ok(Outcome::Skipped { reason: super::SkipReason::Unchanged, entry: Some(entry) });
    }
    Ok(Outcome::Applied { entry, requests })
}

/// Moves the request to `state`; answers the requests sent.
async fn move_to_state(ctx: &ApplyCtx<'_>, id: i32, state: &str, d: &DataSubjectRequest) -> Result<u32, ApplyError> {
    if state == "Closed" {
        let body = DataSubjectRequestClose {
            closed_reason: d.closed_reason.as_ref().map(|r| crate::model::ClosedReason::parse(&r.to_string())),
            closed_reason_description: d.closed_reason_description.clone(),
            resolution_message: d.resolution_message.clone(),
        };
        ctx.client.close_dsr(id, &body).await?;
        return Ok(1);
    }
    let cached = ctx.ledger.get_aux("workflow:DataSubject").is_some();
    let steps = workflow_steps(ctx, "DataSubject").await?;
    let lookups = u32::from(!cached);
    match steps.get(state).and_then(|s| s.parse::<i32>().ok()) {
        Some(step) => ctx.client.move_to_step::<DataSubjectRequests>(&id, step).await?,
        None => ctx.client.patch::<DataSubjectRequests>(&id, &[PatchOperation::set("/state", json!(state))]).await?,
    }
    Ok(1 + lookups)
}

/// The files of one request: `DataSubjectAttachments/{dsrId}`.
struct DsrFiles<'a> {
    ctx: &'a ApplyCtx<'a>,
    dsr_id: i32,
}

impl Target for DsrFiles<'_> {
    async fn upload(&self, a: &Attachment, content: bytes::Bytes) -> Result<String, ApplyError> {
        let upload = AttachmentUpload {
            file_name: a.file_name.clone(),
            content_type: a.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
            content,
        };
        let uploaded = self.ctx.client.upload_dsr_attachment(self.dsr_id, upload).await?;
        uploaded.id.map(|i| i.to_string()).ok_or_else(|| {
            ApplyError::invalid("dastra_no_id", format!("Dastra stored {} but returned no id", a.file_name))
        })
    }

    async fn find(&self, a: &Attachment, _size: usize) -> Result<Option<String>, ApplyError> {
        let listed = self.ctx.client.list_dsr_attachments(self.dsr_id).await?;
        Ok(listed
            .iter()
            .rev()
            .find(|f| f.file_name.as_deref() == Some(a.file_name.as_str()))
            .and_then(|f| f.id)
            .map(|i| i.to_string()))
    }

    async fn remove(&self, file_id: &str) -> Result<u32, ApplyError> {
        match file_id.parse::<uuid::Uuid>() {
            Ok(id) => {
                self.ctx.client.delete_dsr_attachment(self.dsr_id, id).await?;
                Ok(1)
            }
            Err(_) => Ok(0),
        }
    }

    async fn attach(&self, _file_id: &str) -> Result<u32, ApplyError> {
        Ok(0)
    }
}
