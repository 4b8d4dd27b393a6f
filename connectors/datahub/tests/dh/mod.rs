//! Helpers of the DataHub tests: MetadataChangeLog records as DataHub's GMS writes them (aspects
//! as JSON documents), their Confluent Avro encoding through PyPI confluent-kafka's AvroSerializer
//! and the in-repo registry stub, the MCL topic on the bus, a producer of raw records.

#![allow(dead_code)]

use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dastra_connect_test_harness::{Broker, SOURCE};
use serde_json::{Value, json};

#[path = "../../../../core/tests/py/support.rs"]
mod support;

#[path = "../../../debezium/tests/cdc/mod.rs"]
mod cdc;

/// DataHub's default MCL topic.
pub const TOPIC: &str = "MetadataChangeLog_Versioned_v1";
/// Base of the change times (ms).
pub const T0: i64 = 1_764_000_000_000;

/// The dataset URN of a PostgreSQL table.
pub fn dataset(name: &str) -> String {
    format!("urn:li:dataset:(urn:li:dataPlatform:postgres,{name},PROD)")
}

/// An MCL record: `aspect` is the aspect document (serialized to JSON bytes by the encoder).
pub fn mcl(
    entity_type: &str,
    urn: &str,
    change: &str,
    aspect_name: Option<&str>,
    aspect: Option<Value>,
    t: i64,
) -> Value {
    json!({
        "auditHeader": null, "entityType": entity_type, "entityUrn": urn, "entityKeyAspect": null,
        "changeType": change, "aspectName": aspect_name, "aspect": aspect,
        "systemMetadata": {"lastObserved": T0 + t + 3, "runId": "postgres-2026_12_02-10_00_00",
                           "lastRunId": "no-run-id-provided", "registryName": null, "registryVersion": null,
                           "properties": null},
        "previousAspectValue": null, "previousSystemMetadata": null,
        "created": {"time": T0 + t, "actor": "urn:li:corpuser:datahub", "impersonator": null, "message": null}
    })
}

/// An UPSERT of a dataset aspect.
pub fn upsert(urn: &str, aspect_name: &str, aspect: Value, t: i64) -> Value {
    mcl("dataset", urn, "UPSERT", Some(aspect_name), Some(aspect), t)
}

/// A `SchemaField` (v1 field path) with its type branch and tags / glossary terms.
pub fn field(path: &str, branch: &str, native: &str, nullable: bool, tags: &[&str], terms: &[&str]) -> Value {
    let mut f = json!({
        "fieldPath": path, "nullable": nullable, "nativeDataType": native, "recursive": false,
        "isPartOfKey": path == "id",
        "type": {"type": {format!("com.linkedin.schema.{branch}"): {}}},
    });
    if !tags.is_empty() {
        f["globalTags"] = json!({"tags": tags.iter().map(|t| json!({"tag": t})).collect::<Vec<_>>()});
    }
    if !terms.is_empty() {
        f["glossaryTerms"] = json!({"terms": terms.iter().map(|t| json!({"urn": t})).collect::<Vec<_>>(),
                                    "auditStamp": {"time": T0, "actor": "urn:li:corpuser:datahub"}});
    }
    f
}

/// A `schemaMetadata` aspect of a PostgreSQL table.
pub fn schema(table: &str, fields: Vec<Value>) -> Value {
    json!({
        "schemaName": table, "platform": "urn:li:dataPlatform:postgres", "version": 0, "hash": "",
        "created": {"time": 0, "actor": "urn:li:corpuser:unknown"},
        "lastModified": {"time": 0, "actor": "urn:li:corpuser:unknown"},
        "platformSchema": {"com.linkedin.schema.MySqlDDL": {"tableSchema": ""}},
        "fields": fields,
    })
}

/// An `editableSchemaMetadata` aspect: (fieldPath, description, tags).
pub fn editable(infos: &[(&str, Option<&str>, &[&str])]) -> Value {
    let infos: Vec<Value> = infos
        .iter()
        .map(|(path, desc, tags)| {
            json!({"fieldPath": path, "description": desc,
                   "globalTags": {"tags": tags.iter().map(|t| json!({"tag": t})).collect::<Vec<_>>()}})
        })
        .collect();
    json!({"created": {"time": T0, "actor": "urn:li:corpuser:jdoe"},
           "lastModified": {"time": T0, "actor": "urn:li:corpuser:jdoe"},
           "editableSchemaFieldInfo": infos})
}

/// The `dataPlatformInfo` of PostgreSQL.
pub fn postgres_platform(t: i64) -> Value {
    mcl(
        "dataPlatform",
        "urn:li:dataPlatform:postgres",
        "UPSERT",
        Some("dataPlatformInfo"),
        Some(json!({"name": "postgres", "displayName": "PostgreSQL", "type": "RELATIONAL_DB",
                    "datasetNameDelimiter": ".", "logoUrl": "/assets/platforms/postgreslogo.png"})),
        t,
    )
}

/// MCL records → (key, value) as DataHub writes them: the URN as a string key, the value in
/// Confluent Avro from the in-repo `MetadataChangeLog.avsc` through `registry`.
pub fn encode(items: &[Value], registry: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let schema: Value = serde_json::from_str(include_str!("../mcl/MetadataChangeLog.avsc")).unwrap();
    let req = json!({"topic": TOPIC, "schema": schema, "items": items});
    let reply = support::run("datahub_mcl.py", &[registry], &req);
    reply["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (hex::decode(m["key"].as_str().unwrap()).unwrap(), Some(hex::decode(m["value"].as_str().unwrap()).unwrap()))
        })
        .collect()
}

/// The bus with the MCL topic (on Kafka created on the MockCluster with 3 partitions, with the
/// source's store of remembered aspects; on NATS captured by the stream).
pub async fn bus_with_mcl(broker: &Broker, topics: &Topics) -> BusConfig {
    if let Broker::Kafka(k) = broker {
        k.create_topic(&topics.state(&format!("aspects-{SOURCE}")), 1);
    }
    cdc::bus_with_inputs(broker, topics, &[TOPIC]).await
}

/// Publishes raw records to a topic in order (the Debezium tests' producer).
pub use cdc::produce;

/// The URN of an Airflow task (a DataHub data job) of the `crm_nightly` DAG.
pub fn job(task: &str) -> String {
    format!("urn:li:dataJob:(urn:li:dataFlow:(airflow,crm_nightly,prod),{task})")
}

/// An UPSERT of a data job aspect.
pub fn job_upsert(urn: &str, aspect_name: &str, aspect: Value, t: i64) -> Value {
    mcl("dataJob", urn, "UPSERT", Some(aspect_name), Some(aspect), t)
}

/// The `dataJobInfo` of an Airflow task.
pub fn job_info(name: &str, description: &str) -> Value {
    json!({"name": name, "description": description, "type": {"string": "COMMAND"},
           "flowUrn": "urn:li:dataFlow:(airflow,crm_nightly,prod)", "customProperties": {}})
}

/// A `dataJobInputOutput`: inputs as the deprecated URN array, outputs as `Edge`s (both forms
/// DataHub writes).
pub fn job_io(inputs: &[&str], outputs: &[&str]) -> Value {
    json!({
        "inputDatasets": inputs,
        "outputDatasets": [],
        "outputDatasetEdges": outputs.iter().map(|o| json!({"destinationUrn": o,
            "created": {"time": T0, "actor": "urn:li:corpuser:datahub"}})).collect::<Vec<_>>(),
        "inputDatajobs": [],
    })
}
