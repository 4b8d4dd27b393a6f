//! The OpenMetadata source against the fake OpenMetadata REST API on both buses: a first full sync
//! paged through `paging.after` with a 429 waited out — PII-tagged columns become DataFields (an
//! overridden tag mapping gives a category), untagged columns nothing, each table with classified
//! columns a dataset, database services Assets, pipelines DataProcessings linked through their
//! lineage —, a classified column without a name dead-lettered; incremental changes from the change
//! events feed (a column tagged, a tag removed, a pipeline edited), a soft delete read from the
//! feed, a restore, a restart from the checkpoint that loses nothing; a refused JWT stops the
//! connector; and end to end through the Dastra sink into the emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dastra_connect_test_harness as common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{ChangeEvent, DataField, DataProcessing, Dataset, EntityKind, Op, Payload};
use dastra_connect_openmetadata::fake::{FakeOpenMetadata, RunningFake, TOKEN};
use dastra_connect_openmetadata::{OmEntity, OpenMetadataConfig, OpenMetadataSource};
use serde_json::json;

const CUSTOMERS: &str = "crm.prod.public.customers";

fn config(fake: &RunningFake) -> OpenMetadataConfig {
    let yaml = format!(
        r#"
url: {url}
token: {TOKEN}
entities:
  - entity: tables
    params: {{tag_map: {{PII.NonSensitive: {{personalDataCategory: CivilStatus}}}}}}
  - entity: database_services
  - entity: pipelines
sync: {{poll_interval: 300ms, look_back: 60s, page_size: 2, sweep_interval: 1h}}
http: {{initial_backoff: 50ms, max_backoff: 2s}}
"#,
        url = fake.base_url
    );
    let c: OpenMetadataConfig = serde_yaml::from_str(&yaml).unwrap();
    c.validate("test").unwrap();
    c
}

type Latest = BTreeMap<String, ChangeEvent>;

fn field<'a>(l: &'a Latest, fqn: &str) -> Option<&'a DataField> {
    match l.get(&format!("openmetadata:datafield:{fqn}")).map(|e| &e.data) {
        Some(Payload::DataField(f)) if !f.deleted => Some(f),
        _ => None,
    }
}

fn dataset<'a>(l: &'a Latest, fqn: &str) -> Option<&'a Dataset> {
    match l.get(&format!("openmetadata:dataset:{fqn}")).map(|e| &e.data) {
        Some(Payload::Dataset(d)) if !d.deleted => Some(d),
        _ => None,
    }
}

fn processing<'a>(l: &'a Latest, fqn: &str) -> Option<&'a DataProcessing> {
    match l.get(&format!("openmetadata:processing:{fqn}")).map(|e| &e.data) {
        Some(Payload::DataProcessing(p)) if !p.deleted => Some(p),
        _ => None,
    }
}

fn keys(d: &Dataset) -> Vec<&str> {
    d.data_fields.iter().map(|k| k.as_str()).collect()
}

fn deleted(l: &Latest, key: &str) -> bool {
    l.get(key).is_some_and(|e| e.op == Op::Delete)
}

async fn scenario(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeOpenMetadata::with_samples().spawn().await.unwrap();
    // A classified column without a name: the mapping rejects the table (DLQ).
    fake.state.insert(
        OmEntity::Tables,
        json!({"name": "raw_events", "fullyQualifiedName": "dwh.staging.raw.raw_events",
               "service": {"name": "dwh"}, "columns": [{"name": "", "dataType": "STRING", "tags": [{"tagFQN": "PII.Sensitive"}]}]}),
    );
    fake.state.throttle_next(1);
    let cfg = config(&fake);
    let reader = Reader::start(&bus, &topics).await;
    let source = RunningSource::start(&bus, &topics, Box::new(OpenMetadataSource::new(cfg.clone())));

    // 1. First full sync.
    reader
        .wait_until("the first full sync", Duration::from_secs(60), |r| {
            let l = r.latest();
            count(&l, EntityKind::DataField, Op::Upsert) == 5
                && count(&l, EntityKind::Dataset, Op::Upsert) == 3
                && count(&l, EntityKind::Asset, Op::Upsert) == 2
                && count(&l, EntityKind::DataProcessing, Op::Upsert) == 2
                && !r.dlq().is_empty()
        })
        .await;
    assert_eq!(fake.state.count_status(429), 1, "a throttled request, waited out");
    let log = fake.state.log();
    assert!(
        log.iter().any(|l| l.path == "/api/v1/tables" && l.params.contains_key("after")),
        "tables were paged through paging.after: {log:?}"
    );
    assert!(
        log.iter().all(|l| l.path != "/api/v1/tables" || l.params.get("fields").is_some_and(|f| f.contains("tags")))
    );
    let l = reader.latest();
    let email = field(&l, "crm.prod.public.customers.email").unwrap();
    assert_eq!(email.label.as_deref(), Some("email"));
    assert_eq!(email.definition.as_deref(), Some("E-mail address of the customer"));
    assert_eq!(email.technical_definition.as_deref(), Some("crm.prod.public.customers.email"));
    assert_eq!(email.personal_data_category.map(|c| c.to_string()).as_deref(), Some("CivilStatus"), "tag_map override");
    assert_eq!(email.sensitive_data, Some(false));
    assert_eq!(email.required, Some(true), "NOT_NULL");
    let notes = field(&l, "crm.prod.public.customers.health_notes").unwrap();
    assert_eq!(
        (notes.personal_data_category.map(|c| c.to_string()), notes.sensitive_data),
        (Some("Other".into()), Some(true))
    );
    assert_eq!(field(&l, "crm.prod.public.customers.full_name").unwrap().label.as_deref(), Some("Full name"));
    for untagged in ["id", "created_at"] {
        assert!(!l.contains_key(&format!("openmetadata:datafield:{CUSTOMERS}.{untagged}")), "untagged column ignored");
    }
    let customers = dataset(&l, CUSTOMERS).unwrap();
    assert_eq!(customers.label.as_deref(), Some(CUSTOMERS));
    assert_eq!(
        keys(customers),
        [
            "openmetadata:datafield:crm.prod.public.customers.email",
            "openmetadata:datafield:crm.prod.public.customers.full_name",
            "openmetadata:datafield:crm.prod.public.customers.health_notes"
        ]
    );
    assert!(!l.contains_key("openmetadata:dataset:crm.prod.public.products"), "no classified column, no dataset");
    let Some(Payload::Asset(crm)) = l.get("openmetadata:asset:crm").map(|e| &e.data) else { panic!("crm asset") };
    assert_eq!(crm.label.as_deref(), Some("CRM PostgreSQL"));
    let etl = processing(&l, "airflow.crm_to_dwh").unwrap();
    assert_eq!(etl.label.as_deref(), Some("CRM to warehouse"));
    let assets: Vec<&str> = etl.assets.iter().map(|k| k.as_str()).collect();
    assert_eq!(assets, ["openmetadata:asset:crm", "openmetadata:asset:dwh"]);
    let sets: Vec<&str> = etl.datasets.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        sets,
        [
            "openmetadata:dataset:crm.prod.public.customers",
            "openmetadata:dataset:crm.prod.public.orders",
            "openmetadata:dataset:dwh.analytics.marts.customer_360"
        ]
    );
    let export = processing(&l, "airflow.catalog_export").unwrap();
    assert!(export.datasets.is_empty(), "its only table has no classified column");
    let dlq = reader.dlq();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].header("dastra_dlq_reason").as_deref(), Some("mapping_error"));
    assert!(
        dlq[0]
            .header("dastra_dlq_error")
            .unwrap()
            .contains("classified column of dwh.staging.raw.raw_events has no name")
    );
    assert_eq!(dlq[0].header("dastra_dlq_source_stream").as_deref(), Some("tables"));

    // 2. Incremental, from the change events feed: a column tagged, a tag removed (its field and
    // the now empty dataset go), a pipeline edited, a table soft-deleted.
    assert!(fake.state.tag_column(CUSTOMERS, "created_at", &["PII.NonSensitive"]));
    assert!(fake.state.tag_column("crm.prod.public.orders", "shipping_address", &[]));
    assert!(fake.state.update(OmEntity::Pipelines, "airflow.crm_to_dwh", json!({"description": "Hourly copy"})));
    assert!(fake.state.soft_delete(OmEntity::Tables, "dwh.analytics.marts.customer_360"));
    reader
        .wait_until("the incremental changes", Duration::from_secs(30), |r| {
            let l = r.latest();
            dataset(&l, CUSTOMERS).is_some_and(|d| d.data_fields.len() == 4)
                && field(&l, "crm.prod.public.customers.created_at").is_some()
                && deleted(&l, "openmetadata:datafield:crm.prod.public.orders.shipping_address")
                && deleted(&l, "openmetadata:dataset:crm.prod.public.orders")
                && processing(&l, "airflow.crm_to_dwh").is_some_and(|p| p.description.as_deref() == Some("Hourly copy"))
                && deleted(&l, "openmetadata:datafield:dwh.analytics.marts.customer_360.customer_email")
                && deleted(&l, "openmetadata:dataset:dwh.analytics.marts.customer_360")
        })
        .await;
    let l = reader.latest();
    assert!(
        !l["openmetadata:dataset:dwh.analytics.marts.customer_360"].data.is_snapshot(),
        "from the feed, not a sweep"
    );
    assert!(
        fake.state.log().iter().any(|l| l.path == "/api/v1/events" && l.params.contains_key("entitySoftDeleted")),
        "deletes read from the events feed"
    );

    // 3. A restore brings the table back.
    assert!(fake.state.restore(OmEntity::Tables, "dwh.analytics.marts.customer_360"));
    reader
        .wait_until("the restore", Duration::from_secs(30), |r| {
            let l = r.latest();
            dataset(&l, "dwh.analytics.marts.customer_360").is_some()
                && field(&l, "dwh.analytics.marts.customer_360.customer_email").is_some()
        })
        .await;

    // 4. Restart: what changed while the source was down arrives, from the checkpoint.
    source.stop().await;
    let polled_before = fake.state.log().iter().filter(|l| l.path == "/api/v1/tables").count();
    assert!(fake.state.update(OmEntity::Tables, CUSTOMERS, json!({"description": "Customer accounts"})));
    fake.state.throttle_next(1);
    let source = RunningSource::start(&bus, &topics, Box::new(OpenMetadataSource::new(cfg)));
    reader
        .wait_until("the change made while down", Duration::from_secs(30), |r| {
            dataset(&r.latest(), CUSTOMERS).is_some_and(|d| d.description.as_deref() == Some("Customer accounts"))
        })
        .await;
    source.stop().await;
    let relisted = fake.state.log().iter().filter(|l| l.path == "/api/v1/tables").count() - polled_before;
    assert!(relisted <= 1, "a restart reads the feed from its checkpoint, not the whole list again ({relisted})");
    // Duplicates are harmless: one id always means the same key, sequence and op.
    let mut ids: BTreeMap<String, (String, String, Op)> = BTreeMap::new();
    for e in reader.events() {
        let v = (e.key.as_str().to_owned(), e.sequence.clone(), e.op);
        assert_eq!(ids.entry(e.id.clone()).or_insert_with(|| v.clone()), &v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetadata_source_on_nats() {
    scenario(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetadata_source_on_kafka() {
    scenario(Broker::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_stops_the_source() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeOpenMetadata::with_samples().spawn().await.unwrap();
    let mut cfg = config(&fake);
    cfg.token = dastra_connect_core::config::Secret::new("expired.jwt.token");
    let source = RunningSource::start(&bus, &topics, Box::new(OpenMetadataSource::new(cfg)));
    let err = tokio::time::timeout(Duration::from_secs(30), source.task).await.unwrap().unwrap().unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("refused the credentials (401)"), "{text}");
    assert!(!text.contains("expired.jwt.token"), "the token never reaches errors: {text}");
    assert_eq!(fake.state.count_status(401), 1, "a fatal error is not retried");
}

async fn end_to_end(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeOpenMetadata::with_samples().spawn().await.unwrap();
    let emu = emulator().await;
    let mut cfg = config(&fake);
    cfg.entities[0].params = serde_json::Map::new();
    let source = RunningSource::start(&bus, &topics, Box::new(OpenMetadataSource::new(cfg)));
    let sink = RunningSink::start(&bus, &topics, sink_config(&emu));
    wait_emulator(&emu, "the catalog in Dastra", Duration::from_secs(60), |e| {
        e.state.entities(1, "DataFields").len() == 5
            && e.state.entities(1, "DataRetentionRules").len() == 3
            && e.state.entities(1, "Assets").len() == 2
            && e.state.entities(1, "DataProcessings").iter().filter(|p| !p["dataRetentionRules"].is_null()).count() == 2
    })
    .await;
    let fields = emu.state.entities(1, "DataFields");
    let email: Vec<_> =
        fields.iter().filter(|f| f["technicalDefinition"] == "crm.prod.public.customers.email").collect();
    assert_eq!(email.len(), 1, "exactly one DataField per PII column: {fields:#?}");
    assert_eq!(
        (email[0]["personalDataCategory"].as_str(), email[0]["sensitiveData"].as_bool()),
        (Some("Other"), Some(false))
    );
    let notes = fields.iter().find(|f| f["label"] == "health_notes").unwrap();
    assert_eq!(notes["sensitiveData"], true);
    assert!(fields.iter().all(|f| f["label"] != "id" && f["label"] != "created_at"), "untagged columns ignored");
    let sets = emu.state.entities(1, "DataRetentionRules");
    let customers = sets.iter().find(|d| d["label"] == CUSTOMERS).unwrap();
    let field_ids: Vec<_> = customers["dataFields"].as_array().unwrap().iter().map(|f| f["id"].clone()).collect();
    assert_eq!(field_ids.len(), 3);
    assert!(field_ids.contains(&email[0]["id"]), "the e-mail field is in its table's dataset");
    let dps = emu.state.entities(1, "DataProcessings");
    let etl = dps.iter().find(|p| p["label"] == "CRM to warehouse").unwrap();
    let linked: Vec<_> = etl["dataRetentionRules"].as_array().unwrap().iter().map(|d| d["label"].clone()).collect();
    assert_eq!(
        linked,
        [json!(CUSTOMERS), json!("crm.prod.public.orders"), json!("dwh.analytics.marts.customer_360")],
        "{etl}"
    );
    let asset_labels: Vec<_> = etl["assets"].as_array().unwrap().iter().map(|a| a["label"].clone()).collect();
    assert_eq!(asset_labels, [json!("CRM PostgreSQL"), json!("Data warehouse")]);
    assert_eq!(customers["id"], etl["dataRetentionRules"][0]["id"], "linked by Dastra id");
    sink.stop().await;
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetadata_to_dastra_on_nats() {
    end_to_end(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetadata_to_dastra_on_kafka() {
    end_to_end(Broker::kafka()).await;
}
