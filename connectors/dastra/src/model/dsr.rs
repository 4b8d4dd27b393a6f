//! Data subject requests (`DataSubjectRequestDto`), their workflow/close bodies and attachments
//! (`DataSubjectAttachmentDto`, uploaded as multipart with one part named `File`). `refId` (≤355) is the
//! integrator's id, hidden from the requester: the external key.

use serde::{Deserialize, Serialize};

use super::common::{CustomFields, TagDto};
use super::enums::{
    ClosedReason, DataSubjectPurposeType, DataSubjectRequestSource, DataSubjectRequestState, PersonCategoryType,
};

/// `DataSubjectRequestDto` for POST / PUT / GET (POST answers the "light" form, same fields minus
/// nested objects). Required on write: `title`, `areaId`, `locale` (≤10), `purposes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataSubjectRequest {
    /// Dastra id (int32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// Title (required).
    #[serde(default)]
    pub title: String,
    /// Area id (required).
    #[serde(default)]
    pub area_id: i32,
    /// Locale, e.g. `en` (required, ≤10).
    #[serde(default)]
    pub locale: String,
    /// Rights exercised (required).
    #[serde(default)]
    pub purposes: Vec<DataSubjectPurposeType>,
    /// Integrator id (≤355): the external key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_id: Option<String>,
    /// Id of the logged-in end user (≤355).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DataSubjectRequestState>,
    /// How the request arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<DataSubjectRequestSource>,
    /// Category of the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_category: Option<PersonCategoryType>,
    /// Requester e-mail (≤255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Requester phone (≤60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Requester given name (≤180).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Requester family name (≤180).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Address (≤350).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Postcode (≤8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_code: Option<String>,
    /// City (≤255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Country (≤2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// Internal information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The requester's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Resolution message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_message: Option<String>,
    /// Why it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_reason: Option<ClosedReason>,
    /// Closing explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_reason_description: Option<String>,
    /// A complex request (longer legal deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complex: Option<bool>,
    /// Legal deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_time: Option<String>,
    /// Workflow step id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_flow_step_id: Option<i32>,
    /// Operator user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<i32>,
    /// Free JSON kept with the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_datas: Option<serde_json::Value>,
    /// Whether Dastra e-mails the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_notification: Option<bool>,
    /// Tags (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagDto>>,
    /// Custom fields (present in real 2023 payloads).
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
    /// Server-managed closing date (never sent).
    #[serde(default, skip_serializing)]
    pub date_closed: Option<String>,
}

/// Body of `POST DataSubjectRequests/{id}/close` — **undocumented** (2024 route, no schema). We send
/// the DSR's own closing fields, whose names exist on `DataSubjectRequestDto`; when Dastra ignores this
/// body the sink should PATCH these fields first (that path is documented).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataSubjectRequestClose {
    /// Why it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_reason: Option<ClosedReason>,
    /// Closing explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_reason_description: Option<String>,
    /// Message to the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_message: Option<String>,
}

/// `DataSubjectAttachmentDto` as returned by the upload and list routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataSubjectAttachment {
    /// File id (uuid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
    /// File name (≤355).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Owning request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_request_id: Option<i32>,
    /// Whether it was sent to the requester.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transmitted: Option<bool>,
    /// Creation date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_creation: Option<String>,
}

/// A file to upload to a DSR (`multipart/form-data`, part `File`).
#[derive(Clone)]
pub struct AttachmentUpload {
    /// File name sent in the part's `Content-Disposition`.
    pub file_name: String,
    /// MIME type of the part (e.g. `application/pdf`).
    pub content_type: String,
    /// The content.
    pub content: bytes::Bytes,
}

impl std::fmt::Debug for AttachmentUpload {
    // The content may be personal data: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentUpload")
            .field("file_name", &self.file_name)
            .field("content_type", &self.content_type)
            .field("len", &self.content.len())
            .finish()
    }
}
