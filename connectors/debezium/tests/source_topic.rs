//! `type: topic` on NATS and the Kafka MockCluster: a company's own JSON stream of vendor records
//! (no Debezium envelope) read with `key`, `version` and `delete` jq programs: first sync, an
//! update, a record without a version dead-lettered, a delete reported by a status field, an older
//! copy published with its older version, and a restart that resumes from the committed offsets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cdc;

use dastra_connect_test_harness as common;

use std::time::Duration;

use cdc::*;
use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{Op, is_newer};
use dastra_connect_debezium::{ReaderConfig, ReaderKind, TopicSource};
use serde_json::{Value, json};

const TOPIC: &str = "crm.vendors";
const WAIT: Duration = Duration::from_secs(60);

/// A vendor record: the message key is not used, `key` reads `.vendor.code`.
fn vendor(code: &str, name: &str, rev: Value, status: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    let v = json!({"vendor": {"code": code, "name": name}, "rev": rev, "status": status, "country": "FR"});
    (b"ignored".to_vec(), Some(serde_json::to_vec(&v).unwrap()))
}

async fn scenario(broker: Broker) {
    let topics = Topics::default();
    let bus = bus_with_inputs(&broker, &topics, &[TOPIC]).await;
    let cfg: ReaderConfig = serde_json::from_value(json!({
        "key_system": "crm",
        "consumer": {"linger": "50ms"},
        "topics": [{
            "topic": TOPIC,
            "key": ".vendor.code",
            "version": ".rev",
            "delete": ".status == \"removed\"",
            "mapping": "{kind: \"actor\", id: .vendor.code, data: {companyName: .vendor.name, countryCode: .country}}"
        }]
    }))
    .unwrap();
    cfg.validate("test", ReaderKind::Topic).unwrap();
    let reader = Reader::start(&bus, &topics).await;
    produce(&bus, TOPIC, vec![vendor("V1", "Acme", json!(1), "active"), vendor("V2", "Globex", json!(1), "active")])
        .await;
    let source = RunningSource::start(&bus, &topics, Box::new(TopicSource::new(cfg.clone())));
    reader.wait_until("the first records", WAIT, |r| actor_name(&r.latest(), "crm", "V2").is_some()).await;

    let batch = vec![
        vendor("V1", "Acme Group", json!(2), "active"),
        vendor("V3", "No version", Value::Null, "active"),
        vendor("V2", "Globex", json!("3"), "removed"),
        vendor("V1", "Acme (old copy)", json!(1), "active"),
    ];
    produce(&bus, TOPIC, batch).await;
    reader
        .wait_until("the update, the delete and the DLQ record", WAIT, |r| {
            let l = r.latest();
            actor_name(&l, "crm", "V1").as_deref() == Some("Acme Group")
                && l.get("crm:actor:V2").is_some_and(|e| e.op == Op::Delete)
                && r.dlq().len() == 1
                && r.events().iter().filter(|e| e.key.as_str() == "crm:actor:V1").count() == 3
        })
        .await;
    let dlq = &reader.dlq()[0];
    assert_eq!(dlq.header("dastra_dlq_reason").as_deref(), Some("no_version"));
    let record: Value = serde_json::from_slice(&dlq.value).unwrap();
    assert_eq!(record["vendor"]["code"], "V3", "the decoded record is kept");
    assert!(dlq.header("dastra_dlq_source_record").unwrap().starts_with("crm.vendors@"), "where it was read");
    let v1: Vec<_> = reader.events().into_iter().filter(|e| e.key.as_str() == "crm:actor:V1").collect();
    assert!(is_newer(&v1[1].sequence, &v1[2].sequence), "the old copy keeps its older version");
    source.stop().await;

    produce(&bus, TOPIC, vec![vendor("V4", "Umbrella", json!(1), "active")]).await;
    let source = RunningSource::start(&bus, &topics, Box::new(TopicSource::new(cfg)));
    reader.wait_until("the record made while stopped", WAIT, |r| actor_name(&r.latest(), "crm", "V4").is_some()).await;
    source.stop().await;
    assert_eq!(reader.events().len(), 6, "V1 three times, V2 and its delete, V4: nothing read twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendors_stream_on_nats() {
    scenario(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendors_stream_on_kafka() {
    scenario(Broker::kafka()).await;
}
