//! Links between objects: `GenericRelationShip*` (asset/actor/measure/breach/dataset/risk ↔ anything of
//! those kinds, string ids because targets are int- or uuid-keyed) and `DataProcessingRelationShipDto`
//! (processing ↔ processing).

use serde::{Deserialize, Serialize};

use super::common::null_as_empty;
use super::enums::{ProcessingType, RelationShipObjectType, RelationShipType};

/// `GenericRelationShipCreationDto` (POST body; the response has no body). Required: `originId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GenericRelationshipCreate {
    /// Kind of the origin object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_type: Option<RelationShipObjectType>,
    /// Origin id as a string (≤120; required).
    pub origin_id: String,
    /// Kind of the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<RelationShipObjectType>,
    /// Target ids as strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ids: Option<Vec<String>>,
    /// Direction flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<bool>,
    /// Relationship label (≤255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Summary (≤3500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `GenericRelationshipObject`: the target as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GenericRelationshipObject {
    /// Target id (string).
    #[serde(default)]
    pub id: String,
    /// Target kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<RelationShipObjectType>,
    /// Target label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// `GenericRelationShipLinkedObjectDto`: GET items and PUT body. Required: `originId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GenericRelationship {
    /// Relationship id (uuid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
    /// Origin kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_type: Option<RelationShipObjectType>,
    /// Origin id (string, ≤120).
    #[serde(default)]
    pub origin_id: String,
    /// The target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<GenericRelationshipObject>,
    /// Direction flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<bool>,
    /// Label (≤255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Summary (≤3500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `DataProcessingLightDto` (the related processing inside a processing relationship).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataProcessingLight {
    /// Processing id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// External reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
}

/// `DataProcessingRelationShipDto` (POST body and response, GET items).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataProcessingRelationship {
    /// Relationship id (uuid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<uuid::Uuid>,
    /// The related processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element: Option<DataProcessingLight>,
    /// Kind of link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation_ship_type: Option<RelationShipType>,
    /// Area id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_id: Option<i32>,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Record type of the related processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_type: Option<ProcessingType>,
}

/// A bare JSON array response, read leniently (`null` → empty).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent, bound(deserialize = "T: Deserialize<'de>"))]
pub struct BareList<T>(#[serde(deserialize_with = "null_as_empty")] pub Vec<T>);
