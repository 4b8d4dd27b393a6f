//! The OpenMetadata [`SourceSystem`] and the connector ([`OpenMetadataSource`]).
//!
//! - First sync (a fresh cursor): every entity of the stream, listed through `paging.after`,
//!   taken in `(updatedAt, id)` order.
//! - Incremental: the change events feed (`entityCreated`, `entityUpdated`, `entityFieldsChanged`,
//!   `entityRestored` for the stream's entity type, from the cursor's time); each entity named there
//!   is read again by id (OpenMetadata's list endpoints have no "updated since" filter). An entity
//!   soft-deleted or gone by the time it is read is left to the delete feed.
//! - Deletes: the same feed's `entitySoftDeleted` and `entityDeleted` events. A restore
//!   (`entityRestored`) publishes the entity again.
//! - Sweeps: the whole list (OpenMetadata pages by an opaque cursor, not by id), in id order.
//!
//! Records: id = the entity's uuid, time = `updatedAt` (epoch ms; from the feed: the event's
//! `timestamp`), version = `version` × 10 (OpenMetadata versions step by 0.1). Pipelines carry
//! their one-hop lineage: the tables they read (`lineage.upstream`) and write
//! (`lineage.downstream`), each read with its columns and tags.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dastra_connect_core::source::keyset::order_page;
use dastra_connect_core::source::{
    Cursor, DeletedRecord, IdOrder, Page, SourceConnector, SourceDefinition, SourceError, SourceRecord, SourceSettings,
    SourceSystem, StreamFilters, StreamKind, StreamSpec,
};
use serde_json::{Value, json};

use crate::client::OpenMetadataClient;
use crate::config::{EntityConfig, OmEntity, OpenMetadataConfig};

const SYSTEM: &str = "openmetadata";

/// Entity ids are uuids: byte order.
const IDS: IdOrder = IdOrder::Text;

/// Event types that mean "the entity has new content".
const CHANGED: &[&str] = &["entityCreated", "entityUpdated", "entityFieldsChanged", "entityRestored"];
/// Event types that mean "the entity is gone".
const GONE: &[&str] = &["entitySoftDeleted", "entityDeleted"];

fn bad(what: &str, detail: String) -> SourceError {
    SourceError::BadResponse { system: SYSTEM.into(), what: what.into(), detail }
}

fn millis(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_i64).and_then(DateTime::<Utc>::from_timestamp_millis)
}

/// An OpenMetadata entity → a source record.
pub fn to_record(entity: OmEntity, body: Value) -> Result<SourceRecord, SourceError> {
    let what = format!("/{}", entity.path());
    let id = match body.get("id").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => return Err(bad(&what, "an entity has no id".into())),
    };
    let updated = millis(body.get("updatedAt")).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    // 0.1 → 1, 1.3 → 13: a counter that grows with every version.
    let version = body.get("version").and_then(Value::as_f64).map(|v| (v * 10.0).round().max(0.0) as u64).unwrap_or(0);
    Ok(SourceRecord { id, updated, version, body })
}

/// Reads OpenMetadata entities for the engine.
pub struct OpenMetadataSystem {
    client: OpenMetadataClient,
    filters: StreamFilters<OmEntity>,
    /// Entities per list request (`sync.page_size`).
    page_size: u32,
}

impl OpenMetadataSystem {
    /// A system over `client` reading the configured entities.
    pub fn new(client: OpenMetadataClient, config: &OpenMetadataConfig) -> OpenMetadataSystem {
        OpenMetadataSystem { client, filters: StreamFilters::new(&config.entities), page_size: config.sync.page_size }
    }

    /// Every entity of a stream, through every page.
    async fn list_all(
        &self,
        entity: OmEntity,
        filters: &[(String, String)],
    ) -> Result<Page<SourceRecord>, SourceError> {
        let mut after: Option<String> = None;
        let mut out = Vec::new();
        let mut total = None;
        loop {
            let page = self.client.list(entity, filters, after.as_deref(), self.page_size).await?;
            total = total.or(page.total);
            for e in page.data {
                out.push(to_record(entity, e)?);
            }
            match page.after {
                Some(a) if after.as_deref() != Some(a.as_str()) => after = Some(a),
                _ => break,
            }
        }
        Ok(Page { records: out, total })
    }

    /// Adds `lineage: {upstream, downstream}` (the tables, with columns and tags) to a pipeline.
    async fn with_lineage(&self, mut rec: SourceRecord) -> Result<SourceRecord, SourceError> {
        let lineage = self.client.lineage(OmEntity::Pipelines.entity_type(), &rec.id).await?;
        let nodes: BTreeMap<&str, &Value> = lineage
            .get("nodes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|n| n.get("id").and_then(Value::as_str).map(|id| (id, n)))
            .collect();
        let (mut reads, mut writes) = (BTreeSet::new(), BTreeSet::new());
        let me = rec.id.as_str();
        for edge in ["upstreamEdges", "downstreamEdges"]
            .iter()
            .filter_map(|k| lineage.get(*k).and_then(Value::as_array))
            .flatten()
        {
            let end = |k: &str| edge.get(k).and_then(Value::as_str).map(str::to_owned);
            let (Some(from), Some(to)) = (end("fromEntity"), end("toEntity")) else { continue };
            let via = edge.pointer("/lineageDetails/pipeline/id").and_then(Value::as_str);
            if to == me {
                reads.insert(from);
            } else if from == me {
                writes.insert(to);
            } else if via == Some(me) {
                // Table → table lineage recorded "through" this pipeline.
                reads.insert(from);
                writes.insert(to);
            }
        }
        let is_table =
            |id: &String| nodes.get(id.as_str()).and_then(|n| n.get("type")).and_then(Value::as_str) == Some("table");
        let read = |ids: BTreeSet<String>| {
            let ids: Vec<String> = ids.into_iter().filter(is_table).collect();
            async move {
                let mut tables = Vec::new();
                for id in ids {
                    if let Some(t) = self.client.get(OmEntity::Tables, &id).await? {
                        tables.push(t);
                    }
                }
                Ok::<_, SourceError>(tables)
            }
        };
        let upstream = read(reads).await?;
        let downstream = read(writes).await?;
        if let Value::Object(o) = &mut rec.body {
            o.insert("lineage".into(), json!({"upstream": upstream, "downstream": downstream}));
        }
        Ok(rec)
    }

    async fn finish(&self, entity: OmEntity, records: Vec<SourceRecord>) -> Result<Vec<SourceRecord>, SourceError> {
        if entity != OmEntity::Pipelines {
            return Ok(records);
        }
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            out.push(self.with_lineage(r).await?);
        }
        Ok(out)
    }

    /// `(time, entity id)` of the events of `types` for `entity`, strictly after `after`, the
    /// latest per entity, in order.
    async fn feed(
        &self,
        entity: OmEntity,
        types: &[&str],
        after: &Cursor,
    ) -> Result<Vec<(DateTime<Utc>, String)>, SourceError> {
        let events = self.client.events(types, entity.entity_type(), after.updated.timestamp_millis()).await?;
        let mut latest: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for e in events {
            // The feed may hold other types when a server ignores a filter: keep only ours.
            let ty = e.get("eventType").and_then(Value::as_str).unwrap_or("");
            if e.get("entityType").and_then(Value::as_str) != Some(entity.entity_type()) || !types.contains(&ty) {
                continue;
            }
            let (Some(id), Some(t)) = (e.get("entityId").and_then(Value::as_str), millis(e.get("timestamp"))) else {
                return Err(bad("/api/v1/events", "an event has no entityId or timestamp".into()));
            };
            let slot = latest.entry(id.to_owned()).or_insert(t);
            *slot = (*slot).max(t);
        }
        let mut out: Vec<(DateTime<Utc>, String)> =
            latest.into_iter().map(|(id, t)| (t, id)).filter(|(t, id)| IDS.is_after(*t, id, after)).collect();
        out.sort_by(|a, b| IDS.cmp_position((a.0, &a.1), (b.0, &b.1)));
        Ok(out)
    }
}

#[async_trait]
impl SourceSystem for OpenMetadataSystem {
    async fn fetch_changes(&self, stream: &str, after: &Cursor, limit: u32) -> Result<Page<SourceRecord>, SourceError> {
        let (entity, filters) = self.filters.get(stream)?;
        if after.updated <= DateTime::<Utc>::UNIX_EPOCH {
            // A fresh source: everything, in (updatedAt, id) order.
            let all = self.list_all(entity, filters).await?;
            let page = order_page(all.records, after, IDS, limit);
            return Ok(Page { records: self.finish(entity, page).await?, total: all.total });
        }
        let mut out = Vec::new();
        // Entities gone since their event are skipped, not counted: a page stops at `limit`
        // records, so that one skipped entity cannot stall the feed.
        for (t, id) in self.feed(entity, CHANGED, after).await? {
            if out.len() >= limit as usize {
                break;
            }
            let Some(body) = self.client.get(entity, &id).await? else { continue };
            if body.get("deleted").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            // Positioned at its event, the order the feed was read in: the cursor then moves past
            // events that changed nothing the entity's `updatedAt` shows (usage, profiles), and an
            // entity changed again since is read again at its next event.
            let mut rec = to_record(entity, body)?;
            rec.updated = t;
            out.push(rec);
        }
        let page = order_page(out, after, IDS, limit);
        Ok(Page { records: self.finish(entity, page).await?, total: None })
    }

    async fn fetch_all(
        &self,
        stream: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> Result<Page<SourceRecord>, SourceError> {
        let (entity, filters) = self.filters.get(stream)?;
        let all = self.list_all(entity, filters).await?;
        let mut records: Vec<SourceRecord> =
            all.records.into_iter().filter(|r| after_id.is_none_or(|a| IDS.cmp(&r.id, a).is_gt())).collect();
        records.sort_by(|a, b| IDS.cmp(&a.id, &b.id));
        records.truncate(limit as usize);
        Ok(Page { records: self.finish(entity, records).await?, total: all.total })
    }

    /// One authenticated list request of one entity.
    async fn probe(&self, stream: &str) -> Result<(), SourceError> {
        let (entity, filters) = self.filters.get(stream)?;
        self.client.list(entity, filters, None, 1).await.map(|_| ())
    }

    fn has_delete_feed(&self, stream: &str) -> bool {
        OmEntity::from_stream(stream).is_some()
    }

    async fn fetch_deletes(
        &self,
        stream: &str,
        after: &Cursor,
        limit: u32,
    ) -> Result<Page<DeletedRecord>, SourceError> {
        let (entity, _) = self.filters.get(stream)?;
        let records = self
            .feed(entity, GONE, after)
            .await?
            .into_iter()
            .map(|(t, id)| DeletedRecord { id: id.clone(), deleted_at: t, position: Cursor::new(t, id) })
            .collect();
        Ok(Page { records: order_page(records, after, IDS, limit), total: None })
    }
}

/// The connector: runs the engine on [`OpenMetadataConfig`] (validated by the caller with
/// [`OpenMetadataConfig::validate`]).
pub type OpenMetadataSource = SourceConnector<OpenMetadataConfig>;

#[async_trait]
impl SourceDefinition for OpenMetadataConfig {
    fn streams(&self) -> Result<Vec<StreamSpec>, SourceError> {
        let mut specs = EntityConfig::specs(&self.entities)?;
        // A pipeline links the datasets of its classified tables: it must classify them with the
        // tables' own tag map, whatever the config overrides.
        let tables = specs.iter().find(|s| s.name == OmEntity::Tables.stream()).map(|s| s.params["tag_map"].clone());
        if let (Some(tag_map), Some(p)) = (tables, specs.iter_mut().find(|s| s.name == OmEntity::Pipelines.stream()))
            && let Value::Object(o) = &mut p.params
        {
            o.insert("tag_map".into(), tag_map);
        }
        Ok(specs)
    }
    async fn system(&self) -> Result<Arc<dyn SourceSystem>, SourceError> {
        let client = OpenMetadataClient::new(&self.url, &self.token, self.http.clone())?;
        Ok(Arc::new(OpenMetadataSystem::new(client, self)))
    }
    fn settings(&self) -> (&str, &SourceSettings) {
        (&self.key_system, &self.sync)
    }
    fn status(&self) -> Value {
        let entities: Vec<&str> = self.entities.iter().map(|e| e.kind.stream()).collect();
        json!({"type": "openmetadata", "url": self.url.to_string(), "entities": entities})
    }
}
