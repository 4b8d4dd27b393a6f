//! `dastra-connect quickstart`: the whole product on one machine with embedded defaults — an
//! in-process Kafka-protocol broker (librdkafka's MockCluster), the Dastra emulator on localhost, local
//! fakes of the source systems serving bundled sample data, Debezium topics holding sample change
//! events, a DataHub MetadataChangeLog topic holding a sample catalog's changes, the source
//! connectors and the Dastra sink —
//! then a summary of what reached Dastra and what it cost.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;
use dastra_connect_core::admin::Admin;
use dastra_connect_core::bus::BusConfig;
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::{Connector, ConnectorContext, Topics};
use dastra_connect_core::event::EntityKind;
use dastra_connect_core::telemetry::{Metrics, TelemetryConfig, init_tracing};
use dastra_connect_core::testkit::{self, MockKafka};
use dastra_connect_dastra::sink::{DastraSink, DastraSinkConfig};
use dastra_emulator::EmulatorConfig;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// Options of `quickstart`.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Leave the emulator (and its page) running after the summary, until Ctrl-C.
    #[arg(long)]
    pub keep_running: bool,
    /// Port of the emulator (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub emulator_port: u16,
    /// Give up if the sync has not finished after this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Write the connectors' logs to stderr with this filter (`info`, `debug`,
    /// `info,librdkafka=warn`…), each line with its connector's name: to see why a sync stalls.
    /// Default: no logs, only the progress and the summary.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// Progress line interval when stderr is not a terminal (one line per interval; on a terminal
    /// the line is redrawn in place).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub progress_every: Duration,
}

const SINK: &str = "dastra-sink";

/// The bundled sources: name, how to start its fake, and the connector reading it.
struct Source {
    name: &'static str,
    connector: Box<dyn Connector>,
}

fn create_topics(kafka: &MockKafka, topics: &Topics, sources: &[&str]) {
    for kind in EntityKind::ALL {
        kafka.create_topic(&topics.changes(kind), 3);
    }
    kafka.create_topic(&topics.dlq(), 1);
    kafka.create_topic(&topics.dastra_events(), 1);
    for s in ["ledger", "pending", "parked"] {
        kafka.create_topic(&topics.state(&format!("{s}-{SINK}")), 1);
    }
    for src in sources {
        for s in ["source", "known"] {
            kafka.create_topic(&topics.state(&format!("{s}-{src}")), 1);
        }
    }
}

fn sum(metrics: &Metrics, family: &str) -> u64 {
    let total: f64 = metrics
        .registry()
        .gather()
        .iter()
        .filter(|f| f.name() == family)
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value()).collect::<Vec<_>>())
        .sum();
    total as u64
}

/// Counter values of `family` by the value of `label`.
fn by_label(metrics: &Metrics, family: &str, label: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for f in metrics.registry().gather().iter().filter(|f| f.name() == family) {
        for m in f.get_metric() {
            if let Some(l) = m.get_label().iter().find(|l| l.name() == label) {
                *out.entry(l.value().to_owned()).or_default() += m.get_counter().get_value() as u64;
            }
        }
    }
    out
}

/// The files connector's bundled sample exports, written to `dir`, read from there.
fn files_sample_config(dir: &std::path::Path) -> anyhow::Result<dastra_connect_files::FilesConfig> {
    let mut cfg = dastra_connect_files::samples::write_samples(dir)?;
    // The samples are complete when written: no need to wait for writers to finish.
    cfg.min_age = Duration::ZERO;
    cfg.sync.poll_interval = Duration::from_secs(2);
    Ok(cfg)
}

/// Debezium's sample change events (an ERP's suppliers and servers tables) on their topics, as a
/// Debezium connector would have written them before the quickstart starts.
async fn produce_cdc_samples(kafka: &MockKafka, bus: &BusConfig) -> anyhow::Result<()> {
    use dastra_connect_core::bus::OutboundMessage;
    use dastra_connect_debezium::samples::{SAMPLE_TOPICS, sample_records};
    for topic in SAMPLE_TOPICS {
        kafka.create_topic(topic, 3);
    }
    let records = sample_records()?;
    let n = records.len();
    let messages = records
        .into_iter()
        .map(|(topic, key, value)| OutboundMessage {
            topic,
            key: key.into(),
            payload: value.map(Into::into),
            headers: Vec::new(),
        })
        .collect();
    bus.publisher().await?.publish_batch(messages).await?;
    eprintln!("  Debezium topics     {} ({n} change events)", SAMPLE_TOPICS.join(", "));
    Ok(())
}

/// DataHub's sample MetadataChangeLog records on its topic, as DataHub would have logged them
/// before the quickstart starts; and the store of the source's remembered aspects.
async fn produce_datahub_samples(
    kafka: &MockKafka,
    bus: &BusConfig,
    topics: &Topics,
    name: &str,
) -> anyhow::Result<()> {
    use dastra_connect_core::bus::OutboundMessage;
    use dastra_connect_datahub::config::DEFAULT_TOPIC;
    // One partition: the samples are read in file order (tables before the job reading them), so
    // every run publishes the same events. With several partitions a job may be read first and is
    // mapped again when its tables arrive (same result in Dastra, more events).
    kafka.create_topic(DEFAULT_TOPIC, 1);
    kafka.create_topic(&topics.state(&format!("aspects-{name}")), 1);
    let records = dastra_connect_datahub::samples::sample_records()?;
    let n = records.len();
    let messages = records
        .into_iter()
        .map(|(key, value)| OutboundMessage {
            topic: DEFAULT_TOPIC.to_owned(),
            key: key.into(),
            payload: Some(value.into()),
            headers: Vec::new(),
        })
        .collect();
    bus.publisher().await?.publish_batch(messages).await?;
    eprintln!("  DataHub MCL topic   {DEFAULT_TOPIC} ({n} metadata changes)");
    Ok(())
}

/// `key: reason: error` of the DLQ's first `n` records.
async fn dlq_records(bus: &BusConfig, topics: &Topics, n: usize) -> Vec<String> {
    use dastra_connect_core::bus::SubscriberEvent;
    use dastra_connect_dastra::sink::dlq::{H_ERROR, H_REASON};
    let mut out = Vec::new();
    let Ok(mut sub) = bus.subscriber(&format!("quickstart-dlq-{}", std::process::id()), &[topics.dlq()]).await else {
        return out;
    };
    while out.len() < n {
        let Ok(Ok(event)) = tokio::time::timeout(Duration::from_secs(10), sub.next_event()).await else { break };
        if let SubscriberEvent::Message(m) = event {
            let h = |name: &str| m.header(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            out.push(format!("{}: {}: {}", String::from_utf8_lossy(&m.key), h(H_REASON), h(H_ERROR)));
        }
    }
    let _ = sub.close().await;
    // Partitions interleave differently every run; a stable order reads better and compares.
    out.sort();
    out
}

/// The progress line: redrawn in place (`\r`) on a terminal; elsewhere (a log file, CI, a pipe)
/// one full line per interval, so the output is readable and a stall shows as repeated figures.
struct Progress {
    terminal: bool,
    every: Duration,
    last_line: Option<Instant>,
    shown: bool,
}

impl Progress {
    fn new(every: Duration) -> Self {
        use std::io::IsTerminal;
        Self { terminal: std::io::stderr().is_terminal(), every, last_line: None, shown: false }
    }

    fn show(&mut self, line: &str) {
        if self.terminal {
            eprint!("\r{line}   ");
            self.shown = true;
        } else if self.last_line.is_none_or(|t| t.elapsed() >= self.every) {
            eprintln!("{line}");
            self.last_line = Some(Instant::now());
        }
    }

    fn finish(&mut self) {
        if self.terminal && self.shown {
            eprintln!();
        }
    }
}

/// Runs the quickstart.
pub async fn execute(args: QuickstartArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let _telemetry = match &args.log {
        Some(filter) => Some(init_tracing(&TelemetryConfig { log_level: filter.clone(), ..Default::default() })?),
        None => None,
    };
    eprintln!("dastra-connect quickstart: everything runs in this process, on 127.0.0.1");

    let emulator = dastra_emulator::serve(
        EmulatorConfig::default(),
        std::net::SocketAddr::from(([127, 0, 0, 1], args.emulator_port)),
    )
    .await?;
    let emu_url = emulator.base_url();
    eprintln!("  Dastra emulator     {emu_url}  (quota 500/60s + 10000/600s, like Dastra)");

    let servicenow = dastra_connect_servicenow::fake::FakeServiceNow::with_samples().spawn().await?;
    eprintln!("  ServiceNow (fake)   {}", servicenow.base_url);
    let netbox = dastra_connect_netbox::fake::FakeNetBox::with_samples().spawn().await?;
    eprintln!("  NetBox (fake)       {}", netbox.base_url);
    let coupa = dastra_connect_coupa::fake::FakeCoupa::with_samples().spawn().await?;
    eprintln!("  Coupa (fake)        {}", coupa.base_url);
    let openmetadata = dastra_connect_openmetadata::fake::FakeOpenMetadata::with_samples().spawn().await?;
    eprintln!("  OpenMetadata (fake) {}", openmetadata.base_url);
    let salesforce = dastra_connect_salesforce::fake::FakeSalesforce::with_samples().spawn().await?;
    eprintln!("  Salesforce (fake)   {}", salesforce.base_url);
    let hubspot = dastra_connect_hubspot::fake::FakeHubSpot::with_samples().spawn().await?;
    eprintln!("  HubSpot (fake)      {}", hubspot.base_url);

    let exports = tempfile::tempdir()?;
    let files_config = files_sample_config(exports.path())?;
    eprintln!("  CSV/JSON exports    {}", exports.path().display());

    let kafka = testkit::mock_kafka(1);
    let topics = Topics::default();
    let sources: Vec<Source> = vec![
        Source {
            name: "servicenow",
            connector: Box::new(dastra_connect_servicenow::ServiceNowSource::new(serde_json::from_value(json!({
                "instance_url": servicenow.base_url,
                "auth": { "type": "basic", "username": "admin", "password": "admin" },
                "sync": { "poll_interval": "2s" },
            }))?)),
        },
        Source {
            name: "netbox",
            connector: Box::new(dastra_connect_netbox::NetBoxSource::new(serde_json::from_value(json!({
                "url": netbox.base_url,
                "token": dastra_connect_netbox::fake::TOKEN,
                "sync": { "poll_interval": "2s" },
            }))?)),
        },
        Source {
            name: "coupa",
            connector: Box::new(dastra_connect_coupa::CoupaSource::new(serde_json::from_value(json!({
                "url": coupa.base_url,
                "auth": {
                    "type": "oauth2",
                    "client_id": dastra_connect_coupa::fake::CLIENT_ID,
                    "client_secret": dastra_connect_coupa::fake::CLIENT_SECRET,
                },
                "sync": { "poll_interval": "2s" },
            }))?)),
        },
        Source {
            name: "openmetadata",
            connector: Box::new(dastra_connect_openmetadata::OpenMetadataSource::new(serde_json::from_value(json!({
                "url": openmetadata.base_url,
                "token": dastra_connect_openmetadata::fake::TOKEN,
                "sync": { "poll_interval": "2s" },
            }))?)),
        },
        Source {
            name: "hubspot",
            connector: Box::new(dastra_connect_hubspot::HubSpotSource::new(serde_json::from_value(json!({
                "url": hubspot.base_url,
                "token": dastra_connect_hubspot::fake::TOKEN,
                "objects": [
                    { "object": "companies" },
                    {
                        "object": "tickets",
                        "filters": { "hs_pipeline": dastra_connect_hubspot::fake::PRIVACY_PIPELINE },
                        "params": { "stages": {
                            "71234563": { "state": "Processing" },
                            "71234564": { "state": "Closed", "closed_reason": "Accepted" },
                        } },
                    },
                ],
                "sync": { "poll_interval": "2s" },
            }))?)),
        },
        Source { name: "exports", connector: Box::new(dastra_connect_files::FilesSource::new(files_config)) },
        Source {
            name: "erp-cdc",
            connector: Box::new(dastra_connect_debezium::DebeziumSource::new(
                dastra_connect_debezium::samples::sample_config()?,
            )),
        },
        Source {
            name: "salesforce",
            connector: Box::new(dastra_connect_salesforce::SalesforceSource::new(serde_json::from_value(json!({
                "instance_url": salesforce.base_url,
                "auth": {
                    "type": "client_credentials",
                    "client_id": dastra_connect_salesforce::fake::CLIENT_ID,
                    "client_secret": dastra_connect_salesforce::fake::CLIENT_SECRET,
                },
                "sync": { "poll_interval": "2s" },
            }))?)),
        },
        Source {
            name: "catalog",
            connector: Box::new(dastra_connect_datahub::DataHubSource::new(
                dastra_connect_datahub::samples::sample_config()?,
            )),
        },
    ];
    let names: Vec<&str> = sources.iter().map(|s| s.name).collect();
    create_topics(&kafka, &topics, &names);
    let mut kafka_cfg = kafka.kafka_config();
    kafka_cfg.create_topics = false;
    let bus = BusConfig::Kafka(kafka_cfg);
    eprintln!("  Kafka (MockCluster) {}", kafka.bootstrap_servers());
    produce_cdc_samples(&kafka, &bus).await?;
    produce_datahub_samples(&kafka, &bus, &topics, "catalog").await?;

    let metrics = Metrics::new();
    let admin = Admin::new(metrics.clone());
    let shutdown = CancellationToken::new();
    let ctx = |name: &str| ConnectorContext {
        name: name.to_owned(),
        bus: bus.clone(),
        topics: topics.clone(),
        codec: Codec::single_object(),
        metrics: metrics.clone(),
        admin: admin.clone(),
    };
    let sink_config: DastraSinkConfig = serde_json::from_value(json!({
        "dastra": {
            "base_url": emu_url,
            "workspace_id": 1,
            "auth": { "type": "api_key", "api_key": "emulator-key" }
        },
        "commit_interval": "250ms"
    }))?;
    let mut tasks = tokio::task::JoinSet::new();
    {
        let c = ctx(SINK);
        let t = shutdown.child_token();
        tasks.spawn(
            async move { (SINK.to_owned(), Box::new(DastraSink::new(sink_config)).run(c, t).await) }
                .instrument(super::run::connector_span(SINK)),
        );
    }
    for s in sources {
        let c = ctx(s.name);
        let t = shutdown.child_token();
        tasks.spawn(
            async move { (s.name.to_owned(), s.connector.run(c, t).await) }
                .instrument(super::run::connector_span(s.name)),
        );
    }
    let mut progress = Progress::new(args.progress_every);

    // Done = the sources published something, nothing new for a while, and the sink holds no work.
    let mut last = (u64::MAX, u64::MAX);
    let mut stable_since = Instant::now();
    let deadline = Instant::now() + args.timeout;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(Ok((name, Err(e)))) = tasks.try_join_next() {
            shutdown.cancel();
            anyhow::bail!("connector {name} failed: {e:#}");
        }
        let published = sum(&metrics, "dastra_connect_events_published_total");
        let consumed = sum(&metrics, "dastra_connect_events_consumed_total");
        let requests = emulator.state.counters().total;
        let status = admin.status_json();
        let sink = &status[SINK]["sink"];
        let idle = sink["in_flight"] == 0
            && sink["buffered"] == 0
            && sink["uncommitted"].as_array().is_some_and(|a| a.iter().all(|p| p[1] == 0));
        progress.show(&format!(
            "  events published {published:>6}   consumed by the sink {consumed:>6}   Dastra requests {requests:>5}"
        ));
        if (published, consumed) != last {
            last = (published, consumed);
            stable_since = Instant::now();
        }
        if published > 0 && consumed >= published && idle && stable_since.elapsed() > Duration::from_secs(3) {
            break;
        }
        if Instant::now() > deadline {
            shutdown.cancel();
            anyhow::bail!("the sync did not finish within {:?}", args.timeout);
        }
    }
    progress.finish();

    // Summary.
    let counters = emulator.state.counters();
    let mut per_family = BTreeMap::new();
    for family in [
        "Assets",
        "Actors",
        "Contracts",
        "DataProcessings",
        "DataFields",
        "DataRetentionRules",
        "GenericRelationships",
        "DataSubjectRequests",
        "Tasks",
    ] {
        let n = emulator.state.entities(1, family).len();
        if n > 0 {
            per_family.insert(family, n);
        }
    }
    let published = sum(&metrics, "dastra_connect_events_published_total");
    let saved = sum(&metrics, "dastra_connect_requests_saved_total");
    let dlq = sum(&metrics, "dastra_connect_dlq_events_total");
    let throttled = sum(&metrics, "dastra_connect_dastra_throttled_total");
    println!();
    println!("Summary ({:.1} s)", started.elapsed().as_secs_f64());
    println!("  in Dastra (emulator workspace 1):");
    for (family, n) in &per_family {
        println!("    {family:<22} {n:>5}");
    }
    println!("  source events published   {published:>6}");
    for (entity, n) in by_label(&metrics, "dastra_connect_events_published_total", "entity") {
        println!("    {entity:<22} {n:>6}");
    }
    let in_dastra: usize = per_family.values().sum();
    println!(
        "  Dastra requests used      {:>6}  ({:.2} per entity in Dastra)",
        counters.total,
        counters.total as f64 / in_dastra.max(1) as f64
    );
    // Where they went, by route (every status).
    let mut by_route: BTreeMap<String, u64> = BTreeMap::new();
    for r in &counters.by_route {
        let route = r.route.trim_start_matches("/v1/ws/{workspaceId}/");
        *by_route.entry(format!("{} {route}", r.method)).or_default() += r.count;
    }
    let mut by_route: Vec<(String, u64)> = by_route.into_iter().collect();
    by_route.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (route, n) in by_route {
        println!("    {route:<34} {n:>4}");
    }
    println!("  requests saved            {saved:>6}  (coalesced, unchanged, stale)");
    println!("  429 answers               {:>6}", counters.too_many_requests.max(throttled));
    // The bundled samples contain a few records that are wrong at the source on purpose (a device
    // without a name, a contract ending before it starts, a CI class without a mapping): they show how
    // bad source data is handled. What the sink dead-letters would be a real failure.
    let sink_dlq = by_label(&metrics, "dastra_connect_dlq_events_total", "connector").get(SINK).copied().unwrap_or(0);
    println!("  errors (sink DLQ)         {sink_dlq:>6}");
    println!(
        "  source records rejected   {:>6}  (bad records in the samples; in the DLQ with their reason)",
        dlq - sink_dlq
    );
    if dlq > 0 {
        for line in dlq_records(&bus, &topics, dlq as usize).await {
            println!("      {line}");
        }
    }
    println!("  look at the result:       {emu_url}/");

    if args.keep_running {
        println!("  running until Ctrl-C (--keep-running)");
        super::run::stop_on_signal(CancellationToken::new()).await;
    }
    shutdown.cancel();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((name, Err(e))) = joined {
            tracing::warn!(connector = %name, error = %e, "connector stopped with an error");
        }
    }
    emulator.shutdown().await;
    drop((servicenow, netbox, coupa, openmetadata, exports, salesforce, hubspot));
    if counters.too_many_requests > 0 || sink_dlq > 0 {
        anyhow::bail!(
            "the quickstart saw {} 429s and {sink_dlq} events the sink dead-lettered",
            counters.too_many_requests
        );
    }
    Ok(())
}
