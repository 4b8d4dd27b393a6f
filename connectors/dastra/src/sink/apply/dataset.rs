//! Datasets (`DataRetentionRules`, Dastra's name for a group of DataFields). `DataRetentionRuleDto`
//! has no external-key field (`docs/dastra-api.md` §6.3): the ledger maps the entity key to the
//! Dastra id, and the lookup that guards a repeated create (after an open intent) matches the
//! natural key, the `label`. The payload's `dataFields` are resolved from the ledger (missing →
//! pending, so a dataset published before its fields waits for them) and written as
//! `DataFieldDto`s `{id, label}`, the label coming from the field's ledger entry. The list is always
//! written, so a field the source removed from the dataset is unlinked. Deletes: `DELETE
//! DataRetentionRules/{id}` (Dastra has no archive route for datasets).

use dastra_connect_core::event::{ChangeEvent, Dataset};
use serde_json::{Value, json};

use super::engine::{SinkResource, UpsertInput, upsert};
use super::entities::{delete, find_natural, payload_json, through_dto, with_links};
use super::refs::{Refs, uuid_id};
use super::{ApplyCtx, ApplyError, Outcome};
use crate::client::resources::{DataFields, DataRetentionRules};
use crate::model::Filter;
use crate::sink::ledger::LedgerEntry;

impl SinkResource for DataRetentionRules {
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

/// The natural-key filter of a dataset: its label.
fn natural_key(d: &Dataset) -> Option<Filter> {
    d.label.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|l| Filter::equal("Label", l))
}

/// `{id, label}` of a referenced entity from its ledger entry; the label is asked from Dastra
/// (`get`) when an older sink recorded the entry without it.
pub(super) async fn id_and_label<F, Fut>(entry: LedgerEntry, get: F) -> Result<Option<Value>, ApplyError>
where
    F: FnOnce(uuid::Uuid) -> Fut,
    Fut: std::future::Future<Output = Result<String, ApplyError>>,
{
    let Some(id_text) = entry.id.clone() else { return Ok(None) };
    let id = uuid_id(&id_text)?;
    let label = match entry.links.get("label") {
        Some(l) => l.clone(),
        None => get(id).await?,
    };
    Ok(Some(json!({"id": id, "label": label})))
}

/// The content of a write with each `{id, label}` copy of `field` reduced to its id: what the
/// entity itself decides, so that renaming a referenced entity costs nothing here.
pub(super) fn ids_only(content: &Value, field: &str) -> Value {
    let mut view = content.clone();
    if let Some(list) = view.get_mut(field).and_then(Value::as_array_mut) {
        for item in list.iter_mut() {
            *item = item.get("id").cloned().unwrap_or(Value::Null);
        }
    }
    view
}

pub(super) async fn apply(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    d: &Dataset,
    current: Option<LedgerEntry>,
) -> Result<Outcome, ApplyError> {
    let filter = natural_key(d);
    let find = || find_natural::<DataRetentionRules>(ctx, filter.clone());
    if d.deleted {
        return delete::<DataRetentionRules, _, _>(ctx, event, current, find).await;
    }

    let mut refs = Refs::new(ctx.ledger);
    let fields: Vec<Option<LedgerEntry>> = d.data_fields.iter().map(|f| refs.entry(f)).collect();
    if let Some(pending) = refs.pending() {
        return Ok(pending);
    }
    let mut field_dtos = Vec::new();
    for entry in fields.into_iter().flatten() {
        let dto = id_and_label(entry, |id| async move { Ok(ctx.client.get::<DataFields>(&id).await?.label) }).await?;
        field_dtos.extend(dto);
    }
    let mut m = payload_json(d)?;
    m.remove("dataFields");
    // Always written, empty included: a field the source took out of the dataset is unlinked.
    m.insert("dataFields".into(), Value::Array(field_dtos));
    let content = through_dto::<crate::model::DataRetentionRule>(m)?;
    let label = content.get("label").and_then(Value::as_str).unwrap_or_default().to_owned();
    let hash_view = ids_only(&content, "dataFields");
    let input = UpsertInput {
        key: &event.key,
        sequence: &event.sequence,
        content,
        current,
        partial_create: false,
        hash_view: Some(hash_view),
    };
    let outcome = upsert::<DataRetentionRules, _, _>(ctx, input, find).await?;
    // A processing lists its datasets as `DataRetentionRuleDto`s, whose `label` is required: kept
    // with the dataset's ledger entry so that processings need no GET.
    Ok(with_links(outcome, |links| {
        links.insert("label".into(), label);
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_natural_key_is_the_label_and_hashes_see_only_ids() {
        let d = Dataset { label: Some(" crm.customers ".into()), ..Default::default() };
        assert_eq!(natural_key(&d), Some(Filter::equal("Label", "crm.customers")));
        assert_eq!(natural_key(&Dataset::default()), None);
        let content = json!({"label": "x", "dataFields": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]});
        assert_eq!(ids_only(&content, "dataFields"), json!({"label": "x", "dataFields": ["a", "b"]}));
    }
}
