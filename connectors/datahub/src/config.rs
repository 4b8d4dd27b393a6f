//! [`DataHubConfig`]: which MetadataChangeLog topic to read and how its entities map. Turned into
//! the topic reader's config ([`DataHubConfig::reader_config`]); validated without I/O, errors name
//! the key path.

use dastra_connect_core::codec::RegistryConfig;
use dastra_connect_core::config::ConfigError;
use dastra_connect_core::source::mapping::merge;
use dastra_connect_debezium::{ConsumerSettings, ReaderConfig, ReaderKind, TopicConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mapping;

/// DataHub's topic of versioned-aspect changes (its default name).
pub const DEFAULT_TOPIC: &str = "MetadataChangeLog_Versioned_v1";
/// The reader's stream name (metric label, DLQ header, known-key index).
pub const STREAM: &str = "metadata";

/// `type: datahub`: DataHub's MetadataChangeLog topic → DataFields, datasets, Assets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataHubConfig {
    /// The MetadataChangeLog topic of versioned aspects (on NATS the subjects `<topic>.<partition>`
    /// of the bus stream). Default `MetadataChangeLog_Versioned_v1`.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// System segment of entity keys (`<key_system>:datafield:<urn>`). Default `datahub`.
    #[serde(default)]
    pub key_system: Option<String>,
    /// The Confluent schema registry DataHub writes the MCL schema to. Default: the registry of the
    /// top-level `codec`, if any.
    #[serde(default)]
    pub registry: Option<RegistryConfig>,
    /// Consumer group and batching.
    #[serde(default)]
    pub consumer: ConsumerSettings,
    /// jq program replacing the default one (the merged entity → `{kind, id, data}` outputs).
    #[serde(default)]
    pub mapping: Option<String>,
    /// `$params` deep-merged over the defaults: `tag_map` (tag or glossary-term URN or name →
    /// `{personalDataCategory, sensitiveData}`, `null` drops a default), `data_types`,
    /// `asset_type`, `data_set_source`, `empty_datasets`, `tags`.
    #[serde(default)]
    pub params: Map<String, Value>,
}

fn default_topic() -> String {
    DEFAULT_TOPIC.to_owned()
}

impl DataHubConfig {
    /// The parameters in effect (defaults with `params` merged over them).
    pub fn effective_params(&self) -> Map<String, Value> {
        let mut p = mapping::default_params();
        merge(&mut p, &Value::Object(self.params.clone()));
        match p {
            Value::Object(o) => o,
            _ => Map::new(),
        }
    }

    /// The topic reader's config: one topic with the mapping in effect.
    pub fn reader_config(&self) -> ReaderConfig {
        ReaderConfig {
            topics: vec![TopicConfig {
                topic: self.topic.clone(),
                name: Some(STREAM.to_owned()),
                mapping: self.mapping.clone().unwrap_or_else(|| mapping::PROGRAM.to_owned()),
                params: self.effective_params(),
                key: None,
                version: None,
                delete: None,
            }],
            key_system: Some(self.key_system.clone().unwrap_or_else(|| "datahub".to_owned())),
            registry: self.registry.clone(),
            consumer: self.consumer.clone(),
            nats_stream: None,
        }
    }

    /// Checks everything that can be checked without I/O; errors name the key path.
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if let Some(Value::Object(map)) = self.params.get("tag_map") {
            for (tag, target) in map {
                dastra_connect_openmetadata::config::check_tag_target(&format!("{at}.params.tag_map.{tag}"), target)?;
            }
        } else if self.params.get("tag_map").is_some() {
            return Err(ConfigError::new(format!("{at}.params.tag_map"), "expected a map of tag or term → target"));
        }
        // The reader's checks, with its paths (`topics[0].…`) mapped back to this block's keys.
        self.reader_config().validate(at, ReaderKind::Debezium).map_err(|e| {
            let inner = format!("{at}.topics[0].");
            let path = match e.path.strip_prefix(&inner) {
                Some(rest) => format!("{at}.{rest}"),
                None => e.path.clone(),
            };
            ConfigError::new(path, e.reason.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(yaml: &str) -> ConfigError {
        let c: DataHubConfig = dastra_connect_core::config::from_yaml_str(yaml).unwrap();
        c.validate("c").unwrap_err()
    }

    #[test]
    fn each_bad_value_names_its_key() {
        let ok: DataHubConfig = dastra_connect_core::config::from_yaml_str("{}").unwrap();
        ok.validate("c").unwrap();
        assert_eq!(ok.reader_config().topics[0].topic, DEFAULT_TOPIC);
        let cases = [
            ("{topic: 'a b'}", "c.topic"),
            ("{mapping: '{kind: '}", "c.mapping"),
            ("{key_system: 'A B'}", "c.key_system"),
            ("{consumer: {batch_size: 0}}", "c.consumer.batch_size"),
            ("{params: {tag_map: {PII: {personalDataCategory: Gossip}}}}", "c.params.tag_map.PII.personalDataCategory"),
            ("{params: {tag_map: [PII]}}", "c.params.tag_map"),
        ];
        for (yaml, path) in cases {
            assert_eq!(err(yaml).path, path, "{yaml}");
        }
    }

    #[test]
    fn params_merge_over_the_defaults() {
        let c: DataHubConfig = dastra_connect_core::config::from_yaml_str(
            "{params: {tag_map: {PII: null, 'urn:li:glossaryTerm:Email': {personalDataCategory: CivilStatus}}}}",
        )
        .unwrap();
        let p = c.effective_params();
        assert!(p["tag_map"]["PII"].is_null());
        assert_eq!(p["tag_map"]["Sensitive"]["sensitiveData"], true);
        assert_eq!(p["tag_map"]["urn:li:glossaryTerm:Email"]["personalDataCategory"], "CivilStatus");
        assert!(dastra_connect_core::config::from_yaml_str::<DataHubConfig>("{topics: []}").is_err());
    }
}
