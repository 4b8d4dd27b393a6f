//! `dastra:` keys name the Dastra entity itself (what a tool answering a webhook publishes under):
//! an event about `dastra:dsr:<id>` PATCHes that request — the fields it carries only, never its
//! `refId` or area, never a create — then moves its state; a repeat costs nothing; a Task whose
//! `object` is that key links to it at once; a request Dastra no longer has is a permanent error,
//! not a re-create. Runs `apply` against the emulator, the ledger in a real NATS KV bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use dastra_connect_core::Classify;
use dastra_connect_core::ErrorClass;
use dastra_connect_core::event::enums::{ClosedReason, DataSubjectPurposeType, DataSubjectRequestState};
use dastra_connect_core::event::{DataSubjectRequest, EntityKey, Payload, Task};
use dastra_connect_dastra::sink::apply::{ApplyCtx, Outcome, apply};
use dastra_connect_dastra::sink::config::SinkPolicy;
use serde_json::json;

fn answer(state: DataSubjectRequestState) -> Payload {
    Payload::DataSubjectRequest(DataSubjectRequest {
        title: Some("Access request".into()),
        locale: Some("en".into()),
        purposes: vec![DataSubjectPurposeType::Access],
        state: Some(state),
        closed_reason: Some(ClosedReason::Accepted),
        resolution_message: Some("Nothing found.".into()),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dastra_key_updates_the_request_itself_and_never_creates_one() {
    let rig = ApplyRig::start("ledger-native").await;
    let policy = SinkPolicy::default();
    let ctx = ApplyCtx { client: &rig.client, ledger: &rig.ledger, policy: &policy, objects: None, batcher: None };
    let dsr = emu_post(
        &rig.emu,
        "/v1/ws/1/DataSubjectRequests",
        json!({"title": "Access request", "areaId": 1, "locale": "en", "purposes": ["Access"],
               "email": "jane@example.org", "refId": "crm:case:7"}),
    )
    .await;
    let id = dsr["id"].as_i64().unwrap();
    let key = format!("dastra:dsr:{id}");
    let before = requests(&rig.emu);

    let outcome = step(&ctx, &event(&key, 1, answer(DataSubjectRequestState::Closed))).await;
    assert!(matches!(outcome, Outcome::Applied { requests: 2, .. }), "one PATCH and the close: {outcome:?}");
    let log: Vec<String> =
        rig.emu.state.request_log().iter().skip(before as usize).map(|r| format!("{} {}", r.method, r.route)).collect();
    assert_eq!(
        log,
        [
            "PATCH /v1/ws/{workspaceId}/DataSubjectRequests/{id}",
            "POST /v1/ws/{workspaceId}/DataSubjectRequests/{id}/close"
        ],
    );
    let patch = rig.emu.state.request_log().into_iter().find(|r| r.method == "PATCH").unwrap().body.unwrap();
    let paths: Vec<&str> = patch.as_array().unwrap().iter().map(|op| op["path"].as_str().unwrap()).collect();
    assert!(!paths.iter().any(|p| ["/refId", "/areaId", "/email"].contains(p)), "only the event's fields: {paths:?}");
    assert!(patch.as_array().unwrap().iter().all(|op| op["op"] == "add"), "nothing cleared: {patch}");
    let stored = rig.emu.state.entities(1, "DataSubjectRequests");
    assert_eq!(stored.len(), 1, "no request created: {stored:?}");
    assert_eq!(stored[0]["state"], "Closed");
    assert_eq!(stored[0]["refId"], "crm:case:7", "its own refId kept");
    assert_eq!(stored[0]["email"], "jane@example.org");
    assert_eq!(stored[0]["resolutionMessage"], "Nothing found.");

    // The same answer again (a replay, a newer version with the same content): nothing sent.
    let after = requests(&rig.emu);
    step(&ctx, &event(&key, 1, answer(DataSubjectRequestState::Closed))).await;
    step(&ctx, &event(&key, 2, answer(DataSubjectRequestState::Closed))).await;
    assert_eq!(requests(&rig.emu), after, "a repeat costs nothing");

    // A task linked to it is created at once, without an event about the request in this ledger.
    let task = Task {
        label: Some("Review".into()),
        object: Some(EntityKey::parse(&format!("dastra:dsr:{}", id)).unwrap()),
        ..Default::default()
    };
    let outcome = step(&ctx, &event("tool:task:1", 1, Payload::Task(task))).await;
    assert!(matches!(outcome, Outcome::Applied { .. }), "{outcome:?}");
    let tasks = rig.emu.state.entities(1, "Tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        (tasks[0]["objectType"].clone(), tasks[0]["objectId"].clone()),
        (json!("DataSubject"), json!(id.to_string()))
    );

    // A request Dastra does not have: permanent, and nothing created.
    let gone = event(&format!("dastra:dsr:{}", id + 1000), 1, answer(DataSubjectRequestState::Closed));
    let err = apply(&ctx, &gone).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Permanent, "{err}");
    assert_eq!(err.code(), "dastra_not_found", "{err}");
    assert_eq!(rig.emu.state.entities(1, "DataSubjectRequests").len(), 1);
}
