//! The worked example end to end, on NATS (a real nats-server) and on Kafka (MockCluster): data
//! subject requests created in the Dastra emulator reach the real webhook receiver through the
//! emulator's real, signed webhook delivery; the discovery worker answers each from the sample
//! customer database; the real Dastra sink applies the answers. Each request ends `Closed` with
//! exactly one attachment (the report, inline in the event, uploaded once) and one Task linked to
//! it and assigned, through the DPO team, to its member; nothing is
//! created twice; a replay of the worker's answer and a copy of the webhook change nothing. Prints
//! the latency from each request's creation in Dastra to its attachment landing (no assertion on it;
//! recorded in BENCHMARKS.md).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use dastra_connect_core::admin::Admin;
use dastra_connect_core::bus::{BusConfig, TopicSpec};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::{Connector, ConnectorContext, Topics};
use dastra_connect_core::event::EntityKind;
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_core::testkit::Broker;
use dastra_connect_dastra::sink::{DastraSink, DastraSinkConfig};
use dastra_connect_dastra::webhook::{WebhookReceiver, WebhookReceiverConfig};
use dastra_emulator::{EmulatorConfig, RunningEmulator};
use dsar_discovery::{CustomerDb, DPO_TEAM, Discovery};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SINK: &str = "sink";
const HOOKS: &str = "hooks";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn context(name: &str, bus: &BusConfig, topics: &Topics) -> ConnectorContext {
    let metrics = Metrics::new();
    ConnectorContext {
        name: name.into(),
        bus: bus.clone(),
        topics: topics.clone(),
        codec: Codec::single_object(),
        metrics: metrics.clone(),
        admin: Admin::new(metrics),
    }
}

async fn emu_post(emu: &RunningEmulator, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new().post(emu.url(path)).header("X-API-Key", "emulator-key").json(&body).send().await;
    r.unwrap().json().await.unwrap()
}

async fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `POST DataSubjectAttachments/{id}` requests the emulator answered (uploads).
fn uploads(emu: &RunningEmulator) -> usize {
    emu.state.request_log().iter().filter(|r| r.method == "POST" && r.route.contains("DataSubjectAttachments")).count()
}

fn attachments_of(emu: &RunningEmulator, dsr: i64) -> Vec<Value> {
    emu.state.entities(1, "DataSubjectAttachments").into_iter().filter(|a| a["userRequestId"] == json!(dsr)).collect()
}

async fn scenario(broker: Broker) -> Vec<Duration> {
    // `RUST_LOG=info` shows what the receiver, the worker and the sink do.
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "off".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    let topics = Topics::default();
    let stores = ["ledger", "pending", "parked"]
        .map(|s| format!("{s}-{SINK}"))
        .into_iter()
        .chain([format!("webhook-dedupe-{HOOKS}")]);
    let bus = broker.bus_with_stores(&topics, &stores.collect::<Vec<_>>()).await;
    if let Broker::Kafka(k) = &broker {
        k.create_topic(&topics.dastra_events(), 3);
    }
    let mut specs: Vec<TopicSpec> = EntityKind::ALL.iter().map(|k| TopicSpec::new(topics.changes(*k))).collect();
    specs.extend([TopicSpec::new(topics.dlq()), TopicSpec::new(topics.dastra_events())]);
    bus.ensure_topics(&specs).await.unwrap();

    let emu = dastra_emulator::spawn(EmulatorConfig::default().with_quota(vec![])).await.unwrap();
    // The DPO team the follow-up tasks are assigned to: its user arrives by invitation (not through
    // the API), the team is created through the API with the DPO as its member.
    let dpo = emu
        .state
        .add_user(1, serde_json::json!({"email": "dpo@example.com", "givenName": "Dana", "familyName": "Privacy"}))
        .unwrap()["id"]
        .clone();
    let team = reqwest::Client::new()
        .post(emu.url("/v1/ws/1/Teams"))
        .header("X-API-Key", "emulator-key")
        .json(&json!({"label": "DPO team", "ref": DPO_TEAM, "users": [dpo.clone()]}))
        .send()
        .await
        .unwrap();
    assert!(team.status().is_success(), "{team:?}");
    let hook_port = free_port();
    let sub = emu_post(
        &emu,
        "/v1/WebHookUrls",
        json!({"url": format!("http://127.0.0.1:{hook_port}/webhooks/dastra"), "workSpaceId": 1,
               "subscribedEvents": ["DataSubjectCreation", "DataSubjectUpdate", "TaskCreation"]}),
    )
    .await;
    let key = sub["signatureKey"].as_str().unwrap().to_owned();
    let shutdown = CancellationToken::new();
    let mut tasks: Vec<JoinHandle<anyhow::Result<()>>> = Vec::new();

    // The real receiver.
    let receiver: WebhookReceiverConfig =
        serde_json::from_value(json!({"listen": format!("127.0.0.1:{hook_port}"), "signing_keys": [key]})).unwrap();
    tasks.push(tokio::spawn(
        Box::new(WebhookReceiver::new(receiver)).run(context(HOOKS, &bus, &topics), shutdown.clone()),
    ));
    wait_for("the receiver to listen", 30, || std::net::TcpStream::connect(("127.0.0.1", hook_port)).is_ok()).await;

    // The real sink.
    let sink: DastraSinkConfig = serde_json::from_value(json!({
        "dastra": {"base_url": emu.base_url, "workspace_id": 1, "auth": {"type": "api_key", "api_key": "emulator-key"}},
        "commit_interval": "200ms",
    }))
    .unwrap();
    let sink_ctx = context(SINK, &bus, &topics);
    let (sink_admin, sink_metrics) = (sink_ctx.admin.clone(), sink_ctx.metrics.clone());
    tasks.push(tokio::spawn(Box::new(DastraSink::new(sink)).run(sink_ctx, shutdown.clone())));
    let sink_owns = || {
        sink_admin
            .status_json()
            .get(SINK)
            .and_then(|s| s["sink"]["partitions"].as_array().map(|a| !a.is_empty()))
            .unwrap_or(false)
    };
    wait_for("the sink's partitions", 60, sink_owns).await;

    // The worker.
    let worker = Discovery::new(CustomerDb::sample(), topics.clone());
    let assigned = Arc::new(AtomicBool::new(false));
    {
        let (worker, bus, shutdown, assigned) = (worker.clone(), bus.clone(), shutdown.clone(), assigned.clone());
        tasks.push(tokio::spawn(async move {
            worker.run(&bus, "dsar-discovery", shutdown, move || assigned.store(true, Ordering::SeqCst)).await
        }));
    }
    wait_for("the worker's partitions", 60, || assigned.load(Ordering::SeqCst)).await;

    // Requests created in Dastra, one after the other; each timed until its report lands.
    let subjects = [
        ("jane.doe@example.org", 3),
        ("omar.haddad@example.net", 2),
        ("nobody@example.org", 0),
        ("li.wei@example.com", 1),
    ];
    let mut latencies = Vec::new();
    let mut ids = Vec::new();
    for (email, _) in subjects {
        let t0 = Instant::now();
        let dsr = emu_post(
            &emu,
            "/v1/ws/1/DataSubjectRequests",
            json!({"title": format!("Access request of {email}"), "areaId": 1, "locale": "en",
                   "purposes": ["Access"], "email": email}),
        )
        .await;
        let id = dsr["id"].as_i64().unwrap();
        wait_for("the report to land", 60, || !attachments_of(&emu, id).is_empty()).await;
        latencies.push(t0.elapsed());
        ids.push(id);
    }

    // Each request ends closed, with its one report and one task linked to it.
    let closed = |id: i64| {
        emu.state.entities(1, "DataSubjectRequests").iter().any(|d| d["id"] == json!(id) && d["state"] == "Closed")
    };
    let task_of = |id: i64| {
        emu.state
            .entities(1, "Tasks")
            .into_iter()
            .filter(|t| t["objectType"] == "DataSubject" && t["objectId"] == json!(id.to_string()))
            .collect::<Vec<_>>()
    };
    for &id in &ids {
        wait_for("the request closed and its task", 60, || closed(id) && !task_of(id).is_empty()).await;
    }
    // Everything the worker published is consumed: a DSR update and a task per request.
    let consumed = |kind: &str| sink_metrics.events_consumed.with_label_values(&[SINK, kind]).get();
    wait_for("the sink to read every answer", 60, || consumed("dsr") >= 4 && consumed("task") >= 4).await;
    let check = |emu: &RunningEmulator| {
        let dsrs = emu.state.entities(1, "DataSubjectRequests");
        assert_eq!(dsrs.len(), subjects.len(), "no request created by the sink: {dsrs:?}");
        for ((email, found), &id) in subjects.iter().zip(&ids) {
            let d = dsrs.iter().find(|d| d["id"] == json!(id)).unwrap();
            assert_eq!(d["state"], "Closed", "{d}");
            assert_eq!(d["closedReason"], "Accepted", "{d}");
            assert_eq!(d["email"], *email, "the requester's data is Dastra's, untouched: {d}");
            assert!(d["resolutionMessage"].as_str().unwrap().contains(email), "{d}");
            let files = attachments_of(emu, id);
            assert_eq!(files.len(), 1, "one report per request: {files:?}");
            assert_eq!(files[0]["fileName"], format!("discovery-{id}.json"));
            let content =
                base64::engine::general_purpose::STANDARD.decode(files[0]["_contentBase64"].as_str().unwrap()).unwrap();
            let report: Value = serde_json::from_slice(&content).unwrap();
            assert_eq!(report["records"].as_array().unwrap().len(), *found, "{report}");
            let tasks = task_of(id);
            assert_eq!(tasks.len(), 1, "{tasks:?}");
            assert_eq!(tasks[0]["state"], "Open");
            assert_eq!(tasks[0]["assignedToUserId"], dpo, "assigned to the DPO team's member: {}", tasks[0]);
        }
        assert_eq!(emu.state.entities(1, "Tasks").len(), subjects.len());
        assert_eq!(uploads(emu), subjects.len(), "exactly one upload per request");
    };
    check(&emu);

    // Replays: the worker's answer to the first request published again, and a copy of its
    // webhook posted again to the receiver. Nothing changes in Dastra, nothing is uploaded again.
    let delivered = emu
        .state
        .webhook_deliveries()
        .into_iter()
        .find(|d| d.event_type == "DataSubjectCreation" && d.body.contains(subjects[0].0))
        .unwrap();
    assert_eq!(delivered.status, Some(200), "{delivered:?}");
    let answer = worker.answer(delivered.body.as_bytes()).unwrap().unwrap();
    let publisher = bus.publisher().await.unwrap();
    publisher.publish_batch(worker.messages(&answer.events).await.unwrap()).await.unwrap();
    let copy = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{hook_port}/webhooks/dastra"))
        .header("Dastra-Signature", &delivered.signature)
        .body(delivered.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(copy.status(), 200);
    assert_eq!(copy.text().await.unwrap(), "already stored");
    wait_for("the sink to read the replay", 60, || consumed("dsr") >= 5 && consumed("task") >= 5).await;
    // Let the sink finish what it read (it commits after applying).
    let idle = || {
        let s = sink_admin.status_json();
        let k = &s[SINK]["sink"];
        k["in_flight"] == 0 && k["buffered"] == 0
    };
    wait_for("the sink to be idle", 60, idle).await;
    check(&emu);
    let log = emu.state.request_log();
    let creates = log.iter().filter(|r| r.method == "POST" && r.route.ends_with("DataSubjectRequests")).count();
    assert_eq!(creates, subjects.len(), "only the test created requests, the sink none");

    shutdown.cancel();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t).await.unwrap().unwrap().unwrap();
    }
    latencies
}

fn report(bus: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let ms: Vec<String> = latencies.iter().map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0)).collect();
    println!(
        "dsar-discovery on {bus}: DSR created -> report attached, median {:.0} ms over {} requests ({} ms)",
        latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
        latencies.len(),
        ms.join(", ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_answers_requests_end_to_end_on_nats() {
    report("nats", scenario(Broker::nats().await).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_answers_requests_end_to_end_on_kafka() {
    report("kafka (MockCluster)", scenario(Broker::kafka()).await);
}
