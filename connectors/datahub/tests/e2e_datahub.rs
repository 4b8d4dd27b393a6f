//! End to end on the Kafka MockCluster, on tansu (a Kafka-protocol broker process) and on NATS
//! JetStream: DataHub MetadataChangeLog records (Confluent Avro through the registry stub) read by
//! the DataHub source and applied by the real Dastra sink to the emulator — a PII-tagged column becomes exactly one DataField with its category and sensitivity,
//! in its table's dataset (DataRetentionRules), the data platform and each table an Asset; a tag set
//! in the UI re-classifies a field; a data job becomes one DataProcessing linked to the Assets of
//! the tables it reads and writes and to the classified one's dataset, a tag set later on the
//! other table re-links it to that table's dataset too, and its DELETE removes it;
//! soft-deleting the table removes its fields, dataset and Asset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dh;

use dastra_connect_test_harness as common;

use std::time::Duration;

use common::*;
use dastra_connect_core::bus::{BusConfig, TopicSpec};
use dastra_connect_core::codec::RegistryConfig;
use dastra_connect_core::codec::registry::stub::StubRegistry;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::EntityKind;
use dastra_connect_core::testkit::Tansu;
use dastra_connect_datahub::{DataHubConfig, DataHubSource};
use dh::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);
const PII: &str = "urn:li:tag:PII";
const HEALTH: &str = "urn:li:glossaryTerm:Classification.Health";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_columns_into_dastra_on_kafka() {
    end_to_end(Broker::kafka()).await;
}

/// The same on NATS JetStream (the MCL records on the bus stream as the reader's subjects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_columns_into_dastra_on_nats() {
    end_to_end(Broker::nats().await).await;
}

/// The same on tansu, a Kafka-protocol broker process (not librdkafka's in-process mock): topics
/// created through the broker's CreateTopics API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagged_columns_into_dastra_on_tansu() {
    let tansu = Tansu::start().await;
    let topics = Topics::default();
    let bus = tansu.bus_config();
    let mut specs: Vec<TopicSpec> = EntityKind::ALL.iter().map(|k| TopicSpec::new(topics.changes(*k))).collect();
    specs.extend([topics.dlq(), TOPIC.into()].map(TopicSpec::new));
    let stores = ["source", "known", "aspects"]
        .map(|s| format!("{s}-{SOURCE}"))
        .into_iter()
        .chain(["ledger", "pending", "parked"].map(|s| format!("{s}-{SINK}")));
    specs.extend(stores.map(|s| TopicSpec::compacted(topics.state(&s))));
    bus.ensure_topics(&specs).await.unwrap();
    run(&bus, &topics).await;
    drop(tansu);
}

async fn end_to_end(broker: Broker) {
    let topics = Topics::default();
    let bus = bus_with_mcl(&broker, &topics).await;
    run(&bus, &topics).await;
}

async fn run(bus: &BusConfig, topics: &Topics) {
    let (bus, topics) = (bus.clone(), topics.clone());
    let stub = StubRegistry::new();
    let (registry, _server) = stub.spawn().await.unwrap();
    let patients = dataset("clinic.public.patients");
    let export = "urn:li:dataset:(urn:li:dataPlatform:snowflake,dwh.clinic.patients,PROD)".to_owned();
    let copy = job("copy_patients");
    let items = vec![
        postgres_platform(1),
        upsert(
            &patients,
            "schemaMetadata",
            schema(
                "clinic.public.patients",
                vec![
                    field("id", "NumberType", "int4", false, &[], &[]),
                    field("email", "StringType", "varchar(255)", false, &[PII], &[]),
                    field("diagnosis", "StringType", "text", true, &[], &[HEALTH]),
                    field("created_at", "DateType", "timestamp", false, &[], &[]),
                ],
            ),
            10,
        ),
        upsert(&patients, "datasetProperties", json!({"name": "patients", "description": "Patient records"}), 11),
        // A tag set in the UI on `created_at`.
        upsert(&patients, "editableSchemaMetadata", editable(&[("created_at", Some("First visit"), &[PII])]), 20),
        upsert(&patients, "status", json!({"removed": true}), 30),
        // 5..=8: lineage — a warehouse table, a job copying the patients into it, its hard delete.
        upsert(&export, "datasetProperties", json!({"name": "patients", "description": "Warehouse copy"}), 21),
        job_upsert(&copy, "dataJobInfo", job_info("copy_patients", "Nightly copy to the warehouse"), 22),
        job_upsert(&copy, "dataJobInputOutput", job_io(&[&patients], &[&export]), 23),
        mcl("dataJob", &copy, "DELETE", None, None, 24),
        // 9: a PII tag set in the UI on the warehouse table: the job is mapped again (a version
        // just above its latest) and links that table's new dataset too.
        upsert(&export, "editableSchemaMetadata", editable(&[("patient_email", Some("Copied e-mail"), &[PII])]), 25),
    ];
    let url = registry.to_string();
    let encoded = tokio::task::spawn_blocking(move || encode(&items, &url)).await.unwrap();
    let emu = emulator().await;
    let sink = RunningSink::start(&bus, &topics, sink_config(&emu));
    let mut cfg: DataHubConfig = serde_json::from_value(json!({
        "consumer": {"linger": "50ms"},
        "params": {"tag_map": {"Classification.Health": {"personalDataCategory": "HealthData", "sensitiveData": true}}}
    }))
    .unwrap();
    cfg.registry = Some(RegistryConfig::new(registry.clone()));
    cfg.validate("test").unwrap();
    let source = RunningSource::start(&bus, &topics, Box::new(DataHubSource::new(cfg)));

    produce(&bus, TOPIC, encoded[..3].to_vec()).await;
    wait_emulator(&emu, "the catalog in Dastra", WAIT, |e| {
        e.state.entities(1, "DataFields").len() == 2
            && e.state.entities(1, "DataRetentionRules").len() == 1
            && labels(e, "Assets", "label") == ["PostgreSQL", "postgres.clinic.public.patients"]
    })
    .await;
    let fields = emu.state.entities(1, "DataFields");
    let email: Vec<_> = fields.iter().filter(|f| f["technicalDefinition"] == "clinic.public.patients.email").collect();
    assert_eq!(email.len(), 1, "exactly one DataField per tagged column: {fields:#?}");
    assert_eq!(
        (email[0]["personalDataCategory"].as_str(), email[0]["sensitiveData"].as_bool()),
        (Some("Other"), Some(false))
    );
    let diagnosis = fields.iter().find(|f| f["label"] == "diagnosis").unwrap();
    assert_eq!(
        (diagnosis["personalDataCategory"].as_str(), diagnosis["sensitiveData"].as_bool()),
        (Some("HealthData"), Some(true))
    );
    let sets = emu.state.entities(1, "DataRetentionRules");
    assert_eq!(sets[0]["label"], "postgres.clinic.public.patients");
    assert_eq!(sets[0]["description"], "Patient records");
    let mut in_set: Vec<_> = sets[0]["dataFields"].as_array().unwrap().iter().map(|f| f["label"].clone()).collect();
    in_set.sort_by_key(|v| v.to_string());
    assert_eq!(in_set, [json!("diagnosis"), json!("email")]);

    // The UI tag makes `created_at` a DataField, in the same dataset.
    produce(&bus, TOPIC, vec![encoded[3].clone()]).await;
    wait_emulator(&emu, "the UI tag", WAIT, |e| {
        e.state.entities(1, "DataFields").len() == 3
            && e.state.entities(1, "DataRetentionRules")[0]["dataFields"].as_array().is_some_and(|f| f.len() == 3)
    })
    .await;
    let fields = emu.state.entities(1, "DataFields");
    let created = fields.iter().find(|f| f["label"] == "created_at").unwrap();
    assert_eq!((created["definition"].as_str(), created["dataType"].as_str()), (Some("First visit"), Some("Date")));

    // Lineage: the job becomes one DataProcessing linked to the Assets of both tables and to the
    // dataset of the classified one; its DELETE removes it.
    produce(&bus, TOPIC, encoded[5..8].to_vec()).await;
    wait_emulator(&emu, "the job's processing", WAIT, |e| {
        e.state.entities(1, "DataProcessings").iter().any(|p| {
            p["assets"].as_array().is_some_and(|a| a.len() == 2)
                && p["dataRetentionRules"].as_array().is_some_and(|d| d.len() == 1)
        })
    })
    .await;
    let dps = emu.state.entities(1, "DataProcessings");
    assert_eq!(dps.len(), 1, "one processing per job: {dps:#?}");
    assert_eq!(
        (dps[0]["label"].as_str(), dps[0]["description"].as_str()),
        (Some("copy_patients"), Some("Nightly copy to the warehouse"))
    );
    let mut linked: Vec<String> =
        dps[0]["assets"].as_array().unwrap().iter().map(|a| a["label"].as_str().unwrap().to_owned()).collect();
    linked.sort();
    assert_eq!(linked, ["postgres.clinic.public.patients", "snowflake.dwh.clinic.patients"]);
    let sets = emu.state.entities(1, "DataRetentionRules");
    assert_eq!(dps[0]["dataRetentionRules"][0]["id"], sets[0]["id"], "linked by Dastra id");
    produce(&bus, TOPIC, vec![encoded[9].clone()]).await;
    wait_emulator(&emu, "the job re-linked to the newly classified table", WAIT, |e| {
        e.state
            .entities(1, "DataProcessings")
            .iter()
            .any(|p| p["dataRetentionRules"].as_array().is_some_and(|d| d.len() == 2))
    })
    .await;
    let mut linked: Vec<String> = emu.state.entities(1, "DataProcessings")[0]["dataRetentionRules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["label"].as_str().unwrap().to_owned())
        .collect();
    linked.sort();
    assert_eq!(linked, ["postgres.clinic.public.patients", "snowflake.dwh.clinic.patients"]);
    produce(&bus, TOPIC, vec![encoded[8].clone()]).await;
    wait_emulator(&emu, "the job's delete", WAIT, |e| e.state.entities(1, "DataProcessings").is_empty()).await;

    // Soft delete: the fields, the dataset and the table's Asset leave Dastra; the platform and
    // the warehouse table (its field, dataset and Asset) stay.
    produce(&bus, TOPIC, vec![encoded[4].clone()]).await;
    wait_emulator(&emu, "the soft delete", WAIT, |e| {
        labels(e, "DataFields", "label") == ["patient_email"]
            && labels(e, "DataRetentionRules", "label") == ["snowflake.dwh.clinic.patients"]
    })
    .await;
    wait_emulator(&emu, "the table's Asset gone", WAIT, |e| {
        labels(e, "Assets", "label") == ["PostgreSQL", "snowflake.dwh.clinic.patients"]
    })
    .await;
    source.stop().await;
    sink.stop().await;
}
