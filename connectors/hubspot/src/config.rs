//! [`HubSpotConfig`]: the HubSpot account (API root and private-app token), which objects to read,
//! their search filters and how they map. Validated without I/O by [`HubSpotConfig::validate`].

use dastra_connect_core::config::{ConfigError, Secret};
use dastra_connect_core::source::streams::{check_common, check_http_url};
use dastra_connect_core::source::{HttpSettings, SourceSettings, StreamConfig, StreamKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::mapping::{default_params, default_program};

/// HubSpot's cap on the results one search can page through (`docs/hubspot-api.md` §3).
pub const SEARCH_RESULT_CAP: u32 = 10_000;

/// Filters the source adds to every search itself (the cursor and the restart filter), so one
/// object's configured filters may use at most this many of a filter group's ten.
pub const MAX_FILTERS: usize = 8;

/// The HubSpot source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HubSpotConfig {
    /// API root. Default `https://api.hubapi.com`.
    #[serde(default = "default_url")]
    pub url: Url,
    /// Access token of a HubSpot private app (Settings → Integrations → Private apps), sent as
    /// `Authorization: Bearer`. Scopes: `crm.objects.companies.read`, `tickets`,
    /// `crm.objects.contacts.read` (the contact of a ticket, and the contacts object).
    pub token: Secret,
    /// Objects to read. Default: companies only; tickets need `filters.hs_pipeline` (the privacy
    /// pipeline), contacts are personal data and off unless listed.
    #[serde(default = "default_objects")]
    pub objects: Vec<ObjectConfig>,
    /// HubSpot's cap on the results one search can page through: 10 000, the default and the
    /// maximum. The source starts each next page as a new search from the last record read and
    /// follows HubSpot's `after` offset only among records of one millisecond, never past this cap;
    /// search pages hold at most half of it.
    #[serde(default = "default_search_cap")]
    pub search_result_cap: u32,
    /// Polling, look-back, records per engine page and sweeps. A search answers at most 200 records;
    /// larger pages are read as several requests.
    #[serde(default)]
    pub sync: SourceSettings,
    /// Timeouts, retries, request rate and daily-quota share towards HubSpot. The search endpoint
    /// allows 5 requests per second per account, less than the rest of the API: when
    /// `max_requests_per_second` is not set, this source sends at most 4 per second.
    #[serde(default)]
    pub http: HttpSettings,
    /// System segment of entity keys (`<key_system>:actor:<company id>`,
    /// `<key_system>:dsr:<ticket id>`). Default `hubspot`.
    #[serde(default = "default_key_system")]
    pub key_system: String,
}

/// The HubSpot CRM objects this source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HubSpotObject {
    /// Companies → Actor (legal person).
    Companies,
    /// Tickets of the privacy pipeline → DataSubjectRequest.
    Tickets,
    /// Contacts → Actor (natural person). Personal data: off by default.
    Contacts,
}

impl HubSpotObject {
    /// The object type in API paths (`/crm/v3/objects/<path>`).
    pub fn path(self) -> &'static str {
        self.stream()
    }

    /// The property holding the last modification time: what the search filters and sorts on.
    pub fn modified_property(self) -> &'static str {
        match self {
            HubSpotObject::Contacts => "lastmodifieddate",
            HubSpotObject::Companies | HubSpotObject::Tickets => "hs_lastmodifieddate",
        }
    }
}

/// One object and how it maps: `{object: tickets, filters: {hs_pipeline: "31582647"}, mapping: …,
/// params: {…}}`.
pub type ObjectConfig = StreamConfig<HubSpotObject>;

impl StreamKind for HubSpotObject {
    const KEY: &'static str = "object";
    const NOUN: &'static str = "object";
    const SCHEMA_NAME: &'static str = "HubSpotObjectConfig";
    const FILTERS_DOC: &'static str = "Search filters AND-ed to every request: `property: value` (operator EQ) or\n`\"property[OP]\": value` with a HubSpot operator (EQ, NEQ, LT, LTE, GT, GTE, CONTAINS_TOKEN,\nNOT_CONTAINS_TOKEN, HAS_PROPERTY, NOT_HAS_PROPERTY, IN and NOT_IN with comma-separated values),\ne.g. `{hs_pipeline: \"31582647\"}` or `{\"lifecyclestage[IN]\": \"customer,evangelist\"}`.";
    const PARAMS_EXAMPLE: &'static str = "{purposes: {ERASURE: [Erasure]}, legal_delay_months: 1}";

    fn all() -> &'static [Self] {
        &[HubSpotObject::Companies, HubSpotObject::Tickets, HubSpotObject::Contacts]
    }
    fn stream(self) -> &'static str {
        match self {
            HubSpotObject::Companies => "companies",
            HubSpotObject::Tickets => "tickets",
            HubSpotObject::Contacts => "contacts",
        }
    }
    fn default_program(self) -> &'static str {
        default_program(self)
    }
    fn default_params(self) -> Value {
        default_params(self)
    }
    /// The modification-time properties and the object id: the source filters on them itself.
    fn is_reserved_filter(key: &str) -> bool {
        let (property, _) = split_filter(key);
        matches!(property, "hs_lastmodifieddate" | "lastmodifieddate" | "hs_object_id")
    }
}

/// HubSpot's search operators (`docs/hubspot-api.md` §2).
pub const OPERATORS: &[&str] = &[
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
];

/// `property[OP]` → (`property`, `OP`); a bare `property` is `EQ`.
pub fn split_filter(key: &str) -> (&str, &str) {
    match key.split_once('[') {
        Some((p, rest)) => (p, rest.trim_end_matches(']')),
        None => (key, "EQ"),
    }
}

fn default_url() -> Url {
    Url::parse("https://api.hubapi.com").unwrap_or_else(|_| unreachable!("a valid literal URL"))
}
fn default_objects() -> Vec<ObjectConfig> {
    vec![ObjectConfig::new(HubSpotObject::Companies)]
}
fn default_search_cap() -> u32 {
    SEARCH_RESULT_CAP
}
fn default_key_system() -> String {
    "hubspot".into()
}

impl HubSpotConfig {
    /// A config with defaults.
    pub fn new(token: Secret) -> HubSpotConfig {
        HubSpotConfig {
            url: default_url(),
            token,
            objects: default_objects(),
            search_result_cap: default_search_cap(),
            sync: SourceSettings::default(),
            http: HttpSettings::default(),
            key_system: default_key_system(),
        }
    }

    /// Checks everything that needs no I/O; `at` is this block's key path (e.g. `connectors.crm`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        check_http_url(&format!("{at}.url"), &self.url)?;
        if self.token.is_empty() {
            return Err(ConfigError::new(format!("{at}.token"), "must not be empty (a private app's access token)"));
        }
        let list = format!("{at}.objects");
        ObjectConfig::validate_list(&self.objects, &list)?;
        for (i, o) in self.objects.iter().enumerate() {
            let here = format!("{list}[{i}]");
            if o.filters.len() > MAX_FILTERS {
                return Err(ConfigError::new(
                    format!("{here}.filters"),
                    format!("at most {MAX_FILTERS} filters (HubSpot allows 10 per group; the source adds 2)"),
                ));
            }
            for key in o.filters.keys() {
                let (property, op) = split_filter(key);
                if property.is_empty() || !OPERATORS.contains(&op) || (key.contains('[') && !key.ends_with(']')) {
                    return Err(ConfigError::new(
                        format!("{here}.filters.{key}"),
                        format!("not `property` or `property[OP]` with OP one of {}", OPERATORS.join(", ")),
                    ));
                }
            }
            if o.kind == HubSpotObject::Tickets
                && !o.filters.keys().any(|k| matches!(split_filter(k), ("hs_pipeline", "EQ" | "IN")))
            {
                return Err(ConfigError::new(
                    format!("{here}.filters"),
                    "tickets need `hs_pipeline: <id of the privacy pipeline>`: every ticket read becomes a data subject request",
                ));
            }
        }
        if !(10..=SEARCH_RESULT_CAP).contains(&self.search_result_cap) {
            return Err(ConfigError::new(
                format!("{at}.search_result_cap"),
                format!("must be between 10 and {SEARCH_RESULT_CAP}"),
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

    fn yaml(text: &str) -> Result<HubSpotConfig, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_validate_and_unknown_keys_are_rejected() {
        let c = yaml("token: pat-eu1-0000\n").unwrap();
        c.validate("connectors.crm").unwrap();
        assert_eq!(c.url.as_str(), "https://api.hubapi.com/");
        assert_eq!(c.objects.len(), 1, "companies only by default");
        assert_eq!(c.search_result_cap, 10_000);
        assert_eq!(format!("{:?}", c.token), "***");
        let err = yaml("token: t\ncolour: red\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = yaml("token: t\nobjects: [{object: companies, filter: {}}]\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        assert!(yaml("objects: []\n").unwrap_err().contains("token"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("token: ''", "connectors.crm.token"),
            ("objects: [{object: tickets}]", "connectors.crm.objects[0].filters"),
            ("objects: [{object: tickets, filters: {'hs_pipeline[NEQ]': '1'}}]", "connectors.crm.objects[0].filters"),
            ("objects: [{object: companies}, {object: companies}]", "connectors.crm.objects[1].object"),
            (
                "objects: [{object: contacts, filters: {'lastmodifieddate[GT]': '0'}}]",
                "connectors.crm.objects[0].filters.lastmodifieddate[GT]",
            ),
            (
                "objects: [{object: companies, filters: {'type[LIKE]': VENDOR}}]",
                "connectors.crm.objects[0].filters.type[LIKE]",
            ),
            ("objects: [{object: companies, mapping: '{kind: '}]", "connectors.crm.objects[0].mapping"),
            ("search_result_cap: 20000", "connectors.crm.search_result_cap"),
            ("sync: {page_size: 0}", "connectors.crm.sync.page_size"),
            ("url: ftp://x", "connectors.crm.url"),
        ];
        for (extra, path) in cases {
            let text = if extra.starts_with("token") { format!("{extra}\n") } else { format!("token: t\n{extra}\n") };
            let c = yaml(&text).unwrap_or_else(|e| panic!("{extra}: {e}"));
            let e = c.validate("connectors.crm").unwrap_err();
            assert_eq!(e.path, path, "{extra}: {e}");
        }
        let many: String = (0..9).map(|i| format!("p{i}: x, ")).collect();
        let c = yaml(&format!("token: t\nobjects: [{{object: companies, filters: {{{many}}}}}]\n")).unwrap();
        assert_eq!(c.validate("c").unwrap_err().path, "c.objects[0].filters");
        let ok = yaml("token: t\nobjects: [{object: tickets, filters: {'hs_pipeline[IN]': '1,2'}}]\n").unwrap();
        ok.validate("c").unwrap();
    }

    #[test]
    fn filters_split_into_property_and_operator() {
        assert_eq!(split_filter("hs_pipeline"), ("hs_pipeline", "EQ"));
        assert_eq!(split_filter("type[IN]"), ("type", "IN"));
        assert!(HubSpotObject::is_reserved_filter("hs_lastmodifieddate[GTE]"));
        assert!(HubSpotObject::is_reserved_filter("hs_object_id"));
        assert!(!HubSpotObject::is_reserved_filter("hs_pipeline"));
    }

    #[test]
    fn the_json_schema_generates_and_names_the_fields() {
        let schema = serde_json::to_value(schemars::schema_for!(HubSpotConfig)).unwrap();
        assert!(schema["properties"]["token"].is_object(), "{schema}");
        assert_eq!(schema["additionalProperties"], serde_json::Value::Bool(false), "unknown keys are refused");
    }
}
