//! The Coupa [`SourceSystem`] (cursor `updated-at` + `id`, read with `updated_at[gt]`,
//! `order_by=updated_at&dir=asc` and `offset`/`limit` 50; sweeps with `id[gt]` and `order_by=id`;
//! Coupa reports no deletes, so sweeps find them) and the connector ([`CoupaSource`]).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use dastra_connect_core::canonical::content_version;
use dastra_connect_core::source::keyset::order_page;
use dastra_connect_core::source::{
    Cursor, IdOrder, Page, SourceConnector, SourceDefinition, SourceError, SourceRecord, SourceSettings, SourceSystem,
    StreamFilters, StreamKind, StreamSpec,
};
use serde_json::Value;

use crate::client::{CoupaClient, MAX_LIMIT};
use crate::config::{CoupaConfig, CoupaResource, ResourceConfig};

const SYSTEM: &str = "coupa";

/// Coupa ids are decimal integers.
const IDS: IdOrder = IdOrder::Numeric;

/// A Coupa record → a source record. The version is a content hash: Coupa has no modification
/// counter and `updated-at` has whole seconds, so two saves in one second would otherwise look
/// like one (the engine would skip the second as already published).
pub fn to_record(resource: CoupaResource, rec: Value) -> Result<SourceRecord, SourceError> {
    let what = format!("/{}", resource.path());
    let id = match rec.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(SourceError::BadResponse { system: SYSTEM.into(), what, detail: "a record has no id".into() }),
    };
    let updated = rec
        .get("updated-at")
        .or_else(|| rec.get("updated_at"))
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| SourceError::BadResponse {
            system: SYSTEM.into(),
            what: what.clone(),
            detail: format!("record {id} has no readable updated-at"),
        })?;
    Ok(SourceRecord { id, updated, version: content_version(&rec), body: rec })
}

/// Reads Coupa resources for the engine.
pub struct CoupaSystem {
    client: CoupaClient,
    filters: StreamFilters<CoupaResource>,
}

impl CoupaSystem {
    /// A system over `client` reading the configured resources.
    pub fn new(client: CoupaClient, config: &CoupaConfig) -> CoupaSystem {
        CoupaSystem { client, filters: StreamFilters::new(&config.resources) }
    }
}

#[async_trait]
impl SourceSystem for CoupaSystem {
    async fn fetch_changes(&self, stream: &str, after: &Cursor, limit: u32) -> Result<Page<SourceRecord>, SourceError> {
        let (resource, filters) = self.filters.get(stream)?;
        // Coupa times have whole seconds: `[gt]` one second before the cursor's second is "at or
        // after it"; records of that second already published are skipped below.
        let from = after.updated.with_nanosecond(0).unwrap_or(after.updated) - chrono::Duration::seconds(1);
        let mut base = filters.to_vec();
        base.push(("updated_at[gt]".into(), from.to_rfc3339_opts(SecondsFormat::Secs, true)));
        base.push(("order_by".into(), "updated_at".into()));
        base.push(("dir".into(), "asc".into()));
        let mut out = Vec::new();
        let mut offset = 0u64;
        loop {
            let mut params = base.clone();
            params.push(("limit".into(), MAX_LIMIT.to_string()));
            params.push(("offset".into(), offset.to_string()));
            let page = self.client.list(resource, &params).await?;
            let n = page.len();
            offset += n as u64;
            for r in page {
                let rec = to_record(resource, r)?;
                if IDS.is_after(rec.updated, &rec.id, after) {
                    out.push(rec);
                }
            }
            if out.len() >= limit as usize || n < MAX_LIMIT as usize {
                break;
            }
        }
        Ok(Page { records: order_page(out, after, IDS, limit), total: None })
    }

    async fn fetch_all(
        &self,
        stream: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> Result<Page<SourceRecord>, SourceError> {
        let (resource, filters) = self.filters.get(stream)?;
        let mut out = Vec::new();
        let mut last = after_id.map(str::to_owned);
        // Keyset pages of 50 on `id` until `limit` records or the end.
        while out.len() < limit as usize {
            let mut params = filters.to_vec();
            if let Some(id) = &last {
                params.push(("id[gt]".into(), id.clone()));
            }
            params.push(("order_by".into(), "id".into()));
            params.push(("dir".into(), "asc".into()));
            let want = (limit as usize - out.len()).min(MAX_LIMIT as usize);
            params.push(("limit".into(), want.to_string()));
            let page = self.client.list(resource, &params).await?;
            let n = page.len();
            for r in page {
                out.push(to_record(resource, r)?);
            }
            last = out.last().map(|r: &SourceRecord| r.id.clone());
            if n < want {
                break;
            }
        }
        Ok(Page { records: out, total: None })
    }
}

/// The connector: runs the engine on [`CoupaConfig`] (validated by the caller with
/// [`CoupaConfig::validate`]).
pub type CoupaSource = SourceConnector<CoupaConfig>;

#[async_trait]
impl SourceDefinition for CoupaConfig {
    fn streams(&self) -> Result<Vec<StreamSpec>, SourceError> {
        ResourceConfig::specs(&self.resources)
    }
    async fn system(&self) -> Result<Arc<dyn SourceSystem>, SourceError> {
        Ok(Arc::new(CoupaSystem::new(CoupaClient::new(self)?, self)))
    }
    fn settings(&self) -> (&str, &SourceSettings) {
        (&self.key_system, &self.sync)
    }
    fn status(&self) -> Value {
        let resources: Vec<&str> = self.resources.iter().map(|r| r.kind.stream()).collect();
        serde_json::json!({"type": "coupa", "url": self.url.to_string(), "resources": resources})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_are_content_hashes_independent_of_key_order() {
        let a =
            json!({"id": 9, "name": "x", "nested": {"a": 1, "b": [1, 2]}, "updated-at": "2024-03-20T15:20:45-07:00"});
        let b: Value = serde_json::from_str(
            r#"{"updated-at": "2024-03-20T15:20:45-07:00", "nested": {"b": [1, 2], "a": 1}, "name": "x", "id": 9}"#,
        )
        .unwrap();
        let (ra, rb) =
            (to_record(CoupaResource::Suppliers, a).unwrap(), to_record(CoupaResource::Suppliers, b).unwrap());
        assert_eq!(ra.version, rb.version);
        let c = json!({"id": 9, "name": "y", "updated-at": "2024-03-20T15:20:45-07:00"});
        assert_ne!(to_record(CoupaResource::Suppliers, c).unwrap().version, ra.version);
        let r =
            to_record(CoupaResource::Suppliers, json!({"id": 9, "updated-at": "2024-03-20T15:20:45-07:00"})).unwrap();
        assert_eq!(r.updated.to_rfc3339(), "2024-03-20T22:20:45+00:00");
        assert!(to_record(CoupaResource::Suppliers, json!({"id": 9})).is_err());
    }
}
