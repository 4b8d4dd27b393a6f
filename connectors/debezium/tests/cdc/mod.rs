//! Helpers of the Debezium tests: change events as a PostgreSQL connector writes them, the bus with
//! the input topics, and a producer of raw records.

#![allow(dead_code)]

use bytes::Bytes;
use dastra_connect_core::bus::{BusConfig, OutboundMessage};
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::Payload;
use dastra_connect_test_harness::{Broker, SourceBus};
use serde_json::{Value, json};

/// Base of the source timestamps (ms).
pub const T0: i64 = 1_764_000_000_000;

/// A `suppliers` row.
pub fn row(id: i64, name: Option<&str>, country: Option<&str>) -> Value {
    let email = name.map(|n| format!("dpo@{}.example", n.to_lowercase().replace(' ', "-")));
    json!({"id": id, "name": name, "country": country, "email": email})
}

/// A PostgreSQL connector's change event on `erp.public.<table>` at `lsn`.
pub fn event(table: &str, op: &str, before: Option<Value>, after: Option<Value>, lsn: i64) -> Value {
    json!({
        "before": before, "after": after, "op": op, "ts_ms": T0 + lsn + 5, "transaction": null,
        "source": {
            "version": "2.7.3.Final", "connector": "postgresql", "name": "erp", "ts_ms": T0 + lsn,
            "snapshot": if op == "r" { "true" } else { "false" }, "db": "erp", "schema": "public",
            "table": table, "txId": 700 + lsn, "lsn": lsn, "xmin": null
        }
    })
}

/// The bus with the input topics: on Kafka created on the MockCluster (3 partitions), on NATS
/// captured by the stream.
pub async fn bus_with_inputs(broker: &Broker, topics: &Topics, inputs: &[&str]) -> BusConfig {
    let mut bus = broker.bus(topics).await;
    match (broker, &mut bus) {
        (Broker::Kafka(k), _) => inputs.iter().for_each(|t| k.create_topic(t, 3)),
        (_, BusConfig::Nats(n)) => {
            for t in inputs {
                n.stream_subjects.push(format!("{t}.>"));
            }
            bus.ensure_topics(&[]).await.unwrap();
        }
        _ => unreachable!("a Kafka broker has a Kafka bus"),
    }
    bus
}

/// Publishes raw records to `topic` in order (`None` value: a tombstone).
pub async fn produce(bus: &BusConfig, topic: &str, records: Vec<(Vec<u8>, Option<Vec<u8>>)>) {
    let publisher = bus.publisher().await.unwrap();
    let msgs = records
        .into_iter()
        .map(|(k, v)| OutboundMessage {
            topic: topic.into(),
            key: Bytes::from(k),
            payload: v.map(Bytes::from),
            headers: vec![],
        })
        .collect();
    publisher.publish_batch(msgs).await.unwrap();
}

/// The company name of `<system>:actor:<id>`'s newest event, unless deleted.
pub fn actor_name(
    l: &std::collections::BTreeMap<String, dastra_connect_core::event::ChangeEvent>,
    system: &str,
    id: &str,
) -> Option<String> {
    match &l.get(&format!("{system}:actor:{id}"))?.data {
        Payload::Actor(a) if !a.deleted => a.company_name.clone(),
        _ => None,
    }
}
