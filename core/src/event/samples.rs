//! Fully populated sample payloads and events, one per entity kind (every optional field set,
//! every list non-empty), for tests here and in other crates (feature `testkit`).

use chrono::{DateTime, TimeZone, Utc};

use super::enums::*;
use super::*;

fn key(s: &str) -> EntityKey {
    // The literals below are valid keys; a typo would fail every test using the samples.
    EntityKey::parse(s).unwrap_or_else(|e| panic!("sample key {s}: {e}"))
}

fn at(y: i32, m: u32, d: u32) -> Option<DateTime<Utc>> {
    Utc.with_ymd_and_hms(y, m, d, 9, 30, 15).single()
}

fn custom() -> CustomFields {
    [("owner_team".to_owned(), "Platform".to_owned()), ("criticality".to_owned(), "high – €".to_owned())]
        .into_iter()
        .collect()
}

fn actor(k: &str, rt: RecipientType, jt: JobTitle) -> ProcessingActor {
    ProcessingActor {
        actor: key(k),
        recipient_type: Some(rt),
        job_title: Some(jt),
        label: Some(format!("role of {k}")),
        description: Some("shares order data".into()),
    }
}

/// One fully populated upsert payload per kind, in [`EntityKind::ALL`] order.
pub fn sample_payloads() -> Vec<Payload> {
    vec![
        Payload::Asset(Asset {
            snapshot: true,
            deleted: false,
            label: Some("CRM (Salesforce) — prod".into()),
            asset_type: Some(AssetType::Software),
            description: Some("Customer relationship management\nwith unicode: 日本".into()),
            logo_url: Some("https://example.com/logo.png".into()),
            address: Some("1 rue de Rivoli".into()),
            zip_code: Some("75001".into()),
            city: Some("Paris".into()),
            country_code: Some("FR".into()),
            application_state: Some(ApplicationState::InProduction),
            application_type: Some(ApplicationType::Saas),
            hosting_type: Some(SourcingType::OutSourced),
            development_type: Some(SourcingType::OutSourced),
            maintenance_type: Some(SourcingType::InHouse),
            support_type: Some(SourcingType::InHouse),
            attachments: vec![Attachment {
                file_name: "dpia.pdf".into(),
                object: Some(ObjectRef { bucket: "documents".into(), name: "crm/dpia.pdf".into() }),
                ..Attachment::default()
            }],
            tags: vec!["crm".into(), "tier-1".into()],
            custom_fields: custom(),
        }),
        Payload::Actor(Actor {
            snapshot: false,
            deleted: false,
            actor_type: Some(ActorType::Morale),
            vendor_type: Some(VendorType::B2B),
            company_name: Some("Acme Cloud SAS".into()),
            given_name: Some("Jane".into()),
            family_name: Some("Doe".into()),
            description: Some("Hosting provider".into()),
            email: Some("privacy@acme.example".into()),
            phone_number: Some("+33 1 23 45 67 89".into()),
            contact_name: Some("Jane Doe".into()),
            contact_position: Some("DPO".into()),
            immatriculation_number: Some("FR12345678901".into()),
            website_url: Some("https://acme.example".into()),
            logo_url: Some("https://acme.example/logo.svg".into()),
            address: Some("10 Downing St".into()),
            zip_code: Some("SW1A 2AA".into()),
            city: Some("London".into()),
            country_code: Some("GB".into()),
            dpa_signature_date: at(2023, 4, 1),
            tags: vec!["vendor".into()],
            custom_fields: custom(),
        }),
        Payload::Contract(Contract {
            snapshot: false,
            deleted: false,
            label: Some("Master services agreement".into()),
            description: Some("MSA with Acme".into()),
            area_ref: Some("EU-HQ".into()),
            supplier: Some(key("coupa:actor:supplier-42")),
            assets: vec![key("servicenow:asset:8f2c"), key("servicenow:asset:91aa")],
            start_date: at(2024, 1, 1),
            end_date: at(2026, 12, 31),
            tags: vec!["msa".into()],
            custom_fields: custom(),
        }),
        Payload::DataProcessing(DataProcessing {
            snapshot: false,
            deleted: false,
            label: Some("Customer support".into()),
            description: Some("Handling customer tickets".into()),
            processing_type: Some(ProcessingType::Default),
            processing_state: Some(ProcessingState::InProduction),
            area_ref: Some("EU-HQ".into()),
            parent: Some(key("openmetadata:processing:root")),
            assets: vec![key("servicenow:asset:8f2c")],
            datasets: vec![key("openmetadata:dataset:crm.public.customers")],
            stake_holders: vec![actor("coupa:actor:1", RecipientType::Vendor, JobTitle::Processor)],
            recipients: vec![
                actor("coupa:actor:2", RecipientType::ThirdParty, JobTitle::Other),
                actor("coupa:actor:3", RecipientType::InternalService, JobTitle::Referent),
            ],
            data_controllers: vec![actor("coupa:actor:4", RecipientType::JointController, JobTitle::DataController)],
            purposes: vec![Purpose {
                label: "Support".into(),
                description: Some("Answer requests".into()),
                legal_basis: Some(LegalBasis::Contract),
                legal_basis_description: Some("Terms of service §4".into()),
            }],
            person_categories: vec![PersonCategory {
                category: PersonCategoryType::Client,
                label: Some("Customers".into()),
                minor_concerned: Some(false),
            }],
            tags: vec!["support".into()],
            custom_fields: custom(),
        }),
        Payload::DataField(DataField {
            snapshot: true,
            deleted: false,
            label: Some("email".into()),
            definition: Some("Customer e-mail address".into()),
            technical_definition: Some("crm.public.customers.email".into()),
            required: Some(true),
            archiving_policy: Some("3 years after last contact".into()),
            sensitive_data: Some(false),
            sensitive_data_field_legal_justification: Some(SensitiveDataFieldLegalJustification::Other),
            sensitive_data_field_legal_justification_description: Some("n/a".into()),
            personal_data_category: Some(PersonalDataCategory::CivilStatus),
            data_type: Some(GenericDataType::String),
            processings: vec![key("openmetadata:processing:support")],
            custom_fields: custom(),
        }),
        Payload::Relationship(Relationship {
            snapshot: false,
            deleted: false,
            origin: Some(key("servicenow:asset:8f2c")),
            target: Some(key("coupa:actor:supplier-42")),
            label: Some("hosted by".into()),
            description: Some("production hosting".into()),
            reverse: true,
            relation_ship_type: None,
        }),
        Payload::DataSubjectRequest(DataSubjectRequest {
            snapshot: false,
            deleted: false,
            title: Some("Access request from Jane".into()),
            locale: Some("fr-FR".into()),
            area_ref: Some("EU-HQ".into()),
            purposes: vec![DataSubjectPurposeType::Access, DataSubjectPurposeType::Erasure],
            state: Some(DataSubjectRequestState::Processing),
            person_category: Some(PersonCategoryType::Client),
            channel: Some(DataSubjectRequestSource::Form),
            closed_reason: Some(ClosedReason::None),
            closed_reason_description: Some("still open".into()),
            complex: Some(true),
            email: Some("jane@example.com".into()),
            phone_number: Some("+33 6 00 00 00 00".into()),
            given_name: Some("Jane".into()),
            family_name: Some("Doe".into()),
            address: Some("2 place de la Concorde".into()),
            zip_code: Some("75008".into()),
            city: Some("Paris".into()),
            country_code: Some("FR".into()),
            description: Some("VIP customer".into()),
            message: Some("Please send me my data".into()),
            resolution_message: Some("Export attached".into()),
            user_id: Some("005xx000001Sv6H".into()),
            demand_id: Some("CASE-0042".into()),
            date_demand: at(2024, 6, 1),
            expiry_time: at(2024, 7, 1),
            attachments: vec![Attachment {
                file_name: "export.zip".into(),
                url: "https://files.example.com/export.zip".into(),
                content_type: Some("application/zip".into()),
                sha256: Some("ab".repeat(32)),
                ..Attachment::default()
            }],
            tags: vec!["vip".into()],
            custom_fields: custom(),
        }),
        Payload::Task(Task {
            snapshot: false,
            deleted: false,
            label: Some("Review DPA".into()),
            description_html: Some("<p>Check clause 7</p>".into()),
            state: Some(TaskState::Active),
            priority: Some(Priority::High),
            object: Some(key("coupa:actor:supplier-42")),
            parent: Some(key("jira:task:PRIV-1")),
            area_ref: Some("EU-HQ".into()),
            assigned_to: Some("dpo@example.com".into()),
            assigned_team: Some("privacy-team".into()),
            deadline: at(2024, 12, 15),
            attachments: vec![Attachment {
                file_name: "dpa.pdf".into(),
                content_base64: Some("JVBERi0xLjQK".into()),
                content_type: Some("application/pdf".into()),
                ..Attachment::default()
            }],
            tags: vec!["legal".into()],
            custom_fields: custom(),
        }),
        Payload::Dataset(Dataset {
            snapshot: false,
            deleted: false,
            label: Some("crm.public.customers".into()),
            description: Some("Customer master data".into()),
            data_set_source: Some(DataSetSource::Direct),
            source_description: Some("Sign-up form".into()),
            data_fields: vec![key("openmetadata:datafield:crm.public.customers.email")],
            tags: vec!["crm".into()],
            custom_fields: custom(),
        }),
    ]
}

/// A sample upsert event of `kind` built from [`sample_payloads`].
pub fn sample_event(kind: EntityKind) -> ChangeEvent {
    let payload =
        sample_payloads().into_iter().find(|p| p.kind() == kind).unwrap_or_else(|| Payload::tombstone(kind, false));
    let key = EntityKey::new("sample", kind, "id-1").unwrap_or_else(|e| panic!("{e}"));
    let time = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).single().unwrap_or_default();
    ChangeEvent::new("/connectors/sample", key, sequence_from_u64(7), time, payload)
        .unwrap_or_else(|e| panic!("sample event {kind}: {e}"))
        .with_recorded_time(time + chrono::Duration::milliseconds(1500))
        .with_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
}
