//! `dastra-connect plan`: the bill before paying it. Reads the sink's backlog (without committing
//! or joining its consumer group) and its ledger (without writing it), runs the sink's own
//! planning through a client that sends nothing, and prints the requests it would send per entity
//! type and kind, the time they take under the configured quota, and what coalescing and skipping
//! save. See `connectors/dastra/README.md` ("Planning a run").

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use dastra_connect_dastra::sink::plan::{BacklogRange, plan_backlog};

use crate::app_config::{AppConfig, ConnectorConfig};

/// Output format of `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable table.
    Table,
    /// One JSON document (for scripts).
    Json,
}

/// `plan` options.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The config file of the sink.
    #[arg(long, short)]
    pub config: PathBuf,
    /// The sink connector's name (default: the only `dastra_sink` in the config).
    #[arg(long)]
    pub connector: Option<String>,
    /// Plan everything on the change topics (default: what the sink's group has not committed yet).
    #[arg(long, conflicts_with_all = ["topic", "since"])]
    pub from_beginning: bool,
    /// Plan one change topic only (with `--since`), e.g. `dastra.changes.asset`.
    #[arg(long, requires = "since")]
    pub topic: Option<String>,
    /// With `--topic`: from the first message at or after this time (RFC 3339, e.g.
    /// `2026-12-01T00:00:00Z`, or a duration ago, e.g. `6h`).
    #[arg(long, requires = "topic")]
    pub since: Option<String>,
    /// `table` (default) or `json`.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Parses `--since`: an RFC 3339 instant or a duration before now.
pub fn parse_since(text: &str, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    match humantime::parse_duration(text) {
        Ok(d) => Ok(now - chrono::Duration::from_std(d).map_err(|e| anyhow::anyhow!("--since {text:?}: {e}"))?),
        Err(_) => anyhow::bail!(
            "--since {text:?}: not an RFC 3339 time (2026-12-01T00:00:00Z) nor a duration before now (6h, 2days)"
        ),
    }
}

/// Runs `plan`.
pub async fn execute(args: PlanArgs) -> anyhow::Result<()> {
    let cfg = AppConfig::load(&args.config)?;
    let sinks: Vec<(&String, &ConnectorConfig)> =
        cfg.connectors.iter().filter(|(_, c)| matches!(c, ConnectorConfig::DastraSink(_))).collect();
    let (name, sink) = match (&args.connector, sinks.as_slice()) {
        (Some(n), _) => sinks
            .iter()
            .find(|(s, _)| *s == n)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("--connector {n}: no dastra_sink of that name in the config"))?,
        (None, [one]) => *one,
        (None, _) => anyhow::bail!("the config has {} dastra_sink connectors: name one with --connector", sinks.len()),
    };
    let ConnectorConfig::DastraSink(sink) = sink else { unreachable!("filtered above") };
    let range = match (&args.topic, &args.since) {
        (Some(topic), Some(since)) => {
            BacklogRange::Since { topic: topic.clone(), time: parse_since(since, chrono::Utc::now())? }
        }
        _ if args.from_beginning => BacklogRange::FromBeginning,
        _ => BacklogRange::Uncommitted,
    };
    let codec = cfg.codec()?;
    let plan = plan_backlog(&cfg.bus, &cfg.topics, name, sink, &codec, &range).await?;
    match args.format {
        Format::Table => {
            let what = match &range {
                BacklogRange::Uncommitted => "not yet committed by its group".to_owned(),
                BacklogRange::FromBeginning => "from the beginning".to_owned(),
                BacklogRange::Since { topic, time } => format!("{topic} since {}", time.to_rfc3339()),
            };
            println!("plan of `{name}` over its backlog ({what}); nothing was sent or committed\n");
            print!("{}", plan.table());
        }
        Format::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_a_duration_ago() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(parse_since("2026-12-01T00:00:00Z", now).unwrap().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(parse_since("6h", now).unwrap().to_rfc3339(), "2026-12-03T06:00:00+00:00");
        let e = parse_since("yesterday", now).unwrap_err().to_string();
        assert!(e.contains("--since"), "{e}");
    }
}
