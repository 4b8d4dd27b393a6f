//! Tasks. The assignee (`assignedTo` e-mail or `assignedTeam` ref) is resolved to a Dastra user id
//! through the client's cached directory before anything is written; unknown → DLQ
//! (`unknown_assignee`). Documents (`attachments`) go to Dastra's storage and are linked to the task
//! ([`super::content`]). `TaskDto` has no external-key field (`docs/dastra-api.md` §6.3): the entity key is written into
//! `additionalDatas.dastraConnectKey` (a free map Dastra keeps with the task) and the lookup that
//! guards a repeated create filters on it. The linked object (processing, DSR, actor, asset) and the
//! parent task are resolved from the ledger (missing → pending). Deletes: `DELETE Tasks/{id}` or,
//! under `archive`, `POST Tasks/{id}/archive {archived: true}`.

use dastra_connect_core::event::{ChangeEvent, Task};
use serde_json::{Map, Value};

use super::content;
use super::engine::{SinkResource, UpsertInput, upsert};
use super::entities::{payload_json, plus_requests, remove, revive, through_dto};
use super::refs::{Refs, area_id, instant, int_id};
use super::{ApplyCtx, ApplyError, Outcome};
use crate::client::resources::Tasks;
use crate::model::Filter;
use crate::sink::config::DeletePolicy;
use crate::sink::ledger::LedgerEntry;

/// The `additionalDatas` member holding the entity key.
pub const TASK_KEY_FIELD: &str = "dastraConnectKey";

impl SinkResource for Tasks {
    const BATCH_ROUTES: bool = true;
    const BATCH_ARCHIVE: Option<(&'static str, &'static str)> =
        Some(("POST /v1/ws/{workspaceId}/Tasks/batch-archive", "batch-archive"));
    const ARCHIVE_ROUTE: &'static str = crate::client::resources::TASK_ARCHIVE_ROUTE;
    fn archive_one<'a>(
        client: &'a crate::DastraClient,
        id: &'a Self::Id,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::error::DastraError>> {
        Box::pin(client.archive_task(*id, true))
    }
    const BATCH_RESTORE: Option<(&'static str, &'static str)> =
        Some(("POST /v1/ws/{workspaceId}/Tasks/batch-restore", "batch-restore"));
    const RESTORE_ROUTE: &'static str = crate::client::resources::TASK_ARCHIVE_ROUTE;
    fn restore_one<'a>(
        client: &'a crate::DastraClient,
        id: &'a Self::Id,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::error::DastraError>> {
        Box::pin(client.archive_task(*id, false))
    }
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
    t: &Task,
    current: Option<LedgerEntry>,
) -> Result<Outcome, ApplyError> {
    let key = &event.key;
    let filter = Filter::equal(format!("AdditionalDatas.{TASK_KEY_FIELD}"), key.as_str());
    let find = || {
        let filter = filter.clone();
        async move {
            let found = ctx.client.find_by_filter::<Tasks>(filter).await?;
            Ok(found.first().and_then(Tasks::read_id))
        }
    };
    if t.deleted {
        return remove(ctx, event, current, find, |id_text, policy| async move {
            match policy {
                DeletePolicy::Archive => ctx.archive::<Tasks>(&id_text).await?,
                _ => ctx.delete::<Tasks>(&id_text).await?,
            }
            Ok(1)
        })
        .await;
    }

    content::precheck(ctx, &t.attachments)?;
    let mut refs = Refs::new(ctx.ledger);
    let object = t.object.as_ref().map(|o| (o.kind().task_object_type(), refs.id(o)));
    let parent = t.parent.as_ref().and_then(|p| refs.id(p));
    if let Some(p) = refs.pending() {
        return Ok(p);
    }
    let mut m = payload_json(t)?;
    for f in ["object", "parent", "areaRef", "assignedTo", "deadline"] {
        m.remove(f);
    }
    m.remove("assignedTeam");
    m.remove("attachments");
    let mut extra = Map::new();
    // Resolved before anything is written: an unknown assignee creates nothing.
    let (assignee, lookups) = assignee(ctx, t, &mut extra).await?;
    if let Some(user) = assignee {
        m.insert("assignedToUserId".into(), Value::from(user));
    }
    if let Some((Some(object_type), Some(id))) = object {
        m.insert("objectType".into(), Value::String(object_type.to_owned()));
        m.insert("objectId".into(), Value::String(id));
    }
    if let Some(p) = parent {
        m.insert("parentId".into(), Value::from(int_id(&p)?));
    }
    if let Some(d) = instant(&t.deadline) {
        m.insert("deadline".into(), d);
    }
    if let Some(r) = t.area_ref.as_deref() {
        m.insert("areaId".into(), Value::from(area_id(ctx, Some(r)).await?));
    }
    extra.insert(TASK_KEY_FIELD.into(), Value::String(key.as_str().to_owned()));
    m.insert("additionalDatas".into(), Value::Object(extra));
    let content = through_dto::<crate::model::Task>(m)?;
    let (current, restored) = revive(current, |id| async move { Ok(ctx.restore::<Tasks>(&id).await?) }).await?;
    let revived = current.clone();
    let input =
        UpsertInput { key, sequence: &event.sequence, content, current, partial_create: false, hash_view: None };
    let outcome = plus_requests(upsert::<Tasks, _, _>(ctx, input, find).await?, restored + lookups, revived);
    content::with_documents(ctx, event, outcome, &t.attachments, TASK_LINK_TYPE).await
}

/// The member of `additionalDatas` naming the team a task was assigned through.
pub const TASK_TEAM_FIELD: &str = "dastraConnectTeam";

/// The Dastra user to assign (`assignedTo` e-mail, else `assignedTeam` ref → its first member) and
/// the lookups it took. Unknown → a permanent error whose reason names the kind of reference and,
/// for an e-mail (personal data), only a short hash of it.
async fn assignee(
    ctx: &ApplyCtx<'_>,
    t: &Task,
    extra: &mut Map<String, Value>,
) -> Result<(Option<i32>, u32), ApplyError> {
    if let Some(email) = t.assigned_to.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        let found = ctx.client.user_by_email(email).await?;
        let user = found.value.ok_or_else(|| {
            ApplyError::invalid(
                "unknown_assignee",
                format!(
                    "no user of the Dastra workspace has the assignedTo e-mail (sha256 of the lower-case e-mail \
                     starts {})",
                    email_digest(email)
                ),
            )
        })?;
        return Ok((Some(user), found.requests));
    }
    if let Some(team) = t.assigned_team.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        let found = ctx.client.team_by_ref(team).await?;
        let Some(assignee) = found.value else {
            return Err(ApplyError::invalid(
                "unknown_assignee",
                format!("no team of the Dastra workspace has the assignedTeam ref `{team}`"),
            ));
        };
        let Some(user) = assignee.user_id else {
            return Err(ApplyError::invalid(
                "unknown_assignee",
                format!("the Dastra team with ref `{team}` (assignedTeam) has no member to assign"),
            ));
        };
        extra.insert(TASK_TEAM_FIELD.into(), Value::String(team.to_owned()));
        return Ok((Some(user), found.requests));
    }
    Ok((None, 0))
}

/// First 12 hex digits of the SHA-256 of the lower-case e-mail: enough for an operator to check
/// which address it was (`printf %s dpo@example.com | sha256sum`), without the address in the DLQ.
pub fn email_digest(email: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(email.trim().to_lowercase().as_bytes());
    hex::encode(digest)[..12].to_owned()
}

/// The `{type}` segment of the CloudStorage link route for a task (inferred).
pub const TASK_LINK_TYPE: &str = "Task";
