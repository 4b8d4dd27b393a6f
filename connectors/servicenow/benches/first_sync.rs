//! Figures, not assertions: the cost of the default CI mapping per record (jq), and a first full
//! sync of generated CIs from the fake ServiceNow to a real nats-server (records/s, Table API
//! requests). Run: `cargo bench -p dastra-connect-servicenow --bench first_sync`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use dastra_connect_core::admin::Admin;
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::{Connector, ConnectorContext, Topics};
use dastra_connect_core::source::Mapping;
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_core::testkit::NatsServer;
use dastra_connect_servicenow::fake::FakeServiceNow;
use dastra_connect_servicenow::mapping::{CI_PROGRAM, DefaultMapping};
use dastra_connect_servicenow::{ServiceNowConfig, ServiceNowSource};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const CIS: usize = 5000;

fn mapping_cost() {
    let m = Mapping::compile("cmdb_ci", CI_PROGRAM).unwrap();
    let params = DefaultMapping::ConfigurationItem.params();
    let rec = json!({
        "sys_id": "abc", "sys_class_name": "cmdb_ci_win_server", "name": "win-ad-01", "short_description": "AD",
        "operational_status": "1", "vendor": "ms", "manufacturer": "dell", "location.street": "1 Parvis",
        "location.city": "Puteaux", "location.zip": "92800", "location.country": "France",
        "owned_by.name": "Fred Luddy", "sys_updated_on": "2025-05-02 08:36:00", "sys_mod_count": "18"
    });
    let n = 20_000;
    let start = Instant::now();
    let mut outputs = 0;
    for _ in 0..n {
        outputs += m.run(&rec, &params, "servicenow").unwrap().len();
    }
    let per = start.elapsed() / n;
    println!("default CI mapping: {per:?} per record ({outputs} outputs for {n} records)");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    mapping_cost();

    let nats = NatsServer::start().await;
    let bus = nats.bus_config();
    let fake = FakeServiceNow::with_samples();
    let classes =
        ["cmdb_ci_appl", "cmdb_ci_linux_server", "cmdb_ci_win_server", "cmdb_ci_db_ora_instance", "cmdb_ci_ip_switch"];
    let dell = fake.records("core_company").iter().find(|c| c["name"] == "Dell Inc.").unwrap()["sys_id"].clone();
    for i in 0..CIS {
        fake.insert(
            classes[i % classes.len()],
            json!({"name": format!("ci-{i:05}"), "operational_status": "1", "vendor": "", "manufacturer": dell, "location": ""}),
        );
    }
    let fake = fake.spawn().await.unwrap();
    let cfg: ServiceNowConfig = serde_yaml::from_str(&format!(
        "instance_url: {}\nauth: {{type: basic, username: admin, password: admin}}\nsync: {{poll_interval: 200ms, page_size: 200}}\n",
        fake.base_url
    ))
    .unwrap();
    let metrics = Metrics::new();
    let ctx = ConnectorContext {
        name: "bench".into(),
        bus: bus.clone(),
        topics: Topics::default(),
        codec: Codec::single_object(),
        metrics: metrics.clone(),
        admin: Admin::new(metrics.clone()),
    };
    let stop = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn(Box::new(ServiceNowSource::new(cfg)).run(ctx, stop.clone()));
    let total_cis = CIS + 13;
    let published = || {
        metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("dastra_connect_events_published_total{connector=\"bench\",entity=\"asset\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    while published() < (total_cis - 1) as f64 {
        assert!(start.elapsed() < Duration::from_secs(600), "sync did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = start.elapsed();
    stop.cancel();
    task.await.unwrap().unwrap();
    let requests = fake.state.log().iter().filter(|l| l.path.starts_with("/api/now/table/cmdb_ci")).count();
    println!(
        "first full sync: {} CIs (+{} vendor links) to NATS in {:.2?} = {:.0} CIs/s, {} Table API requests for cmdb_ci",
        total_cis,
        CIS,
        elapsed,
        total_cis as f64 / elapsed.as_secs_f64(),
        requests
    );
}
