//! Freshness under backlog, through the real driver on a real bus (nats-server, MockCluster) with
//! the quota compressed (Dastra's 500/60 s becomes 20/2 s in both the emulator and the sink): a
//! backfill of snapshot events is being drained when live changes arrive. With priority lanes the
//! live changes are applied while much of the backlog is still to go; per key nothing reorders (a
//! live change of a key whose sweep event is queued or running comes after it, never before); the
//! final Dastra state is the newest version of every key. Everything is judged by the order of the
//! emulator's request log, not by wall time: the backlog's drain is bound by the quota (at most 20
//! requests per 2 s), so it lasts seconds while the live changes take milliseconds to publish.
//! With `priority_lanes: false` the same scenario applies the live changes behind the backlog.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::{ActorType, AssetType, VendorType};
use dastra_connect_core::event::{Actor, Asset, ChangeEvent, Payload};
use dastra_connect_dastra::QuotaWindow as ClientWindow;
use dastra_emulator::{LoggedRequest, QuotaWindow};

const LIMIT: u32 = 20;
const PER: Duration = Duration::from_secs(2);
/// Backfill events (one Asset each), published before the sink starts.
const BACKLOG: usize = 120;
/// Live changes (one Actor each), published once the backlog is being drained.
const LIVE: usize = 6;
/// A key whose sweep event is among the first of the backlog (started, or done, when its live
/// change arrives) and one whose sweep event is the last (still queued: coalesced).
const EARLY: &str = "fresh:asset:early";
const LATE: &str = "fresh:asset:late";

fn asset(label: &str, snapshot: bool) -> Payload {
    Payload::Asset(Asset {
        snapshot,
        label: Some(label.to_owned()),
        asset_type: Some(AssetType::Software),
        ..Default::default()
    })
}

fn backlog() -> Vec<ChangeEvent> {
    let mut events = vec![event(EARLY, 1, asset("Early sweep", true))];
    events.extend((0..BACKLOG).map(|i| event(&format!("fresh:asset:b{i}"), 1, asset(&format!("Backfill {i}"), true))));
    events.push(event(LATE, 1, asset("Late sweep", true)));
    events
}

fn live() -> Vec<ChangeEvent> {
    let mut events: Vec<ChangeEvent> = (0..LIVE)
        .map(|i| {
            let data = Payload::Actor(Actor {
                actor_type: Some(ActorType::Morale),
                vendor_type: Some(VendorType::B2B),
                company_name: Some(format!("Live {i}")),
                ..Default::default()
            });
            event(&format!("fresh:actor:live{i}"), 1, data)
        })
        .collect();
    events.push(event(EARLY, 2, asset("Early live", false)));
    events.push(event(LATE, 2, asset("Late live", false)));
    events
}

/// Sequence numbers of the logged requests that write `field` with a value starting with
/// `prefix`: a create's body field, or an update's JSON Patch operation on `/<field>` (a live change
/// to a key whose sweep was already applied is a PATCH; one that arrived while the sweep was still
/// queued is coalesced into it, and the create carries the live value).
fn seqs(log: &[LoggedRequest], field: &str, prefix: &str) -> Vec<u64> {
    let path = format!("/{field}");
    let writes = |b: &serde_json::Value| match b {
        serde_json::Value::Array(ops) => ops
            .iter()
            .any(|op| op["path"] == path.as_str() && op["value"].as_str().is_some_and(|v| v.starts_with(prefix))),
        _ => b[field].as_str().is_some_and(|v| v.starts_with(prefix)),
    };
    log.iter().filter(|r| r.body.as_ref().is_some_and(writes)).map(|r| r.seq).collect()
}

/// Entities of ours (the emulator's workspace is seeded with others), `ref` → `field`.
fn by_ref(emu: &dastra_emulator::RunningEmulator, family: &str, field: &str) -> BTreeMap<String, String> {
    emu.state
        .entities(1, family)
        .iter()
        .filter(|e| e["ref"].as_str().is_some_and(|r| r.starts_with("fresh:")))
        .map(|e| (e["ref"].as_str().unwrap_or_default().to_owned(), e[field].as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// What the scenario's request log shows.
struct Run {
    /// Backfill requests the emulator logged after the last live change's request.
    backfill_after_live: usize,
}

async fn scenario(broker: Broker, lanes: bool) -> Run {
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    emu.state.set_quota(vec![QuotaWindow { limit: LIMIT, period: PER }]);
    let mut cfg = sink_config(&emu);
    cfg.dastra.quota.windows = vec![ClientWindow { limit: LIMIT, per: PER }];
    cfg.dastra.quota.safety_margin = Duration::from_millis(100);
    cfg.priority_lanes = lanes;
    let publisher = bus.publisher().await.unwrap();
    publish(publisher.as_ref(), &topics, &backlog()).await;
    let sink = RunningSink::start("sink", &bus, &topics, cfg);
    // The live changes arrive once the drain has begun (the early sweep event among the first
    // started): from then on the backlog needs at least (BACKLOG - LIMIT) / LIMIT windows more.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while seqs(&emu.state.request_log(), "label", "Backfill").len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the backlog never started draining");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publish(publisher.as_ref(), &topics, &live()).await;
    sink.wait_idle(Duration::from_secs(180)).await;
    sink.stop().await;

    let c = emu.state.counters();
    assert_eq!(c.too_many_requests, 0, "{c:?}");
    // The final state is the model: the newest version of every key, each entity once.
    let mut assets: BTreeMap<String, String> =
        (0..BACKLOG).map(|i| (format!("fresh:asset:b{i}"), format!("Backfill {i}"))).collect();
    assets.insert(EARLY.into(), "Early live".into());
    assets.insert(LATE.into(), "Late live".into());
    assert_eq!(by_ref(&emu, "Assets", "label"), assets);
    let assets_of_ours = emu
        .state
        .entities(1, "Assets")
        .iter()
        .filter(|e| e["ref"].as_str().is_some_and(|r| r.starts_with("fresh:")))
        .count();
    assert_eq!(assets_of_ours, BACKLOG + 2, "no duplicate entity");
    // Actors carry no `ref` in Dastra: they are told apart by name.
    let mut live_actors: Vec<String> = emu
        .state
        .entities(1, "Actors")
        .iter()
        .filter_map(|e| e["companyName"].as_str().filter(|n| n.starts_with("Live ")).map(str::to_owned))
        .collect();
    live_actors.sort();
    assert_eq!(live_actors, (0..LIVE).map(|i| format!("Live {i}")).collect::<Vec<_>>(), "each live Actor once");

    let log = emu.state.request_log();
    // Per key, a sweep event is never applied after the live change that followed it.
    for (key, sweep, live) in [(EARLY, "Early sweep", "Early live"), (LATE, "Late sweep", "Late live")] {
        let (sweep, live) = (seqs(&log, "label", sweep), seqs(&log, "label", live));
        assert!(!live.is_empty(), "{key}: its live change was never sent");
        assert!(
            sweep.iter().all(|s| live.iter().all(|l| s < l)),
            "{key}: sweep requests {sweep:?} not all before the live ones {live:?}"
        );
    }
    let backfill = seqs(&log, "label", "Backfill");
    assert_eq!(backfill.len(), BACKLOG, "one create per backfill Asset");
    let mut live_seqs = seqs(&log, "companyName", "Live");
    live_seqs.extend(seqs(&log, "label", "Early live"));
    live_seqs.extend(seqs(&log, "label", "Late live"));
    let last_live = live_seqs.iter().copied().max().unwrap();
    let backfill_after_live = backfill.iter().filter(|s| **s > last_live).count();
    eprintln!(
        "lanes {lanes}: {} requests; the last live change answered with {backfill_after_live} of {BACKLOG} backfill requests still to go",
        c.total
    );
    Run { backfill_after_live }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_changes_overtake_a_backfill_on_nats() {
    let run = scenario(Broker::nats().await, true).await;
    assert!(
        run.backfill_after_live >= BACKLOG / 4,
        "live changes waited behind the backlog: {}",
        run.backfill_after_live
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_changes_overtake_a_backfill_on_kafka() {
    let run = scenario(Broker::kafka(), true).await;
    assert!(
        run.backfill_after_live >= BACKLOG / 4,
        "live changes waited behind the backlog: {}",
        run.backfill_after_live
    );
}

/// The switch is what makes the difference: without lanes the keys start in the order they were
/// read, so the live changes start after every backfill key (only backfill work already started,
/// at most `max_in_flight` keys, can still be answered after them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_lanes_live_changes_wait_behind_the_backfill() {
    let run = scenario(Broker::nats().await, false).await;
    assert!(run.backfill_after_live < BACKLOG / 4, "{} backfill requests after the live ones", run.backfill_after_live);
}
