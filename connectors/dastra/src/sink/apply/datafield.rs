//! DataFields (the data glossary). `DataFieldDto` has no external-key field (`docs/dastra-api.md` §6.3): the
//! ledger maps the entity key to the Dastra id, and the lookup that guards a repeated create (after
//! an open intent) matches the natural key — `technicalDefinition` (e.g. `db.schema.table.column`)
//! when the payload has one, else `label`. The payload's `processings` are not written: Dastra links
//! fields to processings through datasets (`DataRetentionRules`, the `dataset` entity): a source
//! groups its fields into datasets and names the datasets on its processings. The label is kept
//! with the ledger entry, for the datasets that list the field as a `DataFieldDto` `{id, label}`.

use dastra_connect_core::event::{ChangeEvent, DataField};
use serde_json::Value;

use super::engine::{SinkResource, UpsertInput, upsert};
use super::entities::{delete, find_natural, payload_json, through_dto, with_links};
use super::{ApplyCtx, ApplyError, Outcome};
use crate::client::resources::DataFields;
use crate::model::Filter;
use crate::sink::ledger::LedgerEntry;

impl SinkResource for DataFields {
    const BATCH_ROUTES: bool = true;
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

/// The natural-key filter of a data field: technical definition, else label.
fn natural_key(f: &DataField) -> Option<Filter> {
    let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    text(&f.technical_definition)
        .map(|t| Filter::equal("TechnicalDefinition", t))
        .or_else(|| text(&f.label).map(|l| Filter::equal("Label", l)))
}

pub(super) async fn apply(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    f: &DataField,
    current: Option<LedgerEntry>,
) -> Result<Outcome, ApplyError> {
    let filter = natural_key(f);
    let find = || find_natural::<DataFields>(ctx, filter.clone());
    if f.deleted {
        // Dastra cannot archive data fields: `archive` falls back to DELETE.
        return delete::<DataFields, _, _>(ctx, event, current, find).await;
    }
    if !f.processings.is_empty() {
        tracing::debug!(key = %event.key, n = f.processings.len(), "data field processings are not written (link them through a dataset)");
    }
    let mut m = payload_json(f)?;
    m.remove("processings");
    let content: Value = through_dto::<crate::model::DataField>(m)?;
    let label = content.get("label").and_then(Value::as_str).unwrap_or_default().to_owned();
    let input = UpsertInput {
        key: &event.key,
        sequence: &event.sequence,
        content,
        current,
        partial_create: false,
        hash_view: None,
    };
    let outcome = upsert::<DataFields, _, _>(ctx, input, find).await?;
    Ok(with_links(outcome, |links| {
        links.insert("label".into(), label);
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_natural_key_is_the_technical_definition_else_the_label() {
        let f = DataField {
            label: Some("Email".into()),
            technical_definition: Some("crm.users.email".into()),
            ..Default::default()
        };
        assert_eq!(natural_key(&f), Some(Filter::equal("TechnicalDefinition", "crm.users.email")));
        let f =
            DataField { label: Some("Email".into()), technical_definition: Some("  ".into()), ..Default::default() };
        assert_eq!(natural_key(&f), Some(Filter::equal("Label", "Email")));
        assert_eq!(natural_key(&DataField::default()), None);
    }
}
