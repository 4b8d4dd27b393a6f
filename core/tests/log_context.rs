//! Log lines of the bus layer carry the name of the connector that uses it: librdkafka logs from its
//! own threads (here a Kafka publisher to a broker that refuses connections, publishing from outside
//! the span), and every such line prints the `connector` span the client was created in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dastra_connect_core::bus::{BusConfig, KafkaConfig, OutboundMessage};
use tracing::Instrument as _;

/// Collects everything the fmt layer writes.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().map(str::to_owned).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_log_lines_carry_the_connector_name() {
    let buf = Buffer::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    // Global: librdkafka logs from its own threads.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // Nothing listens on port 1: librdkafka's broker thread logs the refused connection.
    let mut cfg = KafkaConfig::new("127.0.0.1:1");
    cfg.timeout = Duration::from_secs(2);
    let bus = BusConfig::Kafka(cfg);
    let span = tracing::info_span!("connector", connector = "crm-sink");
    let publisher = async { bus.publisher().await.unwrap() }.instrument(span).await;
    // Publish from outside the span: the lines must carry the name anyway.
    let send = publisher.publish(OutboundMessage::new("t", b"k".to_vec(), b"v".to_vec()));
    let _ = tokio::time::timeout(Duration::from_secs(5), send).await;

    let lines = buf.lines();
    let rdkafka: Vec<&String> = lines.iter().filter(|l| l.contains("librdkafka")).collect();
    assert!(!rdkafka.is_empty(), "no librdkafka log line at all: {lines:#?}");
    for l in &rdkafka {
        assert!(l.contains("connector{connector=\"crm-sink\"}"), "a bus line without the connector: {l}");
    }
}
