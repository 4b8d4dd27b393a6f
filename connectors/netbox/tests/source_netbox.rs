//! The NetBox source against the fake NetBox REST API on both buses: a first full sync paged
//! through `next` links (rebased from a proxy host) with two 429s waited out, a parameter override
//! and a replaced jq mapping, an unnamed device the mapping rejects (DLQ), incremental changes (a
//! rename, a tenant link removed, a new VM, a device deleted and read from the change log), a
//! restart from the checkpoint that loses nothing, and a device deleted without a change record found
//! by the snapshot sweep; a refused token stops the connector; and end to end
//! through the Dastra sink into the emulator.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dastra_connect_test_harness as common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{EntityKind, Op, Payload};
use dastra_connect_netbox::fake::{FakeNetBox, RunningFake, TOKEN};
use dastra_connect_netbox::{NetBoxConfig, NetBoxObject, NetBoxSource};
use serde_json::json;

const TENANT_OVERRIDE: &str = r#"
{kind: "actor", id: "tenant-\(.id)", data: {
  actorType: "Morale", vendorType: "B2C", companyName: .name, tags: ["netbox-tenant", .slug]}}
"#;

fn config(fake: &RunningFake) -> NetBoxConfig {
    let yaml = format!(
        r#"
url: {url}
token: {TOKEN}
change_log_deletes: true
objects:
  - object: devices
    params: {{role_map: {{storage: Data}}}}
  - object: virtual_machines
  - object: sites
  - object: tenants
sync: {{poll_interval: 300ms, look_back: 60s, page_size: 4, sweep_interval: 1h}}
http: {{initial_backoff: 50ms, max_backoff: 2s}}
"#,
        url = fake.base_url
    );
    let mut c: NetBoxConfig = serde_yaml::from_str(&yaml).unwrap();
    c.objects[3].mapping = Some(TENANT_OVERRIDE.into());
    c.validate("test").unwrap();
    c
}

fn id(fake: &FakeNetBox, object: NetBoxObject, name: &str) -> u64 {
    fake.by_name(object, name).unwrap()["id"].as_u64().unwrap()
}

fn asset<'a>(
    latest: &'a std::collections::BTreeMap<String, dastra_connect_core::event::ChangeEvent>,
    key: &str,
) -> Option<&'a dastra_connect_core::event::Asset> {
    match latest.get(key).map(|e| &e.data) {
        Some(Payload::Asset(a)) => Some(a),
        _ => None,
    }
}

async fn scenario(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeNetBox::with_samples().spawn().await.unwrap();
    fake.state.set_public_base("https://netbox.internal:8443");
    fake.state.throttle_next(2);
    let cfg = config(&fake);
    let reader = Reader::start(&bus, &topics).await;
    let source = RunningSource::start(&bus, &topics, Box::new(NetBoxSource::new(cfg.clone())));

    // 1. First full sync: 16 assets (8 named devices, 5 VMs, 3 sites), 4 tenants, 25 links; the
    // unnamed PDU is dead-lettered.
    reader
        .wait_until("the first full sync", Duration::from_secs(60), |r| {
            let l = r.latest();
            count(&l, EntityKind::Asset, Op::Upsert) == 16
                && count(&l, EntityKind::Actor, Op::Upsert) == 4
                && count(&l, EntityKind::Relationship, Op::Upsert) == 25
                && !r.dlq().is_empty()
        })
        .await;
    assert_eq!(fake.state.count_status(429), 2, "two throttled requests, waited out");
    let log = fake.state.log();
    assert!(
        log.iter().any(|l| l.path == "/api/dcim/devices/" && l.params.get("offset").is_some_and(|o| o != "0")),
        "devices were paged through `next` links (rebased from the proxy host): {log:?}"
    );
    let latest = reader.latest();
    let db = asset(&latest, "netbox:asset:device-102").unwrap();
    assert_eq!(db.label.as_deref(), Some("par-db-01"));
    assert_eq!(db.asset_type.map(|t| t.to_string()).as_deref(), Some("Material"));
    assert_eq!(db.description.as_deref(), Some("payroll PostgreSQL primary — Dell PowerEdge R750"));
    assert_eq!(db.tags, vec!["GDPR".to_owned()]);
    let nas = asset(&latest, "netbox:asset:device-105").unwrap();
    assert_eq!(nas.asset_type.map(|t| t.to_string()).as_deref(), Some("Data"), "params.role_map override");
    let web2 = asset(&latest, "netbox:asset:device-107").unwrap();
    assert_eq!(web2.application_state.map(|s| s.to_string()).as_deref(), Some("InDevelopment"), "staged");
    let paris = asset(&latest, "netbox:asset:site-1").unwrap();
    assert_eq!(paris.asset_type.map(|t| t.to_string()).as_deref(), Some("Building"));
    assert_eq!(paris.country_code.as_deref(), Some("FR"));
    assert_eq!(paris.address.as_deref(), Some("114 Rue Ambroise Croizat, 93200 Saint-Denis, France"));
    let etl = asset(&latest, "netbox:asset:vm-204").unwrap();
    assert_eq!(etl.application_state.map(|s| s.to_string()).as_deref(), Some("Stopped"));
    let Payload::Actor(payroll) = &latest["netbox:actor:tenant-1"].data else { panic!() };
    assert_eq!(payroll.company_name.as_deref(), Some("Payroll Services"));
    assert_eq!(payroll.tags, vec!["netbox-tenant".to_owned(), "payroll".to_owned()], "replaced tenant mapping");
    assert_eq!(payroll.vendor_type.map(|v| v.to_string()).as_deref(), Some("B2C"));
    let link = "netbox:relationship:netbox:asset:device-102->netbox:actor:tenant-1";
    let Payload::Relationship(rel) = &latest[link].data else { panic!("{link}") };
    assert_eq!(rel.label.as_deref(), Some("tenant"));
    assert!(latest.contains_key("netbox:relationship:netbox:asset:vm-203->netbox:asset:site-2"));
    let dlq = reader.dlq();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].header("dastra_dlq_reason").as_deref(), Some("mapping_error"));
    assert!(dlq[0].header("dastra_dlq_error").unwrap().contains("device 109 has no name"));
    assert_eq!(dlq[0].header("dastra_dlq_source_stream").as_deref(), Some("devices"));
    assert_eq!(dlq[0].key, "netbox:devices:109");
    assert!(
        source.metric("dastra_connect_records_polled_total{connector=\"source-test\",entity=\"devices\"}").unwrap()
            >= 9.0
    );

    // 2. Incremental changes: a rename, a tenant removed from a VM, a new VM, a tenant edited.
    assert!(fake.state.update(NetBoxObject::Devices, 101, json!({"name": "par-app-01a"})));
    assert!(fake.state.update(NetBoxObject::VirtualMachines, 203, json!({"tenant": null})));
    let new_vm = fake.state.insert(
        NetBoxObject::VirtualMachines,
        json!({"name": "dpo-portal", "status": {"value": "active", "label": "Active"}, "role": {"slug": "web-server"},
               "site": {"id": 1, "name": "Paris DC1", "slug": "par-dc1"}, "tenant": null, "tags": [], "description": "DPO portal"}),
    );
    assert!(fake.state.update(NetBoxObject::Tenants, 4, json!({"name": "Initech Analytics GmbH"})));
    assert!(fake.state.delete(NetBoxObject::Devices, 104), "par-fw-01, recorded in the change log");
    let vm_tenant = "netbox:relationship:netbox:asset:vm-203->netbox:actor:tenant-3";
    reader
        .wait_until("the incremental changes", Duration::from_secs(30), |r| {
            let l = r.latest();
            asset(&l, "netbox:asset:device-101").is_some_and(|a| a.label.as_deref() == Some("par-app-01a"))
                && l.get(vm_tenant).is_some_and(|e| e.op == Op::Delete)
                && asset(&l, &format!("netbox:asset:vm-{new_vm}")).is_some()
                && by_label(&l, "Initech Analytics GmbH").is_some()
                && l.get("netbox:asset:device-104").is_some_and(|e| e.op == Op::Delete)
        })
        .await;
    let latest = reader.latest();
    assert!(
        !latest["netbox:asset:device-104"].data.is_snapshot(),
        "an explicit delete from the change log, not a sweep"
    );
    let fw_site = "netbox:relationship:netbox:asset:device-104->netbox:asset:site-1";
    assert_eq!(latest[fw_site].op, Op::Delete, "every key the device produced is deleted");
    assert!(
        fake.state.log().iter().any(|l| l.path == "/api/core/object-changes/"
            && l.params.get("changed_object_type").map(String::as_str) == Some("dcim.device")
            && l.params.get("action").map(String::as_str) == Some("delete")),
        "deletes read from the change log"
    );

    // 3. Restart: changes made while the source is down arrive; a device deleted without a change
    // record (pruned by CHANGELOG_RETENTION) is found by the sweep, due at once with a 1 s schedule.
    source.stop().await;
    assert!(fake.state.update(NetBoxObject::Sites, 3, json!({"status": {"value": "active", "label": "Active"}})));
    assert!(fake.state.delete_unlogged(NetBoxObject::Devices, id(&fake.state, NetBoxObject::Devices, "lyo-web-02")));
    fake.state.throttle_next(1);
    let mut cfg2 = cfg.clone();
    cfg2.sync.sweep_interval = Some(Duration::from_secs(1));
    let source = RunningSource::start(&bus, &topics, Box::new(NetBoxSource::new(cfg2)));
    reader
        .wait_until("the changes made while down and the sweep delete", Duration::from_secs(40), |r| {
            let l = r.latest();
            asset(&l, "netbox:asset:site-3")
                .is_some_and(|a| a.application_state.map(|s| s.to_string()).as_deref() == Some("InProduction"))
                && l.get("netbox:asset:device-107").is_some_and(|e| e.op == Op::Delete)
                && l.get("netbox:relationship:netbox:asset:device-107->netbox:actor:tenant-3")
                    .is_some_and(|e| e.op == Op::Delete)
        })
        .await;
    source.stop().await;
    let latest = reader.latest();
    assert!(latest["netbox:asset:device-107"].data.is_snapshot(), "a delete found by the sweep");
    assert_eq!(fake.state.count_status(429), 3);
    // Nothing lost: every named object now in NetBox has its current name on the bus.
    for (object, prefix) in
        [(NetBoxObject::Devices, "device"), (NetBoxObject::VirtualMachines, "vm"), (NetBoxObject::Sites, "site")]
    {
        for rec in fake.state.records(object) {
            let Some(name) = rec["name"].as_str() else { continue };
            let key = format!("netbox:asset:{prefix}-{}", rec["id"]);
            assert_eq!(asset(&latest, &key).and_then(|a| a.label.as_deref()), Some(name), "{key}");
        }
    }
    // Duplicates are harmless: one id always means the same key, sequence and op.
    let mut ids: HashMap<String, (String, String, Op)> = HashMap::new();
    for e in reader.events() {
        let v = (e.key.as_str().to_owned(), e.sequence.clone(), e.op);
        assert_eq!(ids.entry(e.id.clone()).or_insert_with(|| v.clone()), &v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netbox_source_on_nats() {
    scenario(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netbox_source_on_kafka() {
    scenario(Broker::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_stops_the_source() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeNetBox::with_samples().spawn().await.unwrap();
    let mut cfg = config(&fake);
    cfg.token = dastra_connect_core::config::Secret::new("wrong-token");
    let source = RunningSource::start(&bus, &topics, Box::new(NetBoxSource::new(cfg)));
    let err = tokio::time::timeout(Duration::from_secs(30), source.task).await.unwrap().unwrap().unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("refused the credentials (403)"), "{text}");
    assert!(!text.contains("wrong-token"), "the token never reaches errors: {text}");
    assert_eq!(fake.state.count_status(403), 1, "a fatal error is not retried");
}

async fn end_to_end(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeNetBox::with_samples().spawn().await.unwrap();
    let emu = emulator().await;
    let source = RunningSource::start(&bus, &topics, Box::new(NetBoxSource::new(config(&fake))));
    let sink = RunningSink::start(&bus, &topics, sink_config(&emu));
    wait_emulator(&emu, "NetBox assets and tenants", Duration::from_secs(50), |e| {
        labels(e, "Assets", "label").len() == 16 && labels(e, "Actors", "companyName").len() == 4
    })
    .await;
    let assets = emu.state.entities(1, "Assets");
    let db = assets.iter().find(|a| a["label"] == "par-db-01").unwrap();
    assert_eq!(db["ref"], "netbox:asset:device-102");
    assert_eq!(db["type"], "Material");
    let site = assets.iter().find(|a| a["label"] == "Paris DC1").unwrap();
    assert_eq!((site["type"].as_str(), site["countryCode"].as_str()), (Some("Building"), Some("FR")));
    assert!(labels(&emu, "Actors", "companyName").contains(&"Globex Retail".to_owned()));
    // Relationships: device/VM/site → tenant and → site links as GenericRelationships.
    wait_emulator(&emu, "the 25 NetBox links", Duration::from_secs(40), |e| {
        e.state.entities(1, "GenericRelationships").len() == 25
    })
    .await;
    let db_id = db["id"].to_string();
    let rels = emu.state.entities(1, "GenericRelationships");
    let db_links: Vec<_> =
        rels.iter().filter(|r| r["originId"].to_string().trim_matches('"') == db_id.trim_matches('"')).collect();
    assert_eq!(db_links.len(), 2, "par-db-01 → Paris DC1 and → Payroll Services: {rels:?}");
    sink.stop().await;
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netbox_to_dastra_on_nats() {
    end_to_end(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netbox_to_dastra_on_kafka() {
    end_to_end(Broker::kafka()).await;
}
