//! The HubSpot source against the fake HubSpot CRM v3 API on both buses: a first sync of 55
//! companies, the contacts (with a replaced mapping) and the privacy tickets with a search cap of 25
//! crossed by restarting the search (never a 400 from paging past it), eight companies sharing one
//! millisecond, two 429s waited out, a parameter override, a nameless company and a ticket of an
//! unknown request type rejected to the DLQ, tickets of another pipeline never read; an incremental
//! stage change updating the same DSR; archived records published as deletes; a restart from the
//! checkpoint that loses nothing, with a sweep finding a contact deleted for good; a refused token
//! (fatal, also as a health check) and the health check's one read;
//! the daily-quota share; and end to end through the Dastra sink: each privacy ticket one DSR, a
//! stage change updates it, a replay of the whole bus from offset 0 costs no Dastra write.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dastra_connect_test_harness as common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::*;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::{Connector, Topics};
use dastra_connect_core::event::{Actor, ChangeEvent, DataSubjectRequest, EntityKind, Op, Payload};
use dastra_connect_dastra::sink::DastraSink;
use dastra_connect_hubspot::fake::{FakeHubSpot, PRIVACY_PIPELINE, RunningFake, TOKEN};
use dastra_connect_hubspot::{HubSpotConfig, HubSpotObject, HubSpotSource};
use serde_json::json;

fn config(fake: &RunningFake, page_size: u32, cap: u32) -> HubSpotConfig {
    let yaml = format!(
        r#"
url: {url}
token: {TOKEN}
objects:
  - object: companies
    params: {{roles: {{VENDOR: supplier}}}}
  - object: tickets
    filters: {{hs_pipeline: "{PRIVACY_PIPELINE}"}}
    params:
      stages:
        "71234563": {{state: Processing}}
        "71234564": {{state: Closed, closed_reason: Accepted}}
        "71234565": {{state: Closed, closed_reason: NotAdmissible}}
  - object: contacts
    mapping: |
      {{kind: "actor", id: "contact-\(.id)", data: {{actorType: "Physical", vendorType: "B2C",
        givenName: .properties.firstname, familyName: .properties.lastname, email: .properties.email,
        tags: ["hubspot-contact"]}}}}
search_result_cap: {cap}
sync: {{poll_interval: 300ms, look_back: 5s, page_size: {page_size}, sweep_interval: 1h}}
http: {{initial_backoff: 50ms, max_backoff: 1s, max_requests_per_second: 200}}
"#,
        url = fake.base_url
    );
    let c: HubSpotConfig = serde_yaml::from_str(&yaml).unwrap();
    c.validate("test").unwrap();
    c
}

fn actor<'a>(l: &'a BTreeMap<String, ChangeEvent>, key: &str) -> Option<&'a Actor> {
    match l.get(key).map(|e| &e.data) {
        Some(Payload::Actor(a)) => Some(a),
        _ => None,
    }
}

fn dsr<'a>(l: &'a BTreeMap<String, ChangeEvent>, key: &str) -> Option<&'a DataSubjectRequest> {
    match l.get(key).map(|e| &e.data) {
        Some(Payload::DataSubjectRequest(d)) => Some(d),
        _ => None,
    }
}

fn state(d: Option<&DataSubjectRequest>) -> Option<String> {
    d.and_then(|d| d.state).map(|s| s.to_string())
}

async fn scenario(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeHubSpot::with_samples().spawn().await.unwrap();
    fake.state.set_search_cap(25);
    // An import: eight companies with one modification time, then 40 more one by one.
    let bulk: Vec<_> = (0..8).map(|i| json!({"name": format!("Imported {i}"), "country": "FR"})).collect();
    fake.state.insert_many(HubSpotObject::Companies, bulk);
    for i in 0..40 {
        fake.state.insert(HubSpotObject::Companies, json!({"name": format!("Bulk Company {i:02}"), "city": "Nantes"}));
    }
    fake.state.throttle_next(2);
    let cfg = config(&fake, 60, 25);
    let reader = Reader::start(&bus, &topics).await;
    let source = RunningSource::start(&bus, &topics, Box::new(HubSpotSource::new(cfg.clone())));

    // 1. First sync: 55 company Actors (1007 has no name) and 3 contact Actors, DSRs for the four
    // privacy tickets, two rejects.
    reader
        .wait_until("the first sync", Duration::from_secs(60), |r| {
            let l = r.latest();
            count(&l, EntityKind::Actor, Op::Upsert) == 58
                && count(&l, EntityKind::DataSubjectRequest, Op::Upsert) == 4
                && r.dlq().len() == 2
        })
        .await;
    assert_eq!(fake.state.count_status(429), 2, "two 429s answered and waited out");
    assert_eq!(fake.state.count_status(400), 0, "no search paged past the cap of 25: it restarted");
    let latest = reader.latest();
    let ovh = actor(&latest, "hubspot:actor:1001").unwrap();
    assert_eq!(ovh.company_name.as_deref(), Some("OVH SAS"));
    assert_eq!(ovh.tags, vec!["supplier".to_owned()], "the roles override");
    assert_eq!(ovh.country_code.as_deref(), Some("FR"));
    assert!(latest.keys().all(|k| k != "hubspot:dsr:3006"), "a ticket of another pipeline is not read");
    let claire = actor(&latest, "hubspot:actor:contact-2001").unwrap();
    assert_eq!(claire.tags, vec!["hubspot-contact".to_owned()], "the replaced contacts mapping");
    assert_eq!(claire.family_name.as_deref(), Some("Martin"));
    let access = dsr(&latest, "hubspot:dsr:3001").unwrap();
    assert_eq!(state(Some(access)).as_deref(), Some("Open"));
    assert_eq!(access.email.as_deref(), Some("claire.martin@example.fr"), "the ticket's contact");
    assert_eq!(access.given_name.as_deref(), Some("Claire"));
    assert_eq!(access.purposes.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["Access"]);
    assert_eq!(access.expiry_time.unwrap().to_rfc3339(), "2025-06-28T08:15:00+00:00", "created + one month");
    assert_eq!(state(dsr(&latest, "hubspot:dsr:3002")).as_deref(), Some("Processing"));
    let done = dsr(&latest, "hubspot:dsr:3003").unwrap();
    assert_eq!(
        (state(Some(done)).as_deref(), done.closed_reason.map(|c| c.to_string())),
        (Some("Closed"), Some("Accepted".into()))
    );
    let mut dlq: Vec<_> = reader
        .dlq()
        .iter()
        .map(|d| (d.key.clone(), d.header("dastra_dlq_reason"), d.header("dastra_dlq_error")))
        .collect();
    dlq.sort();
    assert_eq!(dlq[0].0, "hubspot:companies:1007");
    assert_eq!(dlq[0].1.as_deref(), Some("mapping_error"));
    assert!(dlq[0].2.as_deref().unwrap().contains("company 1007 has no name"), "{dlq:?}");
    assert_eq!(dlq[1].0, "hubspot:tickets:3005");
    assert!(dlq[1].2.as_deref().unwrap().contains("request type `complaint`"), "{dlq:?}");

    // 2. Incremental: the access request is closed, a company renamed, a new privacy ticket.
    assert!(fake.state.update(
        HubSpotObject::Tickets,
        3001,
        json!({"hs_pipeline_stage": "71234564", "closed_date": "2025-06-02T09:00:00.000Z"})
    ));
    assert!(fake.state.update(HubSpotObject::Companies, 1002, json!({"name": "Brevo (Sendinblue)"})));
    let new_ticket = fake.state.insert(
        HubSpotObject::Tickets,
        json!({"subject": "Correct my address", "hs_pipeline": PRIVACY_PIPELINE, "hs_pipeline_stage": "71234561",
               "dsr_request_type": "rectification", "content": "My street name is misspelled."}),
    );
    fake.state.associate(new_ticket, 2003);
    // 3. Deletes: a company archived in HubSpot.
    assert!(fake.state.archive(HubSpotObject::Companies, 1004));
    reader
        .wait_until(
            "the stage change, the rename, the new ticket and the archived company",
            Duration::from_secs(30),
            |r| {
                let l = r.latest();
                state(dsr(&l, "hubspot:dsr:3001")).as_deref() == Some("Closed")
                    && actor(&l, "hubspot:actor:1002")
                        .is_some_and(|a| a.company_name.as_deref() == Some("Brevo (Sendinblue)"))
                    && dsr(&l, &format!("hubspot:dsr:{new_ticket}"))
                        .is_some_and(|d| d.email.as_deref() == Some("sofia.rossi@example.it"))
                    && l.get("hubspot:actor:1004").is_some_and(|e| e.op == Op::Delete)
            },
        )
        .await;
    assert!(!reader.latest()["hubspot:actor:1004"].data.is_snapshot(), "from the archived listing, not a sweep");
    let dsr_keys: Vec<String> = reader
        .events()
        .iter()
        .filter(|e| e.kind() == EntityKind::DataSubjectRequest)
        .map(|e| e.key.as_str().to_owned())
        .collect();
    assert!(
        dsr_keys.iter().filter(|k| *k == "hubspot:dsr:3001").count() >= 2,
        "the stage change is an update of the same key"
    );

    // 4. Restart with a sweep due; meanwhile a company changes, a ticket is archived and a contact
    // is deleted for good (it never shows in the archived listing: the sweep finds it).
    source.stop().await;
    assert!(fake.state.update(HubSpotObject::Companies, 1005, json!({"name": "Zalando SE (Berlin)"})));
    assert!(fake.state.archive(HubSpotObject::Tickets, 3004));
    assert!(fake.state.purge(HubSpotObject::Contacts, 2002));
    let mut cfg2 = cfg.clone();
    cfg2.sync.sweep_interval = Some(Duration::from_secs(1));
    let source = RunningSource::start(&bus, &topics, Box::new(HubSpotSource::new(cfg2)));
    reader
        .wait_until("the change, the archive and the purge made while down", Duration::from_secs(40), |r| {
            let l = r.latest();
            actor(&l, "hubspot:actor:1005").is_some_and(|a| a.company_name.as_deref() == Some("Zalando SE (Berlin)"))
                && l.get("hubspot:dsr:3004").is_some_and(|e| e.op == Op::Delete)
                && l.get("hubspot:actor:contact-2002").is_some_and(|e| e.op == Op::Delete)
        })
        .await;
    source.stop().await;
    let latest = reader.latest();
    assert!(latest["hubspot:actor:contact-2002"].data.is_snapshot(), "found by the sweep");
    // Nothing lost: every named company in HubSpot has its current name on the bus.
    let latest = reader.latest();
    for c in fake.state.records(HubSpotObject::Companies) {
        let name = c["properties"]["name"].as_str().unwrap();
        if name.is_empty() {
            continue;
        }
        let key = format!("hubspot:actor:{}", c["id"].as_str().unwrap());
        assert_eq!(actor(&latest, &key).and_then(|a| a.company_name.as_deref()), Some(name), "{key}");
    }
    let mut ids: HashMap<String, (String, String, Op)> = HashMap::new();
    for e in reader.events() {
        let v = (e.key.as_str().to_owned(), e.sequence.clone(), e.op);
        assert_eq!(ids.entry(e.id.clone()).or_insert_with(|| v.clone()), &v, "one id, one event");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_source_on_nats() {
    scenario(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_source_on_kafka() {
    scenario(Broker::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_stops_the_source() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeHubSpot::with_samples().spawn().await.unwrap();
    let mut cfg = config(&fake, 50, 10_000);
    cfg.token = dastra_connect_core::config::Secret::new("pat-eu1-not-the-token");
    let source = RunningSource::start(&bus, &topics, Box::new(HubSpotSource::new(cfg)));
    let err = tokio::time::timeout(Duration::from_secs(30), source.task).await.unwrap().unwrap().unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("refused the credentials (401)"), "{text}");
    assert!(!text.contains("not-the-token"), "{text}");
}

/// The source's health checks: a refused token fails the `source` check fatally, without the
/// token; an idle source answers each check with one authenticated search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_read_hubspot_with_the_token() {
    let topics = Topics::default();
    let broker = Broker::kafka();
    let bus = broker.bus(&topics).await;
    let fake = FakeHubSpot::with_samples().spawn().await.unwrap();
    let (ctx, _, _) = context("hubspot", &bus, &topics);
    let mut bad = config(&fake, 50, 10_000);
    bad.token = dastra_connect_core::config::Secret::new("pat-eu1-not-the-token");
    let checks = HubSpotSource::new(bad).health_checks(&ctx).unwrap();
    assert_eq!(checks.iter().map(|c| c.name().to_owned()).collect::<Vec<_>>(), ["bus", "source"]);
    let err = dastra_connect_core::health::run_all(&checks).await.unwrap_err();
    assert!(err.fatal && err.check == "source", "{err:?}");
    assert!(err.message.contains("refused the credentials (401)") && !err.message.contains("not-the-token"), "{err:?}");

    let searches = || fake.state.log().iter().filter(|l| l.path.ends_with("/search") && l.status == 200).count();
    let checks = HubSpotSource::new(config(&fake, 50, 10_000)).health_checks(&ctx).unwrap();
    dastra_connect_core::health::run_all(&checks).await.unwrap();
    dastra_connect_core::health::run_all(&checks).await.unwrap();
    assert_eq!(searches(), 2, "one authenticated read per idle check");
}

/// Writes (not GETs) the emulator answered.
fn writes(emu: &dastra_emulator::RunningEmulator) -> usize {
    emu.state.request_log().iter().filter(|r| r.method != "GET").count()
}

async fn end_to_end(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeHubSpot::with_samples().spawn().await.unwrap();
    let emu = emulator().await;
    let reader = Reader::start(&bus, &topics).await;
    let source = RunningSource::start(&bus, &topics, Box::new(HubSpotSource::new(config(&fake, 50, 10_000))));
    let sink = RunningSink::start(&bus, &topics, sink_config(&emu));
    wait_emulator(&emu, "7 companies and 4 privacy tickets", Duration::from_secs(60), |e| {
        labels(e, "Actors", "companyName").len() == 7 && e.state.entities(1, "DataSubjectRequests").len() == 4
    })
    .await;
    let dsrs = emu.state.entities(1, "DataSubjectRequests");
    let access = dsrs.iter().find(|d| d["refId"] == "hubspot:dsr:3001").unwrap().clone();
    assert_eq!(access["email"], "claire.martin@example.fr");
    assert_eq!(access["title"], "Access request: copy of my data");
    assert!(access["expiryTime"].as_str().is_some_and(|t| t.starts_with("2025-06-28T08:15:00")), "{access}");

    // A later stage change updates the one DSR.
    assert!(fake.state.update(
        HubSpotObject::Tickets,
        3001,
        json!({"hs_pipeline_stage": "71234564", "closed_date": "2025-06-02T09:00:00.000Z"})
    ));
    wait_emulator(&emu, "the access request closed", Duration::from_secs(30), |e| {
        e.state
            .entities(1, "DataSubjectRequests")
            .iter()
            .any(|d| d["refId"] == "hubspot:dsr:3001" && d["state"] == "Closed")
    })
    .await;
    let dsrs = emu.state.entities(1, "DataSubjectRequests");
    assert_eq!(dsrs.len(), 4, "updated, not created again: {dsrs:?}");
    let closed = dsrs.iter().find(|d| d["refId"] == "hubspot:dsr:3001").unwrap();
    assert_eq!(closed["id"], access["id"], "the same Dastra DSR");
    source.stop().await;
    sink.stop().await;

    // A replay: a sink in a new consumer group (same ledger) reads every event again from offset 0.
    let published = reader.events().len() as u64;
    let before = writes(&emu);
    let mut replay_bus = bus.clone();
    match &mut replay_bus {
        BusConfig::Kafka(k) => k.group_id = Some("replay-from-zero".into()),
        BusConfig::Nats(n) => n.group_id = Some("replay-from-zero".into()),
    }
    let (ctx, metrics, _admin) = context(SINK, &replay_bus, &topics);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(Box::new(DastraSink::new(sink_config(&emu))).run(ctx, shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let read: u64 =
            EntityKind::ALL.iter().map(|k| metrics.events_consumed.with_label_values(&[SINK, k.as_str()]).get()).sum();
        if read >= published {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the replaying sink read {read} of {published} events");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(writes(&emu), before, "a replay writes nothing to Dastra");
    assert_eq!(emu.state.entities(1, "DataSubjectRequests").len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_to_dastra_on_nats() {
    end_to_end(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_to_dastra_on_kafka() {
    end_to_end(Broker::kafka()).await;
}

/// The daily quota: at `http.max_api_share` of it the source stops sending requests (poll error
/// `source_api_budget`), and goes on once HubSpot reports usage below the share again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_quota_share_stops_requests_until_usage_drops() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeHubSpot::with_samples().spawn().await.unwrap();
    // 497 of 1000 spent: the fourth counted request reports 501, past half the quota.
    fake.state.set_daily_usage(1000, 497);
    let mut cfg = config(&fake, 50, 10_000);
    cfg.http.max_api_share = 0.5;
    cfg.http.api_budget_recheck = Duration::from_secs(3600);
    let refused = |s: &RunningSource| {
        s.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("dastra_connect_poll_errors_total") && l.contains("source_api_budget"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    async fn wait_refusals(s: &RunningSource, n: f64, refused: impl Fn(&RunningSource) -> f64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while refused(s) < n {
            assert!(tokio::time::Instant::now() < deadline, "the budget refused {} polls, not {n}", refused(s));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let reader = Reader::start(&bus, &topics).await;
    let source = RunningSource::start(&bus, &topics, Box::new(HubSpotSource::new(cfg.clone())));
    wait_refusals(&source, 1.0, refused).await;
    let used = fake.state.daily_used();
    assert!((500..=502).contains(&used), "requests stopped at the share: {used} of 1000 used");
    // Polls go on being refused (the next probe is an hour away) and none reaches HubSpot.
    wait_refusals(&source, 4.0, refused).await;
    assert_eq!(fake.state.daily_used(), used, "no request reaches HubSpot while the budget is spent");
    source.stop().await;

    // Probes a second apart: still spent, then a new day. The probe before a search is a listing
    // (a search answer reports no usage and could never lift the budget); the sync completes.
    cfg.http.api_budget_recheck = Duration::from_secs(1);
    let source = RunningSource::start(&bus, &topics, Box::new(HubSpotSource::new(cfg)));
    wait_refusals(&source, 1.0, refused).await;
    fake.state.set_daily_usage(1000, 0);
    reader
        .wait_until("the sync after the quota reset", Duration::from_secs(40), |r| {
            let l = r.latest();
            count(&l, EntityKind::Actor, Op::Upsert) == 10 && count(&l, EntityKind::DataSubjectRequest, Op::Upsert) == 4
        })
        .await;
    let probes = fake.state.log().iter().filter(|l| l.params.get("limit").map(String::as_str) == Some("1")).count();
    assert!(probes >= 1, "a one-record listing read the usage");
    source.stop().await;
}
