//! Data subject requests. `refId` (≤355, hidden from the requester) holds the entity key. The
//! content goes through the generic upsert (POST with the whole DTO; PATCH of changed fields). The
//! payload's `state` is not PATCHed: a change of state moves the request along its workflow —
//! `POST DataSubjectRequests/{id}/close` for `Closed` (with the closing reason), else `POST
//! DataSubjectRequests/workflow {id, stepId}` to the first step mapped to that state (steps read
//! once from `GET Workflows/DataSubject` and cached in the ledger), else (no step maps it) a PATCH
//! of `state`. The state last applied is kept in the ledger entry's links (`state`).
//!
//! Attachments: each `{fileName, url, sha256}` is downloaded by the sink, checked against its
//! SHA-256 when given, and uploaded (`POST DataSubjectAttachments/{dsrId}`, multipart part `File`);
//! the Dastra file id and the content's checksum are kept in links (`file:<name>`, `sha:<name>`), so
//! unchanged files cost nothing, a changed checksum replaces the file, and a file gone from the
//! payload is deleted. An upload that may have happened is first looked up by file name.
//!
//! Deletes: `DELETE DataSubjectRequests/{id}` (irreversible in Dastra) or, under `archive`,
//! `POST DataSubjectRequests/archive/{id}`.

use std::sync::OnceLock;
use std::time::Duration;

use dastra_connect_core::event::{Attachment, ChangeEvent, DataSubjectRequest};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::engine::{SinkResource, UpsertInput, upsert};
use super::entities::{payload_json, plus_requests, remove, revive, through_dto};
use super::refs::{area_id, int_id, workflow_steps};
use super::{ApplyCtx, ApplyError, Outcome};
use crate::client::resources::{DataSubjectRequests, ExternalKeyed};
use crate::model::{AttachmentUpload, DataSubjectRequestClose, PatchOperation};
use crate::sink::config::{AttachmentPolicy, DeletePolicy};
use crate::sink::ledger::{EntryState, LedgerEntry};

/// Largest attachment the sink downloads (Dastra's own upload limit is undocumented).
pub const MAX_ATTACHMENT_BYTES: usize = 25 * 1024 * 1024;

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

    let area = area_id(ctx, d.area_ref.as_deref()).await?;
    let mut m = payload_json(d)?;
    for f in ["areaRef", "state", "attachments", "dateDemand", "demandId", "expiryTime"] {
        m.remove(f);
    }
    // The event carries instants as epoch milliseconds; the DTO's `expiryTime` is a date-time.
    if let Some(expiry) = d.expiry_time {
        m.insert("expiryTime".into(), json!(expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    m.insert("refId".into(), Value::String(ext.clone()));
    m.insert("areaId".into(), json!(area));
    let mut content = through_dto::<crate::model::DataSubjectRequest>(m)?;
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
    let outcome = plus_requests(upsert::<DataSubjectRequests, _, _>(ctx, input, find).await?, restored, revived);

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
    requests += sync_attachments(ctx, event, id, &d.attachments, &mut entry).await?;

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

fn http() -> &'static reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(|| {
        // Redirects only within the host the policy allowed (at most 5): a cross-host redirect
        // ends as a 3xx answer, refused below.
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let same_host = attempt.previous().first().map(|u| u.host_str()) == Some(attempt.url().host_str());
            if attempt.previous().len() > 5 || !same_host { attempt.stop() } else { attempt.follow() }
        });
        reqwest::Client::builder()
            .redirect(redirects)
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

/// Fetches an attachment's content and checks its size and checksum.
async fn download(policy: &AttachmentPolicy, a: &Attachment) -> Result<(bytes::Bytes, String), ApplyError> {
    let fetch = |retryable: bool, message: String| ApplyError::Fetch { retryable, message };
    let url = policy
        .check(&a.url)
        .map_err(|why| ApplyError::invalid("attachment_not_allowed", format!("{}: {why}", a.file_name)))?;
    // reqwest's errors name the URL: keep them out of messages (pre-signed URLs carry credentials).
    let response =
        http().get(url).send().await.map_err(|e| fetch(true, format!("{}: {}", a.file_name, e.without_url())))?;
    let status = response.status();
    if !status.is_success() {
        // 4xx: the URL is wrong or expired (permanent); 5xx: try again later.
        return Err(fetch(status.is_server_error(), format!("{}: HTTP {status}", a.file_name)));
    }
    if response.content_length().is_some_and(|n| n > MAX_ATTACHMENT_BYTES as u64) {
        return Err(fetch(false, format!("{}: larger than {MAX_ATTACHMENT_BYTES} bytes", a.file_name)));
    }
    let body = response.bytes().await.map_err(|e| fetch(true, format!("{}: {}", a.file_name, e.without_url())))?;
    if body.len() > MAX_ATTACHMENT_BYTES {
        return Err(fetch(false, format!("{}: larger than {MAX_ATTACHMENT_BYTES} bytes", a.file_name)));
    }
    let sha = hex::encode(Sha256::digest(&body));
    if let Some(expected) = &a.sha256
        && !expected.eq_ignore_ascii_case(&sha)
    {
        return Err(ApplyError::invalid(
            "attachment_checksum",
            format!("{}: content has SHA-256 {sha}, the event says {expected}", a.file_name),
        ));
    }
    Ok((body, sha))
}

/// Makes the request's attachments those of the payload; answers the requests sent.
async fn sync_attachments(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    dsr_id: i32,
    wanted: &[Attachment],
    entry: &mut LedgerEntry,
) -> Result<u32, ApplyError> {
    let mut requests = 0;
    let names: Vec<&str> = wanted.iter().map(|a| a.file_name.as_str()).collect();
    // Files the payload no longer lists.
    let gone: Vec<String> = entry
        .links
        .keys()
        .filter_map(|k| k.strip_prefix("file:"))
        .filter(|n| !names.contains(n))
        .map(str::to_owned)
        .collect();
    for name in gone {
        if let Some(file) = entry.links.get(&format!("file:{name}")).and_then(|f| f.parse::<uuid::Uuid>().ok()) {
            requests += 1;
            ctx.client.delete_dsr_attachment(dsr_id, file).await?;
        }
        entry.links.remove(&format!("file:{name}"));
        entry.links.remove(&format!("sha:{name}"));
    }
    for a in wanted {
        let file_key = format!("file:{}", a.file_name);
        let sha_key = format!("sha:{}", a.file_name);
        let known = entry.links.get(&file_key).cloned();
        // Same declared checksum (or, without one, same URL): nothing to do.
        let fingerprint = a.sha256.clone().map(|s| s.to_ascii_lowercase()).unwrap_or_else(|| format!("url:{}", a.url));
        let known_print = entry.links.get(&sha_key).cloned();
        if known.as_deref().is_some_and(|k| k != "?") && known_print.as_deref() == Some(fingerprint.as_str()) {
            continue;
        }
        if known.as_deref() == Some("?") {
            // An earlier upload may have happened: look before uploading again.
            requests += 1;
            let listed = ctx.client.list_dsr_attachments(dsr_id).await?;
            if let Some(found) = listed.iter().rev().find(|f| f.file_name.as_deref() == Some(a.file_name.as_str()))
                && let Some(fid) = found.id
            {
                entry.links.insert(file_key.clone(), fid.to_string());
                entry.links.insert(sha_key.clone(), fingerprint.clone());
                continue;
            }
        } else if let Some(old) = known.as_deref().and_then(|k| k.parse::<uuid::Uuid>().ok()) {
            // Content changed: replace the file.
            requests += 1;
            ctx.client.delete_dsr_attachment(dsr_id, old).await?;
        }
        // A plan (dry-run client) fetches nothing either: the upload is counted, its content empty.
        let (content, _sha) = if ctx.client.is_dry_run() {
            (bytes::Bytes::new(), String::new())
        } else {
            download(&ctx.policy.attachments, a).await?
        };
        // Mark the upload as possibly done before sending it (kept at the previous version).
        entry.links.insert(file_key.clone(), "?".into());
        let mut marker = entry.clone();
        marker.version = ctx.ledger.get(&event.key).and_then(|e| e.version);
        ctx.ledger.put(&event.key, &marker).await?;
        let upload = AttachmentUpload {
            file_name: a.file_name.clone(),
            content_type: a.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
            content,
        };
        requests += 1;
        let uploaded = ctx.client.upload_dsr_attachment(dsr_id, upload).await?;
        let fid = uploaded.id.map(|i| i.to_string()).ok_or_else(|| {
            ApplyError::invalid("dastra_no_id", format!("Dastra stored {} but returned no id", a.file_name))
        })?;
        entry.links.insert(file_key, fid);
        entry.links.insert(sha_key, fingerprint);
    }
    Ok(requests)
}
