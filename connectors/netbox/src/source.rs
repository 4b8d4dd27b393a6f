//! The NetBox [`SourceSystem`] (cursor `last_updated` + `id`, read with `last_updated__gte` and
//! `ordering=last_updated,id`; sweeps with `id__gt` and `ordering=id`; deletes found by sweeps) and
//! the connector ([`NetBoxSource`]) that runs it on the core source engine.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use dastra_connect_core::source::keyset::order_page;
use dastra_connect_core::source::{
    Cursor, DeletedRecord, IdOrder, Page, SourceConnector, SourceDefinition, SourceError, SourceRecord, SourceSettings,
    SourceSystem, StreamFilters, StreamKind, StreamSpec,
};
use serde_json::Value;

use crate::client::NetBoxClient;
use crate::config::{NetBoxConfig, NetBoxObject, ObjectConfig};

const SYSTEM: &str = "netbox";

/// NetBox ids are decimal integers.
const IDS: IdOrder = IdOrder::Numeric;

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.with_timezone(&Utc))
}

/// A NetBox object → a source record (`id`, `last_updated`, version 0: `last_updated` has
/// microseconds and changes with every save).
pub fn to_record(object: NetBoxObject, rec: Value) -> Result<SourceRecord, SourceError> {
    let id = match rec.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(SourceError::BadResponse {
                system: SYSTEM.into(),
                what: format!("/{}", object.path()),
                detail: "an object has no id".into(),
            });
        }
    };
    // `last_updated` is nullable in NetBox's models (objects from before it existed): fall back to
    // `created`, then to the epoch (such an object is read once by the first sync and by sweeps).
    let updated = parse_time(rec.get("last_updated"))
        .or_else(|| parse_time(rec.get("created")))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    Ok(SourceRecord { id, updated, version: 0, body: rec })
}

/// Reads NetBox object types for the engine.
pub struct NetBoxSystem {
    client: NetBoxClient,
    filters: StreamFilters<NetBoxObject>,
    /// The change-log endpoint when deletes are read from it.
    change_log: Option<String>,
}

impl NetBoxSystem {
    /// A system over `client` reading the configured object types.
    pub fn new(client: NetBoxClient, config: &NetBoxConfig) -> NetBoxSystem {
        let filters = StreamFilters::new(&config.objects);
        let change_log = config.change_log_deletes.then(|| config.change_log_endpoint.clone());
        NetBoxSystem { client, filters, change_log }
    }
}

#[async_trait]
impl SourceSystem for NetBoxSystem {
    async fn fetch_changes(&self, stream: &str, after: &Cursor, limit: u32) -> Result<Page<SourceRecord>, SourceError> {
        let (object, filters) = self.filters.get(stream)?;
        let limit = limit.clamp(1, 1000);
        let mut params = filters.to_vec();
        params.push(("last_updated__gte".into(), after.updated.to_rfc3339_opts(SecondsFormat::Micros, true)));
        params.push(("ordering".into(), "last_updated,id".into()));
        params.push(("limit".into(), limit.to_string()));
        let mut url = self.client.list_url(object, &params)?;
        let mut out = Vec::new();
        let mut total = None;
        // `last_updated__gte` includes the records of the cursor's instant already published: skip
        // them and read on (following `next`) until a full page of newer ones is collected. The
        // ordering is total, so the first `limit` newer records are the right ones.
        loop {
            let page = self.client.page(object, url).await?;
            total = total.or(page.count);
            for r in page.results {
                let rec = to_record(object, r)?;
                if IDS.is_after(rec.updated, &rec.id, after) {
                    out.push(rec);
                }
            }
            if out.len() >= limit as usize {
                break;
            }
            match page.next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(Page { records: order_page(out, after, IDS, limit), total })
    }

    async fn fetch_all(
        &self,
        stream: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> Result<Page<SourceRecord>, SourceError> {
        let (object, filters) = self.filters.get(stream)?;
        let mut params = filters.to_vec();
        if let Some(id) = after_id {
            params.push(("id__gt".into(), id.to_owned()));
        }
        params.push(("ordering".into(), "id".into()));
        params.push(("limit".into(), limit.clamp(1, 1000).to_string()));
        let page = self.client.page(object, self.client.list_url(object, &params)?).await?;
        let records = page.results.into_iter().map(|r| to_record(object, r)).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { records, total: page.count })
    }

    fn has_delete_feed(&self, stream: &str) -> bool {
        self.change_log.is_some() && NetBoxObject::from_stream(stream).is_some()
    }

    /// `GET <change log>?action=delete&changed_object_type=<type>&time__gte=…&ordering=time,id`:
    /// entries strictly after `(time, change id)`.
    async fn fetch_deletes(
        &self,
        stream: &str,
        after: &Cursor,
        limit: u32,
    ) -> Result<Page<DeletedRecord>, SourceError> {
        let Some(endpoint) = &self.change_log else { return Ok(Page::default()) };
        let (object, _) = self.filters.get(stream)?;
        let limit = limit.clamp(1, 1000);
        let params: Vec<(String, String)> = vec![
            ("action".into(), "delete".into()),
            ("changed_object_type".into(), object.content_type().into()),
            ("time__gte".into(), after.updated.to_rfc3339_opts(SecondsFormat::Micros, true)),
            ("ordering".into(), "time,id".into()),
            ("limit".into(), limit.to_string()),
        ];
        let mut url = self.client.change_log_url(endpoint, &params)?;
        let bad =
            |detail: String| SourceError::BadResponse { system: SYSTEM.into(), what: format!("/{endpoint}"), detail };
        let mut out = Vec::new();
        loop {
            let page = self.client.page_at(endpoint, url).await?;
            for c in page.results {
                let change_id = match c.get("id") {
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return Err(bad("a change has no id".into())),
                };
                let time =
                    parse_time(c.get("time")).ok_or_else(|| bad(format!("change {change_id} has no readable time")))?;
                let object_id = match c.get("changed_object_id") {
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return Err(bad(format!("change {change_id} has no changed_object_id"))),
                };
                if IDS.is_after(time, &change_id, after) {
                    out.push(DeletedRecord { id: object_id, deleted_at: time, position: Cursor::new(time, change_id) });
                }
            }
            if out.len() >= limit as usize {
                break;
            }
            match page.next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(Page { records: order_page(out, after, IDS, limit), total: None })
    }
}

/// The connector: runs the engine on [`NetBoxConfig`] (validated by the caller with
/// [`NetBoxConfig::validate`]).
pub type NetBoxSource = SourceConnector<NetBoxConfig>;

#[async_trait]
impl SourceDefinition for NetBoxConfig {
    fn streams(&self) -> Result<Vec<StreamSpec>, SourceError> {
        ObjectConfig::specs(&self.objects)
    }
    async fn system(&self) -> Result<Arc<dyn SourceSystem>, SourceError> {
        let client = NetBoxClient::new(&self.url, &self.token, self.token_scheme, self.http.clone())?;
        Ok(Arc::new(NetBoxSystem::new(client, self)))
    }
    fn settings(&self) -> (&str, &SourceSettings) {
        (&self.key_system, &self.sync)
    }
    fn status(&self) -> Value {
        let objects: Vec<&str> = self.objects.iter().map(|o| o.kind.stream()).collect();
        serde_json::json!({"type": "netbox", "url": self.url.to_string(), "objects": objects})
    }
}
