//! Salesforce source (`type: salesforce`): reads Accounts, privacy Cases and (optionally) Contacts
//! through the REST API (SOQL) and publishes Actor and DataSubjectRequest change events, on the
//! core source engine ([`dastra_connect_core::source`]). See `README.md`.
//!
//! Roles: [`config`] (what users set, validated without I/O), [`soql`] (the queries, pure),
//! [`client`] (`query`/`queryAll` with `nextRecordsUrl` paging, OAuth 2.0 client credentials,
//! `Sforce-Limit-Info` and `REQUEST_LIMIT_EXCEEDED` through the engine's API budget), [`mapping`]
//! (default jq mappings and selected fields), [`source`] (the
//! [`SourceSystem`](dastra_connect_core::source::SourceSystem) and the connector), `fake` (feature
//! `fake`: a local Salesforce for tests and the quickstart).

pub mod client;
pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod mapping;
pub mod soql;
pub mod source;

pub use config::{ObjectConfig, PrivacyCases, SalesforceAuth, SalesforceConfig, SalesforceObject};
pub use source::SalesforceSource;
