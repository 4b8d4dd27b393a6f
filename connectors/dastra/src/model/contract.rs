//! Contract — **provisional**: Dastra publishes routes for Contracts (2024) but no schema. The shape
//! follows docs/dastra-api.md §7 #10 (UI documentation: name, organisational unit, internal reference, dates,
//! assets, signatories, tags, workflow step). It cannot be validated against the OpenAPI document; keep
//! the sink's contract mapping behind a flag until a real payload is captured.

use serde::{Deserialize, Serialize};

use super::common::{CustomFields, TagDto};

/// Provisional `ContractDto` (uuid id inferred from "BatchPatchDto(guid, ContractDto)").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Contract {
    /// Dastra id (uuid); absent on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
    /// Name of the contract.
    #[serde(default)]
    pub label: String,
    /// Internal reference: the external key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Organisational unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_id: Option<i32>,
    /// Start date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_start: Option<String>,
    /// End date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_end: Option<String>,
    /// Asset ids covered by the contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<Vec<i32>>,
    /// Signatory actor ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatories: Option<Vec<i32>>,
    /// Associated user ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<i32>>,
    /// Tags (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagDto>>,
    /// Workflow step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_flow_step_id: Option<i32>,
    /// Custom fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<CustomFields>,
}
