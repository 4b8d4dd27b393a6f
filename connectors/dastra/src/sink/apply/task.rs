//! Tasks. `TaskDto` has no external-key field (`docs/dastra-api.md` §6.3): the entity key is written into
//! `additionalDatas.dastraConnectKey` (a free map Dastra keeps with the task) and the lookup that
//! guards a repeated create filters on it. The linked object (processing, DSR, actor, asset) and the
//! parent task are resolved from the ledger (missing → pending). Deletes: `DELETE Tasks/{id}` or,
//! under `archive`, `POST Tasks/{id}/archive {archived: true}`.

use dastra_connect_core::event::{ChangeEvent, Task};
use serde_json::{Map, Value};

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
            let id = int_id(&id_text)?;
            match policy {
                DeletePolicy::Archive => ctx.client.archive_task(id, true).await?,
                _ => ctx.client.delete::<Tasks>(&id).await?,
            }
            Ok(1)
        })
        .await;
    }

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
    if t.assigned_to.is_some() {
        // Dastra assigns by user id and offers no REST lookup of workspace users by e-mail that the
        // sink could rely on: the assignment is left to Dastra users.
        tracing::warn!(key = %key, "task assignee (assignedTo) is not written: no user lookup by e-mail");
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
    let mut extra = Map::new();
    extra.insert(TASK_KEY_FIELD.into(), Value::String(key.as_str().to_owned()));
    m.insert("additionalDatas".into(), Value::Object(extra));
    let content = through_dto::<crate::model::Task>(m)?;
    let (current, restored) =
        revive(current, |id| async move { Ok(ctx.client.archive_task(int_id(&id)?, false).await?) }).await?;
    let revived = current.clone();
    let input =
        UpsertInput { key, sequence: &event.sequence, content, current, partial_create: false, hash_view: None };
    Ok(plus_requests(upsert::<Tasks, _, _>(ctx, input, find).await?, restored, revived))
}
