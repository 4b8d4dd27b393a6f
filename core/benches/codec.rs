//! Prints encode/decode cost and message size of every payload type in every codec (figures, not
//! assertions): `cargo bench -p dastra-connect-core --bench codec`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use dastra_connect_core::codec::registry::stub::StubRegistry;
use dastra_connect_core::codec::{Codec, RegistryConfig, SchemaRegistryClient, decode_structured, encode_structured};
use dastra_connect_core::event::EntityKind;
use dastra_connect_core::event::samples::{sample_event, sample_payloads};

const ROUNDS: u32 = 2_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stub = StubRegistry::new();
    let (url, server) = stub.spawn().await?;
    let confluent = Codec::confluent(Arc::new(SchemaRegistryClient::new(RegistryConfig::new(url))?));
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
