//! `dastra-connect schemas register` puts every payload schema in a schema registry under its
//! TopicNameStrategy subject, idempotently (the registry here is the in-repo stub of Confluent's REST
//! routes; the stub itself is cross-checked against confluent-kafka's client in core's tests).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use dastra_connect_core::codec::registry::stub::StubRegistry;

fn register(url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dastra-connect"))
        .args(["schemas", "register", "--registry", url, "--prefix", "acme"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payload_schema_is_registered_once() {
    let stub = StubRegistry::new();
    let (url, _task) = stub.spawn().await.unwrap();
    let url = url.to_string();
    let first = tokio::task::spawn_blocking({
        let url = url.clone();
        move || register(&url)
    })
    .await
    .unwrap();
    let subjects: Vec<&str> = first.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(subjects.len(), 9, "{first}");
    assert!(
        subjects.contains(&"acme.changes.asset-value")
            && subjects.contains(&"acme.changes.dsr-value")
            && subjects.contains(&"acme.changes.dataset-value"),
        "{first}"
    );
    assert_eq!(stub.schema_count(), 9);
    // Again: same ids, nothing new.
    let second = tokio::task::spawn_blocking(move || register(&url)).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(stub.schema_count(), 9);
}
