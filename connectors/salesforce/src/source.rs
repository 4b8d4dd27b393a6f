//! The Salesforce [`SourceSystem`] and the connector ([`SalesforceSource`]): changes by SOQL
//! keyset on `(SystemModstamp, Id)` (`WHERE (SystemModstamp > t OR (SystemModstamp = t AND Id > 'i'))
//! ORDER BY SystemModstamp, Id`), sweeps by `Id > 'last' ORDER BY Id`, and deletes from `queryAll`
//! (`IsDeleted = true`, same keyset): Salesforce keeps deleted records in the recycle bin about 15
//! days, older deletes are found by the sweep.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dastra_connect_core::canonical::content_version;
use dastra_connect_core::source::keyset::order_page;
use dastra_connect_core::source::{
    Cursor, DeletedRecord, IdOrder, Page, SourceConnector, SourceDefinition, SourceError, SourceRecord, SourceSettings,
    SourceSystem, StreamKind, StreamSpec,
};
use serde_json::Value;

use crate::client::SalesforceClient;
use crate::config::{ObjectConfig, SalesforceConfig, SalesforceObject};
use crate::mapping::select_fields;
use crate::soql::{after_cursor, quote, select};

const SYSTEM: &str = "salesforce";

/// Salesforce ids are base-62 text; queries order them with `ORDER BY Id`, compared as text here.
const IDS: IdOrder = IdOrder::Text;

/// A Salesforce dateTime (`2024-05-01T10:00:07.000+0000`, or RFC 3339).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A Salesforce record → a source record. Salesforce has no modification counter and
/// `SystemModstamp` has whole seconds, so the version is a content hash (without the `attributes`
/// block, whose URL says nothing about the record's content).
pub fn to_record(object: SalesforceObject, mut rec: Value) -> Result<SourceRecord, SourceError> {
    let what = format!("/query ({})", object.sobject());
    let id = match rec.get("Id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(SourceError::BadResponse { system: SYSTEM.into(), what, detail: "a record has no Id".into() }),
    };
    let updated = rec.get("SystemModstamp").and_then(Value::as_str).and_then(parse_time).ok_or_else(|| {
        SourceError::BadResponse {
            system: SYSTEM.into(),
            what: what.clone(),
            detail: format!("record {id} has no readable SystemModstamp"),
        }
    })?;
    if let Some(o) = rec.as_object_mut() {
        o.remove("attributes");
    }
    Ok(SourceRecord { id, updated, version: content_version(&rec), body: rec })
}

/// How one configured object is queried.
struct Plan {
    object: SalesforceObject,
    fields: Vec<String>,
    /// The configured filters and, for Cases, the privacy filter.
    conditions: Vec<String>,
}

/// Reads Salesforce objects for the engine.
pub struct SalesforceSystem {
    client: SalesforceClient,
    plans: HashMap<&'static str, Plan>,
}

impl SalesforceSystem {
    /// A system over `client` reading the configured objects.
    pub fn new(client: SalesforceClient, config: &SalesforceConfig) -> Result<SalesforceSystem, SourceError> {
        let mut plans = HashMap::new();
        for o in &config.objects {
            let (_, params) = o.effective_mapping();
            let fields = select_fields(o.kind, &params).map_err(SourceError::Config)?;
            let mut conditions: Vec<String> = o.filters.iter().map(|(k, v)| format!("{k} = {}", quote(v))).collect();
            if o.kind == SalesforceObject::Cases {
                let pc = &config.privacy_cases;
                if let Some(rt) = &pc.record_type {
                    conditions.push(format!("RecordType.DeveloperName = {}", quote(rt)));
                }
                let reasons = pc.reasons();
                if !reasons.is_empty() {
                    let list: Vec<String> = reasons.iter().map(|r| quote(r)).collect();
                    conditions.push(format!("Reason IN ({})", list.join(", ")));
                }
            }
            plans.insert(o.kind.stream(), Plan { object: o.kind, fields, conditions });
        }
        Ok(SalesforceSystem { client, plans })
    }

    fn plan(&self, stream: &str) -> Result<&Plan, SourceError> {
        self.plans.get(stream).ok_or_else(|| SourceError::Config(format!("unknown Salesforce stream `{stream}`")))
    }

    /// The client (counters for status and tests).
    pub fn client(&self) -> &SalesforceClient {
        &self.client
    }
}

#[async_trait]
impl SourceSystem for SalesforceSystem {
    async fn fetch_changes(&self, stream: &str, after: &Cursor, limit: u32) -> Result<Page<SourceRecord>, SourceError> {
        let plan = self.plan(stream)?;
        let mut conditions = plan.conditions.clone();
        conditions.push(after_cursor(after));
        let soql = select(&plan.fields, plan.object.sobject(), &conditions, "SystemModstamp, Id", limit);
        let mut out = Vec::new();
        for r in self.client.query(plan.object, &soql, false, limit as usize).await? {
            let rec = to_record(plan.object, r)?;
            if IDS.is_after(rec.updated, &rec.id, after) {
                out.push(rec);
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
        let plan = self.plan(stream)?;
        let mut conditions = plan.conditions.clone();
        if let Some(id) = after_id {
            conditions.push(format!("Id > {}", quote(id)));
        }
        let soql = select(&plan.fields, plan.object.sobject(), &conditions, "Id", limit);
        let mut out = Vec::new();
        for r in self.client.query(plan.object, &soql, false, limit as usize).await? {
            out.push(to_record(plan.object, r)?);
        }
        out.sort_by(|a, b| IDS.cmp(&a.id, &b.id));
        out.truncate(limit as usize);
        Ok(Page { records: out, total: None })
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
        let plan = self.plan(stream)?;
        // Every deleted record of the object: the engine deletes only keys it published, so a
        // record that no longer matches the filters is still removed.
        let conditions = vec!["IsDeleted = true".to_owned(), after_cursor(after)];
        let fields = ["Id".to_owned(), "SystemModstamp".to_owned()];
        let soql = select(&fields, plan.object.sobject(), &conditions, "SystemModstamp, Id", limit);
        let mut out = Vec::new();
        for r in self.client.query(plan.object, &soql, true, limit as usize).await? {
            let rec = to_record(plan.object, r)?;
            if IDS.is_after(rec.updated, &rec.id, after) {
                out.push(DeletedRecord {
                    position: Cursor::new(rec.updated, rec.id.clone()),
                    id: rec.id,
                    deleted_at: rec.updated,
                });
            }
        }
        out.sort_by(|a, b| IDS.cmp_position((a.deleted_at, &a.id), (b.deleted_at, &b.id)));
        out.truncate(limit as usize);
        Ok(Page { records: out, total: None })
    }
}

/// The connector: runs the engine on [`SalesforceConfig`] (validated by the caller with
/// [`SalesforceConfig::validate`]).
pub type SalesforceSource = SourceConnector<SalesforceConfig>;

#[async_trait]
impl SourceDefinition for SalesforceConfig {
    fn streams(&self) -> Result<Vec<StreamSpec>, SourceError> {
        ObjectConfig::specs(&self.objects)
    }
    async fn system(&self) -> Result<Arc<dyn SourceSystem>, SourceError> {
        Ok(Arc::new(SalesforceSystem::new(SalesforceClient::new(self)?, self)?))
    }
    fn settings(&self) -> (&str, &SourceSettings) {
        (&self.key_system, &self.sync)
    }
    fn status(&self) -> Value {
        let objects: Vec<&str> = self.objects.iter().map(|o| o.kind.stream()).collect();
        serde_json::json!({
            "type": "salesforce",
            "instance_url": self.instance_url.to_string(),
            "api_version": self.api_version,
            "objects": objects,
            "max_api_share": self.http.max_api_share,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_read_salesforce_times_and_ignore_attributes() {
        let a = json!({"attributes": {"type": "Account", "url": "/services/data/v60.0/sobjects/Account/001A"},
            "Id": "001A", "Name": "x", "SystemModstamp": "2024-05-01T12:00:07.000+0200"});
        let r = to_record(SalesforceObject::Accounts, a).unwrap();
        assert_eq!(r.updated.to_rfc3339(), "2024-05-01T10:00:07+00:00");
        assert!(r.body.get("attributes").is_none());
        let b = json!({"attributes": {"type": "Account", "url": "/services/data/v61.0/sobjects/Account/001A"},
            "Name": "x", "Id": "001A", "SystemModstamp": "2024-05-01T12:00:07.000+0200"});
        assert_eq!(to_record(SalesforceObject::Accounts, b).unwrap().version, r.version);
        assert!(to_record(SalesforceObject::Accounts, json!({"Id": "001A"})).is_err());
        assert!(
            to_record(SalesforceObject::Accounts, json!({"SystemModstamp": "2024-05-01T10:00:07.000+0000"})).is_err()
        );
    }
}
