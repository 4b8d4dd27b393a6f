//! The topic reader's health checks include its schema registry (`GET /subjects`), for
//! `type: debezium`, `type: topic` and `type: datahub`: the in-repo registry stub up → ok; the
//! stub stopped → the check fails, transient, with a reason naming the registry and the call; a
//! registry refusing the credentials (401) → fatal; no registry configured → no such check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dastra_connect_test_harness as common;

use axum::http::StatusCode;
use common::Broker;
use dastra_connect_core::codec::RegistryConfig;
use dastra_connect_core::codec::registry::stub::StubRegistry;
use dastra_connect_core::connector::{Connector, Topics};
use dastra_connect_core::health::HealthCheck;
use dastra_connect_debezium::{DebeziumSource, ReaderConfig, TopicSource};
use serde_json::json;
use std::sync::Arc;

fn reader(registry: Option<&url::Url>) -> ReaderConfig {
    let mut c: ReaderConfig = serde_json::from_value(json!({"topics": [{"topic": "erp.public.suppliers",
        "mapping": "{kind: \"actor\", id: .id, data: {}}", "key": ".id", "version": ".rev"}]}))
    .unwrap();
    c.registry = registry.map(|u| RegistryConfig::new(u.clone()));
    c
}

fn registry_check(checks: &[Arc<dyn HealthCheck>]) -> Option<Arc<dyn HealthCheck>> {
    checks.iter().find(|c| c.name() == "schema_registry").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_is_checked_up_down_and_refusing() {
    let Broker::Kafka(kafka) = Broker::kafka() else { unreachable!() };
    let bus = kafka.bus_config();
    let (ctx, _metrics, _admin) = common::context("cdc", &bus, &Topics::default());
    let stub = StubRegistry::new();
    let (url, server) = stub.spawn().await.unwrap();

    // Up: every reader type lists the check after the bus's, and it passes with one request.
    let connectors: Vec<Box<dyn Connector>> =
        vec![Box::new(DebeziumSource::new(reader(Some(&url)))), Box::new(TopicSource::new(reader(Some(&url))))];
    for c in &connectors {
        let checks = c.health_checks(&ctx).unwrap();
        assert_eq!(checks.iter().map(|c| c.name()).collect::<Vec<_>>(), ["bus", "schema_registry"]);
    }
    let check = registry_check(&connectors[0].health_checks(&ctx).unwrap()).unwrap();
    let before = stub.request_count();
    check.check().await.unwrap();
    assert_eq!(stub.request_count(), before + 1, "one cheap call");

    // Down: a transient failure naming the registry and the call.
    server.abort();
    let _ = server.await;
    let err = check.check().await.unwrap_err();
    assert!(!err.fatal, "{err}");
    assert_eq!(err.check, "schema_registry");
    assert!(err.message.contains(&format!("GET {url}subjects failed")), "{err}");
    assert!(err.message.contains("unreachable"), "{err}");

    // Refusing the credentials: fatal, and the password is not in the message.
    let app = axum::Router::new().route(
        "/subjects",
        axum::routing::get(|| async {
            (StatusCode::UNAUTHORIZED, "{\"error_code\":401,\"message\":\"Unauthorized\"}")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refusing = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut cfg = reader(Some(&refusing));
    cfg.registry.as_mut().unwrap().username = Some("svc".into());
    cfg.registry.as_mut().unwrap().password = Some(dastra_connect_core::config::Secret::new("s3cr3t-registry"));
    let check = registry_check(&DebeziumSource::new(cfg).health_checks(&ctx).unwrap()).unwrap();
    let err = check.check().await.unwrap_err();
    assert!(err.fatal, "{err}");
    assert!(err.message.contains("refused the credentials (HTTP 401)"), "{err}");
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
    task.abort();

    // No registry anywhere: only the bus is checked.
    let checks = DebeziumSource::new(reader(None)).health_checks(&ctx).unwrap();
    assert!(registry_check(&checks).is_none());
}
