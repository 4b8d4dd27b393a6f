//! Payloads to and from Avro binary datums, and the Avro single-object encoding
//! (`C3 01` + 8-byte little-endian CRC-64-AVRO fingerprint + datum; no registry needed).

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::types::Value;
use parking_lot::RwLock;

use super::CodecError;
use super::schemas::{fingerprint, schemas};
use crate::event::{
    Actor, Asset, Contract, DataField, DataProcessing, DataSubjectRequest, EntityKind, Payload, Relationship, Task,
    with_inner,
};

/// The two marker bytes of Avro single-object encoding.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];

/// The payload as an Avro value conforming to its current schema.
pub fn payload_to_value(payload: &Payload) -> Result<Value, CodecError> {
    let schema = &schemas()?.payload(payload.kind()).schema;
    let value = with_inner!(payload, p => apache_avro::to_value(p)).map_err(|e| CodecError::Encode(e.to_string()))?;
    value.resolve(schema).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Reads a payload of `kind` from an Avro value of its (reader) schema.
pub fn payload_from_value(kind: EntityKind, value: &Value) -> Result<Payload, CodecError> {
    fn de<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, CodecError> {
        apache_avro::from_value(v).map_err(|e| match e.details() {
            // A key or enum string that our validation rejects arrives as a custom serde error.
            apache_avro::error::Details::DeserializeValue(m) => CodecError::InvalidAvro(m.clone()),
            _ => CodecError::SchemaMismatch(e.to_string()),
        })
    }
    Ok(match kind {
        EntityKind::Asset => Payload::Asset(de::<Asset>(value)?),
        EntityKind::Actor => Payload::Actor(de::<Actor>(value)?),
        EntityKind::Contract => Payload::Contract(de::<Contract>(value)?),
        EntityKind::DataProcessing => Payload::DataProcessing(de::<DataProcessing>(value)?),
        EntityKind::DataField => Payload::DataField(de::<DataField>(value)?),
        EntityKind::Relationship => Payload::Relationship(de::<Relationship>(value)?),
        EntityKind::DataSubjectRequest => Payload::DataSubjectRequest(de::<DataSubjectRequest>(value)?),
        EntityKind::Task => Payload::Task(de::<Task>(value)?),
    })
}

/// The payload as a raw Avro binary datum (no header) of its current schema.
pub fn encode_datum(payload: &Payload) -> Result<Vec<u8>, CodecError> {
    let schema = &schemas()?.payload(payload.kind()).schema;
    let value = payload_to_value(payload)?;
    apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .and_then(|w| w.write_value_to_vec(value))
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a raw datum written with `writer` into a payload of `kind` (reading it with the current
/// schema of `kind`, Avro schema resolution in between). The datum must be consumed entirely.
pub fn decode_datum(kind: EntityKind, writer: &Schema, datum: &[u8]) -> Result<Payload, CodecError> {
    let reader_schema = &schemas()?.payload(kind).schema;
    let same = fingerprint(writer) == schemas()?.payload(kind).fingerprint;
    if !same {
        check_record_name(kind, writer)?;
    }
    let mut rest = datum;
    let value = apache_avro::reader::datum::GenericDatumReader::builder(writer)
        .build()
        .map_err(|e| CodecError::SchemaMismatch(e.to_string()))?
        .read_value(&mut rest)
        .map_err(classify_read_error)?;
    if !rest.is_empty() {
        return Err(CodecError::InvalidAvro(format!("{} bytes left after the datum", rest.len())));
    }
    check_complete(writer, &value, datum.len())?;
    let value = if same {
        value
    } else {
        value.resolve(reader_schema).map_err(|e| CodecError::SchemaMismatch(e.to_string()))?
    };
    payload_from_value(kind, &value)
}

/// apache-avro reads a union index at end of input as "null" instead of failing, so a datum cut
/// just before trailing optional fields would decode silently with those fields lost. Re-encoding
/// the decoded value gives the length it needs at least (map entry order changes no length): input
/// shorter than that was truncated.
pub(crate) fn check_complete(writer: &Schema, value: &Value, input_len: usize) -> Result<(), CodecError> {
    let encoded = apache_avro::writer::datum::GenericDatumWriter::builder(writer)
        .validate(false)
        .build()
        .and_then(|w| {
            let mut counter = ByteCounter(0);
            w.write_value_ref(&mut counter, value).map(|_| counter.0)
        })
        .map_err(|e| CodecError::InvalidAvro(e.to_string()))?;
    // Longer is fine (other writers may split arrays into blocks or pad varints); shorter
    // input than the value needs cannot happen for a complete datum.
    if encoded > input_len {
        return Err(CodecError::Truncated("Avro datum (ends inside trailing optional fields)"));
    }
    Ok(())
}

/// Counts bytes written (apache-avro's own return value leaves out union indexes).
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// [`check_complete`] for a schema that refers to other named schemas.
pub(crate) fn check_complete_schemata(
    writer: &Schema,
    schemata: &[Schema],
    value: &Value,
    input_len: usize,
) -> Result<(), CodecError> {
    let encoded = apache_avro::writer::datum::GenericDatumWriter::builder(writer)
        .validate(false)
        .schemata(schemata.iter().collect())
        .and_then(|b| b.build())
        .and_then(|w| {
            let mut counter = ByteCounter(0);
            w.write_value_ref(&mut counter, value).map(|_| counter.0)
        })
        .map_err(|e| CodecError::InvalidAvro(e.to_string()))?;
    if encoded > input_len {
        return Err(CodecError::Truncated("Avro datum (ends inside trailing optional fields)"));
    }
    Ok(())
}

/// A writer schema for another record than the expected payload cannot be resolved; say so
/// plainly rather than with a resolution error.
fn check_record_name(kind: EntityKind, writer: &Schema) -> Result<(), CodecError> {
    let expected = match &schemas()?.payload(kind).schema {
        Schema::Record(r) => r.name.fullname(None),
        _ => return Ok(()),
    };
    match writer {
        Schema::Record(r) if r.name.fullname(None) == expected => Ok(()),
        Schema::Record(r) => Err(CodecError::SchemaMismatch(format!(
            "writer record is {} but {} expects {expected}",
            r.name.fullname(None),
            kind
        ))),
        _ => Err(CodecError::SchemaMismatch(format!("writer schema is not a record, {kind} expects {expected}"))),
    }
}

/// Maps apache-avro read errors: running out of bytes is `truncated`, a writer/reader
/// incompatibility is `schema_mismatch`, anything else is corrupt data.
pub(crate) fn classify_read_error(e: apache_avro::Error) -> CodecError {
    use apache_avro::error::Details;
    let text = e.to_string();
    match e.details() {
        Details::ReadBytes(io) | Details::ReadString(io) | Details::ReadVariableIntegerBytes(io)
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            CodecError::Truncated("Avro datum")
        }
        Details::ReadBoolean(io) | Details::ReadFixed(io, _) | Details::ReadDouble(io) | Details::ReadFloat(io)
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            CodecError::Truncated("Avro datum")
        }
        Details::FindUnionVariant { .. }
        | Details::SchemaResolutionError(_)
        | Details::GetField(_)
        | Details::GetDefaultRecordField(..) => CodecError::SchemaMismatch(text),
        _ => CodecError::InvalidAvro(text),
    }
}

/// Writer schemas a single-object decoder knows, by fingerprint: the bundled ones plus any
/// historical (or newer) versions added with [`KnownSchemas::add`]. Single-object encoding has no
/// registry, so a reader can only decode writers it was told about.
#[derive(Debug, Default)]
pub struct KnownSchemas {
    extra: RwLock<HashMap<[u8; 8], Arc<Schema>>>,
}

impl KnownSchemas {
    /// Adds a writer schema (JSON text); returns its fingerprint.
    pub fn add(&self, schema_json: &str) -> Result<[u8; 8], CodecError> {
        let schema = Schema::parse_str(schema_json)
            .map_err(|e| CodecError::SchemaMismatch(format!("cannot parse writer schema: {e}")))?;
        let fp = fingerprint(&schema);
        self.extra.write().insert(fp, Arc::new(schema));
        Ok(fp)
    }

    fn get(&self, fp: &[u8; 8]) -> Option<Arc<Schema>> {
        self.extra.read().get(fp).cloned()
    }
}

/// Single-object encoding of a payload with its current schema.
pub fn encode_single_object(payload: &Payload) -> Result<Vec<u8>, CodecError> {
    let fp = schemas()?.payload(payload.kind()).fingerprint;
    let datum = encode_datum(payload)?;
    let mut out = Vec::with_capacity(10 + datum.len());
    out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
    out.extend_from_slice(&fp);
    out.extend_from_slice(&datum);
    Ok(out)
}

/// Decodes a single-object message as a payload of `kind`.
pub fn decode_single_object(kind: EntityKind, bytes: &[u8], known: &KnownSchemas) -> Result<Payload, CodecError> {
    if bytes.len() < 10 {
        return Err(CodecError::Truncated("single-object header (10 bytes)"));
    }
    if bytes[..2] != SINGLE_OBJECT_MAGIC {
        return Err(CodecError::BadMagic(bytes[0]));
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[2..10]);
    let all = schemas()?;
    if let Some(writer_kind) = all.kind_by_fingerprint(&fp) {
        if writer_kind != kind {
            return Err(CodecError::SchemaMismatch(format!(
                "message carries a {writer_kind} payload, expected {kind}"
            )));
        }
        return decode_datum(kind, &all.payload(kind).schema, &bytes[10..]);
    }
    match known.get(&fp) {
        Some(writer) => decode_datum(kind, &writer, &bytes[10..]),
        None => Err(CodecError::UnknownSchema(format!(
            "single-object fingerprint {} is not a known {kind} schema",
            hex::encode(fp)
        ))),
    }
}
