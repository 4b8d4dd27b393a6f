//! A crash between a relationship's POST and its ledger write (the POST applied, its answer lost):
//! the open intent names the version it attempted and the ends it linked, so an older version
//! redelivered after the restart is stale (it used to be looked up with its own ends, missed, and
//! POSTed as a second link), and a newer version finds the link the lost POST made and moves it in
//! place. A later delete then leaves no link behind. Runs `apply` against the emulator with the
//! ledger in a real NATS KV bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use dastra_connect_core::event::{EntityKey, Payload, Relationship};
use dastra_connect_dastra::sink::apply::{ApplyCtx, Outcome, SkipReason, apply};
use dastra_connect_dastra::sink::config::SinkPolicy;
use dastra_connect_dastra::sink::ledger::EntryState;
use dastra_emulator::{FaultKind, FaultRule};

fn link(target: &str, label: &str, deleted: bool) -> Payload {
    Payload::Relationship(Relationship {
        deleted,
        origin: (!deleted).then(|| EntityKey::parse("cmdb:asset:a0").unwrap()),
        target: (!deleted).then(|| EntityKey::parse(target).unwrap()),
        label: (!deleted).then(|| label.to_owned()),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_resolves_with_the_attempted_version_never_an_older_one() {
    let rig = ApplyRig::start("ledger-intent").await;
    let emu = &rig.emu;
    // A client that gives up on a hung answer quickly (the rig's waits for the default timeout).
    let mut config = sink_config(emu);
    config.dastra.request_timeout = Duration::from_millis(500);
    let quota = dastra_connect_dastra::QuotaLimiter::new(&config.dastra.quota);
    let client = dastra_connect_dastra::DastraClient::new(&config.dastra, quota, None).unwrap();
    let policy = SinkPolicy::default();
    let ctx = ApplyCtx { client: &client, ledger: &rig.ledger, policy: &policy, objects: None, batcher: None };
    for a in ["a0", "a1", "a2"] {
        step(&ctx, &event(&format!("cmdb:asset:{a}"), 1, software_asset(a))).await;
    }
    let id = |a: &str| rig.ledger.live_id(&EntityKey::parse(&format!("cmdb:asset:{a}")).unwrap()).unwrap();
    let key = EntityKey::parse("cmdb:relationship:r0").unwrap();

    // v4 (to a2) is POSTed; Dastra stores it and the answer never comes (the process "dies").
    emu.state
        .add_fault(
            FaultRule::always(FaultKind::TimeoutAfterWrite { hang_ms: 2000 })
                .method("POST")
                .route("GenericRelationships"),
        )
        .unwrap();
    let err = apply(&ctx, &event("cmdb:relationship:r0", 4, link("cmdb:asset:a2", "v4", false))).await;
    assert!(err.is_err(), "the POST's answer was lost: {err:?}");
    emu.state.clear_faults();
    assert_eq!(generic_links(emu), vec![(id("a2"), "v4".to_owned())], "Dastra holds v4's link");
    let intent = rig.ledger.get(&key).unwrap();
    assert_eq!(intent.state, EntryState::Intent);
    assert_eq!(intent.attempt.as_deref(), Some(event("x:asset:x", 4, software_asset("x")).sequence.as_str()));

    // After the restart, v1 (to a1) is redelivered first: stale, nothing sent.
    let before = requests(emu);
    let v1 = step(&ctx, &event("cmdb:relationship:r0", 1, link("cmdb:asset:a1", "v1", false))).await;
    assert!(matches!(v1, Outcome::Skipped { reason: SkipReason::Stale, .. }), "{v1:?}");
    assert_eq!(requests(emu), before, "an older version than the attempted create sends nothing");

    // v5 (to a1) finds the link v4's lost POST made, by the ends the intent recorded, and moves it.
    let v5 = step(&ctx, &event("cmdb:relationship:r0", 5, link("cmdb:asset:a1", "v5", false))).await;
    assert!(matches!(v5, Outcome::Applied { .. }), "{v5:?}");
    assert_eq!(generic_links(emu), vec![(id("a1"), "v5".to_owned())], "one link, at v5");
    assert_eq!(rig.ledger.get(&key).unwrap().state, EntryState::Live);

    // The source deletes the link: nothing is left behind.
    step(&ctx, &event("cmdb:relationship:r0", 6, link("", "", true))).await;
    assert_eq!(generic_links(emu), Vec::<(String, String)>::new());
}
