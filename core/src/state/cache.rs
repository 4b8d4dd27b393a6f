//! The local cache both bus stores keep: every key's newest write, with the position it was seen
//! at (last write wins, never replaced by an older one). A ledger of millions of entities lives
//! here, so its layout is about bytes per entry:
//!
//! - every write is one **block** appended to a page of [`PAGE`] bytes: `[rest length][key length]
//!   [key][position][1 = value, 0 = deleted][value]`, lengths and the position as LEB128 varints.
//!   No allocation per key, so no allocator size class to round up to and no header per block;
//! - an **index**, a hash table of 8-byte handles (page number, offset in the page), finds a key's
//!   block; the key is compared in the block itself, so it is stored once;
//! - a write over an existing key appends its new block and leaves the old one **dead** in its
//!   page. A page (other than the one being filled) whose dead bytes pass a quarter of it is
//!   compacted: its live blocks are copied to the page being filled and it is freed for reuse.
//!   So dead blocks hold at most about a third of the live bytes, and each byte freed costs at
//!   most three bytes copied.
//!
//! What an entry costs, then: its block (the key, the value and 3–6 bytes) plus 8 bytes and a
//! control byte per table bucket (1.1–2.3 buckets per entry, the table doubling as it grows).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;
use hashbrown::HashTable;
use parking_lot::RwLock;

use crate::codec::varint;

/// The size of a page blocks are appended to. A block larger than this gets a page of its own.
pub(crate) const PAGE: usize = 256 * 1024;

/// The cache: see the module documentation.
#[derive(Debug)]
pub(crate) struct Cache {
    arena: RwLock<Arena>,
    /// The highest position applied (NATS: the stream sequence of the newest write seen).
    high: AtomicI64,
}

impl Default for Cache {
    fn default() -> Self {
        Self::with_page_size(PAGE)
    }
}

impl Cache {
    /// A cache whose pages hold `page` bytes (tests use tiny pages to compact often).
    pub(crate) fn with_page_size(page: usize) -> Self {
        Self { arena: RwLock::new(Arena::new(page.max(1))), high: AtomicI64::new(0) }
    }

    /// Applies a write seen at `position`; ignored when the cache already holds a newer one.
    pub(crate) fn apply(&self, key: &str, position: i64, value: Option<Bytes>) {
        self.high.fetch_max(position, Ordering::SeqCst);
        self.arena.write().apply(key.as_bytes(), position, value.as_deref());
    }

    /// The highest position applied so far (0 before the first write).
    pub(crate) fn high(&self) -> i64 {
        self.high.load(Ordering::SeqCst)
    }

    pub(crate) fn get(&self, key: &str) -> Option<Bytes> {
        let arena = self.arena.read();
        let handle = arena.find(key.as_bytes())?;
        arena.block(handle).value.map(Bytes::copy_from_slice)
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<String, Bytes> {
        let arena = self.arena.read();
        arena
            .index
            .iter()
            .filter_map(|&h| {
                let b = arena.block(h);
                let key = std::str::from_utf8(b.key).ok()?;
                Some((key.to_owned(), Bytes::copy_from_slice(b.value?)))
            })
            .collect()
    }

    /// Keys that hold a value (deleted keys are remembered, with their position, but not counted).
    pub(crate) fn len(&self) -> usize {
        self.arena.read().live
    }
}

/// Where a block is: page number in the high 32 bits, offset in the page in the low 32.
type Handle = u64;

fn handle(page: usize, offset: usize) -> Handle {
    ((page as u64) << 32) | offset as u64
}

fn split(h: Handle) -> (usize, usize) {
    ((h >> 32) as usize, (h & 0xFFFF_FFFF) as usize)
}

#[derive(Debug, Default)]
struct Page {
    bytes: Vec<u8>,
    /// Bytes of blocks in this page that a newer write of their key replaced.
    dead: usize,
}

#[derive(Debug)]
struct Arena {
    index: HashTable<Handle>,
    hasher: RandomState,
    pages: Vec<Page>,
    /// Pages emptied by compaction, to be filled again.
    free: Vec<usize>,
    /// The page being filled.
    tail: Option<usize>,
    page: usize,
    /// Keys that hold a value.
    live: usize,
    /// Pages to look at for compaction once the write under way is in the index.
    due: Vec<usize>,
}

/// A block read in place.
struct Block<'a> {
    key: &'a [u8],
    position: i64,
    value: Option<&'a [u8]>,
    /// The whole block's length, its length prefix included.
    len: usize,
}

/// A varint in a block this cache wrote itself.
fn read_trusted(bytes: &[u8], at: &mut usize) -> u64 {
    varint::read(bytes, at).unwrap_or_default()
}

fn parse(bytes: &[u8], offset: usize) -> Block<'_> {
    let mut at = offset;
    let rest = read_trusted(bytes, &mut at) as usize;
    let len = at - offset + rest;
    let key_len = read_trusted(bytes, &mut at) as usize;
    let key = &bytes[at..at + key_len];
    at += key_len;
    let position = read_trusted(bytes, &mut at) as i64;
    let value = (bytes[at] == 1).then(|| &bytes[at + 1..offset + len]);
    Block { key, position, value, len }
}

fn key_at(pages: &[Page], h: Handle) -> &[u8] {
    let (page, offset) = split(h);
    parse(&pages[page].bytes, offset).key
}

impl Arena {
    fn new(page: usize) -> Self {
        Self {
            index: HashTable::new(),
            hasher: RandomState::new(),
            pages: Vec::new(),
            free: Vec::new(),
            tail: None,
            page,
            live: 0,
            due: Vec::new(),
        }
    }

    fn block(&self, h: Handle) -> Block<'_> {
        let (page, offset) = split(h);
        parse(&self.pages[page].bytes, offset)
    }

    fn find(&self, key: &[u8]) -> Option<Handle> {
        let hash = self.hasher.hash_one(key);
        self.index.find(hash, |&h| key_at(&self.pages, h) == key).copied()
    }

    fn apply(&mut self, key: &[u8], position: i64, value: Option<&[u8]>) {
        let hash = self.hasher.hash_one(key);
        let old = self.index.find(hash, |&h| key_at(&self.pages, h) == key).copied();
        let had_value = match old {
            Some(h) => {
                let b = self.block(h);
                if b.position >= position {
                    return;
                }
                b.value.is_some()
            }
            None => false,
        };
        let new = self.append(key, position, value);
        match old {
            Some(old) => {
                if let Some(slot) = self.index.find_mut(hash, |&h| h == old) {
                    *slot = new;
                }
                let (page, offset) = split(old);
                self.pages[page].dead += parse(&self.pages[page].bytes, offset).len;
                self.due.push(page);
            }
            None => {
                let Self { index, hasher, pages, .. } = self;
                index.insert_unique(hash, new, |&h| hasher.hash_one(key_at(pages, h)));
            }
        }
        self.live = self.live + usize::from(value.is_some()) - usize::from(had_value);
        // Only now, with the index pointing at the new block, may blocks move.
        while let Some(page) = self.due.pop() {
            self.maybe_compact(page);
        }
    }

    /// Appends a block to the page being filled (or a page of its own when larger than a page).
    /// A page it stops filling is noted in `due`: compacting it here could move a block whose
    /// handle the caller still holds.
    fn append(&mut self, key: &[u8], position: i64, value: Option<&[u8]>) -> Handle {
        let body =
            varint::len(key.len() as u64) + key.len() + varint::len(position as u64) + 1 + value.map_or(0, <[u8]>::len);
        let len = varint::len(body as u64) + body;
        let page = if len > self.page {
            self.take_page(len)
        } else {
            match self.tail {
                Some(t) if self.pages[t].bytes.len() + len <= self.page => t,
                filled => {
                    self.due.extend(filled);
                    let page = self.take_page(self.page);
                    self.tail = Some(page);
                    page
                }
            }
        };
        let out = &mut self.pages[page].bytes;
        let offset = out.len();
        varint::put(out, body as u64);
        varint::put(out, key.len() as u64);
        out.extend_from_slice(key);
        varint::put(out, position as u64);
        match value {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
        handle(page, offset)
    }

    fn take_page(&mut self, capacity: usize) -> usize {
        let fresh = Page { bytes: Vec::with_capacity(capacity), dead: 0 };
        match self.free.pop() {
            Some(p) => {
                self.pages[p] = fresh;
                p
            }
            None => {
                self.pages.push(fresh);
                self.pages.len() - 1
            }
        }
    }

    /// Compacts `page` when it is not being filled and a quarter of it or more is dead: its live
    /// blocks are appended to the page being filled and the page is freed.
    fn maybe_compact(&mut self, page: usize) {
        let p = &self.pages[page];
        if Some(page) == self.tail || p.bytes.is_empty() || p.dead * 4 < p.bytes.len() {
            return;
        }
        let bytes = std::mem::take(&mut self.pages[page].bytes);
        self.pages[page].dead = 0;
        let mut offset = 0;
        while offset < bytes.len() {
            let b = parse(&bytes, offset);
            let here = handle(page, offset);
            let hash = self.hasher.hash_one(b.key);
            if self.index.find(hash, |&h| h == here).is_some() {
                let new = self.append(b.key, b.position, b.value);
                if let Some(slot) = self.index.find_mut(hash, |&h| h == here) {
                    *slot = new;
                }
            }
            offset += b.len;
        }
        self.free.push(page);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keeps_the_newest_write_per_key() {
        let c = Cache::default();
        c.apply("k", 5, Some(Bytes::from_static(b"v5")));
        c.apply("k", 3, Some(Bytes::from_static(b"v3")));
        assert_eq!(c.get("k").as_deref(), Some(&b"v5"[..]));
        c.apply("k", 7, None);
        assert_eq!(c.get("k"), None);
        c.apply("k", 6, Some(Bytes::from_static(b"v6")));
        assert_eq!(c.get("k"), None, "an older write must not resurrect a deleted key");
        assert_eq!(c.len(), 0);
        c.apply("j", 1, Some(Bytes::from_static(b"x")));
        assert_eq!(c.snapshot().len(), 1);
        // Keys of any length (the length prefix takes more than one byte past 127), empty values.
        let long = "k".repeat(300);
        c.apply(&long, 2, Some(Bytes::new()));
        c.apply(&long, 1, Some(Bytes::from_static(b"older")));
        assert_eq!(c.get(&long).as_deref(), Some(&b""[..]));
        assert_eq!(c.snapshot().keys().cloned().collect::<Vec<_>>(), vec!["j".to_owned(), long]);
        assert_eq!(c.len(), 2);
        assert_eq!(c.high(), 7);
    }

    /// Any sequence of writes (keys rewritten often, deletes, values larger than a page, positions
    /// out of order) leaves the cache equal to a plain map that keeps the highest position per
    /// key, with pages so small that compaction runs all the time.
    #[test]
    fn any_writes_read_back_as_the_newest_per_key() {
        use proptest::prelude::*;
        let op = (0u8..24, 0i64..400, prop::option::weighted(0.8, prop::collection::vec(any::<u8>(), 0..90)));
        let mut runner =
            proptest::test_runner::TestRunner::new(proptest::test_runner::Config { cases: 200, ..Default::default() });
        runner
            .run(&(prop::collection::vec(op, 1..600), 16usize..160), |(ops, page)| {
                let c = Cache::with_page_size(page);
                let mut model: BTreeMap<String, (i64, Option<Vec<u8>>)> = BTreeMap::new();
                for (k, pos, value) in ops {
                    let key = format!("key-{k}");
                    c.apply(&key, pos, value.clone().map(Bytes::from));
                    let e = model.entry(key).or_insert((i64::MIN, None));
                    if pos > e.0 {
                        *e = (pos, value);
                    }
                }
                for (k, (_, v)) in &model {
                    prop_assert_eq!(c.get(k).map(|b| b.to_vec()), v.clone(), "key {}", k);
                }
                let live: BTreeMap<String, Bytes> =
                    model.iter().filter_map(|(k, (_, v))| Some((k.clone(), Bytes::from(v.clone()?)))).collect();
                prop_assert_eq!(c.len(), live.len());
                prop_assert_eq!(c.snapshot(), live);
                // Dead blocks stay bounded: what the pages hold is at most the live blocks plus
                // a quarter of each page, the page being filled and the pages of large blocks.
                let a = c.arena.read();
                let used: usize = a.pages.iter().map(|p| p.bytes.len()).sum();
                let live_bytes: usize = a.index.iter().map(|&h| a.block(h).len).sum();
                prop_assert!(used <= live_bytes * 4 / 3 + a.page * 2 + 200, "used {} live {}", used, live_bytes);
                Ok(())
            })
            .unwrap();
    }
}
