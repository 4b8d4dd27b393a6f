//! Coupa source (`type: coupa`): reads suppliers and contracts through the Coupa Core API (JSON) and
//! publishes Actor (vendorType B2B) and Contract change events (each contract linked to its supplier
//! Actor), on the core source engine ([`dastra_connect_core::source`]). See `README.md`.
//!
//! Roles: [`config`] (what users set, validated without I/O), [`client`] (the Core API: OAuth2
//! client credentials or the legacy `X-COUPA-API-KEY`, `offset`/`limit` pages of at most 50,
//! 429/Retry-After), [`mapping`] (default jq mappings), [`source`] (the
//! [`SourceSystem`](dastra_connect_core::source::SourceSystem) and the connector), `fake` (feature
//! `fake`: a local Coupa for tests and the quickstart).

pub mod client;
pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod mapping;
pub mod source;

pub use config::{CoupaAuth, CoupaConfig, CoupaResource, ResourceConfig};
pub use source::CoupaSource;
