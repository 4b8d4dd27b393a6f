//! Keyset paging helpers: how record ids order (numerically for integer ids, as text otherwise),
//! whether a record comes strictly after a [`Cursor`], and putting a page read with an inclusive
//! time filter (`updated >= t`) into the engine's `(updated, id)` order.
//!
//! Systems whose filters are "at or after" a time (NetBox `last_updated__gte`, Coupa
//! `updated_at[gt]` one second early, a directory of files) read the cursor's instant again; the
//! records of that instant already published are dropped here with [`is_after`], then the page is
//! sorted and cut with [`order_page`] so the first `limit` newer records are the right ones.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use super::cursor::Cursor;
use super::engine::{DeletedRecord, SourceRecord};

/// How a system's record ids compare: the order its keyset sweep (`id > last`) reads them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdOrder {
    /// Decimal integer ids compare as numbers (`9` < `10`); when either is not one, the shorter
    /// first, then by text (NetBox, Coupa).
    Numeric,
    /// Byte order of the text (file rows, whose ids are whatever a column holds).
    Text,
}

impl IdOrder {
    /// Compares two ids.
    pub fn cmp(self, a: &str, b: &str) -> Ordering {
        match self {
            IdOrder::Numeric => match (a.parse::<u64>(), b.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            },
            IdOrder::Text => a.cmp(b),
        }
    }

    /// True when `(updated, id)` comes strictly after `after`; an open cursor
    /// ([`Cursor::is_open`]) means "at or after its time".
    pub fn is_after(self, updated: DateTime<Utc>, id: &str, after: &Cursor) -> bool {
        match updated.cmp(&after.updated) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => after.is_open() || self.cmp(id, &after.id) == Ordering::Greater,
        }
    }

    /// Compares two positions `(updated, id)`.
    pub fn cmp_position(self, a: (DateTime<Utc>, &str), b: (DateTime<Utc>, &str)) -> Ordering {
        a.0.cmp(&b.0).then_with(|| self.cmp(a.1, b.1))
    }
}

/// Something with a position in a stream: a record, or an entry of a deletes feed.
pub trait Positioned {
    /// `(time, id)` in the stream's order.
    fn position(&self) -> (DateTime<Utc>, &str);
}

impl Positioned for SourceRecord {
    fn position(&self) -> (DateTime<Utc>, &str) {
        (self.updated, &self.id)
    }
}

impl Positioned for DeletedRecord {
    fn position(&self) -> (DateTime<Utc>, &str) {
        (self.position.updated, &self.position.id)
    }
}

/// Keeps what comes strictly after `after`, sorts it by `(time, id)` and keeps the first `limit`.
pub fn order_page<T: Positioned>(mut items: Vec<T>, after: &Cursor, order: IdOrder, limit: u32) -> Vec<T> {
    items.retain(|r| {
        let (t, id) = r.position();
        order.is_after(t, id, after)
    });
    items.sort_by(|a, b| order.cmp_position(a.position(), b.position()));
    items.truncate(limit as usize);
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rec(t: DateTime<Utc>, id: &str) -> SourceRecord {
        SourceRecord { id: id.into(), updated: t, version: 0, body: serde_json::Value::Null }
    }

    #[test]
    fn ids_compare_numerically_and_open_cursors_include_their_instant() {
        let n = IdOrder::Numeric;
        assert_eq!(n.cmp("9", "10"), Ordering::Less);
        assert_eq!(n.cmp("10", "x"), Ordering::Greater, "not both integers: shorter first");
        assert_eq!(IdOrder::Text.cmp("9", "10"), Ordering::Greater);
        let t = Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0).unwrap();
        assert!(n.is_after(t, "3", &Cursor::new(t, "")));
        assert!(!n.is_after(t, "3", &Cursor::new(t, "3")));
        assert!(n.is_after(t, "10", &Cursor::new(t, "9")));
        assert!(!IdOrder::Text.is_after(t, "10", &Cursor::new(t, "9")));
        assert!(!n.is_after(t - chrono::Duration::seconds(1), "99", &Cursor::new(t, "")));
    }

    #[test]
    fn a_page_keeps_what_is_after_the_cursor_in_order_up_to_the_limit() {
        let t = Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0).unwrap();
        let t1 = t + chrono::Duration::seconds(1);
        let page = vec![rec(t1, "2"), rec(t, "10"), rec(t, "9"), rec(t, "3"), rec(t1, "1")];
        let out = order_page(page, &Cursor::new(t, "3"), IdOrder::Numeric, 3);
        let ids: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["9", "10", "1"]);
    }
}
