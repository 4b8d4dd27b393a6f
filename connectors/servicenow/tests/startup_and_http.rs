//! Start-up checks and HTTP behaviour against the fake ServiceNow, no broker needed: a filter naming
//! an unknown field is refused (ServiceNow itself would ignore it and return the whole table), bad
//! credentials stop the source without leaking them, offset/`Link` pagination and `X-Total-Count`,
//! OAuth tokens fetched once and refreshed after a 401, and 429s beyond the retry budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use dastra_connect_core::Classify;
use dastra_connect_core::bus::{BusConfig, NatsConfig};
use dastra_connect_core::config::Secret;
use dastra_connect_core::connector::{Connector, Topics};
use dastra_connect_core::source::http::{next_link, offset_pages};
use dastra_connect_core::source::{HttpSettings, SourceAuth, SourceError, SourceHttp};
use dastra_connect_servicenow::ServiceNowSource;
use dastra_connect_servicenow::client::ServiceNowClient;
use dastra_connect_servicenow::fake::FakeServiceNow;
use tokio_util::sync::CancellationToken;

/// A bus nobody listens on: the start-up checks must fail before the bus is touched.
fn unreachable_bus() -> BusConfig {
    BusConfig::Nats(NatsConfig::new("nats://127.0.0.1:1"))
}

async fn run_until_error(cfg: dastra_connect_servicenow::ServiceNowConfig) -> anyhow::Error {
    let (ctx, _, _) = context(SOURCE, &unreachable_bus(), &Topics::default());
    let run = Box::new(ServiceNowSource::new(cfg)).run(ctx, CancellationToken::new());
    tokio::time::timeout(Duration::from_secs(30), run).await.unwrap().unwrap_err()
}

#[tokio::test]
async fn a_filter_on_an_unknown_field_is_refused_at_start() {
    let fake = FakeServiceNow::with_samples().spawn().await.unwrap();
    // What ServiceNow does with it: the misspelt condition is dropped, every CI comes back.
    let client = ServiceNowClient::new(
        &fake.base_url.parse().unwrap(),
        SourceAuth::Basic { username: "admin".into(), password: Secret::new("admin") },
        HttpSettings::default(),
    )
    .unwrap();
    let all = client.table("cmdb_ci", "", &["sys_id".into()], 100, None).await.unwrap();
    let typo = client.table("cmdb_ci", "operatonal_status=6", &["sys_id".into()], 100, None).await.unwrap();
    assert_eq!(typo.records.len(), all.records.len(), "the fake ignores unknown fields like ServiceNow");
    let good = client.table("cmdb_ci", "operational_status=6", &["sys_id".into()], 100, None).await.unwrap();
    assert_eq!(good.records.len(), 1);

    let mut cfg = config(&fake);
    cfg.tables[0].filter = Some("operatonal_status!=6".into());
    cfg.validate("test").unwrap();
    let err = run_until_error(cfg).await;
    let text = format!("{err:#}");
    assert!(text.contains("no field `operatonal_status`"), "{text}");
    let src = err.downcast_ref::<SourceError>().unwrap();
    assert_eq!(src.code(), "source_config");
}

#[tokio::test]
async fn bad_credentials_stop_the_source_without_leaking_them() {
    let fake = FakeServiceNow::with_samples().spawn().await.unwrap();
    let mut cfg = config(&fake);
    cfg.auth = SourceAuth::Basic { username: "admin".into(), password: Secret::new("hunter2-wrong") };
    let err = run_until_error(cfg).await;
    let text = format!("{err:#} {err:?}");
    assert!(text.contains("refused the credentials (401)"), "{text}");
    assert!(!text.contains("hunter2"), "the password must not appear: {text}");
    assert_eq!(err.downcast_ref::<SourceError>().unwrap().code(), "source_unauthorized");

    let mut cfg = config(&fake);
    cfg.auth = SourceAuth::Oauth2 {
        token_url: format!("{}/oauth_token.do", fake.base_url).parse().unwrap(),
        client_id: "dastra".into(),
        client_secret: Secret::new("not-the-secret"),
        scope: None,
        refresh_before: Duration::from_secs(60),
    };
    let err = run_until_error(cfg).await;
    let text = format!("{err:#}");
    assert!(text.contains("OAuth token"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
}

#[tokio::test]
async fn offset_pages_follow_link_headers_and_total_count() {
    let fake = FakeServiceNow::with_samples().spawn().await.unwrap();
    let http = SourceHttp::new(
        "servicenow",
        SourceAuth::Basic { username: "admin".into(), password: Secret::new("admin") },
        HttpSettings::default(),
    )
    .unwrap();
    let mut url: url::Url = format!(
        "{}/api/now/table/cmdb_ci?sysparm_limit=5&sysparm_query=ORDERBYname&sysparm_fields=name",
        fake.base_url
    )
    .parse()
    .unwrap();
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let resp = http.get_json(url.clone(), "/api/now/table/cmdb_ci").await.unwrap();
        assert_eq!(resp.headers["x-total-count"], "13");
        names.extend(resp.body["result"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()));
        pages += 1;
        match next_link(&resp.headers) {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "ORDERBYname across pages");
    assert_eq!(names.len(), 13);

    // The same with sysparm_offset driven by the helper.
    let client = ServiceNowClient::new(
        &fake.base_url.parse().unwrap(),
        SourceAuth::Basic { username: "admin".into(), password: Secret::new("admin") },
        HttpSettings::default(),
    )
    .unwrap();
    let mut p = offset_pages(4);
    let mut ids = Vec::new();
    while let Some((offset, limit)) = p.current() {
        let page = client.table("cmdb_ci", "ORDERBYsys_id", &["sys_id".into()], limit, Some(offset)).await.unwrap();
        p.next_page(page.records.len());
        ids.extend(page.records.into_iter().map(|r| r["sys_id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(ids.len(), 13);
}

#[tokio::test]
async fn oauth_tokens_are_cached_and_refreshed_after_a_401() {
    let fake = FakeServiceNow::with_samples().spawn().await.unwrap();
    let http = SourceHttp::new("servicenow", oauth(&fake), HttpSettings::default()).unwrap();
    let url: url::Url = format!("{}/api/now/table/core_company?sysparm_limit=1", fake.base_url).parse().unwrap();
    for _ in 0..3 {
        http.get_json(url.clone(), "/api/now/table/core_company").await.unwrap();
    }
    assert_eq!(http.token_fetches(), 1, "one token for three requests");
    fake.state.revoke_tokens();
    http.get_json(url.clone(), "/api/now/table/core_company").await.unwrap();
    assert_eq!(http.token_fetches(), 2, "a 401 fetches a new token once");
    assert_eq!(fake.state.count_status(401), 1);
}

#[tokio::test]
async fn throttling_beyond_the_retry_budget_is_a_retryable_error() {
    let fake = FakeServiceNow::with_samples().spawn().await.unwrap();
    let settings = HttpSettings { max_attempts: 3, initial_backoff: Duration::from_millis(10), ..Default::default() };
    let http = SourceHttp::new(
        "servicenow",
        SourceAuth::Basic { username: "admin".into(), password: Secret::new("admin") },
        settings,
    )
    .unwrap();
    fake.state.throttle_next(3);
    let url: url::Url = format!("{}/api/now/table/core_company", fake.base_url).parse().unwrap();
    let err = http.get_json(url.clone(), "/api/now/table/core_company").await.unwrap_err();
    assert_eq!(err.code(), "source_throttled");
    assert_eq!(err.class(), dastra_connect_core::ErrorClass::Retryable);
    assert_eq!(http.throttled(), 3);
    // The next request goes through: Retry-After (1 s) was honoured between attempts.
    http.get_json(url, "/api/now/table/core_company").await.unwrap();
}
