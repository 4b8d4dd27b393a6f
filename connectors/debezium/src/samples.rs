//! Bundled sample data: Debezium change events of an ERP's `suppliers` and `servers` tables (a
//! PostgreSQL connector with `JsonConverter`, `schemas.enable=false`): a snapshot, an update, a new
//! supplier, a decommissioned server with its tombstone, and a supplier without a country that the
//! sample mapping rejects. The quickstart produces them to its broker and reads them with
//! [`sample_config`].

use serde_json::{Value, json};

use crate::config::ReaderConfig;

/// The topics of the samples.
pub const SAMPLE_TOPICS: [&str; 2] = ["erp.public.suppliers", "erp.public.servers"];

const RECORDS: &str = include_str!("../samples/erp-cdc.ndjson");
const SUPPLIERS: &str = include_str!("../samples/suppliers-actors.jq");
const SERVERS: &str = include_str!("../samples/servers-assets.jq");

/// A record to produce: topic, key, value (`None`: a tombstone).
pub type SampleRecord = (String, Vec<u8>, Option<Vec<u8>>);

/// The sample records, in order.
pub fn sample_records() -> Result<Vec<SampleRecord>, serde_json::Error> {
    RECORDS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: Value = serde_json::from_str(line)?;
            let topic = v["topic"].as_str().unwrap_or_default().to_owned();
            let key = serde_json::to_vec(&v["key"])?;
            let value = if v["value"].is_null() { None } else { Some(serde_json::to_vec(&v["value"])?) };
            Ok((topic, key, value))
        })
        .collect()
}

/// The reader of the samples: suppliers → Actors, servers → Assets, keys `erp:…`.
pub fn sample_config() -> Result<ReaderConfig, serde_json::Error> {
    serde_json::from_value(json!({
        "key_system": "erp",
        "topics": [
            {"topic": SAMPLE_TOPICS[0], "name": "suppliers", "mapping": SUPPLIERS, "params": {"tags": ["erp"]}},
            {"topic": SAMPLE_TOPICS[1], "name": "servers", "mapping": SERVERS}
        ]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DebeziumRule;
    use crate::config::ReaderKind;
    use crate::envelope::read_envelope;
    use crate::reader::{Row, TopicReader};

    #[test]
    fn the_samples_read_and_map_as_documented() {
        let cfg = sample_config().unwrap();
        cfg.validate("samples", ReaderKind::Debezium).unwrap();
        let streams = TopicReader::<DebeziumRule>::streams(&cfg).unwrap();
        let (mut mapped, mut rejected, mut deletes, mut tombstones) = (0, 0, 0, 0);
        for (topic, key, value) in sample_records().unwrap() {
            assert!(SAMPLE_TOPICS.contains(&topic.as_str()));
            let Some(value) = value else {
                tombstones += 1;
                continue;
            };
            let key: Value = serde_json::from_slice(&key).unwrap();
            let change = read_envelope(&serde_json::from_slice(&value).unwrap(), Some(&key), 0).unwrap();
            let spec = &streams[&topic];
            match change.row {
                Row::Upsert(row) => match spec.mapping.run(&row, &spec.params, "erp") {
                    Ok(out) => mapped += out.len(),
                    Err(e) => {
                        assert!(e.to_string().contains("supplier 105 has no country"), "{e}");
                        rejected += 1;
                    }
                },
                Row::Delete(_) => deletes += 1,
                Row::Skip(_) => unreachable!(),
            }
        }
        assert_eq!((mapped, rejected, deletes, tombstones), (9, 1, 1, 1));
    }
}
