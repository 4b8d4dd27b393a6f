//! DataProcessing (record of processing activities). Create takes only
//! `DataProcessingCreationDto {label, areaId, processingType}`; everything else — including the
//! external key `ref` (≤50) — is set afterwards with PUT (`DataProcessingUpdateDto`) or JSON Patch.
//! So a create is always followed by a write of `ref`, and reconciliation after a crash between the two
//! must also consider processings with the same `label` and `areaId` and no `ref`.

use serde::{Deserialize, Serialize};

use super::asset::Asset;
use super::common::{CustomFields, TagDto};
use super::enums::{
    AccessType, DataProcessingActorType, DataProcessingState, JobTitle, LegalBasis, PersonCategoryType,
    ProcessingState, ProcessingType, RecipientType, SafeGuardType,
};

/// `DataProcessingCreationDto`: the only fields POST accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataProcessingCreate {
    /// Label (required, ≤120).
    pub label: String,
    /// Area (organisational unit) id (required).
    pub area_id: i32,
    /// Controller (`Default`) or processor (`Vendor`) record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_type: Option<ProcessingType>,
}

/// `DataProcessingUpdateDto` for PUT / PATCH paths, and `DataProcessingDto` as read (unknown read
/// fields are ignored). Required on PUT: `label` (1–120).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataProcessing {
    /// Dastra id (uuid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
    /// Label (required, 1–120).
    #[serde(default)]
    pub label: String,
    /// The client's own reference (≤50): the external key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    /// Long description (≤3000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Rich-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_html: Option<String>,
    /// Controller or processor record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_type: Option<ProcessingType>,
    /// Record state (Active, Draft…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DataProcessingState>,
    /// Deployment state of the processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_state: Option<ProcessingState>,
    /// Area id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_id: Option<i32>,
    /// Parent processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<uuid::Uuid>,
    /// Deployment date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_deployment: Option<String>,
    /// Version note (≤800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_description: Option<String>,
    /// Owner user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<i32>,
    /// Workflow step id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_flow_step_id: Option<i32>,
    /// Tags (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagDto>>,
    /// Linked assets (`AssetDto` objects; `id`, `label`, `type` suffice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<Vec<Asset>>,
    /// Linked datasets (`DataRetentionRuleDto` objects; `id` and `label` suffice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_retention_rules: Option<Vec<super::dataset::DataRetentionRule>>,
    /// Purposes with legal basis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purposes: Option<Vec<Purpose>>,
    /// Stakeholders (actors in the processing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stake_holders: Option<Vec<DataProcessingActor>>,
    /// Recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<DataProcessingActor>>,
    /// Categories of data subjects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_categories: Option<Vec<PersonCategory>>,
    /// How the right of information is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_of_information: Option<AccessType>,
    /// How the right of access is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_of_access: Option<AccessType>,
    /// How the right of rectification is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_of_rectification: Option<AccessType>,
    /// How the right of erasure is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_of_erasure: Option<AccessType>,
    /// How the right of restriction is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_of_restriction: Option<AccessType>,
    /// How the right of opposition is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_of_opposition: Option<AccessType>,
    /// How the right of portability is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_of_data_portability: Option<AccessType>,
    /// Free text on the rights process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_right_process_description: Option<String>,
    /// DPIA criterion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_category_data: Option<bool>,
    /// DPIA criterion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_scale_collection: Option<bool>,
    /// DPIA criterion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic_decision: Option<bool>,
    /// DPIA criterion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systematic_monitoring: Option<bool>,
    /// DPIA criterion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerable_people: Option<bool>,
    /// Whether a DPIA is required.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "isDPIARequired")]
    pub is_dpia_required: Option<bool>,
    /// Custom fields (post-2022).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<CustomFields>,
    /// Server-managed: archived flag (changed through the archive/restore routes, never sent).
    #[serde(default, skip_serializing)]
    pub archived: Option<bool>,
    /// Server-managed creation date (never sent).
    #[serde(default, skip_serializing)]
    pub date_creation: Option<String>,
    /// Server-managed update date (never sent).
    #[serde(default, skip_serializing)]
    pub date_update: Option<String>,
}

/// `PurposeDto`. Required: `label`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Purpose {
    /// Purpose id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// Stable purpose key (uuid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<uuid::Uuid>,
    /// Label (required).
    #[serde(default)]
    pub label: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Legal basis (art. 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<LegalBasis>,
    /// Legal basis explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis_description: Option<String>,
}

/// `DataProcessingActorDto`: the role of an actor within a processing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataProcessingActor {
    /// Link id (uuid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
    /// The actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<i32>,
    /// Recipient, DataController, Stakeholder or Referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<DataProcessingActorType>,
    /// Kind of recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<RecipientType>,
    /// Job title (`JobTitle` enum name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<JobTitle>,
    /// Label (≤250).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Area id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_id: Option<i32>,
    /// Transfers outside the EU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfers: Option<Vec<Transfer>>,
}

/// `TransferDto`. Required: `safeGuardType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// Transfer id (uuid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
    /// Destination country (≤6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// Free text (≤1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Safeguard (required).
    pub safe_guard_type: SafeGuardType,
    /// Label when `Other` (≤800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_label: Option<String>,
}

/// `DataProcessingPersonCategoryDto`. Required: `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonCategory {
    /// Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// Category (required).
    pub r#type: PersonCategoryType,
    /// Label (≤600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Minors concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor_concerned: Option<bool>,
    /// Upper bound of the number of data subjects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_subject_volume_max: Option<i32>,
}
