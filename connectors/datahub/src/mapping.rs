//! The default mapping (a jq program) from the merged DataHub entity ([`crate::mcl`]) to payloads,
//! and its default `$params`. The config can replace the program (`mapping:`) or override
//! parameters (`params:`, deep-merged over these defaults; `null` removes a default entry).
//!
//! Keys are DataHub URNs, its stable identifiers: a field → `datafield:urn:li:schemaField:(<dataset
//! urn>,<fieldPath>)` (DataHub's own schema-field URN), a dataset → `dataset:<dataset urn>` and
//! `asset:<dataset urn>`, a data platform → `asset:urn:li:dataPlatform:<name>`, a data job →
//! `processing:<job urn>`.
//!
//! Lineage: a data job becomes a DataProcessing whose `assets` are the Assets of the datasets it
//! reads and writes (`dataJobInputOutput`; with `params.dataset_assets: false`, their platforms')
//! and whose `datasets` are those of them this source has read with a classified field.
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
        // Each dataset is also an Asset (type `Data`); `false`: only platforms are, and a
        // processing links to the platforms of the datasets it reads and writes.
        "dataset_assets": true,
        "dataset_asset_type": "Data",
        "processing_type": "Default",
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
def classified: [(.fields // [])[] | mapped] | length > 0;
def asset_of: if $params.dataset_assets then .urn else "urn:li:dataPlatform:\(.platform)" end;
if .entityType == "dataPlatform" then
  {kind: "asset", id: .urn, data: {
    label: ((.info.displayName | nz) // (.info.name | nz) // .name),
    type: $params.asset_type,
    description: "Data platform \(.name) in DataHub\(if .info.type then " (\(.info.type))" else "" end)",
    logoUrl: (.info.logoUrl | nz),
    tags: ($params.tags // [])
  }}
elif .entityType == "dataJob" then
  . as $j
  | (($j.inputs // []) + ($j.outputs // [])) as $sets
  | {kind: "processing", id: $j.urn, data: {
      label: (($j.name | nz) // $j.jobId),
      description: (($j.description | nz) // "DataHub \($j.orchestrator) job \($j.jobId) of flow \($j.flowId)"),
      processingType: $params.processing_type,
      assets: ([$sets[] | select(.platform != "") | "\($system):asset:\(asset_of)"] | unique),
      datasets: ([$sets[] | select(.known and (classified or $params.empty_datasets)) | "\($system):dataset:\(.urn)"] | unique),
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
    }} else empty end),
    (if $params.dataset_assets then {kind: "asset", id: $d.urn, data: {
      label: "\($d.platform).\($d.name)\(if $d.env != "PROD" then " (\($d.env))" else "" end)",
      type: $params.dataset_asset_type,
      description: (($d.description | nz) // "DataHub \($d.platform) dataset \($d.name) (\($d.env))"),
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
        assert_eq!(out.len(), 4, "{out:#?}");
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
        // The dataset is also an Asset of type Data.
        assert_eq!((out[3]["kind"].as_str(), out[3]["id"].as_str()), (Some("asset"), out[2]["id"].as_str()));
        assert_eq!(
            (out[3]["data"]["type"].as_str(), out[3]["data"]["label"].as_str()),
            (Some("Data"), Some("postgres.crm.public.customers"))
        );
        // No mapped tag: only the Asset (and a dataset when empty datasets are asked for).
        let none = run(dataset(), Some(json!({"tag_map": {"PII": null, "pii": null}})));
        assert_eq!(none.iter().map(|o| o["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["asset"]);
        let empty = run(dataset(), Some(json!({"tag_map": {"PII": null}, "empty_datasets": true})));
        assert_eq!(empty.len(), 2);
        let no_assets = run(dataset(), Some(json!({"tag_map": {"PII": null}, "dataset_assets": false})));
        assert!(no_assets.is_empty());
    }

    #[test]
    fn a_job_becomes_a_processing_linked_to_what_it_reads_and_writes() {
        let mut customers = dataset();
        customers["known"] = json!(true);
        let job = json!({"urn": "urn:li:dataJob:(urn:li:dataFlow:(airflow,crm_nightly,prod),copy)",
            "entityType": "dataJob", "orchestrator": "airflow", "flowId": "crm_nightly", "jobId": "copy",
            "name": "Copy customers", "description": null,
            "inputs": [customers],
            "outputs": [{"urn": "urn:li:dataset:(urn:li:dataPlatform:snowflake,dwh.customers,PROD)",
                         "platform": "snowflake", "name": "dwh.customers", "env": "PROD", "known": false, "fields": []}]});
        let out = run(job.clone(), None);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0]["kind"].as_str(), out[0]["id"].as_str()), (Some("processing"), job["urn"].as_str()));
        let d = &out[0]["data"];
        assert_eq!(d["label"], "Copy customers");
        assert_eq!(d["description"], "DataHub airflow job copy of flow crm_nightly");
        assert_eq!(d["processingType"], "Default");
        assert_eq!(
            d["assets"],
            json!([
                "datahub:asset:urn:li:dataset:(urn:li:dataPlatform:postgres,crm.public.customers,PROD)",
                "datahub:asset:urn:li:dataset:(urn:li:dataPlatform:snowflake,dwh.customers,PROD)"
            ])
        );
        assert_eq!(
            d["datasets"],
            json!(["datahub:dataset:urn:li:dataset:(urn:li:dataPlatform:postgres,crm.public.customers,PROD)"]),
            "only the classified dataset this source knows"
        );
        // Platforms as the Assets instead.
        let out = run(job, Some(json!({"dataset_assets": false})));
        assert_eq!(
            out[0]["data"]["assets"],
            json!(["datahub:asset:urn:li:dataPlatform:postgres", "datahub:asset:urn:li:dataPlatform:snowflake"])
        );
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
