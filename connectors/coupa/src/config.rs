//! [`CoupaConfig`]: the Coupa instance, how to authenticate, which resources to read and how they
//! map. Validated without I/O by [`CoupaConfig::validate`].

use std::time::Duration;

use dastra_connect_core::config::{ConfigError, Secret};
use dastra_connect_core::source::streams::{check_common, check_http_url};
use dastra_connect_core::source::{HttpSettings, SourceSettings, StreamConfig, StreamKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::mapping::{default_params, default_program};

/// The Coupa source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CoupaConfig {
    /// Instance root, e.g. `https://acme.coupahost.com` (the API is under `/api/`).
    pub url: Url,
    /// `oauth2` (client credentials, the supported way since R34) or `api_key` (legacy
    /// `X-COUPA-API-KEY`, no longer issued from R34, unsupported from R35).
    pub auth: CoupaAuth,
    /// Resources to read. Default: suppliers and contracts.
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceConfig>,
    /// Polling, look-back, records per engine page and sweeps. Coupa answers at most 50 records per
    /// request: larger pages are read as several `offset` requests. Coupa reports no deletes, so
    /// `sweep_interval` is how soon a deleted supplier or contract disappears.
    #[serde(default)]
    pub sync: SourceSettings,
    /// Timeouts, retries and request rate towards Coupa.
    #[serde(default)]
    pub http: HttpSettings,
    /// System segment of entity keys (`<key_system>:actor:<supplier id>`). Default `coupa`.
    #[serde(default = "default_key_system")]
    pub key_system: String,
}

/// How to authenticate to Coupa.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CoupaAuth {
    /// OAuth2 client credentials (Setup → OAuth2/OpenID Connect Clients, grant type client
    /// credentials).
    Oauth2 {
        /// Client identifier.
        client_id: String,
        /// Client secret.
        client_secret: Secret,
        /// Scopes. Default `core.supplier.read core.contract.read`.
        #[serde(default = "default_scope")]
        scope: String,
        /// Token endpoint. Default `<url>/oauth2/token`.
        #[serde(default)]
        token_url: Option<Url>,
    },
    /// Legacy API key sent as `X-COUPA-API-KEY`.
    ApiKey {
        /// The key.
        api_key: Secret,
    },
}

fn default_scope() -> String {
    "core.supplier.read core.contract.read".into()
}

/// The Coupa resources this source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CoupaResource {
    /// `/api/suppliers` → Actor.
    Suppliers,
    /// `/api/contracts` → Contract with `supplier` = the supplier Actor.
    Contracts,
}

impl CoupaResource {
    /// The endpoint, relative to the root URL.
    pub fn path(self) -> &'static str {
        match self {
            CoupaResource::Suppliers => "api/suppliers",
            CoupaResource::Contracts => "api/contracts",
        }
    }
}

/// One resource and how it maps: `{resource: contracts, filters: {status: active}, mapping: …,
/// params: {…}}`.
pub type ResourceConfig = StreamConfig<CoupaResource>;

impl StreamKind for CoupaResource {
    const KEY: &'static str = "resource";
    const NOUN: &'static str = "resource";
    const SCHEMA_NAME: &'static str = "ResourceConfig";
    const FILTERS_DOC: &'static str = "Extra Coupa query arguments added to every request, e.g. `{status: active}` or\n`{\"commodity[name]\": \"IT\"}`.";

    fn all() -> &'static [Self] {
        &[CoupaResource::Suppliers, CoupaResource::Contracts]
    }
    fn stream(self) -> &'static str {
        match self {
            CoupaResource::Suppliers => "suppliers",
            CoupaResource::Contracts => "contracts",
        }
    }
    fn default_program(self) -> &'static str {
        default_program(self)
    }
    fn default_params(self) -> Value {
        default_params(self)
    }
    /// `limit`, `order_by`…, and the cursor's own `updated_at` and `id`, in any of Coupa's
    /// spellings (`updated-at[gt]` is `updated_at`).
    fn is_reserved_filter(key: &str) -> bool {
        let base = key.split('[').next().unwrap_or(key).replace('-', "_");
        RESERVED.contains(&base.as_str()) || base == "updated_at" || base == "id"
    }
}

fn default_resources() -> Vec<ResourceConfig> {
    ResourceConfig::all()
}
fn default_key_system() -> String {
    "coupa".into()
}

/// Query arguments the source sets itself.
const RESERVED: &[&str] = &["limit", "offset", "order_by", "dir", "fields", "return_object"];

impl CoupaConfig {
    /// A config with defaults.
    pub fn new(url: Url, auth: CoupaAuth) -> CoupaConfig {
        CoupaConfig {
            url,
            auth,
            resources: default_resources(),
            sync: SourceSettings::default(),
            http: HttpSettings::default(),
            key_system: default_key_system(),
        }
    }

    /// The OAuth2 token endpoint in effect.
    pub fn token_url(&self) -> Option<Url> {
        match &self.auth {
            CoupaAuth::Oauth2 { token_url: Some(u), .. } => Some(u.clone()),
            CoupaAuth::Oauth2 { token_url: None, .. } => self.url.join("oauth2/token").ok(),
            CoupaAuth::ApiKey { .. } => None,
        }
    }

    /// Checks everything that needs no I/O; `at` is this block's key path (e.g. `connectors[0]`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        check_http_url(&format!("{at}.url"), &self.url)?;
        match &self.auth {
            CoupaAuth::Oauth2 { client_id, client_secret, .. } => {
                if client_id.is_empty() || client_secret.is_empty() {
                    return Err(ConfigError::new(format!("{at}.auth"), "oauth2 needs a client_id and a client_secret"));
                }
            }
            CoupaAuth::ApiKey { api_key } => {
                if api_key.is_empty() {
                    return Err(ConfigError::new(format!("{at}.auth.api_key"), "must not be empty"));
                }
            }
        }
        ResourceConfig::validate_list(&self.resources, &format!("{at}.resources"))?;
        check_common(at, &self.key_system, &self.sync)?;
        if self.sync.look_back < Duration::from_secs(1) {
            return Err(ConfigError::new(
                format!("{at}.sync.look_back"),
                "Coupa times have whole seconds: at least 1s",
            ));
        }
        self.http.validate(&format!("{at}.http"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<CoupaConfig, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_validate_and_unknown_keys_are_rejected() {
        let c =
            yaml("url: https://acme.coupahost.com\nauth: {type: oauth2, client_id: dastra, client_secret: s3cret}\n")
                .unwrap();
        c.validate("connectors[0]").unwrap();
        assert_eq!(c.resources.len(), 2);
        assert_eq!(c.token_url().unwrap().as_str(), "https://acme.coupahost.com/oauth2/token");
        let CoupaAuth::Oauth2 { scope, .. } = &c.auth else { panic!() };
        assert_eq!(scope, "core.supplier.read core.contract.read");
        let err = yaml("url: https://a.b\nauth: {type: api_key, api_key: k}\ncolour: red\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = yaml("url: https://a.b\nauth: {type: api_key, api_key: k, scope: x}\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = "url: https://a.b\nauth: {type: api_key, api_key: k}\n";
        let cases = [
            ("resources: [{resource: suppliers}, {resource: suppliers}]", "connectors[0].resources[1].resource"),
            (
                "resources: [{resource: contracts, filters: {'updated-at[gt]': '2020-01-01'}}]",
                "connectors[0].resources[0].filters.updated-at[gt]",
            ),
            ("resources: [{resource: contracts, mapping: '{kind: '}]", "connectors[0].resources[0].mapping"),
            ("sync: {look_back: 0s}", "connectors[0].sync.look_back"),
            ("auth: {type: api_key, api_key: ''}", "connectors[0].auth.api_key"),
        ];
        for (extra, path) in cases {
            let text = if extra.starts_with("auth") {
                format!("url: https://a.b\n{extra}\n")
            } else {
                format!("{base}{extra}\n")
            };
            let c = yaml(&text).unwrap();
            let e = c.validate("connectors[0]").unwrap_err();
            assert_eq!(e.path, path, "{extra}: {e}");
        }
    }

    #[test]
    fn the_json_schema_generates_and_names_the_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(CoupaConfig)).unwrap();
        assert!(schema["properties"]["auth"].is_object(), "{schema}");
        assert_eq!(schema["additionalProperties"], serde_json::Value::Bool(false), "unknown keys are refused");
    }
}
