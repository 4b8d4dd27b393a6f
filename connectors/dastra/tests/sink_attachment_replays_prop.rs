//! Uploads follow contents, not deliveries: for random sequences of versions of one DSR and one
//! task whose file comes by URL (a new URL almost every time, as pre-signed URLs do), inline or with
//! a declared checksum, and whose content changes or not, Dastra receives exactly one upload per
//! change of content (the first included) and holds the last content. Runs `apply` against the
//! emulator with the ledger in a real NATS KV bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Path;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use dastra_connect_core::event::enums::DataSubjectPurposeType;
use dastra_connect_core::event::{Attachment, DataSubjectRequest, Payload, Task};
use dastra_connect_dastra::sink::apply::ApplyCtx;
use dastra_connect_dastra::sink::config::SinkPolicy;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sha2::Digest;

const CONTENTS: [&[u8]; 3] = [b"%PDF first content", b"%PDF second content", b"%PDF third content"];

/// How one version carries its file.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// A URL (the `u32` makes it differ from the previous one, or not).
    Url(u32),
    /// Inline Base64.
    Inline,
    /// A URL plus the content's declared SHA-256.
    Declared(u32),
}

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![(0u32..3).prop_map(Source::Url), Just(Source::Inline), (0u32..3).prop_map(Source::Declared)]
}

/// Serves `CONTENTS[n]` at `/c/{n}/{salt}/file.pdf`.
async fn file_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/c/{n}/{salt}/file.pdf",
        axum::routing::get(|Path((n, _salt)): Path<(usize, u32)>| async move { CONTENTS[n].to_vec() }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://127.0.0.1:{port}")
}

fn attachment(files: &str, content: usize, src: Source) -> Attachment {
    let mut a = Attachment { file_name: "file.pdf".into(), ..Default::default() };
    match src {
        Source::Url(salt) => a.url = format!("{files}/c/{content}/{salt}/file.pdf"),
        Source::Inline => a.content_base64 = Some(STANDARD.encode(CONTENTS[content])),
        Source::Declared(salt) => {
            a.url = format!("{files}/c/{content}/{salt}/file.pdf");
            a.sha256 = Some(hex::encode(sha2::Sha256::digest(CONTENTS[content])));
        }
    }
    a
}

fn uploads(rig: &ApplyRig, route: &str) -> usize {
    rig.emu.state.request_log().iter().filter(|r| r.method == "POST" && r.route == route).count()
}

#[test]
fn uploads_equal_content_changes() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (rig, files) = rt.block_on(async { (ApplyRig::start("ledger-attachment-prop").await, file_server().await) });
    let policy = SinkPolicy::default();
    let ctx = ApplyCtx { client: &rig.client, ledger: &rig.ledger, policy: &policy, objects: None, batcher: None };
    let case = AtomicU64::new(0);
    let mut runner = TestRunner::new(Config { cases: 24, ..Config::default() });
    let versions = prop::collection::vec((0usize..3, source()), 1..7);
    runner
        .run(&versions, |versions| {
            let n = case.fetch_add(1, Ordering::SeqCst);
            rt.block_on(async {
                let changes = versions.iter().enumerate().filter(|(i, v)| *i == 0 || versions[i - 1].0 != v.0).count();
                let dsr_route = "/v1/ws/{workspaceId}/DataSubjectAttachments/{id}";
                let task_route = "/v1/ws/{workspaceId}/CloudStorage/Dastra";
                let (dsr_before, task_before) = (uploads(&rig, dsr_route), uploads(&rig, task_route));
                for (i, (content, src)) in versions.iter().enumerate() {
                    let a = attachment(&files, *content, *src);
                    let dsr = Payload::DataSubjectRequest(DataSubjectRequest {
                        title: Some("Access request".into()),
                        locale: Some("en".into()),
                        purposes: vec![DataSubjectPurposeType::Access],
                        attachments: vec![a.clone()],
                        ..Default::default()
                    });
                    let task = Payload::Task(Task {
                        label: Some("Review".into()),
                        attachments: vec![a],
                        ..Default::default()
                    });
                    step(&ctx, &event(&format!("web:dsr:p{n}"), i as u64 + 1, dsr)).await;
                    step(&ctx, &event(&format!("jira:task:p{n}"), i as u64 + 1, task)).await;
                }
                let dsr_uploads = uploads(&rig, dsr_route) - dsr_before;
                let task_uploads = uploads(&rig, task_route) - task_before;
                prop_assert_eq!(dsr_uploads, changes, "DSR uploads for {:?}", versions);
                prop_assert_eq!(task_uploads, changes, "task uploads for {:?}", versions);
                // Dastra holds the last content.
                let last = CONTENTS[versions.last().unwrap().0];
                let newest = rig.emu.state.entities(1, "CloudStorage").last().cloned().unwrap();
                prop_assert_eq!(STANDARD.decode(newest["_contentBase64"].as_str().unwrap()).unwrap(), last.to_vec());
                Ok(())
            })
        })
        .unwrap();
}
