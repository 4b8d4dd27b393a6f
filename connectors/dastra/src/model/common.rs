//! Types shared by many Dastra resources: the paged list envelope, tags, light user objects,
//! JSON Patch operations, batch bodies, workflow moves and RFC 7807 problem errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::enums::TagType;

/// `*PagedList`: one page of a list endpoint. `page` is 1-based; `total` counts every match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "T: Deserialize<'de>"))]
pub struct PagedList<T> {
    /// The records of this page (`null` in the spec's nullable form reads as empty).
    #[serde(default = "Vec::new", deserialize_with = "null_as_empty")]
    pub items: Vec<T>,
    /// Total number of matching records.
    #[serde(default)]
    pub total: i64,
    /// Page size used.
    #[serde(default)]
    pub size: i32,
    /// Page number (1-based).
    #[serde(default)]
    pub page: i32,
}

impl<T> PagedList<T> {
    /// True when a further page exists (`page * size < total`); Dastra's default order is undocumented,
    /// so callers that page must always pass `sortBy` + `asc`.
    pub fn has_more(&self) -> bool {
        let seen = i64::from(self.page.max(1)) * i64::from(self.size.max(0));
        self.size > 0 && !self.items.is_empty() && seen < self.total
    }
}

pub(crate) fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `TagDto`: tags are created first and then referenced by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TagDto {
    /// Tag id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// Label (required, ≤360).
    #[serde(default)]
    pub label: String,
    /// Which kind of object the tag applies to (required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<TagType>,
    /// Colour (≤10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// `UserLightDto` as read back (creator, owner…); never written by the sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserLightDto {
    /// User id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// E-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// One JSON Patch operation (`Operation` schema: `op`, `path`, `value`, `from`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOperation {
    /// `add`, `remove`, `replace`, `move`, `copy` or `test`.
    pub op: String,
    /// JSON Pointer into the DTO (camelCase names, e.g. `/description`).
    pub path: String,
    /// The value for `add` / `replace` / `test`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Source pointer for `move` / `copy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl PatchOperation {
    /// `{"op":"replace","path":…,"value":…}`.
    pub fn replace(path: impl Into<String>, value: serde_json::Value) -> Self {
        Self { op: "replace".into(), path: path.into(), value: Some(value), from: None }
    }
    /// Sets an object member whether or not it is present: `add`, which RFC 6902 defines as replacing an
    /// existing member and creating a missing one. `replace` fails on a member absent from the JSON
    /// document (RFC 6902), while ASP.NET accepts it on any DTO property; `add` is right under both.
    pub fn set(path: impl Into<String>, value: serde_json::Value) -> Self {
        Self::add(path, value)
    }
    /// `{"op":"add","path":…,"value":…}`.
    pub fn add(path: impl Into<String>, value: serde_json::Value) -> Self {
        Self { op: "add".into(), path: path.into(), value: Some(value), from: None }
    }
    /// `{"op":"remove","path":…}`.
    pub fn remove(path: impl Into<String>) -> Self {
        Self { op: "remove".into(), path: path.into(), value: None, from: None }
    }
    /// True when applying the operation twice gives the same result as once. `add` at the end of
    /// an array (`…/-`), `move` and `copy` are not, so a request carrying them must not be retried
    /// after an ambiguous failure.
    pub fn is_idempotent(&self) -> bool {
        // `add`/`remove` at an array position shift the other elements: applied twice, they insert or
        // remove a second element.
        let last = self.path.rsplit('/').next().unwrap_or("");
        let array_position = last == "-" || (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()));
        match self.op.as_str() {
            "add" | "remove" => !array_position,
            "move" | "copy" => false,
            _ => true,
        }
    }
}

/// Converts a `json_patch::Patch` (e.g. from `json_patch::diff`) into wire operations.
pub fn operations_from_patch(patch: &json_patch::Patch) -> Result<Vec<PatchOperation>, serde_json::Error> {
    serde_json::from_value(serde_json::to_value(patch)?)
}

/// `BatchPatchDto<Id>`: `PATCH <collection>` applies one JSON Patch to many ids. Swashbuckle renders
/// `patch` as `{operations:[…]}`, but ASP.NET's `JsonPatchDocument` reads and writes a plain array, which
/// is what we send (docs/dastra-api.md §2.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchPatch<Id> {
    /// The ids to patch.
    pub ids: Vec<Id>,
    /// The operations, applied to each id.
    pub patch: Vec<PatchOperation>,
}

/// `Int32WorkflowUpdateDto` / `GuidWorkflowUpdateDto`: move an object to a workflow step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowUpdate<Id> {
    /// Object id.
    pub id: Id,
    /// Target workflow step id.
    pub step_id: i32,
}

/// `ArchivePayload` of `POST Tasks/{id}/archive`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivePayload {
    /// True to archive, false to restore.
    pub archived: bool,
}

/// RFC 7807 problem body as ASP.NET Core writes it (validation errors carry `errors`). Dastra does not
/// document its error bodies (docs/dastra-api.md §7 #1), so every field is optional and the client branches on
/// status codes only; this is parsed to give operators the invalid field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDetails {
    /// Problem type URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// Short summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Longer explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Field name → messages, for validation failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
    /// Server trace id (quote it to Dastra support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Parses a Dastra date: ISO-8601 with an offset (`…Z`, Swagger examples) or without one and up to 7
/// fractional digits (`2023-09-18T10:31:30.6882299`, real payloads), the latter read as UTC.
pub fn parse_datetime(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// A custom-field map (`customFields: {"<variable>": value}`); not in the 2022 document, documented on
/// Dastra's custom-field page: unknown keys are dropped, invalid values give 400.
pub type CustomFields = serde_json::Map<String, serde_json::Value>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paged_list_reads_null_items_and_knows_when_more_pages_exist() {
        let p: PagedList<i32> = serde_json::from_str(r#"{"items":null,"total":0,"size":20,"page":1}"#)
            .unwrap_or(PagedList { items: vec![9], total: 9, size: 9, page: 9 });
        assert!(p.items.is_empty());
        assert!(!p.has_more());
        let p = PagedList { items: vec![1, 2], total: 5, size: 2, page: 2 };
        assert!(p.has_more());
        let p = PagedList { items: vec![5], total: 5, size: 2, page: 3 };
        assert!(!p.has_more());
    }

    #[test]
    fn dates_with_and_without_offset_parse() {
        assert!(parse_datetime("2023-09-18T10:31:30.6882299").is_some());
        assert!(parse_datetime("2023-09-18T10:31:30Z").is_some());
        assert!(parse_datetime("2023-09-18T10:31:30.1+02:00").is_some());
        assert!(parse_datetime("yesterday").is_none());
    }

    #[test]
    fn append_and_move_operations_are_not_idempotent() {
        assert!(PatchOperation::replace("/label", serde_json::json!("x")).is_idempotent());
        assert!(PatchOperation::add("/description", serde_json::json!("x")).is_idempotent());
        assert!(!PatchOperation::add("/tags/-", serde_json::json!({"id": 1})).is_idempotent());
        assert!(!PatchOperation::remove("/tags/0").is_idempotent());
        assert!(PatchOperation::remove("/description").is_idempotent());
        assert!(PatchOperation::replace("/tags/0", serde_json::json!({"id": 1})).is_idempotent());
    }
}
