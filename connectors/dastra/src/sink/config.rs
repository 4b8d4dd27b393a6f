//! Config of the Dastra sink (`type: dastra_sink`).

use std::collections::BTreeMap;
use std::time::Duration;

use dastra_connect_core::config::ConfigError;
use dastra_connect_core::event::EntityKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::DastraClientConfig;

/// What to do in Dastra when the source deletes an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// `DELETE` the entity.
    #[default]
    Delete,
    /// Archive it (DataProcessings, Contracts, DSRs; Tasks by `archived`); others fall back to delete.
    Archive,
    /// Leave it in Dastra.
    Ignore,
}

/// How Actors are found again in Dastra (Actors have no `ref` field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(tag = "by", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActorKey {
    /// By company name (legal persons) or given + family name (natural persons). Safe when names are
    /// unique in the workspace.
    #[default]
    NaturalKey,
    /// By a custom field holding the entity key; the field must exist in the workspace (Dastra drops
    /// unknown custom fields).
    CustomField {
        /// The custom field's variable name.
        name: String,
    },
}

/// Entity policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SinkPolicy {
    /// Delete policy per entity (`asset`, `actor`, `contract`, `processing`, `datafield`,
    /// `relationship`, `dsr`, `task`, `dataset`); unlisted entities use `delete`.
    #[serde(default)]
    pub deletes: BTreeMap<String, DeletePolicy>,
    /// How Actors are matched.
    #[serde(default)]
    pub actor_key: ActorKey,
    /// Where DSR and Task attachments may be downloaded from, and how large inline ones may be.
    #[serde(default)]
    pub attachments: AttachmentPolicy,
}

/// Where the sink may download DSR attachments from: it fetches the URL an event names, from inside
/// the company's network, so the URL is checked first. Whatever the list, only `http(s)` URLs are
/// fetched, never a link-local address (cloud metadata endpoints such as 169.254.169.254), and a
/// redirect is followed only to the same host. A refused URL sends the event to the DLQ
/// (`attachment_not_allowed`); the URL itself is never logged (pre-signed URLs carry credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentPolicy {
    /// Hosts attachment URLs may name: exact (`files.example.com`) or a subdomain wildcard
    /// (`*.s3.eu-west-3.amazonaws.com`). Empty: any host.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Refuse plain `http://` URLs.
    #[serde(default)]
    pub https_only: bool,
    /// Largest attachment carried inline in an event (`contentBase64`), in decoded bytes. A larger
    /// one goes to the DLQ (`attachment_too_large`). Inline content travels in the bus message:
    /// keep this under the bus's message size limit (Kafka's default is 1 MB).
    #[serde(default = "default_max_inline_bytes")]
    pub max_inline_bytes: usize,
}

fn default_max_inline_bytes() -> usize {
    DEFAULT_MAX_INLINE_BYTES
}

/// Default of [`AttachmentPolicy::max_inline_bytes`]: 512 KiB.
pub const DEFAULT_MAX_INLINE_BYTES: usize = 512 * 1024;

impl Default for AttachmentPolicy {
    fn default() -> Self {
        Self { allowed_hosts: Vec::new(), https_only: false, max_inline_bytes: DEFAULT_MAX_INLINE_BYTES }
    }
}

impl AttachmentPolicy {
    /// Checks `raw` against the policy; answers the URL to fetch or why it is refused (naming the
    /// host at most, never the path or query).
    pub fn check(&self, raw: &str) -> Result<url::Url, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        match url.scheme() {
            "https" => {}
            "http" if !self.https_only => {}
            other => return Err(format!("scheme `{other}` is not allowed")),
        }
        let host = match url.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_link_local() || ip.is_unspecified() || ip.is_broadcast() => {
                return Err(format!("address {ip} is not allowed (link-local / unspecified)"));
            }
            Some(url::Host::Ipv6(ip))
                if ip.is_unspecified()
                    || (ip.segments()[0] & 0xffc0) == 0xfe80
                    || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local()) =>
            {
                return Err(format!("address {ip} is not allowed (link-local / unspecified)"));
            }
            Some(h) => h.to_string(),
            None => return Err("the URL has no host".into()),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if !self.allowed_hosts.is_empty() && !self.allowed_hosts.iter().any(|p| host_matches(p, &host)) {
            return Err(format!("host {host} is not in policy.attachments.allowed_hosts"));
        }
        Ok(url)
    }
}

/// `pattern` is a host name, or `*.` followed by a domain that matches its subdomains (not itself).
fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
        None => host == pattern,
    }
}

impl SinkPolicy {
    /// The delete policy of `kind`.
    pub fn delete_policy(&self, kind: EntityKind) -> DeletePolicy {
        self.deletes.get(kind.as_str()).copied().unwrap_or_default()
    }
}

/// What happens to later events of a key whose earlier event failed permanently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum ParkedPolicy {
    /// They go to the DLQ too (reason `parked`), so that `dlq redrive` replays them in order after the
    /// failed one.
    #[default]
    Dlq,
    /// They wait: the key's newest event is held in the pending store (no deadline) and applied
    /// once `dlq redrive` un-parks the key; nothing of the key reaches the DLQ but the failed
    /// event itself.
    Wait,
}

/// The Dastra sink.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DastraSinkConfig {
    /// The Dastra API: URL, workspace, auth, timeouts, retries, quota.
    pub dastra: DastraClientConfig,
    /// Entities to consume (default: all). Topics are `<prefix>.changes.<entity>`.
    #[serde(default = "all_entities")]
    pub entities: Vec<String>,
    /// Entity policies.
    #[serde(default)]
    pub policy: SinkPolicy,
    /// Later events of a parked key.
    #[serde(default)]
    pub parked: ParkedPolicy,
    /// Keys worked on at once (requests still go through the quota limiter).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Events held in memory (queued behind in-flight keys) before consuming pauses.
    #[serde(default = "default_buffered")]
    pub max_buffered: usize,
    /// Start the keys of DSRs and deletes, then of live changes, before the keys of snapshot
    /// sweeps and backfills already read (the quota classes), a waiting lower class at least once
    /// in ten starts so a backlog is never starved; a key's own events keep their order either way.
    /// `false`: keys start in the order they were read, so a live change waits behind the backlog
    /// read before it (up to `max_buffered` keys).
    #[serde(default = "default_lanes")]
    pub priority_lanes: bool,
    /// Largest event value accepted, in bytes; larger ones go to the DLQ (reason `too_large`)
    /// without being decoded.
    #[serde(default = "default_max_event")]
    pub max_event_bytes: usize,
    /// How often consumed offsets are committed.
    #[serde(default = "default_commit", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub commit_interval: Duration,
    /// How long an event waits for a referenced entity before it goes to the DLQ.
    #[serde(default = "default_pending", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub pending_deadline: Duration,
    /// Longest pause between two attempts of a failing (retryable) key.
    #[serde(default = "default_backoff", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_backoff: Duration,
    /// On SIGTERM, how long in-flight work may take to finish before it is abandoned (it is then
    /// redelivered and reconciled by the next owner).
    #[serde(default = "default_grace", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub shutdown_grace: Duration,
    /// How ledger entries are written (every build since the compact encoding reads both):
    /// `compact` (binary, ~100 B per entity) or `json` (what earlier builds wrote and can read).
    /// Keep `json` while replicas of an earlier build may still run against the same ledger (a
    /// rolling upgrade, a possible rollback), then switch to `compact`.
    #[serde(default)]
    pub ledger_encoding: LedgerEncoding,
    /// Ledger writes of events that need no Dastra request (an unchanged repeat whose version moves
    /// on, a skipped delete) are batched: written together with one pipelined batch write when
    /// this many are waiting or after `ledger_batch_delay`; their offsets are committed only once
    /// the batch is durable. `0` writes each one on its own before its offset is released (the
    /// behaviour of earlier builds; about 15 000 such events/s on NATS instead of bus speed).
    #[serde(default = "default_ledger_batch")]
    pub ledger_batch: usize,
    /// Longest time a batched ledger write waits for its batch to fill (see `ledger_batch`).
    #[serde(default = "default_ledger_batch_delay", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ledger_batch_delay: Duration,
    /// Deletes of one entity type, and identical JSON Patches of one type, from keys worked on at
    /// the same time are sent as one `POST <collection>/batch-delete` / `PATCH <collection>`
    /// (Assets, Actors, Contracts, DataFields, DataProcessings, Tasks). A delete or patch waits up
    /// to this long for others to join it, then for its quota slot (members keep joining while
    /// the quota holds the request back). A batch is at most `batch_max` members and at most
    /// `max_in_flight` (keys worked on at once). `0s`: every request on its own route.
    #[serde(default = "default_batch_window", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub batch_window: Duration,
    /// Most members of one batch request.
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// Read-ahead in a backlog: while events keep coming, keys that could start wait for up to
    /// this long (and up to `max_buffered` events read), so that the later events of a key
    /// coalesce into one request instead of costing one each after the first was applied. The
    /// waiting keys start once no event came for 5 ms (the backlog is read), once `max_buffered`
    /// keys wait, or at the limit; a live event's key starts 5 ms after it is read. `0s`: a key
    /// starts as soon as it is read (earlier builds).
    #[serde(default = "default_read_ahead", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub read_ahead: Duration,
}

/// How the sink writes its ledger entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerEncoding {
    /// The compact binary encoding (`sink::ledger` format 1).
    #[default]
    Compact,
    /// JSON objects, readable by builds before the compact encoding.
    Json,
}

fn all_entities() -> Vec<String> {
    EntityKind::ALL.iter().map(|k| k.as_str().to_owned()).collect()
}
fn default_in_flight() -> usize {
    8
}
fn default_buffered() -> usize {
    20_000
}
fn default_lanes() -> bool {
    true
}
fn default_max_event() -> usize {
    1024 * 1024
}
fn default_commit() -> Duration {
    Duration::from_secs(1)
}
fn default_pending() -> Duration {
    Duration::from_secs(3600)
}
fn default_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_ledger_batch() -> usize {
    1000
}
fn default_ledger_batch_delay() -> Duration {
    Duration::from_millis(5)
}
fn default_batch_window() -> Duration {
    Duration::from_millis(5)
}
fn default_read_ahead() -> Duration {
    Duration::from_millis(100)
}
fn default_batch_max() -> usize {
    100
}
fn default_grace() -> Duration {
    Duration::from_secs(20)
}

impl DastraSinkConfig {
    /// The entity kinds to consume.
    pub fn kinds(&self) -> Vec<EntityKind> {
        self.entities.iter().filter_map(|e| e.parse().ok()).collect()
    }

    /// Checks the config without I/O.
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        self.dastra.validate().map_err(|e| ConfigError::new(format!("{at}.dastra"), e.to_string()))?;
        for (i, e) in self.entities.iter().enumerate() {
            if e.parse::<EntityKind>().is_err() {
                return Err(ConfigError::new(format!("{at}.entities[{i}]"), format!("unknown entity `{e}`")));
            }
        }
        for (i, p) in self.policy.attachments.allowed_hosts.iter().enumerate() {
            let name = p.strip_prefix("*.").unwrap_or(p);
            if name.is_empty() || name.contains(['*', '/', ':', ' ']) {
                return Err(ConfigError::new(
                    format!("{at}.policy.attachments.allowed_hosts[{i}]"),
                    format!("`{p}` is not a host name or `*.domain`"),
                ));
            }
        }
        for k in self.policy.deletes.keys() {
            if k.parse::<EntityKind>().is_err() {
                return Err(ConfigError::new(format!("{at}.policy.deletes.{k}"), format!("unknown entity `{k}`")));
            }
        }
        if self.max_in_flight == 0 || self.max_in_flight > 256 {
            return Err(ConfigError::new(format!("{at}.max_in_flight"), "must be 1..=256"));
        }
        if self.ledger_batch > 0
            && (self.ledger_batch_delay.is_zero() || self.ledger_batch_delay > Duration::from_secs(10))
        {
            return Err(ConfigError::new(format!("{at}.ledger_batch_delay"), "must be between 1ms and 10s"));
        }
        if self.batch_window > Duration::from_secs(10) {
            return Err(ConfigError::new(format!("{at}.batch_window"), "must be at most 10s (0s turns batching off)"));
        }
        if self.read_ahead > Duration::from_secs(10) {
            return Err(ConfigError::new(format!("{at}.read_ahead"), "must be at most 10s (0s turns it off)"));
        }
        if self.batch_max == 0 || self.batch_max > 1000 {
            return Err(ConfigError::new(format!("{at}.batch_max"), "must be 1..=1000"));
        }
        if self.max_buffered < self.max_in_flight {
            return Err(ConfigError::new(format!("{at}.max_buffered"), "must be at least max_in_flight"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid sink config (defaults for all but the Dastra essentials).
    fn valid() -> DastraSinkConfig {
        let dastra = serde_json::json!({"workspace_id": 1, "auth": {"type": "api_key", "api_key": "k"}});
        let cfg: DastraSinkConfig = serde_json::from_value(serde_json::json!({ "dastra": dastra })).unwrap();
        assert!(cfg.validate("connectors.sink").is_ok());
        cfg
    }

    /// The key and the reason `validate` refuses `cfg` with.
    fn refused(cfg: &DastraSinkConfig) -> (String, String) {
        let e = cfg.validate("connectors.sink").expect_err("refused");
        (e.path, e.reason)
    }

    #[test]
    fn a_read_ahead_over_ten_seconds_is_refused_with_its_key() {
        let mut cfg = valid();
        assert_eq!(cfg.read_ahead, Duration::from_millis(100), "the default");
        cfg.read_ahead = Duration::from_millis(10_001);
        let (key, reason) = refused(&cfg);
        assert_eq!(key, "connectors.sink.read_ahead");
        assert!(reason.contains("at most 10s"), "{reason}");
        cfg.read_ahead = Duration::ZERO;
        assert!(cfg.validate("connectors.sink").is_ok(), "0s turns it off");
    }

    #[test]
    fn a_batch_window_over_ten_seconds_is_refused_with_its_key() {
        let mut cfg = valid();
        cfg.batch_window = Duration::from_secs(10);
        assert!(cfg.validate("connectors.sink").is_ok(), "10s is the bound");
        cfg.batch_window = Duration::from_millis(10_001);
        let (key, reason) = refused(&cfg);
        assert_eq!(key, "connectors.sink.batch_window");
        assert!(reason.contains("at most 10s"), "{reason}");
        cfg.batch_window = Duration::ZERO;
        assert!(cfg.validate("connectors.sink").is_ok(), "0s turns batching off");
    }

    #[test]
    fn a_batch_max_outside_1_to_1000_is_refused_with_its_key() {
        let mut cfg = valid();
        for ok in [1, 1000] {
            cfg.batch_max = ok;
            assert!(cfg.validate("connectors.sink").is_ok(), "batch_max {ok}");
        }
        for bad in [0, 1001] {
            cfg.batch_max = bad;
            let (key, reason) = refused(&cfg);
            assert_eq!(key, "connectors.sink.batch_max", "batch_max {bad}");
            assert!(reason.contains("1..=1000"), "batch_max {bad}: {reason}");
        }
    }

    #[test]
    fn attachment_urls_are_checked_against_the_policy() {
        let any = AttachmentPolicy::default();
        assert!(any.check("https://files.example.com/a.pdf?X-Amz-Signature=secret").is_ok());
        assert!(any.check("http://127.0.0.1:8080/a.pdf").is_ok(), "http allowed unless https_only");
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/x",
            "http://[::ffff:169.254.169.254]/x",
            "http://0.0.0.0/x",
            "file:///etc/passwd",
            "ftp://files.example.com/a.pdf",
            "not a url",
        ] {
            assert!(any.check(bad).is_err(), "{bad} must be refused");
        }
        let listed = AttachmentPolicy {
            allowed_hosts: vec!["files.example.com".into(), "*.s3.amazonaws.com".into()],
            https_only: true,
            ..AttachmentPolicy::default()
        };
        assert!(listed.check("https://FILES.example.com/a").is_ok());
        assert!(listed.check("https://bucket.s3.amazonaws.com/a").is_ok());
        let refused = listed.check("https://s3.amazonaws.com/a").unwrap_err();
        assert!(refused.contains("not in policy.attachments.allowed_hosts"), "{refused}");
        assert!(listed.check("https://evil.example.com/a").is_err());
        assert!(listed.check("https://files.example.com.evil.io/a").is_err());
        assert!(listed.check("http://files.example.com/a").is_err(), "https_only");
        let why = listed.check("https://evil.example.com/path?token=secret").unwrap_err();
        assert!(!why.contains("secret") && !why.contains("path"), "no path or query in the reason: {why}");
    }
}
