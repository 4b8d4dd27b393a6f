//! Startup that tells the truth, on the real binary, a real nats-server and the Dastra emulator: a
//! wrong API key is never ready and stops the process with an error naming the connector and "Dastra
//! rejected the API key"; `/readyz` is 503 (with the reason) until every configured connector is
//! ready, including while Dastra is unreachable; `validate --check-connectivity` runs the same
//! checks without consuming anything, a source's included (its own system, with its credentials),
//! and the webhook receiver's backfill (its Dastra key and workspace).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dastra_connect_core::testkit::NatsServer;
use dastra_emulator::EmulatorConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on 127.0.0.1:`port`: (status, body), or None when nothing listens yet.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

fn write_config(dir: &Path, nats: &NatsServer, admin: u16, dastra_url: &str, api_key: &str, extra: &str) -> String {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "bus:\n  type: nats\n  servers: [\"{}\"]\nadmin:\n  listen: 127.0.0.1:{admin}\n  health_interval: 2s\nconnectors:\n  crm-sink:\n    type: dastra_sink\n    dastra:\n      base_url: {dastra_url}\n      workspace_id: 1\n      request_timeout: 2s\n      retry: {{ max_attempts: 2 }}\n      auth: {{ type: api_key, api_key: \"{api_key}\" }}\n{extra}",
            nats.url()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_is_never_ready_and_stops_the_process_naming_the_connector() {
    let nats = NatsServer::start().await;
    let emu = dastra_emulator::spawn(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    let config = write_config(dir.path(), &nats, admin, &emu.base_url, "not-the-key", "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dastra-connect"))
        .args(["run", "--config", &config])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some((code, body)) = get(admin, "/readyz").await {
            assert_ne!(code, 200, "a sink with a rejected key must never be ready: {body}");
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the process did not stop on a rejected API key");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "exit status {status:?}");
    assert!(stderr.contains("crm-sink") && stderr.contains("Dastra rejected the API key"), "{stderr}");
    assert!(!stderr.contains("not-the-key"), "the key must never be printed: {stderr}");
    // Only the check reached Dastra: nothing was consumed, nothing written.
    let log = emu.state.request_log();
    assert!(!log.is_empty() && log.iter().all(|r| r.method == "GET" && r.path == "/me"), "{log:?}");
    assert!(log.iter().all(|r| r.status == 401), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_until_every_connector_is_ready() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let admin = free_port();
    let hook_port = free_port();
    // Dastra is not there yet: the sink cannot pass its health check, the webhook receiver can.
    let dastra_port = free_port();
    let hooks = format!(
        "  hooks:\n    type: dastra_webhook_receiver\n    listen: 127.0.0.1:{hook_port}\n    signing_keys: [\"k\"]\n"
    );
    let config =
        write_config(dir.path(), &nats, admin, &format!("http://127.0.0.1:{dastra_port}"), "emulator-key", &hooks);
    let mut child = Command::new(env!("CARGO_BIN_EXE_dastra-connect"))
        .args(["run", "--config", &config])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // The webhook receiver comes up (its port answers) while /readyz stays 503 because of the sink.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_hooks_up = false;
    let mut last = String::new();
    while Instant::now() < deadline {
        let hooks_up = tokio::net::TcpStream::connect(("127.0.0.1", hook_port)).await.is_ok();
        if let Some((code, body)) = get(admin, "/readyz").await {
            assert_eq!(code, 503, "ready while the sink cannot reach Dastra: {body}");
            last = body;
            if hooks_up && last.contains("crm-sink: dastra:") && !last.contains("hooks") {
                seen_hooks_up = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_hooks_up, "expected the receiver ready and the sink not: {last}");
    let (_, status) = get(admin, "/status").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["health"]["crm-sink"]["ok"], false);
    assert_eq!(v["health"]["hooks"]["ok"], true);

    // Dastra comes up: the sink passes its check, subscribes, and the process becomes ready.
    let emu = dastra_emulator::serve(EmulatorConfig::default(), SocketAddr::from(([127, 0, 0, 1], dastra_port)))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some((200, _)) = get(admin, "/readyz").await {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the process stopped");
        assert!(Instant::now() < deadline, "never became ready: {:?}", get(admin, "/readyz").await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The periodic check goes on (every 2 s here), through the sink's own quota.
    let first = emu.state.request_log().iter().filter(|r| r.path == "/me").count();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = emu.state.request_log().iter().filter(|r| r.path == "/me").count();
    assert!(later > first, "no periodic GET /me: {first} then {later}");
    let (_, status) = get(admin, "/status").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let granted = v["crm-sink"]["quota"]["granted_total"].as_u64().unwrap();
    assert!(granted >= later as u64, "health checks take quota slots: {granted} granted, {later} GET /me");
    child.kill().unwrap();
    let _ = child.wait();
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_check_connectivity_runs_the_checks_without_consuming() {
    let nats = NatsServer::start().await;
    let emu = dastra_emulator::spawn(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |config: &str, connectivity: bool| {
        let mut args = vec!["validate", "--config", config];
        if connectivity {
            args.push("--check-connectivity");
        }
        Command::new(env!("CARGO_BIN_EXE_dastra-connect")).args(&args).output().unwrap()
    };

    let good = write_config(dir.path(), &nats, free_port(), &emu.base_url, "emulator-key", "");
    let out = run(&good, false);
    assert!(out.status.success());
    assert!(emu.state.request_log().is_empty(), "plain validate connects to nothing");
    let out = run(&good, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("crm-sink: bus ok") && stdout.contains("crm-sink: dastra ok"), "{stdout}");
    let log = emu.state.request_log();
    assert!(log.len() == 1 && log[0].path == "/me", "only GET /me: {log:?}");

    let bad = write_config(dir.path(), &nats, free_port(), &emu.base_url, "wrong", "");
    let out = run(&bad, true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("crm-sink") && stderr.contains("Dastra rejected the API key"), "{stderr}");

    // The webhook receiver's backfill reads Dastra with its own key and workspace: both are
    // checked with one smallest list of requests; a wrong workspace is named.
    let hooks = |ws: i64| {
        format!(
            "  hooks:\n    type: dastra_webhook_receiver\n    listen: 127.0.0.1:{}\n    signing_keys: [\"k\"]\n    backfill:\n      dastra: {{ base_url: {}, workspace_id: {ws}, retry: {{ max_attempts: 1 }}, auth: {{ type: api_key, api_key: \"emulator-key\" }} }}\n",
            free_port(),
            emu.base_url
        )
    };
    let seen = emu.state.request_log().len();
    let out = run(&write_config(dir.path(), &nats, free_port(), &emu.base_url, "emulator-key", &hooks(1)), true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("hooks: bus ok") && stdout.contains("hooks: backfill ok"), "{stdout}");
    let lists: Vec<_> =
        emu.state.request_log().into_iter().skip(seen).filter(|r| r.path.contains("DataSubjectRequests")).collect();
    assert_eq!(lists.len(), 1, "{lists:?}");
    assert_eq!(lists[0].path, "/v1/ws/1/DataSubjectRequests");
    assert!(lists[0].query.as_deref().is_some_and(|q| q.contains("size=1")), "{lists:?}");
    let out = run(&write_config(dir.path(), &nats, free_port(), &emu.base_url, "emulator-key", &hooks(99)), true);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("hooks") && stderr.contains("no workspace 99"), "{stdout}{stderr}");

    // A source's check reads its own system: refused credentials are named, the secret is not.
    let coupa = dastra_connect_coupa::fake::FakeCoupa::with_samples().spawn().await.unwrap();
    let source = |key: &str| {
        format!(
            "  vendors:\n    type: coupa\n    url: {}\n    auth: {{ type: api_key, api_key: \"{key}\" }}\n",
            coupa.base_url
        )
    };
    let with_source =
        write_config(dir.path(), &nats, free_port(), &emu.base_url, "emulator-key", &source("bad-coupa-key"));
    let out = run(&with_source, true);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success());
    assert!(
        format!("{stdout}{stderr}").contains("vendors")
            && format!("{stdout}{stderr}").contains("refused the credentials"),
        "{stdout}{stderr}"
    );
    assert!(!format!("{stdout}{stderr}").contains("bad-coupa-key"), "{stdout}{stderr}");
    let with_source = write_config(
        dir.path(),
        &nats,
        free_port(),
        &emu.base_url,
        "emulator-key",
        &source(dastra_connect_coupa::fake::API_KEY),
    );
    let out = run(&with_source, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("vendors: source ok"), "{stdout}");
    assert!(coupa.state.log().iter().all(|l| l.params.get("limit").is_none_or(|n| n == "1")), "one-record reads only");

    // An unreachable bus fails the bus check (and names it).
    let mut stopped = NatsServer::start().await;
    let dead = write_config(dir.path(), &stopped, free_port(), &emu.base_url, "emulator-key", "");
    stopped.stop();
    let out = run(&dead, true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("crm-sink: FAILED bus:"), "{stdout}");
}

/// The readers of existing topics check their schema registry too (`GET /subjects`): the in-repo
/// registry stub up → `schema_registry ok`; stopped → the check fails naming the registry and the
/// call, and validate exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_check_connectivity_checks_the_schema_registry() {
    let nats = NatsServer::start().await;
    let emu = dastra_emulator::spawn(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stub = dastra_connect_core::codec::registry::stub::StubRegistry::new();
    let (url, server) = stub.spawn().await.unwrap();
    let cdc = format!(
        "  erp-cdc:\n    type: debezium\n    nats_stream: DebeziumStream\n    registry: {{ url: \"{url}\" }}\n    topics: [{{topic: erp.public.suppliers, mapping: '.', key: '{{id}}'}}]\n"
    );
    let config = write_config(dir.path(), &nats, free_port(), &emu.base_url, "emulator-key", &cdc);
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_dastra-connect"))
            .args(["validate", "--config", &config, "--check-connectivity"])
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("erp-cdc: bus ok") && stdout.contains("erp-cdc: schema_registry ok"), "{stdout}");
    assert_eq!(stub.request_count(), 1, "one GET /subjects");

    server.abort();
    let _ = server.await;
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "erp-cdc: FAILED schema_registry: GET {url}subjects failed: schema registry unreachable"
        )),
        "{stdout}"
    );
}
