//! Errors of encoding and decoding change events. A consumer turns every one of them into a DLQ
//! record (or a retry, for an unreachable registry); none of them is ever a panic.

use crate::error::{Classify, ErrorClass};
use crate::event::EventError;

use super::registry::RegistryError;

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The message ends before its header or datum does.
    #[error("message truncated: {0}")]
    Truncated(&'static str),
    /// The first bytes are none of the known formats (0x00 Confluent, C3 01 single-object, `{` JSON).
    #[error(
        "unrecognised message format (first byte {0:#04x}); expected Confluent (0x00), Avro single-object (C3 01) or JSON ('{{')"
    )]
    BadMagic(u8),
    /// An empty value (no payload).
    #[error("empty message value")]
    Empty,
    /// The writer schema is not known (unknown single-object fingerprint, unknown registry id).
    #[error("unknown writer schema: {0}")]
    UnknownSchema(String),
    /// The writer schema cannot be read as the expected payload (another record, incompatible change).
    #[error("writer schema does not match the expected payload: {0}")]
    SchemaMismatch(String),
    /// The Avro datum is corrupt (bad varint, bad union index, invalid UTF-8, trailing bytes…).
    #[error("corrupt Avro data: {0}")]
    InvalidAvro(String),
    /// The JSON text is malformed or does not fit the payload type.
    #[error("invalid JSON payload: {0}")]
    InvalidJson(String),
    /// A Confluent-framed message arrived but this codec has no schema registry configured.
    #[error("Confluent wire-format message but no schema registry is configured")]
    NoRegistry,
    /// A required message header is absent or not UTF-8.
    #[error("missing or non-UTF-8 header {0}")]
    MissingHeader(&'static str),
    /// The payload could not be turned into Avro (a value outside its schema).
    #[error("cannot encode payload: {0}")]
    Encode(String),
    /// The schema files compiled into the binary do not parse (a build defect).
    #[error("bundled Avro schemas are invalid: {0}")]
    InvalidSchema(String),
    /// A schema registry call failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The headers or payload break an event rule.
    #[error(transparent)]
    Event(#[from] EventError),
}

impl Classify for CodecError {
    fn class(&self) -> ErrorClass {
        match self {
            CodecError::Registry(e) => e.class(),
            CodecError::Event(e) => e.class(),
            CodecError::InvalidSchema(_) => ErrorClass::Fatal,
            _ => ErrorClass::Permanent,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            CodecError::Truncated(_) => "truncated",
            CodecError::BadMagic(_) => "bad_magic",
            CodecError::Empty => "empty_value",
            CodecError::UnknownSchema(_) => "unknown_schema",
            CodecError::SchemaMismatch(_) => "schema_mismatch",
            CodecError::InvalidAvro(_) => "invalid_avro",
            CodecError::InvalidJson(_) => "invalid_json",
            CodecError::NoRegistry => "no_registry",
            CodecError::MissingHeader(_) => "missing_header",
            CodecError::Encode(_) => "encode_failed",
            CodecError::InvalidSchema(_) => "invalid_schema",
            CodecError::Registry(e) => e.code(),
            CodecError::Event(e) => e.code(),
        }
    }
}
