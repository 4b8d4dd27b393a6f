//! Task (`TaskCreateUpdateDto` for writes, `TaskDto` as read). No external-id field: keyed by a
//! configured custom field or `additionalDatas` entry (docs/dastra-api.md §6.3).

use serde::{Deserialize, Serialize};

use super::common::{CustomFields, TagDto};
use super::enums::{TaskObjectType, TaskPriority, TaskState};

/// `TaskCreateUpdateDto` (POST, PUT) and `TaskDto` (GET). Required: `label` (≤120).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Dastra id (int32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// Label (required, ≤120).
    #[serde(default)]
    pub label: String,
    /// Rich-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_html: Option<String>,
    /// Kind of the linked object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<TaskObjectType>,
    /// Id of the linked object (string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<TaskPriority>,
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// Workflow step id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_flow_step_id: Option<i32>,
    /// Deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Owner user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<i32>,
    /// Assignee user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to_user_id: Option<i32>,
    /// Area id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_id: Option<i32>,
    /// Parent task (sub-tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<i32>,
    /// Colour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Tags (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagDto>>,
    /// Free map kept with the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_datas: Option<serde_json::Map<String, serde_json::Value>>,
    /// Custom fields (post-2022).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<CustomFields>,
    /// Server-managed archived flag (use the archive route; never sent).
    #[serde(default, skip_serializing)]
    pub archived: Option<bool>,
    /// Server-managed creation date (never sent).
    #[serde(default, skip_serializing)]
    pub date_creation: Option<String>,
    /// Server-managed update date (never sent).
    #[serde(default, skip_serializing)]
    pub date_update: Option<String>,
}
