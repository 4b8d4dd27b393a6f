//! What a generic relationship costs, counted in the emulator's request log: its create is one
//! `POST GenericRelationships` (Dastra answers no body, and the id is no longer read back with a
//! `GET` right after: most links never change again); the first update or delete looks the id up
//! by the ends and label the ledger recorded, so the lookup happens exactly when it is needed —
//! and after a crash between the POST and the ledger write the open intent is still resolved by a
//! lookup, never by a second POST. Runs `apply` against the emulator with the ledger in a real
//! NATS KV bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use dastra_connect_core::event::{EntityKey, Payload, Relationship};
use dastra_connect_dastra::sink::apply::{ApplyCtx, Outcome, apply};
use dastra_connect_dastra::sink::config::SinkPolicy;
use dastra_connect_dastra::sink::ledger::EntryState;
use dastra_emulator::{FaultKind, FaultRule, RunningEmulator};

fn link(target: &str, label: &str) -> Payload {
    Payload::Relationship(Relationship {
        origin: Some(EntityKey::parse("cmdb:asset:a0").unwrap()),
        target: Some(EntityKey::parse(target).unwrap()),
        label: Some(label.to_owned()),
        ..Default::default()
    })
}

fn gone() -> Payload {
    Payload::Relationship(Relationship { deleted: true, ..Default::default() })
}

/// `METHOD route` of every request after `after` (the request log's sequence number).
fn sent_since(emu: &RunningEmulator, after: u64) -> Vec<String> {
    emu.state
        .request_log()
        .iter()
        .filter(|r| r.seq > after)
        .map(|r| format!("{} {}", r.method, r.route.trim_start_matches("/v1/ws/{workspaceId}/")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generic_link_is_one_post_and_its_id_is_looked_up_only_when_needed() {
    let rig = ApplyRig::start("ledger-link-requests").await;
    let emu = &rig.emu;
    let policy = SinkPolicy::default();
    let ctx = ApplyCtx { client: &rig.client, ledger: &rig.ledger, policy: &policy, objects: None, batcher: None };
    for a in ["a0", "a1", "a2"] {
        step(&ctx, &event(&format!("cmdb:asset:{a}"), 1, software_asset(a))).await;
    }
    let id = |a: &str| rig.ledger.live_id(&EntityKey::parse(&format!("cmdb:asset:{a}")).unwrap()).unwrap();

    // Create: the POST alone (it was POST + GET).
    let before = requests(emu);
    let created = step(&ctx, &event("cmdb:relationship:r1", 1, link("cmdb:asset:a1", "hosted by"))).await;
    assert!(matches!(created, Outcome::Applied { requests: 1, .. }), "{created:?}");
    assert_eq!(sent_since(emu, before), ["POST GenericRelationships"]);
    let entry = rig.ledger.get(&EntityKey::parse("cmdb:relationship:r1").unwrap()).unwrap();
    assert_eq!((entry.state, entry.id.as_deref()), (EntryState::Live, None), "live, id not read back");

    // The same content again (a sweep): nothing.
    let before = requests(emu);
    step(&ctx, &event("cmdb:relationship:r1", 2, link("cmdb:asset:a1", "hosted by"))).await;
    assert_eq!(sent_since(emu, before), Vec::<String>::new());

    // A second link with other ends, created meanwhile, must not be mistaken for the first.
    step(&ctx, &event("cmdb:relationship:r2", 1, link("cmdb:asset:a2", "hosted by"))).await;

    // First update: the id is needed now, looked up by the recorded ends and label, then PUT.
    let before = requests(emu);
    step(&ctx, &event("cmdb:relationship:r1", 3, link("cmdb:asset:a1", "operated by"))).await;
    assert_eq!(sent_since(emu, before), ["GET GenericRelationships", "PUT GenericRelationships/{id}"]);
    let mut now = generic_links(emu);
    now.sort();
    let mut want = vec![(id("a1"), "operated by".to_owned()), (id("a2"), "hosted by".to_owned())];
    want.sort();
    assert_eq!(now, want);
    assert!(rig.ledger.get(&EntityKey::parse("cmdb:relationship:r1").unwrap()).unwrap().id.is_some());

    // Its delete knows the id: one request.
    let before = requests(emu);
    step(&ctx, &event("cmdb:relationship:r1", 4, gone())).await;
    assert_eq!(sent_since(emu, before), ["DELETE GenericRelationships/{id}"]);

    // The other link is deleted without ever having had its id read: lookup, then DELETE.
    let before = requests(emu);
    step(&ctx, &event("cmdb:relationship:r2", 2, gone())).await;
    assert_eq!(sent_since(emu, before), ["GET GenericRelationships", "DELETE GenericRelationships/{id}"]);
    assert_eq!(generic_links(emu), Vec::<(String, String)>::new(), "nothing left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_between_the_post_and_the_ledger_write_the_lookup_still_happens() {
    let rig = ApplyRig::start("ledger-link-crash").await;
    let emu = &rig.emu;
    // A client that gives up on a hung answer quickly.
    let mut config = sink_config(emu);
    config.dastra.request_timeout = Duration::from_millis(500);
    let quota = dastra_connect_dastra::QuotaLimiter::new(&config.dastra.quota);
    let client = dastra_connect_dastra::DastraClient::new(&config.dastra, quota, None).unwrap();
    let policy = SinkPolicy::default();
    let ctx = ApplyCtx { client: &client, ledger: &rig.ledger, policy: &policy, objects: None, batcher: None };
    for a in ["a0", "a1"] {
        step(&ctx, &event(&format!("cmdb:asset:{a}"), 1, software_asset(a))).await;
    }
    let a1 = rig.ledger.live_id(&EntityKey::parse("cmdb:asset:a1").unwrap()).unwrap();
    let key = EntityKey::parse("cmdb:relationship:r1").unwrap();

    // The POST is applied and its answer lost (the process "dies" before the ledger write).
    emu.state
        .add_fault(
            FaultRule::always(FaultKind::TimeoutAfterWrite { hang_ms: 2000 })
                .method("POST")
                .route("GenericRelationships"),
        )
        .unwrap();
    let err = apply(&ctx, &event("cmdb:relationship:r1", 1, link("cmdb:asset:a1", "hosted by"))).await;
    assert!(err.is_err(), "the POST's answer was lost: {err:?}");
    emu.state.clear_faults();
    assert_eq!(rig.ledger.get(&key).unwrap().state, EntryState::Intent);
    assert_eq!(generic_links(emu), vec![(a1.clone(), "hosted by".to_owned())]);

    // Redelivered after the restart: the intent says the POST may have happened, so the link is
    // looked up (found) — never POSTed a second time.
    let before = requests(emu);
    let again = step(&ctx, &event("cmdb:relationship:r1", 1, link("cmdb:asset:a1", "hosted by"))).await;
    assert!(matches!(again, Outcome::Applied { .. }), "{again:?}");
    let sent = sent_since(emu, before);
    assert_eq!(sent.first().map(String::as_str), Some("GET GenericRelationships"), "{sent:?}");
    assert!(!sent.iter().any(|r| r.starts_with("POST")), "no second POST: {sent:?}");
    assert_eq!(generic_links(emu), vec![(a1, "hosted by".to_owned())], "exactly one link");
    let entry = rig.ledger.get(&key).unwrap();
    assert_eq!(entry.state, EntryState::Live);
    assert!(entry.id.is_some(), "the lookup read the id");
}
