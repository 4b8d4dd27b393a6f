//! Proves each route family over real HTTP: create / get / list / paging / filters / JSON Patch /
//! PUT / DELETE, validation 400s naming the field, 404 on unknown ids, case-insensitive paths,
//! "POST always creates", custom fields, and the special routes (workflow, archive, close,
//! attachments, relationships, workspaces, webhooks subscriptions).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Api, filters, start_default};
use serde_json::{Value, json};

#[tokio::test]
async fn assets_crud_paging_filters_patch_put_delete() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    for i in 0..25 {
        let (s, v) = api
            .post("/Assets", json!({"label": format!("asset {i:02}"), "type": "Software", "ref": format!("sn:{i}")}))
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["id"], json!(i + 1));
        assert_eq!(v["ref"], json!(format!("sn:{i}")));
    }
    // Paging: 1-based pages, total, size.
    let (_, page2) = api.get("/Assets?page=2&size=10").await;
    assert_eq!(
        (page2["total"].clone(), page2["size"].clone(), page2["page"].clone()),
        (json!(25), json!(10), json!(2))
    );
    assert_eq!(page2["items"].as_array().unwrap().len(), 10);
    assert_eq!(page2["items"][0]["label"], "asset 10");
    let (_, default) = api.get("/Assets").await;
    assert_eq!(default["size"], 20);
    let (_, clamped) = api.get("/Assets?size=100000").await;
    assert_eq!(clamped["size"], 500);
    let (_, skipped) = api.get("/Assets?skip=24").await;
    assert_eq!(skipped["items"].as_array().unwrap().len(), 1);
    // Sorting.
    let (_, sorted) = api.get("/Assets?sortBy=label&asc=false&size=1").await;
    assert_eq!(sorted["items"][0]["label"], "asset 24");
    // Filters (JsonRuleEngine rules), PascalCase field names accepted.
    let f = filters(r#"{"field":"Ref","operator":"equal","value":"sn:7"}"#);
    let (_, found) = api.get(&format!("/Assets?filters={f}")).await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["label"], "asset 07");
    let f = filters(
        r#"{"separator":"Or","rules":[{"field":"ref","operator":"in","value":["sn:1","sn:2"]},{"field":"label","operator":"contains","value":"24"}]}"#,
    );
    let (_, found) = api.get(&format!("/Assets?filters={f}")).await;
    assert_eq!(found["total"], 3);
    let f = filters(r#"{"field":"description","operator":"isNull"}"#);
    assert_eq!(api.get(&format!("/Assets?filters={f}")).await.1["total"], 25);
    let f = filters(r#"{"field":"nope","operator":"equal","value":1}"#);
    let (s, err) = api.get(&format!("/Assets?filters={f}")).await;
    assert_eq!(s, 400);
    assert!(err["errors"]["filters"].is_array(), "{err}");
    let (_, q) = api.get("/Assets?q=ASSET%2003").await;
    assert_eq!(q["total"], 1);

    // GET by id, case-insensitive path.
    let (s, one) = api.get("/assets/3").await;
    assert_eq!(s, 200);
    assert_eq!(one["label"], "asset 02");
    // JSON Patch (path case-insensitive, Swashbuckle's {operations} form too).
    let (s, _) = api.patch("/Assets/3", json!([{"op": "replace", "path": "/Label", "value": "patched"}, {"op": "add", "path": "/description", "value": "d"}])).await;
    assert_eq!(s, 200);
    let (s, _) =
        api.patch("/Assets/3", json!({"operations": [{"op": "replace", "path": "/city", "value": "Lyon"}]})).await;
    assert_eq!(s, 200);
    let one = api.get("/Assets/3").await.1;
    assert_eq!(
        (one["label"].clone(), one["description"].clone(), one["city"].clone()),
        (json!("patched"), json!("d"), json!("Lyon"))
    );
    // A patch producing an invalid DTO is a 400 and changes nothing.
    let (s, err) = api.patch("/Assets/3", json!([{"op": "replace", "path": "/type", "value": "Spaceship"}])).await;
    assert_eq!(s, 400);
    assert!(err["errors"]["type"].is_array(), "{err}");
    let (s, _) = api.patch("/Assets/3", json!([{"op": "remove", "path": "/nothing"}])).await;
    assert_eq!(s, 400);
    // PUT replaces writable fields: omitted ones are gone, read-only ones stay.
    let created = one["dateCreation"].clone();
    let (s, put) = api.put("/Assets/3", json!({"label": "replaced", "type": "Data"})).await;
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["label"], "replaced");
    assert!(put.get("description").is_none() && put.get("city").is_none() && put.get("ref").is_none(), "{put}");
    assert_eq!(put["dateCreation"], created);
    assert_eq!(put["id"], 3);
    // Collection PATCH {ids, patch} and batch delete.
    let (s, _) = api
        .patch("/Assets", json!({"ids": [1, 2], "patch": [{"op": "replace", "path": "/city", "value": "Paris"}]}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(api.get("/Assets/2").await.1["city"], "Paris");
    let (s, _) = api.patch("/Assets", json!({"ids": [1, 999], "patch": []})).await;
    assert_eq!(s, 404);
    let (s, _) = api.post("/Assets/batch-delete", json!([1, 2])).await;
    assert_eq!(s, 200);
    assert_eq!(api.get("/Assets/1").await.0, 404);
    // DELETE, then 404.
    assert_eq!(api.delete("/Assets/3").await.0, 200);
    assert_eq!(api.get("/Assets/3").await.0, 404);
    assert_eq!(api.delete("/Assets/3").await.0, 404);
    assert_eq!(api.get("/Assets/not-an-id").await.0, 404);
    assert_eq!(api.get("/Assets").await.1["total"], 22);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    let cases = [
        ("/Assets", json!({"label": "x"}), "type"),
        ("/Assets", json!({"label": "x".repeat(656), "type": "Data"}), "label"),
        ("/Assets", json!({"label": "x", "type": "Nope"}), "type"),
        ("/Assets", json!({"label": " ", "type": "Data"}), "label"),
        ("/Actors", json!({"countryCode": "FRA"}), "countryCode"),
        ("/DataFields", json!({"definition": "no label"}), "label"),
        ("/DataProcessings", json!({"label": "p"}), "areaId"),
        ("/DataProcessings", json!({"label": "p", "areaId": 999}), "areaId"),
        (
            "/DataSubjectRequests",
            json!({"title": "t", "areaId": 1, "locale": "fr-FR-x-toolong", "purposes": ["Access"]}),
            "locale",
        ),
        ("/DataSubjectRequests", json!({"title": "t", "areaId": 1, "locale": "fr"}), "purposes"),
        ("/Tasks", json!({"label": "t", "priority": "Urgent"}), "priority"),
        ("/Tags", json!({"label": "t"}), "type"),
        ("/Teams", json!({"ref": "r"}), "label"),
        ("/Areas", json!({"label": "a", "countryCode": "FRAN"}), "countryCode"),
    ];
    for (path, body, field) in cases {
        let (s, v) = api.post(path, body.clone()).await;
        assert_eq!(s, 400, "{path} {body} → {v}");
        assert!(v["errors"][field].is_array(), "{path} {body}: field {field} not named in {v}");
        assert_eq!(v["status"], 400);
    }
    let resp =
        api.http.post(api.ws("/Assets")).header("X-API-Key", common::KEY).body("{not json").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // Enum names are case-insensitive and numbers map to the 0-based position (ASP.NET input).
    let (s, v) = api.post("/Assets", json!({"label": "x", "type": "SOFTWARE", "hostingType": 1})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["type"].clone(), v["hostingType"].clone()), (json!("Software"), json!("OutSourced")));
}

#[tokio::test]
async fn post_always_creates_and_ids_follow_the_spec() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    let body = json!({"label": "same", "areaId": 1, "processingType": "Vendor"});
    let (_, a) = api.post("/DataProcessings", body.clone()).await;
    let (_, b) = api.post("/DataProcessings", body).await;
    assert_ne!(a["id"], b["id"], "no hidden upsert");
    assert!(uuid::Uuid::parse_str(a["id"].as_str().unwrap()).is_ok(), "DataProcessing ids are uuids");
    assert_eq!(a["processingType"], "Vendor");
    assert_eq!(api.get("/DataProcessings").await.1["total"], 2);
    let (_, actor) = api.post("/Actors", json!({"companyName": "ACME", "actorType": "Morale"})).await;
    assert!(actor["id"].is_i64(), "Actor ids are int32");
    assert_eq!(actor["displayName"], "ACME");
}

#[tokio::test]
async fn data_processings_put_patch_archive() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    let (_, actor) = api.post("/Actors", json!({"companyName": "Vendor SA"})).await;
    let (_, asset) = api.post("/Assets", json!({"label": "CRM", "type": "Software"})).await;
    let (_, dp) = api.post("/DataProcessings", json!({"label": "Payroll", "areaId": 1})).await;
    let id = dp["id"].as_str().unwrap().to_string();
    let update = json!({
        "label": "Payroll", "ref": "hr:payroll", "description": "monthly", "areaId": 1,
        "stakeHolders": [{"actorId": actor["id"], "type": "Stakeholder", "label": "processor"}],
        "recipients": [{"actorId": actor["id"], "type": "Recipient", "recipientType": "Vendor"}],
        "dataControllers": [],
        "assets": [asset],
    });
    let (s, put) = api.put(&format!("/DataProcessings/{id}"), update).await;
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["ref"], "hr:payroll");
    assert_eq!(put["stakeHolders"][0]["actorId"], actor["id"]);
    assert_eq!(put["assets"][0]["label"], "CRM");
    let (s, err) = api.put(&format!("/DataProcessings/{id}"), json!({"label": "x", "ref": "r".repeat(51)})).await;
    assert_eq!(s, 400);
    assert!(err["errors"]["ref"].is_array());
    let f = filters(r#"{"field":"ref","operator":"equal","value":"hr:payroll"}"#);
    assert_eq!(api.get(&format!("/DataProcessings?filters={f}")).await.1["total"], 1);
    let (s, _) = api
        .patch(&format!("/DataProcessings/{id}"), json!([{"op": "replace", "path": "/description", "value": "weekly"}]))
        .await;
    assert_eq!(s, 200);
    assert_eq!(api.get(&format!("/DataProcessings/{id}")).await.1["description"], "weekly");
    // Archive hides it from the default list; archived=true shows it; restore brings it back.
    assert_eq!(api.post(&format!("/DataProcessings/archive/{id}"), json!({})).await.0, 200);
    assert_eq!(api.get("/DataProcessings").await.1["total"], 0);
    assert_eq!(api.get("/DataProcessings?archived=true").await.1["total"], 1);
    assert_eq!(api.post("/DataProcessings/restore", json!([id])).await.0, 200);
    assert_eq!(api.get("/DataProcessings").await.1["total"], 1);
    // Workflow move returns the GuidWorkflowUpdateDto.
    let (s, wf) = api.post("/DataProcessings/workflow", json!({"id": id, "stepId": 8})).await;
    assert_eq!(s, 200, "{wf}");
    assert_eq!(api.get(&format!("/DataProcessings/{id}")).await.1["workFlowStepId"], 8);
    let (s, _) = api.post("/DataProcessings/workflow", json!({"id": id, "stepId": 999})).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn data_subject_requests_lifecycle_and_attachments() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    let (s, dsr) = api
        .post("/DataSubjectRequests", json!({"title": "Access", "areaId": 1, "locale": "fr", "purposes": ["Access"], "refId": "crm:42", "email": "a@b.c"}))
        .await;
    assert_eq!(s, 200, "{dsr}");
    assert_eq!(dsr["state"], "Open");
    assert!(dsr.get("attachments").is_none(), "the create answer is the light DTO");
    let id = dsr["id"].as_i64().unwrap();
    let f = filters(r#"{"field":"refId","operator":"equal","value":"crm:42"}"#);
    assert_eq!(api.get(&format!("/DataSubjectRequests?filters={f}")).await.1["total"], 1);
    assert_eq!(api.get("/DataSubjectRequests?states[]=Open&purposes[]=Access").await.1["total"], 1);
    assert_eq!(api.get("/DataSubjectRequests?states[]=Closed").await.1["total"], 0);
    // Workflow: the step's mapped state becomes the DSR state.
    assert_eq!(api.post("/DataSubjectRequests/workflow", json!({"id": id, "stepId": 2})).await.0, 200);
    let got = api.get(&format!("/DataSubjectRequests/{id}")).await.1;
    assert_eq!((got["workFlowStepId"].clone(), got["state"].clone()), (json!(2), json!("Active")));
    // PATCH and PUT.
    assert_eq!(
        api.patch(
            &format!("/DataSubjectRequests/{id}"),
            json!([{"op": "replace", "path": "/resolutionMessage", "value": "done"}])
        )
        .await
        .0,
        200
    );
    let (s, put) = api
        .put(
            &format!("/DataSubjectRequests/{id}"),
            json!({"title": "Access v2", "areaId": 1, "locale": "en", "purposes": ["Access", "Erasure"]}),
        )
        .await;
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["title"], "Access v2");
    assert!(put.get("resolutionMessage").is_none());
    // Attachment: multipart part named File.
    let form = reqwest::multipart::Form::new()
        .part("File", reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("export.txt"));
    let resp = api
        .http
        .post(api.ws(&format!("/DataSubjectAttachments/{id}")))
        .header("X-API-Key", common::KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let att: Value = resp.json().await.unwrap();
    assert_eq!(
        (att["fileName"].clone(), att["size"].clone(), att["userRequestId"].clone()),
        (json!("export.txt"), json!(5), json!(id))
    );
    let file_id = att["id"].as_str().unwrap().to_string();
    let listed = api.get(&format!("/DataSubjectAttachments/{id}")).await.1;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(api.get(&format!("/DataSubjectRequests/{id}")).await.1["attachments"][0]["id"], json!(file_id));
    let body = api
        .http
        .get(api.ws(&format!("/DataSubjectAttachments/{id}/download/{file_id}")))
        .header("X-API-Key", common::KEY)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"hello");
    let wrong_part = reqwest::multipart::Form::new().part("Other", reqwest::multipart::Part::bytes(b"x".to_vec()));
    let resp = api
        .http
        .post(api.ws(&format!("/DataSubjectAttachments/{id}")))
        .header("X-API-Key", common::KEY)
        .multipart(wrong_part)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(api.delete(&format!("/DataSubjectAttachments/{id}/{file_id}")).await.0, 200);
    // Archive / restore / close.
    assert_eq!(api.post(&format!("/DataSubjectRequests/archive/{id}"), json!({})).await.0, 200);
    assert_eq!(api.get("/DataSubjectRequests").await.1["total"], 0);
    assert_eq!(api.post(&format!("/DataSubjectRequests/restore/{id}"), json!({})).await.0, 200);
    assert_eq!(api.post(&format!("/DataSubjectRequests/{id}/close"), json!({"closedReason": "Accepted"})).await.0, 200);
    let closed = api.get(&format!("/DataSubjectRequests/{id}")).await.1;
    assert_eq!((closed["state"].clone(), closed["closedReason"].clone()), (json!("Closed"), json!("Accepted")));
    assert!(closed["dateClosed"].is_string());
    assert_eq!(api.delete(&format!("/DataSubjectRequests/{id}")).await.0, 200);
    assert_eq!(api.get(&format!("/DataSubjectRequests/{id}")).await.0, 404);
}

#[tokio::test]
async fn tasks_datafields_datasets_tags_teams_areas_contracts() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    let (s, task) = api
        .post("/Tasks", json!({"label": "call DPO", "priority": "High", "objectType": "DataSubject", "objectId": "1"}))
        .await;
    assert_eq!(s, 200, "{task}");
    let tid = task["id"].as_i64().unwrap();
    assert_eq!(
        api.put(&format!("/Tasks/{tid}"), json!({"label": "call DPO", "state": "Active"})).await.1["state"],
        "Active"
    );
    assert_eq!(api.post(&format!("/Tasks/{tid}/archive"), json!({"archived": true})).await.0, 200);
    assert_eq!(api.get("/Tasks/count").await.1, json!(0));
    assert_eq!(api.get("/Tasks/count?archived=true").await.1, json!(1));

    let (_, field) = api
        .post("/DataFields", json!({"label": "email", "personalDataCategory": "CivilStatus", "dataType": "String"}))
        .await;
    let fid = field["id"].as_str().unwrap().to_string();
    assert_eq!(api.get("/DataFields?cats[]=CivilStatus").await.1["total"], 1);

    // Datasets (DataRetentionRules) group fields by id; PATCH replaces the list; DELETE returns the DTO.
    let fields = json!([{"id": fid, "label": "email"}]);
    let (s, set) = api
        .post("/DataRetentionRules", json!({"label": "crm.customers", "dataSetSource": "Direct", "dataFields": fields}))
        .await;
    assert_eq!(s, 200, "{set}");
    let sid = set["id"].as_str().unwrap().to_string();
    assert_eq!(set["dataFields"][0]["id"], json!(fid));
    assert_eq!(api.post("/DataRetentionRules", json!({"description": "no label"})).await.0, 400);
    assert_eq!(api.post("/DataRetentionRules", json!({"label": "x", "dataSetSource": "Nope"})).await.0, 400);
    let ops = json!([{"op": "add", "path": "/dataFields", "value": []}]);
    assert_eq!(api.patch(&format!("/DataRetentionRules/{sid}"), ops).await.0, 200);
    let (_, got) = api.get(&format!("/DataRetentionRules/{sid}")).await;
    assert_eq!(got["dataFields"], json!([]));
    assert_eq!(api.get("/DataRetentionRules").await.1["total"], 1);
    let (s, deleted) = api.delete(&format!("/DataRetentionRules/{sid}")).await;
    assert_eq!((s, deleted["label"].clone()), (200, json!("crm.customers")));
    assert_eq!(api.get(&format!("/DataRetentionRules/{sid}")).await.0, 404);

    let (s, deleted) = api.delete(&format!("/DataFields/{fid}")).await;
    assert_eq!((s, deleted["label"].clone()), (200, json!("email")), "DELETE DataFields returns the DTO");

    let (_, tag) = api.post("/Tags", json!({"label": "hr", "type": "Asset", "color": "#fff"})).await;
    assert_eq!(tag["type"], "Asset");
    let (_, tags) = api.get("/Tags?type=Asset").await;
    assert!(tags.is_array(), "GET Tags is a bare array");
    assert_eq!(tags.as_array().unwrap().len(), 1);

    let (s, team) = api.post("/Teams", json!({"label": "Privacy", "ref": "ad:privacy", "users": [1, 2]})).await;
    assert_eq!((s, team), (200, Value::Null), "POST Teams has no body in SPEC-2022");
    let (_, teams) = api.get("/Teams?ref=ad:privacy").await;
    assert_eq!(teams["total"], 1);
    assert_eq!(teams["items"][0]["nbUsers"], 2);

    let (_, area) = api.post("/Areas", json!({"label": "HR", "ref": "org:hr", "parentId": 1})).await;
    assert_eq!(area["type"], "Area");
    assert_eq!(api.get("/Areas?ref=org:hr").await.1["total"], 1);

    // Contracts: provisional shape (docs/dastra-api.md §7 #10).
    let (s, c) = api
        .post("/Contracts", json!({"label": "DPA ACME", "ref": "coupa:c-1", "dateStart": "2026-01-01T00:00:00Z"}))
        .await;
    assert_eq!(s, 200, "{c}");
    let cid = c["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.patch(&format!("/Contracts/{cid}"), json!([{"op": "replace", "path": "/description", "value": "v2"}]))
            .await
            .0,
        200
    );
    assert_eq!(api.get(&format!("/Contracts/{cid}")).await.1["description"], "v2");
    let f = filters(r#"{"field":"ref","operator":"equal","value":"coupa:c-1"}"#);
    assert_eq!(api.get(&format!("/Contracts?filters={f}")).await.1["total"], 1);
}

#[tokio::test]
async fn relationships() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    let (_, asset) = api.post("/Assets", json!({"label": "CRM", "type": "Software"})).await;
    let (_, actor) = api.post("/Actors", json!({"companyName": "Host"})).await;
    let (s, body) = api
        .post("/GenericRelationships", json!({"originType": "Asset", "originId": asset["id"].to_string(), "targetType": "Actor", "targetIds": [actor["id"].to_string()], "label": "hosted by"}))
        .await;
    assert_eq!((s, body), (200, Value::Null));
    let (_, links) = api.get(&format!("/GenericRelationships?objectIds[]={}", asset["id"])).await;
    let links = links.as_array().unwrap().clone();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0]["target"]["id"], json!(actor["id"].to_string()));
    let link_id = links[0]["id"].as_str().unwrap().to_string();
    let mut updated = links[0].clone();
    updated["label"] = json!("runs on");
    assert_eq!(api.put(&format!("/GenericRelationships/{link_id}"), updated).await.0, 200);
    assert_eq!(api.get("/GenericRelationships").await.1[0]["label"], "runs on");
    assert_eq!(api.delete(&format!("/GenericRelationships/{link_id}")).await.0, 200);
    assert_eq!(api.delete(&format!("/GenericRelationships/{link_id}")).await.0, 404);

    let (_, a) = api.post("/DataProcessings", json!({"label": "A", "areaId": 1})).await;
    let (_, b) = api.post("/DataProcessings", json!({"label": "B", "areaId": 1})).await;
    let (aid, bid) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let (s, rel) = api
        .post(
            &format!("/DataProcessingRelationships/{aid}"),
            json!({"element": {"id": bid}, "relationShipType": "Child"}),
        )
        .await;
    assert_eq!(s, 200, "{rel}");
    assert_eq!(rel["element"]["label"], "B");
    let (_, rels) = api.get(&format!("/DataProcessingRelationships/{aid}")).await;
    assert_eq!(rels.as_array().unwrap().len(), 1);
    let rid = rel["id"].as_str().unwrap();
    assert_eq!(api.delete(&format!("/DataProcessingRelationships/{rid}")).await.0, 200);
}

#[tokio::test]
async fn custom_fields_follow_the_notes() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    let defs = json!([{"key": "externalId", "type": "shortText", "required": true}, {"key": "tier", "type": "singleSelect", "options": ["gold", "silver"]}]);
    let r = api.http.put(emu.url("/__admin/custom-fields/1/Actors")).json(&defs).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (s, actor) =
        api.post("/Actors", json!({"companyName": "X", "customFields": {"externalId": "crm:1", "unknown": 5}})).await;
    assert_eq!(s, 200, "{actor}");
    assert_eq!(actor["customFields"], json!({"externalId": "crm:1"}), "unknown keys are dropped");
    let (s, err) = api
        .post("/Actors", json!({"companyName": "Y", "customFields": {"externalId": "crm:2", "tier": "bronze"}}))
        .await;
    assert_eq!(s, 400);
    assert!(err["errors"]["customFields.tier"].is_array(), "{err}");
    let (s, _) = api.post("/Actors", json!({"companyName": "Z"})).await;
    assert_eq!(s, 400, "required custom field missing");
    let f = filters(r#"{"field":"customFields.externalId","operator":"equal","value":"crm:1"}"#);
    assert_eq!(api.get(&format!("/Actors?filters={f}")).await.1["total"], 1);
}

#[tokio::test]
async fn tenant_routes_and_webhook_subscriptions() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    let get = |path: &'static str| {
        let http = api.http.clone();
        let url = emu.url(path);
        async move {
            let r = http.get(url).header("X-API-Key", common::KEY).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, ws) = get("/v1/Workspaces").await;
    assert_eq!((s, ws["total"].clone(), ws["items"][0]["id"].clone()), (200, json!(1), json!(1)));
    assert_eq!(get("/v1/WorkSpaces/1").await.1["label"], "Emulated workspace");
    assert_eq!(get("/v1/workspaces/9").await.0, 404);
    assert_eq!(get("/me").await.0, 200);
    assert_eq!(get("/status").await.0, 200);
    assert_eq!(get("/rate-limiting-state").await.1["enabled"], false);
    assert_eq!(get("/v1/ws/9/Assets").await.0, 404, "unknown workspace");

    let hooks = emu.url("/v1/WebHookUrls");
    let r =
        api.http.post(&hooks).header("X-API-Key", common::KEY).json(&json!({"url": "not a url"})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = api
        .http
        .post(&hooks)
        .header("X-API-Key", common::KEY)
        .json(&json!({"url": "http://127.0.0.1:9/hook", "workSpaceId": 1, "subscribedEvents": ["TaskCreation"]}))
        .send()
        .await
        .unwrap();
    let hook: Value = r.json().await.unwrap();
    assert!(uuid::Uuid::parse_str(hook["signatureKey"].as_str().unwrap()).is_ok());
    assert_eq!((hook["nbErrors"].clone(), hook["inError"].clone()), (json!(0), json!(false)));
    let (_, list) = get("/v1/WebHookUrls").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let r = api.http.delete(format!("{hooks}/{}", hook["id"])).header("X-API-Key", common::KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(get("/v1/WebHookUrls").await.1, json!([]));
}

#[tokio::test]
async fn workflows_and_page() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    let (_, all) = api.get("/Workflows").await;
    assert_eq!(all.as_array().unwrap().len(), 12);
    let (_, dsr) = api.get("/Workflows/DataSubject").await;
    assert_eq!(dsr.as_array().unwrap().len(), 3);
    let (s, _) = api
        .put(
            "/Workflows",
            json!([{"label": "Triage", "type": "Task"}, {"label": "Closed", "type": "Task", "finalStep": true}]),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(api.get("/Workflows/task").await.1.as_array().unwrap().len(), 2);
    assert_eq!(api.get("/Workflows/Nope").await.0, 404);
    api.post("/Assets", json!({"label": "Visible <asset>", "type": "Data"})).await;
    let html = api.http.get(emu.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Visible &lt;asset&gt;"), "the page lists the latest items, escaped");
    assert!(html.contains("<td>Assets</td><td>1</td>"), "the page counts entities");
    assert!(html.contains("/v1/ws/{workspaceId}/Assets"), "the page shows request counters");
}

#[tokio::test]
async fn users_are_seeded_by_the_admin_api_and_read_only_through_dastras() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    let admin = |body: Value| {
        let http = api.http.clone();
        let url = emu.url("/__admin/users/1");
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, seeded) = admin(json!([{"email": "dpo@example.com"}, {"email": "dpo@example.com.evil.io"}])).await;
    assert_eq!(s, 200, "{seeded}");
    assert_eq!((seeded[0]["id"].clone(), seeded[1]["id"].clone()), (json!(1), json!(2)));
    assert_eq!(admin(json!({"email": "DPO@example.com"})).await.0, 400, "e-mails are unique");
    assert_eq!(admin(json!({"displayName": "no e-mail"})).await.0, 400);
    // `q` is a free-text search: both match, the caller matches exactly.
    let (_, found) = api.get("/Users?q=dpo@example.com").await;
    assert_eq!(found["total"], 2);
    assert_eq!(found["items"][0]["email"], "dpo@example.com");
    assert_eq!(api.get("/Users/1").await.1["email"], "dpo@example.com");
    assert_eq!(api.get("/Users/9").await.0, 404);
    assert_eq!(api.post("/Users", json!({"email": "new@example.com"})).await.0, 405, "no user creation");
}

#[tokio::test]
async fn cloud_storage_upload_list_link_download() {
    let emu = start_default().await;
    let api = Api::new(&emu);
    let (_, task) = api.post("/Tasks", json!({"label": "Review"})).await;
    let task_id = task["id"].as_i64().unwrap();
    let upload = |part: &'static str, provider: &'static str| {
        let http = api.http.clone();
        let url = api.ws(&format!("/CloudStorage/{provider}"));
        async move {
            let form = reqwest::multipart::Form::new()
                .part(part, reqwest::multipart::Part::bytes(b"%PDF dpa".to_vec()).file_name("dpa.pdf"));
            let r = http.post(url).header("X-API-Key", common::KEY).multipart(form).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, file) = upload("file", "Dastra").await;
    assert_eq!(s, 200, "{file}");
    assert_eq!(
        (file["fileName"].clone(), file["size"].clone(), file["source"].clone()),
        (json!("dpa.pdf"), json!(8), json!("Dastra"))
    );
    assert!(file.get("_contentBase64").is_none(), "the bytes are not in the answer");
    let file_id = file["id"].as_str().unwrap().to_owned();
    assert_eq!(upload("other", "Dastra").await.0, 400, "the part is `file`");
    assert_eq!(upload("file", "GoogleDrive").await.0, 404, "only Dastra's own storage");
    let (_, providers) = api.get("/CloudStorage").await;
    assert_eq!(providers[0]["id"], "Dastra");
    let (_, listed) = api.get("/CloudStorage/dastra?q=dpa.pdf").await;
    assert_eq!(listed["items"][0]["id"], json!(file_id));
    assert_eq!(api.get("/CloudStorage/Dastra?q=nothing").await.1["total"], 0);
    // Link (twice: harmless), to a missing object (404), with an unknown type (404).
    for _ in 0..2 {
        assert_eq!(api.post(&format!("/CloudStorage/Dastra/link/{file_id}/Task/{task_id}"), json!({})).await.0, 200);
    }
    assert_eq!(api.post(&format!("/CloudStorage/Dastra/link/{file_id}/Task/999"), json!({})).await.0, 404);
    assert_eq!(api.post(&format!("/CloudStorage/Dastra/link/{file_id}/Spaceship/1"), json!({})).await.0, 404);
    let stored = emu.state.entities(1, "CloudStorage");
    assert_eq!(stored[0]["_links"], json!([{"type": "Task", "objectId": task_id}]));
    let bytes = api
        .http
        .get(api.ws(&format!("/CloudStorage/Dastra/{file_id}/download")))
        .header("X-API-Key", common::KEY)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"%PDF dpa");
}
