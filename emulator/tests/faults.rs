//! Proves each injected fault over real HTTP — error status on a route pattern, latency, timeout
//! after the write was applied (the ambiguous create), dropped connection — plus the admin API
//! (faults, counters, request log, dump, reset) and in-process use of `app(state)`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{KEY, client, start_default};
use dastra_emulator::{EmulatorConfig, EmulatorState, FaultKind, FaultRule, app};
use serde_json::{Value, json};
use tower::ServiceExt;

fn asset(label: &str) -> Value {
    json!({"label": label, "type": "Software"})
}

#[tokio::test]
async fn error_status_on_a_route_pattern_then_recovery() {
    let emu = start_default().await;
    let http = client();
    let url = emu.url("/v1/ws/1/Assets");
    emu.state
        .add_fault(FaultRule::always(FaultKind::Error { status: 503 }).method("POST").route("/assets$").count(2))
        .unwrap();
    for _ in 0..2 {
        let r = http.post(&url).header("X-API-Key", KEY).json(&asset("a")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 503);
    }
    assert!(emu.state.entities(1, "Assets").is_empty(), "an injected error applies nothing");
    assert_eq!(http.get(&url).header("X-API-Key", KEY).send().await.unwrap().status().as_u16(), 200, "GET not matched");
    let r = http.post(&url).header("X-API-Key", KEY).json(&asset("a")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "the rule retired after its count");
    assert_eq!(emu.state.counters().with_status(503), 2);

    // Through the admin API: 500 and 502 with rate 1 on everything.
    for status in [500, 502] {
        let r = http
            .post(emu.url("/__admin/faults"))
            .json(&json!({"kind": "error", "status": status}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        let r = http.get(&url).header("X-API-Key", KEY).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(http.delete(emu.url("/__admin/faults")).send().await.unwrap().status().as_u16(), 204);
    }
    let r = http
        .post(emu.url("/__admin/faults"))
        .json(&json!({"kind": "error", "status": 503, "route": "("}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "invalid regex is refused");
}

#[tokio::test]
async fn latency_is_added_and_logged() {
    let emu = start_default().await;
    emu.state.add_fault(FaultRule::always(FaultKind::Latency { ms: 200 })).unwrap();
    let r = client().get(emu.url("/v1/ws/1/Assets")).header("X-API-Key", KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let log = emu.state.request_log();
    let last = log.last().unwrap();
    assert_eq!(last.faults, vec!["latency:200ms".to_string()]);
    assert!(last.duration_ms >= 200.0, "the handling time includes the latency: {}", last.duration_ms);
}

#[tokio::test]
async fn timeout_after_write_is_an_ambiguous_create() {
    let emu = start_default().await;
    emu.state
        .add_fault(FaultRule::always(FaultKind::TimeoutAfterWrite { hang_ms: 1500 }).method("POST").count(1))
        .unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_millis(400)).build().unwrap();
    let err = http
        .post(emu.url("/v1/ws/1/Assets"))
        .header("X-API-Key", KEY)
        .json(&asset("ambiguous"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "the client saw a timeout: {err}");
    let assets = emu.state.entities(1, "Assets");
    assert_eq!(assets.len(), 1, "…but the create was applied");
    assert_eq!(assets[0]["label"], "ambiguous");
    // A patient client gets a closed connection, never a response.
    emu.state
        .add_fault(FaultRule::always(FaultKind::TimeoutAfterWrite { hang_ms: 100 }).method("POST").count(1))
        .unwrap();
    let err = client()
        .post(emu.url("/v1/ws/1/Assets"))
        .header("X-API-Key", KEY)
        .json(&asset("second"))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err}");
    assert_eq!(emu.state.entities(1, "Assets").len(), 2);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let statuses: Vec<u16> = emu.state.request_log().iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![0, 0], "logged as dropped (status 0)");
}

#[tokio::test]
async fn dropped_connection_applies_nothing() {
    let emu = start_default().await;
    let r = client()
        .post(emu.url("/__admin/faults"))
        .json(&json!([{"kind": "drop_connection", "method": "POST", "route": "/v1/ws/1/assets", "count": 1}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let err = client()
        .post(emu.url("/v1/ws/1/Assets"))
        .header("X-API-Key", KEY)
        .json(&asset("lost"))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status() && !err.is_timeout(), "connection closed without a response: {err}");
    assert!(emu.state.entities(1, "Assets").is_empty());
    let faults: Value = client().get(emu.url("/__admin/faults")).send().await.unwrap().json().await.unwrap();
    assert_eq!(faults[0]["hits"], 1);
    let r =
        client().post(emu.url("/v1/ws/1/Assets")).header("X-API-Key", KEY).json(&asset("kept")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn rate_based_faults_are_reproducible_with_a_seed() {
    async fn run() -> Vec<u16> {
        let emu = common::start(EmulatorConfig::default().with_quota(Vec::new()).with_seed(7)).await;
        emu.state.add_fault(FaultRule::always(FaultKind::Error { status: 500 }).rate(0.3)).unwrap();
        let mut out = Vec::new();
        for _ in 0..30 {
            out.push(
                client().get(emu.url("/v1/ws/1/Tags")).header("X-API-Key", KEY).send().await.unwrap().status().as_u16(),
            );
        }
        out
    }
    let (a, b) = (run().await, run().await);
    assert_eq!(a, b);
    let errors = a.iter().filter(|s| **s == 500).count();
    assert!((1..30).contains(&errors), "some but not all requests failed: {errors}");
}

#[tokio::test]
async fn admin_observation_and_reset() {
    let emu = start_default().await;
    let http = client();
    for i in 0..3 {
        http.post(emu.url("/v1/ws/1/Assets"))
            .header("X-API-Key", KEY)
            .json(&asset(&format!("a{i}")))
            .send()
            .await
            .unwrap();
    }
    http.get(emu.url("/v1/ws/1/assets/1")).header("X-API-Key", KEY).send().await.unwrap();
    http.get(emu.url("/v1/ws/1/Assets/99")).header("X-API-Key", KEY).send().await.unwrap();
    let counters: Value = http.get(emu.url("/__admin/counters")).send().await.unwrap().json().await.unwrap();
    let rows = counters["byRoute"].as_array().unwrap();
    let find = |m: &str, r: &str, s: u64| {
        rows.iter().find(|x| x["method"] == m && x["route"] == r && x["status"] == s).map(|x| x["count"].clone())
    };
    assert_eq!(find("POST", "/v1/ws/{workspaceId}/Assets", 200), Some(json!(3)));
    assert_eq!(find("GET", "/v1/ws/{workspaceId}/Assets/{id}", 200), Some(json!(1)));
    assert_eq!(find("GET", "/v1/ws/{workspaceId}/Assets/{id}", 404), Some(json!(1)));
    let log: Value = http.get(emu.url("/__admin/requests?since=3")).send().await.unwrap().json().await.unwrap();
    assert_eq!(log.as_array().unwrap().len(), 2);
    assert_eq!(log[0]["key"], "default", "keys are logged by name, never the secret");
    assert!(!log.to_string().contains(KEY));
    let dump: Value = http.get(emu.url("/__admin/dump")).send().await.unwrap().json().await.unwrap();
    assert_eq!(dump["workspaces"][0]["entities"]["Assets"].as_array().unwrap().len(), 3);
    assert_eq!(dump["workspaces"][0]["entities"]["Areas"][0]["label"], "Default entity");
    assert_eq!(http.post(emu.url("/__admin/reset")).send().await.unwrap().status().as_u16(), 204);
    assert!(emu.state.entities(1, "Assets").is_empty());
    assert_eq!(emu.state.counters().total, 0);
    assert_eq!(emu.state.entities(1, "Areas").len(), 1, "reset re-seeds the Area");
}

#[tokio::test]
async fn in_process_router() {
    let state = EmulatorState::new(EmulatorConfig::default());
    let request = axum::http::Request::builder()
        .method("POST")
        .uri("/V1/WS/1/ASSETS")
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(asset("in-process").to_string()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(state.entities(1, "assets")[0]["label"], "in-process");
    // Without a connection to drop, a drop fault answers 504 (documented in `app`).
    state.add_fault(FaultRule::always(FaultKind::DropConnection)).unwrap();
    let request = axum::http::Request::builder()
        .uri("/v1/ws/1/Assets")
        .header("x-api-key", KEY)
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app(state).oneshot(request).await.unwrap().status().as_u16(), 504);
}
