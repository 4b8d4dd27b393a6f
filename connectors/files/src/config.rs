//! [`FilesConfig`]: which export files to read, how to read them and how their columns map.
//! Validated without I/O by [`FilesConfig::validate`] (whether the paths exist is checked when the
//! source polls: a directory may be mounted later).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use dastra_connect_core::config::ConfigError;
use dastra_connect_core::event::EntityKind;
use dastra_connect_core::source::SourceSettings;
use dastra_connect_core::source::streams::{check_common, check_mapping};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mapping::{default_params, effective_program, merge};

/// The files source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The exports to read; each is a stream of the engine.
    pub exports: Vec<ExportConfig>,
    /// Polling and sweeps. Default here: poll every `10s`, sweep every `15m` (a sweep re-reads the
    /// files, which is cheap, and is what turns removed rows into deletes).
    #[serde(default = "default_sync")]
    pub sync: SourceSettings,
    /// Files modified less than this long ago are left for the next poll (they may still be being
    /// written). Default `2s`.
    #[serde(default = "default_min_age", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub min_age: Duration,
    /// System segment of entity keys (`<key_system>:actor:<id>`). Default `files`.
    #[serde(default = "default_key_system")]
    pub key_system: String,
}

/// The file formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// From the extension: `.csv`/`.txt` CSV, `.json` JSON, `.ndjson`/`.jsonl` NDJSON.
    #[default]
    Auto,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects (at the top level or at `json_pointer`).
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// Which of the matching files hold the current data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Every matching file; when two files hold the same id, the most recently modified wins.
    #[default]
    All,
    /// Only the most recently modified file: each export is a full snapshot replacing the previous.
    Latest,
}

/// One export: where its files are, how to read them, what they become.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Stream name (checkpoint key, metric label, DLQ header): `a-z`, `0-9`, `_`, `-`.
    pub name: String,
    /// A file, or a directory whose files matching `pattern` are read.
    pub path: PathBuf,
    /// File-name pattern in a directory (`*` and `?` wildcards), e.g. `vendors-*.csv`. Default `*`.
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// File format. Default `auto` (by extension).
    #[serde(default)]
    pub format: FileFormat,
    /// CSV delimiter (`;`, `,`, a tab…). Default: detected from the header line.
    #[serde(default)]
    pub delimiter: Option<char>,
    /// JSON pointer to the array of records in a JSON file, e.g. `/data`. Default: the top level.
    #[serde(default)]
    pub json_pointer: String,
    /// Which matching files hold the current data. Default `all`.
    #[serde(default)]
    pub selection: Selection,
    /// Entity kind the rows become: `asset`, `actor`, `contract`, `processing`, `datafield`, `dataset`…
    pub kind: String,
    /// Column holding the record's id (the entity key is `<key_system>:<kind>:<id>`).
    pub id_column: String,
    /// Column holding the row's last modification time (RFC 3339 or `YYYY-MM-DD[ HH:MM:SS]`).
    /// Default: none — a row's time is that of the file where its current content first appeared.
    #[serde(default)]
    pub updated_column: Option<String>,
    /// Dastra payload field → column (dotted paths reach into JSON objects; `customFields.<name>`
    /// fills a custom field), e.g. `{companyName: Name, countryCode: Country}`.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Fixed payload fields, e.g. `{actorType: Morale, vendorType: B2B}`.
    #[serde(default)]
    pub constants: Map<String, Value>,
    /// A jq program replacing the column mapping (see README).
    #[serde(default)]
    pub mapping: Option<String>,
    /// Extra `$params` (deep-merged over the defaults: `list_separator`, `date_fields`, …).
    #[serde(default)]
    pub params: Map<String, Value>,
}

fn default_sync() -> SourceSettings {
    SourceSettings {
        poll_interval: Duration::from_secs(10),
        sweep_interval: Some(Duration::from_secs(900)),
        ..SourceSettings::default()
    }
}
fn default_min_age() -> Duration {
    Duration::from_secs(2)
}
fn default_key_system() -> String {
    "files".into()
}
fn default_pattern() -> String {
    "*".into()
}

impl ExportConfig {
    /// The entity kind (validated).
    pub fn entity_kind(&self) -> Option<EntityKind> {
        self.kind.parse().ok()
    }

    /// The mapping program and `$params` in effect.
    pub fn effective_mapping(&self) -> (String, Value) {
        let mut params = default_params(self);
        merge(&mut params, &Value::Object(self.params.clone()));
        (effective_program(self.mapping.as_deref()), params)
    }
}

impl FilesConfig {
    /// Checks everything that needs no I/O; `at` is this block's key path (e.g. `connectors[0]`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if self.exports.is_empty() {
            return Err(ConfigError::new(format!("{at}.exports"), "at least one export is needed"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, e) in self.exports.iter().enumerate() {
            let here = format!("{at}.exports[{i}]");
            let name_ok = !e.name.is_empty()
                && e.name.len() <= 64
                && e.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !name_ok {
                return Err(ConfigError::new(format!("{here}.name"), "must be 1-64 characters of a-z, 0-9, _ or -"));
            }
            if !seen.insert(e.name.clone()) {
                return Err(ConfigError::new(format!("{here}.name"), format!("export `{}` is listed twice", e.name)));
            }
            if e.path.as_os_str().is_empty() {
                return Err(ConfigError::new(format!("{here}.path"), "must not be empty"));
            }
            if e.pattern.is_empty() || e.pattern.contains('/') {
                return Err(ConfigError::new(format!("{here}.pattern"), "a file-name pattern (no `/`)"));
            }
            match e.entity_kind() {
                None => {
                    return Err(ConfigError::new(
                        format!("{here}.kind"),
                        "unknown entity (asset, actor, contract, processing, datafield, relationship, dsr, task, dataset)",
                    ));
                }
                Some(EntityKind::Relationship) if e.mapping.is_none() => {
                    return Err(ConfigError::new(
                        format!("{here}.kind"),
                        "relationships need a jq `mapping` (origin and target keys)",
                    ));
                }
                Some(_) => {}
            }
            if e.id_column.trim().is_empty() {
                return Err(ConfigError::new(format!("{here}.id_column"), "must name a column"));
            }
            if e.mapping.is_none() && e.columns.is_empty() && e.constants.is_empty() {
                return Err(ConfigError::new(
                    format!("{here}.columns"),
                    "map at least one column (or give a jq `mapping`)",
                ));
            }
            if let Some(d) = e.delimiter
                && (d == '"' || d == '\n' || d == '\r')
            {
                return Err(ConfigError::new(format!("{here}.delimiter"), "cannot be a quote or a line break"));
            }
            if !e.json_pointer.is_empty() && !e.json_pointer.starts_with('/') {
                return Err(ConfigError::new(format!("{here}.json_pointer"), "a JSON pointer starts with `/`"));
            }
            let (program, _) = e.effective_mapping();
            check_mapping(&here, &e.name, &program)?;
        }
        check_common(at, &self.key_system, &self.sync)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<FilesConfig, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    const BASE: &str =
        "exports:\n  - {name: vendors, path: /data/vendors, kind: actor, id_column: ID, columns: {companyName: Name}";

    #[test]
    fn defaults_validate_and_unknown_keys_are_rejected() {
        let c = yaml(&format!("{BASE}}}\n")).unwrap();
        c.validate("connectors[0]").unwrap();
        assert_eq!(c.sync.sweep_interval, Some(Duration::from_secs(900)));
        assert_eq!(c.exports[0].selection, Selection::All);
        assert!(yaml(&format!("{BASE}, colour: red}}\n")).unwrap_err().contains("unknown field"));
        assert!(yaml(&format!("{BASE}}}\ncolour: red\n")).unwrap_err().contains("unknown field"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (", kind: vendor", "connectors[0].exports[0].kind"),
            (", pattern: 'a/*.csv'", "connectors[0].exports[0].pattern"),
            (", mapping: '{kind: '", "connectors[0].exports[0].mapping"),
            (", json_pointer: data", "connectors[0].exports[0].json_pointer"),
            (", delimiter: '\"'", "connectors[0].exports[0].delimiter"),
        ];
        for (extra, path) in cases {
            // `kind` given twice is a YAML error; replace it instead.
            let text = if extra.starts_with(", kind:") {
                format!("{}{extra}}}\n", BASE.replace(", kind: actor", ""))
            } else {
                format!("{BASE}{extra}}}\n")
            };
            let c = yaml(&text).unwrap();
            let e = c.validate("connectors[0]").unwrap_err();
            assert_eq!(e.path, path, "{extra}: {e}");
        }
        let c = yaml("exports:\n  - {name: a, path: /x, kind: actor, id_column: ID}\n  - {name: a, path: /y, kind: actor, id_column: ID, columns: {label: L}}\n").unwrap();
        assert_eq!(c.validate("c").unwrap_err().path, "c.exports[0].columns");
    }

    #[test]
    fn the_json_schema_generates_and_names_the_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(FilesConfig)).unwrap();
        assert!(schema["properties"]["exports"].is_object(), "{schema}");
        assert_eq!(schema["additionalProperties"], serde_json::Value::Bool(false), "unknown keys are refused");
    }
}
