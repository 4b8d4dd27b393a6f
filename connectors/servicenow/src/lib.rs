//! ServiceNow source (`type: servicenow`): reads CMDB configuration items (`cmdb_ci*`) and companies
//! (`core_company`) through the Table API and publishes Asset, Actor and Relationship change events,
//! on the core source engine ([`dastra_connect_core::source`]). See `README.md` for the config and
//! the field mapping.
//!
//! Roles: [`config`] (what users set, validated without I/O), [`query`] (encoded queries: building
//! the cursor queries, checking user filters), [`client`] (the Table API), [`mapping`] (default jq
//! mappings and their parameters), [`source`] (the [`SourceSystem`](dastra_connect_core::source::SourceSystem)
//! and the connector), `fake` (feature `fake`: a local ServiceNow for tests and the quickstart).

pub mod client;
pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod mapping;
pub mod query;
pub mod source;

pub use config::{ServiceNowConfig, TableConfig};
pub use source::ServiceNowSource;
