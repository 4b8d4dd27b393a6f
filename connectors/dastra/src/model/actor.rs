//! Actor (`ActorDto`): vendors, partners, controllers, people. Actors have no external-id field in any
//! spec version: the sink keys them with a configured custom field or a natural key
//! (`companyName` + `countryCode`, `immatriculationNumber`, `email`), docs/dastra-api.md §6.3.

use serde::{Deserialize, Serialize};

use super::common::{CustomFields, TagDto};
use super::enums::{AccessLevel, ActorType, VendorType};

/// `ActorDto`, used for POST, PUT and GET. Nothing is required by the spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// Dastra id (int32); absent on create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// Natural (`Physical`) or legal (`Morale`) person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_type: Option<ActorType>,
    /// B2B / B2C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_type: Option<VendorType>,
    /// Access level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level: Option<AccessLevel>,
    /// Company name (legal persons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// Given name (natural persons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Family name (natural persons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// ISO 3166-1 alpha-2 (≤2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// Contact e-mail (≤255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone (≤20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Contact person (≤250).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_name: Option<String>,
    /// Contact position (≤150).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_position: Option<String>,
    /// Company registration number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immatriculation_number: Option<String>,
    /// Website.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_url: Option<String>,
    /// Postal address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Postcode (≤10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip_code: Option<String>,
    /// City (≤300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Logo URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// Date the DPA was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpa_signature_date: Option<String>,
    /// Tags (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagDto>>,
    /// Custom fields (post-2022).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_fields: Option<CustomFields>,
    /// Server-computed display name (read-only, never sent).
    #[serde(default, skip_serializing)]
    pub display_name: Option<String>,
    /// Server-managed creation date (never sent).
    #[serde(default, skip_serializing)]
    pub date_creation: Option<String>,
    /// Server-managed update date (never sent).
    #[serde(default, skip_serializing)]
    pub date_update: Option<String>,
}
