//! `dastra-connect dlq list | redrive`: look at the dead-letter queue and put records back on their
//! original topic, in key order, after clearing the parked mark of their keys.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use dastra_connect_core::bus::{OutboundMessage, SubscriberEvent, TopicSpec};
use dastra_connect_core::state;
use dastra_connect_dastra::sink::dlq;

use crate::app_config::{AppConfig, ConnectorConfig};

/// `dlq` subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Print the records of the DLQ (nothing is consumed or committed).
    List(DlqArgs),
    /// Republish DLQ records to their original topics and un-park their keys. Records already
    /// redriven (committed by the `<sink>-dlq-redrive` group) are not sent again.
    Redrive(DlqArgs),
}

/// Options shared by the `dlq` subcommands.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The config file of the sink.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The sink connector's name (default: the only `dastra_sink` in the config).
    #[arg(long)]
    pub connector: Option<String>,
    /// Only records of this entity key.
    #[arg(long)]
    pub key: Option<String>,
    /// Only records with this reason code.
    #[arg(long)]
    pub reason: Option<String>,
    /// Stop after this long without a new record.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
}

/// How long `dlq list | redrive` waits for the consumer group to assign the DLQ's partitions.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// Runs a `dlq` subcommand.
pub async fn execute(cmd: DlqCommand) -> anyhow::Result<()> {
    let (args, redrive) = match cmd {
        DlqCommand::List(a) => (a, false),
        DlqCommand::Redrive(a) => (a, true),
    };
    let cfg = AppConfig::load(&args.config)?;
    let sinks: Vec<&String> =
        cfg.connectors.iter().filter(|(_, c)| matches!(c, ConnectorConfig::DastraSink(_))).map(|(n, _)| n).collect();
    let name = match (&args.connector, sinks.as_slice()) {
        (Some(n), _) if sinks.contains(&n) => n.clone(),
        (Some(n), _) => anyhow::bail!("--connector {n}: no dastra_sink of that name in the config"),
        (None, [one]) => (*one).clone(),
        (None, _) => anyhow::bail!("the config has {} dastra_sink connectors: name one with --connector", sinks.len()),
    };
    let dlq_topic = cfg.topics.dlq();
    cfg.bus.ensure_topics(&[TopicSpec::new(dlq_topic.clone())]).await?;
    // `list` reads with a throw-away group and never commits; `redrive` commits what it re-sent.
    let group = if redrive { format!("{name}-dlq-redrive") } else { format!("{name}-dlq-list-{}", std::process::id()) };
    let mut sub = cfg.bus.subscriber(&group, std::slice::from_ref(&dlq_topic)).await?;
    let publisher = if redrive { Some(cfg.bus.publisher().await?) } else { None };
    let parked =
        if redrive { Some(state::open(&cfg.bus, &cfg.topics.state(&format!("parked-{name}"))).await?) } else { None };

    let mut count = 0usize;
    let mut unparked = BTreeSet::new();
    // `--idle` counts from the partition assignment: joining a Kafka group takes seconds (the
    // broker's initial rebalance delay alone is 3 s by default), and an idle timer running during
    // the join would end the command before the first record.
    let mut assigned = false;
    loop {
        let wait = if assigned { args.idle } else { JOIN_TIMEOUT };
        let event = match tokio::time::timeout(wait, sub.next_event()).await {
            Err(_) if assigned => break,
            Err(_) => anyhow::bail!("no partition of {dlq_topic} was assigned within {JOIN_TIMEOUT:?}"),
            Ok(e) => e?,
        };
        let m = match event {
            SubscriberEvent::Message(m) => m,
            SubscriberEvent::Assigned(_) => {
                assigned = true;
                continue;
            }
            _ => continue,
        };
        let key = String::from_utf8_lossy(&m.key).into_owned();
        let reason = header(&m.headers, dlq::H_REASON).unwrap_or("").to_owned();
        let wanted = args.key.as_ref().is_none_or(|k| *k == key) && args.reason.as_ref().is_none_or(|r| *r == reason);
        let from_connector = header(&m.headers, dlq::H_CONNECTOR).is_none_or(|c| c == name);
        if wanted && from_connector {
            count += 1;
            let origin = format!(
                "{}[{}]@{}",
                header(&m.headers, dlq::H_TOPIC).unwrap_or("?"),
                header(&m.headers, dlq::H_PARTITION).unwrap_or("?"),
                header(&m.headers, dlq::H_OFFSET).unwrap_or("?")
            );
            println!(
                "{}\t{key}\t{reason}\t{origin}\tstatus={}\t{}",
                header(&m.headers, dlq::H_TIME).unwrap_or("-"),
                header(&m.headers, dlq::H_STATUS).unwrap_or("-"),
                header(&m.headers, dlq::H_ERROR).unwrap_or("")
            );
            if let (Some(publisher), Some(parked)) = (&publisher, &parked) {
                let topic = header(&m.headers, dlq::H_TOPIC)
                    .ok_or_else(|| anyhow::anyhow!("DLQ record for {key} has no {} header", dlq::H_TOPIC))?
                    .to_owned();
                // Un-park before re-sending, so the sink applies the record instead of parking it again.
                if unparked.insert(key.clone()) && parked.get(&key).is_some() {
                    parked.delete(&key).await?;
                }
                let mut out = match &m.payload {
                    Some(p) => OutboundMessage::new(topic, m.key.clone(), p.clone()),
                    None => OutboundMessage::tombstone(topic, m.key.clone()),
                };
                for (k, v) in &m.headers {
                    if !k.starts_with("dastra_dlq_") && k != dlq::H_REDRIVE_REASON {
                        out = out.with_header(k.clone(), v.clone());
                    }
                }
                out = out.with_header(dlq::H_REDRIVE_REASON, reason.clone().into_bytes());
                publisher.publish(out).await?;
            }
        }
        if redrive {
            sub.commit(&m.topic, m.partition, m.next_offset()).await?;
        }
    }
    let _ = sub.close().await;
    if redrive {
        eprintln!("redriven: {count} record(s), {} key(s) un-parked", unparked.len());
    } else {
        eprintln!("{count} record(s)");
    }
    Ok(())
}
