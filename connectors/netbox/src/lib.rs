//! NetBox source (`type: netbox`): reads devices, virtual machines, sites and tenants through the
//! NetBox REST API and publishes Asset, Actor and Relationship change events on the core source
//! engine ([`dastra_connect_core::source`]). See `README.md` for the config and the field mapping.
//!
//! Roles: [`config`] (what users set, validated without I/O), [`client`] (the REST API: token auth,
//! `limit`/`offset` pages followed through `next` links, 429/Retry-After), [`mapping`] (default jq
//! mappings and their parameters), [`source`] (the [`SourceSystem`](dastra_connect_core::source::SourceSystem)
//! and the connector), `fake` (feature `fake`: a local NetBox for tests and the quickstart).

pub mod client;
pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod mapping;
pub mod source;

pub use config::{NetBoxConfig, NetBoxObject, ObjectConfig};
pub use source::NetBoxSource;
