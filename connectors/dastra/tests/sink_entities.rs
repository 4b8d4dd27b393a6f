//! Scenario 1 of the sink issue, on NATS and on Kafka (MockCluster): a mixed stream of every entity
//! type — processings, contracts, tasks and relationships published before the assets, actors and
//! processings they reference, then updates and deletes — leaves the emulator's workspace exactly
//! equal to the expected state (whole DTOs compared; only server-managed ids and dates ignored), and
//! replaying the whole stream, or sweeping it again as newer versions with the same content, costs
//! zero requests. The same scenario with the first create of every collection answered by a timeout
//! *after* Dastra stored it (ambiguous creates) ends in the very same state: every retry looked the
//! entity up instead of creating it twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{TimeZone, Utc};
use common::*;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::*;
use dastra_connect_core::event::{
    Actor, Asset, Attachment, ChangeEvent, Contract, DataField, DataProcessing, DataSubjectRequest, EntityKey,
    EntityKind, Payload, PersonCategory, ProcessingActor, Purpose, Relationship, Task,
};
use dastra_emulator::RunningEmulator;
use serde_json::{Value, json};
use sha2::Digest;

/// Server-managed fields left out of the comparison: ids and dates Dastra assigns.
const SERVER_MANAGED: &[&str] =
    &["id", "dateCreation", "dateUpdate", "dateClosed", "dateArchived", "archivedDate", "expiryTime"];

const CONSENT: &[u8] = b"%PDF-1.4 signed consent of the data subject";
const CONSENT_V2: &[u8] = b"%PDF-1.4 signed consent of the data subject, countersigned";

fn key(k: &str) -> EntityKey {
    EntityKey::parse(k).unwrap()
}

fn asset(label: &str, city: Option<&str>) -> Payload {
    Payload::Asset(Asset {
        label: Some(label.into()),
        asset_type: Some(AssetType::Software),
        city: city.map(str::to_owned),
        ..Default::default()
    })
}

fn company(name: &str, country: &str) -> Payload {
    Payload::Actor(Actor {
        actor_type: Some(ActorType::Morale),
        vendor_type: Some(VendorType::B2B),
        company_name: Some(name.into()),
        country_code: Some(country.into()),
        ..Default::default()
    })
}

fn payroll(description: &str) -> Payload {
    Payload::DataProcessing(DataProcessing {
        label: Some("Payroll".into()),
        description: Some(description.into()),
        processing_type: Some(ProcessingType::Default),
        processing_state: Some(ProcessingState::InProduction),
        assets: vec![key("cmdb:asset:crm"), key("cmdb:asset:erp")],
        stake_holders: vec![ProcessingActor {
            actor: key("vm:actor:acme"),
            recipient_type: None,
            job_title: Some(JobTitle::Processor),
            label: Some("Payroll provider".into()),
            description: None,
        }],
        recipients: vec![ProcessingActor {
            actor: key("vm:actor:globex"),
            recipient_type: Some(RecipientType::ThirdParty),
            job_title: None,
            label: None,
            description: Some("receives payslips".into()),
        }],
        data_controllers: vec![ProcessingActor {
            actor: key("vm:actor:acme"),
            recipient_type: None,
            job_title: None,
            label: None,
            description: Some("joint".into()),
        }],
        purposes: vec![Purpose {
            label: "Pay employees".into(),
            legal_basis: Some(LegalBasis::Contract),
            ..Default::default()
        }],
        person_categories: vec![PersonCategory {
            category: PersonCategoryType::Employee,
            label: None,
            minor_concerned: Some(false),
        }],
        ..Default::default()
    })
}

fn recruitment() -> Payload {
    Payload::DataProcessing(DataProcessing {
        label: Some("Recruitment".into()),
        processing_type: Some(ProcessingType::Vendor),
        parent: Some(key("grc:processing:payroll")),
        assets: vec![key("cmdb:asset:dc1")],
        // The emulator's seeded area (`ref` "default", id 1), found by `GET Areas?ref=`.
        area_ref: Some("default".into()),
        ..Default::default()
    })
}

fn link(origin: &str, target: &str, label: &str, ty: Option<RelationShipType>) -> Payload {
    Payload::Relationship(Relationship {
        origin: Some(key(origin)),
        target: Some(key(target)),
        label: Some(label.into()),
        relation_ship_type: ty,
        ..Default::default()
    })
}

fn contract(label: &str, supplier: &str, assets: &[&str]) -> Payload {
    Payload::Contract(Contract {
        label: Some(label.into()),
        description: Some(format!("{label} terms")),
        supplier: Some(key(supplier)),
        assets: assets.iter().map(|a| key(a)).collect(),
        start_date: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        end_date: Some(Utc.with_ymd_and_hms(2028, 12, 31, 0, 0, 0).unwrap()),
        ..Default::default()
    })
}

fn field(label: &str, technical: Option<&str>, definition: &str) -> Payload {
    Payload::DataField(DataField {
        label: Some(label.into()),
        definition: Some(definition.into()),
        technical_definition: technical.map(str::to_owned),
        personal_data_category: Some(PersonalDataCategory::CivilStatus),
        data_type: Some(GenericDataType::String),
        processings: vec![key("grc:processing:payroll")],
        ..Default::default()
    })
}

fn task(label: &str, object: Option<&str>, parent: Option<&str>) -> Payload {
    Payload::Task(Task {
        label: Some(label.into()),
        description_html: Some(format!("<p>{label}</p>")),
        state: Some(TaskState::Open),
        priority: Some(Priority::High),
        object: object.map(key),
        parent: parent.map(key),
        deadline: Some(Utc.with_ymd_and_hms(2027, 3, 1, 12, 0, 0).unwrap()),
        ..Default::default()
    })
}

fn dsr(title: &str, purpose: DataSubjectPurposeType, state: DataSubjectRequestState) -> DataSubjectRequest {
    DataSubjectRequest {
        title: Some(title.into()),
        locale: Some("en".into()),
        purposes: vec![purpose],
        state: Some(state),
        email: Some("jane@example.org".into()),
        given_name: Some("Jane".into()),
        family_name: Some("Doe".into()),
        message: Some(format!("{title}, please")),
        ..Default::default()
    }
}

fn gone(kind: EntityKind) -> Payload {
    Payload::tombstone(kind, false)
}

/// Phase 1 (references before their ends), phase 2 (updates and deletes), phase 3 (an archived
/// task comes back at the source).
fn stream(files: &str) -> (Vec<ChangeEvent>, Vec<ChangeEvent>, Vec<ChangeEvent>) {
    let consent = |path: &str, content: &[u8]| Attachment {
        file_name: "consent.pdf".into(),
        url: format!("{files}/{path}"),
        content_type: Some("application/pdf".into()),
        sha256: Some(hex::encode(sha2::Sha256::digest(content))),
        ..Default::default()
    };
    let mut d1_active = dsr("Access request", DataSubjectPurposeType::Access, DataSubjectRequestState::Active);
    d1_active.attachments = vec![consent("consent.pdf", CONSENT)];
    // Same file name, new content: the file is replaced.
    let mut d1_countersigned = d1_active.clone();
    d1_countersigned.attachments = vec![consent("consent-v2.pdf", CONSENT_V2)];
    // A state no workflow step maps: PATCHed.
    let d4 = dsr("Identity check", DataSubjectPurposeType::Rectification, DataSubjectRequestState::IdentityValidation);
    let mut d2 = dsr("Erasure request", DataSubjectPurposeType::Erasure, DataSubjectRequestState::Closed);
    d2.closed_reason = Some(ClosedReason::Accepted);
    d2.closed_reason_description = Some("erased everywhere".into());
    d2.resolution_message = Some("Your data was erased.".into());
    // A legal deadline set by the source (a CRM's created date + its legal delay).
    d2.expiry_time = Some(Utc.with_ymd_and_hms(2027, 1, 15, 0, 0, 0).unwrap());
    let phase1 = vec![
        // Referencing events first.
        event("grc:processing:payroll", 1, payroll("Salaries")),
        event("grc:relationship:crm-acme", 1, link("cmdb:asset:crm", "vm:actor:acme", "hosted by", None)),
        event(
            "grc:relationship:payroll-recruit",
            1,
            link("grc:processing:payroll", "grc:processing:recruit", "feeds", Some(RelationShipType::Parent)),
        ),
        event("grc:relationship:erp-globex", 1, link("cmdb:asset:erp", "vm:actor:globex", "supported by", None)),
        event("legal:contract:msa", 1, {
            let mut msa = contract("MSA Globex", "vm:actor:globex", &["cmdb:asset:crm", "cmdb:asset:dc1"]);
            if let Payload::Contract(c) = &mut msa {
                c.area_ref = Some("default".into());
            }
            msa
        }),
        event("legal:contract:nda", 1, contract("NDA ACME", "vm:actor:acme", &[])),
        event("jira:task:1", 1, task("Review payroll", Some("grc:processing:payroll"), None)),
        event("jira:task:2", 1, task("Answer access request", Some("hub:dsr:1001"), Some("jira:task:1"))),
        event("jira:task:3", 1, task("Obsolete", None, None)),
        event("dc:datafield:email", 1, field("Email", Some("crm.public.users.email"), "Work e-mail")),
        event("dc:datafield:iban", 1, field("IBAN", None, "Bank account")),
        event("dc:datafield:fax", 1, field("Fax", None, "Fax number")),
        event("grc:processing:recruit", 1, recruitment()),
        event(
            "hub:dsr:1001",
            1,
            Payload::DataSubjectRequest(dsr(
                "Access request",
                DataSubjectPurposeType::Access,
                DataSubjectRequestState::Open,
            )),
        ),
        event("hub:dsr:1002", 1, Payload::DataSubjectRequest(d2)),
        event(
            "hub:dsr:1003",
            1,
            Payload::DataSubjectRequest(dsr(
                "Spam",
                DataSubjectPurposeType::Information,
                DataSubjectRequestState::Open,
            )),
        ),
        event("hub:dsr:1004", 1, Payload::DataSubjectRequest(d4)),
        event(
            "grc:processing:old",
            1,
            Payload::DataProcessing(DataProcessing { label: Some("Old".into()), ..Default::default() }),
        ),
        // The ends, last.
        event("cmdb:asset:crm", 1, asset("CRM", Some("Lyon"))),
        event("cmdb:asset:erp", 1, asset("ERP", None)),
        event("cmdb:asset:dc1", 1, asset("Datacenter", Some("Paris"))),
        event("cmdb:asset:tmp", 1, asset("Temp", None)),
        event("vm:actor:acme", 1, company("ACME", "FR")),
        event("vm:actor:globex", 1, company("Globex", "DE")),
    ];
    let phase2 = vec![
        event("cmdb:asset:crm", 2, asset("CRM Cloud", Some("Lyon"))),
        event("grc:processing:payroll", 2, payroll("Monthly salaries")),
        event("grc:relationship:crm-acme", 2, link("cmdb:asset:crm", "vm:actor:acme", "operated by", None)),
        event("dc:datafield:email", 2, field("Email", Some("crm.public.users.email"), "Work or private e-mail")),
        event("hub:dsr:1001", 2, Payload::DataSubjectRequest(d1_active)),
        event("cmdb:asset:tmp", 2, gone(EntityKind::Asset)),
        event("grc:processing:old", 2, gone(EntityKind::DataProcessing)),
        event("grc:relationship:erp-globex", 2, gone(EntityKind::Relationship)),
        event("legal:contract:nda", 2, gone(EntityKind::Contract)),
        event("jira:task:3", 2, gone(EntityKind::Task)),
        event("dc:datafield:fax", 2, gone(EntityKind::DataField)),
        event("hub:dsr:1003", 2, gone(EntityKind::DataSubjectRequest)),
    ];
    let phase3 = vec![
        event("jira:task:3", 3, task("Obsolete no more", None, None)),
        event("hub:dsr:1001", 3, Payload::DataSubjectRequest(d1_countersigned)),
    ];
    (phase1, phase2, phase3)
}

/// Serves the attachment the DSR events point at.
async fn file_server() -> String {
    let app = axum::Router::new()
        .route("/files/consent.pdf", axum::routing::get(|| async { CONSENT.to_vec() }))
        .route("/files/consent-v2.pdf", axum::routing::get(|| async { CONSENT_V2.to_vec() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/files")
}

/// The entities of a family with the server-managed fields removed, keyed by `by`.
fn dump(emu: &RunningEmulator, family: &str, by: &str) -> BTreeMap<String, Value> {
    emu.state
        .entities(1, family)
        .into_iter()
        .map(|mut v| {
            let k = v[by].as_str().map(str::to_owned).unwrap_or_else(|| v[by].to_string());
            if let Some(o) = v.as_object_mut() {
                for f in SERVER_MANAGED {
                    o.remove(*f);
                }
            }
            (k, v)
        })
        .collect()
}

/// The Dastra id of the entity of `family` whose `field` is `value`.
fn id_of(emu: &RunningEmulator, family: &str, field: &str, value: &str) -> Value {
    let all = emu.state.entities(1, family);
    let found: Vec<&Value> = all.iter().filter(|v| v[field] == value).collect();
    assert_eq!(found.len(), 1, "exactly one {family} with {field} = {value}: {all:#?}");
    found[0]["id"].clone()
}

/// Compares a family with the expected DTOs; differences are collected in `errors`.
fn assert_family(emu: &RunningEmulator, family: &str, by: &str, expected: Vec<Value>, errors: &mut Vec<String>) {
    let actual = dump(emu, family, by);
    let expected: BTreeMap<String, Value> =
        expected.into_iter().map(|v| (v[by].as_str().unwrap().to_owned(), v)).collect();
    for (k, e) in &expected {
        match actual.get(k) {
            None => errors.push(format!("{family} {k} missing")),
            Some(a) if a != e => errors.push(format!("{family} {k}:\n  actual   {a}\n  expected {e}")),
            Some(_) => {}
        }
    }
    for k in actual.keys().filter(|k| !expected.contains_key(*k)) {
        errors.push(format!("{family} {k} unexpected: {}", actual[k]));
    }
}

fn expected_state(emu: &RunningEmulator) {
    let mut errors = Vec::new();
    let asset_id = |r: &str| id_of(emu, "Assets", "ref", r);
    let actor_id = |n: &str| id_of(emu, "Actors", "companyName", n);
    let dp_id = |r: &str| id_of(emu, "DataProcessings", "ref", r);
    let asset_dto = |label: &str, city: Option<&str>, r: &str| {
        let mut v = json!({"label": label, "type": "Software", "ref": r});
        if let Some(c) = city {
            v["city"] = json!(c);
        }
        v
    };
    assert_family(
        emu,
        "Assets",
        "ref",
        vec![
            asset_dto("CRM Cloud", Some("Lyon"), "cmdb:asset:crm"),
            asset_dto("ERP", None, "cmdb:asset:erp"),
            asset_dto("Datacenter", Some("Paris"), "cmdb:asset:dc1"),
        ],
        &mut errors,
    );
    let actor_dto = |name: &str, country: &str| {
        json!({"actorType": "Morale", "vendorType": "B2B", "companyName": name, "countryCode": country,
               "displayName": name, "nbReferences": 0})
    };
    assert_family(emu, "Actors", "companyName", vec![actor_dto("ACME", "FR"), actor_dto("Globex", "DE")], &mut errors);

    let payroll = json!({
        "label": "Payroll", "ref": "grc:processing:payroll", "description": "Monthly salaries",
        "processingType": "Default", "processingState": "InProduction", "areaId": 1,
        "state": "Active", "archived": false, "workSpaceId": 1,
        "assets": [
            {"id": asset_id("cmdb:asset:crm"), "label": "CRM", "type": "Software"},
            {"id": asset_id("cmdb:asset:erp"), "label": "ERP", "type": "Software"},
        ],
        "stakeHolders": [{"actorId": actor_id("ACME"), "type": "Stakeholder", "jobTitle": "Processor", "label": "Payroll provider"}],
        "recipients": [{"actorId": actor_id("Globex"), "type": "Recipient", "recipientType": "ThirdParty", "description": "receives payslips"}],
        "dataControllers": [{"actorId": actor_id("ACME"), "description": "joint"}],
        "dataRetentionRules": [],
        "purposes": [{"label": "Pay employees", "legalBasis": "Contract"}],
        "personCategories": [{"type": "Employee", "minorConcerned": false}],
    });
    let recruit = json!({
        "label": "Recruitment", "ref": "grc:processing:recruit", "processingType": "Vendor", "areaId": 1,
        "state": "Active", "archived": false, "workSpaceId": 1,
        "parentId": dp_id("grc:processing:payroll"),
        "assets": [{"id": asset_id("cmdb:asset:dc1"), "label": "Datacenter", "type": "Software"}],
        // Lists the source leaves empty are written empty.
        "stakeHolders": [], "recipients": [], "dataControllers": [], "purposes": [], "personCategories": [],
        "dataRetentionRules": [],
    });
    assert_family(emu, "DataProcessings", "ref", vec![payroll, recruit], &mut errors);

    // Relationships: the generic one updated in place, the removed one gone, the processing link.
    let generic = emu.state.entities(1, "GenericRelationships");
    let generic: Vec<Value> = generic
        .into_iter()
        .map(|mut v| {
            v.as_object_mut().unwrap().remove("id");
            v.as_object_mut().unwrap().remove("dateCreation");
            v
        })
        .collect();
    let want = vec![json!({
        "originType": "Asset", "originId": asset_id("cmdb:asset:crm").to_string(),
        // As the PUT of the update wrote it.
        "target": {"id": actor_id("ACME").to_string(), "type": "Actor"},
        "reverse": false, "label": "operated by", "description": null,
    })];
    if generic != want {
        errors.push(format!("GenericRelationships:\n  actual   {generic:?}\n  expected {want:?}"));
    }
    let payroll_id = dp_id("grc:processing:payroll");
    let recruit_id = dp_id("grc:processing:recruit");
    let recruit_light = emu.state.entities(1, "DataProcessings").into_iter().find(|d| d["id"] == recruit_id).unwrap();
    let mut links = emu.state.entities(1, "DataProcessingRelationships");
    for l in &mut links {
        for f in ["id", "dateCreation"] {
            l.as_object_mut().unwrap().remove(f);
        }
    }
    let want = vec![json!({
        "sourceId": payroll_id, "relationShipType": "Parent", "label": "feeds", "areaId": null, "url": null,
        "processingType": "Vendor", "workspaceId": 1, "create": false,
        "element": {
            "id": recruit_id, "label": "Recruitment", "ref": "grc:processing:recruit", "description": null,
            "workspaceId": 1, "archived": false, "areaId": 1, "processingType": "Vendor",
            "dateCreation": recruit_light["dateCreation"], "dateUpdate": recruit_light["dateUpdate"],
        },
    })];
    if links != want {
        errors.push(format!("DataProcessingRelationships:\n  actual   {links:?}\n  expected {want:?}"));
    }

    let contract_dto = |label: &str, r: &str, supplier: &str, assets: Vec<Value>, archived: bool| {
        json!({
            "label": label, "ref": r, "description": format!("{label} terms"),
            "signatories": [actor_id(supplier)],
            "dateStart": "2026-01-01T00:00:00.000Z", "dateEnd": "2028-12-31T00:00:00.000Z",
            "archived": archived, "assets": assets,
        })
    };
    assert_family(
        emu,
        "Contracts",
        "ref",
        vec![
            {
                let mut msa = contract_dto(
                    "MSA Globex",
                    "legal:contract:msa",
                    "Globex",
                    vec![asset_id("cmdb:asset:crm"), asset_id("cmdb:asset:dc1")],
                    false,
                );
                msa["areaId"] = json!(1);
                msa
            },
            // Archived by policy, not deleted.
            contract_dto("NDA ACME", "legal:contract:nda", "ACME", vec![], true),
        ],
        &mut errors,
    );

    let field_dto = |label: &str, technical: Option<&str>, definition: &str| {
        let mut v = json!({"label": label, "definition": definition, "personalDataCategory": "CivilStatus",
                           "dataType": "String"});
        if let Some(t) = technical {
            v["technicalDefinition"] = json!(t);
        }
        v
    };
    assert_family(
        emu,
        "DataFields",
        "label",
        vec![
            field_dto("Email", Some("crm.public.users.email"), "Work or private e-mail"),
            field_dto("IBAN", None, "Bank account"),
        ],
        &mut errors,
    );

    let dsr_id = |r: &str| id_of(emu, "DataSubjectRequests", "refId", r);
    let dsr_dto = |title: &str, r: &str, purpose: &str, state: &str, step: i64, archived: bool| {
        json!({
            "title": title, "refId": r, "locale": "en", "areaId": 1, "purposes": [purpose],
            "email": "jane@example.org", "givenName": "Jane", "familyName": "Doe", "message": format!("{title}, please"),
            "state": state, "workFlowStepId": step, "archived": archived, "channel": "Internal",
        })
    };
    let mut d2 = dsr_dto("Erasure request", "hub:dsr:1002", "Erasure", "Closed", 1, false);
    d2["closedReason"] = json!("Accepted");
    d2["closedReasonDescription"] = json!("erased everywhere");
    d2["resolutionMessage"] = json!("Your data was erased.");
    assert_family(
        emu,
        "DataSubjectRequests",
        "refId",
        vec![
            // Active through the workflow route: step 2 ("In progress", mapped to Active).
            dsr_dto("Access request", "hub:dsr:1001", "Access", "Active", 2, false),
            d2,
            dsr_dto("Spam", "hub:dsr:1003", "Information", "Open", 1, true),
            // No step maps IdentityValidation: the state is PATCHed, the step stays the initial one.
            dsr_dto("Identity check", "hub:dsr:1004", "Rectification", "IdentityValidation", 1, false),
        ],
        &mut errors,
    );
    // `expiryTime` is server-managed when absent, the source's deadline when the event has one.
    let erasure = emu.state.entities(1, "DataSubjectRequests").into_iter().find(|v| v["refId"] == "hub:dsr:1002");
    let expiry = erasure.as_ref().and_then(|v| v["expiryTime"].as_str()).unwrap_or_default();
    if !expiry.starts_with("2027-01-15T00:00:00") {
        errors.push(format!("DataSubjectRequests hub:dsr:1002 expiryTime {expiry:?}, want the event's 2027-01-15"));
    }
    let mut files = emu.state.entities(1, "DataSubjectAttachments");
    for f in &mut files {
        for k in ["id", "dateCreation", "dateUpdate"] {
            f.as_object_mut().unwrap().remove(k);
        }
    }
    let want = vec![json!({
        "fileName": "consent.pdf", "label": "consent.pdf", "extension": ".pdf", "size": CONSENT_V2.len(),
        "userRequestId": dsr_id("hub:dsr:1001"), "transmitted": false, "deleted": false, "expired": false,
        "nbDownload": 0,
        // The bytes the sink downloaded are the bytes Dastra stores (the emulator's hidden field).
        // Replaced in phase 3 by the countersigned version.
        "_contentBase64": base64::engine::general_purpose::STANDARD.encode(CONSENT_V2),
    })];
    if files != want {
        errors.push(format!("DataSubjectAttachments:\n  actual   {files:?}\n  expected {want:?}"));
    }

    let task_dto = |label: &str, k: &str, object: Option<(&str, String)>, parent: Option<Value>, archived: bool| {
        let mut v = json!({
            "label": label, "descriptionHtml": format!("<p>{label}</p>"), "state": "Open", "priority": "High",
            "deadline": "2027-03-01T12:00:00.000Z", "additionalDatas": {"dastraConnectKey": k},
            "archived": archived, "workspaceId": 1, "workFlowStepId": 4,
        });
        if let Some((ty, id)) = object {
            v["objectType"] = json!(ty);
            v["objectId"] = json!(id);
        }
        if let Some(p) = parent {
            v["parentId"] = p;
        }
        v
    };
    let t1 = emu.state.entities(1, "Tasks").into_iter().find(|t| t["label"] == "Review payroll").unwrap()["id"].clone();
    assert_family(
        emu,
        "Tasks",
        "label",
        vec![
            task_dto(
                "Review payroll",
                "jira:task:1",
                Some(("DataProcessing", payroll_id.as_str().unwrap().to_owned())),
                None,
                false,
            ),
            task_dto(
                "Answer access request",
                "jira:task:2",
                Some(("DataSubject", dsr_id("hub:dsr:1001").to_string())),
                Some(t1),
                false,
            ),
            // Archived in phase 2, restored and updated in phase 3: still one task.
            task_dto("Obsolete no more", "jira:task:3", None, None, false),
        ],
        &mut errors,
    );
    assert!(errors.is_empty(), "workspace differs from the expected state:\n{}", errors.join("\n"));
}

/// Phase 2 sends exactly: one PATCH of the changed field per updated entity, a PUT of the renamed
/// link (after the lookup of its id, not read back after its POST), the removed link's lookup, the DSR's move (workflow steps already cached) and upload, and one request per delete.
fn assert_phase2_requests(emu: &RunningEmulator, after_phase1: u64) {
    let mut sent: Vec<String> = emu
        .state
        .request_log()
        .iter()
        .filter(|r| r.seq > after_phase1)
        .map(|r| {
            let route = r.route.trim_start_matches("/v1/ws/{workspaceId}/");
            match (r.method.as_str(), &r.body) {
                ("PATCH", Some(b)) => format!("PATCH {route} {b}"),
                ("PUT", Some(b)) => format!("PUT {route} label={}", b["label"]),
                (m, _) => format!("{m} {route}"),
            }
        })
        .collect();
    sent.sort();
    let mut want = vec![
        r#"PATCH Assets/{id} [{"op":"add","path":"/label","value":"CRM Cloud"}]"#.to_owned(),
        r#"PATCH DataProcessings/{id} [{"op":"add","path":"/description","value":"Monthly salaries"}]"#.to_owned(),
        r#"PATCH DataFields/{id} [{"op":"add","path":"/definition","value":"Work or private e-mail"}]"#.to_owned(),
        // The generic links' ids are looked up by their ends when first needed.
        "GET GenericRelationships".to_owned(),
        r#"PUT GenericRelationships/{id} label="operated by""#.to_owned(),
        "GET GenericRelationships".to_owned(),
        "POST DataSubjectRequests/workflow".to_owned(),
        "POST DataSubjectAttachments/{id}".to_owned(),
        "DELETE Assets/{id}".to_owned(),
        "DELETE DataProcessings/{id}".to_owned(),
        "DELETE GenericRelationships/{id}".to_owned(),
        "DELETE DataFields/{id}".to_owned(),
        "POST Contracts/archive/{id}".to_owned(),
        "POST Tasks/{id}/archive".to_owned(),
        "POST DataSubjectRequests/archive/{id}".to_owned(),
    ];
    want.sort();
    assert_eq!(sent, want, "requests of phase 2");
}

/// Collections whose first create is made ambiguous (applied, then no answer).
const CREATES: &[&str] = &[
    "Assets$",
    "Actors$",
    "Contracts$",
    "DataProcessings$",
    "DataFields$",
    "DataSubjectRequests$",
    "Tasks$",
    "GenericRelationships$",
    "DataProcessingRelationships/[^/]+$",
    "DataSubjectAttachments/[^/]+$",
];

async fn scenario(broker: Broker, ambiguous_creates: bool) {
    let started = Instant::now();
    let topics = Topics::default();
    let bus = broker.bus(&topics, "sink").await;
    ensure(&bus, &topics).await;
    let emu = emulator().await;
    let files = file_server().await;
    let publisher = bus.publisher().await.unwrap();
    let (phase1, phase2, phase3) = stream(&files);

    let mut config = sink_config(&emu);
    for kind in ["contract", "task", "dsr"] {
        config.policy.deletes.insert(kind.into(), dastra_connect_dastra::sink::config::DeletePolicy::Archive);
    }
    if ambiguous_creates {
        // The client gives up on an answer after 400 ms; these answers never come.
        config.dastra.request_timeout = Duration::from_millis(400);
        for route in CREATES {
            let kind = dastra_emulator::FaultKind::TimeoutAfterWrite { hang_ms: 800 };
            let rule = dastra_emulator::FaultRule::always(kind).method("POST").route(route).count(1);
            emu.state.add_fault(rule).unwrap();
        }
    }
    let sink = RunningSink::start("sink", &bus, &topics, config);
    let wait = Duration::from_secs(50);
    let mut published = phase1.len() as u64;
    publish(publisher.as_ref(), &topics, &phase1).await;
    sink.wait_consumed("sink", published, wait).await;
    let after_phase1 = requests(&emu);
    published += phase2.len() as u64;
    publish(publisher.as_ref(), &topics, &phase2).await;
    sink.wait_consumed("sink", published, wait).await;
    let after_phase2 = requests(&emu);
    if !ambiguous_creates {
        // Phase 1: 6 asset/actor POSTs, 2 contracts, 3 data fields, 3 tasks, 3 processings × (POST +
        // PATCH) + 2 area lookups (the default area, shared with the DSRs; `ref` "default", shared
        // with the contract), 4 DSR POSTs + 1 close + 1 workflow-step lookup + 1 state PATCH, 2
        // generic links × 1 POST (their ids are not read back: 2 GETs fewer than before), 1
        // processing link.
        assert_eq!(after_phase1, 32, "requests of phase 1");
        assert_phase2_requests(&emu, after_phase1);
    }
    published += phase3.len() as u64;
    publish(publisher.as_ref(), &topics, &phase3).await;
    sink.wait_consumed("sink", published, wait).await;
    let total = requests(&emu);
    // Task: restore + PATCH of the two changed fields; DSR: DELETE of the old file + upload.
    assert_eq!(total - after_phase2, 4, "reviving an archived task, replacing an attachment");
    expected_state(&emu);
    if ambiguous_creates {
        for (rule, hits) in emu.state.faults() {
            assert_eq!(hits, 1, "every ambiguous-create fault fired once: {rule:?}");
        }
    }

    // Every POST created exactly one entity: no duplicate create anywhere.
    let writes_by_route: Vec<(String, String, u64)> =
        emu.state.counters().by_route.iter().map(|r| (r.method.clone(), r.route.clone(), r.count)).collect();

    // The whole stream again: every event is stale, nothing is sent.
    let mut all = phase1.clone();
    all.extend(phase2.iter().cloned());
    all.extend(phase3.iter().cloned());
    published += all.len() as u64;
    publish(publisher.as_ref(), &topics, &all).await;
    sink.wait_consumed("sink", published, wait).await;
    assert_eq!(requests(&emu), total, "a replay of the whole stream must cost no request");

    // A snapshot sweep: the newest payload of every key again, as a *newer* version with the same
    // content. Unchanged content (DSR state and files, relationship ends, processing lists, deletes
    // already done) costs nothing either.
    let mut newest: BTreeMap<String, ChangeEvent> = BTreeMap::new();
    for e in all {
        newest.insert(e.key.as_str().to_owned(), e);
    }
    let sweep: Vec<ChangeEvent> = newest
        .into_values()
        .map(|e| {
            let mut data = e.data.clone();
            data.set_snapshot(true);
            event(e.key.as_str(), 100, data)
        })
        .collect();
    published += sweep.len() as u64;
    publish(publisher.as_ref(), &topics, &sweep).await;
    sink.wait_consumed("sink", published, wait).await;
    assert_eq!(requests(&emu), total, "a sweep with unchanged content must cost no request");
    sink.stop().await;
    let by_route: Vec<String> = writes_by_route.iter().map(|(m, r, n)| format!("{n} {m} {r}")).collect();
    println!(
        "{} + {} + {} events; Dastra requests: phase 1 {after_phase1}, phase 2 {}, phase 3 {}, replay 0, sweep 0; {:.1}s\n  {}",
        phase1.len(),
        phase2.len(),
        phase3.len(),
        after_phase2 - after_phase1,
        total - after_phase2,
        started.elapsed().as_secs_f64(),
        by_route.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_stream_on_nats() {
    scenario(Broker::nats().await, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_stream_on_kafka() {
    scenario(Broker::kafka(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_creates_on_nats() {
    scenario(Broker::nats().await, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_creates_on_kafka() {
    scenario(Broker::kafka(), true).await;
}
