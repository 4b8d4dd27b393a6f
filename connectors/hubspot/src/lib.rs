//! HubSpot source (`type: hubspot`): reads companies, tickets of a privacy pipeline and (optionally)
//! contacts through the HubSpot CRM v3 API and publishes Actor and DataSubjectRequest change events,
//! on the core source engine ([`dastra_connect_core::source`]). See `README.md` and
//! `docs/hubspot-api.md` for the API facts relied on.
//!
//! Roles: [`config`] (what users set, validated without I/O), [`client`] (the search endpoint with
//! its filters, single sort and `after` paging; the archived listing; batch reads of a ticket's
//! contact; the private-app token; 429 through the engine's HTTP client), [`mapping`] (default jq
//! mappings), [`source`] (the [`SourceSystem`](dastra_connect_core::source::SourceSystem): restarts a
//! search before HubSpot's 10 000-result cap, archived records as deletes; and the connector), `fake`
//! (feature `fake`: a local HubSpot for tests and the quickstart).

pub mod client;
pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod mapping;
pub mod source;

pub use config::{HubSpotConfig, HubSpotObject, ObjectConfig};
pub use source::HubSpotSource;
