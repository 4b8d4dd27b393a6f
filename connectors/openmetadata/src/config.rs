//! [`OpenMetadataConfig`]: where OpenMetadata is, the bot's JWT, which entities to read and how they
//! map. Validated without I/O by [`OpenMetadataConfig::validate`].

use dastra_connect_core::config::{ConfigError, Secret};
use dastra_connect_core::source::streams::{check_common, check_http_url};
use dastra_connect_core::source::{HttpSettings, SourceSettings, StreamConfig, StreamKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::mapping::{default_params, default_program};

/// The OpenMetadata source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenMetadataConfig {
    /// OpenMetadata server URL (the API is under `<url>/api/v1/`), e.g. `http://openmetadata:8585`.
    pub url: Url,
    /// JWT of a bot (Settings → Bots → the bot's token), sent as `Authorization: Bearer <jwt>`.
    pub token: Secret,
    /// Entities to read. Default: tables, database services and pipelines.
    #[serde(default = "default_entities")]
    pub entities: Vec<EntityConfig>,
    /// Polling, look-back, page size (OpenMetadata caps `limit` at 1000) and sweeps.
    #[serde(default)]
    pub sync: SourceSettings,
    /// Timeouts, retries and request rate towards OpenMetadata.
    #[serde(default)]
    pub http: HttpSettings,
    /// System segment of entity keys (`<key_system>:datafield:<column FQN>`). Default `openmetadata`.
    #[serde(default = "default_key_system")]
    pub key_system: String,
}

/// The OpenMetadata entities this source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OmEntity {
    /// `/api/v1/tables` → a DataField per column carrying a mapped classification tag, and a
    /// dataset per table grouping them.
    Tables,
    /// `/api/v1/services/databaseServices` → Asset.
    DatabaseServices,
    /// `/api/v1/pipelines` (+ its lineage) → DataProcessing linked to the datasets and Assets of the
    /// tables it reads and writes.
    Pipelines,
}

impl OmEntity {
    /// The list endpoint, relative to the server URL.
    pub fn path(self) -> &'static str {
        match self {
            OmEntity::Tables => "api/v1/tables",
            OmEntity::DatabaseServices => "api/v1/services/databaseServices",
            OmEntity::Pipelines => "api/v1/pipelines",
        }
    }

    /// The entity type in change events (`entityType`) and lineage (`type`).
    pub fn entity_type(self) -> &'static str {
        match self {
            OmEntity::Tables => "table",
            OmEntity::DatabaseServices => "databaseService",
            OmEntity::Pipelines => "pipeline",
        }
    }

    /// The `fields` the source asks for (the rest of the entity comes without asking).
    pub fn fields(self) -> &'static str {
        match self {
            OmEntity::Tables => "columns,tags",
            OmEntity::DatabaseServices => "tags",
            OmEntity::Pipelines => "tasks,tags",
        }
    }

    /// The entity of a change event's `entityType`.
    pub fn from_entity_type(t: &str) -> Option<OmEntity> {
        Self::all().iter().copied().find(|e| e.entity_type() == t)
    }
}

/// One entity and how it maps: `{entity: tables, filters: {database: crm.prod}, mapping: …,
/// params: {tag_map: {…}}}`.
pub type EntityConfig = StreamConfig<OmEntity>;

impl StreamKind for OmEntity {
    const KEY: &'static str = "entity";
    const NOUN: &'static str = "entity";
    const SCHEMA_NAME: &'static str = "EntityConfig";
    const FILTERS_DOC: &'static str =
        "Extra OpenMetadata list filters added to list requests, e.g. `{database: crm.prod}` for tables.";
    const PARAMS_EXAMPLE: &'static str = "`{tag_map: {PersonalData.Personal: {personalDataCategory: CivilStatus}}}`";

    fn all() -> &'static [Self] {
        &[OmEntity::Tables, OmEntity::DatabaseServices, OmEntity::Pipelines]
    }
    fn stream(self) -> &'static str {
        match self {
            OmEntity::Tables => "tables",
            OmEntity::DatabaseServices => "database_services",
            OmEntity::Pipelines => "pipelines",
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

fn default_entities() -> Vec<EntityConfig> {
    EntityConfig::all()
}
fn default_key_system() -> String {
    "openmetadata".into()
}

/// Query parameters the source sets itself; a filter must not override them.
const RESERVED: &[&str] = &["limit", "after", "before", "fields", "include"];

impl OpenMetadataConfig {
    /// A config with defaults.
    pub fn new(url: Url, token: Secret) -> OpenMetadataConfig {
        OpenMetadataConfig {
            url,
            token,
            entities: default_entities(),
            sync: SourceSettings::default(),
            http: HttpSettings::default(),
            key_system: default_key_system(),
        }
    }

    /// Checks everything that needs no I/O; `at` is this block's key path (e.g. `connectors[0]`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        check_http_url(&format!("{at}.url"), &self.url)?;
        if self.token.is_empty() {
            return Err(ConfigError::new(format!("{at}.token"), "must not be empty"));
        }
        EntityConfig::validate_list(&self.entities, &format!("{at}.entities"))?;
        for (i, e) in self.entities.iter().enumerate() {
            if let Some(Value::Object(map)) = e.params.get("tag_map") {
                for (tag, target) in map {
                    check_tag_target(&format!("{at}.entities[{i}].params.tag_map.{tag}"), target)?;
                }
            }
        }
        if self.sync.page_size > 1000 {
            return Err(ConfigError::new(format!("{at}.sync.page_size"), "OpenMetadata caps `limit` at 1000"));
        }
        check_common(at, &self.key_system, &self.sync)?;
        self.http.validate(&format!("{at}.http"))?;
        Ok(())
    }
}

/// A `tag_map` entry: `{personalDataCategory: <Dastra PersonalDataCategory>, sensitiveData: bool}`
/// (both optional), or `null` to ignore a default tag.
pub fn check_tag_target(at: &str, v: &Value) -> Result<(), ConfigError> {
    let obj = match v {
        Value::Null => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(ConfigError::new(at, "expected {personalDataCategory, sensitiveData} or null")),
    };
    for (k, val) in obj {
        match (k.as_str(), val) {
            ("personalDataCategory", Value::String(s)) => {
                if s.parse::<dastra_connect_core::event::enums::PersonalDataCategory>().is_err() {
                    return Err(ConfigError::new(
                        format!("{at}.personalDataCategory"),
                        format!("{s:?} is not a Dastra PersonalDataCategory"),
                    ));
                }
            }
            ("personalDataCategory", Value::Null) | ("sensitiveData", Value::Bool(_)) => {}
            ("personalDataCategory", _) => {
                return Err(ConfigError::new(format!("{at}.personalDataCategory"), "expected a string"));
            }
            ("sensitiveData", _) => {
                return Err(ConfigError::new(format!("{at}.sensitiveData"), "expected true or false"));
            }
            (other, _) => {
                return Err(ConfigError::new(
                    format!("{at}.{other}"),
                    "unknown key (expected personalDataCategory or sensitiveData)",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<OpenMetadataConfig, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_validate_and_unknown_keys_are_rejected() {
        let c = yaml("url: http://openmetadata:8585\ntoken: eyJhbGciOi.x.y\n").unwrap();
        c.validate("connectors[0]").unwrap();
        assert_eq!(c.entities.len(), 3);
        assert_eq!(c.key_system, "openmetadata");
        let err = yaml("url: http://a.b\ntoken: t\ncolour: red\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = yaml("url: http://a.b\ntoken: t\nentities: [{entity: tables, colour: x}]\n").unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = yaml("url: http://a.b\ntoken: t\nentities: [{entity: dashboards}]\n").unwrap_err();
        assert!(err.contains("unknown variant"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = "url: http://a.b\ntoken: t\n";
        let cases = [
            ("entities: [{entity: tables}, {entity: tables}]", "connectors[0].entities[1].entity"),
            ("entities: [{entity: tables, filters: {after: x}}]", "connectors[0].entities[0].filters.after"),
            ("entities: [{entity: tables, mapping: '{kind: '}]", "connectors[0].entities[0].mapping"),
            (
                "entities: [{entity: tables, params: {tag_map: {PII.Sensitive: {personalDataCategory: Gossip}}}}]",
                "connectors[0].entities[0].params.tag_map.PII.Sensitive.personalDataCategory",
            ),
            (
                "entities: [{entity: tables, params: {tag_map: {PII.Sensitive: {sensitive: true}}}}]",
                "connectors[0].entities[0].params.tag_map.PII.Sensitive.sensitive",
            ),
            ("sync: {page_size: 5000}", "connectors[0].sync.page_size"),
            ("key_system: OpenMetadata", "connectors[0].key_system"),
        ];
        for (extra, path) in cases {
            let c = yaml(&format!("{base}{extra}\n")).unwrap();
            let e = c.validate("connectors[0]").unwrap_err();
            assert_eq!(e.path, path, "{extra}: {e}");
        }
        let c = yaml(&format!("{base}token: ''\n").replace("token: t\n", "")).unwrap();
        assert_eq!(c.validate("c").unwrap_err().path, "c.token");
    }

    #[test]
    fn the_json_schema_generates_and_refuses_unknown_keys() {
        let schema = serde_json::to_value(schemars::schema_for!(OpenMetadataConfig)).unwrap();
        assert!(schema["properties"]["url"].is_object(), "{schema}");
        assert_eq!(schema["additionalProperties"], Value::Bool(false));
    }
}
