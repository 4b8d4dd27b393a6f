//! The Avro schemas of `schemas/*.avsc`, compiled in with `include_str!` (the files are the source
//! of truth; nothing here restates them) and parsed once.
//!
//! Named types: every payload schema is **self-contained** (its nested records and enums are
//! defined inside it, in the payload's own namespace `io.dastra.connect.<entity>.v1`), because
//! that is what a Confluent registry subject (TopicNameStrategy, no schema references), the
//! single-object fingerprint and independent readers need. The same Dastra enum used by two
//! payloads (e.g. `PersonCategoryType` in processing and dsr) is therefore two Avro types with
//! different full names, which keeps `Schema::parse_list` free of name collisions. Only the
//! envelope refers to other files: it is parsed with `Schema::parse_list` together with the nine
//! payload schemas and names them by full name.

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::Schema;

use super::CodecError;
use crate::event::EntityKind;

/// Raw text of a payload schema file.
pub fn payload_schema_source(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Asset => include_str!("../../../schemas/asset.avsc"),
        EntityKind::Actor => include_str!("../../../schemas/actor.avsc"),
        EntityKind::Contract => include_str!("../../../schemas/contract.avsc"),
        EntityKind::DataProcessing => include_str!("../../../schemas/processing.avsc"),
        EntityKind::DataField => include_str!("../../../schemas/datafield.avsc"),
        EntityKind::Relationship => include_str!("../../../schemas/relationship.avsc"),
        EntityKind::DataSubjectRequest => include_str!("../../../schemas/dsr.avsc"),
        EntityKind::Task => include_str!("../../../schemas/task.avsc"),
        EntityKind::Dataset => include_str!("../../../schemas/dataset.avsc"),
    }
}

/// Raw text of `schemas/envelope.avsc`.
pub const ENVELOPE_SCHEMA_SOURCE: &str = include_str!("../../../schemas/envelope.avsc");

/// File name of a payload schema under `schemas/` (`<topic suffix>.avsc`).
pub fn payload_schema_file(kind: EntityKind) -> String {
    format!("{}.avsc", kind.as_str())
}

/// A parsed payload schema with what the codecs need from it.
#[derive(Debug)]
pub struct PayloadSchema {
    /// The payload kind.
    pub kind: EntityKind,
    /// The schema file text (what is registered with a registry).
    pub source: &'static str,
    /// Parsed schema.
    pub schema: Schema,
    /// Parsing Canonical Form.
    pub canonical: String,
    /// CRC-64-AVRO (Rabin) fingerprint of the canonical form, as written after `C3 01`.
    pub fingerprint: [u8; 8],
}

/// All bundled schemas.
#[derive(Debug)]
pub struct Schemas {
    payloads: Vec<PayloadSchema>,
    by_fingerprint: HashMap<[u8; 8], EntityKind>,
    /// The envelope (`io.dastra.connect.v1.ChangeEvent`).
    pub envelope: Schema,
    /// The payload schemas as parsed together with the envelope (to resolve its references).
    pub envelope_schemata: Vec<Schema>,
    /// Fingerprint of the envelope.
    pub envelope_fingerprint: [u8; 8],
}

impl Schemas {
    /// The schema of one payload kind.
    pub fn payload(&self, kind: EntityKind) -> &PayloadSchema {
        // `payloads` is built from EntityKind::ALL in order, so the index always exists.
        &self.payloads[EntityKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)]
    }

    /// The kind whose current schema has this fingerprint.
    pub fn kind_by_fingerprint(&self, fp: &[u8; 8]) -> Option<EntityKind> {
        self.by_fingerprint.get(fp).copied()
    }
}

/// The Parsing Canonical Form of a schema, as the Avro specification (and Java, fastavro) define
/// it.
///
/// apache-avro 0.22's `canonical_form()` strips `logicalType` but then leaves the remaining
/// `{"type":"long"}` as an object instead of reducing it to the primitive `"long"` (the `PRIMITIVES`
/// rule), so its fingerprints of schemas with logical types differ from every other
/// implementation (found by the fastavro cross-check). A lone-`type` object of a primitive cannot
/// otherwise occur in canonical form, so rewriting those is exact.
pub fn canonical_form(schema: &Schema) -> String {
    let mut text = schema.canonical_form();
    for primitive in ["null", "boolean", "int", "long", "float", "double", "bytes", "string"] {
        text = text.replace(&format!("{{\"type\":\"{primitive}\"}}"), &format!("\"{primitive}\""));
    }
    text
}

/// The CRC-64-AVRO (Rabin) fingerprint of a schema's Parsing Canonical Form, in the byte order
/// single-object encoding writes it (little-endian, as Java and fastavro do).
pub fn fingerprint(schema: &Schema) -> [u8; 8] {
    crc64_avro(canonical_form(schema).as_bytes()).to_le_bytes()
}

/// CRC-64-AVRO as given by the Avro specification's reference code.
pub fn crc64_avro(data: &[u8]) -> u64 {
    const EMPTY: u64 = 0xC15D_213A_A4D7_A795;
    static TABLE: OnceLock<[u64; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u64; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut fp = i as u64;
            for _ in 0..8 {
                fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            }
            *slot = fp;
        }
        t
    });
    let mut fp = EMPTY;
    for &b in data {
        fp = (fp >> 8) ^ table[((fp ^ u64::from(b)) & 0xFF) as usize];
    }
    fp
}

fn load() -> Result<Schemas, String> {
    let mut payloads = Vec::new();
    let mut by_fingerprint = HashMap::new();
    for kind in EntityKind::ALL {
        let source = payload_schema_source(kind);
        let schema = Schema::parse_str(source).map_err(|e| format!("{}: {e}", payload_schema_file(kind)))?;
        let fp = fingerprint(&schema);
        by_fingerprint.insert(fp, kind);
        payloads.push(PayloadSchema { kind, source, canonical: canonical_form(&schema), schema, fingerprint: fp });
    }
    let mut list: Vec<&str> = vec![ENVELOPE_SCHEMA_SOURCE];
    list.extend(EntityKind::ALL.iter().map(|k| payload_schema_source(*k)));
    let mut parsed = Schema::parse_list(list).map_err(|e| format!("envelope.avsc: {e}"))?;
    if parsed.is_empty() {
        return Err("envelope.avsc: parse_list returned nothing".into());
    }
    let envelope = parsed.remove(0);
    let envelope_fingerprint = fingerprint(&envelope);
    Ok(Schemas { payloads, by_fingerprint, envelope, envelope_schemata: parsed, envelope_fingerprint })
}

/// The bundled schemas, parsed on first use.
pub fn schemas() -> Result<&'static Schemas, CodecError> {
    static SCHEMAS: OnceLock<Result<Schemas, String>> = OnceLock::new();
    SCHEMAS.get_or_init(load).as_ref().map_err(|e| CodecError::InvalidSchema(e.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_reduces_logical_types_to_primitives() {
        let s = Schema::parse_str(
            r#"{"type":"record","name":"R","namespace":"n","doc":"x","fields":[
                {"name":"t","type":{"type":"long","logicalType":"timestamp-millis"},"default":0},
                {"name":"o","type":["null",{"type":"int","logicalType":"date"}],"default":null}]}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_form(&s),
            r#"{"name":"n.R","type":"record","fields":[{"name":"t","type":"long"},{"name":"o","type":["null","int"]}]}"#
        );
    }

    #[test]
    fn every_bundled_schema_loads() {
        let all = schemas().unwrap();
        for k in EntityKind::ALL {
            assert_eq!(all.payload(k).kind, k);
            assert_eq!(all.kind_by_fingerprint(&all.payload(k).fingerprint), Some(k));
        }
    }
}
