//! The HubSpot [`SourceSystem`] and the connector ([`HubSpotSource`]).
//!
//! - **Changes**: a search on the object's modification property (`hs_lastmodifieddate`, for
//!   contacts `lastmodifieddate`) `GTE` the cursor's millisecond, sorted ascending (a search takes
//!   one sort only, so records of one millisecond come in no known order: the page is read past the
//!   last millisecond it keeps and put in `(time, id)` order with [`order_page`]).
//! - **The 10 000-result cap, and offsets**: each next page is a new search `GTE` the time of the
//!   last record read (records already read are recognised by id), never HubSpot's `after` offset —
//!   except inside one millisecond, where there is no other way, up to `search_result_cap`. So no
//!   search nears the cap, and a record saved during a read (which moves to the end of the order)
//!   cannot shift a page and make the next one skip a record. More records than the cap in one
//!   millisecond cannot be read and fail the poll with a message saying so.
//! - **Sweeps**: keyset searches on `hs_object_id GT <last id>` sorted by `hs_object_id` — each page
//!   a new search, so the cap never applies.
//! - **Deletes**: the archived listing (`archived=true`) is the delete feed, positioned by
//!   `(archivedAt, id)`; records permanently deleted (GDPR delete) leave it and are found by sweeps.
//! - **Tickets** get their contact (the data subject) through the associations and contacts batch
//!   reads before mapping.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dastra_connect_core::canonical::content_version;
use dastra_connect_core::source::keyset::order_page;
use dastra_connect_core::source::{
    Cursor, DeletedRecord, IdOrder, Page, SourceConnector, SourceDefinition, SourceError, SourceRecord, SourceSettings,
    SourceSystem, StreamFilters, StreamKind, StreamSpec,
};
use serde_json::{Value, json};

use crate::client::{HubSpotClient, MAX_SEARCH_LIMIT};
use crate::config::{HubSpotConfig, HubSpotObject, ObjectConfig, split_filter};

const SYSTEM: &str = "hubspot";

/// HubSpot record ids are decimal integers.
const IDS: IdOrder = IdOrder::Numeric;

fn bad(object: HubSpotObject, detail: String) -> SourceError {
    SourceError::BadResponse { system: SYSTEM.into(), what: format!("/crm/v3/objects/{}", object.path()), detail }
}

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let text = v?.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    // Some answers hold datetime properties as epoch milliseconds.
    text.parse::<i64>().ok().and_then(DateTime::from_timestamp_millis)
}

/// A HubSpot object → a source record: its id, the modification property (else `updatedAt`) as the
/// cursor time, and a content hash as version (HubSpot has no modification counter).
pub fn to_record(object: HubSpotObject, rec: Value) -> Result<SourceRecord, SourceError> {
    let id = match rec.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad(object, "an object has no id".into())),
    };
    let updated = parse_time(rec.pointer(&format!("/properties/{}", object.modified_property())))
        .or_else(|| parse_time(rec.get("updatedAt")))
        .ok_or_else(|| bad(object, format!("object {id} has no readable {}", object.modified_property())))?;
    Ok(SourceRecord { id, updated, version: content_version(&rec), body: rec })
}

/// One search filter in HubSpot's JSON (`IN`/`NOT_IN` take `values`, `BETWEEN` `value` and
/// `highValue`, `HAS_PROPERTY`/`NOT_HAS_PROPERTY` nothing).
pub fn filter_json(key: &str, value: &str) -> Value {
    let (property, op) = split_filter(key);
    match op {
        "IN" | "NOT_IN" => {
            json!({"propertyName": property, "operator": op, "values": value.split(',').map(str::trim).collect::<Vec<_>>()})
        }
        "HAS_PROPERTY" | "NOT_HAS_PROPERTY" => json!({"propertyName": property, "operator": op}),
        "BETWEEN" => {
            let (low, high) = value.split_once(',').unwrap_or((value, value));
            json!({"propertyName": property, "operator": op, "value": low.trim(), "highValue": high.trim()})
        }
        _ => json!({"propertyName": property, "operator": op, "value": value}),
    }
}

/// The body of a search: the configured filters and `own` in one group (AND), one sort.
fn search_body(
    filters: &[(String, String)],
    own: Vec<Value>,
    sort: &str,
    properties: &[String],
    limit: u32,
    after: Option<&str>,
) -> Value {
    let mut group: Vec<Value> = filters.iter().map(|(k, v)| filter_json(k, v)).collect();
    group.extend(own);
    let mut body = json!({
        "filterGroups": [{"filters": group}],
        "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
        "properties": properties,
        "limit": limit,
    });
    if let Some(a) = after {
        body["after"] = json!(a);
    }
    body
}

/// Reads HubSpot objects for the engine.
pub struct HubSpotSystem {
    client: HubSpotClient,
    filters: StreamFilters<HubSpotObject>,
    properties: HashMap<HubSpotObject, Vec<String>>,
    contact_properties: Vec<String>,
    cap: u32,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_owned)).collect()
}

impl HubSpotSystem {
    /// A system over `client` reading the configured objects.
    pub fn new(client: HubSpotClient, config: &HubSpotConfig) -> HubSpotSystem {
        let mut properties = HashMap::new();
        let mut contact_properties = Vec::new();
        for o in &config.objects {
            let (_, params) = o.effective_mapping();
            let mut list = strings(&params["properties"]);
            if !list.iter().any(|p| p == o.kind.modified_property()) {
                list.push(o.kind.modified_property().to_owned());
            }
            properties.insert(o.kind, list);
            if o.kind == HubSpotObject::Tickets {
                contact_properties = strings(&params["contact_properties"]);
            }
        }
        HubSpotSystem {
            client,
            filters: StreamFilters::new(&config.objects),
            properties,
            contact_properties,
            cap: config.search_result_cap,
        }
    }

    /// Results per search request: at most 200, and at most half the cap so a restart happens
    /// before the cap, not at it.
    fn page_limit(&self) -> u32 {
        (self.cap / 2).clamp(1, MAX_SEARCH_LIMIT)
    }

    fn properties(&self, object: HubSpotObject) -> &[String] {
        self.properties.get(&object).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Adds `contact: {id, properties}` to each ticket that has an associated contact.
    async fn add_contacts(&self, object: HubSpotObject, records: &mut [SourceRecord]) -> Result<(), SourceError> {
        if object != HubSpotObject::Tickets || records.is_empty() || self.contact_properties.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let links = self.client.ticket_contacts(&ids).await?;
        let mut wanted: Vec<String> = links.values().cloned().collect();
        wanted.sort();
        wanted.dedup();
        let contacts = self.client.read_contacts(&wanted, &self.contact_properties).await?;
        for r in records {
            let Some(contact) = links.get(&r.id).and_then(|c| contacts.get(c)) else { continue };
            if let Some(obj) = r.body.as_object_mut() {
                obj.insert(
                    "contact".into(),
                    json!({"id": contact["id"], "properties": contact.get("properties").cloned().unwrap_or(json!({}))}),
                );
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SourceSystem for HubSpotSystem {
    async fn fetch_changes(&self, stream: &str, after: &Cursor, limit: u32) -> Result<Page<SourceRecord>, SourceError> {
        let (object, filters) = self.filters.get(stream)?;
        let sort = object.modified_property();
        let page_limit = self.page_limit();
        let mut from = after.updated;
        let mut token: Option<String> = None;
        let mut read_in_search: u64 = 0;
        let mut seen: HashSet<String> = HashSet::new();
        let mut out: Vec<SourceRecord> = Vec::new();
        // The time of the `limit`-th new record: reading stops after the last record of that
        // millisecond (they come in no known order within it).
        let mut boundary: Option<DateTime<Utc>> = None;
        'search: loop {
            let own =
                vec![json!({"propertyName": sort, "operator": "GTE", "value": from.timestamp_millis().to_string()})];
            let body = search_body(filters, own, sort, self.properties(object), page_limit, token.as_deref());
            let page = self.client.search(object, &body).await?;
            read_in_search += page.results.len() as u64;
            let mut last_time = None;
            for r in page.results {
                let rec = to_record(object, r)?;
                if boundary.is_some_and(|b| rec.updated > b) {
                    break 'search;
                }
                last_time = Some(rec.updated);
                if !seen.insert(rec.id.clone()) || !IDS.is_after(rec.updated, &rec.id, after) {
                    continue;
                }
                out.push(rec);
                if boundary.is_none() && out.len() >= limit as usize {
                    boundary = out.iter().map(|r| r.updated).max();
                }
            }
            let more = page.next.is_some() || page.total > read_in_search;
            match (page.next, last_time) {
                _ if !more => break,
                // Past the millisecond it started at: a new search from the last record's time, so
                // no page depends on an offset (a record saved meanwhile moves to the end and would
                // shift the rest) and no search nears the cap. Records read twice are skipped by id.
                (_, Some(t)) if t > from => {
                    from = t;
                    token = None;
                    read_in_search = 0;
                }
                // The whole page is one millisecond: page on inside it, as far as the cap allows.
                (Some(next), _) if read_in_search + u64::from(page_limit) <= u64::from(self.cap) => token = Some(next),
                _ => {
                    return Err(bad(
                        object,
                        format!(
                            "more than {} records have {sort} = {} (the search cap); they cannot be paged through",
                            self.cap,
                            from.to_rfc3339()
                        ),
                    ));
                }
            }
        }
        let mut records = order_page(out, after, IDS, limit);
        self.add_contacts(object, &mut records).await?;
        Ok(Page { records, total: None })
    }

    async fn fetch_all(
        &self,
        stream: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> Result<Page<SourceRecord>, SourceError> {
        let (object, filters) = self.filters.get(stream)?;
        let mut out: Vec<SourceRecord> = Vec::new();
        let mut last = after_id.map(str::to_owned);
        let mut total = None;
        // Keyset pages on the id, each a new search.
        while out.len() < limit as usize {
            let want = (limit - out.len() as u32).min(self.page_limit());
            let own: Vec<Value> =
                last.iter().map(|id| json!({"propertyName": "hs_object_id", "operator": "GT", "value": id})).collect();
            let body = search_body(filters, own, "hs_object_id", self.properties(object), want, None);
            let page = self.client.search(object, &body).await?;
            if after_id.is_none() && last.is_none() {
                total = Some(page.total);
            }
            let n = page.results.len();
            for r in page.results {
                out.push(to_record(object, r)?);
            }
            last = out.last().map(|r| r.id.clone());
            if n < want as usize {
                break;
            }
        }
        self.add_contacts(object, &mut out).await?;
        Ok(Page { records: out, total })
    }

    fn has_delete_feed(&self, _stream: &str) -> bool {
        true
    }

    async fn fetch_deletes(
        &self,
        stream: &str,
        after: &Cursor,
        limit: u32,
    ) -> Result<Page<DeletedRecord>, SourceError> {
        let (object, _) = self.filters.get(stream)?;
        // The archived listing is ordered by id, not by archive time: read it whole, then order.
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (records, next) = self.client.list_archived(object, token.as_deref()).await?;
            for r in records {
                let id = match r.get("id") {
                    Some(Value::String(s)) if !s.is_empty() => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return Err(bad(object, "an archived object has no id".into())),
                };
                let at = parse_time(r.get("archivedAt"))
                    .or_else(|| parse_time(r.get("updatedAt")))
                    .ok_or_else(|| bad(object, format!("archived object {id} has no archivedAt")))?;
                all.push(DeletedRecord { id: id.clone(), deleted_at: at, position: Cursor::new(at, id) });
            }
            match next {
                Some(n) if Some(&n) != token.as_ref() => token = Some(n),
                _ => break,
            }
        }
        Ok(Page { records: order_page(all, after, IDS, limit), total: None })
    }
}

/// The connector: runs the engine on [`HubSpotConfig`] (validated by the caller with
/// [`HubSpotConfig::validate`]).
pub type HubSpotSource = SourceConnector<HubSpotConfig>;

#[async_trait]
impl SourceDefinition for HubSpotConfig {
    fn streams(&self) -> Result<Vec<StreamSpec>, SourceError> {
        ObjectConfig::specs(&self.objects)
    }
    async fn system(&self) -> Result<Arc<dyn SourceSystem>, SourceError> {
        Ok(Arc::new(HubSpotSystem::new(HubSpotClient::new(self)?, self)))
    }
    fn settings(&self) -> (&str, &SourceSettings) {
        (&self.key_system, &self.sync)
    }
    fn status(&self) -> Value {
        let objects: Vec<&str> = self.objects.iter().map(|o| o.kind.stream()).collect();
        json!({"type": "hubspot", "url": self.url.to_string(), "objects": objects})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_take_the_modification_property_and_ids_as_text() {
        let r = to_record(
            HubSpotObject::Companies,
            json!({"id": "42", "properties": {"hs_lastmodifieddate": "2025-06-01T09:00:00.250Z"}, "updatedAt": "2020-01-01T00:00:00Z"}),
        )
        .unwrap();
        assert_eq!((r.id.as_str(), r.updated.timestamp_millis()), ("42", 1_748_768_400_250));
        let c =
            to_record(HubSpotObject::Contacts, json!({"id": "7", "properties": {"lastmodifieddate": "1748768400250"}}))
                .unwrap();
        assert_eq!(c.updated.timestamp_millis(), 1_748_768_400_250);
        assert!(to_record(HubSpotObject::Tickets, json!({"id": "1", "properties": {}})).is_err());
    }

    #[test]
    fn filters_become_hubspot_filter_json() {
        assert_eq!(
            filter_json("hs_pipeline", "31582647"),
            json!({"propertyName": "hs_pipeline", "operator": "EQ", "value": "31582647"})
        );
        assert_eq!(filter_json("type[IN]", "VENDOR, PARTNER")["values"], json!(["VENDOR", "PARTNER"]));
        assert_eq!(
            filter_json("email[HAS_PROPERTY]", ""),
            json!({"propertyName": "email", "operator": "HAS_PROPERTY"})
        );
        assert_eq!(filter_json("n[BETWEEN]", "1,5")["highValue"], "5");
    }
}
