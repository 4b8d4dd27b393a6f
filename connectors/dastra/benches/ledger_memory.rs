//! Prints the resident memory of a process holding 1 000 000 sink ledger entries the way a state
//! store's cache holds them (`core::state::Cache`: a `HashMap<String, Slot { position: i64,
//! value: Option<Bytes> }>` of the entries' JSON, which is `pub(crate)` in core, so its layout is
//! mirrored here), and what dominates.
//!
//! Entries are realistic: each is the `LedgerEntry` the sink records for a live Asset or Actor
//! (id, 20-digit version, whole-content hash, one hash per sent field, and for Assets the
//! `label`/`type` links), from the real `content_hashes` over the payload's JSON.
//!
//! `cargo bench -p dastra-connect-dastra --bench ledger_memory` (env `BENCH_ENTRIES`, default
//! 1 000 000; `BENCH_VALUES=put` keeps the values in the buffers `Ledger::put` makes instead of
//! exact-size copies; `BENCH_STORE=nats` measures the real NATS KV store instead: the entries are
//! written to a bucket on a nats-server, then a second store loads it and its RSS growth is
//! printed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use bytes::Bytes;
use dastra_connect_core::event::{Payload, sequence_from_u64};
use dastra_connect_dastra::sink::ledger::{FieldHashes, LedgerEntry, content_hashes, stable_hash};

/// Mirror of `core::state::Slot`.
#[allow(dead_code)]
struct Slot {
    position: i64,
    value: Option<Bytes>,
}

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

/// Writes `n` entries to a NATS KV bucket through one store, then measures what a second store
/// (what another replica, or this one after a restart, does on open) adds to RSS while loading
/// the bucket whole.
async fn nats(n: usize) {
    let server = dastra_connect_core::testkit::NatsServer::start().await;
    let bus = server.bus_config();
    let writer = dastra_connect_core::state::open(&bus, "ledger-bench").await.unwrap();
    let t = std::time::Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        batch.push((support::key(i).as_str().to_owned(), Some(Bytes::from(serde_json::to_vec(&entry(i)).unwrap()))));
        if batch.len() == 10_000 || i + 1 == n {
            writer.put_batch(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    println!("wrote {n} entries to NATS KV in {:.1} s", t.elapsed().as_secs_f64());
    let before = support::rss_bytes();
    let t = std::time::Instant::now();
    let reader = dastra_connect_core::state::open(&bus, "ledger-bench").await.unwrap();
    let after = support::rss_bytes();
    let grown = after.saturating_sub(before);
    println!(
        "NATS KV store loaded {} entries in {:.1} s: RSS +{:.1} MiB, {:.0} bytes per entry",
        reader.len(),
        t.elapsed().as_secs_f64(),
        mib(grown),
        grown as f64 / n as f64
    );
    std::hint::black_box((&writer, &reader));
}

fn main() {
    let n: usize = std::env::var("BENCH_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    if std::env::var("BENCH_STORE").as_deref() == Ok("nats") {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(nats(n));
        return;
    }
    let put_buffers = std::env::var("BENCH_VALUES").as_deref() == Ok("put");
    let before = support::rss_bytes();
    let mut cache: HashMap<String, Slot> = HashMap::new();
    let (mut key_bytes, mut value_bytes) = (0u64, 0u64);
    for i in 0..n {
        let key = support::key(i).as_str().to_owned();
        let json = serde_json::to_vec(&entry(i)).unwrap();
        // `exact`: as a replica loads the store from the bus (Kafka copies each record's bytes);
        // `put`: as this process writes them (`Ledger::put` hands `serde_json::to_vec`'s buffer,
        // capacity slack included, to the store).
        let value = if put_buffers { Bytes::from(json) } else { Bytes::copy_from_slice(&json) };
        key_bytes += key.len() as u64;
        value_bytes += value.len() as u64;
        cache.insert(key, Slot { position: i as i64, value: Some(value) });
    }
    let after = support::rss_bytes();
    let grown = after.saturating_sub(before);
    let table = (cache.capacity() * (std::mem::size_of::<String>() + std::mem::size_of::<Slot>() + 1)) as u64;
    println!("{n} ledger entries in a state-store cache ({} values):", if put_buffers { "put" } else { "exact" });
    println!(
        "  RSS {:.1} MiB before, {:.1} MiB after: +{:.1} MiB, {:.0} bytes per entry",
        mib(before),
        mib(after),
        mib(grown),
        grown as f64 / n as f64
    );
    println!(
        "  JSON values {:.1} MiB ({:.0} B avg), keys {:.1} MiB ({:.0} B avg), hash table {:.1} MiB (capacity {}, {} B per bucket); the rest is allocator overhead (two heap blocks per entry)",
        mib(value_bytes),
        value_bytes as f64 / n as f64,
        mib(key_bytes),
        key_bytes as f64 / n as f64,
        mib(table),
        cache.capacity(),
        std::mem::size_of::<String>() + std::mem::size_of::<Slot>() + 1
    );
    let sample = String::from_utf8(cache[support::key(0).as_str()].value.clone().unwrap().to_vec()).unwrap();
    println!("  an Asset entry ({} B): {sample}", sample.len());
    let sample = String::from_utf8(cache[support::key(1).as_str()].value.clone().unwrap().to_vec()).unwrap();
    println!("  an Actor entry ({} B): {sample}", sample.len());
    std::hint::black_box(&cache);
}
