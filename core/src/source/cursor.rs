//! The incremental cursor ([`Cursor`]: modification time + tie-breaker id) and the per-stream
//! [`Checkpoint`] persisted on the bus after each acknowledged page.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A position in a stream ordered by `(updated, id)`: the last record published.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    /// Modification time at the source.
    pub updated: DateTime<Utc>,
    /// The record id (tie-breaker among records of one instant). Empty = before every id.
    pub id: String,
}

impl Cursor {
    /// The position before every record.
    pub fn start() -> Cursor {
        Cursor { updated: DateTime::<Utc>::UNIX_EPOCH, id: String::new() }
    }

    /// A position.
    pub fn new(updated: DateTime<Utc>, id: impl Into<String>) -> Cursor {
        Cursor { updated, id: id.into() }
    }

    /// True when this is [`Cursor::start`]-like: no id, so "after" it means "at or after `updated`".
    pub fn is_open(&self) -> bool {
        self.id.is_empty()
    }
}

/// What was already published in the look-back window: record id → (updated, version).
pub type Recent = BTreeMap<String, (DateTime<Utc>, u64)>;

/// The state of one stream, stored as JSON under `cursor:<stream>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The newest record published (`None`: nothing yet, start from the beginning).
    pub cursor: Option<Cursor>,
    /// Records published within `look_back` of the cursor, so the overlap of the next poll is
    /// recognised and not published again.
    #[serde(default)]
    pub recent: Recent,
    /// Position in the explicit-deletes feed (e.g. ServiceNow `sys_audit_delete`).
    #[serde(default)]
    pub deletes: Option<Cursor>,
    /// When the last complete snapshot sweep started.
    #[serde(default)]
    pub last_sweep: Option<DateTime<Utc>>,
}

impl Checkpoint {
    /// Where the next poll starts: `look_back` before the cursor, before every id of that instant.
    pub fn poll_start(&self, look_back: Duration) -> Cursor {
        match &self.cursor {
            None => Cursor::start(),
            Some(c) => {
                let back = chrono::Duration::from_std(look_back).unwrap_or(chrono::Duration::zero());
                Cursor::new(c.updated - back, "")
            }
        }
    }

    /// True when exactly this version of the record was already handled (published or
    /// dead-lettered) by an earlier poll.
    pub fn already_handled(&self, id: &str, updated: DateTime<Utc>, version: u64) -> bool {
        self.recent.get(id).is_some_and(|(u, v)| *u == updated && *v == version)
    }

    /// Records that `(updated, id)` at `version` was handled: moves the cursor forward (never back),
    /// remembers the record for the look-back overlap and forgets what fell out of the window.
    pub fn advance(&mut self, updated: DateTime<Utc>, id: &str, version: u64, look_back: Duration) {
        let pos = Cursor::new(updated, id);
        if self.cursor.as_ref().is_none_or(|c| pos > *c) {
            self.cursor = Some(pos);
        }
        self.recent.insert(id.to_owned(), (updated, version));
        if let Some(c) = &self.cursor {
            let floor = c.updated - chrono::Duration::from_std(look_back).unwrap_or(chrono::Duration::zero());
            self.recent.retain(|_, (u, _)| *u >= floor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn advance_keeps_the_window_and_never_goes_back() {
        let t = |s| Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, s).unwrap();
        let lb = Duration::from_secs(10);
        let mut c = Checkpoint::default();
        assert_eq!(c.poll_start(lb), Cursor::start());
        c.advance(t(0), "a", 1, lb);
        c.advance(t(30), "b", 4, lb);
        assert_eq!(c.cursor, Some(Cursor::new(t(30), "b")));
        assert!(!c.recent.contains_key("a"), "a fell out of the look-back window");
        // A late record with an older time does not move the cursor back.
        c.advance(t(25), "c", 1, lb);
        assert_eq!(c.cursor, Some(Cursor::new(t(30), "b")));
        assert!(c.already_handled("c", t(25), 1));
        assert!(!c.already_handled("c", t(25), 2), "a new version is new");
        assert_eq!(c.poll_start(lb), Cursor::new(t(20), ""));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Checkpoint>(&json).unwrap(), c);
    }
}
