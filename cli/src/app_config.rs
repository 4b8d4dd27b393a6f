//! The config file of `dastra-connect run`: bus, codec, topics, telemetry, admin server, and the list
//! of connectors (a closed set: one variant per connector type, one `match` that builds them).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::codec::{Codec, RegistryConfig, SchemaRegistryClient};
use dastra_connect_core::config::{self, ConfigError, Secret};
use dastra_connect_core::connector::{Connector, ConnectorContext, Topics};
use dastra_connect_core::telemetry::TelemetryConfig;
use dastra_connect_dastra::sink::{DastraSink, DastraSinkConfig};
use dastra_connect_dastra::webhook::{WebhookReceiver, WebhookReceiverConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole config file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The bus every connector of this process uses.
    pub bus: BusConfig,
    /// How payloads are encoded on the bus.
    #[serde(default)]
    pub codec: CodecConfig,
    /// Topic naming.
    #[serde(default)]
    pub topics: Topics,
    /// Logs and traces.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The admin HTTP server (`/metrics`, `/healthz`, `/readyz`, `/status`).
    #[serde(default)]
    pub admin: AdminConfig,
    /// The connectors this process runs, by instance name (the name is the metric label, the
    /// CloudEvents source `/connectors/<name>` and the default consumer group).
    pub connectors: BTreeMap<String, ConnectorConfig>,
}

/// The admin HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on.
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// How often each connector's health checks run after start (bus; Dastra `GET /me` for the sink,
    /// one request of its quota each time; for a source whose polls made no successful call since the
    /// previous check, one authenticated read of its system). A failure makes `/readyz` answer 503.
    #[serde(default = "default_health_interval", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub health_interval: Duration,
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9090))
}

fn default_health_interval() -> Duration {
    Duration::from_secs(30)
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: default_admin_listen(), health_interval: default_health_interval() }
    }
}

/// Payload encoding: what this process writes. Reading always accepts every format.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodecConfig {
    /// Format of the payloads this process publishes.
    #[serde(default)]
    pub format: PayloadFormat,
    /// Confluent Schema Registry; required for `format: confluent`, and lets any format decode
    /// Confluent-framed input.
    #[serde(default)]
    pub schema_registry: Option<SchemaRegistrySettings>,
}

/// Payload formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// Avro single-object encoding (`C3 01` + schema fingerprint); no registry needed.
    #[default]
    Avro,
    /// Confluent wire format (magic 0 + schema id) with a schema registry, TopicNameStrategy subjects.
    Confluent,
    /// JSON, for debugging.
    Json,
}

/// How to reach a Confluent-compatible schema registry.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistrySettings {
    /// Base URL.
    pub url: url::Url,
    /// Basic-auth user.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic-auth password (or `password_file`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Register missing schemas (true) or only look them up.
    #[serde(default = "default_true")]
    pub auto_register: bool,
    /// Per-request timeout.
    #[serde(default = "default_registry_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

fn default_true() -> bool {
    true
}
fn default_registry_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The closed set of connector types (`type:` selects one).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConnectorConfig {
    /// Consumes change events and upserts them into Dastra.
    DastraSink(Box<DastraSinkConfig>),
    /// Receives Dastra webhooks and publishes them to `<prefix>.events`.
    DastraWebhookReceiver(WebhookReceiverConfig),
    /// ServiceNow CMDB (Table API): CIs → Assets, companies → Actors.
    Servicenow(Box<dastra_connect_servicenow::ServiceNowConfig>),
    /// NetBox: devices, VMs, sites → Assets; tenants → Actors.
    Netbox(Box<dastra_connect_netbox::NetBoxConfig>),
    /// Coupa: suppliers → Actors, contracts → Contracts.
    Coupa(Box<dastra_connect_coupa::CoupaConfig>),
    /// OpenMetadata: PII-tagged columns → DataFields in per-table datasets, database services →
    /// Assets, pipelines with lineage → DataProcessings.
    Openmetadata(Box<dastra_connect_openmetadata::OpenMetadataConfig>),
    /// HubSpot CRM: companies → Actors, privacy tickets → DataSubjectRequests, contacts (optional).
    Hubspot(Box<dastra_connect_hubspot::HubSpotConfig>),
    /// CSV / JSON / NDJSON export files with a column mapping.
    Files(Box<dastra_connect_files::FilesConfig>),
    /// Debezium change-event topics (JSON with or without schema envelope, Avro through a
    /// registry) mapped row by row with jq.
    Debezium(Box<dastra_connect_debezium::ReaderConfig>),
    /// Any other existing topic (JSON or Avro records), with jq programs for key, version, deletes.
    Topic(Box<dastra_connect_debezium::ReaderConfig>),
    /// Salesforce (REST API, SOQL): accounts → Actors, privacy cases → DataSubjectRequests.
    Salesforce(Box<dastra_connect_salesforce::SalesforceConfig>),
    /// DataHub's MetadataChangeLog topic (Avro through a registry): tagged schema fields →
    /// DataFields grouped per dataset, data platforms → Assets.
    Datahub(Box<dastra_connect_datahub::DataHubConfig>),
}

impl AppConfig {
    /// Reads, interpolates and validates a config file (no network I/O).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let cfg: AppConfig = config::load_file(path)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses and validates config text (no network I/O).
    #[cfg(test)]
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let cfg: AppConfig = config::from_yaml_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bus.validate().map_err(|e| ConfigError::new("bus", e.to_string()))?;
        self.validate_topics()?;
        if self.admin.health_interval < Duration::from_secs(1) {
            return Err(ConfigError::new("admin.health_interval", "must be at least 1s"));
        }
        if self.codec.format == PayloadFormat::Confluent && self.codec.schema_registry.is_none() {
            return Err(ConfigError::new("codec.schema_registry", "required when `codec.format` is `confluent`"));
        }
        if self.connectors.is_empty() {
            return Err(ConfigError::new("connectors", "name at least one connector"));
        }
        for (name, c) in &self.connectors {
            let at = format!("connectors.{name}");
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
            if !valid_name {
                return Err(ConfigError::new(at, "a connector name is 1–64 characters of [A-Za-z0-9_-]"));
            }
            match c {
                ConnectorConfig::DastraSink(c) => c.validate(&at)?,
                ConnectorConfig::DastraWebhookReceiver(w) => w.validate(&at)?,
                ConnectorConfig::Servicenow(c) => c.validate(&at)?,
                ConnectorConfig::Netbox(c) => c.validate(&at)?,
                ConnectorConfig::Coupa(c) => c.validate(&at)?,
                ConnectorConfig::Openmetadata(c) => c.validate(&at)?,
                ConnectorConfig::Hubspot(c) => c.validate(&at)?,
                ConnectorConfig::Files(c) => c.validate(&at)?,
                ConnectorConfig::Debezium(c) => c.validate(&at, dastra_connect_debezium::ReaderKind::Debezium)?,
                ConnectorConfig::Topic(c) => c.validate(&at, dastra_connect_debezium::ReaderKind::Topic)?,
                ConnectorConfig::Salesforce(c) => c.validate(&at)?,
                ConnectorConfig::Datahub(c) => c.validate(&at)?,
            }
        }
        Ok(())
    }

    /// Rules that span sections: topic names valid on the bus, NATS stream subjects capturing every
    /// topic, listeners that do not collide, one consumer group per sink.
    fn validate_topics(&self) -> Result<(), ConfigError> {
        let prefix = &self.topics.prefix;
        let valid = !prefix.is_empty()
            && prefix.len() <= 200
            && prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            && !prefix.starts_with('.')
            && !prefix.ends_with('.')
            && !prefix.contains("..");
        if !valid {
            return Err(ConfigError::new(
                "topics.prefix",
                "1–200 characters of [A-Za-z0-9._-], not starting or ending with `.` nor containing `..` (a Kafka topic name and NATS subject tokens)",
            ));
        }
        if let BusConfig::Nats(n) = &self.bus {
            let mut topics = vec![self.topics.dastra_events(), self.topics.dlq()];
            topics.extend(dastra_connect_core::event::EntityKind::ALL.iter().map(|k| self.topics.changes(*k)));
            for topic in topics {
                let subject = dastra_connect_core::bus::nats::subject(&topic, 0);
                if !n.stream_subjects.iter().any(|p| dastra_connect_core::bus::nats::subject_matches(p, &subject)) {
                    return Err(ConfigError::new(
                        "bus.stream_subjects",
                        format!(
                            "topic `{topic}` (from `topics.prefix` `{prefix}`) is not captured by {:?}: add `{prefix}.>` and `{prefix}-connect.>`",
                            n.stream_subjects
                        ),
                    ));
                }
            }
        }
        if matches!(self.bus, BusConfig::Kafka(_)) {
            for (name, c) in &self.connectors {
                if let ConnectorConfig::Debezium(r) | ConnectorConfig::Topic(r) = c
                    && r.nats_stream.is_some()
                {
                    return Err(ConfigError::new(
                        format!("connectors.{name}.nats_stream"),
                        "only with the NATS bus (`bus.type: nats`); on Kafka the topics are read as they are",
                    ));
                }
            }
        }
        if let BusConfig::Nats(n) = &self.bus {
            for (name, c) in &self.connectors {
                // Input topics of the readers of existing topics, with their key paths.
                // (With `nats_stream` they are subjects of the company's own stream, checked at start.)
                let inputs: Vec<(String, &str)> = match c {
                    ConnectorConfig::Debezium(r) | ConnectorConfig::Topic(r) if r.nats_stream.is_none() => r
                        .topics
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (format!("connectors.{name}.topics[{i}].topic"), t.topic.as_str()))
                        .collect(),
                    ConnectorConfig::Datahub(d) => vec![(format!("connectors.{name}.topic"), d.topic.as_str())],
                    _ => continue,
                };
                for (at, topic) in inputs {
                    let subject = dastra_connect_core::bus::nats::subject(topic, 0);
                    if !n.stream_subjects.iter().any(|p| dastra_connect_core::bus::nats::subject_matches(p, &subject)) {
                        return Err(ConfigError::new(
                            at,
                            format!(
                                "`{topic}` (subjects `{topic}.<partition>`) is not captured by `bus.stream_subjects` {:?}",
                                n.stream_subjects
                            ),
                        ));
                    }
                }
            }
        }
        let mut listeners = vec![(self.admin.listen, "admin.listen".to_owned())];
        let mut sinks = Vec::new();
        for (name, c) in &self.connectors {
            match c {
                ConnectorConfig::DastraWebhookReceiver(w) => {
                    let here = format!("connectors.{name}.listen");
                    if let Some((_, other)) = listeners.iter().find(|(a, _)| same_port(*a, w.listen)) {
                        return Err(ConfigError::new(
                            here,
                            format!("{} is already used by `{other}` in this process", w.listen),
                        ));
                    }
                    listeners.push((w.listen, here));
                }
                ConnectorConfig::DastraSink(_) => sinks.push(name.as_str()),
                _ => {}
            }
        }
        let group = match &self.bus {
            BusConfig::Kafka(k) => k.group_id.as_ref().map(|g| ("bus.group_id", g)),
            BusConfig::Nats(n) => n.group_id.as_ref().map(|g| ("bus.group_id", g)),
        };
        if let (Some((at, g)), true) = (group, sinks.len() > 1) {
            return Err(ConfigError::new(
                at,
                format!(
                    "`{g}` would put the sinks {sinks:?} in one consumer group, splitting their events; remove it (each sink then uses its name)"
                ),
            ));
        }
        Ok(())
    }

    /// What connector `name` of this config gets from the framework.
    pub fn context(&self, name: &str, codec: &Codec, admin: &dastra_connect_core::admin::Admin) -> ConnectorContext {
        ConnectorContext {
            name: name.to_owned(),
            bus: self.bus.clone(),
            topics: self.topics.clone(),
            codec: codec.clone(),
            metrics: admin.metrics().clone(),
            admin: admin.clone(),
        }
    }

    /// The connector names, in order.
    pub fn connector_names(&self) -> Vec<&str> {
        self.connectors.keys().map(String::as_str).collect()
    }

    /// The codec this config describes.
    pub fn codec(&self) -> anyhow::Result<Codec> {
        let registry = match &self.codec.schema_registry {
            Some(r) => {
                let mut rc = RegistryConfig::new(r.url.clone());
                rc.username = r.username.clone();
                rc.password = r.password.clone();
                rc.auto_register = r.auto_register;
                rc.timeout = r.timeout;
                Some(Arc::new(SchemaRegistryClient::new(rc)?))
            }
            None => None,
        };
        let base = match self.codec.format {
            PayloadFormat::Avro => Codec::single_object(),
            PayloadFormat::Json => Codec::json(),
            PayloadFormat::Confluent => {
                let r = registry.clone().ok_or_else(|| anyhow::anyhow!("codec.schema_registry is required"))?;
                Codec::confluent(r)
            }
        };
        Ok(match registry {
            Some(r) if self.codec.format != PayloadFormat::Confluent => base.with_registry(r),
            _ => base,
        })
    }
}

/// Two listen addresses that cannot both be bound: same port, and same IP or one of them unspecified.
fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.port() != 0 && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

impl ConnectorConfig {
    /// Builds the connector (the one `match` over the closed set).
    pub fn build(&self) -> Box<dyn Connector> {
        match self {
            ConnectorConfig::DastraSink(c) => Box::new(DastraSink::new((**c).clone())),
            ConnectorConfig::DastraWebhookReceiver(c) => Box::new(WebhookReceiver::new(c.clone())),
            ConnectorConfig::Servicenow(c) => Box::new(dastra_connect_servicenow::ServiceNowSource::new((**c).clone())),
            ConnectorConfig::Netbox(c) => Box::new(dastra_connect_netbox::NetBoxSource::new((**c).clone())),
            ConnectorConfig::Coupa(c) => Box::new(dastra_connect_coupa::CoupaSource::new((**c).clone())),
            ConnectorConfig::Openmetadata(c) => {
                Box::new(dastra_connect_openmetadata::OpenMetadataSource::new((**c).clone()))
            }
            ConnectorConfig::Hubspot(c) => Box::new(dastra_connect_hubspot::HubSpotSource::new((**c).clone())),
            ConnectorConfig::Files(c) => Box::new(dastra_connect_files::FilesSource::new((**c).clone())),
            ConnectorConfig::Debezium(c) => Box::new(dastra_connect_debezium::DebeziumSource::new((**c).clone())),
            ConnectorConfig::Topic(c) => Box::new(dastra_connect_debezium::TopicSource::new((**c).clone())),
            ConnectorConfig::Salesforce(c) => Box::new(dastra_connect_salesforce::SalesforceSource::new((**c).clone())),
            ConnectorConfig::Datahub(c) => Box::new(dastra_connect_datahub::DataHubSource::new((**c).clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
bus: { type: nats, servers: ["nats://127.0.0.1:4222"] }
connectors:
  hooks:
    type: dastra_webhook_receiver
    signing_keys: ["k1"]
"#;

    #[test]
    fn a_minimal_config_parses_with_defaults() {
        let cfg = AppConfig::parse(GOOD).unwrap();
        assert_eq!(cfg.topics.prefix, "dastra");
        assert_eq!(cfg.admin.listen.port(), 9090);
        assert_eq!(cfg.connector_names(), vec!["hooks"]);
        assert!(!format!("{cfg:?}").contains("k1"), "secrets never print");
    }

    #[test]
    fn unknown_keys_fail_with_their_path() {
        let err = AppConfig::parse(&GOOD.replace("signing_keys", "signing_kyes")).unwrap_err();
        assert!(err.to_string().contains("connectors.hooks"), "{err}");
        assert!(err.to_string().contains("signing_kyes"), "{err}");
        let err = AppConfig::parse(&format!("{GOOD}\nadmn: {{}}\n")).unwrap_err();
        assert!(err.to_string().contains("admn"), "{err}");
    }

    #[test]
    fn cross_field_rules_name_the_key() {
        let err = AppConfig::parse(&GOOD.replace("signing_keys: [\"k1\"]", "require_signature: true")).unwrap_err();
        assert_eq!(err.path, "connectors.hooks.signing_keys");
        let err = AppConfig::parse(&format!("{GOOD}codec: {{ format: confluent }}\n")).unwrap_err();
        assert_eq!(err.path, "codec.schema_registry");
        let twice = format!("{GOOD}  hooks:\n    type: dastra_webhook_receiver\n    signing_keys: [\"k\"]\n");
        assert!(AppConfig::parse(&twice).unwrap_err().reason.contains("duplicate"));
        let err = AppConfig::parse(&GOOD.replace("  hooks:", "  \"bad name\":")).unwrap_err();
        assert_eq!(err.path, "connectors.bad name");
    }

    #[test]
    fn existing_topics_read_on_nats_must_be_in_the_stream() {
        let cdc = "  cdc:\n    type: debezium\n    topics: [{topic: erp.public.suppliers, mapping: '.'}]\n";
        let err = AppConfig::parse(&format!("{GOOD}{cdc}")).unwrap_err();
        assert_eq!(err.path, "connectors.cdc.topics[0].topic");
        assert!(err.reason.contains("erp.public.suppliers"), "{err}");
        let ok = GOOD.replace("4222\"]", "4222\"], stream_subjects: [\"dastra.>\", \"dastra-connect.>\", \"erp.>\"]");
        AppConfig::parse(&format!("{ok}{cdc}")).unwrap();
        // Debezium Server's subjects in the company's own stream are not the bus stream's; on Kafka
        // `nats_stream` is refused.
        let server = "  cdc:\n    type: debezium\n    nats_stream: DebeziumStream\n    topics: [{topic: erp.public.suppliers, mapping: '.', key: '{id}'}]\n";
        AppConfig::parse(&format!("{GOOD}{server}")).unwrap();
        let kafka = GOOD.replace(
            r#"{ type: nats, servers: ["nats://127.0.0.1:4222"] }"#,
            r#"{ type: kafka, brokers: "localhost:9092" }"#,
        );
        assert_ne!(kafka, GOOD);
        assert_eq!(AppConfig::parse(&format!("{kafka}{server}")).unwrap_err().path, "connectors.cdc.nats_stream");
        let topic = "  own:\n    type: topic\n    topics: [{topic: dastra.own, mapping: '.'}]\n";
        assert_eq!(AppConfig::parse(&format!("{GOOD}{topic}")).unwrap_err().path, "connectors.own.topics[0].version");
        let datahub = "  catalog:\n    type: datahub\n    params: {tag_map: {PII: {sensitiveData: true}}}\n";
        let err = AppConfig::parse(&format!("{GOOD}{datahub}")).unwrap_err();
        assert_eq!(err.path, "connectors.catalog.topic");
        assert!(err.reason.contains("MetadataChangeLog_Versioned_v1"), "{err}");
        let ok = GOOD.replace(
            "4222\"]",
            "4222\"], stream_subjects: [\"dastra.>\", \"dastra-connect.>\", \"MetadataChangeLog_Versioned_v1.>\"]",
        );
        AppConfig::parse(&format!("{ok}{datahub}")).unwrap();
        let bad = datahub.replace("sensitiveData: true", "personalDataCategory: Gossip");
        assert_eq!(
            AppConfig::parse(&format!("{ok}{bad}")).unwrap_err().path,
            "connectors.catalog.params.tag_map.PII.personalDataCategory"
        );
    }

    #[test]
    fn cross_section_mistakes_name_the_key() {
        // A topic prefix the NATS stream does not capture: publishes would time out with "no responders".
        let err = AppConfig::parse(&format!(
            "{GOOD}topics: {{ prefix: acme }}
"
        ))
        .unwrap_err();
        assert_eq!(err.path, "bus.stream_subjects");
        assert!(err.reason.contains("acme.>") && err.reason.contains("acme-connect.>"), "{err}");
        let ok = GOOD.replace("4222\"]", "4222\"], stream_subjects: [\"acme.>\", \"acme-connect.>\"]");
        AppConfig::parse(&format!(
            "{ok}topics: {{ prefix: acme }}
"
        ))
        .unwrap();
        // A prefix that is not a valid topic name / subject token.
        for bad in ["\"a b\"", "\"a.*\"", "\"a..b\"", "\".a\"", "\"\""] {
            let err = AppConfig::parse(&format!(
                "{GOOD}topics: {{ prefix: {bad} }}
"
            ))
            .unwrap_err();
            assert_eq!(err.path, "topics.prefix", "{bad}: {err}");
        }
        // The webhook receiver on the admin server's port.
        let clash = GOOD.replace("signing_keys: [\"k1\"]", "signing_keys: [\"k1\"]\n    listen: 127.0.0.1:9090");
        let err = AppConfig::parse(&clash).unwrap_err();
        assert_eq!(err.path, "connectors.hooks.listen");
        assert!(err.reason.contains("admin.listen"), "{err}");
        // One explicit consumer group for two sinks.
        let sink = |name: &str| {
            format!(
                "  {name}:\n    type: dastra_sink\n    dastra: {{ workspace_id: 1, auth: {{ type: api_key, api_key: k }} }}\n"
            )
        };
        let two = format!("{}{}{}", GOOD.replace("4222\"]", "4222\"], group_id: shared"), sink("s1"), sink("s2"));
        let err = AppConfig::parse(&two).unwrap_err();
        assert_eq!(err.path, "bus.group_id");
        AppConfig::parse(&format!("{}{}", GOOD.replace("4222\"]", "4222\"], group_id: shared"), sink("s1"))).unwrap();
        let err = AppConfig::parse(&format!("{GOOD}admin: {{ health_interval: 10ms }}\n")).unwrap_err();
        assert_eq!(err.path, "admin.health_interval");
    }

    /// Every README of the repository, recursively (build output and VCS data excluded).
    fn readmes(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !matches!(name, "target" | ".git" | "node_modules") && !name.starts_with('.') {
                    readmes(&path, out);
                }
            } else if name == "README.md" {
                out.push(path);
            }
        }
    }

    /// Every ```yaml block of every README is checked against the config types: a whole config (a
    /// bus is added where the block has none), a `bus:` block (with a connector added), or a
    /// `dastra:` client block (inside a sink). Any other YAML block fails the test, so the
    /// documentation cannot drift from the config. Every `${VAR}` is set, `*_file` paths exist.
    #[test]
    fn readme_sample_configs_are_valid() {
        let root = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let mut docs = Vec::new();
        readmes(&root, &mut docs);
        // Secrets given as `<key>_file: /var/run/…` are read from a file that exists here.
        let secret = tempfile::NamedTempFile::new().unwrap();
        // (Shaped like a NATS .creds document, what `credentials` takes.)
        std::fs::write(secret.path(), "-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n").unwrap();
        let file_ref = regex::Regex::new(r"(?m)(_file: *)(/\S+)").unwrap();
        let hooks = "connectors:\n  hooks: { type: dastra_webhook_receiver, signing_keys: [\"k\"] }\n";
        let mut checked = 0;
        for doc in &docs {
            let text = std::fs::read_to_string(doc).unwrap();
            for block in text.split("```yaml\n").skip(1) {
                let raw = block.split("```").next().unwrap();
                let yaml = file_ref.replace_all(raw, format!("${{1}}{}", secret.path().display())).to_string();
                let first =
                    yaml.lines().find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).unwrap_or("");
                let full = if yaml.contains("\nconnectors:") || yaml.starts_with("connectors:") {
                    if yaml.contains("bus:") {
                        yaml.clone()
                    } else {
                        format!("bus: {{ type: kafka, brokers: \"localhost:9092\" }}\n{yaml}")
                    }
                } else if first.starts_with("bus:") {
                    format!("{yaml}{hooks}")
                } else if first.starts_with("dastra:") {
                    let indented: String = yaml.lines().map(|l| format!("    {l}\n")).collect();
                    format!(
                        "bus: {{ type: kafka, brokers: \"localhost:9092\" }}\nconnectors:\n  sink:\n    type: dastra_sink\n{indented}"
                    )
                } else {
                    panic!("{}: a ```yaml block that is not a config the test can check:\n{yaml}", doc.display());
                };
                let cfg: Result<AppConfig, _> = config::from_yaml_str_with_env(&full, |_| Some("1".into()))
                    .and_then(|c: AppConfig| c.validate().map(|_| c));
                if let Err(e) = cfg {
                    panic!("{}: a sample config is invalid: {e}\n{yaml}", doc.display());
                }
                checked += 1;
            }
        }
        assert!(checked >= 9, "only {checked} sample configs found in {docs:?}");
    }

    #[test]
    fn the_checked_in_json_schema_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../", "schemas/config/dastra-connect.schema.json");
        let current = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            current == crate::commands::schemas::config_schema_json(),
            "{path} is stale: run `cargo run -p dastra-connect -- schemas config --write`"
        );
    }
}
