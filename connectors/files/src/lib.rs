//! Files source (`type: files`): CSV (`;`, `,` or tab, detected from the header), JSON (an array of
//! objects) and NDJSON exports dropped in a directory (or named by path), turned into change events
//! through a column mapping — for any system that can only export. Runs on the core source engine
//! ([`dastra_connect_core::source`]): each configured export is a stream; new and rewritten files are
//! picked up by the incremental poll, rows that disappear are deleted by the snapshot sweep, rows
//! that cannot be read or mapped go to the DLQ. See `README.md`.
//!
//! Roles: [`config`] (exports, columns, validated without I/O), [`parse`] (CSV/JSON/NDJSON → rows,
//! pure), [`scan`] (a directory → the current rows with stable versions), [`mapping`] (the generic
//! column mapping as a jq program), [`samples`] (the bundled exports for the quickstart), [`source`] (the
//! [`SourceSystem`](dastra_connect_core::source::SourceSystem) and the connector).

pub mod config;
pub mod mapping;
pub mod parse;
pub mod samples;
pub mod scan;
pub mod source;

pub use config::{ExportConfig, FileFormat, FilesConfig, Selection};
pub use source::FilesSource;
