//! Bundled sample data: MetadataChangeLog records of a small DataHub catalog (two platforms, a CRM
//! `customers` table with PII-tagged columns and a financial glossary term, a tag set in the UI, a
//! clinic `visits` table with a health term, a table soft-deleted after ingestion, an Airflow job
//! copying the customers to a Snowflake table, and changes the source skips). They are the MCL's JSON form (aspect values as JSON text; DataHub itself writes
//! Avro, which needs a schema registry the quickstart does not run). The quickstart produces them
//! to its broker and reads them with [`sample_config`].

use serde_json::{Value, json};

use crate::config::{DEFAULT_TOPIC, DataHubConfig};

const RECORDS: &str = include_str!("../samples/mcl.ndjson");

/// A record to produce: key (the entity URN), value.
pub type SampleRecord = (Vec<u8>, Vec<u8>);

/// The sample records in order.
pub fn sample_records() -> Result<Vec<SampleRecord>, serde_json::Error> {
    RECORDS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line)?;
            let key = v["entityUrn"].as_str().unwrap_or_default().as_bytes().to_vec();
            Ok((key, line.as_bytes().to_vec()))
        })
        .collect()
}

/// The source of the samples: the default mapping with the sample glossary terms mapped.
pub fn sample_config() -> Result<DataHubConfig, serde_json::Error> {
    serde_json::from_value(json!({
        "topic": DEFAULT_TOPIC,
        "params": {"tag_map": {
            "Classification.Health": {"personalDataCategory": "HealthData", "sensitiveData": true},
            "Classification.Financial": {"personalDataCategory": "EconomicFinancialData", "sensitiveData": false}
        }}
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcl::DataHubRule;
    use dastra_connect_core::bus::InboundMessage;
    use dastra_connect_core::source::Mapping;
    use dastra_connect_core::state::{StateError, StateStore};
    use dastra_connect_debezium::reader::{RecordRule, Row};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    /// A store that holds nothing: every entity read here is new, and what the rule remembers
    /// stays in its pending map.
    struct Empty;
    #[async_trait::async_trait]
    impl StateStore for Empty {
        fn get(&self, _key: &str) -> Option<bytes::Bytes> {
            None
        }
        async fn put(&self, _key: &str, _value: bytes::Bytes) -> Result<(), StateError> {
            unreachable!("the test never saves")
        }
        async fn delete(&self, _key: &str) -> Result<(), StateError> {
            unreachable!("the test never saves")
        }
        async fn put_batch(&self, _entries: Vec<(String, Option<bytes::Bytes>)>) -> Result<(), StateError> {
            unreachable!("the test never saves")
        }
        fn snapshot(&self) -> std::collections::BTreeMap<String, bytes::Bytes> {
            Default::default()
        }
        fn len(&self) -> usize {
            0
        }
        fn namespace(&self) -> &str {
            "samples"
        }
    }

    #[test]
    fn the_samples_read_and_map_as_documented() {
        let cfg = sample_config().unwrap();
        cfg.validate("samples").unwrap();
        let reader = cfg.reader_config();
        let program = Mapping::compile("metadata", &reader.topics[0].mapping).unwrap();
        let params = Value::Object(reader.topics[0].params.clone());
        let rule = DataHubRule::new(Arc::new(Empty));
        let (mut live, mut skipped) = (std::collections::BTreeMap::new(), 0);
        for (i, (key, value)) in sample_records().unwrap().into_iter().enumerate() {
            let msg = InboundMessage {
                topic: DEFAULT_TOPIC.into(),
                partition: 0,
                offset: i as i64,
                key: key.clone().into(),
                payload: None,
                headers: vec![],
                timestamp: None,
            };
            let value: Value = serde_json::from_slice(&value).unwrap();
            let change = rule.read(DEFAULT_TOPIC, &msg, None, &value).unwrap();
            assert_eq!(change.record_id.as_bytes(), key.as_slice());
            match change.row {
                Row::Upsert(row) => {
                    let keys: BTreeSet<String> = program
                        .run(&row, &params, "datahub")
                        .unwrap()
                        .iter()
                        .map(|o| format!("{}:{}", o["kind"].as_str().unwrap(), o["id"].as_str().unwrap()))
                        .collect();
                    live.insert(change.record_id, keys);
                }
                Row::Delete(_) => {
                    live.remove(&change.record_id);
                }
                Row::Skip(_) => skipped += 1,
            }
        }
        let all: Vec<String> = live.into_values().flatten().collect();
        let count = |kind: &str| all.iter().filter(|k| k.starts_with(kind)).count();
        // Assets: 2 platforms and the 3 live datasets (customers, visits, the warehouse table).
        assert_eq!(
            (count("asset:"), count("datafield:"), count("dataset:"), count("processing:"), skipped),
            (5, 6, 2, 1, 2),
            "{all:#?}"
        );
    }
}
