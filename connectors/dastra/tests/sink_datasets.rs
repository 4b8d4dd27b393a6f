//! Datasets (Dastra `DataRetentionRules`) through the real sink into the emulator, on NATS and on
//! Kafka (MockCluster): a dataset published before its DataFields waits for them and then links
//! them by Dastra id; a processing naming the dataset links it (`dataRetentionRules`); a field
//! taken out of the dataset is unlinked; a deleted dataset is deleted; a replay costs nothing; an
//! ambiguous create of a dataset (stored, answer lost) is found by its label, never made twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::*;
use dastra_connect_core::event::{DataField, DataProcessing, Dataset, EntityKey, EntityKind, Payload};
use dastra_emulator::RunningEmulator;
use serde_json::{Value, json};

fn key(k: &str) -> EntityKey {
    EntityKey::parse(k).unwrap()
}

fn field(label: &str, category: PersonalDataCategory) -> Payload {
    Payload::DataField(DataField {
        label: Some(label.into()),
        technical_definition: Some(format!("crm.public.customers.{}", label.to_lowercase())),
        personal_data_category: Some(category),
        ..Default::default()
    })
}

fn dataset(label: &str, fields: &[&str]) -> Payload {
    Payload::Dataset(Dataset {
        label: Some(label.into()),
        description: Some(format!("{label} table")),
        data_set_source: Some(DataSetSource::Direct),
        source_description: Some("sign-up form".into()),
        data_fields: fields.iter().map(|f| key(f)).collect(),
        ..Default::default()
    })
}

fn sync_job() -> Payload {
    Payload::DataProcessing(DataProcessing {
        label: Some("CRM nightly export".into()),
        processing_type: Some(ProcessingType::Default),
        datasets: vec![key("om:dataset:customers")],
        ..Default::default()
    })
}

/// The one entity of `family` whose `field` is `value`.
fn one(emu: &RunningEmulator, family: &str, field: &str, value: &str) -> Value {
    let all = emu.state.entities(1, family);
    let found: Vec<&Value> = all.iter().filter(|v| v[field] == value).collect();
    assert_eq!(found.len(), 1, "exactly one {family} with {field} = {value}: {all:#?}");
    found[0].clone()
}

/// `{id, label}` of each entry of a list, as the sink writes them.
fn refs(list: &Value) -> Vec<(Value, Value)> {
    list.as_array().unwrap().iter().map(|v| (v["id"].clone(), v["label"].clone())).collect()
}

async fn scenario(broker: Broker, ambiguous_create: bool) {
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();
    let mut config = sink_config(&emu);
    if ambiguous_create {
        // The client gives up on an answer after 400 ms; the first dataset create's never comes.
        config.dastra.request_timeout = Duration::from_millis(400);
        let kind = dastra_emulator::FaultKind::TimeoutAfterWrite { hang_ms: 800 };
        let rule = dastra_emulator::FaultRule::always(kind).method("POST").route("DataRetentionRules$").count(1);
        emu.state.add_fault(rule).unwrap();
    }
    let sink = RunningSink::start("sink", &bus, &topics, config);
    let wait = Duration::from_secs(50);

    // Phase 1: the dataset and the processing before the fields they reference.
    let phase1 = vec![
        event("om:dataset:customers", 1, dataset("crm.customers", &["om:datafield:email", "om:datafield:phone"])),
        event("om:processing:export", 1, sync_job()),
        event("om:dataset:legacy", 1, dataset("crm.legacy", &["om:datafield:email"])),
        event("om:datafield:email", 1, field("Email", PersonalDataCategory::CivilStatus)),
        event("om:datafield:phone", 1, field("Phone", PersonalDataCategory::PersonalLife)),
    ];
    let mut published = phase1.len() as u64;
    publish(publisher.as_ref(), &topics, &phase1).await;
    sink.wait_consumed("sink", published, wait).await;

    let email = one(&emu, "DataFields", "label", "Email")["id"].clone();
    let phone = one(&emu, "DataFields", "label", "Phone")["id"].clone();
    let customers = one(&emu, "DataRetentionRules", "label", "crm.customers");
    assert_eq!(
        refs(&customers["dataFields"]),
        vec![(email.clone(), json!("Email")), (phone.clone(), json!("Phone"))],
        "the dataset waited for its fields, then linked them: {customers}"
    );
    assert_eq!(customers["dataSetSource"], "Direct");
    assert_eq!(customers["sourceDescription"], "sign-up form");
    assert_eq!(customers["description"], "crm.customers table");
    let processing = one(&emu, "DataProcessings", "label", "CRM nightly export");
    assert_eq!(
        refs(&processing["dataRetentionRules"]),
        vec![(customers["id"].clone(), json!("crm.customers"))],
        "the processing links its dataset: {processing}"
    );
    assert_eq!(emu.state.entities(1, "DataRetentionRules").len(), 2, "each dataset created once");
    let after_phase1 = requests(&emu);

    // Phase 2: Phone leaves the dataset, the legacy dataset is deleted at the source.
    let phase2 = vec![
        event("om:dataset:customers", 2, dataset("crm.customers", &["om:datafield:email"])),
        event("om:dataset:legacy", 2, Payload::tombstone(EntityKind::Dataset, false)),
    ];
    published += phase2.len() as u64;
    publish(publisher.as_ref(), &topics, &phase2).await;
    sink.wait_consumed("sink", published, wait).await;
    let customers = one(&emu, "DataRetentionRules", "label", "crm.customers");
    assert_eq!(refs(&customers["dataFields"]), vec![(email.clone(), json!("Email"))], "Phone unlinked");
    assert!(
        emu.state.entities(1, "DataRetentionRules").iter().all(|d| d["label"] != "crm.legacy"),
        "the deleted dataset is gone"
    );
    assert_eq!(emu.state.entities(1, "DataFields").len(), 2, "unlinking a field does not delete it");
    assert_eq!(requests(&emu) - after_phase1, 2, "one PATCH of the field list, one DELETE");
    let total = requests(&emu);

    // The whole stream again: every event is stale, nothing is sent.
    let mut all = phase1.clone();
    all.extend(phase2);
    published += all.len() as u64;
    publish(publisher.as_ref(), &topics, &all).await;
    sink.wait_consumed("sink", published, wait).await;
    assert_eq!(requests(&emu), total, "a replay costs no request");
    if ambiguous_create {
        let faults = emu.state.faults();
        assert!(faults.iter().all(|(_, hits)| *hits == 1), "the ambiguous create happened: {faults:?}");
    }
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_on_nats() {
    scenario(Broker::nats().await, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasets_on_kafka() {
    scenario(Broker::kafka(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_dataset_create_on_nats() {
    scenario(Broker::nats().await, true).await;
}
