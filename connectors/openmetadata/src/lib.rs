//! OpenMetadata source (`type: openmetadata`): reads tables (with their columns' classification
//! tags), database services and pipelines (with their lineage) through the OpenMetadata REST API
//! and publishes DataField, dataset, Asset and DataProcessing change events on the core source
//! engine ([`dastra_connect_core::source`]). See `README.md` for the config and the mapping, and
//! `docs/openmetadata-api.md` for the API facts it relies on.
//!
//! Roles: [`config`] (what users set, validated without I/O), [`client`] (the REST API: bot JWT,
//! `limit`/`after` cursor paging, the change events feed, lineage), [`mapping`] (default jq
//! programs and their parameters, the tag → category mapping), [`source`] (the
//! [`SourceSystem`](dastra_connect_core::source::SourceSystem) and the connector), `fake` (feature
//! `fake`: a local OpenMetadata for tests and the quickstart).

pub mod client;
pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod mapping;
pub mod source;

pub use config::{EntityConfig, OmEntity, OpenMetadataConfig};
pub use source::OpenMetadataSource;
