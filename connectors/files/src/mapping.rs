//! The column mapping as a jq program. Pure: no I/O.
//!
//! The default program builds one entity per row: `kind` from the export, `id` from `id_column`,
//! and `data` from `constants` plus each `columns` entry (payload field ← column), converting as the
//! field needs: dates (`startDate`, `endDate`, `dpaSignatureDate`, `dateDemand`) to epoch
//! milliseconds, yes/no fields to booleans, list fields (`tags`, `assets`, `processings`) split on
//! `list_separator`, references (`supplier`, `assets`, `processings`, `parent`) to entity keys
//! (`<key_system>:<kind>:<value>`, or kept when the value already is a key), `customFields.<name>`
//! into the custom-field map, other scalars to strings. Empty cells are left out. A row without an
//! id or without a `required` field is rejected (DLQ).
//!
//! Every program — default or from the config — runs behind a guard that rejects rows the reader
//! could not parse (they arrive as `{"__malformed": reason}`), so those reach the DLQ with the reason.

use serde_json::{Map, Value, json};

use crate::config::ExportConfig;

/// The default program.
pub const COLUMN_PROGRAM: &str = r#"
def nz: if . == null then null
  elif type == "string" then (sub("^\\s+"; "") | sub("\\s+$"; "") | if . == "" then null else . end)
  else . end;
def col($c): . as $r | if ($r | has($c)) then $r[$c] else (try ($r | getpath($c | split("."))) catch null) end;
def ms: if type == "number" then .
  elif test("^[0-9]{4}-[0-9]{2}-[0-9]{2}$") then (. + "T00:00:00Z" | fromdateiso8601 * 1000 | floor)
  elif test("^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$") then (sub(" "; "T") + "Z" | fromdateiso8601 * 1000 | floor)
  else (fromdateiso8601 * 1000 | floor) end;
def ref($kind): tostring | if test("^[a-z0-9][a-z0-9_-]*:[a-z]+:.") then . else "\($system):\($kind):\(.)" end;
def to_list: if type == "array" then . else (tostring | split($params.list_separator) | map(nz) | map(select(. != null))) end;
def convert($f):
  if ($params.date_fields | index($f)) != null then ms
  elif ($params.bool_fields | index($f)) != null then
    (tostring | ascii_downcase
     | if . == "true" or . == "yes" or . == "1" or . == "oui" or . == "y" then true
       elif . == "false" or . == "no" or . == "0" or . == "non" or . == "n" then false
       else error("`\(.)` is not a yes/no value for \($f)") end)
  elif ($params.list_fields | index($f)) != null then
    (to_list | if $params.reference_fields[$f] != null then map(ref($params.reference_fields[$f])) else . end)
  elif $params.reference_fields[$f] != null then ref($params.reference_fields[$f])
  elif type == "number" or type == "boolean" then tostring
  else . end;
. as $r
| ($r | col($params.id_column) | nz) as $id
| if $id == null then error("no value in the id column `\($params.id_column)`") else . end
| (reduce ($params.columns | to_entries[]) as $e ($params.constants;
     ($r | col($e.value) | nz) as $v
     | if $v == null then .
       elif ($e.key | startswith("customFields."))
       then . + {customFields: ((.customFields // {}) + {($e.key | ltrimstr("customFields.")): ($v | tostring)})}
       else . + {($e.key): ($v | convert($e.key))} end)) as $data
| ([$params.required[] | select($data[.] == null)]) as $missing
| if ($missing | length) > 0
  then error("no value for \($missing | join(", ")) (column \([$missing[] | $params.columns[.] // "?"] | map("`\(.)`") | join(", ")))")
  else {kind: $params.kind, id: ($id | tostring), data: $data} end
"#;

/// The program actually compiled: `program` (the config's, else [`COLUMN_PROGRAM`]) behind the
/// guard for unreadable rows.
pub fn effective_program(program: Option<&str>) -> String {
    format!(
        "if type == \"object\" and has(\"__malformed\") then error(.__malformed) else ({}\n) end",
        program.unwrap_or(COLUMN_PROGRAM)
    )
}

/// The default `$params` of an export.
pub fn default_params(export: &ExportConfig) -> Value {
    let required: Vec<&str> = match export.kind.as_str() {
        "actor" if export.constants.get("actorType").and_then(Value::as_str) == Some("Physical") => vec!["familyName"],
        "actor" => vec!["companyName"],
        "dsr" => vec![],
        "asset" | "contract" | "processing" | "datafield" | "task" | "dataset" => vec!["label"],
        _ => vec![],
    };
    let columns: Map<String, Value> =
        export.columns.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    json!({
        "kind": export.kind,
        "id_column": export.id_column,
        "columns": columns,
        "constants": export.constants,
        "required": required,
        "list_separator": "|",
        "list_fields": ["tags", "assets", "processings", "datasets", "dataFields"],
        "date_fields": ["startDate", "endDate", "dpaSignatureDate", "dateDemand"],
        "bool_fields": ["required", "sensitiveData", "minorConcerned", "complex"],
        "reference_fields": {"supplier": "actor", "assets": "asset", "processings": "processing", "parent": "processing"}
    })
}

pub use dastra_connect_core::source::mapping::merge;

#[cfg(test)]
mod tests {
    use super::*;
    use dastra_connect_core::source::Mapping;

    fn export(kind: &str, columns: &[(&str, &str)], constants: Value) -> ExportConfig {
        serde_json::from_value(json!({
            "name": "x", "path": "/x", "kind": kind, "id_column": "ID",
            "columns": columns.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<String, Value>>(),
            "constants": constants
        }))
        .unwrap()
    }

    fn run(e: &ExportConfig, row: Value) -> Result<Vec<Value>, String> {
        let (program, params) = e.effective_mapping();
        let m = Mapping::compile("x", &program).map_err(|e| e.to_string())?;
        m.run(&row, &params, "files").map_err(|e| e.to_string())
    }

    #[test]
    fn columns_constants_and_conversions() {
        let e = export(
            "contract",
            &[
                ("label", "Title"),
                ("supplier", "Vendor"),
                ("startDate", "Start"),
                ("tags", "Tags"),
                ("assets", "Apps"),
                ("customFields.owner", "Owner"),
                ("description", "details.summary"),
            ],
            json!({"tags": []}),
        );
        let row = json!({"ID": " C-1 ", "Title": "MSA", "Vendor": "V001", "Start": "2025-01-31", "Tags": "legal| it |",
                         "Apps": "crm|coupa:asset:77", "Owner": "", "details": {"summary": "Master agreement"}});
        let out = run(&e, row).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["id"], "C-1");
        let d = &out[0]["data"];
        assert_eq!(d["supplier"], "files:actor:V001");
        assert_eq!(d["startDate"], 1_738_281_600_000_i64);
        assert_eq!(d["tags"], json!(["legal", "it"]));
        assert_eq!(d["assets"], json!(["files:asset:crm", "coupa:asset:77"]));
        assert_eq!(d["description"], "Master agreement");
        assert!(d.get("customFields").is_none(), "empty cells are left out");
        let mut owned = json!({"ID": "C-2", "Title": "NDA", "Owner": "legal"});
        let out = run(&e, owned.take()).unwrap();
        assert_eq!(out[0]["data"]["customFields"], json!({"owner": "legal"}));
    }

    #[test]
    fn rejections_and_the_malformed_guard() {
        let e = export("actor", &[("companyName", "Name"), ("zipCode", "Zip")], json!({"actorType": "Morale"}));
        let out = run(&e, json!({"ID": 7, "Name": "Acme", "Zip": 75001})).unwrap();
        assert_eq!(out[0]["id"], "7");
        assert_eq!(out[0]["data"]["zipCode"], "75001", "numbers become strings");
        let err = run(&e, json!({"ID": "8", "Name": " "})).unwrap_err();
        assert!(err.contains("no value for companyName (column `Name`)"), "{err}");
        let err = run(&e, json!({"Name": "x"})).unwrap_err();
        assert!(err.contains("no value in the id column `ID`"), "{err}");
        let err = run(&e, json!({"__malformed": "line 4: 2 fields where the header has 3"})).unwrap_err();
        assert!(err.contains("line 4: 2 fields"), "{err}");
        // A replaced program (with its own defs) keeps the guard.
        let mut custom = e.clone();
        custom.mapping =
            Some("def up: ascii_upcase; {kind: \"actor\", id: .ID, data: {companyName: (.Name | up)}}".into());
        assert_eq!(run(&custom, json!({"ID": "9", "Name": "acme"})).unwrap()[0]["data"]["companyName"], "ACME");
        assert!(run(&custom, json!({"__malformed": "bad"})).is_err());
    }
}
