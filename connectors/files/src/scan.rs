//! A directory (or a file) → the export's current rows as source records: which files count
//! (pattern, [`Selection`], files too young to be complete left for later), reading and parsing
//! them, the record id and time of each row, and a content hash as version.
//!
//! A row's time is its `updated_column` when configured, else the modification time of the file
//! where its **current content** first appeared: a rewritten file whose row did not change keeps
//! that row's earlier time, so the incremental poll republishes only rows that changed. (That
//! memory lives in the process: after a restart, unchanged rows of files modified after the
//! checkpoint are republished once, as identical content the sink skips.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use dastra_connect_core::canonical::content_version;
use dastra_connect_core::source::{SourceError, SourceRecord};
use dastra_connect_core::{Classify, ErrorClass};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::config::{ExportConfig, FileFormat, Selection};
use crate::parse::{self, ParseError, Row};

/// A file or directory that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The path cannot be listed or read.
    #[error("cannot read {path}: {detail}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        detail: String,
    },
    /// A file cannot be parsed as a whole.
    #[error("cannot parse {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: ParseError,
    },
}

impl Classify for ScanError {
    fn class(&self) -> ErrorClass {
        // Both retried at the next poll: a volume may be mounted later, a file rewritten.
        ErrorClass::Retryable
    }
    fn code(&self) -> &'static str {
        match self {
            ScanError::Io { .. } => "file_io",
            ScanError::Parse { source, .. } => source.code(),
        }
    }
}

impl From<ScanError> for SourceError {
    fn from(e: ScanError) -> SourceError {
        match &e {
            ScanError::Io { path, detail } => {
                SourceError::Transport { system: "files".into(), what: path.clone(), detail: detail.clone() }
            }
            ScanError::Parse { path, source } => {
                SourceError::BadResponse { system: "files".into(), what: path.clone(), detail: source.to_string() }
            }
        }
    }
}

/// A file taking part in the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Where it is.
    pub path: PathBuf,
    /// Its file name.
    pub name: String,
    /// Last modification.
    pub modified: DateTime<Utc>,
    /// Size in bytes.
    pub len: u64,
}

/// `*` (any run) and `?` (one character) wildcards.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Names of files still being written by common tools, or hidden.
fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [".tmp", ".part", ".partial", ".crdownload", ".swp"].iter().any(|s| name.ends_with(s))
}

fn io(path: &Path, e: std::io::Error) -> ScanError {
    ScanError::Io { path: path.display().to_string(), detail: e.to_string() }
}

fn info(path: PathBuf, meta: &std::fs::Metadata) -> Result<FileInfo, ScanError> {
    let modified = meta.modified().map_err(|e| io(&path, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(FileInfo { name, modified: DateTime::<Utc>::from(modified), len: meta.len(), path })
}

/// The files of an export, oldest first (by modification time, then name).
pub async fn list_files(export: &ExportConfig, min_age: Duration, now: SystemTime) -> Result<Vec<FileInfo>, ScanError> {
    let root = &export.path;
    let meta = tokio::fs::metadata(root).await.map_err(|e| io(root, e))?;
    let mut files = Vec::new();
    if meta.is_file() {
        files.push(info(root.clone(), &meta)?);
    } else {
        let mut dir = tokio::fs::read_dir(root).await.map_err(|e| io(root, e))?;
        while let Some(entry) = dir.next_entry().await.map_err(|e| io(root, e))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if ignored(&name) || !glob_match(&export.pattern, &name) {
                continue;
            }
            let path = entry.path();
            let meta = tokio::fs::metadata(&path).await.map_err(|e| io(&path, e))?;
            if meta.is_file() {
                files.push(info(path, &meta)?);
            }
        }
    }
    let young = DateTime::<Utc>::from(now) - chrono::Duration::from_std(min_age).unwrap_or_default();
    files.retain(|f| f.modified <= young);
    files.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.name.cmp(&b.name)));
    if files.is_empty() {
        // An empty (or unmounted) directory must not read as "every row was deleted".
        return Err(ScanError::Io {
            path: root.display().to_string(),
            detail: format!("no complete file matches `{}` (files younger than {min_age:?} wait)", export.pattern),
        });
    }
    if export.selection == Selection::Latest
        && let Some(last) = files.pop()
    {
        files = vec![last];
    }
    Ok(files)
}

/// The format of a file.
pub fn format_of(export: &ExportConfig, name: &str) -> FileFormat {
    match export.format {
        FileFormat::Auto => {
            let lower = name.to_ascii_lowercase();
            if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") {
                FileFormat::Ndjson
            } else if lower.ends_with(".json") {
                FileFormat::Json
            } else {
                FileFormat::Csv
            }
        }
        f => f,
    }
}

/// A time cell: RFC 3339, `YYYY-MM-DD HH:MM:SS` / `YYYY-MM-DDTHH:MM:SS` (UTC) or a date.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Some(n.and_utc());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|n| n.and_utc())
}

fn cell_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A row read from a file, before versions and times are settled.
struct ReadRow {
    id: String,
    body: Value,
    /// Time from the `updated_column`.
    cell_time: Option<DateTime<Utc>>,
    /// Modification time of its file.
    file_time: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    signature: Vec<FileInfo>,
    snapshot: Arc<Vec<SourceRecord>>,
    /// id → (content version, time its content first appeared).
    stable: HashMap<String, (u64, DateTime<Utc>)>,
}

/// Reads one export, caching the parsed snapshot until its files change.
pub struct Scanner {
    export: ExportConfig,
    min_age: Duration,
    state: Mutex<State>,
}

impl Scanner {
    /// A scanner of `export`.
    pub fn new(export: ExportConfig, min_age: Duration) -> Scanner {
        Scanner { export, min_age, state: Mutex::new(State::default()) }
    }

    /// The current records of the export, sorted by id.
    pub async fn snapshot(&self) -> Result<Arc<Vec<SourceRecord>>, ScanError> {
        let files = list_files(&self.export, self.min_age, SystemTime::now()).await?;
        {
            let s = self.state.lock();
            if s.signature == files {
                return Ok(s.snapshot.clone());
            }
        }
        let mut rows: Vec<ReadRow> = Vec::new();
        for f in &files {
            let bytes = tokio::fs::read(&f.path).await.map_err(|e| io(&f.path, e))?;
            let perr = |source| ScanError::Parse { path: f.path.display().to_string(), source };
            let text = parse::text(&bytes).map_err(perr)?;
            let parsed = match format_of(&self.export, &f.name) {
                FileFormat::Json => parse::parse_json(text, &self.export.json_pointer).map_err(perr)?,
                FileFormat::Ndjson => parse::parse_ndjson(text, &self.export.id_column),
                FileFormat::Csv | FileFormat::Auto => {
                    parse::parse_csv(text, self.export.delimiter, &self.export.id_column).map_err(perr)?
                }
            };
            for row in parsed {
                rows.push(self.record_of(f, row));
            }
        }
        let mut s = self.state.lock();
        let mut by_id: HashMap<String, SourceRecord> = HashMap::new();
        let mut stable = HashMap::new();
        // Files are oldest first: a later file's row replaces an earlier one with the same id.
        for ReadRow { id, body, cell_time, file_time } in rows {
            let version = content_version(&body);
            let updated = match cell_time {
                Some(t) => t,
                None => match s.stable.get(&id) {
                    Some((v, t)) if *v == version => *t,
                    _ => file_time,
                },
            };
            stable.insert(id.clone(), (version, updated));
            by_id.insert(id.clone(), SourceRecord { id, updated, version, body });
        }
        let mut records: Vec<SourceRecord> = by_id.into_values().collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        let snapshot = Arc::new(records);
        *s = State { signature: files, snapshot: snapshot.clone(), stable };
        Ok(snapshot)
    }

    /// A parsed row → its id, body and times.
    fn record_of(&self, f: &FileInfo, row: Row) -> ReadRow {
        let fallback = |line: usize| format!("{}#{line}", f.name);
        match row {
            Row::Malformed { line, id, reason, raw } => {
                let body = json!({"__malformed": format!("{}: {reason}", f.name), "__file": f.name, "__line": line, "__raw": raw});
                ReadRow { id: id.unwrap_or_else(|| fallback(line)), body, cell_time: None, file_time: f.modified }
            }
            Row::Ok { line, value } => {
                let id = cell_text(value.get(&self.export.id_column)).unwrap_or_else(|| fallback(line));
                let mut cell_time = None;
                if let Some(col) = &self.export.updated_column {
                    match cell_text(value.get(col)).and_then(|t| parse_time(&t)) {
                        Some(t) => cell_time = Some(t),
                        None => {
                            let mut m = Map::new();
                            m.insert(
                                "__malformed".into(),
                                json!(format!("{}: line {line}: column `{col}` holds no readable time", f.name)),
                            );
                            m.insert("__row".into(), Value::Object(value));
                            return ReadRow { id, body: Value::Object(m), cell_time: None, file_time: f.modified };
                        }
                    }
                }
                ReadRow { id, body: Value::Object(value), cell_time, file_time: f.modified }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_times_and_formats() {
        assert!(glob_match("vendors-*.csv", "vendors-2025-06.csv"));
        assert!(!glob_match("vendors-*.csv", "vendors-2025-06.csv.tmp"));
        assert!(glob_match("*", "a"));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("a?c", "ac"));
        assert!(ignored(".~lock.x.csv#") && ignored("x.csv.part") && !ignored("x.csv"));
        assert_eq!(parse_time("2025-06-01 10:00:00").unwrap().to_rfc3339(), "2025-06-01T10:00:00+00:00");
        assert_eq!(parse_time("2025-06-01T12:00:00+02:00").unwrap().to_rfc3339(), "2025-06-01T10:00:00+00:00");
        assert!(parse_time("01/06/2025").is_none());
        assert_eq!(content_version(&json!({"a": 1, "b": 2})), content_version(&json!({"b": 2, "a": 1})));
    }
}
