//! The Coupa source against the fake Coupa Core API on both buses (OAuth2 client credentials on
//! one, the legacy API key on the other): a first full sync of 62 suppliers and the contracts, read
//! in `offset` pages of 50, with two 429s waited out; parameter overrides; a contract whose dates
//! are reversed rejected to the DLQ; incremental changes; a restart from the checkpoint that loses
//! nothing; a supplier and a contract deleted in Coupa (which reports no deletes) found by the
//! sweep; refused credentials stop the connector and fail its health check; the health check's
//! cost (none while the engine polls); and end to end through the Dastra sink.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dastra_connect_test_harness as common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{Actor, ChangeEvent, Contract, EntityKind, Op, Payload};
use dastra_connect_coupa::fake::{API_KEY, CLIENT_ID, CLIENT_SECRET, FakeCoupa, RunningFake};
use dastra_connect_coupa::{CoupaConfig, CoupaResource, CoupaSource};
use serde_json::json;

fn config(fake: &RunningFake, oauth: bool, page_size: u32) -> CoupaConfig {
    let auth = if oauth {
        format!("{{type: oauth2, client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}}}")
    } else {
        format!("{{type: api_key, api_key: {API_KEY}}}")
    };
    let yaml = format!(
        r#"
url: {url}
auth: {auth}
resources:
  - resource: suppliers
    params: {{commodity_as_tag: false, status_tags: {{inactive: former-supplier}}}}
  - resource: contracts
    params: {{amount_custom_field: ceiling}}
sync: {{poll_interval: 300ms, look_back: 60s, page_size: {page_size}, sweep_interval: 1h}}
http: {{initial_backoff: 50ms, max_backoff: 2s}}
"#,
        url = fake.base_url
    );
    let c: CoupaConfig = serde_yaml::from_str(&yaml).unwrap();
    c.validate("test").unwrap();
    c
}

fn actor<'a>(l: &'a BTreeMap<String, ChangeEvent>, key: &str) -> Option<&'a Actor> {
    match l.get(key).map(|e| &e.data) {
        Some(Payload::Actor(a)) => Some(a),
        _ => None,
    }
}

fn contract<'a>(l: &'a BTreeMap<String, ChangeEvent>, key: &str) -> Option<&'a Contract> {
    match l.get(key).map(|e| &e.data) {
        Some(Payload::Contract(c)) => Some(c),
        _ => None,
    }
}

async fn scenario(broker: Broker, oauth: bool) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeCoupa::with_samples().spawn().await.unwrap();
    for i in 0..55 {
        fake.state.insert(
            CoupaResource::Suppliers,
            json!({"name": format!("Bulk Supplier {i:02}"), "status": "active", "number": format!("SUP-B{i:03}"),
                   "primary-address": {"city": "Nantes", "postal-code": "44000", "country": {"code": "FR"}}}),
        );
    }
    fake.state.throttle_next(2);
    let cfg = config(&fake, oauth, 120);
    let reader = Reader::start(&bus, &topics).await;
    let source = RunningSource::start(&bus, &topics, Box::new(CoupaSource::new(cfg.clone())));

    // 1. First full sync: 62 suppliers, 6 contracts, the reversed-dates contract dead-lettered.
    reader
        .wait_until("the first full sync", Duration::from_secs(60), |r| {
            let l = r.latest();
            count(&l, EntityKind::Actor, Op::Upsert) == 62
                && count(&l, EntityKind::Contract, Op::Upsert) == 6
                && !r.dlq().is_empty()
        })
        .await;
    assert_eq!(fake.state.count_status(429), 2, "two throttled requests, waited out");
    let log = fake.state.log();
    let api: Vec<_> = log.iter().filter(|l| l.path.starts_with("/api/")).collect();
    assert!(
        api.iter().all(|l| l.params.get("limit").is_some_and(|n| n.parse::<u32>().unwrap() <= 50)),
        "never more than 50"
    );
    assert!(
        api.iter().any(|l| l.path == "/api/suppliers" && l.params.get("offset").map(String::as_str) == Some("50")),
        "suppliers were read in offset pages: {api:?}"
    );
    assert!(api.iter().any(|l| l.params.contains_key("updated_at[gt]")), "cursor argument updated_at[gt]");
    assert_eq!(log.iter().filter(|l| l.path == "/oauth2/token").count(), usize::from(oauth), "one token, cached");
    let latest = reader.latest();
    let ovh = actor(&latest, "coupa:actor:101").unwrap();
    assert_eq!(ovh.company_name.as_deref(), Some("OVH SAS"));
    assert_eq!(ovh.vendor_type.map(|v| v.to_string()).as_deref(), Some("B2B"));
    assert_eq!(ovh.actor_type.map(|v| v.to_string()).as_deref(), Some("Morale"));
    assert_eq!(ovh.immatriculation_number.as_deref(), Some("FR22424761419"));
    assert_eq!((ovh.city.as_deref(), ovh.country_code.as_deref()), (Some("Roubaix"), Some("FR")));
    assert_eq!(ovh.email.as_deref(), Some("privacy@ovhcloud.com"));
    assert!(ovh.tags.is_empty(), "commodity_as_tag: false override");
    let dupont = actor(&latest, "coupa:actor:107").unwrap();
    assert_eq!(dupont.tags, vec!["former-supplier".to_owned()], "status_tags override");
    let hosting = contract(&latest, "coupa:contract:201").unwrap();
    assert_eq!(hosting.label.as_deref(), Some("OVHcloud hosting agreement"));
    assert_eq!(hosting.supplier.as_ref().map(|k| k.as_str()), Some("coupa:actor:101"), "linked to the supplier Actor");
    assert_eq!(hosting.start_date.unwrap().to_rfc3339(), "2023-02-28T23:00:00+00:00");
    assert_eq!(hosting.custom_fields.get("ceiling").map(String::as_str), Some("180000.00 EUR"));
    assert_eq!(hosting.tags, vec!["published".to_owned()]);
    let dlq = reader.dlq();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].key, "coupa:contracts:207");
    assert_eq!(dlq[0].header("dastra_dlq_reason").as_deref(), Some("mapping_error"));
    assert!(dlq[0].header("dastra_dlq_error").unwrap().contains("ends (2025-01-01T00:00:00+01:00) before it starts"));

    // 2. Incremental: a supplier renamed, a contract extended, a new contract.
    assert!(fake.state.update(CoupaResource::Suppliers, 103, json!({"name": "Personio SE"})));
    assert!(fake.state.update(CoupaResource::Contracts, 202, json!({"end-date": "2027-12-31T23:59:59+01:00"})));
    let new_contract = fake.state.insert(
        CoupaResource::Contracts,
        json!({"name": "Personio payroll add-on", "number": "CT-2025-0040", "status": "published",
               "start-date": "2025-06-01T00:00:00+02:00", "end-date": "2026-05-31T23:59:59+02:00",
               "supplier": {"id": 103, "name": "Personio SE"}, "maximum-value": "8000.00", "currency": {"code": "EUR"}}),
    );
    reader
        .wait_until("the incremental changes", Duration::from_secs(30), |r| {
            let l = r.latest();
            actor(&l, "coupa:actor:103").is_some_and(|a| a.company_name.as_deref() == Some("Personio SE"))
                && contract(&l, "coupa:contract:202")
                    .is_some_and(|c| c.end_date.is_some_and(|d| d.to_rfc3339().starts_with("2027-12-31")))
                && contract(&l, &format!("coupa:contract:{new_contract}"))
                    .is_some_and(|c| c.supplier.as_ref().map(|k| k.as_str()) == Some("coupa:actor:103"))
        })
        .await;

    // 3. Restart; meanwhile a contract changes and a supplier and its contract are deleted.
    source.stop().await;
    assert!(fake.state.update(CoupaResource::Contracts, 203, json!({"status": "expired"})));
    assert!(fake.state.delete(CoupaResource::Suppliers, 106));
    assert!(fake.state.delete(CoupaResource::Contracts, 206));
    let mut cfg2 = cfg.clone();
    cfg2.sync.sweep_interval = Some(Duration::from_secs(1));
    let source = RunningSource::start(&bus, &topics, Box::new(CoupaSource::new(cfg2)));
    reader
        .wait_until("the change made while down and the sweep deletes", Duration::from_secs(40), |r| {
            let l = r.latest();
            contract(&l, "coupa:contract:203").is_some_and(|c| c.tags == vec!["expired".to_owned()])
                && l.get("coupa:actor:106").is_some_and(|e| e.op == Op::Delete)
                && l.get("coupa:contract:206").is_some_and(|e| e.op == Op::Delete)
        })
        .await;
    source.stop().await;
    let latest = reader.latest();
    assert!(
        latest["coupa:actor:106"].data.is_snapshot() && latest["coupa:contract:206"].data.is_snapshot(),
        "found by the sweep"
    );
    // Nothing lost: every supplier in Coupa has its current name on the bus.
    for s in fake.state.records(CoupaResource::Suppliers) {
        let key = format!("coupa:actor:{}", s["id"]);
        assert_eq!(actor(&latest, &key).and_then(|a| a.company_name.as_deref()), s["name"].as_str(), "{key}");
    }
    let mut ids: HashMap<String, (String, String, Op)> = HashMap::new();
    for e in reader.events() {
        let v = (e.key.as_str().to_owned(), e.sequence.clone(), e.op);
        assert_eq!(ids.entry(e.id.clone()).or_insert_with(|| v.clone()), &v, "one id, one event");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupa_source_on_nats_with_api_key() {
    scenario(Broker::nats().await, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupa_source_on_kafka_with_oauth2() {
    scenario(Broker::kafka(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_stop_the_source() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeCoupa::with_samples().spawn().await.unwrap();
    let mut cfg = config(&fake, true, 50);
    if let dastra_connect_coupa::CoupaAuth::Oauth2 { client_secret, .. } = &mut cfg.auth {
        *client_secret = dastra_connect_core::config::Secret::new("not-the-secret");
    }
    let source = RunningSource::start(&bus, &topics, Box::new(CoupaSource::new(cfg)));
    let err = tokio::time::timeout(Duration::from_secs(30), source.task).await.unwrap().unwrap().unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("refused the credentials (401)"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
    let mut cfg = config(&fake, false, 50);
    cfg.auth = dastra_connect_coupa::CoupaAuth::ApiKey { api_key: dastra_connect_core::config::Secret::new("bad-key") };
    let source = RunningSource::start(&bus, &topics, Box::new(CoupaSource::new(cfg)));
    let err = tokio::time::timeout(Duration::from_secs(30), source.task).await.unwrap().unwrap().unwrap_err();
    assert!(format!("{err:#}").contains("refused the credentials (401)"), "{err:#}");
}

/// The source's health checks: refused credentials fail the `source` check fatally (what `run`
/// turns into a stopped process and `validate --check-connectivity` into an error), without the
/// secret; an idle source answers with one authenticated read per check; a source whose engine
/// keeps calling Coupa pays no extra request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_call_coupa_only_when_the_engine_did_not() {
    let topics = Topics::default();
    let broker = Broker::nats().await;
    let bus = broker.bus(&topics).await;
    let fake = FakeCoupa::with_samples().spawn().await.unwrap();
    let probes = || {
        fake.state
            .log()
            .iter()
            .filter(|l| l.path.starts_with("/api/") && l.params.get("limit").is_some_and(|n| n == "1"))
            .count()
    };
    let (ctx, _, _) = context("coupa", &bus, &topics);

    let mut bad = config(&fake, true, 50);
    if let dastra_connect_coupa::CoupaAuth::Oauth2 { client_secret, .. } = &mut bad.auth {
        *client_secret = dastra_connect_core::config::Secret::new("not-the-secret");
    }
    let checks = dastra_connect_core::connector::Connector::health_checks(&CoupaSource::new(bad), &ctx).unwrap();
    assert_eq!(checks.iter().map(|c| c.name().to_owned()).collect::<Vec<_>>(), ["bus", "source"]);
    let err = dastra_connect_core::health::run_all(&checks).await.unwrap_err();
    assert!(err.fatal && err.check == "source", "{err:?}");
    assert!(
        err.message.contains("refused the credentials (401)") && !err.message.contains("not-the-secret"),
        "{err:?}"
    );

    // Idle (not running): each check is one authenticated read of one record.
    let checks =
        dastra_connect_core::connector::Connector::health_checks(&CoupaSource::new(config(&fake, true, 50)), &ctx)
            .unwrap();
    dastra_connect_core::health::run_all(&checks).await.unwrap();
    dastra_connect_core::health::run_all(&checks).await.unwrap();
    assert_eq!(probes(), 2, "one probe per idle check");

    // Running and polling every 300 ms: the engine's own calls answer the check.
    let (source, checks) =
        RunningSource::start_checked(&bus, &topics, Box::new(CoupaSource::new(config(&fake, true, 50))));
    dastra_connect_core::health::run_all(&checks).await.unwrap();
    let after_first = probes();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        dastra_connect_core::health::run_all(&checks).await.unwrap();
    }
    assert_eq!(probes(), after_first, "no probe while the engine's calls succeed");
    source.stop().await;
}

async fn end_to_end(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeCoupa::with_samples().spawn().await.unwrap();
    let emu = emulator().await;
    let source = RunningSource::start(&bus, &topics, Box::new(CoupaSource::new(config(&fake, true, 50))));
    let sink = RunningSink::start(&bus, &topics, sink_config(&emu));
    wait_emulator(&emu, "7 suppliers and 6 contracts", Duration::from_secs(50), |e| {
        labels(e, "Actors", "companyName").len() == 7 && labels(e, "Contracts", "label").len() == 6
    })
    .await;
    let actors = emu.state.entities(1, "Actors");
    let ovh = actors.iter().find(|a| a["companyName"] == "OVH SAS").unwrap();
    assert_eq!(ovh["vendorType"], "B2B");
    assert_eq!(ovh["countryCode"], "FR");
    let contracts = emu.state.entities(1, "Contracts");
    let hosting = contracts.iter().find(|c| c["label"] == "OVHcloud hosting agreement").unwrap();
    assert_eq!(hosting["ref"], "coupa:contract:201");
    assert_eq!(hosting["signatories"], json!([ovh["id"]]), "the contract is linked to its supplier: {hosting}");
    sink.stop().await;
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupa_to_dastra_on_nats() {
    end_to_end(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupa_to_dastra_on_kafka() {
    end_to_end(Broker::kafka()).await;
}
