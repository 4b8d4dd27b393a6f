//! Debezium Server's NATS JetStream layout on a real nats-server: change events published the way
//! its `nats-jetstream` sink does (JSON values on the subject `erp.public.suppliers` of the
//! company's own stream `DebeziumStream`, no key, no headers, tombstones not sent, one event
//! published twice as its synchronous mode did at one commit) read by `type: debezium` with
//! `nats_stream` and the `key` program: first sync, an update, a delete, a duplicate without
//! effect, and a restart that reads only what came while it was stopped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cdc;

use dastra_connect_test_harness as common;

use std::time::Duration;

use cdc::*;
use common::*;

use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::connector::{Connector, Topics};
use dastra_connect_core::event::{EntityKind, Op};
use dastra_connect_debezium::{DebeziumSource, ReaderConfig, ReaderKind};
use serde_json::{Value, json};

const SUBJECT: &str = "erp.public.suppliers";
const STREAM: &str = "DebeziumStream";
const WAIT: Duration = Duration::from_secs(60);

fn config() -> ReaderConfig {
    let c: ReaderConfig = serde_json::from_value(json!({
        "topics": [{"topic": SUBJECT, "mapping": include_str!("../samples/suppliers-actors.jq"), "key": "{id}"}],
        "key_system": "erp",
        "nats_stream": STREAM,
        "consumer": {"linger": "50ms", "batch_size": 100}
    }))
    .unwrap();
    c.validate("test", ReaderKind::Debezium).unwrap();
    c
}

/// Publishes `events` to `SUBJECT` as Debezium Server does: the value only, synchronously, in order.
async fn publish(js: &async_nats::jetstream::Context, events: &[Value]) {
    for e in events {
        js.publish(SUBJECT, serde_json::to_vec(e).unwrap().into()).await.unwrap().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debezium_server_subjects_on_nats() {
    let broker = Broker::nats().await;
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let BusConfig::Nats(nats) = &bus else { unreachable!("a NATS broker has a NATS bus") };
    // The company's stream, outside the bus's: Debezium Server's sink writes into it.
    let client = async_nats::connect(nats.servers[0].as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: STREAM.into(),
        subjects: vec!["erp.public.*".into()],
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let reader = Reader::start(&bus, &topics).await;

    // 1. First sync: snapshot reads, a create published twice.
    let created = event("suppliers", "c", None, Some(row(3, Some("Initech"), Some("FR"))), 110);
    publish(
        &js,
        &[
            event("suppliers", "r", None, Some(row(1, Some("Acme"), Some("FR"))), 100),
            event("suppliers", "r", None, Some(row(2, Some("Globex"), Some("DE"))), 100),
            created.clone(),
            created,
        ],
    )
    .await;
    let source = RunningSource::start(&bus, &topics, Box::new(DebeziumSource::new(config())));
    reader.wait_until("the first sync", WAIT, |r| count(&r.latest(), EntityKind::Actor, Op::Upsert) == 3).await;
    let l = reader.latest();
    assert_eq!(actor_name(&l, "erp", "1").as_deref(), Some("Acme"));
    assert_eq!(actor_name(&l, "erp", "3").as_deref(), Some("Initech"));
    let initech = reader.events().into_iter().filter(|e| e.key.as_str() == "erp:actor:3").collect::<Vec<_>>();
    assert!(initech.iter().all(|e| e.id == initech[0].id), "the duplicate is the same event (same id)");

    // 2. An update and a delete (no tombstone follows on NATS).
    publish(
        &js,
        &[
            event(
                "suppliers",
                "u",
                Some(row(2, Some("Globex"), Some("DE"))),
                Some(row(2, Some("Globex Europe"), Some("DE"))),
                200,
            ),
            event("suppliers", "d", Some(row(1, None, None)), None, 300),
        ],
    )
    .await;
    reader
        .wait_until("the update and the delete", WAIT, |r| {
            let l = r.latest();
            actor_name(&l, "erp", "2").as_deref() == Some("Globex Europe")
                && l.get("erp:actor:1").is_some_and(|e| e.op == Op::Delete)
        })
        .await;
    source.stop().await;

    // 3. Restart: only what came while stopped is read.
    publish(&js, &[event("suppliers", "c", None, Some(row(4, Some("Umbrella"), Some("FR"))), 400)]).await;
    let source = RunningSource::start(&bus, &topics, Box::new(DebeziumSource::new(config())));
    reader
        .wait_until("the record written while stopped", WAIT, |r| actor_name(&r.latest(), "erp", "4").is_some())
        .await;
    assert_eq!(source.metric("dastra_connect_records_polled_total"), Some(1.0), "nothing read twice");
    source.stop().await;
    assert!(
        reader.dlq().is_empty(),
        "{:?}",
        reader.dlq().iter().map(|d| d.header("dastra_dlq_reason")).collect::<Vec<_>>()
    );
    // Order per subject held: supplier 2's last event is the update.
    assert_eq!(actor_name(&reader.latest(), "erp", "2").as_deref(), Some("Globex Europe"));
}

/// `nats_stream` naming a stream that does not capture the subject stops the connector with a
/// clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_outside_the_stream_is_refused() {
    let broker = Broker::nats().await;
    let topics = Topics::default();
    let bus = broker.bus(&topics).await;
    let BusConfig::Nats(nats) = &bus else { unreachable!() };
    let js = async_nats::jetstream::new(async_nats::connect(nats.servers[0].as_str()).await.unwrap());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: STREAM.into(),
        subjects: vec!["crm.public.*".into()],
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let (ctx, _m, _a) = common::context("cdc", &bus, &topics);
    let err =
        Box::new(DebeziumSource::new(config())).run(ctx, tokio_util::sync::CancellationToken::new()).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("subject `erp.public.suppliers` is not captured by stream `DebeziumStream`"), "{text}");
}
