//! Offsets in flight per partition, and the commit watermark: the lowest offset whose effect is not
//! durable yet (or the next offset when all are done). Offsets are committed up to the watermark
//! only, so a crash never skips an event whose effect was lost.

use std::collections::{BTreeSet, HashMap};

use dastra_connect_core::bus::TopicPartition;

#[derive(Debug, Default)]
struct Part {
    open: BTreeSet<i64>,
    next: i64,
    committed: i64,
}

/// Per-partition offset tracking.
#[derive(Debug, Default)]
pub struct Tracker {
    parts: HashMap<TopicPartition, Part>,
}

impl Tracker {
    /// An offset was received: it is open until [`Tracker::done`].
    pub fn seen(&mut self, tp: &TopicPartition, offset: i64) {
        let p = self.parts.entry(tp.clone()).or_default();
        if p.next == 0 && p.committed == 0 && p.open.is_empty() {
            // First message of this assignment: nothing before it is ours to commit.
            p.committed = offset;
        }
        p.open.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    /// The effect of `offset` is durable (or it needed none).
    pub fn done(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(p) = self.parts.get_mut(tp) {
            p.open.remove(&offset);
        }
    }

    /// Partitions whose watermark moved past the last commit: `(partition, next offset to read)`.
    pub fn to_commit(&self) -> Vec<(TopicPartition, i64)> {
        self.parts
            .iter()
            .filter_map(|(tp, p)| {
                let mark = p.open.first().copied().unwrap_or(p.next);
                (mark > p.committed).then(|| (tp.clone(), mark))
            })
            .collect()
    }

    /// Records a successful commit.
    pub fn committed(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(p) = self.parts.get_mut(tp) {
            p.committed = p.committed.max(offset);
        }
    }

    /// Forgets a revoked partition.
    pub fn forget(&mut self, tp: &TopicPartition) {
        self.parts.remove(tp);
    }

    /// Open offsets in total (events whose effect is not durable yet).
    pub fn open(&self) -> usize {
        self.parts.values().map(|p| p.open.len()).sum()
    }

    /// Offsets consumed but not committed, per partition (for `/status`).
    pub fn uncommitted(&self) -> Vec<(TopicPartition, i64)> {
        self.parts.iter().map(|(tp, p)| (tp.clone(), p.next - p.committed)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_stops_at_the_lowest_open_offset() {
        let tp = TopicPartition::new("t", 0);
        let mut t = Tracker::default();
        for o in 10..15 {
            t.seen(&tp, o);
        }
        t.done(&tp, 10);
        t.done(&tp, 12);
        t.done(&tp, 13);
        assert_eq!(t.to_commit(), vec![(tp.clone(), 11)]);
        t.committed(&tp, 11);
        assert!(t.to_commit().is_empty());
        t.done(&tp, 11);
        assert_eq!(t.to_commit(), vec![(tp.clone(), 14)]);
        t.done(&tp, 14);
        assert_eq!(t.to_commit(), vec![(tp.clone(), 15)]);
        assert_eq!(t.open(), 0);
    }
}
