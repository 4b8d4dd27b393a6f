//! The Salesforce source against the fake org (SOQL over the REST API, OAuth 2.0 client
//! credentials, a revoked token replaced; JWT bearer) on both buses: a first full sync read in
//! `nextRecordsUrl` batches with two `403 REQUEST_LIMIT_EXCEEDED` waited out; accounts → Actors
//! with parameter overrides; contacts → Actors through a replaced mapping program that selects one
//! more field; privacy Cases → DataSubjectRequests with their deadline; a non-privacy Case never
//! read; a Case whose request type the mapping rejects in the DLQ; incremental changes; deletes
//! through `queryAll`; a restart from the checkpoint that loses nothing, with a record purged from
//! the recycle bin found by the sweep; the API budget (`http.max_api_share`) stopping requests and
//! resuming them; and end to end through the Dastra sink: a privacy Case becomes exactly one DSR, a
//! later state change updates it, a replay of every event changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dastra_connect_test_harness as common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{Actor, ChangeEvent, DataSubjectRequest, EntityKind, Op, Payload};
use dastra_connect_core::source::SourceEngine;
use dastra_connect_salesforce::fake::{CLIENT_ID, CLIENT_SECRET, FakeSalesforce, RunningFake};
use dastra_connect_salesforce::{SalesforceConfig, SalesforceObject, SalesforceSource};
use serde_json::json;

const ACME: &str = "0018d0000000101AAA";
const PIXEL: &str = "0018d0000000103AAA";
const CLOUDOPS: &str = "0018d0000000104AAA";
const LEROY: &str = "0018d0000000105AAA";
const ACCESS_CASE: &str = "5008d0000000301AAA";
const ERASURE_CASE: &str = "5008d0000000302AAA";
const CLOSED_CASE: &str = "5008d0000000303AAA";
const OTHER_CASE: &str = "5008d0000000304AAA";
const COMPLAINT_CASE: &str = "5008d0000000305AAA";

fn config(fake: &RunningFake, objects: &str, extra: &str) -> SalesforceConfig {
    let yaml = format!(
        r#"
instance_url: {url}
auth: {{type: client_credentials, client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}}}
objects: {objects}
sync: {{poll_interval: 300ms, look_back: 60s, page_size: 4, sweep_interval: 1h}}
http: {{initial_backoff: 50ms, max_backoff: 2s}}
{extra}
"#,
        url = fake.base_url
    );
    let c: SalesforceConfig = serde_yaml::from_str(&yaml).unwrap();
    c.validate("test").unwrap();
    c
}

const CONTACT_OVERRIDE: &str = r#"{kind: "actor", id: .Id, data: {actorType: "Physical", givenName: .FirstName,
  familyName: .LastName, email: .Email, description: "contact of account \(.AccountId // "none")", tags: ["crm-contact"]}}"#;

const ALL_OBJECTS: &str = "[{object: accounts, params: {industry_as_tag: true, roles: {Vendor: supplier}}}, {object: cases}, {object: contacts}]";

fn actor<'a>(l: &'a BTreeMap<String, ChangeEvent>, id: &str) -> Option<&'a Actor> {
    match l.get(&format!("salesforce:actor:{id}")).map(|e| &e.data) {
        Some(Payload::Actor(a)) => Some(a),
        _ => None,
    }
}

fn dsr<'a>(l: &'a BTreeMap<String, ChangeEvent>, id: &str) -> Option<&'a DataSubjectRequest> {
    match l.get(&format!("salesforce:dsr:{id}")).map(|e| &e.data) {
        Some(Payload::DataSubjectRequest(d)) => Some(d),
        _ => None,
    }
}

fn state(d: &DataSubjectRequest) -> String {
    d.state.map(|s| s.to_string()).unwrap_or_default()
}

async fn scenario(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeSalesforce::with_samples().spawn().await.unwrap();
    let mut bulk = Vec::new();
    for i in 0..5 {
        bulk.push(fake.state.insert(
            SalesforceObject::Accounts,
            json!({"Name": format!("Bulk Customer {i}"), "Type": "Customer - Direct", "BillingCity": "Lille", "BillingCountryCode": "FR"}),
        ));
    }
    fake.state.set_batch_size(3);
    fake.state.throttle_next(2);
    let mut cfg = config(&fake, ALL_OBJECTS, "");
    // A whole-program override for contacts that needs one more field than the default selects.
    cfg.objects[2].mapping = Some(CONTACT_OVERRIDE.to_owned());
    cfg.objects[2].params.insert("extra_fields".into(), json!(["AccountId"]));
    cfg.validate("test").unwrap();
    let reader = Reader::start(&bus, &topics).await;
    let source = RunningSource::start(&bus, &topics, Box::new(SalesforceSource::new(cfg.clone())));

    // 1. First full sync: 11 accounts + 3 contacts, 3 privacy cases, the complaint dead-lettered.
    reader
        .wait_until("the first full sync", Duration::from_secs(60), |r| {
            let l = r.latest();
            count(&l, EntityKind::Actor, Op::Upsert) == 14
                && count(&l, EntityKind::DataSubjectRequest, Op::Upsert) == 3
                && !r.dlq().is_empty()
        })
        .await;
    assert_eq!(fake.state.count_status(403), 2, "two REQUEST_LIMIT_EXCEEDED, waited out");
    let log = fake.state.log();
    assert!(log.iter().any(|l| l.path.contains("/query/01g")), "batches were followed through nextRecordsUrl");
    let queries: Vec<&String> = log.iter().filter_map(|l| l.params.get("q")).collect();
    assert!(queries.iter().any(|q| q.contains("ORDER BY SystemModstamp, Id")), "{queries:?}");
    assert!(
        queries.iter().any(|q| q.starts_with("SELECT Id, CaseNumber") && q.contains("Reason IN ('Privacy Request')")),
        "only privacy cases are read: {queries:?}"
    );
    assert!(
        queries.iter().any(|q| log.iter().any(|l| l.path.ends_with("/queryAll")) && q.contains("IsDeleted = true"))
    );
    assert_eq!(log.iter().filter(|l| l.path == "/services/oauth2/token").count(), 1, "one token, cached");
    let latest = reader.latest();
    let acme = actor(&latest, ACME).unwrap();
    assert_eq!(acme.company_name.as_deref(), Some("Boulangeries Martin SA"));
    assert_eq!(acme.actor_type.map(|v| v.to_string()).as_deref(), Some("Morale"));
    assert_eq!((acme.city.as_deref(), acme.country_code.as_deref()), (Some("Lyon"), Some("FR")));
    assert_eq!(acme.tags, ["customer", "Food & Beverage"], "role tag + industry_as_tag override");
    assert_eq!(actor(&latest, LEROY).unwrap().tags, ["supplier", "Retail"], "roles override");
    let camille = actor(&latest, "0038d0000000201AAA").unwrap();
    assert_eq!((camille.given_name.as_deref(), camille.family_name.as_deref()), (Some("Camille"), Some("Durand")));
    assert_eq!(camille.description.as_deref(), Some("contact of account 0018d0000000101AAA"), "mapping override");
    assert_eq!(camille.tags, ["crm-contact"]);
    assert!(
        queries.iter().any(|q| q.contains("MailingCountryCode, SystemModstamp, AccountId FROM Contact")),
        "{queries:?}"
    );
    let access = dsr(&latest, ACCESS_CASE).unwrap();
    assert_eq!(access.purposes.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["Access"]);
    assert_eq!(state(access), "Processing");
    assert_eq!(access.email.as_deref(), Some("camille.durand@example.com"), "subject from the Case's Contact");
    assert_eq!(access.expiry_time.unwrap().to_rfc3339(), "2025-06-20T08:30:00+00:00", "CreatedDate + 1 calendar month");
    let erasure = dsr(&latest, ERASURE_CASE).unwrap();
    assert_eq!(erasure.purposes.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["Erasure"]);
    assert_eq!(erasure.family_name.as_deref(), Some("Thomas Petit"), "no contact: SuppliedName");
    assert_eq!(erasure.email.as_deref(), Some("thomas.petit@example.net"));
    let closed = dsr(&latest, CLOSED_CASE).unwrap();
    assert_eq!(
        (state(closed), closed.closed_reason.map(|r| r.to_string())),
        ("Closed".into(), Some("Accepted".into()))
    );
    assert!(dsr(&latest, OTHER_CASE).is_none(), "a support Case is not a DSR");
    let dlq = reader.dlq();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    assert_eq!(dlq[0].key, format!("salesforce:cases:{COMPLAINT_CASE}"));
    assert_eq!(dlq[0].header("dastra_dlq_reason").as_deref(), Some("mapping_error"));
    assert!(
        dlq[0].header("dastra_dlq_error").unwrap().contains("Complaint"),
        "{:?}",
        dlq[0].header("dastra_dlq_error")
    );

    // 2. Incremental (after the token was revoked: 401 INVALID_SESSION_ID, a new token): an account
    // renamed, a case moves on, a new privacy case.
    fake.state.revoke_tokens();
    assert!(fake.state.update(SalesforceObject::Accounts, PIXEL, json!({"Name": "Pixel Partners SAS"})));
    assert!(fake.state.update(SalesforceObject::Cases, ERASURE_CASE, json!({"Status": "Working"})));
    let new_case = fake.state.insert(
        SalesforceObject::Cases,
        json!({"CaseNumber": "00001031", "Status": "New", "IsClosed": false, "Reason": "Privacy Request", "Type": "Rectification",
               "Origin": "Phone", "ContactId": "0038d0000000203AAA"}),
    );
    reader
        .wait_until("the incremental changes", Duration::from_secs(30), |r| {
            let l = r.latest();
            actor(&l, PIXEL).is_some_and(|a| a.company_name.as_deref() == Some("Pixel Partners SAS"))
                && dsr(&l, ERASURE_CASE).is_some_and(|d| state(d) == "Processing")
                && dsr(&l, &new_case).is_some_and(|d| d.family_name.as_deref() == Some("Moreau"))
        })
        .await;
    let log = fake.state.log();
    assert_eq!(log.iter().filter(|l| l.path == "/services/oauth2/token").count(), 2, "a new token after the 401");
    assert!(log.iter().any(|l| l.status == 401));

    // 3. Deletes through queryAll; a case withdrawn.
    assert!(fake.state.delete(SalesforceObject::Accounts, CLOUDOPS));
    assert!(fake.state.update(SalesforceObject::Cases, ACCESS_CASE, json!({"Status": "Withdrawn", "IsClosed": true})));
    reader
        .wait_until("the delete and the withdrawal", Duration::from_secs(30), |r| {
            let l = r.latest();
            l.get(&format!("salesforce:actor:{CLOUDOPS}")).is_some_and(|e| e.op == Op::Delete)
                && dsr(&l, ACCESS_CASE)
                    .is_some_and(|d| d.closed_reason.map(|r| r.to_string()).as_deref() == Some("Cancelled"))
        })
        .await;
    assert!(!reader.latest()[&format!("salesforce:actor:{CLOUDOPS}")].data.is_snapshot(), "from the delete feed");

    // 4. Restart; meanwhile an account is added, a case closed, an account purged for good.
    source.stop().await;
    let added = fake.state.insert(SalesforceObject::Accounts, json!({"Name": "Added While Down", "Type": "Vendor"}));
    assert!(fake.state.update(SalesforceObject::Cases, ERASURE_CASE, json!({"Status": "Closed", "IsClosed": true})));
    assert!(fake.state.purge(SalesforceObject::Accounts, LEROY));
    let mut cfg2 = cfg.clone();
    cfg2.sync.sweep_interval = Some(Duration::from_secs(1));
    let source = RunningSource::start(&bus, &topics, Box::new(SalesforceSource::new(cfg2)));
    reader
        .wait_until("the changes made while down and the sweep delete", Duration::from_secs(40), |r| {
            let l = r.latest();
            actor(&l, &added).is_some_and(|a| a.tags == ["supplier"])
                && dsr(&l, ERASURE_CASE).is_some_and(|d| state(d) == "Closed")
                && l.get(&format!("salesforce:actor:{LEROY}")).is_some_and(|e| e.op == Op::Delete)
        })
        .await;
    source.stop().await;
    let latest = reader.latest();
    assert!(latest[&format!("salesforce:actor:{LEROY}")].data.is_snapshot(), "found by the sweep");
    // Nothing lost: every live account has its current name on the bus.
    for a in fake.state.records(SalesforceObject::Accounts) {
        let id = a["Id"].as_str().unwrap();
        if a["IsDeleted"] == json!(true) {
            continue;
        }
        assert_eq!(actor(&latest, id).and_then(|x| x.company_name.as_deref()), a["Name"].as_str(), "{id}");
    }
    assert!(bulk.iter().all(|id| actor(&latest, id).is_some()));
    let mut ids: HashMap<String, (String, String, Op)> = HashMap::new();
    for e in reader.events() {
        let v = (e.key.as_str().to_owned(), e.sequence.clone(), e.op);
        assert_eq!(ids.entry(e.id.clone()).or_insert_with(|| v.clone()), &v, "one id, one event");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_source_on_nats() {
    scenario(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_source_on_kafka() {
    scenario(Broker::kafka()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_budget_stops_requests_until_usage_drops() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeSalesforce::with_samples().spawn().await.unwrap();
    // 59 of 100 used; the first answer reports 60/100 = the 0.6 share.
    fake.state.set_usage(59, 100);
    let cfg = config(&fake, "[{object: accounts}]", "");
    let mut cfg = cfg;
    cfg.http.max_api_share = 0.6;
    cfg.http.api_budget_recheck = Duration::from_secs(1);
    let reader = Reader::start(&bus, &topics).await;
    let source = RunningSource::start(&bus, &topics, Box::new(SalesforceSource::new(cfg)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let refusals = |s: &RunningSource| -> f64 {
        s.metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("dastra_connect_poll_errors_total{") && l.contains("source_api_budget"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    while refusals(&source) < 2.0 {
        assert!(tokio::time::Instant::now() < deadline, "no budget refusal: {}", source.metrics.render());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // While spent, at most one probe per recheck interval reaches the org: far fewer requests than
    // polls, and the usage never passes what the probes cost.
    let (used, _) = fake.state.usage();
    assert!(used <= 63, "usage {used}: the source kept calling");
    assert!(reader.latest().len() <= 4, "one page at most was read before the budget was spent");
    // The window moves on: usage drops, the next probe sees it and the sync completes.
    fake.state.set_usage(10, 100);
    reader
        .wait_until("the sync after the budget is back", Duration::from_secs(30), |r| {
            count(&r.latest(), EntityKind::Actor, Op::Upsert) == 6
        })
        .await;
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_stop_the_source() {
    let broker = Broker::kafka();
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeSalesforce::with_samples().spawn().await.unwrap();
    let mut cfg = config(&fake, "[{object: accounts}]", "");
    if let dastra_connect_salesforce::SalesforceAuth::ClientCredentials { client_secret, .. } = &mut cfg.auth {
        *client_secret = dastra_connect_core::config::Secret::new("not-the-secret");
    }
    let source = RunningSource::start(&bus, &topics, Box::new(SalesforceSource::new(cfg)));
    let err = tokio::time::timeout(Duration::from_secs(30), source.task).await.unwrap().unwrap().unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("refused the credentials (400)"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_signs_in_and_a_foreign_key_is_refused() {
    let broker = Broker::nats().await;
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeSalesforce::with_samples().spawn().await.unwrap();
    let key = fake.state.jwt_user("integration@acme.example");
    let jwt_config = |user: &str, key: &str| {
        let mut c = config(&fake, "[{object: accounts}]", "");
        c.auth = dastra_connect_salesforce::SalesforceAuth::JwtBearer {
            client_id: CLIENT_ID.into(),
            username: user.into(),
            private_key: dastra_connect_core::config::Secret::new(key),
            audience: "https://login.salesforce.com".into(),
            token_url: None,
        };
        c.validate("test").unwrap();
        c
    };
    let reader = Reader::start(&bus, &topics).await;
    let source = RunningSource::start(
        &bus,
        &topics,
        Box::new(SalesforceSource::new(jwt_config("integration@acme.example", &key))),
    );
    reader
        .wait_until("the accounts, signed in with a JWT", Duration::from_secs(30), |r| {
            count(&r.latest(), EntityKind::Actor, Op::Upsert) == 6
        })
        .await;
    source.stop().await;
    assert_eq!(fake.state.log().iter().filter(|l| l.path == "/services/oauth2/token").count(), 1);
    // A key the app does not know (and a user not pre-authorized) is refused: the source stops.
    let other = FakeSalesforce::new().jwt_user("integration@acme.example");
    for (user, key) in [("integration@acme.example", other.as_str()), ("someone@acme.example", key.as_str())] {
        let source = RunningSource::start(&bus, &topics, Box::new(SalesforceSource::new(jwt_config(user, key))));
        let err = tokio::time::timeout(Duration::from_secs(30), source.task).await.unwrap().unwrap().unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("refused the credentials (400)") && text.contains("invalid assertion"), "{text}");
        assert!(!text.contains("PRIVATE KEY") && !text.contains(&key[40..80]), "{text}");
    }
}

fn dsrs(emu: &dastra_emulator::RunningEmulator) -> Vec<serde_json::Value> {
    emu.state.entities(1, "DataSubjectRequests")
}

fn writes(emu: &dastra_emulator::RunningEmulator) -> usize {
    emu.state.request_log().iter().filter(|r| r.method != "GET").count()
}

async fn end_to_end(broker: Broker) {
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let fake = FakeSalesforce::with_samples().spawn().await.unwrap();
    let emu = emulator().await;
    // Privacy Cases selected by record type alone here (the scenario above uses the reason).
    let cfg = config(&fake, "[{object: accounts}, {object: cases}]", "privacy_cases: {record_type: Privacy_Request}");
    let source = RunningSource::start(&bus, &topics, Box::new(SalesforceSource::new(cfg.clone())));
    let sink = RunningSink::start(&bus, &topics, sink_config(&emu));
    let reader = Reader::start(&bus, &topics).await;
    wait_emulator(&emu, "6 accounts and 3 privacy cases", Duration::from_secs(50), |e| {
        labels(e, "Actors", "companyName").len() == 6 && dsrs(e).len() == 3
    })
    .await;
    let case_queries: Vec<String> = fake
        .state
        .log()
        .iter()
        .filter_map(|l| l.params.get("q").filter(|q| q.contains("FROM Case") && !q.contains("IsDeleted")).cloned())
        .collect();
    assert!(
        case_queries
            .iter()
            .all(|q| q.contains("RecordType.DeveloperName = 'Privacy_Request'") && !q.contains("Reason IN")),
        "{case_queries:?}"
    );
    let erasure_ref = format!("salesforce:dsr:{ERASURE_CASE}");
    let find = |e: &dastra_emulator::RunningEmulator| dsrs(e).into_iter().find(|d| d["refId"] == erasure_ref.as_str());
    let d = find(&emu).unwrap();
    assert_eq!(d["purposes"], json!(["Erasure"]));
    assert_eq!(d["email"], "thomas.petit@example.net");
    assert!(d["expiryTime"].as_str().unwrap().starts_with("2025-06-22T13:45:10"), "{d}");
    assert_ne!(d["state"], "Closed");

    // The Case is closed as withdrawn: the same DSR is closed, none is added.
    assert!(fake.state.update(SalesforceObject::Cases, ERASURE_CASE, json!({"Status": "Withdrawn", "IsClosed": true})));
    wait_emulator(&emu, "the DSR closed", Duration::from_secs(30), |e| {
        find(e).is_some_and(|d| d["state"] == "Closed" && d["closedReason"] == "Cancelled")
    })
    .await;
    assert_eq!(dsrs(&emu).len(), 3, "a state change updates the DSR, never adds one");
    assert_eq!(dsrs(&emu).iter().filter(|d| d["refId"] == erasure_ref.as_str()).count(), 1);

    // Replay: the source forgets its checkpoints and publishes every record again (same event ids);
    // the sink changes nothing in Dastra.
    source.stop().await;
    let published = reader.events().len();
    let before = (writes(&emu), dsrs(&emu));
    let (ctx, _, _) = context(SOURCE, &bus, &topics);
    let [checkpoints, _] = SourceEngine::store_names(&ctx);
    let store = dastra_connect_core::state::open(&bus, &checkpoints).await.unwrap();
    for stream in ["accounts", "cases"] {
        store.delete(&format!("cursor:{stream}")).await.unwrap();
    }
    let source = RunningSource::start(&bus, &topics, Box::new(SalesforceSource::new(cfg)));
    reader.wait_until("the replayed events", Duration::from_secs(30), |r| r.events().len() >= published + 9).await;
    // Give the sink time to consume the replay; it must not write.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!((writes(&emu), dsrs(&emu)), before, "the replay changed Dastra");
    sink.stop().await;
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_to_dastra_on_nats() {
    end_to_end(Broker::nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_to_dastra_on_kafka() {
    end_to_end(Broker::kafka()).await;
}
