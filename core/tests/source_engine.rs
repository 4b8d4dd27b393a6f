//! The source engine with an in-memory source system on a real nats-server: more records sharing
//! one timestamp than fit a page (keyset tie-breaker), a record committed late inside the look-back
//! window, a restart that republishes nothing, outputs that are not valid events (DLQ), a vendor
//! link that disappears (delete of the stale key), and a late record beyond the look-back that the
//! snapshot sweep catches, with the sweep's deletes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use dastra_connect_core::admin::Admin;
use dastra_connect_core::bus::{BusConfig, SubscriberEvent, TopicSpec};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::{ConnectorContext, Topics};
use dastra_connect_core::event::{ChangeEvent, EntityKind, Op};
use dastra_connect_core::source::{
    Cursor, Mapping, Page, SourceEngine, SourceError, SourceRecord, SourceSettings, SourceSystem, StreamSpec,
};
use dastra_connect_core::telemetry::Metrics;
use dastra_connect_core::testkit::{NatsServer, unique};
use parking_lot::Mutex;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A table in memory.
#[derive(Clone, Default)]
struct Memory {
    rows: Arc<Mutex<Vec<SourceRecord>>>,
}

impl Memory {
    fn put(&self, id: &str, updated: DateTime<Utc>, version: u64, body: serde_json::Value) {
        let mut rows = self.rows.lock();
        rows.retain(|r| r.id != id);
        rows.push(SourceRecord { id: id.into(), updated, version, body });
    }
    fn remove(&self, id: &str) {
        self.rows.lock().retain(|r| r.id != id);
    }
}

#[async_trait]
impl SourceSystem for Memory {
    async fn fetch_changes(&self, _: &str, after: &Cursor, limit: u32) -> Result<Page<SourceRecord>, SourceError> {
        let mut rows: Vec<SourceRecord> = self
            .rows
            .lock()
            .iter()
            .filter(|r| {
                if after.is_open() {
                    r.updated >= after.updated
                } else {
                    (r.updated, r.id.as_str()) > (after.updated, after.id.as_str())
                }
            })
            .cloned()
            .collect();
        rows.sort_by(|a, b| (a.updated, &a.id).cmp(&(b.updated, &b.id)));
        rows.truncate(limit as usize);
        Ok(Page { records: rows, total: None })
    }

    async fn fetch_all(&self, _: &str, after_id: Option<&str>, limit: u32) -> Result<Page<SourceRecord>, SourceError> {
        let mut rows: Vec<SourceRecord> =
            self.rows.lock().iter().filter(|r| after_id.is_none_or(|a| r.id.as_str() > a)).cloned().collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        let total = rows.len() as u64;
        rows.truncate(limit as usize);
        Ok(Page { records: rows, total: Some(total) })
    }
}

const MAPPING: &str = r#"
{kind: "asset", id: .id, data: {label: .name, type: "Software"}},
(if .vendor then {kind: "relationship", data: {origin: "\($system):asset:\(.id)", target: "\($system):actor:\(.vendor)"}} else empty end)
"#;

fn t(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(secs)
}

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), SourceError>>,
}

fn start(bus: &BusConfig, mem: &Memory, sweep: Option<Duration>) -> Running {
    let metrics = Metrics::new();
    let ctx = ConnectorContext {
        name: "mem".into(),
        bus: bus.clone(),
        topics: Topics::default(),
        codec: Codec::single_object(),
        metrics: metrics.clone(),
        admin: Admin::new(metrics),
    };
    let settings = SourceSettings {
        poll_interval: Duration::from_millis(200),
        look_back: Duration::from_secs(30),
        page_size: 3,
        sweep_interval: sweep,
        sweep_on_start: true,
    };
    let stream = StreamSpec {
        name: "things".into(),
        mapping: Arc::new(Mapping::compile("things", MAPPING).unwrap()),
        params: json!({}),
    };
    let stop = CancellationToken::new();
    let engine = SourceEngine::new(ctx, Arc::new(mem.clone()), "mem", vec![stream], settings);
    let task = tokio::spawn(engine.run(stop.clone()));
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task).await.unwrap().unwrap().unwrap();
    }
}

/// Everything on the change topics and the DLQ, decoded (DLQ entries as `None`).
/// Key, decoded event (`None` on the DLQ), headers.
type Msg = (String, Option<ChangeEvent>, Vec<(String, Vec<u8>)>);
type Got = Arc<Mutex<Vec<Msg>>>;

async fn reader(bus: &BusConfig) -> Got {
    let topics = Topics::default();
    let mut names: Vec<String> = EntityKind::ALL.iter().map(|k| topics.changes(*k)).collect();
    names.push(topics.dlq());
    let specs: Vec<TopicSpec> = names.iter().cloned().map(TopicSpec::new).collect();
    bus.ensure_topics(&specs).await.unwrap();
    let mut sub = bus.subscriber(&unique("reader"), &names).await.unwrap();
    let got: Got = Arc::default();
    let out = got.clone();
    let dlq = topics.dlq();
    tokio::spawn(async move {
        let codec = Codec::single_object();
        while let Ok(ev) = sub.next_event().await {
            if let SubscriberEvent::Message(m) = ev {
                let value = m.payload.clone().unwrap_or_default();
                let event = if m.topic == dlq {
                    None
                } else {
                    Some(ChangeEvent::from_parts(&m.headers, &value, &codec).await.unwrap())
                };
                out.lock().push((String::from_utf8_lossy(&m.key).into_owned(), event, m.headers.clone()));
            }
        }
    });
    got
}

async fn wait(got: &Got, what: &str, pred: impl Fn(&[Msg]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !pred(&got.lock()) {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {} messages", got.lock().len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn has(got: &[Msg], key: &str, op: Op, snapshot: bool) -> bool {
    got.iter().any(|(k, e, _)| k == key && e.as_ref().is_some_and(|e| e.op == op && e.data.is_snapshot() == snapshot))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_cursor_look_back_restart_dlq_and_sweep() {
    let nats = NatsServer::start().await;
    let bus = nats.bus_config();
    let got = reader(&bus).await;
    let mem = Memory::default();
    // Seven records at one instant, more than two pages of three.
    for i in 0..7 {
        mem.put(&format!("r{i}"), t(10), 1, json!({"id": format!("r{i}"), "name": format!("thing {i}")}));
    }
    mem.put("v1", t(20), 1, json!({"id": "v1", "name": "with vendor", "vendor": "acme"}));
    mem.put("bad", t(21), 1, json!({"id": "bad", "name": ""}));
    let src = start(&bus, &mem, None);
    wait(&got, "the first sync", |g| g.len() >= 10).await;
    let snapshot = got.lock().clone();
    for i in 0..7 {
        assert_eq!(snapshot.iter().filter(|(k, _, _)| *k == format!("mem:asset:r{i}")).count(), 1, "r{i} once");
    }
    assert!(has(&snapshot, "mem:relationship:mem:asset:v1->mem:actor:acme", Op::Upsert, false));
    let dlq: Vec<_> = snapshot.iter().filter(|(_, e, _)| e.is_none()).collect();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].0, "mem:things:bad");
    let reason =
        dlq[0].2.iter().find(|(k, _)| k == "dastra_dlq_reason").map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    assert_eq!(reason.as_deref(), Some("invalid_payload"), "an asset without a label is not a valid event");

    // A record committed late with a time inside the look-back window, and a link removed.
    mem.put("late", t(15), 1, json!({"id": "late", "name": "late"}));
    mem.put("v1", t(40), 2, json!({"id": "v1", "name": "with vendor", "vendor": null}));
    wait(&got, "the late record and the removed link", |g| {
        has(g, "mem:asset:late", Op::Upsert, false)
            && has(g, "mem:relationship:mem:asset:v1->mem:actor:acme", Op::Delete, false)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = got.lock().len();
    src.stop().await;

    // Restart: the look-back overlap is recognised, nothing is published again.
    let src = start(&bus, &mem, None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(got.lock().len(), before, "a restart with no change publishes nothing");
    src.stop().await;

    // A record committed too late for the look-back window (older than cursor - 30 s) and a record
    // removed without trace: only a sweep sees them.
    mem.put("very-late", t(1), 1, json!({"id": "very-late", "name": "very late"}));
    mem.remove("r3");
    let src = start(&bus, &mem, Some(Duration::from_secs(1)));
    wait(&got, "the sweep", |g| {
        has(g, "mem:asset:very-late", Op::Upsert, true) && has(g, "mem:asset:r3", Op::Delete, true)
    })
    .await;
    src.stop().await;
    let all = got.lock().clone();
    assert!(!has(&all, "mem:asset:r4", Op::Delete, true), "present records are not deleted");
    assert!(
        !all.iter().any(|(k, e, _)| k == "mem:asset:bad" && e.is_some()),
        "the rejected record never became an event"
    );
}
