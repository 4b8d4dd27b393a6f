//! DataProcessings. Dastra's create takes only `{label, areaId, processingType}`: the sink POSTs
//! that, records the processing live, and PATCHes the rest — `ref` (the entity key) included — in
//! the same apply (2 requests per create). `areaRef` → area id (cached lookup, see `refs`); parent,
//! assets and actors (stakeholders, recipients, data controllers) are resolved from the ledger
//! (missing → pending). Assets are written as `AssetDto`s `{id, label, type}`, label and type coming
//! from the asset's ledger entry; datasets likewise as `DataRetentionRuleDto`s `{id, label}` in
//! `dataRetentionRules`. After an open intent, the lookup matches `ref`, then — for a crash
//! between the POST and the PATCH — a processing with the same label and area and no `ref`.

use dastra_connect_core::event::{ChangeEvent, DataProcessing, ProcessingActor};
use serde_json::{Map, Value, json};

use super::dataset::{id_and_label, ids_only};
use super::engine::{SinkResource, UpsertInput, upsert};
use super::entities::{payload_json, plus_requests, remove, revive, through_dto};
use super::refs::{Refs, area_id, int_id};
use super::{ApplyCtx, ApplyError, Outcome};
use crate::client::resources::{Assets, DataProcessings, DataRetentionRules, ExternalKeyed};
use crate::model::Filter;
use crate::sink::config::DeletePolicy;
use crate::sink::ledger::LedgerEntry;

impl SinkResource for DataProcessings {
    const BATCH_ROUTES: bool = true;
    super::engine::archive_routes!("DataProcessings");
    fn created_id(c: &Self::Created) -> Option<String> {
        c.id.map(|i| i.to_string())
    }
    fn read_id(r: &Self::Read) -> Option<String> {
        r.id.map(|i| i.to_string())
    }
    fn parse_id(t: &str) -> Option<uuid::Uuid> {
        t.parse().ok()
    }
}

/// One `DataProcessingActorDto` (or data-controller) entry.
fn actor_entry(a: &ProcessingActor, actor_id: i32, role: Option<&str>) -> Result<Value, ApplyError> {
    let mut m = match serde_json::to_value(a) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    m.remove("actor");
    m.retain(|_, v| !v.is_null());
    m.insert("actorId".into(), json!(actor_id));
    if let Some(role) = role {
        m.insert("type".into(), json!(role));
    }
    Ok(Value::Object(m))
}

pub(super) async fn apply(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    p: &DataProcessing,
    current: Option<LedgerEntry>,
) -> Result<Outcome, ApplyError> {
    let key = &event.key;
    let ext = DataProcessings::key_value(key.as_str());
    if p.deleted {
        let find = || async {
            let found = ctx.client.find_by_external_key::<DataProcessings>(&ext).await?;
            Ok(found.first().and_then(DataProcessings::read_id))
        };
        return remove(ctx, event, current, find, |id_text, policy| async move {
            match policy {
                DeletePolicy::Archive => ctx.archive::<DataProcessings>(&id_text).await?,
                _ => ctx.delete::<DataProcessings>(&id_text).await?,
            }
            Ok(1)
        })
        .await;
    }

    let mut refs = Refs::new(ctx.ledger);
    let parent = p.parent.as_ref().and_then(|k| refs.id(k));
    let assets: Vec<Option<LedgerEntry>> = p.assets.iter().map(|a| refs.entry(a)).collect();
    let datasets: Vec<Option<LedgerEntry>> = p.datasets.iter().map(|d| refs.entry(d)).collect();
    let mut actors = |list: &[ProcessingActor]| -> Vec<(ProcessingActor, Option<String>)> {
        list.iter().map(|a| (a.clone(), refs.id(&a.actor))).collect()
    };
    let stake_holders = actors(&p.stake_holders);
    let recipients = actors(&p.recipients);
    let controllers = actors(&p.data_controllers);
    if let Some(pending) = refs.pending() {
        return Ok(pending);
    }

    let area = area_id(ctx, p.area_ref.as_deref()).await?;
    let mut m = payload_json(p)?;
    for f in ["areaRef", "parent", "assets", "datasets", "stakeHolders", "recipients", "dataControllers"] {
        m.remove(f);
    }
    m.insert("ref".into(), Value::String(ext.clone()));
    m.insert("areaId".into(), json!(area));
    if let Some(parent) = parent {
        m.insert("parentId".into(), Value::String(parent));
    }
    let mut asset_dtos = Vec::new();
    for entry in assets.into_iter().flatten() {
        let Some(id_text) = entry.id.clone() else { continue };
        let id = int_id(&id_text)?;
        let (label, ty) = match (entry.links.get("label"), entry.links.get("type")) {
            (Some(l), Some(t)) => (l.clone(), t.clone()),
            // Written by an older sink without those links: ask Dastra once.
            _ => {
                let a = ctx.client.get::<Assets>(&id).await?;
                (a.label, a.r#type.map(|t| t.to_string()).unwrap_or_default())
            }
        };
        asset_dtos.push(json!({"id": id, "label": label, "type": ty}));
    }
    // Lists are always written, empty ones included: the source's "none" clears Dastra's list.
    m.insert("assets".into(), Value::Array(asset_dtos));
    let mut dataset_dtos = Vec::new();
    for entry in datasets.into_iter().flatten() {
        let get = |id| async move { Ok(ctx.client.get::<DataRetentionRules>(&id).await?.label) };
        dataset_dtos.extend(id_and_label(entry, get).await?);
    }
    m.insert("dataRetentionRules".into(), Value::Array(dataset_dtos));
    for (field, list, role) in
        [("stakeHolders", &stake_holders, Some("Stakeholder")), ("recipients", &recipients, Some("Recipient"))]
    {
        let mut out = Vec::new();
        for (a, id) in list {
            if let Some(id) = id {
                out.push(actor_entry(a, int_id(id)?, role)?);
            }
        }
        m.insert(field.into(), Value::Array(out));
    }
    let mut content = through_dto::<crate::model::DataProcessing>(m)?;
    // `DataProcessingDataControllerDto` is not part of the typed model: `{actorId, description}`.
    let mut dcs = Vec::new();
    for (a, id) in &controllers {
        if let Some(id) = id {
            let mut dc = json!({"actorId": int_id(id)?});
            if let Some(d) = &a.description {
                dc["description"] = json!(d);
            }
            dcs.push(dc);
        }
    }
    if let Value::Object(obj) = &mut content {
        obj.insert("dataControllers".into(), Value::Array(dcs));
    }

    let label = p.label.clone().unwrap_or_default();
    let find = || {
        let (ext, label) = (ext.clone(), label.clone());
        async move {
            let found = ctx.client.find_by_external_key::<DataProcessings>(&ext).await?;
            if let Some(id) = found.first().and_then(DataProcessings::read_id) {
                return Ok(Some(id));
            }
            // Created, but the PATCH carrying `ref` never happened.
            let f = Filter::and(vec![Filter::equal("Label", label), Filter::equal("AreaId", area)]);
            let found = ctx.client.find_by_filter::<DataProcessings>(f).await?;
            Ok(found.iter().filter(|d| d.r#ref.as_deref().is_none_or(str::is_empty)).find_map(DataProcessings::read_id))
        }
    };
    let (current, restored) =
        revive(current, |id| async move { Ok(ctx.restore::<DataProcessings>(&id).await?) }).await?;
    let revived = current.clone();
    // Hashes see the asset and dataset ids only: the labels and types copied from their entries are
    // not this processing's content (a renamed asset does not make its processings "changed").
    let hash_view = ids_only(&ids_only(&content, "assets"), "dataRetentionRules");
    let input = UpsertInput {
        key,
        sequence: &event.sequence,
        content,
        current,
        partial_create: true,
        hash_view: Some(hash_view),
    };
    Ok(plus_requests(upsert::<DataProcessings, _, _>(ctx, input, find).await?, restored, revived))
}
