//! The DataHub source on the Kafka MockCluster and on NATS JetStream, reading MetadataChangeLog records serialized by PyPI
//! confluent-kafka's AvroSerializer from the in-repo `MetadataChangeLog.avsc` through the in-repo
//! registry stub: first sync (a data platform → Asset, tagged schema fields → DataFields in their
//! table's dataset, a tag set in the UI through `editableSchemaMetadata`, aspects and entity types
//! the mapping does not use skipped, an undecodable record and a bad URN dead-lettered), a tag
//! added to a field re-classifies it, `status.removed`, a deleted aspect and an entity DELETE
//! remove what they produced, an older copy is ignored, and a restart with a mapping override
//! resumes from the committed offsets with the remembered aspects (nothing lost or read twice).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dh;

use dastra_connect_test_harness as common;

use std::time::Duration;

use common::*;
use dastra_connect_core::codec::RegistryConfig;
use dastra_connect_core::codec::registry::stub::StubRegistry;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{ChangeEvent, EntityKind, Op, Payload};
use dastra_connect_datahub::{DataHubConfig, DataHubSource};
use dh::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const PII: &str = "urn:li:tag:PII";
const SENSITIVE: &str = "urn:li:tag:Sensitive";
const HEALTH: &str = "urn:li:glossaryTerm:Classification.Health";

fn config(registry: &url::Url, params: Value) -> DataHubConfig {
    let mut c: DataHubConfig =
        serde_json::from_value(json!({"consumer": {"linger": "50ms", "batch_size": 100}, "params": params})).unwrap();
    c.registry = Some(RegistryConfig::new(registry.clone()));
    c.validate("test").unwrap();
    c
}

fn field_key(table: &str, path: &str) -> String {
    format!("datahub:datafield:urn:li:schemaField:({},{path})", dataset(table))
}

/// The DataField of `key` in its newest event, unless deleted.
fn datafield<'a>(
    l: &'a std::collections::BTreeMap<String, ChangeEvent>,
    key: &str,
) -> Option<&'a dastra_connect_core::event::DataField> {
    match &l.get(key)?.data {
        Payload::DataField(f) if !f.deleted => Some(f),
        _ => None,
    }
}

fn dataset_fields(l: &std::collections::BTreeMap<String, ChangeEvent>, table: &str) -> Option<Vec<String>> {
    match &l.get(&format!("datahub:dataset:{}", dataset(table)))?.data {
        Payload::Dataset(d) if !d.deleted => Some(d.data_fields.iter().map(|k| k.as_str().to_owned()).collect()),
        _ => None,
    }
}

fn dataset_description(l: &std::collections::BTreeMap<String, ChangeEvent>, table: &str) -> Option<String> {
    match &l.get(&format!("datahub:dataset:{}", dataset(table)))?.data {
        Payload::Dataset(d) if !d.deleted => d.description.clone(),
        _ => None,
    }
}

fn deleted(l: &std::collections::BTreeMap<String, ChangeEvent>, key: &str) -> bool {
    l.get(key).is_some_and(|e| e.op == Op::Delete)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcl_avro_on_kafka() {
    scenario(Broker::kafka()).await;
}

/// The same records on NATS JetStream (on the bus stream as the reader's subjects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcl_avro_on_nats() {
    scenario(Broker::nats().await).await;
}

async fn scenario(broker: Broker) {
    let topics = Topics::default();
    let bus = bus_with_mcl(&broker, &topics).await;
    let stub = StubRegistry::new();
    let (registry, _server) = stub.spawn().await.unwrap();
    let customers = dataset("crm.public.customers");
    let orders = dataset("crm.public.orders");
    let customers_schema = |t: i64, email_tags: &[&str]| {
        upsert(
            &customers,
            "schemaMetadata",
            schema(
                "crm.public.customers",
                vec![
                    field("id", "NumberType", "int4", false, &[], &[]),
                    field("email", "StringType", "varchar(255)", false, email_tags, &[]),
                    field("phone", "StringType", "varchar(32)", true, &[], &[]),
                    field("diagnosis", "StringType", "text", true, &[], &[HEALTH]),
                ],
            ),
            t,
        )
    };
    let items = vec![
        // 0..=7: the first sync.
        postgres_platform(1),
        customers_schema(10, &[PII]),
        upsert(&customers, "editableSchemaMetadata", editable(&[("phone", Some("Mobile phone"), &[SENSITIVE])]), 11),
        upsert(
            &orders,
            "schemaMetadata",
            schema("crm.public.orders", vec![field("customer_email", "StringType", "varchar", true, &[PII], &[])]),
            12,
        ),
        upsert(
            &customers,
            "ownership",
            json!({"owners": [{"owner": "urn:li:corpuser:jdoe", "type": "DATAOWNER"}]}),
            13,
        ),
        mcl("corpuser", "urn:li:corpuser:jdoe", "UPSERT", Some("corpUserInfo"), Some(json!({"active": true})), 14),
        upsert(
            "urn:li:dataset:broken",
            "schemaMetadata",
            schema("broken", vec![field("email", "StringType", "varchar", true, &[PII], &[])]),
            15,
        ),
        // 7: incremental — a tag added to `email` in the UI.
        upsert(
            &customers,
            "editableSchemaMetadata",
            editable(&[("phone", Some("Mobile phone"), &[SENSITIVE]), ("email", None, &[SENSITIVE])]),
            20,
        ),
        // 8..=10: deletes — orders soft-deleted, the edited aspect deleted, the platform deleted.
        upsert(&orders, "status", json!({"removed": true}), 30),
        mcl("dataset", &customers, "DELETE", Some("editableSchemaMetadata"), None, 31),
        mcl("dataPlatform", "urn:li:dataPlatform:postgres", "DELETE", Some("dataPlatformKey"), None, 32),
        // 11: an older copy of the schema (email untagged), read after the newer one.
        customers_schema(5, &[]),
        // 12: a newer change of the same dataset (same partition, so read after the older copy).
        upsert(
            &customers,
            "datasetProperties",
            json!({"name": "customers", "description": "Customer master data"}),
            33,
        ),
        // 13..=14: while stopped — orders restored, the customers schema ingested again.
        upsert(&orders, "status", json!({"removed": false}), 40),
        customers_schema(41, &[PII]),
    ];
    let url = registry.to_string();
    let encoded = tokio::task::spawn_blocking(move || encode(&items, &url)).await.unwrap();
    let reader = Reader::start(&bus, &topics).await;

    // 1. First sync.
    let mut first: Vec<_> = encoded[..7].to_vec();
    first.insert(4, (customers.as_bytes().to_vec(), Some(b"\x00\x00\x00\x00\x01\xff\xff\xff".to_vec())));
    produce(&bus, TOPIC, first).await;
    let source = RunningSource::start(&bus, &topics, Box::new(DataHubSource::new(config(&registry, json!({})))));
    reader
        .wait_until("the first sync", WAIT, |r| {
            let l = r.latest();
            count(&l, EntityKind::DataField, Op::Upsert) == 3
                && count(&l, EntityKind::Dataset, Op::Upsert) == 2
                && count(&l, EntityKind::Asset, Op::Upsert) == 3
                && r.dlq().len() == 2
        })
        .await;
    let l = reader.latest();
    let email = datafield(&l, &field_key("crm.public.customers", "email")).unwrap();
    assert_eq!(email.label.as_deref(), Some("email"));
    assert_eq!(email.personal_data_category.map(|c| c.to_string()).as_deref(), Some("Other"));
    assert_eq!(email.sensitive_data, Some(false));
    assert_eq!(email.required, Some(true));
    assert_eq!(email.technical_definition.as_deref(), Some("crm.public.customers.email"));
    let phone = datafield(&l, &field_key("crm.public.customers", "phone")).unwrap();
    assert_eq!(
        (phone.sensitive_data, phone.definition.as_deref()),
        (Some(true), Some("Mobile phone")),
        "tag set in the UI"
    );
    assert!(
        datafield(&l, &field_key("crm.public.customers", "diagnosis")).is_none(),
        "the term is not mapped by default"
    );
    assert!(datafield(&l, &field_key("crm.public.customers", "id")).is_none(), "untagged fields are not DataFields");
    let mut in_customers = dataset_fields(&l, "crm.public.customers").unwrap();
    in_customers.sort();
    assert_eq!(in_customers, [field_key("crm.public.customers", "email"), field_key("crm.public.customers", "phone")]);
    let Payload::Asset(pg) = &l["datahub:asset:urn:li:dataPlatform:postgres"].data else { panic!() };
    assert_eq!(pg.label.as_deref(), Some("PostgreSQL"));
    let Payload::Asset(table) = &l[&format!("datahub:asset:{customers}")].data else { panic!() };
    assert_eq!(table.label.as_deref(), Some("postgres.crm.public.customers"), "each dataset is also an Asset");
    let mut reasons: Vec<String> = reader.dlq().iter().map(|d| d.header("dastra_dlq_reason").unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons, ["invalid_urn", "undecodable"]);
    let bad =
        reader.dlq().into_iter().find(|d| d.header("dastra_dlq_reason").as_deref() == Some("invalid_urn")).unwrap();
    assert!(bad.header("dastra_dlq_error").unwrap().contains("urn:li:dataset:broken"));
    assert_eq!(serde_json::from_slice::<Value>(&bad.value).unwrap()["aspectName"], "schemaMetadata");
    let customer_events = |r: &Reader| r.events().into_iter().filter(|e| e.key.as_str().contains("customers")).count();
    assert_eq!(
        customer_events(&reader),
        7,
        "schema: email, dataset, Asset; editable: email, phone, dataset, Asset; ownership: none"
    );

    // 2. Incremental: the tag added in the UI re-classifies `email`.
    produce(&bus, TOPIC, vec![encoded[7].clone()]).await;
    let email_key = field_key("crm.public.customers", "email");
    reader
        .wait_until("the re-classified field", WAIT, |r| {
            datafield(&r.latest(), &email_key).is_some_and(|f| f.sensitive_data == Some(true))
        })
        .await;

    // 3. Deletes, then the older copy of the schema.
    produce(&bus, TOPIC, encoded[8..13].to_vec()).await;
    let phone_key = field_key("crm.public.customers", "phone");
    reader
        .wait_until("the deletes", WAIT, |r| {
            let l = r.latest();
            deleted(&l, &field_key("crm.public.orders", "customer_email"))
                && deleted(&l, &format!("datahub:dataset:{orders}"))
                && deleted(&l, &format!("datahub:asset:{orders}"))
                && deleted(&l, &phone_key)
                && deleted(&l, "datahub:asset:urn:li:dataPlatform:postgres")
                && datafield(&l, &email_key).is_some_and(|f| f.sensitive_data == Some(false))
                && dataset_description(&l, "crm.public.customers").as_deref() == Some("Customer master data")
        })
        .await;
    let l = reader.latest();
    assert_eq!(dataset_fields(&l, "crm.public.customers").unwrap(), [email_key.as_str()], "phone left its dataset");
    // The older copy (email untagged), read before the description change, deleted nothing.
    assert!(datafield(&l, &email_key).is_some());
    assert!(!reader.events().iter().any(|e| e.key.as_str() == email_key && e.op == Op::Delete));
    source.stop().await;

    // 4. Restart with a mapping override (the Health term → HealthData): only the records written
    // while stopped are read; orders come back from the remembered schema.
    produce(&bus, TOPIC, encoded[13..].to_vec()).await;
    let health =
        json!({"tag_map": {"Classification.Health": {"personalDataCategory": "HealthData", "sensitiveData": true}}});
    let source = RunningSource::start(&bus, &topics, Box::new(DataHubSource::new(config(&registry, health))));
    let diagnosis = field_key("crm.public.customers", "diagnosis");
    reader
        .wait_until("the records written while stopped", WAIT, |r| {
            let l = r.latest();
            datafield(&l, &field_key("crm.public.orders", "customer_email")).is_some()
                && datafield(&l, &diagnosis).is_some()
        })
        .await;
    let l = reader.latest();
    let diag = datafield(&l, &diagnosis).unwrap();
    assert_eq!(diag.personal_data_category.map(|c| c.to_string()).as_deref(), Some("HealthData"));
    assert_eq!(diag.sensitive_data, Some(true));
    assert_eq!(
        source.metric("dastra_connect_records_polled_total"),
        Some(2.0),
        "only the two records written while stopped are read after the restart"
    );
    source.stop().await;
    assert_eq!(reader.dlq().len(), 2);
    assert_eq!(stub.schema_count(), 1, "one MCL value schema, registered by the Python serializer");
}

/// Lineage on the MockCluster: a data job becomes one DataProcessing linked to the Assets of the
/// datasets it reads and writes and to the Dastra dataset of the classified one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_on_kafka() {
    lineage(Broker::kafka()).await;
}

/// The same on NATS JetStream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_on_nats() {
    lineage(Broker::nats().await).await;
}

/// The DataProcessing of `key` in its newest event, unless deleted.
fn processing<'a>(
    l: &'a std::collections::BTreeMap<String, ChangeEvent>,
    key: &str,
) -> Option<&'a dastra_connect_core::event::DataProcessing> {
    match &l.get(key)?.data {
        Payload::DataProcessing(p) if !p.deleted => Some(p),
        _ => None,
    }
}

fn keys(list: &[dastra_connect_core::event::EntityKey]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|k| k.as_str().to_owned()).collect();
    v.sort();
    v
}

async fn lineage(broker: Broker) {
    let topics = Topics::default();
    let bus = bus_with_mcl(&broker, &topics).await;
    let stub = StubRegistry::new();
    let (registry, _server) = stub.spawn().await.unwrap();
    let customers = dataset("crm.public.customers");
    let orders = dataset("crm.public.orders");
    let visits = dataset("clinic.public.visits");
    let export = job("export_customers");
    let audit = job("audit");
    let items = vec![
        // 0..=5: the first sync — a classified table, an unclassified one, the job reading the
        // first and writing the second, a job with a URN that is not one.
        upsert(
            &customers,
            "schemaMetadata",
            schema("crm.public.customers", vec![field("email", "StringType", "varchar", false, &[PII], &[])]),
            1,
        ),
        upsert(&orders, "datasetProperties", json!({"name": "orders", "description": "Orders"}), 2),
        job_upsert(&export, "dataJobInfo", job_info("export_customers", "Nightly export"), 3),
        job_upsert(&export, "dataJobInputOutput", job_io(&[&customers], &[&orders]), 4),
        job_upsert("urn:li:dataJob:export", "dataJobInfo", job_info("export", "No flow"), 5),
        mcl(
            "dataFlow",
            "urn:li:dataFlow:(airflow,crm_nightly,prod)",
            "UPSERT",
            Some("dataFlowInfo"),
            Some(json!({"name": "crm_nightly"})),
            6,
        ),
        // 6: incremental — an input added (visits, not read by this source), the output removed.
        job_upsert(&export, "dataJobInputOutput", job_io(&[&customers, &visits], &[]), 10),
        // 7..=10: deletes — the job soft-deleted, restored; another job created and hard-deleted.
        job_upsert(&export, "status", json!({"removed": true}), 20),
        job_upsert(&export, "status", json!({"removed": false}), 21),
        job_upsert(&audit, "dataJobInfo", job_info("audit", "Audit"), 22),
        mcl("dataJob", &audit, "DELETE", Some("dataJobKey"), None, 23),
        // 11: while stopped — a description edited in the UI.
        job_upsert(&export, "editableDataJobProperties", json!({"description": "Export for the BI team"}), 30),
    ];
    let url = registry.to_string();
    let encoded = tokio::task::spawn_blocking(move || encode(&items, &url)).await.unwrap();
    let reader = Reader::start(&bus, &topics).await;
    let asset = |urn: &str| format!("datahub:asset:{urn}");
    let export_key = format!("datahub:processing:{export}");
    let audit_key = format!("datahub:processing:{audit}");

    // 1. First sync, the job read before the tables it reads and writes (records of different
    // URNs are in different partitions: any order can happen): its processing links the tables'
    // Assets at once, and the classified table's dataset once that table is read.
    produce(&bus, TOPIC, encoded[2..6].to_vec()).await;
    let source = RunningSource::start(&bus, &topics, Box::new(DataHubSource::new(config(&registry, json!({})))));
    reader
        .wait_until("the job's processing", WAIT, |r| {
            processing(&r.latest(), &export_key).is_some_and(|p| p.assets.len() == 2) && r.dlq().len() == 1
        })
        .await;
    assert!(processing(&reader.latest(), &export_key).unwrap().datasets.is_empty(), "no table read yet");
    produce(&bus, TOPIC, encoded[..2].to_vec()).await;
    reader
        .wait_until("the job re-linked to the classified table", WAIT, |r| {
            processing(&r.latest(), &export_key).is_some_and(|p| p.datasets.len() == 1)
        })
        .await;
    let l = reader.latest();
    let p = processing(&l, &export_key).unwrap();
    assert_eq!(p.label.as_deref(), Some("export_customers"));
    assert_eq!(p.description.as_deref(), Some("Nightly export"));
    assert_eq!(keys(&p.assets), [asset(&customers), asset(&orders)]);
    assert_eq!(keys(&p.datasets), [format!("datahub:dataset:{customers}")], "only the classified table");
    for urn in [&customers, &orders] {
        let Payload::Asset(a) = &l[&asset(urn)].data else { panic!("{urn} is no Asset") };
        assert_eq!(a.asset_type.map(|t| t.to_string()).as_deref(), Some("Data"));
    }
    assert_eq!(count(&l, EntityKind::DataProcessing, Op::Upsert), 1, "one processing per job, none per flow");
    let dlq = reader.dlq();
    assert_eq!(dlq[0].header("dastra_dlq_reason").as_deref(), Some("invalid_urn"));
    assert!(dlq[0].header("dastra_dlq_error").unwrap().contains("urn:li:dataJob:export"));

    // 2. Incremental: an input added, the output removed.
    produce(&bus, TOPIC, vec![encoded[6].clone()]).await;
    reader
        .wait_until("the new lineage", WAIT, |r| {
            processing(&r.latest(), &export_key).is_some_and(|p| keys(&p.assets) == [asset(&visits), asset(&customers)])
        })
        .await;
    let l = reader.latest();
    assert_eq!(keys(&processing(&l, &export_key).unwrap().datasets), [format!("datahub:dataset:{customers}")]);

    // 3. Soft delete, restore; a job created then hard-deleted.
    produce(&bus, TOPIC, encoded[7..8].to_vec()).await;
    reader.wait_until("the soft delete", WAIT, |r| deleted(&r.latest(), &export_key)).await;
    produce(&bus, TOPIC, encoded[8..11].to_vec()).await;
    reader
        .wait_until("the restore and the hard delete", WAIT, |r| {
            let l = r.latest();
            processing(&l, &export_key).is_some() && deleted(&l, &audit_key)
        })
        .await;
    assert_eq!(keys(&processing(&reader.latest(), &export_key).unwrap().assets).len(), 2, "restored with its lineage");
    source.stop().await;

    // 4. Restart: only the record written while stopped is read; the lineage is remembered.
    produce(&bus, TOPIC, encoded[11..].to_vec()).await;
    let source = RunningSource::start(&bus, &topics, Box::new(DataHubSource::new(config(&registry, json!({})))));
    reader
        .wait_until("the edited description", WAIT, |r| {
            processing(&r.latest(), &export_key)
                .is_some_and(|p| p.description.as_deref() == Some("Export for the BI team"))
        })
        .await;
    let l = reader.latest();
    let p = processing(&l, &export_key).unwrap();
    assert_eq!(keys(&p.assets), [asset(&visits), asset(&customers)]);
    assert_eq!(keys(&p.datasets), [format!("datahub:dataset:{customers}")]);
    assert_eq!(source.metric("dastra_connect_records_polled_total"), Some(1.0));
    source.stop().await;
    assert_eq!(reader.dlq().len(), 1);
}
