//! The source fingerprint short-cut of the sink (`sink::apply::fingerprint`): a repeat of the same
//! source content costs no request and no mapping, but whatever the mapping depends on beyond the
//! payload still counts — a referenced entity re-created under a new Dastra id makes the next
//! repeat of a processing send the new id, and the actor-matching policy is part of an Actor's
//! fingerprint. Runs `apply` against the emulator with the ledger in a real NATS KV bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use dastra_connect_core::event::enums::{AssetType, ProcessingState, ProcessingType};
use dastra_connect_core::event::{Actor, Asset, ChangeEvent, DataProcessing, EntityKey, Payload};
use dastra_connect_dastra::sink::apply::fingerprint::source_fingerprint;
use dastra_connect_dastra::sink::apply::{ApplyCtx, Outcome, SkipReason};
use dastra_connect_dastra::sink::config::{ActorKey, SinkPolicy};
use dastra_connect_dastra::sink::ledger::EntryState;

fn asset(label: &str) -> Payload {
    Payload::Asset(Asset { label: Some(label.into()), asset_type: Some(AssetType::Software), ..Default::default() })
}

fn processing(snapshot: bool) -> Payload {
    Payload::DataProcessing(DataProcessing {
        snapshot,
        label: Some("Payroll".into()),
        processing_type: Some(ProcessingType::Default),
        processing_state: Some(ProcessingState::InProduction),
        assets: vec![EntityKey::parse("cmdb:asset:crm").unwrap()],
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_cost_nothing_until_a_reference_changes_its_dastra_id() {
    let rig = ApplyRig::start("ledger-fingerprint").await;
    let (emu, client, ledger) = (&rig.emu, &rig.client, &rig.ledger);
    let policy = SinkPolicy::default();
    let ctx = ApplyCtx { client, ledger, policy: &policy, objects: None, batcher: None };

    step(&ctx, &event("cmdb:asset:crm", 1, asset("CRM"))).await;
    let created = step(&ctx, &event("grc:processing:payroll", 1, processing(false))).await;
    assert!(matches!(created, Outcome::Applied { .. }), "{created:?}");
    let key = EntityKey::parse("grc:processing:payroll").unwrap();
    let entry = ledger.get(&key).unwrap();
    assert_eq!(entry.state, EntryState::Live);
    assert!(entry.src.is_some(), "the applied entry records the source fingerprint");

    // A snapshot sweep repeats the same content: skipped as unchanged, nothing sent, the version
    // moves on (so an older event arriving later is stale).
    let before = requests(emu);
    let repeat = step(&ctx, &event("grc:processing:payroll", 2, processing(true))).await;
    assert!(matches!(repeat, Outcome::Skipped { reason: SkipReason::Unchanged, .. }), "{repeat:?}");
    assert_eq!(requests(emu), before, "a repeat sends nothing");
    let after = ledger.get(&key).unwrap();
    assert_eq!(after.src, entry.src);
    assert!(after.is_stale(&dastra_connect_core::event::sequence_from_u64(2)));

    // The asset is deleted and comes back: Dastra gives it a new id. The processing's payload is
    // the same, but what it maps to is not: the repeat must reach Dastra with the new asset id.
    let old_asset = ledger.live_id(&EntityKey::parse("cmdb:asset:crm").unwrap()).unwrap();
    step(&ctx, &event("cmdb:asset:crm", 2, Payload::tombstone(dastra_connect_core::event::EntityKind::Asset, false)))
        .await;
    step(&ctx, &event("cmdb:asset:crm", 3, asset("CRM"))).await;
    let new_asset = ledger.live_id(&EntityKey::parse("cmdb:asset:crm").unwrap()).unwrap();
    assert_ne!(old_asset, new_asset, "the emulator gave the re-created asset a new id");
    let resent = step(&ctx, &event("grc:processing:payroll", 3, processing(true))).await;
    assert!(matches!(resent, Outcome::Applied { .. }), "the new reference is sent: {resent:?}");
    let dp = emu.state.entities(1, "DataProcessings").into_iter().find(|d| d["ref"] == key.as_str()).unwrap();
    let ids: Vec<String> = dp["assets"].as_array().unwrap().iter().map(|a| a["id"].to_string()).collect();
    assert_eq!(ids, vec![new_asset], "{dp}");
    assert_ne!(ledger.get(&key).unwrap().src, entry.src);
}

#[tokio::test]
async fn the_actor_matching_policy_is_part_of_an_actors_fingerprint() {
    let rig = ApplyRig::start("ledger-fingerprint-actor").await;
    let (client, ledger) = (&rig.client, &rig.ledger);
    let natural = SinkPolicy::default();
    let by_field = SinkPolicy { actor_key: ActorKey::CustomField { name: "sourceKey".into() }, ..Default::default() };
    let actor = Payload::Actor(Actor { company_name: Some("ACME".into()), ..Default::default() });
    let e1 = event("vm:actor:acme", 1, actor.clone());
    let mut e2 = event("vm:actor:acme", 2, actor);
    let fp = |policy: &SinkPolicy, e: &ChangeEvent| {
        source_fingerprint(&ApplyCtx { client, ledger, policy, objects: None, batcher: None }, e).unwrap()
    };
    assert_eq!(fp(&natural, &e1), fp(&natural, &e2), "the version is not content");
    e2.data.set_snapshot(true);
    assert_eq!(fp(&natural, &e1), fp(&natural, &e2), "nor is the snapshot flag");
    assert_ne!(fp(&natural, &e1), fp(&by_field, &e1), "the policy decides where the key goes");
}
