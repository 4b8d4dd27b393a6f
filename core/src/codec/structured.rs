//! A whole change event as one Avro datum of `schemas/envelope.avsc` (CloudEvents structured
//! mode), single-object framed: for stores without message headers (DLQ archives, files,
//! replays). The bus uses binary mode instead (see `crate::event`).

use apache_avro::types::Value;

use std::sync::OnceLock;

use apache_avro::reader::datum::GenericDatumReader;

use super::avro::{SliceInput, classify_read_error, payload_from_value, payload_to_value};
use super::schemas::schemas;
use super::{CodecError, SINGLE_OBJECT_MAGIC};
use crate::event::{ChangeEvent, EntityKey, EntityKind, EventError, SPEC_VERSION, parse_event_type};

/// Encodes the event with the envelope schema, single-object framed.
pub fn encode_structured(event: &ChangeEvent) -> Result<Vec<u8>, CodecError> {
    let all = schemas()?;
    let data = payload_to_value(&event.data)?;
    let index = EntityKind::ALL.iter().position(|k| *k == event.data.kind()).unwrap_or(0) as u32;
    let record = Value::Record(vec![
        ("specversion".into(), Value::String(SPEC_VERSION.into())),
        ("id".into(), Value::String(event.id.clone())),
        ("source".into(), Value::String(event.source.clone())),
        ("type".into(), Value::String(event.event_type())),
        ("subject".into(), Value::String(event.key.to_string())),
        ("time".into(), Value::TimestampMicros(event.time.timestamp_micros())),
        ("recordedtime".into(), Value::TimestampMicros(event.recorded_time.timestamp_micros())),
        ("sequence".into(), Value::String(event.sequence.clone())),
        (
            "traceparent".into(),
            match &event.traceparent {
                Some(t) => Value::Union(1, Box::new(Value::String(t.clone()))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        ),
        ("data".into(), Value::Union(index, Box::new(data))),
    ]);
    let schemata: Vec<&apache_avro::Schema> = all.envelope_schemata.iter().collect();
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&all.envelope)
        .schemata(schemata)
        .and_then(|b| b.build())
        .and_then(|w| w.write_value_to_vec(record))
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(10 + datum.len());
    out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
    out.extend_from_slice(&all.envelope_fingerprint);
    out.extend_from_slice(&datum);
    Ok(out)
}

/// The envelope's datum reader, built once (it resolves the envelope and the nine payload schemas).
fn envelope_reader() -> Result<&'static GenericDatumReader<'static>, CodecError> {
    static READER: OnceLock<Result<GenericDatumReader<'static>, String>> = OnceLock::new();
    READER
        .get_or_init(|| {
            let all = schemas().map_err(|e| e.to_string())?;
            GenericDatumReader::builder(&all.envelope)
                .writer_schemata(all.envelope_schemata.iter().collect())
                .and_then(|b| b.build())
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| CodecError::InvalidSchema(e.clone()))
}

/// Decodes an event written by [`encode_structured`] and validates it.
pub fn decode_structured(bytes: &[u8]) -> Result<ChangeEvent, CodecError> {
    let all = schemas()?;
    if bytes.len() < 10 {
        return Err(CodecError::Truncated("single-object header (10 bytes)"));
    }
    if bytes[..2] != SINGLE_OBJECT_MAGIC {
        return Err(CodecError::BadMagic(bytes[0]));
    }
    if bytes[2..10] != all.envelope_fingerprint {
        return Err(CodecError::UnknownSchema(format!(
            "fingerprint {} is not the envelope schema",
            hex::encode(&bytes[2..10])
        )));
    }
    let mut input = SliceInput::new(&bytes[10..]);
    let value = envelope_reader()?.read_value(&mut input);
    input.check_not_short()?;
    let value = value.map_err(classify_read_error)?;
    input.check_consumed()?;
    let Value::Record(fields) = value else {
        return Err(CodecError::SchemaMismatch("envelope is not a record".into()));
    };
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let string = |name: &'static str| match field(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(CodecError::SchemaMismatch(format!("envelope field {name} missing"))),
    };
    let micros = |name: &'static str| match field(name) {
        Some(Value::TimestampMicros(t)) | Some(Value::Long(t)) => chrono::DateTime::from_timestamp_micros(*t)
            .ok_or_else(|| CodecError::InvalidAvro(format!("{name} out of range"))),
        _ => Err(CodecError::SchemaMismatch(format!("envelope field {name} missing"))),
    };
    if string("specversion")? != SPEC_VERSION {
        return Err(EventError::InvalidEvent("unsupported specversion".into()).into());
    }
    let (kind, op) = parse_event_type(&string("type")?)?;
    let key = EntityKey::parse(&string("subject")?)?;
    let traceparent = match field("traceparent") {
        Some(Value::Union(_, v)) => match v.as_ref() {
            Value::String(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    let data = match field("data") {
        Some(Value::Union(i, v)) => {
            let data_kind = EntityKind::ALL
                .get(*i as usize)
                .copied()
                .ok_or_else(|| CodecError::InvalidAvro("bad data union index".into()))?;
            if data_kind != kind {
                return Err(EventError::InvalidEvent(format!("type names {kind} but the data is a {data_kind}")).into());
            }
            payload_from_value(kind, v)?
        }
        _ => return Err(CodecError::SchemaMismatch("envelope field data missing".into())),
    };
    let event = ChangeEvent {
        id: string("id")?,
        source: string("source")?,
        key,
        op,
        sequence: string("sequence")?,
        time: micros("time")?,
        recorded_time: micros("recordedtime")?,
        traceparent,
        data,
    };
    event.validate()?;
    Ok(event)
}
