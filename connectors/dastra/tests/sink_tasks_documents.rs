//! Tasks assigned to people and documents from content systems, end to end on both buses: an
//! assignee named by e-mail or by team `ref` is resolved through `Users` / `Teams` (lookups cached
//! and counted in the emulator's log); an unknown one goes to the DLQ with a reason that names the
//! kind of reference but not the e-mail, and creates nothing; task states move through to Dastra;
//! inline documents are uploaded to the document storage and linked to their task or asset, an over-limit
//! one goes to the DLQ; a replay with the same content under a new URL uploads nothing (tasks and
//! DSRs); an upload whose answer is lost is found again, not repeated; an object of the NATS Object
//! Store is uploaded (on Kafka: DLQ, nothing created).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use dastra_connect_core::bus::{BusConfig, SubscriberEvent};
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::{AssetType, DataSubjectPurposeType, TaskState};
use dastra_connect_core::event::{Asset, Attachment, DataSubjectRequest, ObjectRef, Payload, Task};
use dastra_connect_core::testkit;
use dastra_emulator::RunningEmulator;
use serde_json::{Value, json};

const DOC: &[u8] = b"%PDF-1.4 the same document every time";
const DPA: &[u8] = b"%PDF-1.4 data processing agreement";
const CONTRACT: &[u8] = b"%PDF-1.4 contract kept in the object store";
const DPIA: &[u8] = b"%PDF-1.4 impact assessment";

/// A file server answering [`DOC`] on every path; requests are counted.
async fn file_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            DOC
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}"), hits)
}

fn task(label: &str, f: impl FnOnce(&mut Task)) -> Payload {
    let mut t = Task { label: Some(label.into()), ..Default::default() };
    f(&mut t);
    Payload::Task(t)
}

fn inline(name: &str, content: &[u8]) -> Attachment {
    Attachment {
        file_name: name.into(),
        content_base64: Some(STANDARD.encode(content)),
        content_type: Some("application/pdf".into()),
        ..Default::default()
    }
}

fn by_url(name: &str, url: String) -> Attachment {
    Attachment { file_name: name.into(), url, ..Default::default() }
}

fn dsr(url: String) -> Payload {
    Payload::DataSubjectRequest(DataSubjectRequest {
        title: Some("Access request".into()),
        locale: Some("en".into()),
        purposes: vec![DataSubjectPurposeType::Access],
        attachments: vec![by_url("consent.pdf", url)],
        ..Default::default()
    })
}

/// The task created for entity key `key`, if any.
fn task_of(emu: &RunningEmulator, key: &str) -> Option<Value> {
    emu.state.entities(1, "Tasks").into_iter().find(|t| t["additionalDatas"]["dastraConnectKey"] == key)
}

/// Requests of the emulator's log with this method and route template.
fn count(emu: &RunningEmulator, method: &str, route: &str) -> usize {
    emu.state.request_log().iter().filter(|r| r.method == method && r.route == route).count()
}

/// Every DLQ record: `(key, reason code, error text)`.
async fn dlq(bus: &BusConfig, topics: &Topics, expect: usize) -> Vec<(String, String, String)> {
    let mut sub = bus.subscriber(&testkit::unique("dlq-reader"), &[topics.dlq()]).await.unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let header = |m: &dastra_connect_core::bus::InboundMessage, h: &str| {
        m.header(h).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
    };
    while out.len() < expect {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(ev) = tokio::time::timeout(left, sub.next_event()).await else {
            panic!("expected {expect} DLQ records, got {out:?}");
        };
        if let SubscriberEvent::Message(m) = ev.unwrap() {
            out.push((
                String::from_utf8_lossy(&m.key).into_owned(),
                header(&m, "dastra_dlq_reason"),
                header(&m, "dastra_dlq_error"),
            ));
        }
    }
    out.sort();
    out
}

/// Puts `CONTRACT` into the NATS Object Store bucket `docs` as `contract.pdf`.
async fn put_object(bus: &BusConfig) {
    let BusConfig::Nats(n) = bus else { return };
    let client = dastra_connect_core::bus::nats::connect(n).await.unwrap();
    let js = dastra_connect_core::bus::nats::jetstream(n, client);
    let store = js
        .create_object_store(async_nats::jetstream::object_store::Config {
            bucket: "docs".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    store.put("contract.pdf", &mut &CONTRACT[..]).await.unwrap();
}

async fn scenario(broker: Broker) {
    let on_nats = matches!(broker, Broker::Nats(_));
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    put_object(&bus).await;
    let emu = emulator().await;
    let (files, hits) = file_server().await;

    // Users cannot be created through Dastra's API: seeded through the emulator's admin side.
    let dpo = emu.state.add_user(1, json!({"email": "dpo@example.com", "displayName": "DPO"})).unwrap()["id"].clone();
    let lead = emu.state.add_user(1, json!({"email": "lead@example.com"})).unwrap()["id"].clone();
    emu.state.add_user(1, json!({"email": "dpo@example.com.evil.io"})).unwrap();
    let created = reqwest::Client::new()
        .post(emu.url("/v1/ws/1/Teams"))
        .header("X-API-Key", "emulator-key")
        .json(&json!({"label": "Privacy team", "ref": "privacy", "users": [lead.clone()]}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let empty = reqwest::Client::new()
        .post(emu.url("/v1/ws/1/Teams"))
        .header("X-API-Key", "emulator-key")
        .json(&json!({"label": "Empty team", "ref": "empty", "users": []}))
        .send()
        .await
        .unwrap();
    assert!(empty.status().is_success());

    let mut config = sink_config(&emu);
    config.policy.attachments.max_inline_bytes = 1024;
    // The first document upload is stored but its answer never comes (the client gives up after
    // 400 ms): the retry finds the file by name instead of uploading it again, then links it.
    config.dastra.request_timeout = Duration::from_millis(400);
    let lost = dastra_emulator::FaultKind::TimeoutAfterWrite { hang_ms: 800 };
    emu.state
        .add_fault(dastra_emulator::FaultRule::always(lost).method("POST").route("CloudStorage/Dastra$").count(1))
        .unwrap();
    let sink = RunningSink::start("sink", &bus, &topics, config);
    let publisher = bus.publisher().await.unwrap();

    let contract = Attachment {
        file_name: "contract.pdf".into(),
        object: Some(ObjectRef { bucket: "docs".into(), name: "contract.pdf".into() }),
        ..Default::default()
    };
    let first = vec![
        event(
            "jira:task:A",
            1,
            task("Review DPA", |t| {
                t.assigned_to = Some("DPO@Example.com".into());
                t.state = Some(TaskState::Open);
                t.attachments = vec![inline("dpa.pdf", DPA)];
            }),
        ),
        event("jira:task:B", 1, task("Map processings", |t| t.assigned_team = Some("privacy".into()))),
        event("jira:task:C", 1, task("Nobody's", |t| t.assigned_to = Some("ghost@example.com".into()))),
        event("jira:task:D", 1, task("No such team", |t| t.assigned_team = Some("nobody".into()))),
        event("jira:task:E", 1, task("Empty team", |t| t.assigned_team = Some("empty".into()))),
        event("jira:task:F", 1, task("Too big", |t| t.attachments = vec![inline("big.bin", &[7u8; 2048])])),
        event(
            "jira:task:G",
            1,
            task("By URL", |t| t.attachments = vec![by_url("doc.pdf", format!("{files}/a/doc.pdf?sig=one"))]),
        ),
        event("web:dsr:H", 1, dsr(format!("{files}/a/consent.pdf?sig=one"))),
        event("jira:task:I", 1, task("From the object store", |t| t.attachments = vec![contract.clone()])),
        event(
            "snow:asset:J",
            1,
            Payload::Asset(Asset {
                label: Some("CRM".into()),
                asset_type: Some(AssetType::Software),
                attachments: vec![inline("dpia.pdf", DPIA)],
                ..Default::default()
            }),
        ),
    ];
    publish(publisher.as_ref(), &topics, &first).await;
    sink.wait_consumed("sink", first.len() as u64, Duration::from_secs(90)).await;

    // The same contents again under new (pre-signed-like) URLs, and the task's workflow.
    let second = vec![
        event(
            "jira:task:A",
            2,
            task("Review DPA", |t| {
                t.assigned_to = Some("dpo@example.com".into());
                t.state = Some(TaskState::Active);
                t.attachments = vec![inline("dpa.pdf", DPA)];
            }),
        ),
        event(
            "jira:task:A",
            3,
            task("Review DPA", |t| {
                t.assigned_to = Some("dpo@example.com".into());
                t.state = Some(TaskState::Closed);
                t.attachments = vec![inline("dpa.pdf", DPA)];
            }),
        ),
        event(
            "jira:task:G",
            2,
            task("By URL", |t| t.attachments = vec![by_url("doc.pdf", format!("{files}/b/doc.pdf?sig=two"))]),
        ),
        event("web:dsr:H", 2, dsr(format!("{files}/b/consent.pdf?sig=two"))),
    ];
    // One at a time: A's states must not be coalesced into the last one.
    let mut consumed = first.len() as u64;
    for e in &second {
        publish(publisher.as_ref(), &topics, std::slice::from_ref(e)).await;
        consumed += 1;
        sink.wait_consumed("sink", consumed, Duration::from_secs(90)).await;
    }

    // Assignees.
    let a = task_of(&emu, "jira:task:A").expect("task A");
    assert_eq!(a["assignedToUserId"], dpo, "by e-mail, case-insensitively, exact match only");
    let b = task_of(&emu, "jira:task:B").expect("task B");
    assert_eq!(b["assignedToUserId"], lead, "by team: its first member");
    assert_eq!(b["additionalDatas"]["dastraConnectTeam"], "privacy");
    for key in ["jira:task:C", "jira:task:D", "jira:task:E", "jira:task:F"] {
        assert!(task_of(&emu, key).is_none(), "{key} must create nothing");
    }
    assert_eq!(task_of(&emu, "jira:task:I").is_some(), on_nats, "object-store documents exist only on NATS");

    // Lookups: one per e-mail (A's later versions hit the cache), team list + team for `privacy`
    // and `empty`, the list only for `nobody`.
    assert_eq!(count(&emu, "GET", "/v1/ws/{workspaceId}/Users"), 2, "dpo once, ghost once");
    assert_eq!(count(&emu, "GET", "/v1/ws/{workspaceId}/Teams"), 3);
    assert_eq!(count(&emu, "GET", "/v1/ws/{workspaceId}/Teams/{id}"), 2);
    // … and in the sink's own request accounting (the client's metrics), like every request.
    let sent = |method: &str, route: &str| {
        sink.metrics.dastra_requests.with_label_values(&["sink", method, route, "200"]).get() as usize
    };
    assert_eq!(sent("GET", "/v1/ws/{workspaceId}/Users"), 2);
    assert_eq!(sent("GET", "/v1/ws/{workspaceId}/Teams"), 3);
    assert_eq!(sent("GET", "/v1/ws/{workspaceId}/Teams/{id}"), 2);
    assert_eq!(
        sent("POST", "/v1/ws/{workspaceId}/CloudStorage/{providerName}"),
        if on_nats { 3 } else { 2 },
        "one answer lost"
    );
    assert_eq!(count(&emu, "GET", "/v1/ws/{workspaceId}/CloudStorage/Dastra"), 1, "the lost upload was looked up once");

    // Workflow: Open → Active → Closed reached Dastra, in order.
    assert_eq!(a["state"], "Closed");
    let a_path = format!("/v1/ws/1/Tasks/{}", a["id"]);
    let moves: Vec<String> = emu
        .state
        .request_log()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.eq_ignore_ascii_case(&a_path))
        .filter_map(|r| {
            r.body.as_ref()?.as_array()?.iter().find(|op| op["path"] == "/state").map(|op| op["value"].to_string())
        })
        .collect();
    assert_eq!(moves, ["\"Active\"", "\"Closed\""]);

    // Documents: one upload per distinct content, each linked to its task.
    let stored = emu.state.entities(1, "CloudStorage");
    let mut names: Vec<&str> = stored.iter().filter_map(|f| f["fileName"].as_str()).collect();
    names.sort_unstable();
    let mut expected = vec!["doc.pdf", "dpa.pdf", "dpia.pdf"];
    if on_nats {
        expected.insert(0, "contract.pdf");
    }
    assert_eq!(names, expected, "one upload each: the replays under new URLs uploaded nothing");
    assert_eq!(count(&emu, "POST", "/v1/ws/{workspaceId}/CloudStorage/Dastra"), expected.len());
    let asset = emu.state.entities(1, "Assets").into_iter().find(|a| a["ref"] == "snow:asset:J").expect("asset J");
    for f in &stored {
        let (link, want): (Value, &[u8]) = match f["fileName"].as_str().unwrap() {
            "dpa.pdf" => (json!({"type": "Task", "objectId": task_of(&emu, "jira:task:A").unwrap()["id"]}), DPA),
            "doc.pdf" => (json!({"type": "Task", "objectId": task_of(&emu, "jira:task:G").unwrap()["id"]}), DOC),
            "dpia.pdf" => (json!({"type": "Asset", "objectId": asset["id"]}), DPIA),
            _ => (json!({"type": "Task", "objectId": task_of(&emu, "jira:task:I").unwrap()["id"]}), CONTRACT),
        };
        assert_eq!(f["_links"], json!([link]), "{f}");
        assert_eq!(STANDARD.decode(f["_contentBase64"].as_str().unwrap()).unwrap(), want);
    }
    assert_eq!(count(&emu, "POST", "/v1/ws/{workspaceId}/DataSubjectAttachments/{id}"), 1, "DSR: one upload");
    // Each URL fetched once (and hashed), none uploaded again; the file whose upload answer was lost
    // (the first stored) was fetched again by the retry when it came by URL.
    let refetched = usize::from(stored[0]["fileName"] == "doc.pdf");
    assert_eq!(hits.load(Ordering::SeqCst), 4 + refetched);

    // The DLQ: reasons name the kind of reference, never the e-mail.
    let mut want = vec![
        ("jira:task:C", "unknown_assignee"),
        ("jira:task:D", "unknown_assignee"),
        ("jira:task:E", "unknown_assignee"),
        ("jira:task:F", "attachment_too_large"),
    ];
    if !on_nats {
        want.push(("jira:task:I", "attachment_source_unsupported"));
    }
    let records = dlq(&bus, &topics, want.len()).await;
    let got: Vec<(&str, &str)> = records.iter().map(|(k, r, _)| (k.as_str(), r.as_str())).collect();
    assert_eq!(got, want);
    let ghost = &records[0].2;
    assert!(ghost.contains("assignedTo") && !ghost.contains("ghost"), "{ghost}");
    assert!(ghost.contains(&dastra_connect_dastra::sink::apply::email_digest("ghost@example.com")), "{ghost}");
    assert!(records[1].2.contains("`nobody`") && records[2].2.contains("no member"), "{records:?}");
    assert!(records[3].2.contains("max_inline_bytes"), "{records:?}");
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_documents_on_nats() {
    scenario(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_documents_on_kafka() {
    scenario(Broker::kafka()).await;
}
