//! The polling engine every source uses: incremental sync with a cursor
//! (modified-since + tie-breaker id + look-back), checkpoints on the bus written only after the broker
//! acknowledged the events, a scheduled snapshot sweep that turns "gone since last time" into deletes,
//! mappings written as jq programs, and the HTTP plumbing of source systems (auth, pagination,
//! 429/Retry-After, a budget on daily API quotas).
//!
//! A connector implements [`SourceSystem`] (fetch changed records after a cursor, fetch every record
//! for a sweep, optionally fetch explicit deletes) and hands it to [`SourceEngine`] with one
//! [`StreamSpec`] (a jq [`Mapping`] and its parameters) per stream of records (a table, an object
//! type). The engine does the rest:
//!
//! - **Versions and ids.** Each record carries its modification time and a counter; its events get
//!   the sequence [`crate::event::sequence_from_time`]`(updated, counter)` and therefore a
//!   deterministic id: re-polling the same state publishes byte-identical duplicates the sink drops.
//!   A delete gets `sequence_from_time(deleted_at, u64::MAX)`, so it sorts after every update of the
//!   same instant.
//! - **Cursor.** Pages are fetched strictly after `(updated, id)` (keyset pagination, no offsets, so a
//!   record changing during a poll cannot shift a page and be skipped). Each poll starts `look_back`
//!   before the cursor to catch records committed late with an older timestamp; the ids and versions
//!   already published inside that window are kept in the checkpoint, so the overlap publishes
//!   nothing twice.
//! - **Checkpoint after ack.** Page by page: map, publish the batch, wait for every broker ack, record
//!   new known keys, then write the checkpoint. A crash anywhere before the checkpoint re-reads the page
//!   (at-least-once; duplicates are harmless by the ids above).
//! - **Known keys.** Every entity key a record produced is remembered on the bus with its stream and
//!   record id. A sweep deletes the keys of its stream it did not see; an update that no longer
//!   produces a key (a vendor link removed) deletes that key; an explicit delete deletes every key of
//!   the record.
//! - **Failures.** A record the mapping rejects, or whose output is not a valid event, goes to the DLQ
//!   with the reason (headers `dastra_dlq_reason`/`dastra_dlq_error`, as the sink's DLQ) and the
//!   source moves on. Source-system and bus failures are counted in `poll_errors_total{code}` and
//!   retried at the next poll from the last checkpoint; only fatal errors (bad credentials, invalid
//!   configuration) stop the connector.

mod connector;
pub mod cursor;
pub mod dlq;
mod engine;
mod error;
pub mod http;
pub mod keyset;
mod known;
pub mod mapping;
mod progress;
mod settings;
pub mod streams;

pub use connector::{SourceConnector, SourceDefinition};
pub use cursor::{Checkpoint, Cursor};
pub use engine::{
    DeletedRecord, Page, SourceEngine, SourceRecord, SourceSystem, StreamSpec, change_message, events_from_outputs,
};
pub use error::SourceError;
pub use http::{ApiQuota, ApiUsage, HttpSettings, SourceAuth, SourceHttp};
pub use keyset::IdOrder;
pub use mapping::{Mapping, MappingError};
pub use settings::SourceSettings;
pub use streams::{StreamConfig, StreamFilters, StreamKind};
