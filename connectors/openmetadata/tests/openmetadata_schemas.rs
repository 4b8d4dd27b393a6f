//! The fake OpenMetadata answers in OpenMetadata's published formats: every answer of the fake
//! (list pages with and without `fields`, single entities, lineage of every pipeline and table, the
//! change events feed after creates, updates, soft and hard deletes and a restore, error bodies),
//! and through the lists every bundled sample record, validated with PyPI `jsonschema` against
//! `tests/schemas/openmetadata.schema.json` — the subset of OpenMetadata's JSON schemas the source
//! relies on, each definition naming its upstream file and commit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../core/tests/py/support.rs"]
mod support;

use dastra_connect_openmetadata::config::OmEntity;
use dastra_connect_openmetadata::fake::{FakeOpenMetadata, SAMPLES, TOKEN};
use serde_json::{Value, json};

const SCHEMA: &str = include_str!("schemas/openmetadata.schema.json");

struct Answers {
    http: reqwest::Client,
    base: String,
    items: Vec<Value>,
}

impl Answers {
    /// GETs `path?query` and keeps the answer to validate against `def` (expecting `status`).
    async fn get(&mut self, def: &str, path: &str, query: &[(&str, String)], status: u16) -> Value {
        let res = self.http.get(format!("{}/{path}", self.base)).bearer_auth(TOKEN).query(query).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path} {query:?}");
        let body: Value = res.json().await.unwrap();
        self.items.push(json!({"what": format!("GET /{path} {query:?}"), "def": def, "instance": body}));
        body
    }
}

fn list_def(e: OmEntity) -> &'static str {
    match e {
        OmEntity::Tables => "tableList",
        OmEntity::DatabaseServices => "databaseServiceList",
        OmEntity::Pipelines => "pipelineList",
    }
}

fn entity_def(e: OmEntity) -> &'static str {
    match e {
        OmEntity::Tables => "table",
        OmEntity::DatabaseServices => "databaseService",
        OmEntity::Pipelines => "pipeline",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_the_fake_conforms_to_the_published_schemas() {
    let fake = FakeOpenMetadata::with_samples().spawn().await.unwrap();
    let mut a = Answers { http: reqwest::Client::new(), base: fake.base_url.clone(), items: Vec::new() };

    // Lists, paged by two, with and without the optional fields: every sample record is served.
    let mut ids: Vec<(OmEntity, String)> = Vec::new();
    for (entity, text) in SAMPLES {
        let samples = serde_json::from_str::<Vec<Value>>(text).unwrap().len();
        for fields in [entity.fields(), ""] {
            let mut after: Option<String> = None;
            let mut served = 0;
            loop {
                let mut q = vec![("limit", "2".to_owned()), ("include", "all".to_owned())];
                if !fields.is_empty() {
                    q.push(("fields", fields.to_owned()));
                }
                if let Some(c) = &after {
                    q.push(("after", c.clone()));
                }
                let page = a.get(list_def(*entity), entity.path(), &q, 200).await;
                for e in page["data"].as_array().unwrap() {
                    served += 1;
                    if fields.is_empty() {
                        ids.push((*entity, e["id"].as_str().unwrap().to_owned()));
                    }
                }
                match page["paging"]["after"].as_str() {
                    Some(c) => after = Some(c.to_owned()),
                    None => break,
                }
            }
            assert_eq!(served, samples, "every sample of {} is served", entity.path());
        }
    }
    // One entity by id; lineage of every pipeline and table.
    for (entity, id) in &ids {
        a.get(entity_def(*entity), &format!("{}/{id}", entity.path()), &[("fields", entity.fields().to_owned())], 200)
            .await;
        if *entity != OmEntity::DatabaseServices {
            let q = [("upstreamDepth", "1".to_owned()), ("downstreamDepth", "1".to_owned())];
            a.get("entityLineage", &format!("api/v1/lineage/{}/{id}", entity.entity_type()), &q, 200).await;
        }
    }
    // Every kind of change, then the whole feed.
    let customers = "crm.prod.public.customers";
    assert!(fake.state.tag_column(customers, "created_at", &["PII.NonSensitive"]));
    assert!(fake.state.update(OmEntity::Pipelines, "airflow.crm_to_dwh", json!({"description": "Hourly"})));
    assert!(fake.state.soft_delete(OmEntity::Tables, "crm.prod.public.orders"));
    assert!(fake.state.restore(OmEntity::Tables, "crm.prod.public.orders"));
    assert!(fake.state.hard_delete(OmEntity::Pipelines, "airflow.catalog_export"));
    let kinds = [
        "entityCreated",
        "entityUpdated",
        "entityFieldsChanged",
        "entitySoftDeleted",
        "entityRestored",
        "entityDeleted",
    ];
    let mut q: Vec<(&str, String)> = kinds.iter().map(|k| (*k, "*".to_owned())).collect();
    q.push(("timestamp", "0".to_owned()));
    let feed = a.get("eventList", "api/v1/events", &q, 200).await;
    let mut seen: Vec<&str> = feed["data"].as_array().unwrap().iter().filter_map(|e| e["eventType"].as_str()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["entityCreated", "entityDeleted", "entityRestored", "entitySoftDeleted", "entityUpdated"]);
    // Error bodies.
    a.get("error", "api/v1/tables/00000000-0000-4000-8000-000000000000", &[], 404).await;
    let res = a.http.get(format!("{}/api/v1/tables", a.base)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    a.items.push(json!({"what": "GET /api/v1/tables without a token", "def": "error", "instance": res.json::<Value>().await.unwrap()}));

    // For a one-off check against the upstream schema files themselves (docs/openmetadata-api.md §6).
    if let Some(path) = std::env::var_os("DASTRA_OM_ANSWERS_DUMP") {
        std::fs::write(path, serde_json::to_vec(&a.items).unwrap()).unwrap();
    }
    let n = a.items.len();
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let reply = tokio::task::spawn_blocking(move || {
        support::run("validate_schema.py", &[], &json!({"schema": schema, "items": a.items}))
    })
    .await
    .unwrap();
    assert_eq!(reply["checked"], n);
    let errors: Vec<&str> = reply["errors"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(errors.is_empty(), "{} answers of the fake do not conform:\n{}", errors.len(), errors.join("\n"));
}

/// The schema refuses what it should (so the test above can fail): a tag label without its
/// `source`, an entity reference whose id is no uuid, a `changeDescription` of null, a version 0.
#[test]
fn the_schema_refuses_malformed_answers() {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let bad = [
        ("tagLabel", json!({"tagFQN": "PII.Sensitive", "labelType": "Manual", "state": "Confirmed"})),
        ("tagLabel", json!({"tagFQN": "PII.Sensitive", "source": "Tag", "labelType": "Manual", "state": "Confirmed"})),
        ("entityReference", json!({"id": "svc-crm", "type": "databaseService"})),
        (
            "changeEvent",
            json!({"eventType": "entityCreated", "entityType": "table",
            "entityId": "7c1e2d3f-0c3e-4a5b-9d7f-000000000001", "timestamp": 1, "changeDescription": null}),
        ),
        (
            "changeEvent",
            json!({"eventType": "entityCreated", "entityType": "table",
            "entityId": "7c1e2d3f-0c3e-4a5b-9d7f-000000000001", "timestamp": 1, "previousVersion": 0.0}),
        ),
        ("table", json!({"id": "7c1e2d3f-0c3e-4a5b-9d7f-000000000001", "name": "t", "columns": [{"name": "c"}]})),
    ];
    let items: Vec<Value> =
        bad.iter().enumerate().map(|(i, (d, v))| json!({"what": i.to_string(), "def": d, "instance": v})).collect();
    let reply = support::run("validate_schema.py", &[], &json!({"schema": schema, "items": items}));
    let errors: Vec<String> = reply["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().split(':').next().unwrap().to_owned())
        .collect();
    for (i, case) in bad.iter().enumerate() {
        assert!(errors.contains(&i.to_string()), "case {i} ({case:?}) accepted: {errors:?}");
    }
}
