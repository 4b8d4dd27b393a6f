//! Organisation objects the sink reads or maintains: Area (legal entity / department, `AreaBaseDto`,
//! `ref` ≤80 with a documented `?ref=` list filter), Team (`TeamDto`, `ref` ≤80, `?ref=` filter) and
//! Workspace (`WorkSpaceDto`, tenant level).

use serde::{Deserialize, Serialize};

use super::common::null_as_empty;
use super::enums::{AreaType, WorkSpaceState};

/// `AreaBaseDto` (POST/PUT) and `AreaDto` (GET). Required: `label` (≤80).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Area {
    /// Dastra id (int32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// Label (required, ≤80).
    #[serde(default)]
    pub label: String,
    /// Legal entity or department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<AreaType>,
    /// Parent area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<i32>,
    /// Internal reference (≤80): the external key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Address (≤500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Postcode (≤10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_code: Option<String>,
    /// City (≤300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Country (≤3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// Registration number (≤20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immatriculation_number: Option<String>,
    /// Phone (≤14).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// E-mail (≤255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_address: Option<String>,
}

/// `TeamDto` (POST/PUT/GET) and `TeamItemDto` (list items). Required: `label`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    /// Dastra id (int32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// Label (required).
    #[serde(default)]
    pub label: String,
    /// Internal reference (≤80): the external key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    /// Area ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub areas: Option<Vec<i32>>,
    /// User ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<i32>>,
}

/// `WorkSpaceDto` (read only for the sink).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// Workspace id (int32).
    #[serde(default)]
    pub id: i32,
    /// Tenant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<i32>,
    /// Label.
    #[serde(default)]
    pub label: String,
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<WorkSpaceState>,
}

/// `GET /v1/Workspaces` has two documented shapes (docs/dastra-api.md §2.2): `{items,total}` in the auth page's
/// example, `WorkSpaceListDto {workSpaces,…}` in the 2022 document. Both are read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum WorkspaceList {
    /// `{items:[…], total}`.
    Paged {
        /// The workspaces.
        #[serde(deserialize_with = "null_as_empty")]
        items: Vec<Workspace>,
    },
    /// `WorkSpaceListDto`.
    Listed {
        /// The workspaces.
        #[serde(rename = "workSpaces", deserialize_with = "null_as_empty")]
        work_spaces: Vec<Workspace>,
    },
}

impl WorkspaceList {
    /// The workspaces, whichever shape came back.
    pub fn into_vec(self) -> Vec<Workspace> {
        match self {
            WorkspaceList::Paged { items } => items,
            WorkspaceList::Listed { work_spaces } => work_spaces,
        }
    }
}

/// `UserDto` as the sink reads it from `GET …/Users` (only the fields it needs; the rest is ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Dastra user id (int32), what `TaskDto.assignedToUserId` holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// E-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Whether the account is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// `CloudAttachmentDto` as answered by a CloudStorage upload or list (only the fields the sink reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CloudAttachment {
    /// File id (a string in SPEC-2022).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
}

/// `CloudAttachmentListDto` (`GET …/CloudStorage/{provider}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CloudAttachmentList {
    /// Files of the page.
    #[serde(default)]
    pub items: Option<Vec<CloudAttachment>>,
    /// Total.
    #[serde(default)]
    pub total: Option<i64>,
}
