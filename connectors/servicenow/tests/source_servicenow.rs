//! The ServiceNow source against the fake Table API on both buses: first full sync (with two 429s
//! waited out), a parameter override and a replaced jq mapping, a record the mapping rejects (DLQ),
//! incremental updates, a removed vendor link, an audited delete, a restart from the checkpoint that
//! loses nothing, and a delete found by the snapshot sweep. Events are read back from the topics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{ChangeEvent, EntityKind, Op, Payload, event_id, sequence_from_time};
use dastra_connect_servicenow::fake::FakeServiceNow;
use dastra_connect_servicenow::query::parse_time;
use serde_json::{Value, json};

const COMPANY_OVERRIDE: &str = r#"
{kind: "actor", id: .sys_id, data: {
  actorType: "Morale", vendorType: "B2B", companyName: .name, tags: ["supplier"],
  phoneNumber: (if .phone == "" then null else .phone end),
  countryCode: (if .country == "USA" then "US" elif (.country | length) == 2 then .country else null end)}}
"#;

fn by_label<'a>(latest: &'a std::collections::BTreeMap<String, ChangeEvent>, label: &str) -> Option<&'a ChangeEvent> {
    latest.values().find(|e| match &e.data {
        Payload::Asset(a) => a.label.as_deref() == Some(label),
        Payload::Actor(a) => a.company_name.as_deref() == Some(label),
        _ => false,
    })
}

fn count(latest: &std::collections::BTreeMap<String, ChangeEvent>, kind: EntityKind, op: Op) -> usize {
    latest.values().filter(|e| e.kind() == kind && e.op == op).count()
}

fn sys_id(fake: &FakeServiceNow, table: &str, name: &str) -> String {
    let all: Vec<Value> = ["cmdb_ci_appl", "cmdb_ci_business_app", "cmdb_ci_server", "cmdb_ci_datacenter", table]
        .iter()
        .flat_map(|t| fake.records(t))
        .collect();
    all.iter().find(|r| r["name"] == name).and_then(|r| r["sys_id"].as_str()).unwrap().to_owned()
}

async fn scenario(broker: Broker, use_oauth: bool) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeServiceNow::with_samples().spawn().await.unwrap();
    fake.state.throttle_next(2);
    let mut cfg = config(&fake);
    if use_oauth {
        cfg.auth = oauth(&fake);
    }
    cfg.tables[0].params = json!({"class_map": {"cmdb_ci_ip_switch": "Material"}, "owner_custom_field": "owner"})
        .as_object()
        .unwrap()
        .clone();
    cfg.tables[1].mapping = Some(COMPANY_OVERRIDE.into());
    cfg.validate("test").unwrap();

    let reader = Reader::start(&bus, &topics).await;
    let source = start_source(&bus, &topics, cfg.clone());

    // 1. First full sync: 12 assets (13 CIs, the printer's class has no AssetType), 6 suppliers
    // (ACME is a customer, filtered out), 10 vendor/manufacturer links, 1 dead letter.
    reader
        .wait_until("the first full sync", Duration::from_secs(90), |r| {
            let l = r.latest();
            count(&l, EntityKind::Asset, Op::Upsert) == 12
                && count(&l, EntityKind::Actor, Op::Upsert) == 6
                && count(&l, EntityKind::Relationship, Op::Upsert) == 10
                && !r.dlq().is_empty()
        })
        .await;
    assert_eq!(fake.state.count_status(429), 2, "two throttled requests, waited out");
    let latest = reader.latest();
    let sap = by_label(&latest, "SAP ERP").unwrap();
    let Payload::Asset(a) = &sap.data else { panic!() };
    assert_eq!(a.asset_type.map(|t| t.to_string()).as_deref(), Some("Software"));
    assert_eq!((a.city.as_deref(), a.country_code.as_deref()), (Some("Puteaux"), Some("FR")));
    assert_eq!(a.application_state.map(|s| s.to_string()).as_deref(), Some("InProduction"));
    assert_eq!(a.custom_fields.get("owner").map(String::as_str), Some("Beth Anglin"), "owner_custom_field override");
    assert!(!a.snapshot, "the first full sync is an incremental poll from the start");
    let sap_rec = fake.state.get(&sys_id(&fake.state, "cmdb_ci_appl", "SAP ERP")).unwrap();
    let expected_seq = sequence_from_time(parse_time(sap_rec["sys_updated_on"].as_str().unwrap()).unwrap(), 12);
    assert_eq!(sap.sequence, expected_seq, "sequence = sys_updated_on / sys_mod_count");
    assert_eq!(
        sap.id,
        event_id(&format!("/connectors/{SOURCE}"), &sap.key, &sap.sequence, Op::Upsert),
        "deterministic id"
    );
    assert_eq!(sap.key.as_str(), format!("servicenow:asset:{}", sap_rec["sys_id"].as_str().unwrap()));
    let Payload::Asset(portal) = &by_label(&latest, "Customer Portal").unwrap().data else { panic!() };
    assert_eq!(portal.country_code.as_deref(), Some("FR"), "free-text country `France` → FR");
    assert_eq!(portal.application_state.map(|s| s.to_string()).as_deref(), Some("InDevelopment"));
    let Payload::Asset(sw) = &by_label(&latest, "core-sw-01").unwrap().data else { panic!() };
    assert_eq!(sw.asset_type.map(|t| t.to_string()).as_deref(), Some("Material"), "class_map override");
    let Payload::Actor(ms) = &by_label(&latest, "Microsoft").unwrap().data else { panic!() };
    assert_eq!(ms.tags, vec!["supplier".to_owned()], "replaced company mapping");
    assert_eq!(ms.country_code.as_deref(), Some("US"));
    assert!(by_label(&latest, "ACME Retail").is_none(), "customers are not suppliers");
    let win = by_label(&latest, "win-ad-01").unwrap().key.clone();
    let links: Vec<&ChangeEvent> = latest
        .values()
        .filter(|e| matches!(&e.data, Payload::Relationship(r) if r.origin.as_ref() == Some(&win)))
        .collect();
    assert_eq!(links.len(), 2, "win-ad-01 links to Microsoft (vendor) and Dell (manufacturer)");
    let dlq = reader.dlq();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].header("dastra_dlq_reason").as_deref(), Some("mapping_error"));
    assert!(dlq[0].header("dastra_dlq_error").unwrap().contains("no AssetType for class cmdb_ci_printer"));
    assert_eq!(dlq[0].header("dastra_dlq_source_stream").as_deref(), Some("cmdb_ci"));
    let body: Value = serde_json::from_slice(&dlq[0].value).unwrap();
    assert_eq!(body["name"], "Floor 3 printer");
    assert!(
        source
            .metric(&format!("dastra_connect_records_polled_total{{connector=\"{SOURCE}\",entity=\"cmdb_ci\"}}"))
            .unwrap()
            >= 13.0
    );
    assert_eq!(
        source.metric(&format!("dastra_connect_dlq_events_total{{connector=\"{SOURCE}\",reason=\"mapping_error\"}}")),
        Some(1.0)
    );

    // 2. Incremental changes: a rename, a vendor link removed, an audited delete, a new CI.
    let sap_id = sys_id(&fake.state, "cmdb_ci_appl", "SAP ERP");
    let bkp_id = sys_id(&fake.state, "cmdb_ci_server", "bkp-srv-02");
    let hr_id = sys_id(&fake.state, "cmdb_ci_business_app", "HR Self Service");
    let ovh_id = fake.state.records("core_company").iter().find(|c| c["name"] == "OVHcloud").unwrap()["sys_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(fake.state.update(&sap_id, json!({"name": "SAP S/4HANA"})));
    assert!(fake.state.update(&bkp_id, json!({"vendor": ""})));
    assert!(fake.state.delete(&hr_id, true));
    fake.state.insert(
        "cmdb_ci_appl",
        json!({"name": "Workday HCM", "operational_status": "1", "vendor": "", "manufacturer": "", "location": ""}),
    );
    let ovh_link = format!("servicenow:relationship:servicenow:asset:{bkp_id}->servicenow:actor:{ovh_id}");
    reader
        .wait_until("the incremental changes", Duration::from_secs(60), |r| {
            let l = r.latest();
            let renamed = l
                .get(&format!("servicenow:asset:{sap_id}"))
                .is_some_and(|e| matches!(&e.data, Payload::Asset(a) if a.label.as_deref() == Some("SAP S/4HANA")));
            renamed
                && l.get(&ovh_link).is_some_and(|e| e.op == Op::Delete)
                && l.get(&format!("servicenow:asset:{hr_id}")).is_some_and(|e| e.op == Op::Delete)
                && by_label(&l, "Workday HCM").is_some()
        })
        .await;
    let latest = reader.latest();
    let hr_del = &latest[&format!("servicenow:asset:{hr_id}")];
    assert!(!hr_del.data.is_snapshot(), "an explicit delete from sys_audit_delete");
    let dell_link = latest
        .keys()
        .find(|k| k.starts_with(&format!("servicenow:relationship:servicenow:asset:{bkp_id}->")) && **k != ovh_link)
        .unwrap();
    assert_eq!(latest[dell_link].op, Op::Upsert, "the manufacturer link stays");

    // 3. Restart: changes made while the source is down arrive; a CI deleted without audit is found
    // by the sweep (due at once with a 1 s schedule).
    source.stop().await;
    let before: usize = reader.got.lock().len();
    let oracle_id = fake.state.records("core_company").iter().find(|c| c["name"] == "Oracle").unwrap()["sys_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(fake.state.update(&oracle_id, json!({"phone": "+1 737 000 0000"})));
    fake.state.insert(
        "cmdb_ci_appl",
        json!({"name": "Jira", "operational_status": "5", "vendor": "", "manufacturer": "", "location": ""}),
    );
    let dc_id = sys_id(&fake.state, "cmdb_ci_datacenter", "Paris DC1");
    assert!(fake.state.delete(&dc_id, false));
    let mut cfg2 = cfg.clone();
    cfg2.sync.sweep_interval = Some(Duration::from_secs(1));
    let source = start_source(&bus, &topics, cfg2);
    reader
        .wait_until("the changes made while down and the sweep delete", Duration::from_secs(60), |r| {
            let l = r.latest();
            l.get(&format!("servicenow:actor:{oracle_id}")).is_some_and(
                |e| matches!(&e.data, Payload::Actor(a) if a.phone_number.as_deref() == Some("+1 737 000 0000")),
            ) && by_label(&l, "Jira").is_some()
                && l.get(&format!("servicenow:asset:{dc_id}")).is_some_and(|e| e.op == Op::Delete)
        })
        .await;
    source.stop().await;
    assert!(reader.got.lock().len() > before);
    let latest = reader.latest();
    assert!(latest[&format!("servicenow:asset:{dc_id}")].data.is_snapshot(), "a delete found by the sweep");
    assert!(
        reader.events().iter().any(|e| e.data.is_snapshot() && e.op == Op::Upsert),
        "the sweep republished the records with snapshot: true"
    );
    // Nothing lost: every record now at the source has its latest version on the bus.
    for table in
        ["cmdb_ci_appl", "cmdb_ci_linux_server", "cmdb_ci_win_server", "cmdb_ci_server", "cmdb_ci_db_ora_instance"]
    {
        for rec in fake.state.records(table) {
            let key = format!("servicenow:asset:{}", rec["sys_id"].as_str().unwrap());
            let n: u64 = rec["sys_mod_count"].as_str().unwrap().parse().unwrap();
            let t = parse_time(rec["sys_updated_on"].as_str().unwrap()).unwrap();
            assert_eq!(latest[&key].sequence, sequence_from_time(t, n), "{key}");
        }
    }
    // Duplicates are harmless: one id always means the same key, sequence and op.
    let mut ids: HashMap<String, (String, String, Op)> = HashMap::new();
    for e in reader.events() {
        let v = (e.key.as_str().to_owned(), e.sequence.clone(), e.op);
        assert_eq!(ids.entry(e.id.clone()).or_insert_with(|| v.clone()), &v);
    }
    // The printer is rejected again by each sweep, never published as an asset.
    assert!(
        reader
            .events()
            .iter()
            .all(|e| !matches!(&e.data, Payload::Asset(a) if a.label.as_deref() == Some("Floor 3 printer")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicenow_source_on_nats() {
    scenario(Broker::nats().await, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicenow_source_on_kafka_with_oauth() {
    scenario(Broker::kafka(), true).await;
}
