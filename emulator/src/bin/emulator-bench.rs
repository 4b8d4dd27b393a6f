//! Throughput benchmark of the emulator (quota off) over real HTTP on loopback: for a POST + GET +
//! PATCH mix on Assets, DataProcessings and DSRs, prints requests/s. Figures, not assertions.
//! `cargo run --release -p dastra-emulator --bin emulator-bench -- [seconds] [concurrency]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dastra_emulator::{EmulatorConfig, spawn};
use serde_json::{Value, json};

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
}

async fn call(client: &reqwest::Client, tally: &Tally, req: reqwest::RequestBuilder) -> Option<Value> {
    let _ = client;
    tally.requests.fetch_add(1, Ordering::Relaxed);
    match req.header("X-API-Key", "emulator-key").send().await {
        Ok(r) if r.status().is_success() => {
            let bytes = r.bytes().await.ok()?;
            if bytes.is_empty() { Some(Value::Null) } else { serde_json::from_slice(&bytes).ok() }
        }
        _ => {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

async fn worker(base: String, client: reqwest::Client, tally: Arc<Tally>, deadline: Instant, n: usize) {
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let (family, body) = match i % 3 {
            0 => (
                "Assets",
                json!({"label": format!("asset {n}-{i}"), "type": "Software", "ref": format!("bench:{n}:{i}")}),
            ),
            1 => ("DataProcessings", json!({"label": format!("processing {n}-{i}"), "areaId": 1})),
            _ => (
                "DataSubjectRequests",
                json!({"title": format!("dsr {n}-{i}"), "areaId": 1, "locale": "fr", "purposes": ["Access"]}),
            ),
        };
        let url = format!("{base}/v1/ws/1/{family}");
        let Some(created) = call(&client, &tally, client.post(&url).json(&body)).await else { continue };
        let id = match &created["id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => continue,
        };
        call(&client, &tally, client.get(format!("{url}/{id}"))).await;
        let patch = json!([{"op": "replace", "path": "/description", "value": format!("updated {i}")}]);
        call(&client, &tally, client.patch(format!("{url}/{id}")).json(&patch)).await;
        call(&client, &tally, client.get(format!("{url}?page=1&size=20"))).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let emu = spawn(EmulatorConfig::default().with_quota(Vec::new())).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|n| tokio::spawn(worker(emu.base_url.clone(), client.clone(), tally.clone(), deadline, n)))
        .collect();
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests = tally.requests.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    let stored: usize =
        ["Assets", "DataProcessings", "DataSubjectRequests"].iter().map(|f| emu.state.entities(1, f).len()).sum();
    println!("emulator-bench: {concurrency} concurrent clients, {elapsed:.1} s, quota off, loopback HTTP/1.1");
    println!(
        "  mix per iteration: POST + GET by id + PATCH (JSON Patch) + GET list page, over Assets / DataProcessings / DSRs"
    );
    println!("  requests: {requests}  errors: {errors}  entities created: {stored}");
    println!("  throughput: {:.0} requests/s", requests as f64 / elapsed);
    println!("  (Dastra's own quota is 500 requests/min = 8.3 requests/s)");
    Ok(())
}
