//! Test helpers: spawn real brokers (nats-server, tansu) and librdkafka MockClusters for tests.
//! Enabled by the crate feature `testkit` (add `dastra-connect-core = { path = "../core", features =
//! ["testkit"] }` to a crate's `[dev-dependencies]`).
//!
//! ```no_run
//! # async fn demo() {
//! use dastra_connect_core::testkit::{NatsServer, mock_kafka, unique_topic};
//! let nats = NatsServer::start().await;          // nats-server -js on a free port, killed on drop
//! let bus = nats.bus_config();                    // BusConfig::Nats pointing at it
//! let kafka = mock_kafka(3);                      // in-process Kafka, 3 brokers
//! let topic = unique_topic("changes");            // `dastra.test.changes-<pid>-<n>`
//! kafka.create_topic(&topic, 4);                  // the mock has no CreateTopics API
//! // Big records (10 MiB): nats-server `max_payload` from a config file; librdkafka
//! // `message.max.bytes` on the clients (mind the mock's 5 MiB per partition, see MockKafka).
//! let big_nats = NatsServer::start_with_config("max_payload: 16MB").await;
//! let big_kafka = mock_kafka(1).with_max_message_bytes(16 << 20);
//! # }
//! ```
//!
//! Binaries are found through `NATS_SERVER_BIN` / `TANSU_BIN`, falling back to
//! `${DASTRA_TOOLS_DIR:-$HOME/.cache/dastra-connect/tools}`; `scripts/tools.sh` installs them. A
//! missing binary panics with a message naming that script: tests never skip silently.
//!
//! Every helper panics on failure: they are for tests, where a panic with a clear message is the
//! right report.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod broker;
pub mod fake;

pub use broker::{BIG_KAFKA_PARTITIONS, BIG_MESSAGE_BYTES, Broker};

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::bus::{BusConfig, KafkaConfig, NatsConfig};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process and call: `<prefix>-<pid>-<n>-<nanos>` (letters, digits, `-`, `.`).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// A unique topic name under `dastra.test.`, which the default NATS stream subjects (`dastra.>`)
/// capture, and which is a valid Kafka topic name.
pub fn unique_topic(what: &str) -> String {
    unique(&format!("dastra.test.{what}"))
}

/// The tools directory: `$DASTRA_TOOLS_DIR` or `$HOME/.cache/dastra-connect/tools`.
pub fn tools_dir() -> PathBuf {
    if let Ok(d) = std::env::var("DASTRA_TOOLS_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/dastra-connect/tools")
}

/// Finds a tool: the env var, else `fallback` under [`tools_dir`]; panics naming `scripts/tools.sh`.
pub fn find_tool(env_var: &str, fallback: &str) -> PathBuf {
    let path = std::env::var_os(env_var).map(PathBuf::from).unwrap_or_else(|| tools_dir().join(fallback));
    if !path.is_file() {
        panic!(
            "{} does not exist ({env_var} unset or pointing elsewhere): run `eval \"$(bash scripts/tools.sh)\"` to install the test tools",
            path.display()
        );
    }
    path
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// Creates `$TMPDIR/dastra-testkit-<unique>`.
    pub fn new(what: &str) -> Self {
        let p = std::env::temp_dir().join(unique(&format!("dastra-testkit-{what}")));
        std::fs::create_dir_all(&p).expect("create scratch dir");
        Self(p)
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

async fn wait_for_tcp(port: u16, what: &str, log: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status}; log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        if Instant::now() > deadline {
            panic!(
                "{what} not listening on 127.0.0.1:{port} after 30 s; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `nats-server -js` on 127.0.0.1, with its own store directory; killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    dir: ScratchDir,
    port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port (`-p -1`; the port is read from the ports file).
    pub async fn start() -> Self {
        Self::start_with_args(&[]).await
    }

    /// Starts a server with extra command-line arguments (e.g. `["--user", "u", "--pass", "p"]`),
    /// kept for restarts.
    pub async fn start_with_args(extra_args: &[&str]) -> Self {
        Self::start_inner(None, extra_args).await
    }

    /// Starts a server with a configuration file whose text is `conf` (nats-server's own format,
    /// e.g. `"max_payload: 16MB"`), written into the server's scratch directory and passed with
    /// `-c`; kept for restarts. The listen address, port, JetStream store and log given on the
    /// command line take precedence over the file.
    pub async fn start_with_config(conf: &str) -> Self {
        Self::start_inner(Some(conf), &[]).await
    }

    /// Starts a server that accepts messages up to `bytes` (nats-server's `max_payload`, default
    /// 1 MB, at most 64 MB — its `max_pending`), through [`Self::start_with_config`].
    pub async fn start_with_max_payload(bytes: usize) -> Self {
        Self::start_with_config(&format!("max_payload: {bytes}\n")).await
    }

    async fn start_inner(conf: Option<&str>, extra_args: &[&str]) -> Self {
        let bin = find_tool("NATS_SERVER_BIN", "venv/bin/nats-server");
        let dir = ScratchDir::new("nats");
        let mut args = Vec::new();
        if let Some(conf) = conf {
            let path = dir.path().join("nats.conf");
            std::fs::write(&path, conf).expect("write nats.conf");
            args.push("-c".to_owned());
            args.push(path.to_string_lossy().into_owned());
        }
        args.extend(extra_args.iter().map(|a| (*a).to_owned()));
        let mut s = Self { bin, dir, port: 0, extra_args: args, child: None };
        s.spawn(None).await;
        s
    }

    async fn spawn(&mut self, port: Option<u16>) {
        let ports_dir = self.dir.path().join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir).expect("ports dir");
        let log = self.dir.path().join("nats.log");
        let port_arg = port.map(|p| p.to_string()).unwrap_or_else(|| "-1".into());
        let mut child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(self.dir.path().join("js"))
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .arg("-l")
            .arg(&log)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let found = std::fs::read_dir(&ports_dir)
                .ok()
                .and_then(|mut it| {
                    it.find_map(|e| e.ok().filter(|e| e.file_name().to_string_lossy().ends_with(".ports")))
                })
                .and_then(|e| std::fs::read_to_string(e.path()).ok())
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["nats"][0].as_str().map(str::to_owned));
            if let Some(url) = found {
                break url;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("nats-server exited with {status}; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "nats-server wrote no ports file in 30 s; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.port = url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in the ports file");
        wait_for_tcp(self.port, "nats-server", &log, &mut child).await;
        self.child = Some(child);
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A [`NatsConfig`] for this server (defaults: stream `DASTRA`, 6 partitions, one replica).
    pub fn nats_config(&self) -> NatsConfig {
        NatsConfig::new(self.url())
    }

    /// [`BusConfig::Nats`] for this server.
    pub fn bus_config(&self) -> BusConfig {
        BusConfig::Nats(self.nats_config())
    }

    /// Kills the server (simulates an outage); the store directory is kept.
    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Starts the server again on the same port with the same store.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "resume() while the server runs");
        self.spawn(Some(self.port)).await;
    }

    /// [`Self::stop`] then [`Self::resume`].
    pub async fn restart(&mut self) {
        self.stop();
        self.resume().await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// A tansu broker (Kafka protocol, sqlite storage) on 127.0.0.1; killed on drop.
#[derive(Debug)]
pub struct Tansu {
    bin: PathBuf,
    dir: ScratchDir,
    port: u16,
    child: Option<Child>,
}

impl Tansu {
    /// Starts tansu on a free port, run from its own data directory (its sqlite path is relative).
    pub async fn start() -> Self {
        let bin = find_tool("TANSU_BIN", "tansu/bin/tansu");
        let dir = ScratchDir::new("tansu");
        let mut t = Self { bin, dir, port: free_port(), child: None };
        t.spawn().await;
        t
    }

    async fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = self.dir.path().join("tansu.log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("tansu log");
        let err = out.try_clone().expect("tansu log");
        let mut child = Command::new(&self.bin)
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        wait_for_tcp(self.port, "tansu", &log, &mut child).await;
        self.child = Some(child);
    }

    /// `127.0.0.1:<port>`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A [`KafkaConfig`] for this broker (replication factor 1).
    pub fn kafka_config(&self) -> KafkaConfig {
        let mut k = KafkaConfig::new(self.bootstrap_servers());
        k.replication_factor = 1;
        k
    }

    /// [`BusConfig::Kafka`] for this broker.
    pub fn bus_config(&self) -> BusConfig {
        BusConfig::Kafka(self.kafka_config())
    }

    /// Kills the broker; its data directory is kept.
    pub fn stop(&mut self) {
        kill(&mut self.child);
    }

    /// Starts it again on the same port with the same data.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "resume() while tansu runs");
        self.spawn().await;
    }

    /// [`Self::stop`] then [`Self::resume`].
    pub async fn restart(&mut self) {
        self.stop();
        self.resume().await;
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// An in-process librdkafka MockCluster (real TCP listeners on 127.0.0.1). Note: it has no
/// CreateTopics API — create topics with [`MockKafka::create_topic`]; group joins take ~3 s. It is
/// not `Send` (a raw librdkafka handle): keep it in the test function, not in a spawned task.
pub struct MockKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
    brokers: i32,
    /// librdkafka properties [`MockKafka::kafka_config`] gives every client.
    client_properties: BTreeMap<String, String>,
}

/// Starts a MockCluster with `brokers` brokers (ids `1..=brokers`).
pub fn mock_kafka(brokers: i32) -> MockKafka {
    let cluster = MockCluster::new(brokers).expect("librdkafka MockCluster");
    MockKafka { cluster, brokers, client_properties: BTreeMap::new() }
}

impl MockKafka {
    /// The bootstrap servers (`127.0.0.1:p1,127.0.0.1:p2,…`).
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Makes [`Self::kafka_config`] raise librdkafka's `message.max.bytes` (default 1 000 000) to
    /// `bytes`, so its clients produce records up to about that size. The MockCluster itself
    /// enforces no record size limit (no broker `message.max.bytes` nor topic
    /// `max.message.bytes`); only its request limit, the `receive.message.max.bytes` of its own
    /// handle (100 MB), bounds a produce request. Consumers need nothing more: their
    /// `fetch.max.bytes` (50 MB) and `receive.message.max.bytes` default above, and librdkafka
    /// raises `fetch.max.bytes` to `message.max.bytes` when it is not set.
    ///
    /// Beware: a mock partition keeps at most 5 MiB of record batches (hard-coded in librdkafka
    /// 2.12's `rdkafka_mock.c`) and, when an append evicts the partition's last older batch, it
    /// moves the log start past the batch being appended too. So a record over 5 MiB is readable
    /// only if it is the first of its partition, and the next record appended to that partition
    /// hides both (see the test `mock_kafka_hides_a_partition_past_a_record_over_5_mib`): give
    /// such a record a partition of its own.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.client_properties.insert("message.max.bytes".into(), bytes.to_string());
        self
    }

    /// A [`KafkaConfig`] for this cluster (with the client properties set by
    /// [`Self::with_max_message_bytes`]).
    pub fn kafka_config(&self) -> KafkaConfig {
        let mut k = KafkaConfig::new(self.bootstrap_servers());
        k.properties.extend(self.client_properties.clone());
        k
    }

    /// [`BusConfig::Kafka`] for this cluster.
    pub fn bus_config(&self) -> BusConfig {
        BusConfig::Kafka(self.kafka_config())
    }

    /// Creates `topic` with `partitions` partitions, replicated on every broker (max 3).
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        self.cluster.create_topic(topic, partitions, self.brokers.min(3)).expect("mock create_topic");
    }

    /// Takes broker `id` down (its connections are closed and refused).
    pub fn broker_down(&self, id: i32) {
        self.cluster.broker_down(id).expect("mock broker_down");
    }

    /// Brings broker `id` back.
    pub fn broker_up(&self, id: i32) {
        self.cluster.broker_up(id).expect("mock broker_up");
    }

    /// Takes every broker down.
    pub fn all_down(&self) {
        (1..=self.brokers).for_each(|id| self.broker_down(id));
    }

    /// Brings every broker back.
    pub fn all_up(&self) {
        (1..=self.brokers).for_each(|id| self.broker_up(id));
    }

    /// The underlying cluster, for what this wrapper does not expose.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}

#[cfg(test)]
mod tests {
    //! The big-message brokers really take a 10 MiB record, and the defaults really refuse it.

    use futures::StreamExt;

    use super::*;
    use crate::bus::{OutboundMessage, SubscriberEvent};

    const TEN_MIB: usize = 10 * 1024 * 1024;
    const SIXTEEN_MIB: usize = 16 * 1024 * 1024;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_max_payload_comes_from_the_config_file_and_survives_restart() {
        let default = NatsServer::start().await;
        let c = async_nats::connect(default.url()).await.unwrap();
        assert_eq!(c.server_info().max_payload, 1024 * 1024, "nats-server's default");
        drop(default);
        // The line an operator writes in nats-server.conf; `MB` is 1024 × 1024 there.
        let conf = NatsServer::start_with_config("max_payload: 16MB\n").await;
        let c = async_nats::connect(conf.url()).await.unwrap();
        assert_eq!(c.server_info().max_payload, SIXTEEN_MIB);
        drop(conf);

        let mut nats = NatsServer::start_with_max_payload(SIXTEEN_MIB).await;
        for round in 0..2 {
            let c = async_nats::connect(nats.url()).await.unwrap();
            assert_eq!(c.server_info().max_payload, SIXTEEN_MIB, "round {round}");
            let mut sub = c.subscribe("big").await.unwrap();
            c.publish("big", vec![7u8; TEN_MIB].into()).await.unwrap();
            c.flush().await.unwrap();
            let m = tokio::time::timeout(Duration::from_secs(30), sub.next()).await.unwrap().unwrap();
            assert_eq!(m.payload.len(), TEN_MIB);
            if round == 0 {
                // The config file must be passed again when the server restarts.
                nats.restart().await;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mock_kafka_takes_a_10_mib_record_once_message_max_bytes_is_raised() {
        let topic = unique_topic("big");
        let big = || OutboundMessage::new(topic.clone(), b"k".to_vec(), vec![7u8; TEN_MIB]);

        let plain = mock_kafka(1);
        plain.create_topic(&topic, 1);
        let mut cfg = plain.kafka_config();
        cfg.create_topics = false;
        let publisher = BusConfig::Kafka(cfg).publisher().await.unwrap();
        let err = publisher.publish(big()).await.expect_err("librdkafka's 1 MB default refuses 10 MiB");
        assert!(err.to_string().to_lowercase().contains("too large"), "{err}");
        drop(publisher);

        let kafka = mock_kafka(1).with_max_message_bytes(SIXTEEN_MIB);
        kafka.create_topic(&topic, 1);
        let mut cfg = kafka.kafka_config();
        cfg.create_topics = false;
        assert_eq!(cfg.properties["message.max.bytes"], SIXTEEN_MIB.to_string());
        let bus = BusConfig::Kafka(cfg);
        bus.publisher().await.unwrap().publish(big()).await.unwrap();
        let mut sub = bus.subscriber(&unique("big-reader"), std::slice::from_ref(&topic)).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if let SubscriberEvent::Message(m) = sub.next_event().await.unwrap() {
                    break m;
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(got.payload.map(|p| p.len()), Some(TEN_MIB));
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mock_kafka_hides_a_partition_past_a_record_over_5_mib() {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let kafka = mock_kafka(1).with_max_message_bytes(SIXTEEN_MIB);
        let mut cfg = kafka.kafka_config();
        cfg.create_topics = false;
        let publisher = BusConfig::Kafka(cfg).publisher().await.unwrap();
        let watermarks = |topic: String| {
            let c: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", kafka.bootstrap_servers())
                .set("group.id", unique("watermarks"))
                .create()
                .unwrap();
            c.fetch_watermarks(&topic, 0, Duration::from_secs(10)).unwrap()
        };
        let msg = |topic: &str, len: usize| OutboundMessage::new(topic.to_owned(), b"k".to_vec(), vec![7u8; len]);

        // First in its partition: kept (and readable, see the test above).
        let alone = unique_topic("alone");
        kafka.create_topic(&alone, 1);
        publisher.publish(msg(&alone, TEN_MIB)).await.unwrap();
        assert_eq!(watermarks(alone.clone()), (0, 1));
        // Anything after it: the big record is evicted and the log start jumps past the new one.
        publisher.publish(msg(&alone, 10)).await.unwrap();
        assert_eq!(watermarks(alone), (2, 2), "librdkafka's mock changed: revisit MockKafka's doc");

        // After smaller records: they are evicted, and the big one is hidden with them.
        let after = unique_topic("after");
        kafka.create_topic(&after, 1);
        publisher.publish(msg(&after, 10)).await.unwrap();
        publisher.publish(msg(&after, TEN_MIB)).await.unwrap();
        assert_eq!(watermarks(after), (2, 2), "librdkafka's mock changed: revisit MockKafka's doc");
    }
}
