//! Progress of a snapshot sweep: an indicatif bar when stderr is a terminal, a log line every few
//! seconds otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Reports sweep progress for one stream.
pub(crate) struct Progress {
    connector: String,
    stream: String,
    bar: Option<ProgressBar>,
    done: u64,
    total: Option<u64>,
    last_log: Instant,
}

const LOG_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    /// Starts reporting.
    pub fn start(connector: &str, stream: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} {spinner} [{elapsed_precise}] {bar:30} {pos}/{len} records ({per_sec})",
            ) {
                bar.set_style(style);
            }
            bar.set_prefix(format!("{connector} sweep {stream}"));
            bar
        });
        tracing::info!(connector, stream, "snapshot sweep started");
        Progress {
            connector: connector.to_owned(),
            stream: stream.to_owned(),
            bar,
            done: 0,
            total: None,
            last_log: Instant::now(),
        }
    }

    /// Sets the expected total when the system reports one.
    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
        if let Some(b) = &self.bar {
            b.set_length(total);
        }
    }

    /// Adds `n` records done.
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        } else if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            tracing::info!(connector = %self.connector, stream = %self.stream, done = self.done, total = ?self.total, "snapshot sweep progress");
        }
    }

    /// Ends the report.
    pub fn finish(self, deleted: usize, elapsed: Duration) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        tracing::info!(connector = %self.connector, stream = %self.stream, records = self.done, deleted, seconds = elapsed.as_secs_f64(), "snapshot sweep done");
    }
}
