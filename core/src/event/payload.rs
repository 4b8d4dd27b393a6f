//! The nine typed payloads (the `data` of a change event), one struct per Avro schema in
//! `schemas/*.avsc`, and the [`Payload`] enum over them.
//!
//! Conventions shared by all payloads (and their schemas):
//! - Field names are Dastra's DTO names (camelCase), enum values Dastra's symbols.
//! - `snapshot`: the event is part of a full sweep, not an incremental change.
//! - Deletes: **a `deleted: true` flag on the same record** (not an empty body). The event type then
//!   says `delete` too (`ChangeEvent::new` derives the op from the flag, `from_parts` rejects a
//!   mismatch). Content fields are all optional in the schemas so that a delete only needs the key
//!   (a sweep that notices a record is gone knows nothing else); which fields an *upsert* needs is
//!   checked by [`Payload::validate`], not by the schema. One record type per topic also keeps
//!   TopicNameStrategy subjects to one schema each.
//! - References to other entities are entity keys (`<system>:<entity>:<id>`), never Dastra ids;
//!   the sink resolves them. Areas are named by their Dastra `ref` (`areaRef`), tags by label.
//! - Instants are `timestamp-millis` (Rust `DateTime<Utc>`, truncated to milliseconds).
//! - Custom fields are a string map by Dastra variable name.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::enums::*;
use super::{EntityKey, EntityKind, EventError};

/// Custom field values by Dastra variable name.
pub type CustomFields = BTreeMap<String, String>;

/// An Asset (`schemas/asset.avsc`, Dastra `AssetDto`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Asset {
    /// Part of a full snapshot sweep.
    pub snapshot: bool,
    /// The entity is gone at the source.
    pub deleted: bool,
    /// Label (required for upserts).
    pub label: Option<String>,
    /// Asset type (required for upserts).
    #[serde(rename = "type")]
    pub asset_type: Option<AssetType>,
    /// Description.
    pub description: Option<String>,
    /// Logo URL.
    pub logo_url: Option<String>,
    /// Postal address.
    pub address: Option<String>,
    /// Postal code.
    pub zip_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country_code: Option<String>,
    /// Application lifecycle state.
    pub application_state: Option<ApplicationState>,
    /// Application type.
    pub application_type: Option<ApplicationType>,
    /// Dastra `hostingType`.
    pub hosting_type: Option<SourcingType>,
    /// Dastra `developmentType`.
    pub development_type: Option<SourcingType>,
    /// Dastra `maintenanceType`.
    pub maintenance_type: Option<SourcingType>,
    /// Dastra `supportType`.
    pub support_type: Option<SourcingType>,
    /// Documents to upload to Dastra's document storage and link to the asset.
    pub attachments: Vec<Attachment>,
    /// Tag labels.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: CustomFields,
}

/// An Actor (`schemas/actor.avsc`, Dastra `ActorDto`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Actor {
    /// Part of a full snapshot sweep.
    pub snapshot: bool,
    /// The entity is gone at the source.
    pub deleted: bool,
    /// Natural or legal person.
    pub actor_type: Option<ActorType>,
    /// B2B / B2C.
    pub vendor_type: Option<VendorType>,
    /// Company name (legal persons).
    pub company_name: Option<String>,
    /// Given name (natural persons).
    pub given_name: Option<String>,
    /// Family name (natural persons).
    pub family_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Phone number.
    pub phone_number: Option<String>,
    /// Contact person.
    pub contact_name: Option<String>,
    /// Contact person's position.
    pub contact_position: Option<String>,
    /// Company registration number.
    pub immatriculation_number: Option<String>,
    /// Website.
    pub website_url: Option<String>,
    /// Logo URL.
    pub logo_url: Option<String>,
    /// Postal address.
    pub address: Option<String>,
    /// Postal code.
    pub zip_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country_code: Option<String>,
    /// When the DPA was signed.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub dpa_signature_date: Option<DateTime<Utc>>,
    /// Tag labels.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: CustomFields,
}

/// A Contract (`schemas/contract.avsc`; Dastra publishes no schema, names follow its UI docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Contract {
    /// Part of a full snapshot sweep.
    pub snapshot: bool,
    /// The entity is gone at the source.
    pub deleted: bool,
    /// Contract name (required for upserts).
    pub label: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Dastra area/entity `ref`.
    pub area_ref: Option<String>,
    /// Entity key of the supplier Actor.
    pub supplier: Option<EntityKey>,
    /// Entity keys of the covered Assets.
    pub assets: Vec<EntityKey>,
    /// Start of the contract.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub start_date: Option<DateTime<Utc>>,
    /// End of the contract.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub end_date: Option<DateTime<Utc>>,
    /// Tag labels.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: CustomFields,
}

/// An actor in a role on a processing (Dastra `DataProcessingActorDto`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessingActor {
    /// Entity key of the Actor.
    pub actor: EntityKey,
    /// Recipient type.
    #[serde(default)]
    pub recipient_type: Option<RecipientType>,
    /// Job title.
    #[serde(default)]
    pub job_title: Option<JobTitle>,
    /// Label of the role.
    #[serde(default)]
    pub label: Option<String>,
    /// Description of the role.
    #[serde(default)]
    pub description: Option<String>,
}

/// A purpose of a processing (Dastra `PurposeDto`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Purpose {
    /// Label.
    pub label: String,
    /// Description.
    pub description: Option<String>,
    /// Legal basis.
    pub legal_basis: Option<LegalBasis>,
    /// Free-text justification of the legal basis.
    pub legal_basis_description: Option<String>,
}

/// A category of data subjects of a processing (Dastra `DataProcessingPersonCategoryDto`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonCategory {
    /// Category.
    #[serde(rename = "type")]
    pub category: PersonCategoryType,
    /// Label.
    #[serde(default)]
    pub label: Option<String>,
    /// Whether minors are concerned.
    #[serde(default)]
    pub minor_concerned: Option<bool>,
}

/// A DataProcessing (`schemas/processing.avsc`, Dastra `DataProcessingDto`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DataProcessing {
    /// Part of a full snapshot sweep.
    pub snapshot: bool,
    /// The entity is gone at the source.
    pub deleted: bool,
    /// Label (required for upserts, 1–120 chars).
    pub label: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Controller (`Default`) or processor (`Vendor`) record.
    pub processing_type: Option<ProcessingType>,
    /// Lifecycle state.
    pub processing_state: Option<ProcessingState>,
    /// Dastra area/entity `ref`.
    pub area_ref: Option<String>,
    /// Entity key of the parent processing.
    pub parent: Option<EntityKey>,
    /// Entity keys of the Assets used.
    pub assets: Vec<EntityKey>,
    /// Entity keys of the datasets used (Dastra `dataRetentionRules`).
    pub datasets: Vec<EntityKey>,
    /// Stakeholders (Dastra `stakeHolders`).
    #[serde(rename = "stakeHolders")]
    pub stake_holders: Vec<ProcessingActor>,
    /// Recipients.
    pub recipients: Vec<ProcessingActor>,
    /// Data controllers.
    pub data_controllers: Vec<ProcessingActor>,
    /// Purposes.
    pub purposes: Vec<Purpose>,
    /// Categories of data subjects.
    pub person_categories: Vec<PersonCategory>,
    /// Tag labels.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: CustomFields,
}

/// A DataField (`schemas/datafield.avsc`, Dastra `DataFieldDto`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DataField {
    /// Part of a full snapshot sweep.
    pub snapshot: bool,
    /// The entity is gone at the source.
    pub deleted: bool,
    /// Label (required for upserts).
    pub label: Option<String>,
    /// Business definition.
    pub definition: Option<String>,
    /// Technical definition (e.g. `db.schema.table.column`).
    pub technical_definition: Option<String>,
    /// Whether the field is mandatory.
    pub required: Option<bool>,
    /// Archiving policy text.
    pub archiving_policy: Option<String>,
    /// Whether it is a special category of data (GDPR art. 9).
    pub sensitive_data: Option<bool>,
    /// Legal justification for sensitive data.
    pub sensitive_data_field_legal_justification: Option<SensitiveDataFieldLegalJustification>,
    /// Description of that justification.
    pub sensitive_data_field_legal_justification_description: Option<String>,
    /// Category of personal data.
    pub personal_data_category: Option<PersonalDataCategory>,
    /// Data type.
    pub data_type: Option<GenericDataType>,
    /// Entity keys of the processings using the field.
    pub processings: Vec<EntityKey>,
    /// Custom fields.
    pub custom_fields: CustomFields,
}

/// A link between two entities (`schemas/relationship.avsc`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Relationship {
    /// Part of a full snapshot sweep.
    pub snapshot: bool,
    /// The link is gone at the source.
    pub deleted: bool,
    /// Entity key of the origin (required for upserts).
    pub origin: Option<EntityKey>,
    /// Entity key of the target (required for upserts).
    pub target: Option<EntityKey>,
    /// Label of the link.
    pub label: Option<String>,
    /// Description of the link.
    pub description: Option<String>,
    /// Whether the link reads target → origin.
    pub reverse: bool,
    /// Type of a processing-to-processing link.
    pub relation_ship_type: Option<RelationShipType>,
}

/// A file to attach to a DSR or a Task. Its content comes from exactly one source: `url` (the sink
/// downloads it), `contentBase64` (inline, up to the sink's `max_inline_bytes`) or `object` (an
/// object in the bus-side store: the JetStream Object Store on NATS).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Attachment {
    /// File name shown in Dastra.
    pub file_name: String,
    /// Where the sink fetches the content (empty when the content is inline or in the object store).
    pub url: String,
    /// MIME type.
    pub content_type: Option<String>,
    /// Hex SHA-256 of the content.
    pub sha256: Option<String>,
    /// The content itself, standard Base64.
    pub content_base64: Option<String>,
    /// An object in the bus-side object store holding the content.
    pub object: Option<ObjectRef>,
}

/// An object in the bus-side object store (NATS: a JetStream Object Store bucket).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectRef {
    /// Bucket name.
    pub bucket: String,
    /// Object name in the bucket.
    pub name: String,
}

/// A Data Subject Request (`schemas/dsr.avsc`, Dastra `DataSubjectRequestDto`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DataSubjectRequest {
    /// Part of a full snapshot sweep.
    pub snapshot: bool,
    /// The request is gone at the source.
    pub deleted: bool,
    /// Title (required for upserts).
    pub title: Option<String>,
    /// Locale, e.g. `en` (required for upserts).
    pub locale: Option<String>,
    /// Dastra area/entity `ref`.
    pub area_ref: Option<String>,
    /// Purposes (non-empty for upserts).
    pub purposes: Vec<DataSubjectPurposeType>,
    /// State.
    pub state: Option<DataSubjectRequestState>,
    /// Category of the requester.
    pub person_category: Option<PersonCategoryType>,
    /// Channel the request came through.
    pub channel: Option<DataSubjectRequestSource>,
    /// Why it was closed.
    pub closed_reason: Option<ClosedReason>,
    /// Details on the closing.
    pub closed_reason_description: Option<String>,
    /// Marked complex.
    pub complex: Option<bool>,
    /// Requester e-mail.
    pub email: Option<String>,
    /// Requester phone.
    pub phone_number: Option<String>,
    /// Requester given name.
    pub given_name: Option<String>,
    /// Requester family name.
    pub family_name: Option<String>,
    /// Requester address.
    pub address: Option<String>,
    /// Requester postal code.
    pub zip_code: Option<String>,
    /// Requester city.
    pub city: Option<String>,
    /// Requester country (ISO 3166-1 alpha-2).
    pub country_code: Option<String>,
    /// Internal information.
    pub description: Option<String>,
    /// The requester's message.
    pub message: Option<String>,
    /// Resolution message.
    pub resolution_message: Option<String>,
    /// The requester's id in the source system.
    pub user_id: Option<String>,
    /// Dastra `demandId`.
    pub demand_id: Option<String>,
    /// When the request was made.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub date_demand: Option<DateTime<Utc>>,
    /// The legal deadline (Dastra `expiryTime`): when absent Dastra sets one month after creation.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub expiry_time: Option<DateTime<Utc>>,
    /// Files to attach.
    pub attachments: Vec<Attachment>,
    /// Tag labels.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: CustomFields,
}

/// A Task (`schemas/task.avsc`, Dastra `TaskCreateUpdateDto`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Task {
    /// Part of a full snapshot sweep.
    pub snapshot: bool,
    /// The task is gone at the source.
    pub deleted: bool,
    /// Label (required for upserts).
    pub label: Option<String>,
    /// Description (HTML).
    pub description_html: Option<String>,
    /// State.
    pub state: Option<TaskState>,
    /// Priority.
    pub priority: Option<Priority>,
    /// Entity key of the linked object (processing, dsr, actor or asset).
    pub object: Option<EntityKey>,
    /// Entity key of the parent task.
    pub parent: Option<EntityKey>,
    /// Dastra area/entity `ref`.
    pub area_ref: Option<String>,
    /// E-mail of the Dastra user to assign.
    pub assigned_to: Option<String>,
    /// `ref` of the Dastra team to assign (its first member is the assignee); `assignedTo` wins
    /// when both are given.
    pub assigned_team: Option<String>,
    /// Deadline.
    #[serde(with = "chrono::serde::ts_milliseconds_option")]
    pub deadline: Option<DateTime<Utc>>,
    /// Documents to upload to Dastra's document storage and link to the task.
    pub attachments: Vec<Attachment>,
    /// Tag labels.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: CustomFields,
}

/// A dataset (`schemas/dataset.avsc`, Dastra `DataRetentionRuleDto`): a named group of DataFields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Dataset {
    /// Part of a full snapshot sweep.
    pub snapshot: bool,
    /// The entity is gone at the source.
    pub deleted: bool,
    /// Label (required for upserts, max 400).
    pub label: Option<String>,
    /// Description (max 3000).
    pub description: Option<String>,
    /// Where the data is collected: from the data subject (`Direct`) or not.
    pub data_set_source: Option<DataSetSource>,
    /// Description of the source.
    pub source_description: Option<String>,
    /// Entity keys of the DataFields in the dataset.
    pub data_fields: Vec<EntityKey>,
    /// Tag labels.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: CustomFields,
}

/// The data of a change event: one of the nine typed payloads.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// An Asset.
    Asset(Asset),
    /// An Actor.
    Actor(Actor),
    /// A Contract.
    Contract(Contract),
    /// A DataProcessing.
    DataProcessing(DataProcessing),
    /// A DataField.
    DataField(DataField),
    /// A Relationship.
    Relationship(Relationship),
    /// A DataSubjectRequest.
    DataSubjectRequest(DataSubjectRequest),
    /// A Task.
    Task(Task),
    /// A dataset.
    Dataset(Dataset),
}

/// Runs `$body` with `$p` bound to the inner payload, whatever its type.
macro_rules! with_inner {
    ($payload:expr, $p:ident => $body:expr) => {
        match $payload {
            Payload::Asset($p) => $body,
            Payload::Actor($p) => $body,
            Payload::Contract($p) => $body,
            Payload::DataProcessing($p) => $body,
            Payload::DataField($p) => $body,
            Payload::Relationship($p) => $body,
            Payload::DataSubjectRequest($p) => $body,
            Payload::Task($p) => $body,
            Payload::Dataset($p) => $body,
        }
    };
}
pub(crate) use with_inner;

impl Payload {
    /// The entity kind of this payload.
    pub fn kind(&self) -> EntityKind {
        match self {
            Payload::Asset(_) => EntityKind::Asset,
            Payload::Actor(_) => EntityKind::Actor,
            Payload::Contract(_) => EntityKind::Contract,
            Payload::DataProcessing(_) => EntityKind::DataProcessing,
            Payload::DataField(_) => EntityKind::DataField,
            Payload::Relationship(_) => EntityKind::Relationship,
            Payload::DataSubjectRequest(_) => EntityKind::DataSubjectRequest,
            Payload::Task(_) => EntityKind::Task,
            Payload::Dataset(_) => EntityKind::Dataset,
        }
    }

    /// A delete payload of the given kind: `deleted: true`, every content field empty.
    pub fn tombstone(kind: EntityKind, snapshot: bool) -> Payload {
        let mut p = match kind {
            EntityKind::Asset => Payload::Asset(Asset::default()),
            EntityKind::Actor => Payload::Actor(Actor::default()),
            EntityKind::Contract => Payload::Contract(Contract::default()),
            EntityKind::DataProcessing => Payload::DataProcessing(DataProcessing::default()),
            EntityKind::DataField => Payload::DataField(DataField::default()),
            EntityKind::Relationship => Payload::Relationship(Relationship::default()),
            EntityKind::DataSubjectRequest => Payload::DataSubjectRequest(DataSubjectRequest::default()),
            EntityKind::Task => Payload::Task(Task::default()),
            EntityKind::Dataset => Payload::Dataset(Dataset::default()),
        };
        with_inner!(&mut p, x => { x.deleted = true; x.snapshot = snapshot; });
        p
    }

    /// Whether the payload is part of a snapshot sweep.
    pub fn is_snapshot(&self) -> bool {
        with_inner!(self, p => p.snapshot)
    }

    /// Whether the payload reports a delete.
    pub fn is_deleted(&self) -> bool {
        with_inner!(self, p => p.deleted)
    }

    /// Sets the snapshot flag.
    pub fn set_snapshot(&mut self, snapshot: bool) {
        with_inner!(self, p => p.snapshot = snapshot)
    }

    /// The payload as a JSON value (the JSON codec's representation: Dastra field names, enum
    /// symbols as strings, instants as epoch milliseconds, every field present).
    pub fn to_json_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        with_inner!(self, p => serde_json::to_value(p))
    }

    /// Reads a payload of the given kind from a JSON value (missing fields take their defaults,
    /// unknown fields are ignored so that newer producers stay readable).
    pub fn from_json_value(kind: EntityKind, value: serde_json::Value) -> Result<Payload, serde_json::Error> {
        Ok(match kind {
            EntityKind::Asset => Payload::Asset(serde_json::from_value(value)?),
            EntityKind::Actor => Payload::Actor(serde_json::from_value(value)?),
            EntityKind::Contract => Payload::Contract(serde_json::from_value(value)?),
            EntityKind::DataProcessing => Payload::DataProcessing(serde_json::from_value(value)?),
            EntityKind::DataField => Payload::DataField(serde_json::from_value(value)?),
            EntityKind::Relationship => Payload::Relationship(serde_json::from_value(value)?),
            EntityKind::DataSubjectRequest => Payload::DataSubjectRequest(serde_json::from_value(value)?),
            EntityKind::Task => Payload::Task(serde_json::from_value(value)?),
            EntityKind::Dataset => Payload::Dataset(serde_json::from_value(value)?),
        })
    }

    /// A stable canonical JSON text of the payload's *content*, for the sink's content hash:
    /// object keys sorted, no whitespace, every field present (absent = `null`, empty list,
    /// empty map), and the `snapshot` flag left out (a sweep re-publishing unchanged content must
    /// hash the same as the original change). Two payloads with equal content give equal text.
    pub fn to_canonical_json(&self) -> String {
        let mut value = match self.to_json_value() {
            Ok(v) => v,
            // Serialising these plain structs to a Value cannot fail (string keys, no floats);
            // fall back to the Debug form rather than panic should that ever change.
            Err(_) => return format!("{self:?}"),
        };
        if let serde_json::Value::Object(map) = &mut value {
            map.remove("snapshot");
        }
        crate::canonical::canonical_json(&value)
    }

    /// Writes the payload's JSON (the JSON codec's representation) to `w` without building a
    /// [`serde_json::Value`]: field order is the struct's, so the text is deterministic for one build
    /// (not canonical across versions: use [`Payload::to_canonical_json`] for that).
    pub fn write_json<W: std::io::Write>(&self, w: W) -> Result<(), serde_json::Error> {
        with_inner!(self, p => serde_json::to_writer(w, p))
    }

    /// Hex SHA-256 of [`Payload::to_canonical_json`].
    pub fn content_hash(&self) -> String {
        hex::encode(Sha256::digest(self.to_canonical_json().as_bytes()))
    }

    /// Every entity key this payload references (for the sink's pending-reference handling).
    pub fn references(&self) -> Vec<&EntityKey> {
        let mut out: Vec<&EntityKey> = Vec::new();
        match self {
            Payload::Asset(_) | Payload::Actor(_) | Payload::DataSubjectRequest(_) => {}
            Payload::Contract(c) => {
                out.extend(c.supplier.iter());
                out.extend(c.assets.iter());
            }
            Payload::DataProcessing(p) => {
                out.extend(p.parent.iter());
                out.extend(p.assets.iter());
                out.extend(p.datasets.iter());
                for a in p.stake_holders.iter().chain(&p.recipients).chain(&p.data_controllers) {
                    out.push(&a.actor);
                }
            }
            Payload::DataField(f) => out.extend(f.processings.iter()),
            Payload::Dataset(d) => out.extend(d.data_fields.iter()),
            Payload::Relationship(r) => {
                out.extend(r.origin.iter());
                out.extend(r.target.iter());
            }
            Payload::Task(t) => {
                out.extend(t.object.iter());
                out.extend(t.parent.iter());
            }
        }
        out
    }

    /// Checks what the schema cannot: the fields an upsert needs, the kinds of referenced keys,
    /// country codes. Delete payloads only need their flag.
    pub fn validate(&self) -> Result<(), EventError> {
        if self.is_deleted() {
            return Ok(());
        }
        match self {
            Payload::Asset(a) => {
                required("label", &a.label)?;
                if a.asset_type.is_none() {
                    return Err(invalid("type", "required for upserts"));
                }
                attachments(&a.attachments)?;
                country("countryCode", &a.country_code)
            }
            Payload::Actor(a) => {
                if [&a.company_name, &a.given_name, &a.family_name]
                    .iter()
                    .all(|v| v.as_deref().is_none_or(|s| s.trim().is_empty()))
                {
                    return Err(invalid("companyName", "an actor needs a companyName, givenName or familyName"));
                }
                country("countryCode", &a.country_code)
            }
            Payload::Contract(c) => {
                required("label", &c.label)?;
                kind_of("supplier", c.supplier.iter(), &[EntityKind::Actor])?;
                kind_of("assets", c.assets.iter(), &[EntityKind::Asset])
            }
            Payload::DataProcessing(p) => {
                required("label", &p.label)?;
                if p.label.as_deref().is_some_and(|l| l.chars().count() > 120) {
                    return Err(invalid("label", "longer than Dastra's 120 characters"));
                }
                kind_of("parent", p.parent.iter(), &[EntityKind::DataProcessing])?;
                kind_of("assets", p.assets.iter(), &[EntityKind::Asset])?;
                kind_of("datasets", p.datasets.iter(), &[EntityKind::Dataset])?;
                let actors = p.stake_holders.iter().chain(&p.recipients).chain(&p.data_controllers);
                kind_of("stakeHolders/recipients/dataControllers", actors.map(|a| &a.actor), &[EntityKind::Actor])
            }
            Payload::DataField(f) => {
                required("label", &f.label)?;
                kind_of("processings", f.processings.iter(), &[EntityKind::DataProcessing])
            }
            Payload::Dataset(d) => {
                required("label", &d.label)?;
                if d.label.as_deref().is_some_and(|l| l.chars().count() > 400) {
                    return Err(invalid("label", "longer than Dastra's 400 characters"));
                }
                kind_of("dataFields", d.data_fields.iter(), &[EntityKind::DataField])
            }
            Payload::Relationship(r) => {
                let (Some(origin), Some(target)) = (&r.origin, &r.target) else {
                    return Err(invalid("origin", "origin and target are required for upserts"));
                };
                let both_processings =
                    origin.kind() == EntityKind::DataProcessing && target.kind() == EntityKind::DataProcessing;
                let both_generic = origin.kind().relationship_object_type().is_some()
                    && target.kind().relationship_object_type().is_some();
                if !(both_processings || both_generic) {
                    return Err(invalid(
                        "origin",
                        "Dastra links processing to processing, or actors and assets to each other",
                    ));
                }
                if r.relation_ship_type.is_some() && !both_processings {
                    return Err(invalid("relationShipType", "only for processing-to-processing links"));
                }
                Ok(())
            }
            Payload::DataSubjectRequest(d) => {
                required("title", &d.title)?;
                required("locale", &d.locale)?;
                if d.locale.as_deref().is_some_and(|l| l.len() > 10) {
                    return Err(invalid("locale", "longer than 10 characters"));
                }
                if d.purposes.is_empty() {
                    return Err(invalid("purposes", "at least one purpose is required"));
                }
                attachments(&d.attachments)?;
                country("countryCode", &d.country_code)
            }
            Payload::Task(t) => {
                required("label", &t.label)?;
                if let Some(o) = &t.object
                    && o.kind().task_object_type().is_none()
                {
                    return Err(invalid("object", "a task links to a processing, dsr, actor or asset"));
                }
                attachments(&t.attachments)?;
                kind_of("parent", t.parent.iter(), &[EntityKind::Task])
            }
        }
    }
}

fn invalid(field: &'static str, reason: &'static str) -> EventError {
    EventError::InvalidPayload { field, reason }
}

/// Each attachment names a file and exactly one content source (`url`, `contentBase64`, `object`).
fn attachments(list: &[Attachment]) -> Result<(), EventError> {
    for a in list {
        if a.file_name.trim().is_empty() {
            return Err(invalid("attachments.fileName", "every attachment needs a file name"));
        }
        let sources =
            usize::from(!a.url.is_empty()) + usize::from(a.content_base64.is_some()) + usize::from(a.object.is_some());
        if sources != 1 {
            return Err(invalid("attachments", "an attachment needs exactly one of url, contentBase64 or object"));
        }
        if a.object.as_ref().is_some_and(|o| o.bucket.is_empty() || o.name.is_empty()) {
            return Err(invalid("attachments.object", "an object reference needs a bucket and a name"));
        }
    }
    Ok(())
}

fn required(field: &'static str, v: &Option<String>) -> Result<(), EventError> {
    match v.as_deref() {
        Some(s) if !s.trim().is_empty() => Ok(()),
        _ => Err(invalid(field, "required for upserts")),
    }
}

fn country(field: &'static str, v: &Option<String>) -> Result<(), EventError> {
    match v.as_deref() {
        Some(c) if !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic())) => {
            Err(invalid(field, "expected an ISO 3166-1 alpha-2 code"))
        }
        _ => Ok(()),
    }
}

fn kind_of<'a>(
    field: &'static str,
    keys: impl IntoIterator<Item = &'a EntityKey>,
    allowed: &[EntityKind],
) -> Result<(), EventError> {
    for k in keys {
        if !allowed.contains(&k.kind()) {
            return Err(invalid(field, "references an entity of the wrong kind"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_snapshot_and_sorts_keys() {
        let mut a = Asset { label: Some("CRM".into()), asset_type: Some(AssetType::Software), ..Default::default() };
        a.custom_fields.insert("z".into(), "1".into());
        a.custom_fields.insert("a".into(), "2".into());
        let p1 = Payload::Asset(a.clone());
        a.snapshot = true;
        let p2 = Payload::Asset(a.clone());
        assert_eq!(p1.to_canonical_json(), p2.to_canonical_json());
        assert_eq!(p1.content_hash(), p2.content_hash());
        let text = p1.to_canonical_json();
        assert!(text.starts_with("{\"address\":null,\"applicationState\":null"), "{text}");
        assert!(text.contains("\"customFields\":{\"a\":\"2\",\"z\":\"1\"}"));
        a.label = Some("CRM 2".into());
        assert_ne!(Payload::Asset(a).content_hash(), p1.content_hash());
    }

    #[test]
    fn an_attachment_names_exactly_one_content_source() {
        let task =
            |a: Attachment| Payload::Task(Task { label: Some("t".into()), attachments: vec![a], ..Default::default() });
        let named = || Attachment { file_name: "a.pdf".into(), ..Default::default() };
        let by_url = Attachment { url: "https://files.example.com/a.pdf".into(), ..named() };
        let inline = Attachment { content_base64: Some("JVBERg==".into()), ..named() };
        let object = Attachment { object: Some(ObjectRef { bucket: "b".into(), name: "n".into() }), ..named() };
        for ok in [&by_url, &inline, &object] {
            assert!(task(ok.clone()).validate().is_ok(), "{ok:?}");
        }
        let none = named();
        let two = Attachment { content_base64: Some("JVBERg==".into()), ..by_url.clone() };
        let nameless = Attachment { file_name: " ".into(), ..inline.clone() };
        let half_object = Attachment { object: Some(ObjectRef { bucket: "b".into(), name: String::new() }), ..named() };
        for bad in [none, two, nameless, half_object] {
            assert!(task(bad.clone()).validate().is_err(), "{bad:?}");
        }
        let dsr = Payload::DataSubjectRequest(DataSubjectRequest {
            title: Some("t".into()),
            locale: Some("en".into()),
            purposes: vec![DataSubjectPurposeType::Access],
            attachments: vec![named()],
            ..Default::default()
        });
        assert!(dsr.validate().is_err(), "DSR attachments are checked too");
    }

    #[test]
    fn validation_of_upserts_and_deletes() {
        assert!(Payload::tombstone(EntityKind::Asset, true).validate().is_ok());
        let err = Payload::Asset(Asset::default()).validate().unwrap_err();
        assert_eq!(crate::Classify::code(&err), "invalid_payload");
        let rel = Relationship {
            origin: Some(EntityKey::parse("sn:asset:1").unwrap()),
            target: Some(EntityKey::parse("sn:task:1").unwrap()),
            ..Default::default()
        };
        assert!(Payload::Relationship(rel).validate().is_err());
        let rel = Relationship {
            origin: Some(EntityKey::parse("sn:asset:1").unwrap()),
            target: Some(EntityKey::parse("coupa:actor:7").unwrap()),
            ..Default::default()
        };
        assert!(Payload::Relationship(rel).validate().is_ok());
        let c = Contract {
            label: Some("MSA".into()),
            supplier: Some(EntityKey::parse("coupa:asset:7").unwrap()),
            ..Default::default()
        };
        assert!(Payload::Contract(c).validate().is_err());
    }
}
