//! Contracts: `ref` holds the entity key; the supplier Actor becomes the contract's signatory and
//! the covered Assets its `assets`, both resolved from the ledger (missing → pending). Deletes:
//! `DELETE Contracts/{id}` or, under `archive`, `POST Contracts/archive/{id}`.

use dastra_connect_core::event::{ChangeEvent, Contract};
use serde_json::Value;

use super::engine::{SinkResource, UpsertInput, upsert};
use super::entities::{payload_json, plus_requests, remove, revive, through_dto};
use super::refs::{Refs, area_id, instant, int_id};
use super::{ApplyCtx, ApplyError, Outcome};
use crate::client::resources::{Contracts, ExternalKeyed};
use crate::sink::config::DeletePolicy;
use crate::sink::ledger::LedgerEntry;

impl SinkResource for Contracts {
    const BATCH_ROUTES: bool = true;
    super::engine::archive_routes!("Contracts");
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

pub(super) async fn apply(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    c: &Contract,
    current: Option<LedgerEntry>,
) -> Result<Outcome, ApplyError> {
    let key = &event.key;
    let ext = Contracts::key_value(key.as_str());
    let find = || async {
        let found = ctx.client.find_by_external_key::<Contracts>(&ext).await?;
        Ok(found.first().and_then(Contracts::read_id))
    };
    if c.deleted {
        return remove(ctx, event, current, find, |id_text, policy| async move {
            match policy {
                DeletePolicy::Archive => ctx.archive::<Contracts>(&id_text).await?,
                _ => ctx.delete::<Contracts>(&id_text).await?,
            }
            Ok(1)
        })
        .await;
    }

    let mut refs = Refs::new(ctx.ledger);
    let supplier = c.supplier.as_ref().and_then(|s| refs.id(s));
    let assets: Vec<Option<String>> = c.assets.iter().map(|a| refs.id(a)).collect();
    if let Some(p) = refs.pending() {
        return Ok(p);
    }
    let mut m = payload_json(c)?;
    for f in ["areaRef", "supplier", "assets", "startDate", "endDate"] {
        m.remove(f);
    }
    m.insert("ref".into(), Value::String(ext.clone()));
    if let Some(s) = supplier {
        m.insert("signatories".into(), Value::from(vec![int_id(&s)?]));
    }
    let asset_ids: Vec<i32> = assets.into_iter().flatten().map(|a| int_id(&a)).collect::<Result<_, _>>()?;
    // Always written, empty included: the source's "none" clears Dastra's list.
    m.insert("assets".into(), Value::from(asset_ids));
    if let Some(d) = instant(&c.start_date) {
        m.insert("dateStart".into(), d);
    }
    if let Some(d) = instant(&c.end_date) {
        m.insert("dateEnd".into(), d);
    }
    if let Some(r) = c.area_ref.as_deref() {
        m.insert("areaId".into(), Value::from(area_id(ctx, Some(r)).await?));
    }
    let content = through_dto::<crate::model::Contract>(m)?;
    let (current, restored) = revive(current, |id| async move { Ok(ctx.restore::<Contracts>(&id).await?) }).await?;
    let revived = current.clone();
    let input =
        UpsertInput { key, sequence: &event.sequence, content, current, partial_create: false, hash_view: None };
    Ok(plus_requests(upsert::<Contracts, _, _>(ctx, input, find).await?, restored, revived))
}
