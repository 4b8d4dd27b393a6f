//! Proves webhook delivery: DSR and Task events reach a real HTTP receiver with Dastra's envelope,
//! the `Dastra-Signature` verifies with an HMAC-SHA256 written here from RFC 2104 (not the `hmac`
//! crate the emulator uses), and a failing receiver gets blocked after more than 5 errors, with no
//! retries.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Api, KEY, start_default};
use parking_lot::Mutex;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// HMAC-SHA256 per RFC 2104, independent of the emulator's implementation.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut k = if key.len() > BLOCK { Sha256::digest(key).to_vec() } else { key.to_vec() };
    k.resize(BLOCK, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new().chain_update(&ipad).chain_update(message).finalize();
    Sha256::new().chain_update(&opad).chain_update(inner).finalize().to_vec()
}

#[test]
fn independent_hmac_matches_rfc4231() {
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

struct Receiver {
    url: String,
    received: Received,
}

async fn receiver(status: StatusCode) -> Receiver {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(|State((r, status)): State<(Received, StatusCode)>, headers: HeaderMap, body: Bytes| async move {
                r.lock().push((headers, body));
                status
            }),
        )
        .with_state((received.clone(), status));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, received }
}

async fn wait_for(received: &Received, n: usize) {
    for _ in 0..200 {
        if received.lock().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn subscribe(emu: &dastra_emulator::RunningEmulator, url: &str, events: Value) -> Value {
    let r = common::client()
        .post(emu.url("/v1/WebHookUrls"))
        .header("X-API-Key", KEY)
        .json(&json!({"url": url, "workSpaceId": 1, "subscribedEvents": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsr_and_task_events_are_signed_like_dastra() {
    let emu = start_default().await;
    let rx = receiver(StatusCode::OK).await;
    let hook = subscribe(
        &emu,
        &rx.url,
        json!(["DataSubjectCreation", "DataSubjectUpdate", "DataSubjectStateChange", "TaskCreation"]),
    )
    .await;
    let key = hook["signatureKey"].as_str().unwrap().to_string();
    let api = Api::new(&emu);
    let (_, dsr) = api
        .post(
            "/DataSubjectRequests",
            json!({"title": "Erase me", "areaId": 1, "locale": "en", "purposes": ["Erasure"], "refId": "crm:9"}),
        )
        .await;
    let id = dsr["id"].as_i64().unwrap();
    api.post("/DataSubjectRequests/workflow", json!({"id": id, "stepId": 2})).await;
    api.post("/Tasks", json!({"label": "check backups"})).await;
    api.post("/Assets", json!({"label": "no event", "type": "Data"})).await;
    // Creation, update, state change (workflow moved it to Active), task creation.
    wait_for(&rx.received, 4).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = rx.received.lock().clone();
    assert_eq!(got.len(), 4, "one delivery per subscribed event, nothing for Assets");
    let mut events = Vec::new();
    for (headers, body) in &got {
        let signature = headers.get("dastra-signature").unwrap().to_str().unwrap();
        assert_eq!(signature, STANDARD.encode(hmac_sha256(key.as_bytes(), body)), "signature over the raw body");
        assert_eq!(headers.get("content-type").unwrap(), "application/json");
        let payload: Value = serde_json::from_slice(body).unwrap();
        for field in ["webhookId", "signatureUrl", "userId", "eventType", "eventName", "data", "date"] {
            assert!(payload.get(field).is_some(), "{field} missing in {payload}");
        }
        assert_eq!(payload["webhookId"], hook["id"]);
        assert_eq!(payload["signatureUrl"], json!(rx.url));
        events.push(payload["eventType"].as_str().unwrap().to_string());
        if payload["eventType"] == "DataSubjectCreation" {
            assert_eq!(payload["data"]["refId"], "crm:9");
            assert_eq!(payload["eventName"], "Data subject creation");
        }
    }
    events.sort();
    assert_eq!(events, ["DataSubjectCreation", "DataSubjectStateChange", "DataSubjectUpdate", "TaskCreation"]);
    assert!(emu.state.webhook_deliveries().iter().all(|d| d.ok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_receiver_is_blocked_without_retries() {
    let emu = start_default().await;
    let rx = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let hook = subscribe(&emu, &rx.url, json!(["TaskCreation"])).await;
    let api = Api::new(&emu);
    for i in 0..6 {
        api.post("/Tasks", json!({"label": format!("t{i}")})).await;
        wait_for(&rx.received, i + 1).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.received.lock().len(), 6, "no retries: one attempt per event");
    let (_, state) = (
        0,
        api.http
            .get(emu.url(&format!("/v1/WebHookUrls/{}", hook["id"])))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap(),
    );
    let state: Value = state.json().await.unwrap();
    assert_eq!((state["nbErrors"].clone(), state["inError"].clone()), (json!(6), json!(true)), "{state}");
    assert!(state["errorMessage"].as_str().unwrap().contains("500"));
    // Blocked: further events are not delivered.
    api.post("/Tasks", json!({"label": "after block"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received.lock().len(), 6);
    // Re-saving the subscription un-blocks it.
    let r = api
        .http
        .put(emu.url(&format!("/v1/WebHookUrls/{}", hook["id"])))
        .header("X-API-Key", KEY)
        .json(&json!({"url": rx.url, "workSpaceId": 1, "subscribedEvents": ["TaskCreation"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    api.post("/Tasks", json!({"label": "after unblock"})).await;
    wait_for(&rx.received, 7).await;
    assert_eq!(rx.received.lock().len(), 7);
}
