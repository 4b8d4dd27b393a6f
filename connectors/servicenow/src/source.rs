//! The ServiceNow [`SourceSystem`] (cursor `sys_updated_on` + `sys_id`, version `sys_mod_count`,
//! deletes from `sys_audit_delete`) and the connector ([`ServiceNowSource`]) that runs it on the core
//! source engine.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use dastra_connect_core::source::streams::compile_stream;
use dastra_connect_core::source::{
    Cursor, DeletedRecord, Page, SourceConnector, SourceDefinition, SourceError, SourceRecord, SourceSettings,
    SourceSystem, StreamSpec,
};
use serde_json::Value;

use crate::client::ServiceNowClient;
use crate::config::ServiceNowConfig;
use crate::query;

/// One table as the system reads it.
struct Table {
    filter: Option<String>,
    fields: Vec<String>,
    audit_deletes: bool,
}

/// Reads ServiceNow tables for the engine.
pub struct ServiceNowSystem {
    client: ServiceNowClient,
    tables: HashMap<String, Table>,
}

const SYSTEM: &str = "servicenow";

fn bad(what: &str, detail: String) -> SourceError {
    SourceError::BadResponse { system: SYSTEM.into(), what: what.to_owned(), detail }
}

fn text<'a>(rec: &'a Value, field: &str) -> Option<&'a str> {
    rec.get(field).and_then(Value::as_str)
}

/// A Table API record → a source record (`sys_id`, `sys_updated_on`, `sys_mod_count`).
fn to_record(table: &str, rec: Value) -> Result<SourceRecord, SourceError> {
    let what = format!("/api/now/table/{table}");
    let id =
        text(&rec, "sys_id").filter(|s| !s.is_empty()).ok_or_else(|| bad(&what, "a record has no sys_id".into()))?;
    let updated = text(&rec, "sys_updated_on")
        .and_then(query::parse_time)
        .ok_or_else(|| bad(&what, format!("record {id} has no readable sys_updated_on")))?;
    // sys_mod_count is a string in the Table API's JSON; a missing one counts as 0.
    let version = match rec.get("sys_mod_count") {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    };
    Ok(SourceRecord { id: id.to_owned(), updated, version, body: rec })
}

impl ServiceNowSystem {
    /// A system over `client` reading the configured tables.
    pub fn new(client: ServiceNowClient, config: &ServiceNowConfig) -> ServiceNowSystem {
        let tables = config
            .tables
            .iter()
            .map(|t| {
                (
                    t.table.clone(),
                    Table {
                        filter: t.effective_filter(),
                        fields: t.effective_fields(),
                        audit_deletes: t.audit_deletes,
                    },
                )
            })
            .collect();
        ServiceNowSystem { client, tables }
    }

    fn table(&self, stream: &str) -> Result<&Table, SourceError> {
        self.tables.get(stream).ok_or_else(|| SourceError::Config(format!("unknown stream `{stream}`")))
    }

    /// Start-up checks against the instance: the cursor fields and every field of each filter exist
    /// (ServiceNow ignores an unknown field in a query instead of failing).
    pub async fn check(&self) -> Result<(), SourceError> {
        for (name, t) in &self.tables {
            let mut fields = vec!["sys_id".to_owned(), "sys_updated_on".to_owned(), "sys_mod_count".to_owned()];
            if let Some(f) = &t.filter {
                let used =
                    query::check_filter(f).map_err(|r| SourceError::Config(format!("filter of `{name}`: {r}")))?;
                fields.extend(used);
            }
            if !self.client.check_fields(name, &fields, "used by the cursor or the filter").await? {
                tracing::warn!(table = %name, "table is empty: its filter fields could not be checked");
            }
            if t.audit_deletes {
                let audit = ["sys_id", "tablename", "documentkey", "sys_created_on"].map(str::to_owned);
                self.client.check_fields("sys_audit_delete", &audit, "needed to read deletes").await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SourceSystem for ServiceNowSystem {
    async fn fetch_changes(&self, stream: &str, after: &Cursor, limit: u32) -> Result<Page<SourceRecord>, SourceError> {
        let t = self.table(stream)?;
        let q = query::changes_after(t.filter.as_deref(), after.updated, &after.id);
        let page = self.client.table(stream, &q, &t.fields, limit, None).await?;
        let records = page.records.into_iter().map(|r| to_record(stream, r)).collect::<Result<_, _>>()?;
        Ok(Page { records, total: page.total })
    }

    async fn fetch_all(
        &self,
        stream: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> Result<Page<SourceRecord>, SourceError> {
        let t = self.table(stream)?;
        let q = query::all_after(t.filter.as_deref(), after_id);
        let page = self.client.table(stream, &q, &t.fields, limit, None).await?;
        let records = page.records.into_iter().map(|r| to_record(stream, r)).collect::<Result<_, _>>()?;
        Ok(Page { records, total: page.total })
    }

    fn has_delete_feed(&self, stream: &str) -> bool {
        self.tables.get(stream).is_some_and(|t| t.audit_deletes)
    }

    async fn fetch_deletes(
        &self,
        stream: &str,
        after: &Cursor,
        limit: u32,
    ) -> Result<Page<DeletedRecord>, SourceError> {
        let q = query::deletes_after(stream, after.updated, &after.id);
        let fields = ["sys_id", "tablename", "documentkey", "sys_created_on"].map(str::to_owned);
        let page = self.client.table("sys_audit_delete", &q, &fields, limit, None).await?;
        let mut out = Vec::with_capacity(page.records.len());
        for r in page.records {
            let what = "/api/now/table/sys_audit_delete";
            let id = text(&r, "sys_id").ok_or_else(|| bad(what, "an entry has no sys_id".into()))?;
            let at = text(&r, "sys_created_on")
                .and_then(query::parse_time)
                .ok_or_else(|| bad(what, format!("entry {id} has no readable sys_created_on")))?;
            let doc = text(&r, "documentkey").ok_or_else(|| bad(what, format!("entry {id} has no documentkey")))?;
            out.push(DeletedRecord { id: doc.to_owned(), deleted_at: at, position: Cursor::new(at, id) });
        }
        Ok(Page { records: out, total: page.total })
    }
}

/// The connector: runs the engine on [`ServiceNowConfig`] (validated by the caller with
/// [`ServiceNowConfig::validate`]), after checking the filters' fields against the instance.
pub type ServiceNowSource = SourceConnector<ServiceNowConfig>;

#[async_trait]
impl SourceDefinition for ServiceNowConfig {
    fn streams(&self) -> Result<Vec<StreamSpec>, SourceError> {
        self.tables
            .iter()
            .map(|t| {
                let (program, params) = t
                    .effective_mapping()
                    .ok_or_else(|| SourceError::Config(format!("table `{}` has no mapping", t.table)))?;
                compile_stream(&t.table, &program, params)
            })
            .collect()
    }
    async fn system(&self) -> Result<Arc<dyn SourceSystem>, SourceError> {
        let client = ServiceNowClient::new(&self.instance_url, self.auth.clone(), self.http.clone())?;
        let system = ServiceNowSystem::new(client, self);
        system.check().await?;
        Ok(Arc::new(system))
    }
    fn settings(&self) -> (&str, &SourceSettings) {
        (&self.key_system, &self.sync)
    }
    fn status(&self) -> Value {
        let tables: Vec<&str> = self.tables.iter().map(|t| t.table.as_str()).collect();
        serde_json::json!({"type": "servicenow", "instance": self.instance_url.to_string(), "tables": tables})
    }
}
