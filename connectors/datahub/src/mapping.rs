//! The default mapping (a jq program) from the merged DataHub entity ([`crate::mcl`]) to payloads,
//! and its default `$params`. The config can replace the program (`mapping:`) or override
//! parameters (`params:`, deep-merged over these defaults; `null` removes a default entry).
//!
//! Keys are DataHub URNs, its stable identifiers: a field → `datafield:urn:li:schemaField:(<dataset
//! urn>,<fieldPath>)` (DataHub's own schema-field URN), a dataset → `dataset:<dataset urn>`, a data
//! platform → `asset:urn:li:dataPlatform:<name>`.
//!
//! Classification: a field becomes a DataField only when one of its tags or glossary terms is a key
//! of `params.tag_map`, either as the full URN (`urn:li:tag:PII`,
//! `urn:li:glossaryTerm:Classification.Sensitive`) or as the name after the URN prefix (`PII`,
//! `Classification.Sensitive`); the first mapped one with a `personalDataCategory` other than
//! `Other` gives the category (else `Other`), and the field is `sensitiveData` when any mapped one says so. A dataset becomes a
//! Dastra dataset grouping its DataFields when it has at least one (or always, with
//! `params.empty_datasets`).

use serde_json::{Value, json};

/// The default tag/term → classification mapping. DataHub ships no PII classification of its own;
/// these are the tag names commonly used (and DataHub's documentation examples use `pii`), with no
/// category (`Other`) since a tag alone does not say which.
pub fn default_tag_map() -> Value {
    json!({
        "PII": {"personalDataCategory": "Other", "sensitiveData": false},
        "pii": {"personalDataCategory": "Other", "sensitiveData": false},
        "Sensitive": {"personalDataCategory": "Other", "sensitiveData": true},
        "SensitivePII": {"personalDataCategory": "Other", "sensitiveData": true}
    })
}

/// Default `$params`.
pub fn default_params() -> Value {
    json!({
        "tag_map": default_tag_map(),
        "empty_datasets": false,
        "data_set_source": null,
        "asset_type": "Software",
        // The branches of DataHub's SchemaFieldDataType union → Dastra GenericDataType.
        "data_types": {
            "StringType": "String", "EnumType": "String", "NumberType": "Number", "BooleanType": null,
            "DateType": "Date", "TimeType": "Date", "BytesType": "Document", "FixedType": "Document",
            "RecordType": "Object", "MapType": "Object", "ArrayType": "Matrix", "UnionType": null, "NullType": null
        }
    })
}

/// The merged entity → DataFields and dataset (datasets), or Asset (data platforms).
pub const PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def mapped: [((.tags // []) + (.terms // []))[] | . as $u
  | ($params.tag_map[$u] // $params.tag_map[$u | sub("^urn:li:(tag|glossaryTerm):"; "")]) | select(. != null)];
def field_urn($d): "urn:li:schemaField:(\($d.urn),\(.fieldPath))";
if .entityType == "dataPlatform" then
  {kind: "asset", id: .urn, data: {
    label: ((.info.displayName | nz) // (.info.name | nz) // .name),
    type: $params.asset_type,
    description: "Data platform \(.name) in DataHub\(if .info.type then " (\(.info.type))" else "" end)",
    logoUrl: (.info.logoUrl | nz),
    tags: ($params.tags // [])
  }}
else
  . as $d
  | [($d.fields // [])[] | . as $f | ($f | mapped) as $m | select($m | length > 0) | {f: $f, m: $m}] as $pii
  | ($pii[] | {kind: "datafield", id: (.f | field_urn($d)), data: {
      label: ((.f.name | nz) // .f.fieldPath),
      definition: (.f.description | nz),
      technicalDefinition: "\($d.name).\(.f.name)",
      personalDataCategory: ([.m[] | .personalDataCategory | select(. != null)] | (map(select(. != "Other")) + .) | .[0]),
      sensitiveData: ([.m[] | select(.sensitiveData == true)] | length > 0),
      dataType: (if .f.type then $params.data_types[.f.type] else null end),
      required: (if .f.nullable == false then true else null end)
    }}),
    (if ($pii | length) > 0 or $params.empty_datasets then {kind: "dataset", id: $d.urn, data: {
      label: "\($d.platform).\($d.name)\(if $d.env != "PROD" then " (\($d.env))" else "" end)",
      description: $d.description,
      dataSetSource: $params.data_set_source,
      sourceDescription: "DataHub \($d.platform) dataset \($d.name) (\($d.env))",
      dataFields: [$pii[] | "\($system):datafield:\(.f | field_urn($d))"],
      tags: ($params.tags // [])
    }} else empty end)
end
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use dastra_connect_core::source::Mapping;
    use dastra_connect_core::source::mapping::merge;

    fn run(row: Value, over: Option<Value>) -> Vec<Value> {
        let m = Mapping::compile("metadata", PROGRAM).unwrap();
        let mut p = default_params();
        if let Some(o) = over {
            merge(&mut p, &o);
        }
        m.run(&row, &p, "datahub").unwrap()
    }

    fn dataset() -> Value {
        json!({"urn": "urn:li:dataset:(urn:li:dataPlatform:postgres,crm.public.customers,PROD)",
            "entityType": "dataset", "platform": "postgres", "name": "crm.public.customers", "env": "PROD",
            "description": "Customers", "fields": [
                {"fieldPath": "id", "name": "id", "type": "NumberType", "nullable": false, "tags": [], "terms": []},
                {"fieldPath": "email", "name": "email", "type": "StringType", "nullable": true,
                 "description": "Contact e-mail", "tags": ["urn:li:tag:PII"], "terms": []},
                {"fieldPath": "health", "name": "health", "type": "StringType", "tags": ["urn:li:tag:PII"],
                 "terms": ["urn:li:glossaryTerm:Classification.Health"]}]})
    }

    #[test]
    fn tagged_fields_become_datafields_in_their_dataset() {
        let out = run(
            dataset(),
            Some(json!({"tag_map": {"Classification.Health":
            {"personalDataCategory": "HealthData", "sensitiveData": true}}})),
        );
        assert_eq!(out.len(), 3, "{out:#?}");
        let email = &out[0];
        assert_eq!(
            email["id"],
            "urn:li:schemaField:(urn:li:dataset:(urn:li:dataPlatform:postgres,crm.public.customers,PROD),email)"
        );
        assert_eq!(email["data"]["personalDataCategory"], "Other");
        assert_eq!(email["data"]["sensitiveData"], false);
        assert_eq!(email["data"]["dataType"], "String");
        assert_eq!(email["data"]["definition"], "Contact e-mail");
        // The term names a category, the tag only `Other`: the precise one wins.
        assert_eq!(out[1]["data"]["personalDataCategory"], "HealthData");
        assert_eq!(out[1]["data"]["sensitiveData"], true);
        assert_eq!(out[2]["kind"], "dataset");
        assert_eq!(out[2]["data"]["label"], "postgres.crm.public.customers");
        assert_eq!(out[2]["data"]["dataFields"].as_array().unwrap().len(), 2);
        // No mapped tag: nothing (unless empty datasets are asked for).
        let none = run(dataset(), Some(json!({"tag_map": {"PII": null, "pii": null}})));
        assert!(none.is_empty());
        let empty = run(dataset(), Some(json!({"tag_map": {"PII": null}, "empty_datasets": true})));
        assert_eq!(empty.len(), 1);
    }

    #[test]
    fn platforms_become_assets() {
        let out = run(
            json!({"urn": "urn:li:dataPlatform:postgres", "entityType": "dataPlatform", "name": "postgres",
                   "info": {"name": "postgres", "displayName": "PostgreSQL", "type": "RELATIONAL_DB"}}),
            None,
        );
        assert_eq!(out[0]["kind"], "asset");
        assert_eq!(out[0]["data"]["label"], "PostgreSQL");
        assert_eq!(out[0]["data"]["type"], "Software");
    }
}
