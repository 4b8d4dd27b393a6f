//! Payloads to and from Avro binary datums, and the Avro single-object encoding
//! (`C3 01` + 8-byte little-endian CRC-64-AVRO fingerprint + datum; no registry needed).

use std::collections::HashMap;
use std::sync::Arc;

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use parking_lot::RwLock;

use super::CodecError;
use super::schemas::{fingerprint, schemas};
use crate::event::{
    Actor, Asset, Contract, DataField, DataProcessing, DataSubjectRequest, Dataset, EntityKind, Payload, Relationship,
    Task, with_inner,
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
        EntityKind::Dataset => Payload::Dataset(de::<Dataset>(value)?),
    })
}

/// The payload as a raw Avro binary datum (no header) of its current schema, serialized straight
/// from the payload struct (no intermediate `Value`) with a writer prepared once per schema.
pub fn encode_datum(payload: &Payload) -> Result<Vec<u8>, CodecError> {
    let writer = current_writer(payload.kind())?;
    with_inner!(payload, p => writer.write_ser_to_vec(p)).map_err(|e| CodecError::Encode(e.to_string()))
}

/// The bundled payload schemas' datum writers, built once.
fn current_writer(kind: EntityKind) -> Result<&'static GenericDatumWriter<'static>, CodecError> {
    static WRITERS: OnceLock<Result<Vec<GenericDatumWriter<'static>>, String>> = OnceLock::new();
    let writers = WRITERS
        .get_or_init(|| {
            let all = schemas().map_err(|e| e.to_string())?;
            EntityKind::ALL
                .iter()
                .map(|k| GenericDatumWriter::builder(&all.payload(*k).schema).build().map_err(|e| e.to_string()))
                .collect()
        })
        .as_deref()
        .map_err(|e| CodecError::InvalidSchema(e.clone()))?;
    // Built from EntityKind::ALL in order, so the index always exists.
    let index = EntityKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    writers.get(index).ok_or_else(|| CodecError::InvalidSchema(format!("no writer for {kind}")))
}

/// Decodes a raw datum written with `writer` into a payload of `kind` (reading it with the current
/// schema of `kind`, Avro schema resolution in between). The datum must be consumed entirely.
///
/// This computes the writer's fingerprint on every call; the codec's own paths know it already
/// (single-object header, cached per Confluent id) and go through [`decode_with_writer`].
pub fn decode_datum(kind: EntityKind, writer: &Schema, datum: &[u8]) -> Result<Payload, CodecError> {
    decode_with_writer(kind, writer, &fingerprint(writer), datum)
}

/// [`decode_datum`] with the writer's fingerprint known: a writer with the fingerprint of the
/// current schema of `kind` has the same binary layout (same Parsing Canonical Form), so its datum
/// is read straight into the payload type with the bundled schema's prepared reader; any other
/// writer goes through Avro schema resolution.
pub(crate) fn decode_with_writer(
    kind: EntityKind,
    writer: &Schema,
    writer_fp: &[u8; 8],
    datum: &[u8],
) -> Result<Payload, CodecError> {
    if *writer_fp == schemas()?.payload(kind).fingerprint {
        decode_current(kind, datum)
    } else {
        decode_evolved(kind, writer, datum)
    }
}

/// The bundled payload schemas' datum readers, built once (building one resolves every named type
/// of the schema, which used to be redone for every message).
fn current_readers() -> Result<&'static [GenericDatumReader<'static>], CodecError> {
    static READERS: OnceLock<Result<Vec<GenericDatumReader<'static>>, String>> = OnceLock::new();
    READERS
        .get_or_init(|| {
            let all = schemas().map_err(|e| e.to_string())?;
            EntityKind::ALL
                .iter()
                .map(|k| GenericDatumReader::builder(&all.payload(*k).schema).build().map_err(|e| e.to_string()))
                .collect()
        })
        .as_deref()
        .map_err(|e| CodecError::InvalidSchema(e.clone()))
}

/// Reads a datum of the current schema of `kind` directly into the payload type (no intermediate
/// `Value`, no resolution).
pub(crate) fn decode_current(kind: EntityKind, datum: &[u8]) -> Result<Payload, CodecError> {
    let readers = current_readers()?;
    // `current_readers` is built from EntityKind::ALL in order, so the index always exists.
    let index = EntityKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    let reader = readers.get(index).ok_or_else(|| CodecError::InvalidSchema(format!("no reader for {kind}")))?;
    let mut input = SliceInput::new(datum);
    fn de<T: serde::de::DeserializeOwned>(
        reader: &GenericDatumReader<'static>,
        input: &mut SliceInput<'_>,
    ) -> Result<T, CodecError> {
        let result = reader.read_deser::<T>(input);
        // An attempt to read past the end explains whatever went wrong next.
        input.check_not_short()?;
        result.map_err(classify_read_error)
    }
    let payload = match kind {
        EntityKind::Asset => Payload::Asset(de(reader, &mut input)?),
        EntityKind::Actor => Payload::Actor(de(reader, &mut input)?),
        EntityKind::Contract => Payload::Contract(de(reader, &mut input)?),
        EntityKind::DataProcessing => Payload::DataProcessing(de(reader, &mut input)?),
        EntityKind::DataField => Payload::DataField(de(reader, &mut input)?),
        EntityKind::Relationship => Payload::Relationship(de(reader, &mut input)?),
        EntityKind::DataSubjectRequest => Payload::DataSubjectRequest(de(reader, &mut input)?),
        EntityKind::Task => Payload::Task(de(reader, &mut input)?),
        EntityKind::Dataset => Payload::Dataset(de(reader, &mut input)?),
    };
    input.check_consumed()?;
    Ok(payload)
}

/// Reads a datum of another writer schema (an older or newer version) through Avro schema
/// resolution into the current schema of `kind`. Rare (schema evolution), so not cached.
fn decode_evolved(kind: EntityKind, writer: &Schema, datum: &[u8]) -> Result<Payload, CodecError> {
    check_record_name(kind, writer)?;
    let reader_schema = &schemas()?.payload(kind).schema;
    let mut input = SliceInput::new(datum);
    let value = GenericDatumReader::builder(writer)
        .build()
        .map_err(|e| CodecError::SchemaMismatch(e.to_string()))?
        .read_value(&mut input);
    input.check_not_short()?;
    let value = value.map_err(classify_read_error)?;
    input.check_consumed()?;
    let value = value.resolve(reader_schema).map_err(|e| CodecError::SchemaMismatch(e.to_string()))?;
    payload_from_value(kind, &value)
}

/// The input of a datum decode: a byte slice that remembers whether the decoder ever asked for
/// bytes past its end.
///
/// apache-avro reads a union index (or a boolean) at end of input as "null" instead of failing,
/// so a datum cut just before trailing optional fields would otherwise decode silently with those
/// fields lost. The decoder never reads ahead of what the schema needs, so a request it could not
/// fill means the datum was cut: exact, and free (the previous guard re-encoded every decoded
/// value to compare lengths).
pub(crate) struct SliceInput<'a> {
    rest: &'a [u8],
    short: bool,
}

impl<'a> SliceInput<'a> {
    /// Input over `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes, short: false }
    }

    /// `truncated` if a read wanted more bytes than were left.
    pub(crate) fn check_not_short(&self) -> Result<(), CodecError> {
        if self.short {
            return Err(CodecError::Truncated("Avro datum"));
        }
        Ok(())
    }

    /// `invalid_avro` if bytes are left after the datum.
    pub(crate) fn check_consumed(&self) -> Result<(), CodecError> {
        if !self.rest.is_empty() {
            return Err(CodecError::InvalidAvro(format!("{} bytes left after the datum", self.rest.len())));
        }
        Ok(())
    }
}

impl std::io::Read for SliceInput<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.len() > self.rest.len() {
            self.short = true;
        }
        let n = buf.len().min(self.rest.len());
        let (head, tail) = self.rest.split_at(n);
        buf[..n].copy_from_slice(head);
        self.rest = tail;
        Ok(n)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        if buf.len() > self.rest.len() {
            self.short = true;
            self.rest = &[];
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let (head, tail) = self.rest.split_at(buf.len());
        buf.copy_from_slice(head);
        self.rest = tail;
        Ok(())
    }
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
        return decode_current(kind, &bytes[10..]);
    }
    match known.get(&fp) {
        Some(writer) => decode_with_writer(kind, &writer, &fp, &bytes[10..]),
        None => Err(CodecError::UnknownSchema(format!(
            "single-object fingerprint {} is not a known {kind} schema",
            hex::encode(fp)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The asset schema without its trailing `supportType`, `tags` and `customFields`: a writer
    /// whose datum ends with optional unions, where apache-avro alone would read a cut datum's
    /// missing union indexes as null.
    fn old_asset_writer() -> Schema {
        let mut v: serde_json::Value =
            serde_json::from_str(super::super::schemas::payload_schema_source(EntityKind::Asset)).unwrap();
        let fields = v["fields"].as_array_mut().unwrap();
        fields.retain(|f| !matches!(f["name"].as_str(), Some("supportType" | "customFields" | "tags")));
        Schema::parse_str(&v.to_string()).unwrap()
    }

    #[test]
    fn every_prefix_of_a_datum_ending_in_unions_is_truncated() {
        let writer = old_asset_writer();
        let asset = Asset { label: Some("CRM".into()), ..Asset::default() };
        let value = apache_avro::to_value(&asset).unwrap();
        let Value::Record(all) = value else { panic!("record") };
        let names: Vec<String> = match &writer {
            Schema::Record(r) => r.fields.iter().map(|f| f.name.clone()).collect(),
            _ => panic!("record schema"),
        };
        let record = Value::Record(all.into_iter().filter(|(n, _)| names.contains(n)).collect());
        let record = record.resolve(&writer).unwrap();
        let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&writer)
            .build()
            .and_then(|w| w.write_value_to_vec(record))
            .unwrap();
        // The last bytes are the null-union indexes of the trailing optional fields.
        assert_eq!(datum.last(), Some(&0));
        let Payload::Asset(back) = decode_datum(EntityKind::Asset, &writer, &datum).unwrap() else { panic!() };
        assert_eq!(back.label.as_deref(), Some("CRM"));
        for len in 0..datum.len() {
            let err = decode_datum(EntityKind::Asset, &writer, &datum[..len]).unwrap_err();
            assert!(matches!(err, CodecError::Truncated(_)), "prefix {len}/{}: {err}", datum.len());
        }
    }

    /// Same bytes as the former `Value` path, up to the order of map entries (the `Value` path
    /// went through a `HashMap`, so its order was arbitrary; serde writes a `BTreeMap` sorted).
    #[test]
    fn serde_encoding_matches_the_value_path() {
        let mut payloads = crate::event::samples::sample_payloads();
        payloads.push(Payload::Asset(Asset { deleted: true, ..Asset::default() }));
        for p in payloads {
            let schema = &schemas().unwrap().payload(p.kind()).schema;
            let via_value = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
                .build()
                .and_then(|w| w.write_value_to_vec(payload_to_value(&p).unwrap()))
                .unwrap();
            let direct = encode_datum(&p).unwrap();
            assert_eq!(direct.len(), via_value.len(), "{}", p.kind());
            let mut sorted_direct = direct.clone();
            let mut sorted_value = via_value.clone();
            sorted_direct.sort_unstable();
            sorted_value.sort_unstable();
            assert_eq!(sorted_direct, sorted_value, "{}: same bytes, at most reordered", p.kind());
            let writer = &schemas().unwrap().payload(p.kind()).schema;
            assert_eq!(decode_datum(p.kind(), writer, &direct).unwrap(), p);
            assert_eq!(decode_datum(p.kind(), writer, &via_value).unwrap(), p);
            // Encoding twice gives the same bytes (map entries sorted).
            assert_eq!(encode_datum(&p).unwrap(), direct, "{}", p.kind());
        }
    }

    #[test]
    fn slice_input_notices_reads_past_the_end() {
        use std::io::Read;
        let mut input = SliceInput::new(&[1, 2, 3]);
        let mut two = [0u8; 2];
        input.read_exact(&mut two).unwrap();
        assert!(input.check_not_short().is_ok());
        assert!(input.check_consumed().is_err(), "one byte left");
        assert!(input.read_exact(&mut two).is_err());
        assert!(matches!(input.check_not_short(), Err(CodecError::Truncated(_))));
        let mut exact = SliceInput::new(&[1, 2]);
        exact.read_exact(&mut two).unwrap();
        assert!(exact.check_not_short().is_ok() && exact.check_consumed().is_ok());
    }
}
