//! Asset (`AssetDto`): applications, servers, buildings… `ref` is the external key (not in the 2022
//! document; used by Dastra's own LeanIX/ServiceNow connectors for matching, docs/dastra-api.md §4.2, §7 #11).

use serde::{Deserialize, Serialize};

use super::common::{CustomFields, TagDto};
use super::enums::{
    ApplicationState, ApplicationType, AssetType, DevelopmentType, HostingType, MaintenanceType, SupportType,
};

/// `AssetDto`, used for POST, PUT and GET. Required on write: `label` (≤655) and `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    /// Dastra id (int32); absent on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// Label (required, ≤655).
    #[serde(default)]
    pub label: String,
    /// Kind of asset (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<AssetType>,
    /// External reference (≤50 assumed; the entity key of the source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Logo URL (≤255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// Postal address (≤400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// ISO 3166-1 alpha-2 (≤2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// Postcode (≤10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_code: Option<String>,
    /// City (≤155).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Lifecycle of an application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_state: Option<ApplicationState>,
    /// Kind of application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<ApplicationType>,
    /// Hosted in house or outsourced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosting_type: Option<HostingType>,
    /// Developed in house or outsourced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub development_type: Option<DevelopmentType>,
    /// Maintained in house or outsourced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_type: Option<MaintenanceType>,
    /// Supported in house or outsourced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_type: Option<SupportType>,
    /// Purpose keys (uuid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purposes: Option<Vec<uuid::Uuid>>,
    /// Tags (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagDto>>,
    /// Custom fields (post-2022, see [`CustomFields`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<CustomFields>,
    /// Server-managed: creation date (never sent).
    #[serde(default, skip_serializing)]
    pub date_creation: Option<String>,
    /// Server-managed: last update date (never sent).
    #[serde(default, skip_serializing)]
    pub date_update: Option<String>,
}
