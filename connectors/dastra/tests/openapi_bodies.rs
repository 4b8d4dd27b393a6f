//! Every request body the client sends, serialized from realistic values, validates against the
//! matching component schema of Dastra's OpenAPI document (the emulator's verbatim copy,
//! [`OPENAPI`]; where it comes from: `docs/dastra-api.md` §0): no unknown (misnamed) field, no
//! read-only field, types, enums, maxLengths and required fields as declared. Validation runs in
//! Python `jsonschema` from the tools venv (`$DASTRA_PYTHON`, installed by `scripts/tools.sh`).
//! Negative controls prove the check fails on a misnamed field, an overlong string and a bad enum
//! value. The enums of the model are also compared with the document's.
//!
//! Allowed beyond the 2022 document, each documented in `docs/dastra-api.md`: `ref` on `AssetDto` (§4.2, §7 #11)
//! and `customFields` on custom-field-enabled entities (§4.17). `BatchPatchDto.patch` is sent as a
//! plain JSON Patch array (ASP.NET's wire form; Swashbuckle renders `{operations}`, §2.4), so its `ids`
//! and its operations are validated separately. Contract has no published schema and is not checked.

use std::path::PathBuf;
use std::process::Command;

use dastra_connect_dastra::model::*;
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// The one copy of Dastra's OpenAPI document in the repository: the emulator's.
const OPENAPI: &str = "../../emulator/openapi/openapi-2022.json";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("DASTRA_PYTHON") {
        return PathBuf::from(p);
    }
    let tools = std::env::var("DASTRA_TOOLS_DIR").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/dastra-connect/tools")
    });
    let p = tools.join("venv/bin/python");
    assert!(
        p.exists(),
        "Python with `jsonschema` not found at {} and DASTRA_PYTHON is not set: run `eval \"$(bash scripts/tools.sh)\"`",
        p.display()
    );
    p
}

struct Case {
    name: &'static str,
    schema: Value,
    body: Value,
    extensions: &'static [&'static str],
    ignore_required: bool,
}

fn case<T: Serialize>(name: &'static str, schema: &str, body: &T, extensions: &'static [&'static str]) -> Case {
    Case {
        name,
        schema: json!(schema),
        body: serde_json::to_value(body).expect("serializes"),
        extensions,
        ignore_required: false,
    }
}

fn inline<T: Serialize>(name: &'static str, schema: Value, body: &T) -> Case {
    Case {
        name,
        schema,
        body: serde_json::to_value(body).expect("serializes"),
        extensions: &[],
        ignore_required: false,
    }
}

fn run(cases: &[Case]) -> Vec<(String, Vec<String>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cases.json");
    let list: Vec<Value> = cases
        .iter()
        .map(|c| {
            let mut v = json!({"name": c.name, "body": c.body, "extensions": c.extensions, "ignore_required": c.ignore_required});
            if c.schema.is_string() {
                v["schema"] = c.schema.clone();
            } else {
                v["inline"] = c.schema.clone();
            }
            v
        })
        .collect();
    std::fs::write(&file, serde_json::to_vec(&list).expect("json")).expect("write cases");
    let out = Command::new(python())
        .arg(crate_dir().join("tests/validate_bodies.py"))
        .arg(crate_dir().join(OPENAPI))
        .arg(&file)
        .output()
        .expect("run validate_bodies.py");
    assert!(out.status.success(), "validator failed: {}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("validator output");
    results
        .into_iter()
        .map(|r| {
            let name = r["name"].as_str().unwrap_or_default().to_owned();
            let errors = r["errors"]
                .as_array()
                .map(|a| a.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            (name, errors)
        })
        .collect()
}

fn uuid(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

fn tags() -> Option<Vec<TagDto>> {
    Some(vec![TagDto {
        id: Some(3),
        label: "CMDB".into(),
        r#type: Some(TagType::Asset),
        color: Some("#ff0000".into()),
    }])
}

fn custom() -> Option<CustomFields> {
    let mut m = CustomFields::new();
    m.insert("external_key".into(), json!("servicenow:vendor:42"));
    Some(m)
}

fn asset() -> Asset {
    Asset {
        id: Some(12),
        label: "Salesforce CRM".into(),
        r#type: Some(AssetType::Software),
        r#ref: Some(fit_external_key("servicenow:asset:8f2c1d5e9a7b4c3d2e1f0a9b8c7d6e5f", 50)),
        description: Some("CRM of the sales team".into()),
        logo_url: Some("https://example.com/logo.png".into()),
        address: Some("1 rue de la Paix".into()),
        country_code: Some("FR".into()),
        zip_code: Some("75002".into()),
        city: Some("Paris".into()),
        application_state: Some(ApplicationState::InProduction),
        application_type: Some(ApplicationType::Saas),
        hosting_type: Some(HostingType::OutSourced),
        development_type: Some(DevelopmentType::OutSourced),
        maintenance_type: Some(MaintenanceType::InHouse),
        support_type: Some(SupportType::OutSourced),
        purposes: Some(vec![uuid(1)]),
        tags: tags(),
        custom_fields: custom(),
        date_creation: Some("2024-01-01T00:00:00Z".into()),
        date_update: Some("2024-01-02T00:00:00Z".into()),
    }
}

fn actor() -> Actor {
    Actor {
        id: Some(4),
        actor_type: Some(ActorType::Morale),
        vendor_type: Some(VendorType::B2B),
        access_level: Some(AccessLevel::Restricted),
        company_name: Some("ACME SAS".into()),
        given_name: None,
        family_name: None,
        description: Some("Payroll provider".into()),
        country_code: Some("FR".into()),
        email: Some("dpo@acme.example".into()),
        phone_number: Some("+33100000000".into()),
        contact_name: Some("Jane Doe".into()),
        contact_position: Some("DPO".into()),
        immatriculation_number: Some("552 100 554".into()),
        website_url: Some("https://acme.example".into()),
        address: Some("2 avenue Foch".into()),
        zip_code: Some("75016".into()),
        city: Some("Paris".into()),
        logo_url: None,
        dpa_signature_date: Some("2023-05-01T00:00:00Z".into()),
        tags: tags(),
        custom_fields: custom(),
        display_name: Some("ACME SAS (read only)".into()),
        date_creation: Some("2024-01-01T00:00:00".into()),
        date_update: None,
    }
}

fn processing() -> DataProcessing {
    DataProcessing {
        id: Some(uuid(2)),
        label: "Payroll".into(),
        r#ref: Some("coupa:processing:77".into()),
        description: Some("Monthly payroll".into()),
        description_html: Some("<p>Monthly payroll</p>".into()),
        processing_type: Some(ProcessingType::Default),
        state: Some(DataProcessingState::Active),
        processing_state: Some(ProcessingState::InProduction),
        area_id: Some(1),
        parent_id: Some(uuid(3)),
        date_deployment: Some("2022-01-01T00:00:00Z".into()),
        version_description: Some("v2".into()),
        owner_id: Some(10),
        work_flow_step_id: Some(2),
        tags: tags(),
        assets: Some(vec![Asset {
            id: Some(12),
            label: "Salesforce CRM".into(),
            r#type: Some(AssetType::Software),
            ..Asset::default()
        }]),
        data_retention_rules: Some(vec![DataRetentionRule {
            id: Some(uuid(9)),
            label: "crm.customers".into(),
            ..DataRetentionRule::default()
        }]),
        purposes: Some(vec![Purpose {
            id: Some(1),
            key: Some(uuid(4)),
            label: "Pay employees".into(),
            description: Some("Salaries".into()),
            legal_basis: Some(LegalBasis::LegalCommitment),
            legal_basis_description: Some("Labour code".into()),
        }]),
        stake_holders: Some(vec![DataProcessingActor {
            id: Some(uuid(5)),
            actor_id: Some(4),
            r#type: Some(DataProcessingActorType::Stakeholder),
            recipient_type: Some(RecipientType::Vendor),
            job_title: Some(JobTitle::Processor),
            label: Some("Payroll processor".into()),
            description: Some("Runs the payroll".into()),
            area_id: Some(1),
            transfers: Some(vec![Transfer {
                id: Some(uuid(6)),
                country_code: Some("US".into()),
                description: Some("Support".into()),
                safe_guard_type: SafeGuardType::EUStandardContractualClause,
                other_label: None,
            }]),
        }]),
        recipients: Some(vec![DataProcessingActor {
            actor_id: Some(4),
            r#type: Some(DataProcessingActorType::Recipient),
            ..DataProcessingActor::default()
        }]),
        person_categories: Some(vec![PersonCategory {
            id: Some(1),
            r#type: PersonCategoryType::Employee,
            label: Some("Employees".into()),
            minor_concerned: Some(false),
            data_subject_volume_max: Some(5000),
        }]),
        right_of_information: Some(AccessType::Automatic),
        right_of_access: Some(AccessType::ManualOrOnDemand),
        right_of_rectification: Some(AccessType::ManualOrOnDemand),
        right_of_erasure: Some(AccessType::NonApplicable),
        right_of_restriction: Some(AccessType::ManualOrOnDemand),
        right_of_opposition: Some(AccessType::None),
        right_of_data_portability: Some(AccessType::ManualOrOnDemand),
        subject_right_process_description: Some("Via HR".into()),
        special_category_data: Some(false),
        large_scale_collection: Some(false),
        automatic_decision: Some(false),
        systematic_monitoring: Some(false),
        vulnerable_people: Some(false),
        is_dpia_required: Some(false),
        custom_fields: custom(),
        archived: Some(false),
        date_creation: Some("2024-01-01T00:00:00Z".into()),
        date_update: None,
    }
}

fn field() -> DataField {
    DataField {
        id: Some(uuid(7)),
        label: "email".into(),
        definition: Some("E-mail address of the customer".into()),
        technical_definition: Some("crm.public.customer.email".into()),
        required: Some(true),
        archiving_policy: Some("3 years after last contact".into()),
        sensitive_data: Some(false),
        sensitive_data_field_legal_justification: Some(SensitiveDataFieldLegalJustification::Other),
        sensitive_data_field_legal_justification_description: Some("n/a".into()),
        personal_data_category: Some(PersonalDataCategory::CivilStatus),
        data_type: Some(GenericDataType::String),
        custom_fields: custom(),
        date_creation: None,
        date_update: None,
    }
}

/// A dataset as the sink writes it: its fields as `{id, label}`.
fn dataset() -> DataRetentionRule {
    DataRetentionRule {
        id: Some(uuid(8)),
        label: "crm.customers".into(),
        description: Some("Customer master data".into()),
        data_set_source: Some(DataSetSource::DirectAndIndirect),
        source_description: Some("Sign-up form and partner imports".into()),
        data_fields: Some(vec![DataField { id: Some(uuid(7)), label: "email".into(), ..DataField::default() }]),
        custom_fields: custom(),
        date_creation: None,
        date_update: None,
    }
}

fn dsr() -> DataSubjectRequest {
    DataSubjectRequest {
        id: Some(33),
        title: "Access request from the CRM".into(),
        area_id: 1,
        locale: "fr".into(),
        purposes: vec![DataSubjectPurposeType::Access, DataSubjectPurposeType::Erasure],
        ref_id: Some("salesforce:case:5003000000D8cuI".into()),
        user_id: Some("customer-991".into()),
        state: Some(DataSubjectRequestState::Processing),
        channel: Some(DataSubjectRequestSource::Import),
        person_category: Some(PersonCategoryType::Client),
        email: Some("jean@example.com".into()),
        phone_number: Some("+33611111111".into()),
        given_name: Some("Jean".into()),
        family_name: Some("Dupont".into()),
        address: Some("3 rue X".into()),
        zip_code: Some("69001".into()),
        city: Some("Lyon".into()),
        country_code: Some("FR".into()),
        description: Some("Raised in Salesforce".into()),
        message: Some("Please send me my data".into()),
        resolution_message: Some("Done".into()),
        closed_reason: Some(ClosedReason::Accepted),
        closed_reason_description: Some("Answered".into()),
        complex: Some(false),
        expiry_time: Some("2024-02-01T00:00:00Z".into()),
        work_flow_step_id: Some(5),
        operator_id: Some(10),
        additional_datas: Some(json!({"caseNumber": "00001026"})),
        send_notification: Some(false),
        tags: tags(),
        custom_fields: custom(),
        archived: Some(false),
        date_creation: None,
        date_update: None,
        date_closed: None,
    }
}

fn task() -> Task {
    let mut extra = serde_json::Map::new();
    extra.insert("externalKey".into(), json!("jira:task:PRIV-12"));
    Task {
        id: Some(8),
        label: "Review vendor DPA".into(),
        description_html: Some("<p>Check clauses</p>".into()),
        object_type: Some(TaskObjectType::Actor),
        object_id: Some("4".into()),
        priority: Some(TaskPriority::High),
        state: Some(TaskState::Active),
        work_flow_step_id: Some(3),
        deadline: Some("2024-03-01T00:00:00Z".into()),
        owner_id: Some(10),
        assigned_to_user_id: Some(11),
        area_id: Some(1),
        parent_id: None,
        color: Some("#00ff00".into()),
        tags: tags(),
        additional_datas: Some(extra),
        custom_fields: custom(),
        archived: Some(false),
        date_creation: None,
        date_update: None,
    }
}

fn ops() -> Vec<PatchOperation> {
    vec![
        PatchOperation::replace("/description", json!("new text")),
        PatchOperation::add("/tags/-", json!({"id": 3, "label": "CMDB", "type": "Asset"})),
        PatchOperation::remove("/logoUrl"),
    ]
}

fn all_cases() -> Vec<Case> {
    let int_ids = json!({"type": "array", "items": {"type": "integer", "format": "int32"}});
    let uuid_ids = json!({"type": "array", "items": {"type": "string", "format": "uuid"}});
    let ops_schema = json!({"type": "array", "items": {"$ref": "#/components/schemas/Operation"}});
    let json_patch =
        operations_from_patch(&json_patch::diff(&json!({"label": "a", "city": "x"}), &json!({"label": "b"})))
            .expect("ops");
    let mut close_case = case(
        "DataSubjectRequestClose (fields of DataSubjectRequestDto)",
        "DataSubjectRequestDto",
        &DataSubjectRequestClose {
            closed_reason: Some(ClosedReason::Duplicate),
            closed_reason_description: Some("Same as #32".into()),
            resolution_message: Some("Closed".into()),
        },
        &[],
    );
    close_case.ignore_required = true;
    vec![
        case("POST/PUT Assets", "AssetDto", &asset(), &["ref", "customFields"]),
        case(
            "POST/PUT Assets (minimal)",
            "AssetDto",
            &Asset { label: "x".into(), r#type: Some(AssetType::Data), ..Asset::default() },
            &[],
        ),
        case("POST/PUT Actors", "ActorDto", &actor(), &["customFields"]),
        case(
            "POST DataProcessings",
            "DataProcessingCreationDto",
            &DataProcessingCreate {
                label: "Payroll".into(),
                area_id: 1,
                processing_type: Some(ProcessingType::Vendor),
            },
            &[],
        ),
        case("PUT DataProcessings", "DataProcessingUpdateDto", &processing(), &["customFields"]),
        case("POST/PUT DataFields", "DataFieldDto", &field(), &["customFields"]),
        case("POST DataRetentionRules", "DataRetentionRuleDto", &dataset(), &["customFields"]),
        case("PUT DataRetentionRules", "DataRetentionRuleUpdateDto", &dataset(), &["customFields"]),
        case("POST/PUT DataSubjectRequests", "DataSubjectRequestDto", &dsr(), &["customFields"]),
        close_case,
        case("POST/PUT Tasks", "TaskCreateUpdateDto", &task(), &["customFields"]),
        case(
            "POST/PUT Areas",
            "AreaBaseDto",
            &Area {
                id: Some(1),
                label: "ACME France".into(),
                r#type: Some(AreaType::Entity),
                parent_id: None,
                r#ref: Some("sap:company:FR01".into()),
                description: Some("Legal entity".into()),
                address: Some("1 rue".into()),
                zip_code: Some("75001".into()),
                city: Some("Paris".into()),
                country_code: Some("FR".into()),
                immatriculation_number: Some("552100554".into()),
                phone_number: Some("+3310000000".into()),
                mail_address: Some("dpo@acme.example".into()),
            },
            &[],
        ),
        case(
            "POST/PUT Teams",
            "TeamDto",
            &Team {
                id: None,
                label: "Privacy".into(),
                r#ref: Some("okta:group:17".into()),
                areas: Some(vec![1]),
                users: Some(vec![10, 11]),
            },
            &[],
        ),
        case(
            "POST GenericRelationships",
            "GenericRelationShipCreationDto",
            &GenericRelationshipCreate {
                origin_type: Some(RelationShipObjectType::Asset),
                origin_id: "12".into(),
                target_type: Some(RelationShipObjectType::Actor),
                target_ids: Some(vec!["4".into()]),
                reverse: Some(false),
                label: Some("hosted by".into()),
                description: Some("IaaS".into()),
            },
            &[],
        ),
        case(
            "PUT GenericRelationships",
            "GenericRelationShipLinkedObjectDto",
            &GenericRelationship {
                id: Some(uuid(8)),
                origin_type: Some(RelationShipObjectType::Asset),
                origin_id: "12".into(),
                target: Some(GenericRelationshipObject {
                    id: "4".into(),
                    r#type: Some(RelationShipObjectType::Actor),
                    label: Some("ACME".into()),
                }),
                reverse: Some(false),
                label: Some("hosted by".into()),
                description: None,
            },
            &[],
        ),
        case(
            "POST DataProcessingRelationships",
            "DataProcessingRelationShipDto",
            &DataProcessingRelationship {
                id: None,
                element: Some(DataProcessingLight {
                    id: Some(uuid(9)),
                    label: Some("Recruitment".into()),
                    r#ref: Some("x".into()),
                }),
                relation_ship_type: Some(RelationShipType::Child),
                area_id: Some(1),
                label: Some("sub-processing".into()),
                processing_type: Some(ProcessingType::Default),
            },
            &[],
        ),
        case(
            "POST DataSubjectRequests/workflow",
            "Int32WorkflowUpdateDto",
            &WorkflowUpdate { id: 33, step_id: 5 },
            &[],
        ),
        case(
            "POST DataProcessings/workflow",
            "GuidWorkflowUpdateDto",
            &WorkflowUpdate { id: uuid(2), step_id: 5 },
            &[],
        ),
        case("POST Tasks/{id}/archive", "ArchivePayload", &ArchivePayload { archived: true }, &[]),
        inline("PATCH …/{id} (JSON Patch)", ops_schema.clone(), &ops()),
        inline("PATCH …/{id} (from json_patch::diff)", ops_schema.clone(), &json_patch),
        case(
            "PATCH Actors (batch ids)",
            "Int32ActorDtoBatchPatchDto",
            &json!({"ids": BatchPatch { ids: vec![1, 2], patch: ops() }.ids}),
            &[],
        ),
        case(
            "PATCH DataProcessings (batch ids)",
            "GuidDataProcessingUpdateDtoBatchPatchDto",
            &json!({"ids": [uuid(1), uuid(2)]}),
            &[],
        ),
        inline("PATCH batch (operations)", ops_schema, &BatchPatch { ids: vec![1], patch: ops() }.patch),
        inline("POST …/batch-delete (int ids)", int_ids, &[1, 2, 3]),
        inline("POST …/batch-delete (uuid ids)", uuid_ids, &[uuid(1), uuid(2)]),
    ]
}

#[test]
fn every_body_the_client_sends_matches_the_openapi_schemas() {
    let cases = all_cases();
    let results = run(&cases);
    assert_eq!(results.len(), cases.len());
    let failures: Vec<String> =
        results.iter().filter(|(_, e)| !e.is_empty()).map(|(n, e)| format!("{n}:\n  {}", e.join("\n  "))).collect();
    println!("{} request bodies validated against openapi-2022.json", cases.len());
    assert!(failures.is_empty(), "bodies not matching the OpenAPI document:\n{}", failures.join("\n"));
}

#[test]
fn the_validator_catches_misnamed_fields_overlong_strings_bad_enums_formats_read_only_and_missing_required() {
    let mut misnamed =
        serde_json::to_value(Asset { label: "x".into(), r#type: Some(AssetType::Data), ..Asset::default() })
            .expect("json");
    misnamed["lable"] = json!("typo");
    let mut long = serde_json::to_value(field()).expect("json");
    long["label"] = json!("x".repeat(151));
    let mut bad_enum = serde_json::to_value(actor()).expect("json");
    bad_enum["actorType"] = json!("Company");
    let mut read_only = serde_json::to_value(actor()).expect("json");
    read_only["displayName"] = json!("set by the server");
    let mut ref_on_create =
        serde_json::to_value(DataProcessingCreate { label: "x".into(), area_id: 1, processing_type: None })
            .expect("json");
    ref_on_create["ref"] = json!("k");
    let cases = vec![
        inline("misnamed", json!({"$ref": "#/components/schemas/AssetDto"}), &misnamed),
        inline("overlong", json!({"$ref": "#/components/schemas/DataFieldDto"}), &long),
        inline("bad enum", json!({"$ref": "#/components/schemas/ActorDto"}), &bad_enum),
        inline("read only", json!({"$ref": "#/components/schemas/ActorDto"}), &read_only),
        inline(
            "missing required",
            json!({"$ref": "#/components/schemas/DataSubjectRequestDto"}),
            &json!({"title": "x"}),
        ),
        inline(
            "ref is not accepted on create",
            json!({"$ref": "#/components/schemas/DataProcessingCreationDto"}),
            &ref_on_create,
        ),
        inline(
            "bad uuid",
            json!({"$ref": "#/components/schemas/GuidWorkflowUpdateDto"}),
            &json!({"id": "not-a-uuid", "stepId": 1}),
        ),
        inline(
            "bad date",
            json!({"$ref": "#/components/schemas/TaskCreateUpdateDto"}),
            &json!({"label": "x", "deadline": "tomorrow"}),
        ),
    ];
    // Inline `$ref` schemas are resolved by the validator like named ones, but the read-only walk needs
    // the schema name: use named cases for that one.
    let mut cases = cases;
    cases[3] =
        Case { name: "read only", schema: json!("ActorDto"), body: read_only, extensions: &[], ignore_required: false };
    let results = run(&cases);
    for (name, errors) in &results {
        assert!(!errors.is_empty(), "the validator accepted the bad case `{name}`");
    }
    // And serialization never sends read-only/server fields even when they were read.
    let sent = serde_json::to_value(actor()).expect("json");
    assert!(sent.get("displayName").is_none() && sent.get("dateCreation").is_none());
}

#[test]
fn model_enums_have_exactly_the_documents_values() {
    let doc: Value =
        serde_json::from_slice(&std::fs::read(crate_dir().join(OPENAPI)).expect("read openapi")).expect("json");
    let schemas = &doc["components"]["schemas"];
    for (name, values) in all_enums() {
        let spec: Vec<String> = schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("no enum `{name}` in the document"))
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        assert_eq!(values, spec, "enum {name}");
    }
}

#[test]
fn the_document_is_dastras_published_blob() {
    // The git blob id of `.gitbook/assets/dastra-api.json` in Dastrateam/dastra-doc (docs/dastra-api.md
    // §0): a drift of the copy would make these tests and the emulator check a stale document.
    const UPSTREAM_BLOB: &str = "30a4b90b9bbbb0bc4c5326ff9d7c77167543aaff";
    let copy = crate_dir().join(OPENAPI);
    let out = std::process::Command::new("git").arg("hash-object").arg(&copy).output().expect("git");
    assert!(out.status.success(), "git hash-object {}", copy.display());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), UPSTREAM_BLOB, "{OPENAPI} is not Dastra's document");
}

/// Clearing: a field the source no longer has is removed with a JSON Patch `remove` (not set to
/// null, which Dastra's schema does not allow for most enums and booleans). For every optional
/// field of every resource the sink PATCHes, the PATCH the sink builds for "this field is gone" is
/// applied to the full document and the result validated strictly against the schema; and the old
/// way (`add` null) is shown to fail on a non-nullable enum.
#[test]
fn every_clear_the_sink_patches_leaves_a_document_the_schema_accepts() {
    use dastra_connect_dastra::sink::apply::patch_ops;
    use dastra_connect_dastra::sink::ledger::content_hashes;

    let doc: Value =
        serde_json::from_slice(&std::fs::read(crate_dir().join(OPENAPI)).expect("OpenAPI document")).expect("json");
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let resources: Vec<(&str, &str, Value, &'static [&'static str])> = vec![
        ("Assets", "AssetDto", serde_json::to_value(asset()).unwrap(), &["ref", "customFields"]),
        ("Actors", "ActorDto", serde_json::to_value(actor()).unwrap(), &["customFields"]),
        ("DataProcessings", "DataProcessingUpdateDto", serde_json::to_value(processing()).unwrap(), &["customFields"]),
        ("DataFields", "DataFieldDto", serde_json::to_value(field()).unwrap(), &["customFields"]),
        (
            "DataRetentionRules",
            "DataRetentionRuleUpdateDto",
            serde_json::to_value(dataset()).unwrap(),
            &["customFields"],
        ),
        ("DataSubjectRequests", "DataSubjectRequestDto", serde_json::to_value(dsr()).unwrap(), &["customFields"]),
        ("Tasks", "TaskCreateUpdateDto", serde_json::to_value(task()).unwrap(), &["customFields"]),
    ];
    let mut cases = Vec::new();
    for (family, schema, full, extensions) in resources {
        let required: Vec<&str> = doc["components"]["schemas"][schema]["required"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Value::Object(fields) = &full else { panic!("{family} is not an object") };
        let (_, before) = content_hashes(&full);
        for field in fields.keys().filter(|f| !required.contains(&f.as_str())) {
            let mut cleared = full.clone();
            cleared.as_object_mut().unwrap().remove(field);
            let (_, now) = content_hashes(&cleared);
            let ops = patch_ops(&cleared, &now, Some(&before));
            assert_eq!(ops.len(), 1, "{family}.{field}: one operation clears one field: {ops:?}");
            assert_eq!((ops[0].op.as_str(), ops[0].path.as_str()), ("remove", format!("/{field}").as_str()));
            // Applied as RFC 6902 says: `remove` needs the member to exist, and it does.
            let mut patched = full.clone();
            assert!(patched.as_object_mut().unwrap().remove(field).is_some());
            cases.push(case(leak(format!("PATCH {family} clearing {field}")), schema, &patched, extensions));
        }
    }
    let results = run(&cases);
    let failures: Vec<String> =
        results.iter().filter(|(_, e)| !e.is_empty()).map(|(n, e)| format!("{n}:\n  {}", e.join("\n  "))).collect();
    println!("{} clearing PATCHes validated", cases.len());
    assert!(cases.len() > 40, "every optional field of six resources: {}", cases.len());
    assert!(failures.is_empty(), "clears that leave an invalid document:\n{}", failures.join("\n"));

    // The negative control: a null on a non-nullable enum is refused by the same check.
    let mut nulled = serde_json::to_value(asset()).unwrap();
    nulled["applicationState"] = Value::Null;
    let control = run(&[case("null applicationState", "AssetDto", &nulled, &["ref", "customFields"])]);
    assert!(!control[0].1.is_empty(), "null on a non-nullable enum must fail validation");
}
