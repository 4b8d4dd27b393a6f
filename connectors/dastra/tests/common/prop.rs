//! Property tests over real brokers: which bus a case runs on, and a seeded runner with few shrink
//! steps (every case starts real servers).

use std::fmt::Debug;
use std::sync::atomic::{AtomicU32, Ordering};

use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::testkit::Broker;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use super::{SinkBus, ensure, short_sessions};

/// The bus a property case runs on.
#[derive(Clone, Copy, Debug)]
pub enum Bus {
    Nats,
    Kafka,
}

/// Starts a broker of `bus_kind` (keep it alive) and answers its bus config, with the topics of
/// the sink named "sink" created and short group sessions.
pub async fn broker_bus(bus_kind: Bus, topics: &Topics) -> (Broker, BusConfig) {
    let broker = match bus_kind {
        Bus::Nats => Broker::nats().await,
        Bus::Kafka => Broker::kafka(),
    };
    let mut bus = broker.bus(topics, "sink").await;
    short_sessions(&mut bus);
    ensure(&bus, topics).await;
    (broker, bus)
}

/// Runs `case` on `cases` scenarios drawn from `strategy` (`DASTRA_PROPTEST_CASES` overrides it)
/// with a runner seeded by `seed` (`DASTRA_PROPTEST_SEED`), on a two-thread runtime; logs each case
/// as `<label> case <n>: <describe(scenario)>, <seconds> s, ok|FAILED` and panics with the seed and
/// the shrunk scenario on a failure.
pub fn property<S>(
    label: &str,
    cases: u32,
    seed: u64,
    strategy: S,
    describe: impl Fn(&S::Value) -> String,
    case: impl AsyncFn(&S::Value) -> Result<(), String>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let cases = env("DASTRA_PROPTEST_CASES", cases.into()) as u32;
    let seed = env("DASTRA_PROPTEST_SEED", seed);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config { cases, max_shrink_iters: 4, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let n = AtomicU32::new(0);
    let result = runner.run(&strategy, |s| {
        let n = n.fetch_add(1, Ordering::Relaxed) + 1;
        let started = std::time::Instant::now();
        let outcome = rt.block_on(case(&s));
        eprintln!(
            "{label} case {n}: {}, {:.1} s, {}",
            describe(&s),
            started.elapsed().as_secs_f64(),
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        outcome.map_err(|e| TestCaseError::fail(format!("{e}\nscenario: {s:#?}")))
    });
    if let Err(e) = result {
        panic!("seed {seed:#x}: {e}");
    }
}
