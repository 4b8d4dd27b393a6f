//! DSR attachments are fetched only from where `policy.attachments` allows: never a link-local
//! address (cloud metadata), only listed hosts when a list is given, and never through a redirect
//! to another host; the refusal is permanent (DLQ) and its message names no URL path or query
//! (pre-signed URLs carry credentials). Runs `apply` against the emulator, with a real HTTP file
//! server and the ledger in a real NATS KV bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use dastra_connect_core::Classify;
use dastra_connect_core::ErrorClass;
use dastra_connect_core::event::enums::{DataSubjectPurposeType, DataSubjectRequestState};
use dastra_connect_core::event::{Attachment, DataSubjectRequest, Payload};
use dastra_connect_dastra::sink::apply::{ApplyCtx, ApplyError, apply};
use dastra_connect_dastra::sink::config::{AttachmentPolicy, SinkPolicy};

fn dsr_with(url: &str) -> Payload {
    Payload::DataSubjectRequest(DataSubjectRequest {
        title: Some("Access request".into()),
        locale: Some("en".into()),
        purposes: vec![DataSubjectPurposeType::Access],
        state: Some(DataSubjectRequestState::Active),
        email: Some("jane@example.org".into()),
        given_name: Some("Jane".into()),
        family_name: Some("Doe".into()),
        attachments: vec![Attachment {
            file_name: "consent.pdf".into(),
            url: url.into(),
            content_type: Some("application/pdf".into()),
            sha256: None,
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// A file server: `/redirect` answers 302 to the same path on `localhost` (another host name for
/// the same server); every request is counted.
async fn file_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counted = hits.clone();
    let app = axum::Router::new()
        .route(
            "/redirect",
            axum::routing::get(move || async move {
                (axum::http::StatusCode::FOUND, [("location", format!("http://localhost:{port}/file.pdf"))])
            }),
        )
        .route("/file.pdf", axum::routing::get(|| async { "%PDF-1.4 consent" }))
        .layer(axum::middleware::from_fn(move |req, next: axum::middleware::Next| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                next.run(req).await
            }
        }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}"), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_urls_outside_the_policy_are_refused_without_being_fetched_or_logged() {
    let rig = ApplyRig::start("ledger-attachments").await;
    let (client, ledger) = (&rig.client, &rig.ledger);
    let (files, hits) = file_server().await;
    let any = SinkPolicy::default();
    let listed = SinkPolicy {
        attachments: AttachmentPolicy { allowed_hosts: vec!["files.example.com".into()], ..Default::default() },
        ..Default::default()
    };
    let run = |policy: &SinkPolicy, key: &str, url: &str| {
        let (policy, event) = (policy.clone(), event(key, 1, dsr_with(url)));
        async move { apply(&ApplyCtx { client, ledger, policy: &policy, objects: None, batcher: None }, &event).await }
    };
    let refused = |r: Result<_, ApplyError>| match r {
        Err(e) => {
            assert_eq!(e.class(), ErrorClass::Permanent, "{e}");
            e
        }
        Ok(o) => panic!("fetched although refused: {o:?}"),
    };

    // The cloud metadata endpoint, with credentials in the query.
    let e =
        refused(run(&any, "web:dsr:meta", "http://169.254.169.254/latest/meta-data/?X-Amz-Signature=topsecret").await);
    assert_eq!(e.code(), "attachment_not_allowed");
    let text = e.to_string();
    assert!(!text.contains("topsecret") && !text.contains("meta-data"), "{text}");

    // A host not on the list.
    let e = refused(run(&listed, "web:dsr:unlisted", &format!("{files}/file.pdf")).await);
    assert_eq!(e.code(), "attachment_not_allowed");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was fetched");

    // A redirect to another host name is not followed.
    let e = refused(run(&any, "web:dsr:redirect", &format!("{files}/redirect?token=topsecret")).await);
    assert_eq!(e.code(), "attachment_fetch");
    assert!(e.to_string().contains("302") && !e.to_string().contains("topsecret"), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "only the redirecting URL was requested");

    // Allowed: fetched and uploaded.
    run(&any, "web:dsr:ok", &format!("{files}/file.pdf")).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}
