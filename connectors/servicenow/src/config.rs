//! [`ServiceNowConfig`]: where the instance is, how to log in, which tables to read and how they map.
//! Validated without I/O by [`ServiceNowConfig::validate`]; what needs the instance (do the fields
//! of a filter exist?) is checked when the source starts.

use dastra_connect_core::config::ConfigError;
use dastra_connect_core::source::streams::{check_common, check_http_url, check_mapping, effective_mapping};
use dastra_connect_core::source::{HttpSettings, SourceAuth, SourceSettings};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::mapping::DefaultMapping;
use crate::query;

/// The ServiceNow source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowConfig {
    /// Instance root, e.g. `https://acme.service-now.com`.
    pub instance_url: Url,
    /// How to authenticate: `basic` (integration user), `bearer`, or `oauth2` (client credentials
    /// against `<instance>/oauth_token.do`).
    pub auth: SourceAuth,
    /// Tables to read. Default: `cmdb_ci` (every CI class) and `core_company` (suppliers).
    #[serde(default = "default_tables")]
    pub tables: Vec<TableConfig>,
    /// Polling, look-back, page size and sweep schedule.
    #[serde(default)]
    pub sync: SourceSettings,
    /// Timeouts, retries and request rate towards the instance.
    #[serde(default)]
    pub http: HttpSettings,
    /// System segment of entity keys (`<key_system>:asset:<sys_id>`). Default `servicenow`; set one
    /// per instance when several instances feed one Dastra workspace.
    #[serde(default = "default_key_system")]
    pub key_system: String,
}

/// One table and how its records map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Table name (`cmdb_ci`, `cmdb_ci_server`, `core_company`, …).
    pub table: String,
    /// Encoded query AND-ed to every request, e.g. `operational_status!=6`. Checked at start: every
    /// field must exist (ServiceNow would silently ignore an unknown one and return everything).
    /// Default: none for CIs, `vendor=true^ORmanufacturer=true` for `core_company`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Extra fields to request (for a custom mapping), dot-walking allowed (`location.name`).
    #[serde(default)]
    pub fields: Vec<String>,
    /// A jq program replacing the table's default mapping (see README).
    #[serde(default)]
    pub mapping: Option<String>,
    /// Parameters of the mapping (`$params`), deep-merged over the defaults, e.g.
    /// `{class_map: {cmdb_ci_printer: Material}, owner_custom_field: owner}`.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Read deletes from `sys_audit_delete` (needs read access to it and auditing of the table);
    /// sweeps find deletes either way. Default true.
    #[serde(default = "default_true")]
    pub audit_deletes: bool,
}

impl TableConfig {
    /// A table with defaults.
    pub fn new(table: &str) -> TableConfig {
        TableConfig {
            table: table.to_owned(),
            filter: None,
            fields: Vec::new(),
            mapping: None,
            params: Map::new(),
            audit_deletes: true,
        }
    }

    /// The filter in effect (configured, else the table's default).
    pub fn effective_filter(&self) -> Option<String> {
        self.filter
            .clone()
            .or_else(|| DefaultMapping::for_table(&self.table).and_then(|d| d.default_filter()).map(str::to_owned))
    }

    /// `sysparm_fields`: the default mapping's fields plus the configured ones.
    pub fn effective_fields(&self) -> Vec<String> {
        let mut f: Vec<String> = DefaultMapping::for_table(&self.table)
            .map(|d| d.fields().iter().map(|s| (*s).to_owned()).collect())
            .unwrap_or_else(|| vec!["sys_id".into(), "sys_updated_on".into(), "sys_mod_count".into()]);
        for x in &self.fields {
            if !f.contains(x) {
                f.push(x.clone());
            }
        }
        f
    }

    /// The mapping program and `$params` in effect.
    pub fn effective_mapping(&self) -> Option<(String, Value)> {
        let default = DefaultMapping::for_table(&self.table);
        let default_params = default.map(|d| d.params()).unwrap_or_else(|| Value::Object(Map::new()));
        effective_mapping(self.mapping.as_deref(), &self.params, default.map(|d| d.program()), default_params)
    }
}

fn default_tables() -> Vec<TableConfig> {
    vec![TableConfig::new("cmdb_ci"), TableConfig::new("core_company")]
}
fn default_key_system() -> String {
    "servicenow".into()
}
fn default_true() -> bool {
    true
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 80 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl ServiceNowConfig {
    /// A config with defaults.
    pub fn new(instance_url: Url, auth: SourceAuth) -> ServiceNowConfig {
        ServiceNowConfig {
            instance_url,
            auth,
            tables: default_tables(),
            sync: SourceSettings::default(),
            http: HttpSettings::default(),
            key_system: default_key_system(),
        }
    }

    /// Checks everything that needs no I/O; `at` is this block's key path (e.g. `connectors[0]`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        check_http_url(&format!("{at}.instance_url"), &self.instance_url)?;
        if let SourceAuth::Basic { username, password } = &self.auth
            && (username.is_empty() || password.is_empty())
        {
            return Err(ConfigError::new(format!("{at}.auth"), "basic auth needs a username and a password"));
        }
        if self.tables.is_empty() {
            return Err(ConfigError::new(format!("{at}.tables"), "at least one table is needed"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.tables.iter().enumerate() {
            let here = format!("{at}.tables[{i}]");
            if !valid_name(&t.table) {
                return Err(ConfigError::new(format!("{here}.table"), "not a ServiceNow table name (a-z, 0-9, _)"));
            }
            if !seen.insert(t.table.clone()) {
                return Err(ConfigError::new(format!("{here}.table"), format!("table `{}` is listed twice", t.table)));
            }
            if let Some(f) = &t.filter {
                query::check_filter(f).map_err(|r| ConfigError::new(format!("{here}.filter"), r))?;
            }
            for f in &t.fields {
                if f.is_empty()
                    || !f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
                {
                    return Err(ConfigError::new(format!("{here}.fields"), format!("`{f}` is not a field name")));
                }
            }
            let Some((program, _)) = t.effective_mapping() else {
                return Err(ConfigError::new(
                    format!("{here}.mapping"),
                    format!("table `{}` has no default mapping: give a jq `mapping`", t.table),
                ));
            };
            check_mapping(&here, &t.table, &program)?;
        }
        check_common(at, &self.key_system, &self.sync)?;
        self.http.validate(&format!("{at}.http"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<ServiceNowConfig, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_validate_and_unknown_keys_are_rejected() {
        let c = yaml("instance_url: https://acme.service-now.com\nauth: {type: basic, username: svc, password: pw}\n")
            .unwrap();
        c.validate("connectors[0]").unwrap();
        assert_eq!(c.tables.len(), 2);
        assert_eq!(c.tables[1].effective_filter().as_deref(), Some("vendor=true^ORmanufacturer=true"));
        let err = yaml("instance_url: https://a.b\nauth: {type: basic, username: a, password: b}\ncolour: red\n")
            .unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = yaml("instance_url: https://a.b\nauth: {type: basic, username: a, password: b}\ntables: [{table: cmdb_ci, colour: x}]\n")
            .unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn the_json_schema_generates() {
        let schema = serde_json::to_value(schemars::schema_for!(ServiceNowConfig)).unwrap();
        let props = &schema["properties"];
        for key in ["instance_url", "auth", "tables", "sync", "http", "key_system"] {
            assert!(props.get(key).is_some(), "{key} missing from {schema}");
        }
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn bad_tables_filters_and_mappings_name_their_key() {
        let base = "instance_url: https://a.b\nauth: {type: basic, username: a, password: b}\n";
        let cases = [
            ("tables: [{table: incident}]", "connectors[0].tables[0].mapping"),
            ("tables: [{table: cmdb_ci, filter: 'operational_status~1'}]", "connectors[0].tables[0].filter"),
            ("tables: [{table: cmdb_ci, mapping: '{kind: '}]", "connectors[0].tables[0].mapping"),
            ("tables: [{table: cmdb_ci}, {table: cmdb_ci}]", "connectors[0].tables[1].table"),
            ("sync: {page_size: 0}", "connectors[0].sync.page_size"),
        ];
        for (extra, path) in cases {
            let c = yaml(&format!("{base}{extra}\n")).unwrap();
            let e = c.validate("connectors[0]").unwrap_err();
            assert_eq!(e.path, path, "{extra}: {e}");
        }
    }
}
