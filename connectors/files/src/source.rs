//! The files [`SourceSystem`]: each export is a stream whose records are the rows of its current
//! files ([`Scanner`]); the incremental poll returns rows strictly after the cursor in `(time, id)`
//! order, the sweep every row in id order (rows gone from the files are then deleted by the
//! engine). And the connector ([`FilesSource`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use dastra_connect_core::source::keyset::order_page;
use dastra_connect_core::source::streams::compile_stream;
use dastra_connect_core::source::{
    Cursor, IdOrder, Page, SourceConnector, SourceDefinition, SourceError, SourceRecord, SourceSettings, SourceSystem,
    StreamSpec,
};

use crate::config::FilesConfig;
use crate::scan::Scanner;

/// Reads the configured exports for the engine.
pub struct FilesSystem {
    scanners: HashMap<String, Scanner>,
}

impl FilesSystem {
    /// A system reading `config`'s exports.
    pub fn new(config: &FilesConfig) -> FilesSystem {
        let scanners =
            config.exports.iter().map(|e| (e.name.clone(), Scanner::new(e.clone(), config.min_age))).collect();
        FilesSystem { scanners }
    }

    fn scanner(&self, stream: &str) -> Result<&Scanner, SourceError> {
        self.scanners.get(stream).ok_or_else(|| SourceError::Config(format!("unknown export `{stream}`")))
    }
}

#[async_trait]
impl SourceSystem for FilesSystem {
    async fn fetch_changes(&self, stream: &str, after: &Cursor, limit: u32) -> Result<Page<SourceRecord>, SourceError> {
        let snapshot = self.scanner(stream)?.snapshot().await?;
        // Row ids are whatever a column holds: text order, as the sweep's (the snapshot's) order.
        let newer = snapshot.iter().filter(|r| IdOrder::Text.is_after(r.updated, &r.id, after)).cloned().collect();
        Ok(Page { records: order_page(newer, after, IdOrder::Text, limit), total: Some(snapshot.len() as u64) })
    }

    async fn fetch_all(
        &self,
        stream: &str,
        after_id: Option<&str>,
        limit: u32,
    ) -> Result<Page<SourceRecord>, SourceError> {
        let snapshot = self.scanner(stream)?.snapshot().await?;
        // The snapshot is sorted by id.
        let records = snapshot
            .iter()
            .filter(|r| after_id.is_none_or(|a| r.id.as_str() > a))
            .take(limit as usize)
            .cloned()
            .collect();
        Ok(Page { records, total: Some(snapshot.len() as u64) })
    }
}

/// The connector: scans the exports of [`FilesConfig`] (validated by the caller with
/// [`FilesConfig::validate`]) on the core source engine.
pub type FilesSource = SourceConnector<FilesConfig>;

#[async_trait]
impl SourceDefinition for FilesConfig {
    fn streams(&self) -> Result<Vec<StreamSpec>, SourceError> {
        self.exports
            .iter()
            .map(|e| {
                let (program, params) = e.effective_mapping();
                compile_stream(&e.name, &program, params)
            })
            .collect()
    }
    async fn system(&self) -> Result<Arc<dyn SourceSystem>, SourceError> {
        Ok(Arc::new(FilesSystem::new(self)))
    }
    fn settings(&self) -> (&str, &SourceSettings) {
        (&self.key_system, &self.sync)
    }
    fn status(&self) -> serde_json::Value {
        let exports: Vec<(String, String)> =
            self.exports.iter().map(|e| (e.name.clone(), e.path.display().to_string())).collect();
        serde_json::json!({"type": "files", "exports": exports})
    }
}
