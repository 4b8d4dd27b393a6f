//! The state store on a compacted Kafka topic: loaded from the beginning up to the high watermarks
//! on open, then followed; writes are idempotent `acks=all` produces keyed by the state key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use super::{Cache, StateError, StateStore, check_key};
use crate::bus::kafka::{KafkaPublisher, TracingContext, ensure_topics, partition_count, plain_consumer_config};
use crate::bus::{BusError, KafkaConfig, OutboundMessage, Publisher, TopicSpec};

type Reader = StreamConsumer<TracingContext>;

/// A [`StateStore`] on a compacted Kafka topic (`cleanup.policy=compact`).
pub struct KafkaStateStore {
    topic: String,
    publisher: KafkaPublisher,
    cache: Arc<Cache>,
    follower: JoinHandle<()>,
    /// The consumer the follower reads with (watermarks for [`StateStore::sync`]).
    reader: Arc<Reader>,
    /// Per partition, the offset after the last record the follower applied.
    applied: Arc<parking_lot::Mutex<HashMap<i32, i64>>>,
    timeout: Duration,
}

impl Drop for KafkaStateStore {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// Applies one record of the topic to the cache. Records without a UTF-8 key cannot be state
/// entries (someone else wrote to the topic): they are skipped with a warning, not fatal.
fn apply(cache: &Cache, topic: &str, m: &rdkafka::message::BorrowedMessage<'_>) {
    match m.key().map(std::str::from_utf8) {
        Some(Ok(key)) if !key.is_empty() => {
            cache.apply(key, m.offset(), m.payload().map(Bytes::copy_from_slice));
        }
        _ => tracing::warn!(
            topic,
            partition = m.partition(),
            offset = m.offset(),
            "state record without a UTF-8 key skipped"
        ),
    }
}

impl KafkaStateStore {
    /// Creates the compacted topic if missing, reads it whole into the cache, then follows it.
    pub async fn open(cfg: &KafkaConfig, topic: &str) -> Result<Self, StateError> {
        let err = |e: BusError| StateError::bus(topic, e);
        ensure_topics(cfg, &[TopicSpec::compacted(topic)]).await.map_err(err)?;
        let publisher = KafkaPublisher::new(cfg).map_err(err)?;
        let reader: Reader = plain_consumer_config(cfg)
            .create_with_context(TracingContext::current())
            .map_err(|e| err(BusError::kafka("create consumer", e)))?;
        let reader = Arc::new(reader);
        let timeout = cfg.timeout;

        // Partitions and their high watermarks, then assign them all from the beginning.
        let mut remaining: HashMap<i32, i64> = {
            let reader = reader.clone();
            let topic = topic.to_owned();
            tokio::task::spawn_blocking(move || -> Result<HashMap<i32, i64>, BusError> {
                let n = partition_count(reader.client(), &topic, timeout)?;
                let mut highs = HashMap::new();
                let mut tpl = TopicPartitionList::new();
                for p in 0..n as i32 {
                    let (low, high) = reader
                        .fetch_watermarks(&topic, p, timeout)
                        .map_err(|e| BusError::kafka("fetch watermarks", e))?;
                    if high > low {
                        highs.insert(p, high);
                    }
                    tpl.add_partition_offset(&topic, p, Offset::Beginning).map_err(|e| BusError::kafka("assign", e))?;
                }
                reader.assign(&tpl).map_err(|e| BusError::kafka("assign", e))?;
                Ok(highs)
            })
            .await
            .map_err(|e| err(BusError::InvalidMessage(format!("state load task failed: {e}"))))?
            .map_err(err)?
        };

        let cache = Arc::new(Cache::default());
        let started = std::time::Instant::now();
        while !remaining.is_empty() {
            let m = match tokio::time::timeout(timeout, reader.recv()).await {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => {
                    let e = BusError::kafka("consume", e);
                    if crate::Classify::is_retryable(&e) {
                        tracing::warn!(error = %e, topic, "state load: consume error, retrying");
                        continue;
                    }
                    return Err(err(e));
                }
                Err(_) => {
                    // Compaction may have removed the last records: trust the consumer position.
                    let positions = reader.position().map_err(|e| err(BusError::kafka("position", e)))?;
                    remaining.retain(|p, high| match positions.find_partition(topic, *p).map(|e| e.offset()) {
                        Some(Offset::Offset(pos)) => pos < *high,
                        _ => true,
                    });
                    if remaining.is_empty() {
                        break;
                    }
                    return Err(err(BusError::Timeout {
                        what: format!("state topic `{topic}` to be read up to its high watermarks"),
                        after: started.elapsed(),
                    }));
                }
            };
            apply(&cache, topic, &m);
            if let Some(high) = remaining.get(&m.partition())
                && m.offset() + 1 >= *high
            {
                remaining.remove(&m.partition());
            }
        }
        tracing::info!(topic, keys = cache.len(), elapsed_ms = started.elapsed().as_millis() as u64, "state loaded");

        let applied = Arc::new(parking_lot::Mutex::new(HashMap::new()));
        let follower = {
            let cache = cache.clone();
            let topic = topic.to_owned();
            let reader = reader.clone();
            let applied = applied.clone();
            tokio::spawn(
                async move {
                    loop {
                        match reader.recv().await {
                            Ok(m) => {
                                apply(&cache, &topic, &m);
                                applied.lock().insert(m.partition(), m.offset() + 1);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, topic, "state follower consume error");
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                        }
                    }
                }
                .in_current_span(),
            )
        };
        Ok(Self { topic: topic.to_owned(), publisher, cache, follower, reader, applied, timeout })
    }
}

#[async_trait]
impl StateStore for KafkaStateStore {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.cache.get(key)
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<(), StateError> {
        check_key(key)?;
        let msg = OutboundMessage::new(self.topic.clone(), Bytes::copy_from_slice(key.as_bytes()), value.clone());
        let d = self.publisher.publish(msg).await.map_err(|e| StateError::bus(&self.topic, e))?;
        self.cache.apply(key, d.offset, Some(value));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        check_key(key)?;
        let msg = OutboundMessage::tombstone(self.topic.clone(), Bytes::copy_from_slice(key.as_bytes()));
        let d = self.publisher.publish(msg).await.map_err(|e| StateError::bus(&self.topic, e))?;
        self.cache.apply(key, d.offset, None);
        Ok(())
    }

    async fn put_batch(&self, entries: Vec<(String, Option<Bytes>)>) -> Result<(), StateError> {
        let mut msgs = Vec::with_capacity(entries.len());
        for (key, value) in &entries {
            check_key(key)?;
            let k = Bytes::copy_from_slice(key.as_bytes());
            msgs.push(match value {
                Some(v) => OutboundMessage::new(self.topic.clone(), k, v.clone()),
                None => OutboundMessage::tombstone(self.topic.clone(), k),
            });
        }
        let deliveries = self.publisher.publish_batch(msgs).await.map_err(|e| StateError::bus(&self.topic, e))?;
        for ((key, value), d) in entries.into_iter().zip(deliveries) {
            self.cache.apply(&key, d.offset, value);
        }
        Ok(())
    }

    fn snapshot(&self) -> BTreeMap<String, Bytes> {
        self.cache.snapshot()
    }

    fn len(&self) -> usize {
        self.cache.len()
    }

    fn namespace(&self) -> &str {
        &self.topic
    }

    async fn sync(&self) -> Result<(), StateError> {
        let err = |e: BusError| StateError::bus(&self.topic, e);
        let (reader, topic, timeout) = (self.reader.clone(), self.topic.clone(), self.timeout);
        // The end of every partition now (a watermark fetch blocks its thread).
        let highs: Vec<(i32, i64)> = tokio::task::spawn_blocking(move || -> Result<Vec<(i32, i64)>, BusError> {
            let n = partition_count(reader.client(), &topic, timeout)?;
            let mut out = Vec::new();
            for p in 0..n as i32 {
                let (low, high) =
                    reader.fetch_watermarks(&topic, p, timeout).map_err(|e| BusError::kafka("fetch watermarks", e))?;
                if high > low {
                    out.push((p, high));
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| err(BusError::InvalidMessage(format!("state sync task failed: {e}"))))?
        .map_err(err)?;
        let started = std::time::Instant::now();
        loop {
            let behind: Vec<i32> = {
                let applied = self.applied.lock();
                highs.iter().filter(|(p, high)| applied.get(p).copied().unwrap_or(0) < *high).map(|(p, _)| *p).collect()
            };
            if behind.is_empty() {
                return Ok(());
            }
            // Compaction may have removed the last records: the consumer's position counts too.
            if let Ok(positions) = self.reader.position() {
                let caught_up = highs.iter().filter(|(p, _)| behind.contains(p)).all(|(p, high)| {
                    matches!(positions.find_partition(&self.topic, *p).map(|e| e.offset()), Some(Offset::Offset(pos)) if pos >= *high)
                });
                if caught_up {
                    // Let the follower apply what it holds.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    return Ok(());
                }
            }
            if started.elapsed() > self.timeout {
                return Err(err(BusError::Timeout {
                    what: format!("state topic `{}` to be read up to its end", self.topic),
                    after: started.elapsed(),
                }));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
