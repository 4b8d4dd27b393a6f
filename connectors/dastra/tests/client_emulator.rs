//! The client against the Dastra emulator (an independent implementation of the OpenAPI document):
//! every typed route round-trips, external-key lookups find what was written, a create whose answer is
//! lost after the write is reported `ambiguous_create` and reconciled by lookup without a duplicate,
//! and the quota limiter configured like the server's windows earns zero 429s while a client that
//! over-sends gets 429s, honours `Retry-After` and still completes every request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dastra_connect_core::config::Secret;
use dastra_connect_dastra::model::*;
use dastra_connect_dastra::{
    Actors, Areas, Assets, AuthConfig, DastraClient, DastraClientConfig, DataFields, DataProcessings,
    DataSubjectRequests, Priority, QuotaConfig, QuotaLimiter, QuotaWindow, RequestEvent, RequestObserver, Tasks, Teams,
};
use dastra_emulator::{EmulatorConfig, FaultKind, FaultRule};
use parking_lot::Mutex;
use serde_json::json;
use url::Url;

const KEY: &str = "emu-private-key";
const WS: i32 = 3;

async fn emulator(quota: Vec<dastra_emulator::QuotaWindow>) -> dastra_emulator::RunningEmulator {
    dastra_emulator::spawn(EmulatorConfig::single(KEY, i64::from(WS)).with_quota(quota)).await.expect("emulator starts")
}

fn config(base: &str) -> DastraClientConfig {
    let mut c =
        DastraClientConfig::new(Url::parse(base).expect("url"), WS, AuthConfig::ApiKey { api_key: Secret::new(KEY) });
    c.retry.initial_backoff = Duration::from_millis(20);
    c.retry.max_backoff = Duration::from_millis(200);
    c
}

#[derive(Default)]
struct Statuses(Mutex<Vec<Option<u16>>>);
impl RequestObserver for Statuses {
    fn request_done(&self, e: &RequestEvent) {
        self.0.lock().push(e.status);
    }
}

fn client(cfg: &DastraClientConfig) -> (DastraClient, Arc<Statuses>) {
    let s = Arc::new(Statuses::default());
    (DastraClient::new(cfg, QuotaLimiter::new(&cfg.quota), Some(s.clone())).expect("client"), s)
}

#[tokio::test]
async fn typed_routes_round_trip_against_the_emulator() {
    let emu = emulator(vec![]).await;
    let (c, statuses) = client(&config(&emu.base_url));

    // Assets: create with ref, look up by ref, patch, put, delete.
    let key = fit_external_key("netbox:asset:42", <Assets as dastra_connect_dastra::ExternalKeyed>::KEY_MAX_LEN);
    let a = c
        .create::<Assets>(&Asset {
            label: "Web server".into(),
            r#type: Some(AssetType::Material),
            r#ref: Some(key.clone()),
            ..Asset::default()
        })
        .await
        .expect("create asset");
    let id = a.id.expect("asset id");
    let found = c.find_by_external_key::<Assets>(&key).await.expect("lookup");
    assert_eq!(found.iter().map(|a| a.id).collect::<Vec<_>>(), vec![Some(id)]);
    c.patch::<Assets>(&id, &[PatchOperation::set("/city", json!("Lyon"))]).await.expect("patch");
    assert_eq!(c.get::<Assets>(&id).await.expect("get").city.as_deref(), Some("Lyon"));
    let mut full = c.get::<Assets>(&id).await.expect("get");
    full.description = Some("rack 4".into());
    c.update::<Assets>(&id, &full).await.expect("put");
    assert_eq!(c.get::<Assets>(&id).await.expect("get").description.as_deref(), Some("rack 4"));
    let second = c
        .create::<Assets>(&Asset { label: "Backup".into(), r#type: Some(AssetType::Software), ..Asset::default() })
        .await
        .expect("create");
    let id2 = second.id.expect("id");
    c.batch_patch::<Assets>(&[id, id2], &[PatchOperation::set("/countryCode", json!("FR"))])
        .await
        .expect("batch patch");
    assert_eq!(c.get::<Assets>(&id2).await.expect("get").country_code.as_deref(), Some("FR"));
    c.batch_delete::<Assets>(&[id2]).await.expect("batch delete");
    c.delete::<Assets>(&id).await.expect("delete");
    assert!(c.get_opt::<Assets>(&id).await.expect("get_opt").is_none());
    c.delete::<Assets>(&id).await.expect("deleting again is fine");

    // Actors by natural key.
    let actor = c
        .create::<Actors>(&Actor {
            actor_type: Some(ActorType::Morale),
            company_name: Some("ACME".into()),
            country_code: Some("FR".into()),
            ..Actor::default()
        })
        .await
        .expect("actor");
    let hits = c
        .find_by_filter::<Actors>(Filter::and(vec![
            Filter::equal("CompanyName", "ACME"),
            Filter::equal("CountryCode", "FR"),
        ]))
        .await
        .expect("actor lookup");
    assert_eq!(hits.iter().map(|a| a.id).collect::<Vec<_>>(), vec![actor.id]);

    // DataProcessings: create takes 3 fields, ref comes with the following patch.
    let dp = c
        .create::<DataProcessings>(&DataProcessingCreate {
            label: "Payroll".into(),
            area_id: 1,
            processing_type: Some(ProcessingType::Default),
        })
        .await
        .expect("processing");
    let dp_id = dp.id.expect("uuid");
    c.patch::<DataProcessings>(&dp_id, &[PatchOperation::set("/ref", json!("coupa:processing:7"))]).await.expect("ref");
    let hits = c.find_by_external_key::<DataProcessings>("coupa:processing:7").await.expect("lookup");
    assert_eq!(hits.len(), 1);
    c.move_to_step::<DataProcessings>(&dp_id, 8).await.expect("workflow");
    c.archive::<DataProcessings>(&dp_id).await.expect("archive");
    c.restore::<DataProcessings>(&dp_id).await.expect("restore");

    // DataFields.
    let f = c
        .create::<DataFields>(&DataField {
            label: "email".into(),
            data_type: Some(GenericDataType::String),
            ..DataField::default()
        })
        .await
        .expect("field");
    assert!(f.id.is_some());

    // DSR: refId lookup, workflow, attachment, close, archive.
    let dsr = c
        .with_priority(Priority::Urgent)
        .create::<DataSubjectRequests>(&DataSubjectRequest {
            title: "Access".into(),
            area_id: 1,
            locale: "en".into(),
            purposes: vec![DataSubjectPurposeType::Access],
            ref_id: Some("salesforce:case:1".into()),
            email: Some("a@example.com".into()),
            ..DataSubjectRequest::default()
        })
        .await
        .expect("dsr");
    let dsr_id = dsr.id.expect("dsr id");
    let hits = c.find_by_external_key::<DataSubjectRequests>("salesforce:case:1").await.expect("refId lookup");
    assert_eq!(hits.iter().map(|d| d.id).collect::<Vec<_>>(), vec![Some(dsr_id)]);
    c.move_to_step::<DataSubjectRequests>(&dsr_id, 2).await.expect("dsr workflow");
    let att = c
        .upload_dsr_attachment(
            dsr_id,
            AttachmentUpload {
                file_name: "export.csv".into(),
                content_type: "text/csv".into(),
                content: Bytes::from_static(b"a,b\n1,2\n"),
            },
        )
        .await
        .expect("upload");
    let listed = c.list_dsr_attachments(dsr_id).await.expect("list attachments");
    assert_eq!(listed.iter().map(|a| a.id).collect::<Vec<_>>(), vec![att.id]);
    c.patch::<DataSubjectRequests>(&dsr_id, &[PatchOperation::set("/resolutionMessage", json!("Sent"))])
        .await
        .expect("dsr patch");
    c.close_dsr(
        dsr_id,
        &DataSubjectRequestClose { closed_reason: Some(ClosedReason::Accepted), ..DataSubjectRequestClose::default() },
    )
    .await
    .expect("close");
    c.archive::<DataSubjectRequests>(&dsr_id).await.expect("archive dsr");
    // Archived records are hidden from plain lists; the reconciliation lookup still finds them.
    let hits = c.find_by_external_key::<DataSubjectRequests>("salesforce:case:1").await.expect("archived lookup");
    assert_eq!(hits.iter().map(|d| d.id).collect::<Vec<_>>(), vec![Some(dsr_id)]);

    // Tasks.
    let t = c
        .create::<Tasks>(&Task { label: "Review".into(), priority: Some(TaskPriority::High), ..Task::default() })
        .await
        .expect("task");
    let tid = t.id.expect("task id");
    c.archive_task(tid, true).await.expect("archive task");

    // Areas and Teams by their documented `?ref=`.
    let area = c
        .create::<Areas>(&Area { label: "HR".into(), r#ref: Some("sap:orgunit:HR".into()), ..Area::default() })
        .await
        .expect("area");
    let hits = c.find_by_external_key::<Areas>("sap:orgunit:HR").await.expect("area lookup");
    assert_eq!(hits.iter().map(|a| a.id).collect::<Vec<_>>(), vec![area.id]);
    c.create::<Teams>(&Team { label: "Privacy".into(), r#ref: Some("okta:group:1".into()), ..Team::default() })
        .await
        .expect("team");
    assert_eq!(c.find_by_external_key::<Teams>("okta:group:1").await.expect("team lookup").len(), 1);

    // Generic relationships: created without an answer body, found by listing.
    let asset = c
        .create::<Assets>(&Asset { label: "DB".into(), r#type: Some(AssetType::Software), ..Asset::default() })
        .await
        .expect("asset");
    let asset_id = asset.id.expect("id").to_string();
    c.create_generic_relationship(&GenericRelationshipCreate {
        origin_type: Some(RelationShipObjectType::Asset),
        origin_id: asset_id.clone(),
        target_type: Some(RelationShipObjectType::Actor),
        target_ids: Some(vec![actor.id.expect("actor id").to_string()]),
        label: Some("operated by".into()),
        ..GenericRelationshipCreate::default()
    })
    .await
    .expect("relationship");
    let rels =
        c.list_generic_relationships(&[asset_id], Some(&RelationShipObjectType::Asset), None).await.expect("list rels");
    assert_eq!(rels.len(), 1);
    let rel_id = rels[0].id.expect("rel id");
    c.delete_generic_relationship(rel_id).await.expect("delete rel");

    // Tenant level.
    let wss = c.list_workspaces().await.expect("workspaces");
    assert!(wss.iter().any(|w| w.id == WS));
    assert_eq!(c.get_workspace(WS).await.expect("workspace").id, WS);
    c.me().await.expect("me");

    // Only the two expected 404s (get_opt and the second delete of the removed asset); nothing retried.
    let s = statuses.0.lock().clone();
    assert_eq!(s.iter().filter(|s| **s == Some(404)).count(), 2, "{s:?}");
    assert!(s.iter().all(|s| matches!(s, Some(200..=299) | Some(404))), "{s:?}");
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_ambiguous_and_reconciled_without_duplicate() {
    let emu = emulator(vec![]).await;
    emu.state
        .add_fault(
            FaultRule::always(FaultKind::TimeoutAfterWrite { hang_ms: 2_000 })
                .method("POST")
                .route("/Assets$")
                .count(1),
        )
        .expect("fault");
    let mut cfg = config(&emu.base_url);
    cfg.request_timeout = Duration::from_millis(500);
    let (c, _) = client(&cfg);
    let asset = Asset {
        label: "CRM".into(),
        r#type: Some(AssetType::Software),
        r#ref: Some("sf:asset:1".into()),
        ..Asset::default()
    };
    let err = c.create::<Assets>(&asset).await.expect_err("answer lost");
    assert!(err.is_ambiguous_create(), "{err:?}");
    // What the sink does next: look up before any new POST.
    let found = c.find_by_external_key::<Assets>("sf:asset:1").await.expect("lookup");
    assert_eq!(found.len(), 1, "the write happened once and was not repeated");
    assert_eq!(emu.state.entities(i64::from(WS), "Assets").len(), 1);
}

async fn burst(c: &DastraClient, n: usize) -> usize {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                let p = if i % 3 == 0 { Priority::Backfill } else { Priority::Live };
                c.with_priority(p).list::<Assets>(&dastra_connect_dastra::ListQuery::default()).await.is_ok()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("join") {
            ok += 1;
        }
    }
    ok
}

#[tokio::test]
async fn the_limiter_matching_the_server_windows_earns_zero_429s() {
    let windows = vec![
        dastra_emulator::QuotaWindow { limit: 20, period: Duration::from_secs(1) },
        dastra_emulator::QuotaWindow { limit: 50, period: Duration::from_secs(4) },
    ];
    let emu = emulator(windows).await;
    let mut cfg = config(&emu.base_url);
    cfg.quota = QuotaConfig {
        windows: vec![
            QuotaWindow { limit: 20, per: Duration::from_secs(1) },
            QuotaWindow { limit: 50, per: Duration::from_secs(4) },
        ],
        safety_margin: Duration::from_millis(100),
        burst: 5,
    };
    let (c, statuses) = client(&cfg);
    let started = std::time::Instant::now();
    assert_eq!(burst(&c, 80).await, 80);
    let s = statuses.0.lock().clone();
    println!("80 requests under 20/1s + 50/4s in {:.1}s, {} attempts", started.elapsed().as_secs_f64(), s.len());
    assert_eq!(s.iter().filter(|s| **s == Some(429)).count(), 0, "no 429 when the limiter matches the server");
    assert_eq!(emu.state.counters().with_status(429), 0);
}

#[tokio::test]
async fn an_over_sending_client_gets_429s_honours_retry_after_and_completes() {
    let emu = emulator(vec![dastra_emulator::QuotaWindow { limit: 10, period: Duration::from_secs(1) }]).await;
    let mut cfg = config(&emu.base_url);
    // Misconfigured on purpose: five times the server's limit.
    cfg.quota = QuotaConfig {
        windows: vec![QuotaWindow { limit: 50, per: Duration::from_secs(1) }],
        safety_margin: Duration::ZERO,
        burst: 50,
    };
    cfg.retry.max_attempts = 10;
    let (c, statuses) = client(&cfg);
    assert_eq!(burst(&c, 30).await, 30, "every request completes after the pauses");
    let s = statuses.0.lock().clone();
    let throttled = s.iter().filter(|s| **s == Some(429)).count();
    println!("over-sending client: {throttled} answers 429, {} pauses", c.quota().snapshot().pauses_total);
    assert!(throttled > 0, "the server did throttle");
    assert!(c.quota().snapshot().pauses_total as usize >= 1);
}
