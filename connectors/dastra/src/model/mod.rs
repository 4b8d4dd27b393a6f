//! Serde DTOs of the Dastra API the sink writes and reads. Field names are the camelCase names of the
//! `openapi-2022.json` component schemas, enums carry the spec's values, and every optional field is
//! skipped when unset so a write only sends what the sink set (`tests/openapi_bodies.rs` validates the
//! serialized bodies against the document). Server-managed fields are read but never written.

pub mod actor;
pub mod asset;
pub mod common;
pub mod contract;
pub mod dataset;
pub mod dsr;
pub mod enums;
pub mod field;
pub mod filter;
pub mod org;
pub mod processing;
pub mod relationship;
pub mod task;

pub use actor::Actor;
pub use asset::Asset;
pub use common::{
    ArchivePayload, BatchPatch, CustomFields, PagedList, PatchOperation, ProblemDetails, TagDto, UserLightDto,
    WorkflowUpdate, operations_from_patch, parse_datetime,
};
pub use contract::Contract;
pub use dataset::DataRetentionRule;
pub use dsr::{AttachmentUpload, DataSubjectAttachment, DataSubjectRequest, DataSubjectRequestClose};
pub use enums::*;
pub use field::DataField;
pub use filter::{Filter, FilterOperator, Separator, fit_external_key};
pub use org::{Area, CloudAttachment, CloudAttachmentList, Team, User, Workspace, WorkspaceList};
pub use processing::{DataProcessing, DataProcessingActor, DataProcessingCreate, PersonCategory, Purpose, Transfer};
pub use relationship::{
    BareList, DataProcessingLight, DataProcessingRelationship, GenericRelationship, GenericRelationshipCreate,
    GenericRelationshipObject,
};
pub use task::Task;
