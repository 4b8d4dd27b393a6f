//! Dataset (`DataRetentionRuleDto`, Dastra's name for a dataset): a named group of DataFields with
//! its retention rules. No external-id field: keyed by the ledger and, after an open intent, by its
//! label (docs/dastra-api.md §6.3).

use serde::{Deserialize, Serialize};

use super::common::CustomFields;
use super::enums::DataSetSource;
use super::field::DataField;

/// `DataRetentionRuleDto`, used for POST, PUT and GET. Required: `label` (≤400).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataRetentionRule {
    /// Dastra id (uuid); absent on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
    /// Label (required, ≤400).
    #[serde(default)]
    pub label: String,
    /// Description (≤3000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the data is collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_set_source: Option<DataSetSource>,
    /// Description of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_description: Option<String>,
    /// The fields of the dataset (`DataFieldDto` objects; `id` and `label` suffice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_fields: Option<Vec<DataField>>,
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
