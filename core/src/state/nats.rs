//! The state store on a NATS KV bucket: all keys loaded on open (a watch with history), then
//! followed; `put` / `delete` wait for the JetStream ack.
//!
//! **Key encoding.** NATS KV keys allow only `[-/_=.a-zA-Z0-9]` (and no empty `.`-tokens), while
//! entity keys contain `:` and more. Keys are encoded reversibly: ASCII letters, digits, `-` and `_`
//! stay; every other byte of the UTF-8 key becomes `=XX` (upper-case hex), so `servicenow:asset:8f2c`
//! is stored as `servicenow=3Aasset=3A8f2c` ([`encode_key`] / [`decode_key`]).

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument as _;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::{Cache, StateError, StateStore, check_key};
use crate::bus::nats::{connect, jetstream, kind_of, nats_err};
use crate::bus::{BusError, NatsConfig, NatsErrorKind};

/// Encodes a state key into a NATS KV key (see the module doc).
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// Decodes a key made by [`encode_key`]; `None` when it is not such a key.
pub fn decode_key(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = encoded.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The KV bucket for a namespace: characters other than letters, digits, `-`, `_` become `_`
/// (`dastra-connect.ledger.sink` → `dastra-connect_ledger_sink`).
pub fn bucket_name(namespace: &str) -> String {
    namespace.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// A [`StateStore`] on a NATS KV bucket (history 1, file storage).
pub struct NatsKvStore {
    bucket: String,
    js: jetstream::Context,
    kv: kv::Store,
    cache: Arc<Cache>,
    follower: JoinHandle<()>,
    timeout: Duration,
}

impl Drop for NatsKvStore {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

fn apply(cache: &Cache, bucket: &str, entry: &kv::Entry) {
    let Some(key) = decode_key(&entry.key) else {
        tracing::warn!(bucket, key = %entry.key, "KV key not written by the state store, skipped");
        return;
    };
    let value = match entry.operation {
        kv::Operation::Put => Some(entry.value.clone()),
        kv::Operation::Delete | kv::Operation::Purge => None,
    };
    cache.apply(&key, entry.revision as i64, value);
}

impl NatsKvStore {
    /// Opens (creating if missing) the bucket for `namespace`, loads every key, then follows it.
    pub async fn open(cfg: &NatsConfig, namespace: &str) -> Result<Self, StateError> {
        let bucket = bucket_name(namespace);
        let err = |e: BusError| StateError::bus(&bucket, e);
        let js = jetstream(cfg, connect(cfg).await.map_err(err)?);
        let kv = match js.get_key_value(&bucket).await {
            Ok(kv) => kv,
            Err(_) => match js
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    history: 1,
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: cfg.stream_replicas,
                    ..Default::default()
                })
                .await
            {
                Ok(kv) => kv,
                // Another replica may have created it meanwhile.
                Err(create_err) => {
                    js.get_key_value(&bucket).await.map_err(|_| err(nats_err("create KV bucket", create_err)))?
                }
            },
        };
        let status = kv.status().await.map_err(|e| err(nats_err("KV status", e)))?;
        let mut watch = kv.watch_with_history(">").await.map_err(|e| err(nats_err("KV watch", e)))?;
        let cache = Arc::new(Cache::default());
        let started = Instant::now();
        if status.values() > 0 {
            loop {
                match tokio::time::timeout(cfg.timeout, watch.next()).await {
                    Ok(Some(Ok(entry))) => {
                        apply(&cache, &bucket, &entry);
                        if entry.seen_current || entry.delta == 0 {
                            break;
                        }
                    }
                    Ok(Some(Err(e))) => return Err(err(nats_err("KV load", e))),
                    Ok(None) => return Err(err(BusError::nats("KV load", NatsErrorKind::Connection, "watch ended"))),
                    Err(_) => {
                        return Err(err(BusError::Timeout {
                            what: format!("KV bucket `{bucket}` to be loaded"),
                            after: started.elapsed(),
                        }));
                    }
                }
            }
        }
        tracing::info!(bucket, keys = cache.len(), elapsed_ms = started.elapsed().as_millis() as u64, "state loaded");

        let follower = {
            let cache = cache.clone();
            let bucket = bucket.clone();
            let kv = kv.clone();
            tokio::spawn(
                async move {
                    loop {
                        while let Some(item) = watch.next().await {
                            match item {
                                Ok(entry) => apply(&cache, &bucket, &entry),
                                Err(e) => tracing::warn!(error = %e, bucket, "KV follower error"),
                            }
                        }
                        // The watch ended (server restart): start a new one over the whole history,
                        // older revisions are ignored by the cache.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        match kv.watch_with_history(">").await {
                            Ok(w) => watch = w,
                            Err(e) => tracing::warn!(error = %e, bucket, "KV follower cannot restart its watch"),
                        }
                    }
                }
                .in_current_span(),
            )
        };
        Ok(Self { bucket, js, kv, cache, follower, timeout: cfg.timeout })
    }
}

#[async_trait]
impl StateStore for NatsKvStore {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.cache.get(key)
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<(), StateError> {
        check_key(key)?;
        let revision = self
            .kv
            .put(encode_key(key), value.clone())
            .await
            .map_err(|e| StateError::bus(&self.bucket, nats_err("KV put", e)))?;
        self.cache.apply(key, revision as i64, Some(value));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StateError> {
        check_key(key)?;
        // Same message as `kv::Store::delete`, published here to learn its revision from the ack.
        let mut headers = HeaderMap::new();
        headers.insert("KV-Operation", "DEL");
        let subject = format!("$KV.{}.{}", self.bucket, encode_key(key));
        let map = |e: async_nats::jetstream::context::PublishError| {
            StateError::bus(&self.bucket, BusError::nats("KV delete", kind_of(&e.kind()), e))
        };
        let ack =
            self.js.publish_with_headers(subject, headers, Bytes::new()).await.map_err(map)?.await.map_err(map)?;
        self.cache.apply(key, ack.sequence as i64, None);
        Ok(())
    }

    async fn put_batch(&self, entries: Vec<(String, Option<Bytes>)>) -> Result<(), StateError> {
        let map = |e: async_nats::jetstream::context::PublishError| {
            StateError::bus(&self.bucket, BusError::nats("KV write", kind_of(&e.kind()), e))
        };
        let mut acks = Vec::with_capacity(entries.len());
        for (key, value) in &entries {
            check_key(key)?;
            // The messages `kv::Store::put` / `delete` send, pipelined; acks are awaited in their own
            // tasks so batches beyond the context's in-flight ack window keep flowing.
            let subject = format!("$KV.{}.{}", self.bucket, encode_key(key));
            let fut = match value {
                Some(v) => self.js.publish(subject, v.clone()).await.map_err(map)?,
                None => {
                    let mut headers = HeaderMap::new();
                    headers.insert("KV-Operation", "DEL");
                    self.js.publish_with_headers(subject, headers, Bytes::new()).await.map_err(map)?
                }
            };
            acks.push(tokio::spawn(fut.into_future()));
        }
        let mut sequences = Vec::with_capacity(acks.len());
        for ack in acks {
            let ack = ack
                .await
                .map_err(|e| StateError::bus(&self.bucket, BusError::nats("KV write", NatsErrorKind::Other, e)))?
                .map_err(map)?;
            sequences.push(ack.sequence);
        }
        for ((key, value), seq) in entries.into_iter().zip(sequences) {
            self.cache.apply(&key, seq as i64, value);
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
        &self.bucket
    }

    async fn sync(&self) -> Result<(), StateError> {
        let status = self.kv.status().await.map_err(|e| StateError::bus(&self.bucket, nats_err("KV status", e)))?;
        let last = status.info.state.last_sequence as i64;
        let started = Instant::now();
        while self.cache.high() < last {
            if started.elapsed() > self.timeout {
                return Err(StateError::bus(
                    &self.bucket,
                    BusError::Timeout {
                        what: format!("KV bucket `{}` to be read up to {last}", self.bucket),
                        after: started.elapsed(),
                    },
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_valid_kv_keys() {
        let valid = regex::Regex::new(r"^[-/_=.a-zA-Z0-9]+$").unwrap();
        for key in ["servicenow:asset:8f2c", "a.b", "x=y", "with space/and/slash", "ünïcødé", "plain-key_1"] {
            let enc = encode_key(key);
            assert!(valid.is_match(&enc), "{enc}");
            assert_eq!(decode_key(&enc).as_deref(), Some(key));
        }
        assert_eq!(encode_key("servicenow:asset:8f2c"), "servicenow=3Aasset=3A8f2c");
        assert_eq!(decode_key("bad=Z"), None);
        assert_eq!(bucket_name("dastra-connect.ledger.sink"), "dastra-connect_ledger_sink");
    }
}
