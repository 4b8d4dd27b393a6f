//! Bus configuration: `BusConfig { type: kafka | nats }`, strict (unknown keys are errors), defaults
//! explicit, secrets wrapped in [`Secret`]; `validate()` checks without I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::BusError;
use crate::config::Secret;

/// Which bus to use and how to reach it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
// Built once at start; boxing would only complicate config code.
#[allow(clippy::large_enum_variant)]
pub enum BusConfig {
    /// Apache Kafka (or any Kafka-protocol broker) through librdkafka.
    Kafka(KafkaConfig),
    /// NATS JetStream.
    Nats(NatsConfig),
}

impl BusConfig {
    /// Checks the configuration without any I/O.
    pub fn validate(&self) -> Result<(), BusError> {
        match self {
            Self::Kafka(k) => k.validate(),
            Self::Nats(n) => n.validate(),
        }
    }
}

/// Kafka connection and client settings.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port` comma-separated (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Consumer group id; when absent the caller's default (usually the connector name) is used.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Static group membership (librdkafka `group.instance.id`): a stable id per replica, e.g. the
    /// pod name of a StatefulSet (`${POD_NAME}`). A restarted replica takes its partitions back at
    /// once instead of waiting for the group to rebalance (and a rolling restart causes no
    /// rebalance storm). Each replica of a group needs its own id; a member that goes away for
    /// good keeps its partitions until `session.timeout.ms` passes.
    #[serde(default)]
    pub group_instance_id: Option<String>,
    /// SASL user name (sets `sasl.username`); give `security.protocol` and `sasl.mechanism` in
    /// `properties`.
    #[serde(default)]
    pub sasl_username: Option<String>,
    /// SASL password (sets `sasl.password`); may be given as `sasl_password_file`.
    #[serde(default)]
    pub sasl_password: Option<Secret>,
    /// librdkafka properties passed through as they are (e.g. `security.protocol: SASL_SSL`,
    /// `sasl.mechanism: SCRAM-SHA-512`, `ssl.ca.location`, `compression.type`). Values of keys that
    /// contain `password`, `secret` or `key` are printed as `***`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Create missing topics at start (admin API). Compacted state topics are created with
    /// `cleanup.policy=compact`.
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// Partitions of topics this process creates.
    #[serde(default = "default_partitions_i32")]
    pub topic_partitions: i32,
    /// Replication factor of topics this process creates; -1 = the broker's default.
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// How long a publish may take before it fails (librdkafka `message.timeout.ms`), and the timeout
    /// of admin and metadata requests.
    #[serde(default = "default_kafka_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

/// Keys whose values are secrets when printed.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.contains("key")
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret_key(k) { "***" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("group_instance_id", &self.group_instance_id)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password)
            .field("properties", &props)
            .field("create_topics", &self.create_topics)
            .field("topic_partitions", &self.topic_partitions)
            .field("replication_factor", &self.replication_factor)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Properties the bus sets itself: overriding them would break its delivery guarantees.
const KAFKA_RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "use `brokers`"),
    ("metadata.broker.list", "use `brokers`"),
    ("group.id", "use `group_id`"),
    ("group.instance.id", "use `group_instance_id`"),
    ("enable.auto.commit", "offsets are committed by the bus only after the work is durable"),
    ("enable.auto.offset.store", "offsets are committed by the bus only after the work is durable"),
    ("partitioner", "the bus uses `murmur2_random` so Kafka and NATS partition keys identically"),
    ("enable.idempotence", "the publisher needs idempotence to keep per-key order across retries"),
    ("acks", "the publisher needs `acks=all` so a publish is durable when it returns"),
];

impl KafkaConfig {
    /// A config with defaults for `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            group_id: None,
            group_instance_id: None,
            sasl_username: None,
            sasl_password: None,
            properties: BTreeMap::new(),
            create_topics: true,
            topic_partitions: default_partitions_i32(),
            replication_factor: default_replication(),
            timeout: default_kafka_timeout(),
        }
    }

    /// Checks the configuration without any I/O.
    pub fn validate(&self) -> Result<(), BusError> {
        if self.brokers.trim().is_empty() {
            return Err(BusError::config("brokers", "at least one `host:port` is required"));
        }
        for (key, why) in KAFKA_RESERVED {
            if self.properties.contains_key(*key) {
                return Err(BusError::config(format!("properties.{key}"), format!("cannot be overridden: {why}")));
            }
        }
        if self.sasl_password.is_some() && self.properties.contains_key("sasl.password") {
            return Err(BusError::config("sasl_password", "give either `sasl_password` or `properties.sasl.password`"));
        }
        if let Some(id) = &self.group_instance_id
            && (id.trim().is_empty() || id.len() > 249)
        {
            return Err(BusError::config("group_instance_id", "must be 1 to 249 characters (e.g. the pod name)"));
        }
        if self.topic_partitions == 0 || self.topic_partitions < -1 {
            return Err(BusError::config("topic_partitions", "must be ≥ 1 (or -1 for the broker default)"));
        }
        if self.replication_factor == 0 || self.replication_factor < -1 {
            return Err(BusError::config("replication_factor", "must be ≥ 1 (or -1 for the broker default)"));
        }
        if self.timeout.is_zero() {
            return Err(BusError::config("timeout", "must be positive"));
        }
        if matches!(&self.group_id, Some(g) if g.trim().is_empty()) {
            return Err(BusError::config("group_id", "must not be empty"));
        }
        Ok(())
    }

    /// The librdkafka properties common to every client: brokers, SASL credentials, pass-through.
    pub(crate) fn client_config(&self) -> rdkafka::ClientConfig {
        let mut cfg = rdkafka::ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        if let Some(user) = &self.sasl_username {
            cfg.set("sasl.username", user);
        }
        if let Some(pw) = &self.sasl_password {
            cfg.set("sasl.password", pw.expose());
        }
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        // Log through `tracing` at the level librdkafka decides, never the config dump.
        cfg.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
        cfg
    }
}

/// TLS settings for NATS (paths to PEM files).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsTls {
    /// Require TLS even if the server does not ask for it.
    #[serde(default)]
    pub required: bool,
    /// CA certificate(s) to trust, PEM.
    #[serde(default)]
    pub ca_path: Option<PathBuf>,
    /// Client certificate, PEM (mutual TLS; needs `key_path`).
    #[serde(default)]
    pub cert_path: Option<PathBuf>,
    /// Client private key, PEM.
    #[serde(default)]
    pub key_path: Option<PathBuf>,
}

/// NATS JetStream connection and partitioning settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:4222`, `tls://…`).
    pub servers: Vec<String>,
    /// User name (with `password`).
    #[serde(default)]
    pub user: Option<String>,
    /// Password (with `user`); may be given as `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Token authentication; may be given as `token_file`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// NKey seed (`SU…`); may be given as `nkey_file`.
    #[serde(default)]
    pub nkey: Option<Secret>,
    /// The content of a `.creds` file (JWT + NKey seed); usually given as `credentials_file: PATH`.
    #[serde(default)]
    pub credentials: Option<Secret>,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<NatsTls>,
    /// The JetStream stream holding the bus subjects.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subjects the stream captures (created if missing).
    #[serde(default = "default_stream_subjects")]
    pub stream_subjects: Vec<String>,
    /// Replicas of the stream and KV buckets this process creates (1, 3 or 5).
    #[serde(default = "default_one_usize")]
    pub stream_replicas: usize,
    /// Partitions per topic: a key goes to subject `<topic>.<partition>` with Kafka's murmur2.
    #[serde(default = "default_partitions_u32")]
    pub partitions: u32,
    /// This replica's index (0-based): it owns the partitions `p` with `p % replicas == replica_index`.
    #[serde(default)]
    pub replica_index: u32,
    /// How many replicas share the partitions.
    #[serde(default = "default_one_u32")]
    pub replicas: u32,
    /// How long a replica's claim on a partition outlives the replica when it dies without letting
    /// go (a graceful stop releases at once). While `replicas` changes in a rolling restart, old
    /// and new replicas want some of the same partitions; the lease keeps one owner per partition.
    #[serde(default = "default_lease_ttl", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub lease_ttl: Duration,
    /// Durable consumer name prefix; when absent the caller's default (the connector name) is used.
    #[serde(default)]
    pub group_id: Option<String>,
    /// How long JetStream waits for an ack before redelivering; the sink commits a watermark, so
    /// this must exceed the longest time a message can wait for its effect (quota waits).
    #[serde(default = "default_ack_wait", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ack_wait: Duration,
    /// How many delivered-but-unacked messages a partition consumer may have. A sink's events
    /// stay unacknowledged until applied, so this also bounds how far it reads ahead in a backlog
    /// (the Dastra sink's `read_ahead` and `max_buffered`).
    #[serde(default = "default_max_ack_pending")]
    pub max_ack_pending: i64,
    /// Timeout of JetStream requests and publish acks.
    #[serde(default = "default_nats_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
}

impl NatsConfig {
    /// A config with defaults for one server URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            servers: vec![url.into()],
            user: None,
            password: None,
            token: None,
            nkey: None,
            credentials: None,
            tls: None,
            stream: default_stream(),
            stream_subjects: default_stream_subjects(),
            stream_replicas: 1,
            partitions: default_partitions_u32(),
            replica_index: 0,
            replicas: 1,
            lease_ttl: default_lease_ttl(),
            group_id: None,
            ack_wait: default_ack_wait(),
            max_ack_pending: default_max_ack_pending(),
            timeout: default_nats_timeout(),
        }
    }

    /// Checks the configuration without any I/O.
    pub fn validate(&self) -> Result<(), BusError> {
        if self.servers.is_empty() || self.servers.iter().any(|s| s.trim().is_empty()) {
            return Err(BusError::config("servers", "at least one non-empty server URL is required"));
        }
        let methods = [self.user.is_some(), self.token.is_some(), self.nkey.is_some(), self.credentials.is_some()];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(BusError::config("user", "give one of `user`+`password`, `token`, `nkey`, `credentials`"));
        }
        if let Some(creds) = &self.credentials
            && looks_like_a_path(creds.expose())
        {
            // The usual mistake: the field takes the document, `credentials_file` a path.
            return Err(BusError::config(
                "credentials",
                "this is a file path, but `credentials` takes the content of the .creds file: write `credentials_file:` instead",
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(BusError::config("password", "`user` and `password` go together"));
        }
        if let Some(tls) = &self.tls
            && tls.cert_path.is_some() != tls.key_path.is_some()
        {
            return Err(BusError::config("tls.key_path", "`cert_path` and `key_path` go together"));
        }
        let name_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok(&self.stream) {
            return Err(BusError::config("stream", "letters, digits, `-` and `_` only"));
        }
        if self.stream_subjects.is_empty() {
            return Err(BusError::config("stream_subjects", "at least one subject is required"));
        }
        if !matches!(self.stream_replicas, 1 | 3 | 5) {
            return Err(BusError::config("stream_replicas", "must be 1, 3 or 5"));
        }
        if self.partitions == 0 {
            return Err(BusError::config("partitions", "must be ≥ 1"));
        }
        if self.replicas == 0 {
            return Err(BusError::config("replicas", "must be ≥ 1"));
        }
        if self.replica_index >= self.replicas {
            return Err(BusError::config(
                "replica_index",
                format!("must be below `replicas` ({}), got {}", self.replicas, self.replica_index),
            ));
        }
        if self.lease_ttl < Duration::from_secs(3) {
            return Err(BusError::config("lease_ttl", "must be at least 3s (leases are renewed every third of it)"));
        }
        if let Some(g) = &self.group_id
            && !name_ok(g)
        {
            return Err(BusError::config("group_id", "letters, digits, `-` and `_` only"));
        }
        if self.ack_wait.is_zero() || self.timeout.is_zero() {
            return Err(BusError::config("ack_wait", "`ack_wait` and `timeout` must be positive"));
        }
        if self.max_ack_pending < 1 {
            return Err(BusError::config("max_ack_pending", "must be ≥ 1"));
        }
        Ok(())
    }

    /// The partitions this replica owns.
    pub fn owned_partitions(&self) -> Vec<u32> {
        (0..self.partitions).filter(|p| p % self.replicas.max(1) == self.replica_index).collect()
    }
}

/// A one-line value naming a file (`/…`, `./…`, `*.creds`), never a .creds document (multi-line).
fn looks_like_a_path(value: &str) -> bool {
    let v = value.trim();
    !v.contains('\n') && (v.starts_with('/') || v.starts_with("./") || v.ends_with(".creds"))
}

fn default_true() -> bool {
    true
}
fn default_partitions_i32() -> i32 {
    6
}
fn default_partitions_u32() -> u32 {
    6
}
fn default_replication() -> i32 {
    -1
}
fn default_kafka_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_stream() -> String {
    "DASTRA".to_owned()
}
fn default_stream_subjects() -> Vec<String> {
    vec!["dastra.>".to_owned(), "dastra-connect.>".to_owned()]
}
fn default_one_usize() -> usize {
    1
}
fn default_one_u32() -> u32 {
    1
}
fn default_lease_ttl() -> Duration {
    Duration::from_secs(15)
}
fn default_ack_wait() -> Duration {
    Duration::from_secs(300)
}
fn default_max_ack_pending() -> i64 {
    20_000
}
fn default_nats_timeout() -> Duration {
    Duration::from_secs(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_yaml_str_with_env;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn kafka_config_parses_with_defaults_and_redacts_secrets() {
        let yaml = "type: kafka\nbrokers: k1:9092\nsasl_password: hunter2\nproperties:\n  security.protocol: SASL_SSL\n  ssl.key.password: s3cret\n";
        let cfg: BusConfig = from_yaml_str_with_env(yaml, no_env).unwrap();
        cfg.validate().unwrap();
        let BusConfig::Kafka(k) = &cfg else { panic!("expected kafka") };
        assert_eq!(k.topic_partitions, 6);
        assert_eq!(k.timeout, Duration::from_secs(30));
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains("SASL_SSL"), "{dbg}");
    }

    #[test]
    fn unknown_keys_and_reserved_properties_are_rejected() {
        let err = from_yaml_str_with_env::<BusConfig>("type: kafka\nbrokers: a\nbrokerz: b\n", no_env).unwrap_err();
        assert!(err.reason.contains("unknown field `brokerz`"), "{err}");
        let err = from_yaml_str_with_env::<BusConfig>("type: nats\nservers: [x]\nstreem: y\n", no_env).unwrap_err();
        assert!(err.reason.contains("unknown field `streem`"), "{err}");
        let mut k = KafkaConfig::new("a:1");
        k.properties.insert("enable.auto.commit".into(), "true".into());
        assert!(matches!(k.validate(), Err(BusError::Config { path, .. }) if path == "properties.enable.auto.commit"));
    }

    #[test]
    fn static_membership_has_its_own_key() {
        let yaml = "type: kafka\nbrokers: a:1\ngroup_instance_id: dastra-sink-0\n";
        let cfg: BusConfig = from_yaml_str_with_env(yaml, no_env).unwrap();
        cfg.validate().unwrap();
        let BusConfig::Kafka(k) = &cfg else { panic!("expected kafka") };
        assert_eq!(k.group_instance_id.as_deref(), Some("dastra-sink-0"));
        let mut k = KafkaConfig::new("a:1");
        k.properties.insert("group.instance.id".into(), "x".into());
        assert!(matches!(k.validate(), Err(BusError::Config { path, .. }) if path == "properties.group.instance.id"));
        let mut k = KafkaConfig::new("a:1");
        k.group_instance_id = Some(" ".into());
        assert!(matches!(k.validate(), Err(BusError::Config { path, .. }) if path == "group_instance_id"));
    }

    #[test]
    fn nats_ownership_and_validation() {
        let yaml =
            "type: nats\nservers: [nats://127.0.0.1:4222]\npartitions: 5\nreplicas: 2\nreplica_index: 1\ntoken: abc\n";
        let cfg: BusConfig = from_yaml_str_with_env(yaml, no_env).unwrap();
        cfg.validate().unwrap();
        let BusConfig::Nats(n) = &cfg else { panic!("expected nats") };
        assert_eq!(n.owned_partitions(), vec![1, 3]);
        assert!(!format!("{n:?}").contains("abc"));
        let mut bad = n.clone();
        bad.replica_index = 2;
        assert!(matches!(bad.validate(), Err(BusError::Config { path, .. }) if path == "replica_index"));
        assert_eq!(n.lease_ttl, Duration::from_secs(15));
        let mut short = n.clone();
        short.lease_ttl = Duration::from_secs(1);
        assert!(matches!(short.validate(), Err(BusError::Config { path, .. }) if path == "lease_ttl"));
        let mut path_given = n.clone();
        path_given.token = None;
        path_given.credentials = Some(Secret::new("/var/run/secrets/nats/app.creds"));
        assert!(matches!(path_given.validate(), Err(BusError::Config { path, .. }) if path == "credentials"));
        path_given.credentials = Some(Secret::new("secrets/app.creds"));
        assert!(path_given.validate().is_err());
        path_given.credentials =
            Some(Secret::new("-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n"));
        path_given.validate().unwrap();
        let mut two = n.clone();
        two.user = Some("u".into());
        two.password = Some(Secret::new("p"));
        assert!(two.validate().is_err(), "token and user together must be rejected");
    }
}
