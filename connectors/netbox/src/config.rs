//! [`NetBoxConfig`]: where NetBox is, its API token, which object types to read and how they map.
//! Validated without I/O by [`NetBoxConfig::validate`].

use dastra_connect_core::config::{ConfigError, Secret};
use dastra_connect_core::source::streams::{check_common, check_http_url};
use dastra_connect_core::source::{HttpSettings, SourceSettings, StreamConfig, StreamKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::mapping::{default_params, default_program};

/// The NetBox source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetBoxConfig {
    /// NetBox root URL (the API is under `<url>/api/`), e.g. `https://netbox.example.com`.
    pub url: Url,
    /// API token (NetBox → Admin → API Tokens; read-only is enough).
    pub token: Secret,
    /// How the token is sent: `token` (`Authorization: Token <key>`, v1 tokens, the default) or
    /// `bearer` (`Authorization: Bearer nbt_…`, NetBox ≥ 4.5 v2 tokens).
    #[serde(default)]
    pub token_scheme: TokenScheme,
    /// Object types to read. Default: devices, virtual machines, sites and tenants.
    #[serde(default = "default_objects")]
    pub objects: Vec<ObjectConfig>,
    /// Polling, look-back, page size (NetBox's `MAX_PAGE_SIZE` is 1000 by default) and sweeps.
    #[serde(default)]
    pub sync: SourceSettings,
    /// Timeouts, retries and request rate towards NetBox.
    #[serde(default)]
    pub http: HttpSettings,
    /// System segment of entity keys (`<key_system>:asset:device-12`). Default `netbox`.
    #[serde(default = "default_key_system")]
    pub key_system: String,
    /// Also read deletes from NetBox's change log (`action=delete` object changes), so they arrive
    /// at the next poll rather than at the next sweep. Needs a token allowed to view object changes
    /// (`core.view_objectchange`); sweeps still catch deletes whose change record was pruned
    /// (`CHANGELOG_RETENTION`). Default false.
    #[serde(default)]
    pub change_log_deletes: bool,
    /// The change-log endpoint: `api/core/object-changes/` (NetBox ≥ 4.0, the default) or
    /// `api/extras/object-changes/` (NetBox 3.x).
    #[serde(default = "default_change_log")]
    pub change_log_endpoint: String,
}

fn default_change_log() -> String {
    "api/core/object-changes/".into()
}

/// How the API token is presented.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenScheme {
    /// `Authorization: Token <key>`.
    #[default]
    Token,
    /// `Authorization: Bearer <token>`.
    Bearer,
}

/// The NetBox object types this source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetBoxObject {
    /// `/api/dcim/devices/` → Asset (+ Relationships to its site and tenant).
    Devices,
    /// `/api/virtualization/virtual-machines/` → Asset (+ Relationships to its site and tenant).
    VirtualMachines,
    /// `/api/dcim/sites/` → Asset of type Building (+ Relationship to its tenant).
    Sites,
    /// `/api/tenancy/tenants/` → Actor.
    Tenants,
}

impl NetBoxObject {
    /// The list endpoint, relative to the root URL.
    pub fn path(self) -> &'static str {
        match self {
            NetBoxObject::Devices => "api/dcim/devices/",
            NetBoxObject::VirtualMachines => "api/virtualization/virtual-machines/",
            NetBoxObject::Sites => "api/dcim/sites/",
            NetBoxObject::Tenants => "api/tenancy/tenants/",
        }
    }

    /// The change log's `changed_object_type` (`<app_label>.<model>`).
    pub fn content_type(self) -> &'static str {
        match self {
            NetBoxObject::Devices => "dcim.device",
            NetBoxObject::VirtualMachines => "virtualization.virtualmachine",
            NetBoxObject::Sites => "dcim.site",
            NetBoxObject::Tenants => "tenancy.tenant",
        }
    }
}

/// One object type and how it maps: `{object: devices, filters: {status: active}, mapping: …,
/// params: {role_map: {storage: Data}}}`.
pub type ObjectConfig = StreamConfig<NetBoxObject>;

impl StreamKind for NetBoxObject {
    const KEY: &'static str = "object";
    const NOUN: &'static str = "object type";
    const SCHEMA_NAME: &'static str = "ObjectConfig";
    const FILTERS_DOC: &'static str =
        "Extra NetBox filters added to every request, e.g. `{status: active, tag: gdpr}`.";
    const PARAMS_EXAMPLE: &'static str = "`{role_map: {storage: Data}}`";

    fn all() -> &'static [Self] {
        &[NetBoxObject::Devices, NetBoxObject::VirtualMachines, NetBoxObject::Sites, NetBoxObject::Tenants]
    }
    fn stream(self) -> &'static str {
        match self {
            NetBoxObject::Devices => "devices",
            NetBoxObject::VirtualMachines => "virtual_machines",
            NetBoxObject::Sites => "sites",
            NetBoxObject::Tenants => "tenants",
        }
    }
    fn default_program(self) -> &'static str {
        default_program(self)
    }
    fn default_params(self) -> Value {
        default_params(self)
    }
    fn is_reserved_filter(key: &str) -> bool {
        RESERVED.contains(&key)
    }
}

fn default_objects() -> Vec<ObjectConfig> {
    ObjectConfig::all()
}
fn default_key_system() -> String {
    "netbox".into()
}

/// Query parameters the source sets itself; a filter must not override them.
const RESERVED: &[&str] = &["limit", "offset", "ordering", "last_updated__gte", "id__gt", "brief", "fields"];

impl NetBoxConfig {
    /// A config with defaults.
    pub fn new(url: Url, token: Secret) -> NetBoxConfig {
        NetBoxConfig {
            url,
            token,
            token_scheme: TokenScheme::Token,
            objects: default_objects(),
            sync: SourceSettings::default(),
            http: HttpSettings::default(),
            key_system: default_key_system(),
            change_log_deletes: false,
            change_log_endpoint: default_change_log(),
        }
    }

    /// Checks everything that needs no I/O; `at` is this block's key path (e.g. `connectors[0]`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        check_http_url(&format!("{at}.url"), &self.url)?;
        if self.token.is_empty() {
            return Err(ConfigError::new(format!("{at}.token"), "must not be empty"));
        }
        ObjectConfig::validate_list(&self.objects, &format!("{at}.objects"))?;
        if !matches!(self.change_log_endpoint.as_str(), "api/core/object-changes/" | "api/extras/object-changes/") {
            return Err(ConfigError::new(
                format!("{at}.change_log_endpoint"),
                "api/core/object-changes/ (NetBox 4) or api/extras/object-changes/ (NetBox 3)",
            ));
        }
        if self.sync.page_size > 1000 {
            return Err(ConfigError::new(
                format!("{at}.sync.page_size"),
                "NetBox caps pages at MAX_PAGE_SIZE (1000 by default)",
            ));
        }
        check_common(at, &self.key_system, &self.sync)?;
        self.http.validate(&format!("{at}.http"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<NetBoxConfig, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_validate_and_unknown_keys_are_rejected() {
        let c = yaml("url: https://netbox.example.com\ntoken: 0123456789abcdef\n").unwrap();
        c.validate("connectors[0]").unwrap();
        assert_eq!(c.objects.len(), 4);
        assert_eq!(c.token_scheme, TokenScheme::Token);
        let err = yaml("url: https://a.b\ntoken: t\ncolour: red\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = yaml("url: https://a.b\ntoken: t\nobjects: [{object: devices, colour: x}]\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = yaml("url: https://a.b\ntoken: t\nobjects: [{object: cables}]\n").unwrap_err();
        assert!(err.contains("unknown variant"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = "url: https://a.b\ntoken: t\n";
        let cases = [
            ("objects: [{object: devices}, {object: devices}]", "connectors[0].objects[1].object"),
            ("objects: [{object: sites, filters: {limit: '5'}}]", "connectors[0].objects[0].filters.limit"),
            ("objects: [{object: sites, mapping: '{kind: '}]", "connectors[0].objects[0].mapping"),
            ("sync: {page_size: 5000}", "connectors[0].sync.page_size"),
            ("key_system: NetBox", "connectors[0].key_system"),
            ("change_log_endpoint: api/changes/", "connectors[0].change_log_endpoint"),
        ];
        for (extra, path) in cases {
            let c = yaml(&format!("{base}{extra}\n")).unwrap();
            let e = c.validate("connectors[0]").unwrap_err();
            assert_eq!(e.path, path, "{extra}: {e}");
        }
    }

    #[test]
    fn the_json_schema_generates_and_names_the_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(NetBoxConfig)).unwrap();
        assert!(schema["properties"]["url"].is_object(), "{schema}");
        assert_eq!(schema["additionalProperties"], serde_json::Value::Bool(false), "unknown keys are refused");
    }
}
