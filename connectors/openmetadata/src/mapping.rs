//! The default mappings (jq programs) from OpenMetadata entities to payloads and their default
//! parameters. Pure: no I/O. The config can replace an entity's program (`mapping:`) or override
//! parameters (`params:`, deep-merged over these defaults).
//!
//! Keys are fully qualified names (`service.database.schema.table[.column]`), OpenMetadata's
//! stable human-readable identifiers: a column → `datafield:<column FQN>`, a table →
//! `dataset:<table FQN>`, a database service → `asset:<service name>`, a pipeline →
//! `processing:<pipeline FQN>`.
//!
//! Classification: a column becomes a DataField only when one of its tags (`columns[].tags[].tagFQN`)
//! is a key of `params.tag_map`; the first mapped tag with a `personalDataCategory` gives the
//! category, and the field is `sensitiveData` when any mapped tag says so. A table becomes a dataset
//! grouping its DataFields when it has at least one (or always, with `params.empty_datasets`).
//! A pipeline's lineage tables (read and written) give its Assets (their database services) and its
//! datasets (those with a classified column: the pipeline's `tag_map` is the tables' one, see
//! `source.rs`).

use serde_json::{Value, json};

use crate::config::OmEntity;

/// The default program of an entity.
pub fn default_program(entity: OmEntity) -> &'static str {
    match entity {
        OmEntity::Tables => TABLE_PROGRAM,
        OmEntity::DatabaseServices => SERVICE_PROGRAM,
        OmEntity::Pipelines => PIPELINE_PROGRAM,
    }
}

/// The default tag → classification mapping (OpenMetadata's built-in `PII` and `PersonalData`
/// classifications; neither says which category of data, hence `Other`).
pub fn default_tag_map() -> Value {
    json!({
        "PII.Sensitive": {"personalDataCategory": "Other", "sensitiveData": true},
        "PII.NonSensitive": {"personalDataCategory": "Other", "sensitiveData": false},
        "PersonalData.Personal": {"personalDataCategory": "Other", "sensitiveData": false},
        "PersonalData.SpecialCategory": {"personalDataCategory": "Other", "sensitiveData": true}
    })
}

/// Default `$params` of an entity.
pub fn default_params(entity: OmEntity) -> Value {
    match entity {
        OmEntity::Tables => json!({
            "tag_map": default_tag_map(),
            "empty_datasets": false,
            "data_set_source": null,
            "data_types": {
                "VARCHAR": "String", "CHAR": "String", "TEXT": "String", "STRING": "String", "MEDIUMTEXT": "String",
                "INT": "Number", "BIGINT": "Number", "SMALLINT": "Number", "TINYINT": "Number", "NUMBER": "Number",
                "NUMERIC": "Number", "DECIMAL": "Number", "DOUBLE": "Number", "FLOAT": "Number",
                "DATE": "Date", "DATETIME": "Date", "TIMESTAMP": "Date", "TIMESTAMPZ": "Date", "TIME": "Date",
                "UUID": "UniqueIdentifier", "JSON": "Object", "STRUCT": "Object", "MAP": "Object",
                "ARRAY": "Matrix", "BLOB": "Document", "BINARY": "Document", "GEOGRAPHY": "Geolocation",
                "GEOMETRY": "Geolocation", "POINT": "Geolocation"
            }
        }),
        OmEntity::DatabaseServices => json!({"asset_type": "Software"}),
        OmEntity::Pipelines => json!({"tag_map": default_tag_map(), "processing_type": "Default"}),
    }
}

/// `/api/v1/tables` → DataFields (classified columns) and the table's dataset.
pub const TABLE_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def mapped: [(.tags // [])[] | $params.tag_map[.tagFQN] | select(. != null)];
. as $t
| ($t.fullyQualifiedName | nz // error("table \($t.id) has no fullyQualifiedName")) as $tfqn
| [($t.columns // [])[] | . as $c | ($c | mapped) as $m | select($m | length > 0)
   | {fqn: ($c.fullyQualifiedName // "\($tfqn).\($c.name)"), col: $c, m: $m}] as $pii
| ($pii[] | {kind: "datafield", id: .fqn, data: {
    label: ((.col.displayName | nz) // (.col.name | nz) // error("a classified column of \($tfqn) has no name")),
    definition: (.col.description | nz),
    technicalDefinition: .fqn,
    personalDataCategory: ([.m[] | .personalDataCategory | select(. != null)] | .[0]),
    sensitiveData: ([.m[] | select(.sensitiveData == true)] | length > 0),
    dataType: $params.data_types[(.col.dataType // "") | ascii_upcase],
    required: (if .col.constraint == "NOT_NULL" or .col.constraint == "PRIMARY_KEY" then true else null end)
  }}),
  (if ($pii | length) > 0 or $params.empty_datasets then {kind: "dataset", id: $tfqn, data: {
    label: $tfqn,
    description: ($t.description | nz),
    dataSetSource: $params.data_set_source,
    sourceDescription: (if $t.service then "OpenMetadata \($t.serviceType // "database") service \($t.service.name)" else null end),
    dataFields: [$pii[] | "\($system):datafield:\(.fqn)"],
    tags: [($t.tags // [])[] | .tagFQN]
  }} else empty end)
"#;

/// `/api/v1/services/databaseServices` → Asset.
pub const SERVICE_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
{kind: "asset", id: (.fullyQualifiedName // .name | nz // error("database service \(.id) has no name")), data: {
  label: ((.displayName | nz) // .name),
  type: $params.asset_type,
  description: ((.description | nz) // "\(.serviceType // "database") service in OpenMetadata"),
  tags: [(.tags // [])[] | .tagFQN]
}}
"#;

/// `/api/v1/pipelines` (+ `lineage`, added by the source) → DataProcessing.
pub const PIPELINE_PROGRAM: &str = r#"
def nz: if . == null or . == "" then null else . end;
def classified: [(.columns // [])[] | (.tags // [])[] | $params.tag_map[.tagFQN] | select(. != null)] | length > 0;
def service: .service.fullyQualifiedName // .service.name // (.fullyQualifiedName | split(".") | .[0]);
. as $p
| (($p.lineage.upstream // []) + ($p.lineage.downstream // [])) as $tables
| {kind: "processing", id: ($p.fullyQualifiedName | nz // error("pipeline \($p.id) has no fullyQualifiedName")), data: {
    label: ((($p.displayName | nz) // $p.name) // error("pipeline \($p.id) has no name")),
    description: ($p.description | nz),
    processingType: $params.processing_type,
    assets: ([$tables[] | "\($system):asset:\(service)"] | unique),
    datasets: ([$tables[] | select(classified) | "\($system):dataset:\(.fullyQualifiedName)"] | unique),
    tags: [($p.tags // [])[] | .tagFQN]
  }}
"#;

pub use dastra_connect_core::source::mapping::merge;

#[cfg(test)]
mod tests {
    use super::*;
    use dastra_connect_core::source::{Mapping, StreamKind};

    fn run(entity: OmEntity, rec: Value, params: Option<Value>) -> Result<Vec<Value>, String> {
        let m = Mapping::compile(entity.stream(), default_program(entity)).map_err(|e| e.to_string())?;
        let mut p = default_params(entity);
        if let Some(o) = params {
            merge(&mut p, &o);
        }
        m.run(&rec, &p, "openmetadata").map_err(|e| e.to_string())
    }

    fn table() -> Value {
        json!({"id": "7c1e", "name": "customers", "fullyQualifiedName": "crm.prod.public.customers",
            "description": "Customer master data", "serviceType": "Postgres",
            "service": {"id": "s1", "type": "databaseService", "name": "crm", "fullyQualifiedName": "crm"},
            "columns": [
                {"name": "id", "dataType": "INT", "constraint": "PRIMARY_KEY", "tags": [],
                 "fullyQualifiedName": "crm.prod.public.customers.id"},
                {"name": "email", "dataType": "VARCHAR", "description": "Work e-mail",
                 "fullyQualifiedName": "crm.prod.public.customers.email",
                 "tags": [{"tagFQN": "PII.NonSensitive", "source": "Classification", "labelType": "Automated", "state": "Suggested"}]},
                {"name": "health_notes", "dataType": "TEXT",
                 "fullyQualifiedName": "crm.prod.public.customers.health_notes",
                 "tags": [{"tagFQN": "Tier.Tier1"}, {"tagFQN": "PII.Sensitive"}]}
            ],
            "tags": [{"tagFQN": "Tier.Tier1"}]})
    }

    #[test]
    fn a_table_gives_its_classified_columns_and_a_dataset() {
        let out = run(OmEntity::Tables, table(), None).unwrap();
        assert_eq!(out.len(), 3, "two classified columns and the dataset: {out:#?}");
        assert_eq!(out[0]["kind"], "datafield");
        assert_eq!(out[0]["id"], "crm.prod.public.customers.email");
        let email = &out[0]["data"];
        assert_eq!(email["label"], "email");
        assert_eq!(email["definition"], "Work e-mail");
        assert_eq!(email["technicalDefinition"], "crm.prod.public.customers.email");
        assert_eq!(
            (email["personalDataCategory"].as_str(), email["sensitiveData"].as_bool()),
            (Some("Other"), Some(false))
        );
        assert_eq!(email["dataType"], "String");
        let notes = &out[1]["data"];
        assert_eq!(notes["sensitiveData"], true, "PII.Sensitive");
        assert_eq!(out[2]["kind"], "dataset");
        assert_eq!(out[2]["id"], "crm.prod.public.customers");
        assert_eq!(
            out[2]["data"]["dataFields"],
            json!([
                "openmetadata:datafield:crm.prod.public.customers.email",
                "openmetadata:datafield:crm.prod.public.customers.health_notes"
            ])
        );
        // A mapping override: a category for PII.NonSensitive, and a custom classification.
        let params = json!({"tag_map": {"PII.NonSensitive": {"personalDataCategory": "CivilStatus"},
                                        "Tier.Tier1": {"personalDataCategory": null}}});
        let out = run(OmEntity::Tables, table(), Some(params)).unwrap();
        assert_eq!(out[0]["data"]["personalDataCategory"], "CivilStatus");
        assert_eq!(out[1]["data"]["personalDataCategory"], "Other", "Tier1 maps no category: PII.Sensitive's");
        // A table without classified columns gives nothing, unless empty datasets are asked for.
        let mut plain = table();
        plain["columns"] = json!([{"name": "id", "dataType": "INT", "tags": []}]);
        assert!(run(OmEntity::Tables, plain.clone(), None).unwrap().is_empty());
        let out = run(OmEntity::Tables, plain, Some(json!({"empty_datasets": true}))).unwrap();
        assert_eq!((out.len(), out[0]["data"]["dataFields"].clone()), (1, json!([])));
    }

    #[test]
    fn services_and_pipelines() {
        let svc = json!({"id": "s1", "name": "crm", "fullyQualifiedName": "crm", "serviceType": "Postgres"});
        let out = run(OmEntity::DatabaseServices, svc, None).unwrap();
        assert_eq!((out[0]["kind"].as_str(), out[0]["id"].as_str()), (Some("asset"), Some("crm")));
        assert_eq!(out[0]["data"]["type"], "Software");
        assert_eq!(out[0]["data"]["description"], "Postgres service in OpenMetadata");
        let mut warehouse = table();
        warehouse["fullyQualifiedName"] = json!("dwh.analytics.public.customers");
        warehouse["service"] = json!({"name": "dwh"});
        warehouse["columns"] = json!([{"name": "id", "tags": []}]);
        let p = json!({"id": "p1", "name": "crm_to_dwh", "fullyQualifiedName": "airflow.crm_to_dwh",
            "description": "Nightly copy", "lineage": {"upstream": [table()], "downstream": [warehouse]}});
        let out = run(OmEntity::Pipelines, p, None).unwrap();
        assert_eq!(out[0]["id"], "airflow.crm_to_dwh");
        let d = &out[0]["data"];
        assert_eq!(d["assets"], json!(["openmetadata:asset:crm", "openmetadata:asset:dwh"]));
        assert_eq!(d["datasets"], json!(["openmetadata:dataset:crm.prod.public.customers"]), "only classified tables");
        let err = run(OmEntity::Pipelines, json!({"id": "p2", "name": "x"}), None).unwrap_err();
        assert!(err.contains("pipeline p2 has no fullyQualifiedName"), "{err}");
    }
}
