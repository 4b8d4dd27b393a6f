//! [`SalesforceConfig`]: the org, how to authenticate, which objects to read, which Cases are
//! privacy requests, and how records map. Validated without I/O by [`SalesforceConfig::validate`].

use std::time::Duration;

use dastra_connect_core::config::{ConfigError, Secret};
use dastra_connect_core::source::http::rsa_key;
use dastra_connect_core::source::streams::{check_common, check_http_url};
use dastra_connect_core::source::{HttpSettings, SourceSettings, StreamConfig, StreamKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::mapping::{default_params, default_program, select_fields};
use crate::soql::is_field_name;

/// The Salesforce source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    /// The org's My Domain URL, e.g. `https://acme.my.salesforce.com` (the REST API is under
    /// `/services/data/v<api_version>/`).
    pub instance_url: Url,
    /// REST API version, `60.0` or later. Default `60.0`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// How to authenticate: `client_credentials` (OAuth 2.0 client credentials flow of a connected
    /// app or external client app with a run-as user) or `jwt_bearer` (OAuth 2.0 JWT bearer flow:
    /// an assertion signed with the app's private key, acting as a pre-authorized user).
    pub auth: SalesforceAuth,
    /// Objects to read. Default: accounts and cases (contacts hold personal data: add
    /// `{object: contacts}` deliberately).
    #[serde(default = "default_objects")]
    pub objects: Vec<ObjectConfig>,
    /// Which Cases are privacy requests (the only Cases read).
    #[serde(default)]
    pub privacy_cases: PrivacyCases,
    /// Polling, look-back, records per engine page and sweeps. Deletes come from `queryAll`
    /// (Salesforce keeps deleted records in the recycle bin about 15 days); the sweep removes
    /// what was deleted before that.
    #[serde(default)]
    pub sync: SourceSettings,
    /// Timeouts, retries, request rate and the share of the org's daily API requests this
    /// connector may use (`max_api_share`, read from `Sforce-Limit-Info`).
    #[serde(default)]
    pub http: HttpSettings,
    /// System segment of entity keys (`<key_system>:dsr:<Case Id>`). Default `salesforce`.
    #[serde(default = "default_key_system")]
    pub key_system: String,
}

/// How to authenticate to Salesforce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SalesforceAuth {
    /// OAuth 2.0 client credentials: `POST <token_url>` with `grant_type=client_credentials`, the
    /// consumer key and secret; the app's run-as user needs read access to the objects.
    ClientCredentials {
        /// Consumer key of the connected app.
        client_id: String,
        /// Consumer secret.
        client_secret: Secret,
        /// Token endpoint. Default `<instance_url>/services/oauth2/token`.
        #[serde(default)]
        token_url: Option<Url>,
    },
    /// OAuth 2.0 JWT bearer flow: a JWT (`iss` = consumer key, `sub` = username, `aud`, `exp` in 3
    /// minutes) signed RS256 with the private key whose certificate is uploaded to the app; the
    /// user must be pre-authorized for the app.
    JwtBearer {
        /// Consumer key of the connected app (`iss`).
        client_id: String,
        /// Salesforce username the connector acts as (`sub`).
        username: String,
        /// The RSA private key, PEM (`BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`, unencrypted).
        private_key: Secret,
        /// `aud`: `https://login.salesforce.com` (default), `https://test.salesforce.com` for a
        /// sandbox, or an Experience Cloud site URL.
        #[serde(default = "default_audience")]
        audience: String,
        /// Token endpoint. Default `<instance_url>/services/oauth2/token`.
        #[serde(default)]
        token_url: Option<Url>,
    },
}

fn default_audience() -> String {
    "https://login.salesforce.com".into()
}

/// Which Cases are privacy requests: a Case is read when it has the record type (if set) and one
/// of the reasons (if any). At least one of the two is needed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyCases {
    /// Developer name of the Case record type, e.g. `Privacy_Request` (`RecordType.DeveloperName`).
    #[serde(default)]
    pub record_type: Option<String>,
    /// Values of the Case `Reason` picklist. Default: `[Privacy Request]` without a `record_type`,
    /// none with one (every Case of that record type).
    #[serde(default)]
    pub reasons: Option<Vec<String>>,
}

impl PrivacyCases {
    /// The reasons in effect.
    pub fn reasons(&self) -> Vec<String> {
        match (&self.reasons, &self.record_type) {
            (Some(r), _) => r.clone(),
            (None, Some(_)) => Vec::new(),
            (None, None) => vec!["Privacy Request".into()],
        }
    }
}

/// The Salesforce objects this source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SalesforceObject {
    /// `Account` → Actor (legal person; customer / partner / vendor as a tag from `Type`).
    Accounts,
    /// `Case` (privacy cases only) → DataSubjectRequest.
    Cases,
    /// `Contact` → Actor (natural person). Off by default: personal data.
    Contacts,
}

impl SalesforceObject {
    /// The sObject name in SOQL.
    pub fn sobject(self) -> &'static str {
        match self {
            SalesforceObject::Accounts => "Account",
            SalesforceObject::Cases => "Case",
            SalesforceObject::Contacts => "Contact",
        }
    }
}

/// One object and how it maps: `{object: accounts, filters: {Type: Customer - Direct}, mapping: …,
/// params: {…}}`.
pub type ObjectConfig = StreamConfig<SalesforceObject>;

impl StreamKind for SalesforceObject {
    const KEY: &'static str = "object";
    const NOUN: &'static str = "object";
    const SCHEMA_NAME: &'static str = "SalesforceObjectConfig";
    const FILTERS_DOC: &'static str = "Extra SOQL conditions `Field = 'value'` added to every query, e.g. `{Type: Customer - Direct}`\nor `{\"Owner.Alias\": jdoe}` (field names only letters, digits, `_` and `.`).";

    fn all() -> &'static [Self] {
        &[SalesforceObject::Accounts, SalesforceObject::Cases, SalesforceObject::Contacts]
    }
    fn stream(self) -> &'static str {
        match self {
            SalesforceObject::Accounts => "accounts",
            SalesforceObject::Cases => "cases",
            SalesforceObject::Contacts => "contacts",
        }
    }
    fn default_program(self) -> &'static str {
        default_program(self)
    }
    fn default_params(self) -> Value {
        default_params(self)
    }
    /// The cursor's fields: `SystemModstamp`, `Id`, `IsDeleted` (any case).
    fn is_reserved_filter(key: &str) -> bool {
        RESERVED.iter().any(|r| r.eq_ignore_ascii_case(key))
    }
}

const RESERVED: &[&str] = &["SystemModstamp", "Id", "IsDeleted"];

fn default_api_version() -> String {
    "60.0".into()
}
fn default_objects() -> Vec<ObjectConfig> {
    vec![ObjectConfig::new(SalesforceObject::Accounts), ObjectConfig::new(SalesforceObject::Cases)]
}
fn default_key_system() -> String {
    "salesforce".into()
}

impl SalesforceConfig {
    /// A config with defaults.
    pub fn new(instance_url: Url, auth: SalesforceAuth) -> SalesforceConfig {
        SalesforceConfig {
            instance_url,
            api_version: default_api_version(),
            auth,
            objects: default_objects(),
            privacy_cases: PrivacyCases::default(),
            sync: SourceSettings::default(),
            http: HttpSettings::default(),
            key_system: default_key_system(),
        }
    }

    /// The OAuth2 token endpoint in effect.
    pub fn token_url(&self) -> Option<Url> {
        match &self.auth {
            SalesforceAuth::ClientCredentials { token_url: Some(u), .. }
            | SalesforceAuth::JwtBearer { token_url: Some(u), .. } => Some(u.clone()),
            SalesforceAuth::ClientCredentials { token_url: None, .. }
            | SalesforceAuth::JwtBearer { token_url: None, .. } => self.instance_url.join("services/oauth2/token").ok(),
        }
    }

    /// Checks everything that needs no I/O; `at` is this block's key path (e.g. `connectors[0]`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        check_http_url(&format!("{at}.instance_url"), &self.instance_url)?;
        let version_ok = self
            .api_version
            .split_once('.')
            .filter(|(_, minor)| *minor == "0")
            .and_then(|(major, _)| major.parse::<u32>().ok())
            .is_some_and(|major| major >= 60);
        if !version_ok {
            return Err(ConfigError::new(
                format!("{at}.api_version"),
                "must be a REST API version like `60.0`, at least 60.0",
            ));
        }
        match &self.auth {
            SalesforceAuth::ClientCredentials { client_id, client_secret, token_url } => {
                if client_id.is_empty() || client_secret.is_empty() {
                    return Err(ConfigError::new(
                        format!("{at}.auth"),
                        "client_credentials needs a client_id and a client_secret",
                    ));
                }
                if let Some(u) = token_url {
                    check_http_url(&format!("{at}.auth.token_url"), u)?;
                }
            }
            SalesforceAuth::JwtBearer { client_id, username, private_key, audience, token_url } => {
                for (key, value) in [("client_id", client_id), ("username", username), ("audience", audience)] {
                    if value.trim().is_empty() {
                        return Err(ConfigError::new(format!("{at}.auth.{key}"), "must not be empty"));
                    }
                }
                rsa_key(private_key).map_err(|e| ConfigError::new(format!("{at}.auth.private_key"), e))?;
                if let Some(u) = token_url {
                    check_http_url(&format!("{at}.auth.token_url"), u)?;
                }
            }
        }
        let objects = format!("{at}.objects");
        ObjectConfig::validate_list(&self.objects, &objects)?;
        for (i, o) in self.objects.iter().enumerate() {
            for k in o.filters.keys() {
                if !is_field_name(k) {
                    return Err(ConfigError::new(
                        format!("{objects}[{i}].filters.{k}"),
                        "not a SOQL field name (letters, digits, `_`, `.` between names)",
                    ));
                }
            }
            let (_, params) = o.effective_mapping();
            select_fields(o.kind, &params).map_err(|e| ConfigError::new(format!("{objects}[{i}].params"), e))?;
        }
        let pc = &self.privacy_cases;
        if self.objects.iter().any(|o| o.kind == SalesforceObject::Cases) {
            if pc.record_type.is_none() && pc.reasons().is_empty() {
                return Err(ConfigError::new(
                    format!("{at}.privacy_cases"),
                    "name a record_type or at least one reason: otherwise every Case would become a DSR",
                ));
            }
            if let Some(rt) = &pc.record_type
                && !is_field_name(rt)
            {
                return Err(ConfigError::new(
                    format!("{at}.privacy_cases.record_type"),
                    "a record type developer name (letters, digits, `_`)",
                ));
            }
            if let Some(i) = pc.reasons().iter().position(|r| r.trim().is_empty()) {
                return Err(ConfigError::new(format!("{at}.privacy_cases.reasons[{i}]"), "must not be empty"));
            }
        }
        check_common(at, &self.key_system, &self.sync)?;
        if self.sync.look_back < Duration::from_secs(1) {
            return Err(ConfigError::new(
                format!("{at}.sync.look_back"),
                "SystemModstamp has whole seconds: at least 1s",
            ));
        }
        if self.sync.page_size > 2000 {
            return Err(ConfigError::new(
                format!("{at}.sync.page_size"),
                "at most 2000 (the largest batch Salesforce returns per query request)",
            ));
        }
        self.http.validate(&format!("{at}.http"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<SalesforceConfig, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    const BASE: &str = "instance_url: https://acme.my.salesforce.com\nauth: {type: client_credentials, client_id: key, client_secret: s3cret}\n";

    #[test]
    fn defaults_validate_and_unknown_keys_are_rejected() {
        let c = yaml(BASE).unwrap();
        c.validate("connectors[0]").unwrap();
        let streams: Vec<_> = c.objects.iter().map(|o| o.kind.stream()).collect();
        assert_eq!(streams, ["accounts", "cases"], "contacts are off by default");
        assert_eq!(c.token_url().unwrap().as_str(), "https://acme.my.salesforce.com/services/oauth2/token");
        assert_eq!(c.api_version, "60.0");
        assert_eq!(c.http.max_api_share, 0.5);
        let err = yaml(&format!("{BASE}colour: red\n")).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = yaml(&format!("{BASE}privacy_cases: {{reason: x}}\n")).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = yaml(
            "instance_url: https://a.b\nauth: {type: client_credentials, client_id: k, client_secret: s, scope: x}\n",
        )
        .unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("api_version: '59.0'", "connectors[0].api_version"),
            ("api_version: v60", "connectors[0].api_version"),
            ("objects: [{object: cases}, {object: cases}]", "connectors[0].objects[1].object"),
            (
                "objects: [{object: accounts, filters: {SystemModstamp: x}}]",
                "connectors[0].objects[0].filters.SystemModstamp",
            ),
            (
                "objects: [{object: accounts, filters: {\"Type' OR Id != '\": x}}]",
                "connectors[0].objects[0].filters.Type' OR Id != '",
            ),
            ("objects: [{object: accounts, mapping: '{kind: '}]", "connectors[0].objects[0].mapping"),
            (
                "objects: [{object: accounts, params: {extra_fields: ['Name, (SELECT Id FROM Contacts)']}}]",
                "connectors[0].objects[0].params",
            ),
            ("objects: [{object: cases, params: {request_type_field: 'a b'}}]", "connectors[0].objects[0].params"),
            ("privacy_cases: {reasons: []}", "connectors[0].privacy_cases"),
            ("privacy_cases: {record_type: 'x y'}", "connectors[0].privacy_cases.record_type"),
            ("sync: {look_back: 0s}", "connectors[0].sync.look_back"),
            ("sync: {page_size: 2500}", "connectors[0].sync.page_size"),
            ("http: {max_api_share: 1.5}", "connectors[0].http.max_api_share"),
            (
                "auth: {type: jwt_bearer, client_id: k, username: u@x.com, private_key: not-a-key}",
                "connectors[0].auth.private_key",
            ),
            (
                "auth: {type: jwt_bearer, client_id: k, username: '', private_key: not-a-key}",
                "connectors[0].auth.username",
            ),
        ];
        for (extra, path) in cases {
            let text = if extra.starts_with("auth") {
                format!("instance_url: https://acme.my.salesforce.com\n{extra}\n")
            } else {
                format!("{BASE}{extra}\n")
            };
            let c = yaml(&text).unwrap_or_else(|e| panic!("{extra}: {e}"));
            let e = c.validate("connectors[0]").unwrap_err();
            assert_eq!(e.path, path, "{extra}: {e}");
        }
        let c = yaml(&format!("{BASE}privacy_cases: {{record_type: Privacy_Request}}\n")).unwrap();
        c.validate("c").unwrap();
        assert!(c.privacy_cases.reasons().is_empty(), "a record type alone selects every Case of it");
        assert_eq!(yaml(BASE).unwrap().privacy_cases.reasons(), ["Privacy Request"]);
        // Without cases, no privacy filter is needed.
        let c = yaml(&format!("{BASE}objects: [{{object: accounts}}]\nprivacy_cases: {{reasons: []}}\n")).unwrap();
        c.validate("c").unwrap();
        let c = yaml("instance_url: https://a.b\nauth: {type: client_credentials, client_id: '', client_secret: s}\n")
            .unwrap();
        assert_eq!(c.validate("c").unwrap_err().path, "c.auth");
    }

    #[test]
    fn the_json_schema_generates_and_names_the_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(SalesforceConfig)).unwrap();
        assert!(schema["properties"]["privacy_cases"].is_object(), "{schema}");
        assert_eq!(schema["additionalProperties"], serde_json::Value::Bool(false), "unknown keys are refused");
    }
}
