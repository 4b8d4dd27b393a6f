//! Driving the real sink driver directly: its services over a bus with stores the test chooses,
//! a store whose writes fail on demand, and the ledger as the bus holds it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dastra_connect_core::bus::{BusConfig, BusError, Subscriber};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::state::{self, StateError, StateStore};
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_dastra::sink::DastraSinkConfig;
use dastra_connect_dastra::sink::apply::RequestBatcher;
use dastra_connect_dastra::sink::driver::SinkServices;
use dastra_connect_dastra::sink::ledger::{Ledger, decode_entry};
use dastra_connect_dastra::{DastraClient, QuotaLimiter};

/// A write of a [`StateStore`] that a [`FailingStore`] can refuse.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Write {
    Put,
    PutBatch,
    Delete,
}

/// A real store whose chosen writes fail while it is failing, as when the broker times out (the
/// error is a timeout of `what`); reads and the other writes go through.
pub struct FailingStore {
    inner: Arc<dyn StateStore>,
    writes: Vec<Write>,
    what: String,
    failing: AtomicBool,
    refused: AtomicU64,
}

impl FailingStore {
    /// Wraps `inner`, not failing yet.
    pub fn new(inner: Arc<dyn StateStore>, writes: &[Write], what: &str) -> Arc<Self> {
        Arc::new(Self {
            inner,
            writes: writes.to_vec(),
            what: what.into(),
            failing: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        })
    }

    /// Starts (`true`) or stops failing.
    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// Writes refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    fn check(&self, write: Write) -> Result<(), StateError> {
        if self.writes.contains(&write) && self.failing.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StateError::Bus {
                namespace: self.inner.namespace().to_owned(),
                source: BusError::Timeout { what: self.what.clone(), after: Duration::from_secs(5) },
            });
        }
        Ok(())
    }
}

#[async_trait]
impl StateStore for FailingStore {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.inner.get(key)
    }
    async fn put(&self, key: &str, value: Bytes) -> Result<(), StateError> {
        self.check(Write::Put)?;
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<(), StateError> {
        self.check(Write::Delete)?;
        self.inner.delete(key).await
    }
    async fn put_batch(&self, entries: Vec<(String, Option<Bytes>)>) -> Result<(), StateError> {
        self.check(Write::PutBatch)?;
        self.inner.put_batch(entries).await
    }
    fn snapshot(&self) -> BTreeMap<String, Bytes> {
        self.inner.snapshot()
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    async fn sync(&self) -> Result<(), StateError> {
        self.inner.sync().await
    }
}

/// The stores of a driver under test.
pub struct DriverStores {
    pub ledger: Ledger,
    pub pending: Arc<dyn StateStore>,
    pub parked: Arc<dyn StateStore>,
}

/// Opens the state store `<role>-sink` of the sink named "sink" (`role`: ledger, pending, parked).
pub async fn sink_store(bus: &BusConfig, topics: &Topics, role: &str) -> Arc<dyn StateStore> {
    state::open(bus, &topics.state(&format!("{role}-sink"))).await.unwrap()
}

/// The services of the sink named "sink" over `bus`, as the connector builds them but with `stores`
/// and `metrics` from the test (`partitions`: of each change topic; no object store), and a
/// subscriber of its group to its change topics.
pub async fn driver_services(
    bus: &BusConfig,
    topics: &Topics,
    config: DastraSinkConfig,
    partitions: u32,
    stores: DriverStores,
    metrics: Metrics,
) -> (Arc<SinkServices>, Box<dyn Subscriber>) {
    let quota = QuotaLimiter::new(&config.dastra.quota);
    let kinds: Vec<String> = config.kinds().into_iter().map(|k| topics.changes(k)).collect();
    let services = Arc::new(SinkServices {
        name: "sink".into(),
        client: DastraClient::new(&config.dastra, quota.clone(), None).unwrap(),
        ledger: stores.ledger,
        pending: stores.pending,
        parked: stores.parked,
        publisher: bus.publisher().await.unwrap(),
        dlq_topic: topics.dlq(),
        codec: Codec::single_object(),
        metrics,
        quota,
        total_partitions: partitions * kinds.len() as u32,
        objects: None,
        batcher: RequestBatcher::new(config.batch_window, config.batch_max),
        config,
    });
    let subscriber = bus.subscriber("sink", &kinds).await.unwrap();
    (services, subscriber)
}

/// Key → version of the ledger of the sink named "sink" as the bus holds it now (a fresh reader).
pub async fn durable_ledger(bus: &BusConfig, topics: &Topics) -> BTreeMap<String, Option<String>> {
    let store = sink_store(bus, topics, "ledger").await;
    store.sync().await.unwrap();
    store
        .snapshot()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("aux:"))
        .map(|(k, v)| (k, decode_entry(&v).unwrap().version))
        .collect()
}
