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
        let bin = find_tool("NATS_SERVER_BIN", "venv/bin/nats-server");
        let dir = ScratchDir::new("nats");
        let extra_args = extra_args.iter().map(|a| (*a).to_owned()).collect();
        let mut s = Self { bin, dir, port: 0, extra_args, child: None };
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
}

/// Starts a MockCluster with `brokers` brokers (ids `1..=brokers`).
pub fn mock_kafka(brokers: i32) -> MockKafka {
    let cluster = MockCluster::new(brokers).expect("librdkafka MockCluster");
    MockKafka { cluster, brokers }
}

impl MockKafka {
    /// The bootstrap servers (`127.0.0.1:p1,127.0.0.1:p2,…`).
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// A [`KafkaConfig`] for this cluster.
    pub fn kafka_config(&self) -> KafkaConfig {
        KafkaConfig::new(self.bootstrap_servers())
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
