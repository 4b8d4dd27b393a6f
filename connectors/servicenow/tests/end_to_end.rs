//! End to end on both buses: the fake ServiceNow (bundled samples) → the ServiceNow source → Kafka
//! (MockCluster) or NATS → the Dastra sink → the Dastra emulator. The emulator ends up with the CIs
//! as Assets, the suppliers as Actors and the vendor/manufacturer links as generic relationships; a
//! CI deleted at the source disappears from Dastra.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use dastra_connect_core::admin::Admin;
use dastra_connect_core::config::Secret;
use dastra_connect_core::connector::{Connector, Topics};
use dastra_connect_dastra::sink::{DastraSink, DastraSinkConfig};
use dastra_connect_dastra::{AuthConfig, DastraClientConfig};
use dastra_connect_servicenow::fake::FakeServiceNow;
use dastra_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

fn sink_config(emu: &RunningEmulator) -> DastraSinkConfig {
    let dastra = DastraClientConfig::new(
        emu.base_url.parse().unwrap(),
        1,
        AuthConfig::ApiKey { api_key: Secret::new("emulator-key") },
    );
    let mut cfg: DastraSinkConfig =
        serde_json::from_value(serde_json::json!({ "dastra": dastra, "commit_interval": "200ms" })).unwrap();
    cfg.dastra.auth = AuthConfig::ApiKey { api_key: Secret::new("emulator-key") };
    cfg
}

fn labels(emu: &RunningEmulator, family: &str, field: &str) -> Vec<String> {
    let mut v: Vec<String> =
        emu.state.entities(1, family).iter().filter_map(|e| e[field].as_str().map(str::to_owned)).collect();
    v.sort();
    v
}

async fn wait_for(what: &str, timeout: Duration, admin: &Admin, mut pred: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !pred() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; sink status: {}",
            admin.status_json()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn scenario(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeServiceNow::with_samples().spawn().await.unwrap();
    let emu = dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![])).await.unwrap();

    let source = start_source(&bus, &topics, config(&fake));
    let (ctx, _metrics, admin) = context(SINK, &bus, &topics);
    let sink_stop = CancellationToken::new();
    let sink = tokio::spawn(Box::new(DastraSink::new(sink_config(&emu))).run(ctx, sink_stop.clone()));

    let expected_assets = vec![
        "Customer Portal",
        "Exchange Online",
        "HR Self Service",
        "ORA-FIN-PRD",
        "Paris DC1",
        "SAP ERP",
        "SQL-PORTAL",
        "Salesforce CRM",
        "bkp-srv-02",
        "core-sw-01",
        "lnx-web-01",
        "win-ad-01",
    ];
    let expected_actors = vec!["Cisco Systems", "Dell Inc.", "Microsoft", "OVHcloud", "Oracle", "Salesforce"];
    wait_for("the assets and actors in Dastra", Duration::from_secs(120), &admin, || {
        labels(&emu, "Assets", "label") == expected_assets && labels(&emu, "Actors", "companyName") == expected_actors
    })
    .await;
    let assets = emu.state.entities(1, "Assets");
    let sap = assets.iter().find(|a| a["label"] == "SAP ERP").unwrap();
    assert_eq!(sap["type"], "Software");
    assert_eq!(sap["city"], "Puteaux");
    assert_eq!(sap["countryCode"], "FR");
    let db = assets.iter().find(|a| a["label"] == "ORA-FIN-PRD").unwrap();
    assert_eq!(db["type"], "Data");
    let actors = emu.state.entities(1, "Actors");
    let ms = actors.iter().find(|a| a["companyName"] == "Microsoft").unwrap();
    assert_eq!(ms["countryCode"], "US");

    // The 10 vendor/manufacturer links become generic relationships between the asset and actor.
    wait_for("the vendor links in Dastra", Duration::from_secs(120), &admin, || {
        emu.state.entities(1, "GenericRelationships").len() == 10
    })
    .await;
    let rels = emu.state.entities(1, "GenericRelationships");
    // Generic relationships hold string ids: the asset's id as origin, the actor's as target.
    let id_of = |v: &Value| v["id"].as_i64().map(|i| i.to_string()).or_else(|| v["id"].as_str().map(str::to_owned));
    let win_id = id_of(assets.iter().find(|a| a["label"] == "win-ad-01").unwrap()).unwrap();
    let mut targets: Vec<String> = rels
        .iter()
        .filter(|r| r["originId"].as_str() == Some(win_id.as_str()))
        .filter_map(|r| r["target"]["id"].as_str().map(str::to_owned))
        .collect();
    targets.sort();
    let mut expected: Vec<String> = actors
        .iter()
        .filter(|a| a["companyName"] == "Microsoft" || a["companyName"] == "Dell Inc.")
        .filter_map(id_of)
        .collect();
    expected.sort();
    let win_links = targets.len();
    assert_eq!(targets, expected, "win-ad-01 is linked to Microsoft and Dell: {rels:?}");
    assert_eq!(win_links, 2, "win-ad-01 is linked to Microsoft and Dell: {rels:?}");

    // A CI deleted at the source (audited) is deleted in Dastra.
    let dc = fake.state.records("cmdb_ci_datacenter")[0]["sys_id"].as_str().unwrap().to_owned();
    assert!(fake.state.delete(&dc, true));
    wait_for("the deleted CI to leave Dastra", Duration::from_secs(60), &admin, || {
        !labels(&emu, "Assets", "label").contains(&"Paris DC1".to_owned())
    })
    .await;

    source.stop().await;
    sink_stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), sink).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicenow_to_dastra_on_nats() {
    scenario(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicenow_to_dastra_on_kafka() {
    scenario(Broker::kafka()).await;
}
