//! Message bytes → JSON: what a topic reader hands its rules and mappings.
//!
//! Three encodings are recognised from the bytes themselves, so one reader serves topics written by
//! different converters:
//! - **Confluent Avro** (first byte `0x00`, then the big-endian schema id and the Avro datum): the
//!   writer schema is fetched from the schema registry by id (the core's cached
//!   [`SchemaRegistryClient`]) and the datum decoded generically. Unions become their branch's
//!   value, bytes and decimals become base64 text (as Kafka Connect's JSON converter writes them),
//!   enums their symbol, logical dates and times their numbers.
//! - **JSON with the schema envelope** (Kafka Connect `JsonConverter` with `schemas.enable=true`):
//!   `{"schema": …, "payload": …}`, unwrapped to the payload.
//! - **JSON without it** (`schemas.enable=false`, or any JSON producer).
//!
//! A message key that is neither (a plain string key) is read as a JSON string.

use std::sync::Arc;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as Avro;
use base64::Engine as _;
use dastra_connect_core::codec::{CONFLUENT_MAGIC, RegistryError, SchemaRegistryClient, unframe_confluent};
use dastra_connect_core::{Classify, ErrorClass};
use serde_json::Value;

/// Why bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Neither Avro nor JSON.
    #[error("not JSON ({0}) and not Confluent-framed Avro")]
    Json(String),
    /// Confluent-framed, but no registry is configured.
    #[error("the record is Confluent-framed Avro (schema id {0}) but no schema registry is configured")]
    NoRegistry(u32),
    /// The registry could not give the writer schema.
    #[error("writer schema {id}: {source}")]
    Registry {
        /// Schema id.
        id: u32,
        /// The registry's error.
        #[source]
        source: RegistryError,
    },
    /// The datum does not decode with its writer schema.
    #[error("the Avro datum does not decode with writer schema {id}: {reason}")]
    Avro {
        /// Schema id.
        id: u32,
        /// The decoder's message.
        reason: String,
    },
}

impl Classify for DecodeError {
    fn class(&self) -> ErrorClass {
        match self {
            // The registry may come back: retry the batch instead of dead-lettering good records.
            DecodeError::Registry { source, .. } => source.class(),
            _ => ErrorClass::Permanent,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            DecodeError::Json(_) => "undecodable",
            DecodeError::NoRegistry(_) => "no_registry",
            DecodeError::Registry { source, .. } => source.code(),
            DecodeError::Avro { .. } => "undecodable",
        }
    }
}

/// Decodes message keys and values.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    registry: Option<Arc<SchemaRegistryClient>>,
}

impl Decoder {
    /// A decoder; Avro needs `registry`.
    pub fn new(registry: Option<Arc<SchemaRegistryClient>>) -> Decoder {
        Decoder { registry }
    }

    /// A message value as JSON (schema envelope unwrapped). `null` for a JSON `null` payload.
    pub async fn value(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        if bytes.first() == Some(&CONFLUENT_MAGIC) {
            return self.avro(bytes).await;
        }
        let v: Value = serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
        Ok(unwrap_schema_envelope(v))
    }

    /// A message key as JSON: Avro or JSON like a value, anything else as a string.
    pub async fn key(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        if bytes.first() == Some(&CONFLUENT_MAGIC) {
            return self.avro(bytes).await;
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => Ok(unwrap_schema_envelope(v)),
            Err(_) => Ok(Value::String(String::from_utf8_lossy(bytes).into_owned())),
        }
    }

    async fn avro(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        let (id, mut datum) = unframe_confluent(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
        let registry = self.registry.as_ref().ok_or(DecodeError::NoRegistry(id))?;
        let schema = registry.schema_by_id(id).await.map_err(|source| DecodeError::Registry { id, source })?;
        let avro_err = |e: apache_avro::Error| DecodeError::Avro { id, reason: e.to_string() };
        let value =
            GenericDatumReader::builder(&schema).build().map_err(avro_err)?.read_value(&mut datum).map_err(avro_err)?;
        if !datum.is_empty() {
            return Err(DecodeError::Avro { id, reason: format!("{} bytes left after the datum", datum.len()) });
        }
        Ok(avro_to_json(value))
    }
}

/// `{"schema": …, "payload": …}` (exactly these two fields) → the payload; anything else as is.
pub fn unwrap_schema_envelope(v: Value) -> Value {
    match v {
        Value::Object(mut o) if o.len() == 2 && o.contains_key("schema") && o.contains_key("payload") => {
            o.remove("payload").unwrap_or(Value::Null)
        }
        other => other,
    }
}

fn base64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A generic Avro value as JSON (see the module doc for how each type reads).
pub fn avro_to_json(v: Avro) -> Value {
    match v {
        Avro::Union(_, inner) => avro_to_json(*inner),
        Avro::Record(fields) => Value::Object(fields.into_iter().map(|(k, v)| (k, avro_to_json(v))).collect()),
        Avro::Map(items) => Value::Object(items.into_iter().map(|(k, v)| (k, avro_to_json(v))).collect()),
        Avro::Array(items) => Value::Array(items.into_iter().map(avro_to_json).collect()),
        Avro::Bytes(b) | Avro::Fixed(_, b) => base64(&b),
        Avro::Decimal(ref d) => <Vec<u8>>::try_from(d).map(|b| base64(&b)).unwrap_or(Value::Null),
        Avro::Uuid(u) => Value::String(u.to_string()),
        // Numbers, strings, enums, dates and times: the crate's own conversion. NaN/infinite floats
        // have no JSON form and read as null.
        other => Value::try_from(other).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn json_with_and_without_envelope_and_string_keys() {
        let d = Decoder::default();
        let with = br#"{"schema":{"type":"struct"},"payload":{"id":1}}"#;
        assert_eq!(d.value(with).await.unwrap(), json!({"id": 1}));
        assert_eq!(d.value(br#"{"id":1}"#).await.unwrap(), json!({"id": 1}));
        assert_eq!(d.key(b"SUP-1").await.unwrap(), json!("SUP-1"));
        assert_eq!(d.key(br#"{"schema":null,"payload":{"id":7}}"#).await.unwrap(), json!({"id": 7}));
        assert_eq!(d.value(b"\xff").await.unwrap_err().code(), "undecodable");
        let e = d.value(&[0, 0, 0, 0, 5, 2]).await.unwrap_err();
        assert_eq!((e.code(), e.class()), ("no_registry", ErrorClass::Permanent));
    }

    #[test]
    fn avro_values_read_like_the_json_converter_writes_them() {
        let v = Avro::Record(vec![
            ("id".into(), Avro::Long(3)),
            ("after".into(), Avro::Union(1, Box::new(Avro::Record(vec![("b".into(), Avro::Bytes(vec![1, 2]))])))),
            ("op".into(), Avro::Enum(0, "c".into())),
            ("none".into(), Avro::Union(0, Box::new(Avro::Null))),
        ]);
        assert_eq!(avro_to_json(v), json!({"id": 3, "after": {"b": "AQI="}, "op": "c", "none": null}));
    }
}
