//! The per-stream part of a source's config, written once: which streams to read, their extra
//! query filters, a jq mapping that replaces the default one, and `$params` deep-merged over the
//! defaults ([`StreamConfig`]); the checks every source makes on them
//! ([`StreamConfig::validate_list`]); and the engine's [`StreamSpec`]s compiled from them.
//!
//! A connector names its streams with an enum implementing [`StreamKind`] (NetBox object types,
//! Coupa resources…). The config key of that field is the connector's own word (`object:`,
//! `resource:`), so users' config files read as before; the serde and JSON Schema impls here are
//! written by hand for that reason (a derive cannot take a field name from a trait).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::engine::StreamSpec;
use super::mapping::{Mapping, merge};
use super::{SourceError, SourceSettings};
use crate::config::ConfigError;

/// The streams a connector reads, as an enum (`NetBoxObject`, `CoupaResource`): the stream name,
/// the default mapping and `$params`, which query arguments the connector sets itself, and the words
/// its config uses.
pub trait StreamKind:
    Copy + Eq + Ord + Hash + fmt::Debug + Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static
{
    /// The config key naming the stream in a [`StreamConfig`] (`object`, `resource`).
    const KEY: &'static str;
    /// What one stream is called in messages and in the JSON Schema (`object type`, `resource`).
    const NOUN: &'static str;
    /// The JSON Schema name of `StreamConfig<Self>` (`ObjectConfig`).
    const SCHEMA_NAME: &'static str;
    /// Description of `filters`, with an example in the system's own query syntax.
    const FILTERS_DOC: &'static str;
    /// An example of `params` for the JSON Schema (`{role_map: {storage: Data}}`), or empty.
    const PARAMS_EXAMPLE: &'static str = "";
    /// The config keys of `StreamConfig<Self>` (serde's list for "unknown field" errors).
    const FIELDS: &'static [&'static str] = &[Self::KEY, FILTERS, MAPPING, PARAMS];

    /// Every stream, in the default order.
    fn all() -> &'static [Self];
    /// The stream name (checkpoint key, metric label, DLQ header).
    fn stream(self) -> &'static str;
    /// The default jq program.
    fn default_program(self) -> &'static str;
    /// The default `$params`.
    fn default_params(self) -> Value;
    /// True when the connector sets this query argument itself (a filter must not override it).
    fn is_reserved_filter(key: &str) -> bool;

    /// The stream named `stream`.
    fn from_stream(stream: &str) -> Option<Self> {
        Self::all().iter().copied().find(|k| k.stream() == stream)
    }
}

/// One stream and how it maps. In a config file:
/// `{<KEY>: devices, filters: {status: active}, mapping: '…jq…', params: {…}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig<K> {
    /// The stream (config key [`StreamKind::KEY`]).
    pub kind: K,
    /// Extra query arguments added to every request.
    pub filters: BTreeMap<String, String>,
    /// A jq program replacing the default mapping.
    pub mapping: Option<String>,
    /// Parameters of the mapping (`$params`), deep-merged over the defaults.
    pub params: Map<String, Value>,
}

/// The mapping program and `$params` in effect: the configured program, else the default one;
/// the configured parameters deep-merged over the default ones. For sources whose stream config is
/// their own (ServiceNow tables, file exports). `None` when there is no program at all.
pub fn effective_mapping(
    mapping: Option<&str>,
    params: &Map<String, Value>,
    default_program: Option<&str>,
    default_params: Value,
) -> Option<(String, Value)> {
    let program = mapping.or(default_program)?.to_owned();
    let mut merged = default_params;
    merge(&mut merged, &Value::Object(params.clone()));
    Some((program, merged))
}

/// Compiles the mapping of stream `name` for the engine (a config error if it does not compile).
pub fn compile_stream(name: &str, program: &str, params: Value) -> Result<StreamSpec, SourceError> {
    let mapping = Mapping::compile(name, program).map_err(|e| SourceError::Config(e.to_string()))?;
    Ok(StreamSpec { name: name.to_owned(), mapping: Arc::new(mapping), params })
}

/// Checks that the mapping of the stream at key path `here` compiles (`<here>.mapping` otherwise).
pub fn check_mapping(here: &str, name: &str, program: &str) -> Result<(), ConfigError> {
    Mapping::compile(name, program).map(drop).map_err(|e| ConfigError::new(format!("{here}.mapping"), e.to_string()))
}

impl<K: StreamKind> StreamConfig<K> {
    /// A stream with defaults.
    pub fn new(kind: K) -> Self {
        StreamConfig { kind, filters: BTreeMap::new(), mapping: None, params: Map::new() }
    }

    /// Every stream with defaults (a config that names none).
    pub fn all() -> Vec<Self> {
        K::all().iter().copied().map(Self::new).collect()
    }

    /// The mapping program and `$params` in effect.
    pub fn effective_mapping(&self) -> (String, Value) {
        let program = self.mapping.clone().unwrap_or_else(|| self.kind.default_program().to_owned());
        let mut params = self.kind.default_params();
        merge(&mut params, &Value::Object(self.params.clone()));
        (program, params)
    }

    /// Checks a configured list (no I/O); `at` is its key path (`connectors[0].objects`): at least
    /// one stream, none twice, no filter on an argument the connector sets, mappings that compile.
    pub fn validate_list(list: &[Self], at: &str) -> Result<(), ConfigError> {
        if list.is_empty() {
            return Err(ConfigError::new(at, format!("at least one {} is needed", K::NOUN)));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, s) in list.iter().enumerate() {
            let here = format!("{at}[{i}]");
            if !seen.insert(s.kind) {
                return Err(ConfigError::new(
                    format!("{here}.{}", K::KEY),
                    format!("`{}` is listed twice", s.kind.stream()),
                ));
            }
            for k in s.filters.keys() {
                if K::is_reserved_filter(k) {
                    return Err(ConfigError::new(format!("{here}.filters.{k}"), "is set by the source itself"));
                }
            }
            let (program, _) = s.effective_mapping();
            check_mapping(&here, s.kind.stream(), &program)?;
        }
        Ok(())
    }

    /// The engine streams: one per configured stream with its compiled mapping.
    pub fn specs(list: &[Self]) -> Result<Vec<StreamSpec>, SourceError> {
        list.iter()
            .map(|s| {
                let (program, params) = s.effective_mapping();
                compile_stream(s.kind.stream(), &program, params)
            })
            .collect()
    }
}

/// A query argument (name, value).
pub type QueryArg = (String, String);

/// The configured streams as a [`super::SourceSystem`] looks them up: stream name → kind and filters.
#[derive(Debug, Clone)]
pub struct StreamFilters<K> {
    filters: HashMap<K, Vec<QueryArg>>,
}

impl<K: StreamKind> StreamFilters<K> {
    /// The filters of each configured stream.
    pub fn new(list: &[StreamConfig<K>]) -> Self {
        let filters = list.iter().map(|s| (s.kind, s.filters.clone().into_iter().collect())).collect();
        StreamFilters { filters }
    }

    /// The stream named `stream` and its filters; a config error when it is not configured.
    pub fn get(&self, stream: &str) -> Result<(K, &[QueryArg]), SourceError> {
        let kind = K::from_stream(stream).ok_or_else(|| SourceError::Config(format!("unknown stream `{stream}`")))?;
        let f = self
            .filters
            .get(&kind)
            .ok_or_else(|| SourceError::Config(format!("stream `{stream}` is not configured")))?;
        Ok((kind, f.as_slice()))
    }
}

/// Checks the fields every source config has: its `sync:` block (`at.sync`) and its `key_system`
/// (`at.key_system`, a valid entity-key segment).
pub fn check_common(at: &str, key_system: &str, sync: &SourceSettings) -> Result<(), ConfigError> {
    if crate::event::EntityKey::new(key_system, crate::event::EntityKind::Asset, "x").is_err() {
        return Err(ConfigError::new(format!("{at}.key_system"), "must be 1-64 characters of a-z, 0-9, _ or -"));
    }
    sync.validate(&format!("{at}.sync"))
}

/// Checks that `url` (at key path `path`) is an http(s) URL with a host.
pub fn check_http_url(path: &str, url: &url::Url) -> Result<(), ConfigError> {
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(path, "must be an http(s) URL with a host"));
    }
    Ok(())
}

const FILTERS: &str = "filters";
const MAPPING: &str = "mapping";
const PARAMS: &str = "params";

impl<K: StreamKind> Serialize for StreamConfig<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct(K::SCHEMA_NAME, 4)?;
        s.serialize_field(K::KEY, &self.kind)?;
        s.serialize_field(FILTERS, &self.filters)?;
        s.serialize_field(MAPPING, &self.mapping)?;
        s.serialize_field(PARAMS, &self.params)?;
        s.end()
    }
}

impl<'de, K: StreamKind> Deserialize<'de> for StreamConfig<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StreamVisitor<K>(PhantomData<K>);

        impl<'de, K: StreamKind> Visitor<'de> for StreamVisitor<K> {
            type Value = StreamConfig<K>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "struct {}", K::SCHEMA_NAME)
            }

            // The same errors as `#[derive(Deserialize)]` with `deny_unknown_fields`.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut kind, mut filters, mut mapping, mut params) = (None, None, None, None);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        k if k == K::KEY => set(&mut kind, K::KEY, map.next_value()?)?,
                        FILTERS => set(&mut filters, FILTERS, map.next_value()?)?,
                        MAPPING => set(&mut mapping, MAPPING, map.next_value()?)?,
                        PARAMS => set(&mut params, PARAMS, map.next_value()?)?,
                        other => return Err(de::Error::unknown_field(other, K::FIELDS)),
                    }
                }
                Ok(StreamConfig {
                    kind: kind.ok_or_else(|| de::Error::missing_field(K::KEY))?,
                    filters: filters.unwrap_or_default(),
                    mapping: mapping.unwrap_or_default(),
                    params: params.unwrap_or_default(),
                })
            }
        }

        fn set<T, E: de::Error>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), E> {
            if slot.is_some() {
                return Err(E::duplicate_field(name));
            }
            *slot = Some(value);
            Ok(())
        }

        deserializer.deserialize_struct(K::SCHEMA_NAME, K::FIELDS, StreamVisitor(PhantomData))
    }
}

impl<K: StreamKind> JsonSchema for StreamConfig<K> {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed(K::SCHEMA_NAME)
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut kind = generator.subschema_for::<K>();
        kind.insert("description".into(), Value::from(format!("The {}.", K::NOUN)));
        let mut params_doc = "Parameters of the mapping (`$params`), deep-merged over the defaults".to_owned();
        if !K::PARAMS_EXAMPLE.is_empty() {
            params_doc.push_str(&format!(", e.g.\n{}", K::PARAMS_EXAMPLE));
        }
        params_doc.push('.');
        let mut properties = Map::new();
        properties.insert(
            FILTERS.into(),
            serde_json::json!({
                "description": K::FILTERS_DOC,
                "type": "object",
                "additionalProperties": {"type": "string"},
                "default": {}
            }),
        );
        properties.insert(
            MAPPING.into(),
            serde_json::json!({
                "description": "A jq program replacing the default mapping (see README).",
                "type": ["string", "null"],
                "default": null
            }),
        );
        properties.insert(K::KEY.into(), kind.to_value());
        properties.insert(
            PARAMS.into(),
            serde_json::json!({
                "description": params_doc,
                "type": "object",
                "additionalProperties": true,
                "default": {}
            }),
        );
        json_schema!({
            "description": format!("One {} and how it maps.", K::NOUN),
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
            "required": [K::KEY]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(
        Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
    )]
    #[serde(rename_all = "snake_case")]
    enum Thing {
        Boxes,
        Crates,
    }

    impl StreamKind for Thing {
        const KEY: &'static str = "thing";
        const NOUN: &'static str = "thing";
        const SCHEMA_NAME: &'static str = "ThingConfig";
        const FILTERS_DOC: &'static str = "Filters.";
        fn all() -> &'static [Self] {
            &[Thing::Boxes, Thing::Crates]
        }
        fn stream(self) -> &'static str {
            match self {
                Thing::Boxes => "boxes",
                Thing::Crates => "crates",
            }
        }
        fn default_program(self) -> &'static str {
            "{kind: \"asset\", id: .id, data: {label: .name, type: $params.type}}"
        }
        fn default_params(self) -> Value {
            json!({"type": "Material", "deep": {"a": 1}})
        }
        fn is_reserved_filter(key: &str) -> bool {
            key == "limit"
        }
    }

    type ThingConfig = StreamConfig<Thing>;

    fn parse(text: &str) -> Result<ThingConfig, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_like_a_derived_struct_with_unknown_fields_denied() {
        let c = parse("{thing: crates, filters: {status: active}, params: {deep: {b: 2}}}").unwrap();
        assert_eq!(c.kind, Thing::Crates);
        assert_eq!(c.filters["status"], "active");
        let (program, params) = c.effective_mapping();
        assert_eq!(program, Thing::Crates.default_program());
        assert_eq!(params, json!({"type": "Material", "deep": {"a": 1, "b": 2}}), "params deep-merge");
        let back: ThingConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c, "serialises to what it reads");

        let err = parse("{thing: crates, colour: red}").unwrap_err();
        assert!(
            err.contains("unknown field `colour`, expected one of `thing`, `filters`, `mapping`, `params`"),
            "{err}"
        );
        let err = parse("{filters: {}}").unwrap_err();
        assert!(err.contains("missing field `thing`"), "{err}");
        let err = parse("{thing: pallets}").unwrap_err();
        assert!(err.contains("unknown variant `pallets`"), "{err}");
        let err = serde_json::from_str::<ThingConfig>(r#"{"thing": "boxes", "mapping": "a", "mapping": "b"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate field `mapping`"), "{err}");
    }

    #[test]
    fn lists_are_checked_with_the_key_path_of_the_fault() {
        let list = |text: &str| serde_yaml::from_str::<Vec<ThingConfig>>(text).unwrap();
        let at = "connectors[0].things";
        ThingConfig::validate_list(&ThingConfig::all(), at).unwrap();
        let cases = [
            ("[]", "connectors[0].things"),
            ("[{thing: boxes}, {thing: boxes}]", "connectors[0].things[1].thing"),
            ("[{thing: boxes, filters: {limit: '5'}}]", "connectors[0].things[0].filters.limit"),
            ("[{thing: crates, mapping: '{kind: '}]", "connectors[0].things[0].mapping"),
        ];
        for (text, path) in cases {
            let e = ThingConfig::validate_list(&list(text), at).unwrap_err();
            assert_eq!(e.path, path, "{text}: {e}");
        }
        let specs = ThingConfig::specs(&ThingConfig::all()).unwrap();
        assert_eq!(specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["boxes", "crates"]);
        let filters = StreamFilters::new(&list("[{thing: crates, filters: {status: active}}]"));
        let (kind, args) = filters.get("crates").unwrap();
        assert_eq!((kind, args), (Thing::Crates, &[("status".to_owned(), "active".to_owned())][..]));
        assert!(filters.get("boxes").is_err(), "not configured");
        assert!(filters.get("pallets").is_err(), "unknown");
    }

    #[test]
    fn the_json_schema_names_the_key_and_refuses_unknown_keys() {
        let schema = serde_json::to_value(schemars::schema_for!(ThingConfig)).unwrap();
        assert_eq!(schema["required"], json!(["thing"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(schema["properties"]["thing"]["description"], "The thing.");
        assert_eq!(schema["properties"]["filters"]["description"], "Filters.");
        assert_eq!(schema["description"], "One thing and how it maps.");
        let params = "Parameters of the mapping (`$params`), deep-merged over the defaults.";
        assert_eq!(schema["properties"]["params"]["description"], params);
    }
}
