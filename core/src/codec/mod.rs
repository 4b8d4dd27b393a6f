//! Codecs for change-event payloads: Avro single-object encoding (no registry), Confluent wire
//! format (magic 0, 4-byte big-endian schema id, Avro datum) with a Schema Registry client, and
//! JSON. Schemas come from `schemas/*.avsc` ([`schemas`]).
//!
//! Decoding detects the format from the first bytes, whatever the codec encodes with, so one
//! consumer reads a topic that mixes them: `0x00` → Confluent, `C3 01` → single-object, `{`
//! (after optional whitespace) → JSON. Every failure is a typed [`CodecError`], never a panic.

mod avro;
mod error;
pub mod registry;
pub mod schemas;
mod structured;
pub mod varint;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

pub use avro::{
    KnownSchemas, SINGLE_OBJECT_MAGIC, decode_datum, decode_single_object, encode_datum, encode_single_object,
    payload_from_value, payload_to_value,
};
pub use error::CodecError;
pub use registry::{RegistryConfig, RegistryError, SchemaRegistryClient, value_subject};
pub use structured::{decode_structured, encode_structured};

use crate::event::{EntityKind, Payload, with_inner};

/// Magic byte of the Confluent wire format.
pub const CONFLUENT_MAGIC: u8 = 0x00;

/// The wire formats a payload can travel in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// Avro single-object encoding: `C3 01` + CRC-64-AVRO fingerprint + datum.
    AvroSingleObject,
    /// Confluent: `00` + big-endian u32 schema id + datum.
    Confluent,
    /// UTF-8 JSON object.
    Json,
}

impl WireFormat {
    /// The CloudEvents `datacontenttype` (`content-type` header) for this format.
    pub fn content_type(self) -> &'static str {
        match self {
            WireFormat::AvroSingleObject | WireFormat::Confluent => "application/avro",
            WireFormat::Json => "application/json",
        }
    }
}

/// Which format a message value is in, from its first bytes.
pub fn detect(bytes: &[u8]) -> Result<WireFormat, CodecError> {
    let Some(&first) = bytes.first() else {
        return Err(CodecError::Empty);
    };
    match first {
        CONFLUENT_MAGIC => Ok(WireFormat::Confluent),
        0xC3 if bytes.get(1) == Some(&0x01) => Ok(WireFormat::AvroSingleObject),
        0xC3 if bytes.len() == 1 => Err(CodecError::Truncated("single-object header (10 bytes)")),
        _ => match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Ok(WireFormat::Json),
            _ => Err(CodecError::BadMagic(first)),
        },
    }
}

/// Which codec a connector encodes with (config, e.g. YAML `codec: {format: confluent, registry:
/// {url: http://registry:8081}}`; default single-object).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum CodecConfig {
    /// Avro single-object encoding, no registry. (Variants are empty structs rather than unit
    /// variants because serde ignores unknown keys next to an internally tagged unit variant.)
    AvroSingleObject {},
    /// Confluent wire format through a Schema Registry.
    Confluent {
        /// The registry.
        registry: RegistryConfig,
    },
    /// JSON (debugging).
    Json {},
}

impl Default for CodecConfig {
    fn default() -> Self {
        CodecConfig::AvroSingleObject {}
    }
}

impl CodecConfig {
    /// Builds the codec (no I/O: the registry is first called on the first encode/decode).
    pub fn build(&self) -> Result<Codec, CodecError> {
        Ok(match self {
            CodecConfig::AvroSingleObject {} => Codec::single_object(),
            CodecConfig::Json {} => Codec::json(),
            CodecConfig::Confluent { registry } => {
                Codec::confluent(Arc::new(SchemaRegistryClient::new(registry.clone())?))
            }
        })
    }
}

/// Encodes payloads in one wire format and decodes any of them.
///
/// Cheap to clone (shared registry client and caches).
#[derive(Debug, Clone)]
pub struct Codec {
    format: WireFormat,
    registry: Option<Arc<SchemaRegistryClient>>,
    known: Arc<KnownSchemas>,
    /// Fingerprint of the writer schema of each Confluent id seen (ids are immutable in a
    /// registry): a datum whose writer is the current schema then decodes without asking the
    /// registry client or fingerprinting the schema again.
    confluent_fingerprints: Arc<RwLock<HashMap<u32, [u8; 8]>>>,
}

impl Codec {
    /// Avro single-object encoding, no registry (Confluent-framed input then fails with
    /// `no_registry`).
    pub fn single_object() -> Codec {
        Codec {
            format: WireFormat::AvroSingleObject,
            registry: None,
            known: Arc::default(),
            confluent_fingerprints: Arc::default(),
        }
    }

    /// Confluent wire format through this registry.
    pub fn confluent(registry: Arc<SchemaRegistryClient>) -> Codec {
        Codec {
            format: WireFormat::Confluent,
            registry: Some(registry),
            known: Arc::default(),
            confluent_fingerprints: Arc::default(),
        }
    }

    /// JSON (debugging, hand-written events).
    pub fn json() -> Codec {
        Codec {
            format: WireFormat::Json,
            registry: None,
            known: Arc::default(),
            confluent_fingerprints: Arc::default(),
        }
    }

    /// Adds a registry to a non-Confluent codec so that it can also *decode* Confluent input.
    pub fn with_registry(mut self, registry: Arc<SchemaRegistryClient>) -> Codec {
        self.registry = Some(registry);
        self.confluent_fingerprints = Arc::default();
        self
    }

    /// Teaches the single-object decoder another writer schema (an older or newer version of a
    /// payload schema); returns its fingerprint.
    pub fn add_writer_schema(&self, schema_json: &str) -> Result<[u8; 8], CodecError> {
        self.known.add(schema_json)
    }

    /// The format this codec encodes with.
    pub fn format(&self) -> WireFormat {
        self.format
    }

    /// The registry client, if any.
    pub fn registry(&self) -> Option<&Arc<SchemaRegistryClient>> {
        self.registry.as_ref()
    }

    /// The `content-type` of what this codec encodes.
    pub fn content_type(&self) -> &'static str {
        self.format.content_type()
    }

    /// Encodes a payload for `topic` (the topic only matters for Confluent: it names the subject,
    /// `<topic>-value`). Async because the first Confluent encode per subject registers or looks
    /// up the schema; later ones hit the cache.
    pub async fn encode(&self, topic: &str, payload: &Payload) -> Result<Vec<u8>, CodecError> {
        match self.format {
            WireFormat::AvroSingleObject => encode_single_object(payload),
            WireFormat::Json => encode_json(payload),
            WireFormat::Confluent => {
                let registry = self.registry.as_ref().ok_or(CodecError::NoRegistry)?;
                let source = schemas::schemas()?.payload(payload.kind()).source;
                let id = registry.id_for(&value_subject(topic), source).await?;
                let datum = encode_datum(payload)?;
                Ok(frame_confluent(id, &datum))
            }
        }
    }

    /// Decodes a payload of `kind` in whichever format `bytes` is in.
    pub async fn decode(&self, kind: EntityKind, bytes: &[u8]) -> Result<Payload, CodecError> {
        match detect(bytes)? {
            WireFormat::AvroSingleObject => decode_single_object(kind, bytes, &self.known),
            WireFormat::Json => decode_json(kind, bytes),
            WireFormat::Confluent => {
                let (id, datum) = unframe_confluent(bytes)?;
                let registry = self.registry.as_ref().ok_or(CodecError::NoRegistry)?;
                let cached = self.confluent_fingerprints.read().get(&id).copied();
                if let Some(fp) = cached
                    && fp == schemas::schemas()?.payload(kind).fingerprint
                {
                    return avro::decode_current(kind, datum);
                }
                let writer = registry.schema_by_id(id).await?;
                let fp = match cached {
                    Some(fp) => fp,
                    None => {
                        let fp = schemas::fingerprint(&writer);
                        self.confluent_fingerprints.write().insert(id, fp);
                        fp
                    }
                };
                avro::decode_with_writer(kind, &writer, &fp, datum)
            }
        }
    }
}

/// `00` + big-endian schema id + datum.
pub fn frame_confluent(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(CONFLUENT_MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Splits a Confluent-framed message into schema id and datum.
pub fn unframe_confluent(bytes: &[u8]) -> Result<(u32, &[u8]), CodecError> {
    match bytes.first() {
        None => return Err(CodecError::Empty),
        Some(&CONFLUENT_MAGIC) => {}
        Some(&b) => return Err(CodecError::BadMagic(b)),
    }
    if bytes.len() < 5 {
        return Err(CodecError::Truncated("Confluent header (5 bytes)"));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[5..]))
}

/// The payload as JSON text.
pub fn encode_json(payload: &Payload) -> Result<Vec<u8>, CodecError> {
    with_inner!(payload, p => serde_json::to_vec(p)).map_err(|e| CodecError::Encode(e.to_string()))
}

/// A payload of `kind` from JSON text, parsed straight into the payload type (no intermediate
/// `serde_json::Value`).
pub fn decode_json(kind: EntityKind, bytes: &[u8]) -> Result<Payload, CodecError> {
    // A struct also deserializes from a JSON array (field by position): only objects are payloads.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        let what = match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => "expected a JSON object".to_owned(),
            Err(e) => e.to_string(),
        };
        return Err(CodecError::InvalidJson(what));
    }
    fn de<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError::InvalidJson(e.to_string()))
    }
    Ok(match kind {
        EntityKind::Asset => Payload::Asset(de(bytes)?),
        EntityKind::Actor => Payload::Actor(de(bytes)?),
        EntityKind::Contract => Payload::Contract(de(bytes)?),
        EntityKind::DataProcessing => Payload::DataProcessing(de(bytes)?),
        EntityKind::DataField => Payload::DataField(de(bytes)?),
        EntityKind::Relationship => Payload::Relationship(de(bytes)?),
        EntityKind::DataSubjectRequest => Payload::DataSubjectRequest(de(bytes)?),
        EntityKind::Task => Payload::Task(de(bytes)?),
        EntityKind::Dataset => Payload::Dataset(de(bytes)?),
    })
}
