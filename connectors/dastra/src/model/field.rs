//! DataField (`DataFieldDto`): an entry of the data glossary (e.g. a catalog column with PII). No
//! external-id field: keyed by a configured custom field or `technicalDefinition` (docs/dastra-api.md §6.3).

use serde::{Deserialize, Serialize};

use super::common::CustomFields;
use super::enums::{GenericDataType, PersonalDataCategory, SensitiveDataFieldLegalJustification};

/// `DataFieldDto`, used for POST, PUT and GET. Required: `label` (≤150).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataField {
    /// Dastra id (uuid); absent on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
    /// Label (required, ≤150).
    #[serde(default)]
    pub label: String,
    /// Business definition (≤2500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
    /// Technical definition (≤2500), e.g. `db.schema.table.column`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technical_definition: Option<String>,
    /// Whether the field is mandatory in the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Archiving policy text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archiving_policy: Option<String>,
    /// Sensitive (art. 9) data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_data: Option<bool>,
    /// Legal justification for sensitive data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_data_field_legal_justification: Option<SensitiveDataFieldLegalJustification>,
    /// Its description (≤2500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_data_field_legal_justification_description: Option<String>,
    /// Category of personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal_data_category: Option<PersonalDataCategory>,
    /// Data type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<GenericDataType>,
    /// Custom fields (post-2022).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<CustomFields>,
    /// Server-managed creation date (never sent).
    #[serde(default, skip_serializing)]
    pub date_creation: Option<String>,
    /// Server-managed update date (never sent).
    #[serde(default, skip_serializing)]
    pub date_update: Option<String>,
}
