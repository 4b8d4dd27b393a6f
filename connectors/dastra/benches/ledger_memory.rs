//! Prints the resident memory a state store's cache takes for 1 000 000 sink ledger entries, and
//! the bytes each entry takes on the bus (key + value of the record the store writes).
//!
//! Entries are realistic: each is the `LedgerEntry` the sink records for a live Asset or Actor
//! (id, 20-digit version, whole-content hash, one hash per sent field, the source fingerprint,
//! and for Assets the `label`/`type` links), from the real `content_hashes` over the payload's
//! JSON, encoded as `Ledger::put` stores it (`encode_entry`: the compact binary format;
//! `BENCH_ENCODING=json` writes the JSON earlier builds wrote, still readable, for comparison).
//!
//! `cargo bench -p dastra-connect-dastra --bench ledger_memory` (env `BENCH_ENTRIES`, default
//! 1 000 000). `BENCH_STORE`: `memory` (default: `core::state::MemoryStore`, the stores' cache
//! without a broker), `nats` (the real NATS KV store: the entries are written to a bucket on a
//! nats-server, then a second store loads it and its RSS growth is printed), `kafka` (the real
//! Kafka store on a compacted topic of librdkafka's MockCluster, measured the same way; 64
//! partitions, because a mock partition keeps only its last 5 MiB).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use dastra_connect_core::event::{Payload, sequence_from_u64};
use dastra_connect_core::state::StateStore;
use dastra_connect_dastra::sink::ledger::{FieldHashes, LedgerEntry, content_hashes, encode_entry, stable_hash};

fn entry(i: usize) -> LedgerEntry {
    let payload = support::content(i, 0, false);
    let mut json = payload.to_json_value().unwrap();
    if let serde_json::Value::Object(m) = &mut json {
        m.retain(|k, v| !v.is_null() && !matches!(k.as_str(), "snapshot" | "deleted" | "tags" | "customFields"));
    }
    if let (Payload::Asset(_), serde_json::Value::Object(m)) = (&payload, &mut json) {
        // Assets carry their external key in `ref`; Actors are matched by natural key by default.
        m.insert("ref".into(), serde_json::Value::String(support::key(i).as_str().to_owned()));
    }
    let (hash, fields) = content_hashes(&json);
    let mut e = LedgerEntry::live((100_000 + i).to_string());
    e.version = Some(sequence_from_u64(1_700_000_000_000 + i as u64));
    e.hash = Some(hash);
    e.fields = FieldHashes::from_map(&fields);
    // The source fingerprint every applied upsert records.
    e.src = Some(stable_hash(format!("{i}").as_bytes()));
    if let Payload::Asset(a) = &payload {
        e.links.insert("label".into(), a.label.clone().unwrap_or_default());
        e.links.insert("type".into(), "Software".into());
    }
    e
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// The stored bytes of entry `i`, in the encoding under test.
fn value(i: usize) -> Vec<u8> {
    if std::env::var("BENCH_ENCODING").as_deref() == Ok("json") {
        serde_json::to_vec(&entry(i)).unwrap()
    } else {
        encode_entry(&entry(i))
    }
}

/// Writes `n` entries through `writer`; answers the bytes written (keys + values).
async fn fill(writer: &dyn StateStore, n: usize) -> (u64, u64) {
    let (mut key_bytes, mut value_bytes) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let key = support::key(i).as_str().to_owned();
        let v = value(i);
        key_bytes += key.len() as u64;
        value_bytes += v.len() as u64;
        batch.push((key, Some(Bytes::from(v))));
        if batch.len() == 10_000 || i + 1 == n {
            writer.put_batch(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    (key_bytes, value_bytes)
}

fn report(what: &str, n: usize, grown: u64, bytes: (u64, u64)) {
    let (k, v) = bytes;
    println!(
        "{what}: {n} entries, RSS +{:.1} MiB, {:.0} bytes per entry in memory; on the bus {:.0} B per entry (key {:.0} B + value {:.0} B)",
        mib(grown),
        grown as f64 / n as f64,
        (k + v) as f64 / n as f64,
        k as f64 / n as f64,
        v as f64 / n as f64
    );
}

/// Writes `n` entries to the store `namespace` on `bus` through one store, then measures what a
/// second store (what another replica, or this one after a restart, does on open) adds to RSS
/// while loading it whole.
async fn on_bus(what: &str, bus: dastra_connect_core::bus::BusConfig, namespace: &str, n: usize) {
    let writer = dastra_connect_core::state::open(&bus, namespace).await.unwrap();
    let t = std::time::Instant::now();
    let bytes = fill(writer.as_ref(), n).await;
    println!("wrote {n} entries to {what} in {:.1} s", t.elapsed().as_secs_f64());
    let before = support::rss_bytes();
    let t = std::time::Instant::now();
    let reader = dastra_connect_core::state::open(&bus, namespace).await.unwrap();
    let after = support::rss_bytes();
    println!("{what}: a second store loaded {} entries in {:.1} s", reader.len(), t.elapsed().as_secs_f64());
    report(what, n, after.saturating_sub(before), bytes);
    std::hint::black_box((&writer, &reader));
}

/// The allocator of the `dastra-connect` binary (`cli/src/main.rs`), so that the figures are the
/// process's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n: usize = std::env::var("BENCH_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let encoding = if std::env::var("BENCH_ENCODING").as_deref() == Ok("json") { "JSON" } else { "binary" };
    for i in [0, 1] {
        let v = value(i);
        println!("an {} entry, {encoding}: {} B", if i == 0 { "Asset" } else { "Actor" }, v.len());
    }
    match std::env::var("BENCH_STORE").as_deref() {
        Ok("nats") => rt.block_on(async {
            let server = dastra_connect_core::testkit::NatsServer::start().await;
            on_bus("NATS KV store", server.bus_config(), "ledger-bench", n).await;
        }),
        Ok("kafka") => rt.block_on(async {
            let broker = dastra_connect_core::testkit::Broker::kafka();
            let topics = dastra_connect_core::connector::Topics::default();
            let bus = broker.bus_with_stores(&topics, &[]).await;
            let namespace = topics.state("ledger-bench");
            // A mock partition keeps at most 5 MiB of batches (older ones are evicted): spread the
            // entries over enough partitions to keep them all (≈ 2 MiB each for 1 M entries).
            if let dastra_connect_core::testkit::Broker::Kafka(k) = &broker {
                k.create_topic(&namespace, 64);
            }
            on_bus("Kafka store (MockCluster, 64 partitions)", bus, &namespace, n).await;
        }),
        _ => rt.block_on(async {
            let store = dastra_connect_core::state::MemoryStore::new("ledger-bench");
            let before = support::rss_bytes();
            let bytes = fill(&store, n).await;
            let after = support::rss_bytes();
            report("state-store cache (MemoryStore)", n, after.saturating_sub(before), bytes);
            std::hint::black_box(&store);
        }),
    }
}
