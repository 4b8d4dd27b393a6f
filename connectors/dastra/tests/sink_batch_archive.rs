//! The `archive` delete policy through Dastra's batch archive routes: processings, contracts and
//! tasks retired at the source together become `POST DataProcessings/archive`, `POST
//! Contracts/archive` and `POST Tasks/batch-archive` requests carrying several ids, not one
//! `…/archive/{id}` each. A record a person already deleted in Dastra makes the batch fail (the
//! emulator archives all ids or none): the batch is split, the others are archived, and the
//! deleted one's own archive answers 404, which is "already gone" — no DLQ. A sink restart in
//! between must not lose anything, and keys that come back at the source are restored through the
//! batch restores (`POST DataProcessings/restore`, `POST Contracts/restore`, `POST
//! Tasks/batch-restore`), or created again for the one a person deleted, never duplicated. Real driver, nats-server and
//! MockCluster, the emulator as Dastra.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::{ChangeEvent, Contract, DataProcessing, Payload, Task};
use dastra_connect_dastra::sink::config::DeletePolicy;
use dastra_connect_dastra::sink::plan::{BacklogRange, plan_backlog};
use dastra_emulator::RunningEmulator;
use serde_json::Value;

const N: usize = 5;

/// (family, entity kind, emulator collection)
const FAMILIES: [(&str, &str, &str); 3] =
    [("processing", "processing", "DataProcessings"), ("contract", "contract", "Contracts"), ("task", "task", "Tasks")];

fn key(family: &str, i: usize) -> String {
    format!("t:{family}:a{i}")
}

fn payload(family: &str, i: usize, deleted: bool, label: &str) -> Payload {
    let label = Some(format!("{label} {family} {i}"));
    match family {
        "processing" => Payload::DataProcessing(DataProcessing { deleted, label, ..Default::default() }),
        "contract" => Payload::Contract(Contract { deleted, label, ..Default::default() }),
        _ => Payload::Task(Task { deleted, label, ..Default::default() }),
    }
}

/// The records of a family in Dastra whose external key is `key`.
fn records(emu: &RunningEmulator, collection: &str, key: &str) -> Vec<Value> {
    emu.state
        .entities(1, collection)
        .into_iter()
        .filter(|r| {
            r["ref"].as_str() == Some(key)
                || r["additionalDatas"]["dastraConnectKey"].as_str() == Some(key)
                || r["refId"].as_str() == Some(key)
        })
        .collect()
}

/// Ids sent in successful batch archives of `collection` since `mark`, and the largest batch.
fn batch_archived(emu: &RunningEmulator, collection: &str, mark: u64) -> (usize, usize) {
    let route =
        if collection == "Tasks" { "/Tasks/batch-archive".to_owned() } else { format!("/{collection}/archive") };
    let sizes: Vec<usize> = emu
        .state
        .request_log()
        .into_iter()
        .filter(|r| r.seq > mark && r.method == "POST" && r.route.ends_with(&route) && r.status == 200)
        .map(|r| r.body.as_ref().and_then(Value::as_array).map_or(0, Vec::len))
        .collect();
    (sizes.iter().sum(), sizes.iter().copied().max().unwrap_or(0))
}

async fn scenario(bus_kind: Bus) {
    let topics = Topics::default();
    let (_broker, bus) = broker_bus(bus_kind, &topics).await;
    let emu = emulator().await;
    let publisher = bus.publisher().await.unwrap();
    let config = || {
        let mut cfg = sink_config(&emu);
        for (_, kind, _) in FAMILIES {
            cfg.policy.deletes.insert(kind.into(), DeletePolicy::Archive);
        }
        // A long window: every delete is in flight before a group is sent, however loaded the host.
        cfg.batch_window = Duration::from_millis(400);
        cfg.max_in_flight = 24;
        cfg.shutdown_grace = Duration::from_secs(5);
        cfg
    };
    let mut version = 0u64;
    let mut events = |family: &str, range: &[usize], deleted: bool, label: &str| -> Vec<ChangeEvent> {
        range
            .iter()
            .map(|&i| {
                version += 1;
                event(&key(family, i), version, payload(family, i, deleted, label))
            })
            .collect()
    };

    // Created: five of each.
    let sink = RunningSink::start("sink", &bus, &topics, config());
    sink.wait_assigned(Duration::from_secs(60)).await;
    let all: Vec<usize> = (0..N).collect();
    let mut created = Vec::new();
    for (family, _, _) in FAMILIES {
        created.extend(events(family, &all, false, "v1"));
    }
    publish(publisher.as_ref(), &topics, &created).await;
    sink.wait_idle(Duration::from_secs(120)).await;
    sink.stop().await;
    for (family, _, collection) in FAMILIES {
        for i in 0..N {
            assert_eq!(records(&emu, collection, &key(family, i)).len(), 1, "{family} {i} created once");
        }
    }

    // A person deletes processing 2 in Dastra; then the source retires every one of them.
    let gone = records(&emu, "DataProcessings", &key("processing", 2))[0]["id"].as_str().unwrap().to_owned();
    emu_delete(&emu, &format!("/v1/ws/1/DataProcessings/{gone}")).await;
    let mark = emu.state.request_log().last().map_or(0, |r| r.seq);
    let mut retired = Vec::new();
    for (family, _, _) in FAMILIES {
        retired.extend(events(family, &all, true, "v1"));
    }
    publish(publisher.as_ref(), &topics, &retired).await;

    // `plan` foresees one batch archive per family (it assumes nobody deleted anything in Dastra).
    let plan = plan_backlog(&bus, &topics, "sink", &config(), &Codec::single_object(), &BacklogRange::Uncommitted)
        .await
        .unwrap();
    let archives: Vec<(&String, &u64)> =
        plan.by_route.iter().filter(|(r, n)| r.contains("archive") && **n > 0).collect();
    assert_eq!(
        archives,
        [
            (&"POST /v1/ws/{workspaceId}/Contracts/archive".to_owned(), &1),
            (&"POST /v1/ws/{workspaceId}/DataProcessings/archive".to_owned(), &1),
            (&"POST /v1/ws/{workspaceId}/Tasks/batch-archive".to_owned(), &1),
        ],
        "{}",
        plan.table()
    );
    assert_eq!(plan.requests, 3, "{}", plan.table());

    let sink = RunningSink::start("sink", &bus, &topics, config());
    sink.wait_consumed("sink", retired.len() as u64, Duration::from_secs(120)).await;
    let sink_dlq = sink.metrics.clone();
    sink.stop().await;

    let log: Vec<String> = emu
        .state
        .request_log()
        .into_iter()
        .filter(|r| r.seq > mark)
        .map(|r| format!("{} {} {}", r.method, r.route, r.status))
        .collect();
    for (family, _, collection) in FAMILIES {
        let (ids, largest) = batch_archived(&emu, collection, mark);
        assert!(largest >= 2, "{family}: some batch archive carried several ids: {log:#?}");
        if family != "processing" {
            assert_eq!(ids, N, "{family}: every id archived through the batch route: {log:#?}");
        }
        for i in (0..N).filter(|&i| !(family == "processing" && i == 2)) {
            let found = records(&emu, collection, &key(family, i));
            assert_eq!(found.len(), 1, "{family} {i}: {found:?}");
            assert_eq!(found[0]["archived"], true, "{family} {i} archived, not deleted: {found:?}");
        }
    }
    // The processings' batch holds the one a person deleted: Dastra (the emulator) refuses it whole,
    // the sink splits it in halves down to that one, whose own archive answers 404. Each of the
    // other four is archived once, in a batch or alone; the split costs at most 2n - 1 requests.
    let single = |status: u16| {
        log.iter()
            .filter(|l| **l == format!("POST /v1/ws/{{workspaceId}}/DataProcessings/archive/{{id}} {status}"))
            .count()
    };
    let (batched, _) = batch_archived(&emu, "DataProcessings", mark);
    assert_eq!(batched + single(200), N - 1, "each live processing archived once: {log:#?}");
    assert_eq!(single(404), 1, "the deleted one alone gets its 404: {log:#?}");
    let sent = log.iter().filter(|l| l.contains("/DataProcessings/archive")).count();
    assert!(sent < 2 * N, "{sent} archive requests for {N} processings: {log:#?}");
    assert!(records(&emu, "DataProcessings", &key("processing", 2)).is_empty());
    let dlq = sink_dlq
        .render()
        .lines()
        .filter(|l| l.starts_with("dastra_connect_dlq_events_total"))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(dlq.is_empty(), "nothing reaches the DLQ (a 404 on an archive is already gone): {dlq:?}");

    // After a restart, processings 0–3 (2 is the one a person deleted), every contract and tasks
    // 1 and 3 come back at the source: restored in batch restores, the deleted one created again.
    let sink = RunningSink::start("sink", &bus, &topics, config());
    sink.wait_assigned(Duration::from_secs(60)).await;
    let mark = emu.state.request_log().last().map_or(0, |r| r.seq);
    let mut back = events("processing", &[0, 1, 2, 3], false, "v2");
    back.extend(events("contract", &all, false, "v2"));
    back.extend(events("task", &[1, 3], false, "v2"));
    publish(publisher.as_ref(), &topics, &back).await;
    sink.wait_consumed("sink", back.len() as u64, Duration::from_secs(120)).await;
    sink.stop().await;
    let came_back = |family: &str, i: usize| back.iter().any(|e| e.key.as_str() == key(family, i));
    for (family, _, collection) in FAMILIES {
        for i in 0..N {
            let found = records(&emu, collection, &key(family, i));
            assert_eq!(found.len(), 1, "{family} {i} exists once: {found:?}");
            let back = came_back(family, i);
            assert_eq!(found[0]["archived"], !back, "{family} {i}: {found:?}");
            let label = format!("{} {family} {i}", if back { "v2" } else { "v1" });
            assert_eq!(found[0]["label"], label, "{family} {i}: {found:?}");
        }
    }
    let log: Vec<_> = emu.state.request_log().into_iter().filter(|r| r.seq > mark).collect();
    let summary: Vec<String> = log.iter().map(|r| format!("{} {} {}", r.method, r.route, r.status)).collect();
    let restored = |route: &str| -> (usize, usize) {
        let sizes: Vec<usize> = log
            .iter()
            .filter(|r| r.method == "POST" && r.route.ends_with(route) && r.status == 200)
            .map(|r| r.body.as_ref().and_then(Value::as_array).map_or(0, Vec::len))
            .collect();
        (sizes.iter().sum(), sizes.iter().copied().max().unwrap_or(0))
    };
    let count = |line: &str| summary.iter().filter(|l| *l == line).count();
    assert_eq!(restored("/Contracts/restore"), (N, N), "one batch restore for the contracts: {summary:#?}");
    assert_eq!(restored("/Tasks/batch-restore"), (2, 2), "one batch restore for the tasks: {summary:#?}");
    let (batched, _) = restored("/DataProcessings/restore");
    let alone = count("POST /v1/ws/{workspaceId}/DataProcessings/restore/{id} 200");
    assert_eq!(batched + alone, 3, "three processings restored, each once: {summary:#?}");
    assert_eq!(count("POST /v1/ws/{workspaceId}/DataProcessings/restore/{id} 404"), 1, "{summary:#?}");
    assert_eq!(
        count("POST /v1/ws/{workspaceId}/DataProcessings 200"),
        1,
        "the deleted one created again: {summary:#?}"
    );
    let ledger = durable_ledger(&bus, &topics).await;
    for e in created.iter().chain(&retired).chain(&back) {
        let newest = created
            .iter()
            .chain(&retired)
            .chain(&back)
            .filter(|x| x.key == e.key)
            .map(|x| x.sequence.clone())
            .max()
            .unwrap();
        assert_eq!(ledger.get(e.key.as_str()).cloned().flatten(), Some(newest), "{}", e.key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_processings_contracts_and_tasks_are_archived_in_batches_on_nats() {
    scenario(Bus::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_processings_contracts_and_tasks_are_archived_in_batches_on_kafka() {
    scenario(Bus::Kafka).await;
}
