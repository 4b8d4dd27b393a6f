//! The sink's ordering rule, in one place: **the newest source version of a key wins**, whatever
//! the order, timing and path by which its events arrive (consumed, coalesced, waiting for a
//! reference, held behind a parked key, redriven from the DLQ, redelivered after a restart, a crash
//! or a rebalance).
//!
//! A key's events can be in four places at once: applied (the ledger's version, or the version an
//! open create intent attempts), in the pending store (waiting for references, or held behind a
//! parked key), running (being applied now), and queued (the newest not yet started; older queued
//! events are replaced on arrival, see the driver's `submit`). Every path that admits an event asks
//! [`admit`] with what it knows of those; an event that is not newer than all of them is superseded:
//! its offsets are released and it sends nothing. A superseded event never replaces a newer one,
//! because the newer one is durable where it is (uncommitted on the bus while it runs or is queued,
//! in the pending store while it waits, in the ledger once applied) and is applied from there.
//!
//! Sequences compare with [`cmp_sequence`] (the same order sources write them in).

use std::cmp::Ordering;

use dastra_connect_core::event::cmp_sequence;

use super::ledger::LedgerEntry;

/// What is known of a key when one of its events asks to be admitted.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyVersions<'a> {
    /// Its ledger entry.
    pub ledger: Option<&'a LedgerEntry>,
    /// The sequence of its pending-store entry.
    pub pending: Option<&'a str>,
    /// The sequence of the event being applied now.
    pub running: Option<&'a str>,
}

/// Where the event to admit comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Consumed from the bus (first delivery, redelivery or DLQ redrive).
    Bus,
    /// The key's own pending-store entry, released because its references appeared or its key was
    /// un-parked.
    Pending,
}

/// The verdict on one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Newer than everything known: apply it (after what runs now).
    Admit,
    /// Not newer than what the key already has, holds or is applying: it sends nothing.
    Superseded,
    /// (Pending entries only) the entry is being applied now, or something newer is: the running
    /// work's end deals with the entry.
    InProgress,
}

/// The one ordering rule (see the module doc).
pub fn admit(sequence: &str, origin: Origin, known: KeyVersions<'_>) -> Admission {
    let not_newer = |other: &str| cmp_sequence(sequence, other) != Ordering::Greater;
    if origin == Origin::Pending && known.running.is_some_and(not_newer) {
        return Admission::InProgress;
    }
    if known.ledger.is_some_and(|e| e.is_stale(sequence)) {
        return Admission::Superseded;
    }
    match origin {
        Origin::Bus => {
            // Equal to what waits or runs: a duplicate of it.
            if known.pending.is_some_and(not_newer) || known.running.is_some_and(not_newer) {
                return Admission::Superseded;
            }
        }
        Origin::Pending => {
            // Released from the store, it is the entry itself (equal); anything older than the
            // entry cannot be released from it.
            if known.pending.is_some_and(|p| cmp_sequence(sequence, p) == Ordering::Less) {
                return Admission::Superseded;
            }
        }
    }
    Admission::Admit
}

/// Whether an arriving event replaces the queued one of its key (coalescing): when it is not older
/// (an equal one is a duplicate; either will do).
pub fn replaces_queued(sequence: &str, queued: &str) -> bool {
    cmp_sequence(sequence, queued) != Ordering::Less
}

/// Whether an event of `sequence` may replace the pending entry of `stored` (absent: the entry was
/// written by a build that did not record it, and counts as older than anything).
pub fn may_replace_pending(sequence: &str, stored: Option<&str>) -> bool {
    stored.is_none_or(|s| cmp_sequence(sequence, s) != Ordering::Less)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::ledger::EntryState;

    fn v(n: u64) -> String {
        dastra_connect_core::event::sequence_from_u64(n)
    }

    fn applied(n: u64) -> LedgerEntry {
        let mut e = LedgerEntry::live("1");
        e.version = Some(v(n));
        e
    }

    #[test]
    fn an_event_older_than_a_waiting_one_is_superseded_and_an_equal_one_is_a_duplicate() {
        let (v2, v3) = (v(2), v(3));
        let known = KeyVersions { pending: Some(&v3), ..Default::default() };
        assert_eq!(admit(&v2, Origin::Bus, known), Admission::Superseded, "late v2 after v3 waits");
        assert_eq!(admit(&v3, Origin::Bus, known), Admission::Superseded, "redelivered v3");
        assert_eq!(admit(&v(4), Origin::Bus, known), Admission::Admit);
        assert_eq!(admit(&v3, Origin::Pending, known), Admission::Admit, "the entry itself is released");
    }

    #[test]
    fn the_ledger_and_the_running_event_count_the_same_way() {
        let (v5, v6) = (v(5), v(6));
        let ledger = applied(5);
        let known = KeyVersions { ledger: Some(&ledger), running: Some(&v6), ..Default::default() };
        assert_eq!(admit(&v5, Origin::Bus, known), Admission::Superseded);
        assert_eq!(admit(&v6, Origin::Bus, known), Admission::Superseded, "duplicate of the running one");
        assert_eq!(admit(&v(7), Origin::Bus, known), Admission::Admit);
        assert_eq!(admit(&v6, Origin::Pending, known), Admission::InProgress);
        assert_eq!(admit(&v(7), Origin::Pending, known), Admission::Admit);
        let stale_entry = KeyVersions { ledger: Some(&ledger), pending: Some(&v5), running: None };
        assert_eq!(admit(&v5, Origin::Pending, stale_entry), Admission::Superseded, "entry older than applied");
    }

    #[test]
    fn an_open_intent_makes_older_events_superseded() {
        let intent = LedgerEntry::intent_for(Some(&applied(1)), &v(4));
        assert_eq!(intent.state, EntryState::Intent);
        let known = KeyVersions { ledger: Some(&intent), ..Default::default() };
        assert_eq!(admit(&v(1), Origin::Bus, known), Admission::Superseded, "the kill-after-POST case");
        assert_eq!(admit(&v(3), Origin::Bus, known), Admission::Superseded);
        assert_eq!(admit(&v(4), Origin::Bus, known), Admission::Admit, "the attempted event resolves it");
    }

    #[test]
    fn pending_entries_are_never_replaced_by_older_events() {
        assert!(may_replace_pending(&v(3), None));
        assert!(may_replace_pending(&v(3), Some(&v(3))));
        assert!(may_replace_pending(&v(4), Some(&v(3))));
        assert!(!may_replace_pending(&v(2), Some(&v(3))));
        assert!(replaces_queued(&v(4), &v(3)) && replaces_queued(&v(3), &v(3)) && !replaces_queued(&v(2), &v(3)));
    }
}
