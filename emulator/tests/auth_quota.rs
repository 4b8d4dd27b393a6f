//! Proves authentication (X-API-Key, Basic with the key as user, OAuth2 client credentials with
//! Bearer tokens that expire; 401 when missing or wrong; 403 for a key bound to another workspace)
//! and the quota (429 with Retry-After, recovery after waiting it, `/rate-limiting-state`, counters).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{KEY, client, start};
use dastra_emulator::{ApiKey, EmulatorConfig, QuotaWindow};
use serde_json::Value;

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

#[tokio::test]
async fn every_documented_auth_scheme() {
    let mut config = EmulatorConfig::default().with_quota(Vec::new());
    config.token_lifetime = Duration::from_secs(1);
    config.workspaces.push(dastra_emulator::WorkspaceSeed { id: 2, label: "Other".into() });
    config.api_keys.push(ApiKey {
        key: "bound-key".into(),
        public_key: "bound-client".into(),
        workspace: Some(2),
        name: "bound".into(),
    });
    let emu = start(config).await;
    let http = client();
    let url = emu.url("/v1/ws/1/Assets");
    let status = |r: reqwest::Response| r.status().as_u16();

    assert_eq!(status(http.get(&url).send().await.unwrap()), 401);
    let r = http.get(&url).header("X-API-Key", "wrong").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    assert_eq!(status(http.get(&url).header("X-API-Key", KEY).send().await.unwrap()), 200);
    assert_eq!(status(http.get(&url).basic_auth(KEY, Some("anything")).send().await.unwrap()), 200);
    assert_eq!(status(http.get(&url).basic_auth(KEY, None::<&str>).send().await.unwrap()), 200);
    assert_eq!(status(http.get(&url).basic_auth("emulator-client", Some(KEY)).send().await.unwrap()), 200);
    assert_eq!(status(http.get(&url).basic_auth("nobody", Some("x")).send().await.unwrap()), 401);

    // A key bound to workspace 2: 403 on workspace 1, 200 on its own.
    assert_eq!(status(http.get(&url).header("X-API-Key", "bound-key").send().await.unwrap()), 403);
    let own = emu.url("/v1/ws/2/Assets");
    assert_eq!(status(http.get(&own).header("X-API-Key", "bound-key").send().await.unwrap()), 200);
    let listed: Value = http
        .get(emu.url("/v1/Workspaces"))
        .header("X-API-Key", "bound-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], 1);

    // OAuth2 client credentials: Basic public:private on the token endpoint.
    let token_url = emu.url("/connect/token");
    let basic = format!("Basic {}", STANDARD.encode(format!("emulator-client:{KEY}")));
    let r = http
        .post(&token_url)
        .header("Authorization", basic)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("grant_type", "client_credentials"), ("scope", "api1")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let token: Value = r.json().await.unwrap();
    assert_eq!(
        (token["token_type"].as_str(), token["expires_in"].as_u64(), token["scope"].as_str()),
        (Some("Bearer"), Some(1), Some("api1"))
    );
    let bearer = token["access_token"].as_str().unwrap().to_string();
    assert_eq!(status(http.get(&url).bearer_auth(&bearer).send().await.unwrap()), 200);
    // Form-field credentials work too; wrong secret is 401; other grant types 400.
    let r = http
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("grant_type", "client_credentials"), ("client_id", "emulator-client"), ("client_secret", KEY)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("grant_type", "client_credentials"), ("client_id", "emulator-client"), ("client_secret", "no")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("grant_type", "password")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // The token expires (lifetime configured to 1 s here; Dastra's is 3600 s).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(status(http.get(&url).bearer_auth(&bearer).send().await.unwrap()), 401);
}

#[tokio::test]
async fn quota_429_retry_after_and_recovery() {
    let windows = vec![
        QuotaWindow { limit: 5, period: Duration::from_secs(2) },
        QuotaWindow { limit: 100, period: Duration::from_secs(60) },
    ];
    let emu = start(EmulatorConfig::default().with_quota(windows)).await;
    let http = client();
    let url = emu.url("/v1/ws/1/Assets");
    for _ in 0..5 {
        assert_eq!(http.get(&url).header("X-API-Key", KEY).send().await.unwrap().status().as_u16(), 200);
    }
    let r = http.get(&url).header("X-API-Key", KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Another key has its own quota... (only one key here) and the state reports the full window.
    let state = emu.state.quota_state("default");
    assert_eq!(state["limits"][0]["remaining"], 0);
    assert_eq!(state["limits"][1]["used"], 5);
    // After Retry-After seconds the window has reset.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let r = http.get(emu.url("/rate-limiting-state")).header("X-API-Key", KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["limits"][0]["limit"], 5);
    assert_eq!(body["limits"][0]["used"], 1, "the state request itself is counted");
    let counters = emu.state.counters();
    assert_eq!(counters.too_many_requests, 1);
    assert_eq!(counters.count("GET", "/v1/ws/{workspaceId}/Assets"), 6);
    // Quota can be changed at run time through the admin API (and switched off).
    let r = http.put(emu.url("/__admin/quota")).json(&serde_json::json!({"quota": "off"})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    for _ in 0..20 {
        assert_eq!(http.get(&url).header("X-API-Key", KEY).send().await.unwrap().status().as_u16(), 200);
    }
}
