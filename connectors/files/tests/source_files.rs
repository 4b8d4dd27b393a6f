//! The files source over a temporary directory holding the bundled sample exports (CSV with `;`
//! and with `,`, a JSON array, NDJSON), on both buses: the first full sync with a malformed CSV row
//! and a broken NDJSON line dead-lettered, a replaced jq mapping; a new file appearing; a file
//! rewritten in place (only the changed row republished); a restart from the checkpoint with a new
//! full export that drops a row (deleted by the sweep) and a repaired line; and end to end through
//! the Dastra sink into the emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dastra_connect_test_harness as common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{ChangeEvent, EntityKind, Op, Payload};
use dastra_connect_files::{FilesConfig, FilesSource};

/// Writes a file atomically (a `.tmp` the scanner ignores, then a rename).
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The bundled samples written into a temp dir, and the sample config reading them there (fast
/// polling, no settle time: the tests write files atomically).
fn setup() -> (tempfile::TempDir, FilesConfig) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = dastra_connect_files::samples::write_samples(dir.path()).unwrap();
    cfg.sync =
        serde_yaml::from_str("{poll_interval: 300ms, look_back: 60s, page_size: 3, sweep_interval: 1h}").unwrap();
    cfg.min_age = Duration::ZERO;
    cfg.validate("test").unwrap();
    (dir, cfg)
}

fn path(dir: &tempfile::TempDir, rel: &str) -> PathBuf {
    dir.path().join(rel)
}

fn events_for(reader: &Reader, key: &str) -> usize {
    reader.events().iter().filter(|e| e.key.as_str() == key).count()
}

fn data<'a>(l: &'a BTreeMap<String, ChangeEvent>, key: &str) -> &'a Payload {
    &l.get(key).unwrap_or_else(|| panic!("{key} missing: {:?}", l.keys().collect::<Vec<_>>())).data
}

async fn scenario(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let (dir, cfg) = setup();
    let reader = Reader::start(&bus, &topics).await;
    let source = RunningSource::start(&bus, &topics, Box::new(FilesSource::new(cfg.clone())));

    // 1. First full sync: 4 vendors (V004's row lacks a field), 4 applications, 4 contracts (CT-004's
    // line is cut off), 4 servers.
    reader
        .wait_until("the first full sync", Duration::from_secs(30), |r| {
            let l = r.latest();
            count(&l, EntityKind::Actor, Op::Upsert) == 4
                && count(&l, EntityKind::Asset, Op::Upsert) == 8
                && count(&l, EntityKind::Contract, Op::Upsert) == 4
                && r.dlq().len() >= 2
        })
        .await;
    let l = reader.latest();
    let Payload::Actor(sf) = data(&l, "files:actor:V002") else { panic!() };
    assert_eq!(sf.company_name.as_deref(), Some("Salesforce.com France; SAS"), "a quoted `;` inside a `;` CSV");
    assert_eq!(sf.vendor_type.map(|v| v.to_string()).as_deref(), Some("B2B"));
    let Payload::Actor(ovh) = data(&l, "files:actor:V001") else { panic!() };
    assert_eq!(ovh.tags, vec!["hosting".to_owned(), "infrastructure".to_owned()]);
    assert_eq!(ovh.dpa_signature_date.unwrap().to_rfc3339(), "2023-02-14T00:00:00+00:00");
    assert_eq!((ovh.city.as_deref(), ovh.zip_code.as_deref()), (Some("Roubaix"), Some("59100")));
    let Payload::Asset(crm) = data(&l, "files:asset:crm") else { panic!() };
    assert_eq!(crm.description.as_deref(), Some("Sales pipeline and customer accounts"), "nested JSON path");
    assert_eq!(crm.custom_fields.get("owner").map(String::as_str), Some("sales-ops"));
    assert_eq!(crm.tags, vec!["customer-data".to_owned(), "saas".to_owned()]);
    let Payload::Contract(ct1) = data(&l, "files:contract:CT-001") else { panic!() };
    assert_eq!(ct1.supplier.as_ref().map(|k| k.as_str()), Some("files:actor:V001"));
    assert_eq!(
        ct1.assets.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        vec!["files:asset:payroll", "files:asset:dwh"]
    );
    let Payload::Asset(db) = data(&l, "files:asset:par-db-01") else { panic!() };
    assert_eq!(db.description.as_deref(), Some("database server at Paris DC1 (RHEL 9)"), "replaced jq mapping");
    let dlq = reader.dlq();
    let keys: Vec<&str> = dlq.iter().map(|d| d.key.as_str()).collect();
    assert!(keys.contains(&"files:vendors:V004") && keys.contains(&"files:contracts:CT-004"), "{keys:?}");
    let v4 = dlq.iter().find(|d| d.key == "files:vendors:V004").unwrap();
    assert_eq!(v4.header("dastra_dlq_reason").as_deref(), Some("mapping_error"));
    assert!(
        v4.header("dastra_dlq_error").unwrap().contains("line 5: 8 fields where the header has 9"),
        "{:?}",
        v4.header("dastra_dlq_error")
    );

    // 2. A new monthly export appears (a new vendor, V001 moved); the applications file is rewritten
    // with one application changed.
    write(
        &path(&dir, "vendors/vendors-2025-06.csv"),
        "Vendor ID;Name;Country;City;Postcode;DPO email;Website;Categories;DPA signed\n\
         V001;OVH SAS;FR;Lille;59000;dpo@ovhcloud.com;https://www.ovhcloud.com;hosting;2023-02-14\n\
         V006;Qonto SA;FR;Paris;75010;dpo@qonto.com;https://qonto.com;banking;2025-06-01\n",
    );
    let apps = std::fs::read_to_string(path(&dir, "applications.json")).unwrap();
    write(
        &path(&dir, "applications.json"),
        &apps.replace(
            r#""name": "Data warehouse", "category": "Data", "status": "InDevelopment""#,
            r#""name": "Data warehouse", "category": "Data", "status": "InProduction""#,
        ),
    );
    reader
        .wait_until("the new file and the rewritten one", Duration::from_secs(30), |r| {
            let l = r.latest();
            matches!(l.get("files:actor:V006").map(|e| &e.data), Some(Payload::Actor(a)) if a.company_name.as_deref() == Some("Qonto SA"))
                && matches!(&l["files:actor:V001"].data, Payload::Actor(a) if a.city.as_deref() == Some("Lille"))
                && matches!(&l["files:asset:dwh"].data, Payload::Asset(a) if a.application_state.map(|s| s.to_string()).as_deref() == Some("InProduction"))
        })
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(events_for(&reader, "files:asset:crm"), 1, "an unchanged row of a rewritten file is not republished");
    assert_eq!(events_for(&reader, "files:actor:V002"), 1);

    // 3. Restart: meanwhile a new full server export drops lyo-web-02 and upgrades par-db-01, and the
    // contracts file is repaired. The sweep (1 s schedule) deletes the dropped server.
    source.stop().await;
    write(
        &path(&dir, "servers/servers-2025-06-01.csv"),
        "hostname,role,site,environment,os\npar-app-01,application server,Paris DC1,production,Ubuntu 22.04\n\
         par-db-01,database server,Paris DC1,production,RHEL 9.4\nlyo-web-01,web server,Lyon DC2,production,Ubuntu 22.04\n",
    );
    let contracts = std::fs::read_to_string(path(&dir, "contracts.ndjson")).unwrap();
    write(
        &path(&dir, "contracts.ndjson"),
        &contracts.replace("\"end\": \n", "\"end\": \"2026-01-14\", \"apps\": \"\"}\n"),
    );
    let mut cfg2 = cfg.clone();
    cfg2.sync.sweep_interval = Some(Duration::from_secs(1));
    let source = RunningSource::start(&bus, &topics, Box::new(FilesSource::new(cfg2)));
    reader
        .wait_until("the changes made while down and the sweep delete", Duration::from_secs(30), |r| {
            let l = r.latest();
            l.get("files:asset:lyo-web-02").is_some_and(|e| e.op == Op::Delete)
                && matches!(&l["files:asset:par-db-01"].data, Payload::Asset(a) if a.description.as_deref().is_some_and(|d| d.contains("RHEL 9.4")))
                && l.get("files:contract:CT-004").is_some_and(|e| e.op == Op::Upsert)
        })
        .await;
    source.stop().await;
    let l = reader.latest();
    assert!(l["files:asset:lyo-web-02"].data.is_snapshot(), "found by the sweep");
    assert_eq!(count(&l, EntityKind::Actor, Op::Upsert), 5);
    assert_eq!(count(&l, EntityKind::Contract, Op::Upsert), 5);
    assert_eq!(count(&l, EntityKind::Asset, Op::Upsert), 7);
    assert_eq!(count(&l, EntityKind::Asset, Op::Delete), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_source_on_nats() {
    scenario(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_source_on_kafka() {
    scenario(Broker::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_directory_deletes_nothing() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let (dir, mut cfg) = setup();
    cfg.exports.retain(|e| e.name == "applications");
    cfg.sync.sweep_interval = Some(Duration::from_secs(1));
    let reader = Reader::start(&bus, &topics).await;
    let source = RunningSource::start(&bus, &topics, Box::new(FilesSource::new(cfg)));
    reader
        .wait_until("the applications", Duration::from_secs(30), |r| {
            count(&r.latest(), EntityKind::Asset, Op::Upsert) == 4
        })
        .await;
    std::fs::remove_file(path(&dir, "applications.json")).unwrap();
    // Several polls and due sweeps pass over the missing file: an error each time, no deletes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let errors = source.metric("dastra_connect_poll_errors_total{code=\"source_transport\",connector=\"source-test\"}");
    assert!(errors.is_some_and(|n| n >= 2.0), "the missing file fails each poll: {}", source.metrics.render());
    assert_eq!(count(&reader.latest(), EntityKind::Asset, Op::Delete), 0);
    source.stop().await;
}

async fn end_to_end(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let (_dir, cfg) = setup();
    let emu = emulator().await;
    let source = RunningSource::start(&bus, &topics, Box::new(FilesSource::new(cfg)));
    let sink = RunningSink::start(&bus, &topics, sink_config(&emu));
    wait_emulator(&emu, "vendors, assets and the contracts whose supplier exists", Duration::from_secs(50), |e| {
        labels(e, "Actors", "companyName").len() == 4
            && labels(e, "Assets", "label").len() == 8
            && labels(e, "Contracts", "label").len() == 3
    })
    .await;
    // CT-005's supplier V004 was dead-lettered (its CSV row lacks a field): the sink keeps that
    // contract pending until the Actor exists, so it is not in Dastra.
    assert!(!labels(&emu, "Contracts", "label").contains(&"Office supplies 2025".to_owned()));
    let actors = emu.state.entities(1, "Actors");
    let ovh = actors.iter().find(|a| a["companyName"] == "OVH SAS").unwrap();
    assert_eq!(ovh["vendorType"], "B2B");
    assert!(ovh["dpaSignatureDate"].as_str().is_some_and(|d| d.starts_with("2023-02-14")), "{ovh}");
    let assets = emu.state.entities(1, "Assets");
    let id_of = |label: &str| assets.iter().find(|a| a["label"] == label).unwrap()["id"].clone();
    let contracts = emu.state.entities(1, "Contracts");
    let ct1 = contracts.iter().find(|c| c["label"] == "OVHcloud hosting agreement").unwrap();
    assert_eq!(ct1["ref"], "files:contract:CT-001");
    assert_eq!(ct1["signatories"], serde_json::json!([ovh["id"]]), "contract → supplier Actor: {ct1}");
    let linked: Vec<_> = ct1["assets"].as_array().unwrap().clone();
    assert_eq!(ct1["dateStart"], "2023-03-01T00:00:00.000Z");
    assert_eq!(linked, vec![id_of("Payroll"), id_of("Data warehouse")], "contract → Assets: {ct1}");
    sink.stop().await;
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_to_dastra_on_nats() {
    end_to_end(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_to_dastra_on_kafka() {
    end_to_end(Broker::kafka()).await;
}
