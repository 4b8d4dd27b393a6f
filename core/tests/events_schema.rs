//! Proves that the Rust payload types, the Avro schema files and Dastra's OpenAPI document agree:
//! payload field names equal the `.avsc` field names (nested records too), every Avro enum has the
//! symbols of the Rust enum of the same name, those equal Dastra's enum values in
//! `emulator/openapi/openapi-2022.json`, and the envelope's data union lists the payloads in
//! `EntityKind::ALL` order (the structured codec relies on it).

use std::collections::{BTreeMap, BTreeSet};

use dastra_connect_core::codec::schemas::{ENVELOPE_SCHEMA_SOURCE, payload_schema_file, payload_schema_source};
use dastra_connect_core::event::enums::for_each_enum;
use dastra_connect_core::event::samples::sample_payloads;
use dastra_connect_core::event::{EntityKind, Payload};
use serde_json::Value;

fn avsc(kind: EntityKind) -> Value {
    serde_json::from_str(payload_schema_source(kind)).expect("schema is JSON")
}

/// Collects every named enum of a schema (name → symbols) and every record (name → field names).
fn walk(v: &Value, enums: &mut BTreeMap<String, Vec<String>>, records: &mut BTreeMap<String, BTreeSet<String>>) {
    match v {
        Value::Object(o) => {
            match o.get("type").and_then(Value::as_str) {
                Some("enum") => {
                    let syms = o["symbols"]
                        .as_array()
                        .expect("symbols")
                        .iter()
                        .map(|s| s.as_str().expect("s").to_owned())
                        .collect();
                    enums.insert(o["name"].as_str().expect("name").to_owned(), syms);
                }
                Some("record") => {
                    let fields = o["fields"].as_array().expect("fields");
                    records.insert(
                        o["name"].as_str().expect("name").to_owned(),
                        fields.iter().map(|f| f["name"].as_str().expect("n").to_owned()).collect(),
                    );
                }
                _ => {}
            }
            for child in o.values() {
                walk(child, enums, records);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| walk(c, enums, records)),
        _ => {}
    }
}

fn json_keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

#[test]
fn payload_fields_match_the_schema_files() {
    for p in sample_payloads() {
        let kind = p.kind();
        let (mut enums, mut records) = (BTreeMap::new(), BTreeMap::new());
        let schema = avsc(kind);
        walk(&schema, &mut enums, &mut records);
        let top = schema["name"].as_str().expect("name");
        assert_eq!(schema["namespace"].as_str(), Some(format!("io.dastra.connect.{}.v1", kind.as_str()).as_str()));
        let json = p.to_json_value().expect("json");
        assert_eq!(json_keys(&json), records[top], "{}", payload_schema_file(kind));
        // Nested records: compare with the first element of each array of objects.
        for (field, value) in json.as_object().expect("o") {
            if let Some(Value::Object(first)) = value.as_array().and_then(|a| a.first()) {
                let nested = records
                    .values()
                    .find(|fields| fields.iter().all(|f| first.contains_key(f)) && fields.len() == first.len())
                    .unwrap_or_else(|| panic!("{kind}.{field}: no record with fields {:?}", first.keys()));
                assert!(!nested.is_empty());
            }
        }
        // Every field of a payload is optional in Avro terms (has a default), so a delete needs
        // nothing but the key and old readers survive new fields.
        for f in schema["fields"].as_array().expect("f") {
            assert!(f.get("default").is_some(), "{kind}.{} has no default", f["name"]);
        }
        // The sample sets every optional field (so round-trip tests cover every field).
        for (field, value) in json.as_object().expect("o") {
            let unset = value.is_null() || value.as_array().is_some_and(|a| a.is_empty());
            let allowed_unset = field == "relationShipType"; // not valid on an asset-actor link
            assert!(!unset || allowed_unset, "sample {kind} leaves {field} unset");
        }
    }
}

#[test]
fn avro_enums_equal_rust_enums_equal_dastra_openapi() {
    let mut rust: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for_each_enum(|name, symbols| {
        rust.insert(name.to_owned(), symbols.into_iter().map(str::to_owned).collect());
    });
    let mut used = BTreeSet::new();
    for kind in EntityKind::ALL {
        let (mut enums, mut records) = (BTreeMap::new(), BTreeMap::new());
        walk(&avsc(kind), &mut enums, &mut records);
        for (name, symbols) in enums {
            let r = rust.get(&name).unwrap_or_else(|| panic!("Avro enum {name} ({kind}) has no Rust enum"));
            assert_eq!(&symbols, r, "{name} in {}", payload_schema_file(kind));
            for s in &symbols {
                let valid = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                assert!(valid, "{s} is not a valid Avro name");
            }
            used.insert(name);
        }
    }
    assert_eq!(used, rust.keys().cloned().collect::<BTreeSet<_>>(), "Rust enums unused by any schema");

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../emulator/openapi/openapi-2022.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("OpenAPI document")).expect("json");
    let schemas = &doc["components"]["schemas"];
    for (name, symbols) in &rust {
        // SourcingType stands for four Dastra enums with the same values.
        let dastra_names: Vec<&str> = if name == "SourcingType" {
            vec!["HostingType", "DevelopmentType", "MaintenanceType", "SupportType"]
        } else {
            vec![name.as_str()]
        };
        for dn in dastra_names {
            let values: Vec<String> = schemas[dn]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("OpenAPI has no enum {dn}"))
                .iter()
                .map(|v| v.as_str().expect("s").to_owned())
                .collect();
            assert_eq!(symbols, &values, "{name} vs Dastra {dn}");
        }
    }
}

#[test]
fn envelope_union_follows_entity_kind_order() {
    let env: Value = serde_json::from_str(ENVELOPE_SCHEMA_SOURCE).expect("json");
    let data = env["fields"].as_array().expect("f").iter().find(|f| f["name"] == "data").expect("data");
    let branches: Vec<&str> = data["type"].as_array().expect("union").iter().map(|b| b.as_str().expect("s")).collect();
    let expected: Vec<String> = EntityKind::ALL
        .iter()
        .map(|k| {
            let s = avsc(*k);
            format!("{}.{}", s["namespace"].as_str().expect("ns"), s["name"].as_str().expect("n"))
        })
        .collect();
    assert_eq!(branches, expected);
}

#[test]
fn dastra_field_names_are_used() {
    // Spot-check names that differ from Rust naming: they must be Dastra's spelling on the wire.
    let json = |p: &Payload| p.to_json_value().expect("json");
    let all = sample_payloads();
    assert!(json(&all[0]).get("type").is_some());
    assert!(json(&all[3]).get("stakeHolders").is_some());
    assert!(json(&all[3])["personCategories"][0].get("type").is_some());
    assert!(json(&all[5]).get("relationShipType").is_some());
    assert!(json(&all[4]).get("sensitiveDataFieldLegalJustificationDescription").is_some());
}
