//! ServiceNow helpers on top of the harness shared by the source tests (`tests/harness`): configs and
//! auth for the fake instance, and the ServiceNow source started under the harness's instance name.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::config::Secret;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::source::{SourceAuth, SourceEngine};
use dastra_connect_servicenow::fake::RunningFake;
use dastra_connect_servicenow::{ServiceNowConfig, ServiceNowSource};
pub use dastra_connect_test_harness::*;

/// A source config for the fake, basic auth `admin`/`admin`, fast polling.
pub fn config(fake: &RunningFake) -> ServiceNowConfig {
    let yaml = format!(
        r#"
instance_url: {url}
auth: {{type: basic, username: admin, password: admin}}
sync: {{poll_interval: 300ms, look_back: 60s, page_size: 4, sweep_interval: 1h}}
http: {{initial_backoff: 50ms, max_backoff: 2s}}
"#,
        url = fake.base_url
    );
    let c: ServiceNowConfig = serde_yaml::from_str(&yaml).unwrap();
    c.validate("test").unwrap();
    c
}

/// OAuth2 client credentials against the fake's token endpoint.
pub fn oauth(fake: &RunningFake) -> SourceAuth {
    SourceAuth::Oauth2 {
        token_url: format!("{}/oauth_token.do", fake.base_url).parse().unwrap(),
        client_id: "dastra".into(),
        client_secret: Secret::new("dastra-secret"),
        scope: None,
        refresh_before: Duration::from_secs(60),
    }
}

/// The ServiceNow source running as instance [`SOURCE`].
pub fn start_source(bus: &BusConfig, topics: &Topics, config: ServiceNowConfig) -> RunningSource {
    RunningSource::start(bus, topics, Box::new(ServiceNowSource::new(config)))
}

/// The state-store names the source uses (for tests that inspect checkpoints).
pub fn store_names(bus: &BusConfig, topics: &Topics) -> [String; 2] {
    let (ctx, _, _) = context(SOURCE, bus, topics);
    SourceEngine::store_names(&ctx)
}
