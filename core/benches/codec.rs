//! Prints decode throughput (events/s on one core) per codec, then encode/decode cost and message
//! size of every payload type in every codec (figures, not assertions):
//! `cargo bench -p dastra-connect-core --bench codec`.
//!
//! Throughput is measured twice per codec: the payload alone (`Codec::decode`) and the whole event
//! as the sink reads it (`ChangeEvent::from_parts`: headers parsed, payload decoded, event
//! validated), over the eight fully populated sample payloads in turn (each kind once, so a mix
//! of small and large records; Asset and Actor are the smaller half). Each figure is the best of
//! five rounds, because other processes share the machine.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use dastra_connect_core::codec::registry::stub::StubRegistry;
use dastra_connect_core::codec::{Codec, RegistryConfig, SchemaRegistryClient, decode_structured, encode_structured};
use dastra_connect_core::event::samples::{sample_event, sample_payloads};
use dastra_connect_core::event::{ChangeEvent, EntityKind};

const ROUNDS: u32 = 2_000;
const THROUGHPUT_EVENTS: usize = 20_000;
const REPEATS: usize = 3;

type Message = (Vec<(String, Vec<u8>)>, Vec<u8>, EntityKind);

async fn messages(codec: &Codec) -> Result<Vec<Message>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for kind in EntityKind::ALL {
        let event = sample_event(kind);
        let topic = kind.default_topic();
        let value = event.encode_value(codec, &topic).await?;
        let headers = event.ce_headers(codec).into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        out.push((headers, value, kind));
    }
    Ok(out)
}

/// Best events/s of [`REPEATS`] rounds of [`THROUGHPUT_EVENTS`] decodes cycling through `msgs`;
/// `whole` decodes the whole event (`from_parts`), else the payload alone.
async fn best_rate(codec: &Codec, msgs: &[Message], whole: bool) -> Result<f64, Box<dyn std::error::Error>> {
    let mut best = 0f64;
    for _ in 0..REPEATS {
        let t = Instant::now();
        for i in 0..THROUGHPUT_EVENTS {
            let (headers, value, kind) = &msgs[i % msgs.len()];
            if whole {
                black_box(ChangeEvent::from_parts(black_box(headers), black_box(value), codec).await?);
            } else {
                black_box(codec.decode(*kind, black_box(value)).await?);
            }
        }
        best = best.max(THROUGHPUT_EVENTS as f64 / t.elapsed().as_secs_f64());
    }
    Ok(best)
}

async fn throughput(name: &str, codec: &Codec) -> Result<(), Box<dyn std::error::Error>> {
    let all = messages(codec).await?;
    let small: Vec<Message> =
        all.iter().filter(|m| matches!(m.2, EntityKind::Asset | EntityKind::Actor)).cloned().collect();
    for (set, msgs) in [("all 8 kinds", &all), ("asset+actor", &small)] {
        let payload = best_rate(codec, msgs, false).await?;
        let event = best_rate(codec, msgs, true).await?;
        let mean_bytes = msgs.iter().map(|m| m.1.len()).sum::<usize>() / msgs.len();
        println!(
            "{name:<18} {set:<12} {mean_bytes:>6} B  payload {payload:>10.0} ev/s ({:>6.2} µs)   event {event:>10.0} ev/s ({:>6.2} µs)",
            1e6 / payload,
            1e6 / event
        );
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stub = StubRegistry::new();
    let (url, server) = stub.spawn().await?;
    let confluent = Codec::confluent(Arc::new(SchemaRegistryClient::new(RegistryConfig::new(url))?));

    println!("decode throughput, one core, best of {REPEATS} x {THROUGHPUT_EVENTS} decodes:");
    throughput("avro_single_object", &Codec::single_object()).await?;
    throughput("confluent (cached)", &confluent).await?;
    throughput("json", &Codec::json()).await?;
    println!();

    println!("{:<13} {:<18} {:>7} {:>11} {:>11}", "payload", "codec", "bytes", "encode µs", "decode µs");
    for codec in [Codec::single_object(), confluent, Codec::json()] {
        for p in sample_payloads() {
            let topic = p.kind().default_topic();
            let bytes = codec.encode(&topic, &p).await?;
            let t = Instant::now();
            for _ in 0..ROUNDS {
                black_box(codec.encode(&topic, black_box(&p)).await?);
            }
            let enc = t.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
            let t = Instant::now();
            for _ in 0..ROUNDS {
                black_box(codec.decode(p.kind(), black_box(&bytes)).await?);
            }
            let dec = t.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
            println!(
                "{:<13} {:<18} {:>7} {:>11.1} {:>11.1}",
                p.kind().as_str(),
                format!("{:?}", codec.format()),
                bytes.len(),
                enc,
                dec
            );
        }
    }
    let event = sample_event(EntityKind::DataProcessing);
    let bytes = encode_structured(&event)?;
    let t = Instant::now();
    for _ in 0..ROUNDS {
        black_box(decode_structured(black_box(&bytes))?);
    }
    let dec = t.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
    println!("structured envelope (processing): {} bytes, decode {dec:.1} µs", bytes.len());
    let t = Instant::now();
    for p in sample_payloads() {
        for _ in 0..ROUNDS {
            black_box(p.content_hash());
        }
    }
    println!("content_hash: {:.1} µs per payload", t.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS * 8));
    server.abort();
    Ok(())
}
