//! What the sink benchmarks share: a deterministic churny change stream over Assets and Actors
//! (creates, unchanged repeats, bursts of updates to one key, single updates, deletes), its
//! encoding as bus messages, and an in-memory state store for the ledger (the bus-backed stores keep
//! the same cache, plus the broker round trip this leaves out).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use dastra_connect_core::codec::Codec;
use dastra_connect_core::event::enums::{ActorType, AssetType, VendorType};
use dastra_connect_core::event::{
    Actor, Asset, ChangeEvent, EntityKey, EntityKind, Payload, cmp_sequence, sequence_from_u64,
};

/// How many events of each sort a stream holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mix {
    /// First event of every entity.
    pub creates: usize,
    /// Same content as last published (snapshot sweeps re-publishing).
    pub repeats: usize,
    /// Updates arriving in bursts of `burst_len` to one key.
    pub burst_updates: usize,
    /// Length of a burst.
    pub burst_len: usize,
    /// Updates on their own.
    pub single_updates: usize,
    /// Deletes (the key gets no later event).
    pub deletes: usize,
}

impl Mix {
    /// Total events.
    pub fn total(&self) -> usize {
        self.creates + self.repeats + self.burst_updates + self.single_updates + self.deletes
    }

    /// Requests an ideal sink needs when it sees every event on its own (live, never two events of
    /// a key at once): one per create, per burst (only its last state matters), per single update
    /// and per delete. Not a lower bound: an oracle seeing the whole stream does better, see
    /// [`oracle_bound`].
    pub fn event_by_event(&self) -> usize {
        self.creates + self.burst_updates / self.burst_len.max(1) + self.single_updates + self.deletes
    }

    /// The stream of the churn benchmark scaled to `entities` (the full run: 10 000 entities,
    /// 100 000 events): per entity one create, 7.8 unchanged repeats, 0.2 bursts of 5 updates,
    /// 0.1 single updates, 0.1 deletes.
    pub fn churn(entities: usize) -> Mix {
        Mix {
            creates: entities,
            repeats: entities * 78 / 10,
            burst_updates: entities, // entities / 5 bursts of 5
            burst_len: 5,
            single_updates: entities / 10,
            deletes: entities / 10,
        }
    }
}

/// xorshift64: deterministic, so every run sends the same stream.
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    /// Next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The key of entity `i`: even ones are Assets, odd ones Actors.
pub fn key(i: usize) -> EntityKey {
    let text = if i.is_multiple_of(2) { format!("bench:asset:{i}") } else { format!("bench:actor:{i}") };
    EntityKey::parse(&text).unwrap()
}

/// The content of entity `i` at revision `rev`.
pub fn content(i: usize, rev: u32, snapshot: bool) -> Payload {
    if i.is_multiple_of(2) {
        Payload::Asset(Asset {
            snapshot,
            label: Some(format!("Application {i} r{rev}")),
            asset_type: Some(AssetType::Software),
            description: Some(format!("Line-of-business application number {i}")),
            city: Some("Lyon".into()),
            country_code: Some("FR".into()),
            ..Default::default()
        })
    } else {
        Payload::Actor(Actor {
            snapshot,
            actor_type: Some(ActorType::Morale),
            vendor_type: Some(VendorType::B2B),
            company_name: Some(format!("Vendor {i}")),
            email: Some(format!("dpo+{i}.r{rev}@vendor.example")),
            country_code: Some("DE".into()),
            ..Default::default()
        })
    }
}

fn deleted(i: usize) -> Payload {
    if i.is_multiple_of(2) {
        Payload::Asset(Asset { deleted: true, ..Default::default() })
    } else {
        Payload::Actor(Actor { deleted: true, ..Default::default() })
    }
}

/// Builds the stream: every entity's create first (in random order), then repeats, bursts, single
/// updates and deletes interleaved at random, versions increasing in publish order. A deleted key
/// gets no later event.
pub fn stream(entities: usize, mix: Mix, seed: u64) -> Vec<ChangeEvent> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(mix.total());
    let mut version = 0u64;
    let mut push = |out: &mut Vec<ChangeEvent>, i: usize, data: Payload| {
        version += 1;
        let e = ChangeEvent::new("/bench/churn", key(i), sequence_from_u64(version), chrono::Utc::now(), data);
        out.push(e.unwrap());
    };
    let mut order: Vec<usize> = (0..entities).collect();
    for j in (1..order.len()).rev() {
        order.swap(j, rng.below(j + 1));
    }
    for &i in &order {
        push(&mut out, i, content(i, 0, false));
    }
    let mut rev = vec![0u32; entities];
    let mut alive: Vec<usize> = (0..entities).collect();
    // Remaining work as tickets drawn at random: 0 repeat, 1 burst, 2 single update, 3 delete.
    let bursts = mix.burst_updates / mix.burst_len.max(1);
    let mut tickets: Vec<u8> = std::iter::repeat_n(0u8, mix.repeats)
        .chain(std::iter::repeat_n(1, bursts))
        .chain(std::iter::repeat_n(2, mix.single_updates))
        .chain(std::iter::repeat_n(3, mix.deletes))
        .collect();
    for j in (1..tickets.len()).rev() {
        tickets.swap(j, rng.below(j + 1));
    }
    for t in tickets {
        let slot = rng.below(alive.len());
        let i = alive[slot];
        match t {
            0 => push(&mut out, i, content(i, rev[i], true)),
            1 => {
                for _ in 0..mix.burst_len {
                    rev[i] += 1;
                    push(&mut out, i, content(i, rev[i], false));
                }
            }
            2 => {
                rev[i] += 1;
                push(&mut out, i, content(i, rev[i], false));
            }
            _ => {
                push(&mut out, i, deleted(i));
                alive.swap_remove(slot);
            }
        }
    }
    out
}

/// `rounds` snapshot sweeps of every entity alive at the end of `events` (a nightly full export of
/// an unchanged source): its newest content again with the snapshot flag, under versions that
/// continue after the stream's. Each event needs no request, only its ledger version bump.
pub fn sweeps(events: &[ChangeEvent], rounds: usize) -> Vec<ChangeEvent> {
    let mut last: std::collections::BTreeMap<&str, &ChangeEvent> = Default::default();
    for e in events {
        last.insert(e.key.as_str(), e);
    }
    let alive: Vec<&ChangeEvent> = last.into_values().filter(|e| !e.data.is_deleted()).collect();
    let mut version = events.len() as u64;
    let mut out = Vec::with_capacity(alive.len() * rounds);
    for _ in 0..rounds {
        for e in &alive {
            version += 1;
            let mut data = e.data.clone();
            data.set_snapshot(true);
            let ev =
                ChangeEvent::new("/bench/churn", e.key.clone(), sequence_from_u64(version), chrono::Utc::now(), data);
            out.push(ev.unwrap());
        }
    }
    out
}

/// What an oracle that saw the whole stream at once would need to send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Oracle {
    /// Entities alive at the end that Dastra does not hold: one POST each (Dastra has no batch
    /// create).
    pub creates: usize,
    /// Entities Dastra holds whose final content differs: PATCHes, one request per group of
    /// entities of one collection getting the identical patch (`PATCH <collection>` with ids).
    pub patches: usize,
    /// Entities Dastra holds that are deleted at the end: one `batch-delete` per collection.
    pub deletes: usize,
}

impl Oracle {
    /// Total requests: the lower bound the sink is measured against.
    pub fn requests(&self) -> usize {
        self.creates + self.patches + self.deletes
    }
}

/// The lower bound of requests for a stream: for every entity, its final state (last event by
/// version) against what Dastra holds before the stream (`held`: key → content; the churn bench
/// starts from an empty workspace), each at its cheapest: a create per entity Dastra lacks, one
/// request per (collection, identical set of changed fields and values) for entities that differ,
/// one batch-delete per collection with entities to remove, nothing for the unchanged and for
/// entities created and deleted within the stream.
pub fn oracle_bound(held: &BTreeMap<EntityKey, Payload>, events: &[ChangeEvent]) -> Oracle {
    let mut last: BTreeMap<&EntityKey, &ChangeEvent> = BTreeMap::new();
    for e in events {
        match last.get(&e.key) {
            Some(prev) if cmp_sequence(&e.sequence, &prev.sequence).is_le() => {}
            _ => {
                last.insert(&e.key, e);
            }
        }
    }
    let mut oracle = Oracle::default();
    let mut patch_groups: BTreeSet<(EntityKind, String)> = BTreeSet::new();
    let mut delete_groups: BTreeSet<EntityKind> = BTreeSet::new();
    let fields = |p: &Payload| -> BTreeMap<String, serde_json::Value> {
        let mut v = p.to_json_value().unwrap();
        if let serde_json::Value::Object(m) = &mut v {
            m.remove("snapshot");
        }
        serde_json::from_value(v).unwrap()
    };
    for (key, e) in last {
        match (held.get(key), e.data.is_deleted()) {
            (None, true) => {}
            (None, false) => oracle.creates += 1,
            (Some(_), true) => {
                delete_groups.insert(key.kind());
            }
            (Some(before), false) => {
                let (before, after) = (fields(before), fields(&e.data));
                let changed: BTreeMap<&String, Option<&serde_json::Value>> = after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(*v))
                    .map(|(k, v)| (k, Some(v)))
                    .chain(before.keys().filter(|k| !after.contains_key(*k)).map(|k| (k, None)))
                    .collect();
                if !changed.is_empty() {
                    patch_groups.insert((key.kind(), serde_json::to_string(&changed).unwrap()));
                }
            }
        }
    }
    oracle.patches = patch_groups.len();
    oracle.deletes = delete_groups.len();
    oracle
}

/// A bus message as the sink receives it: CloudEvents headers and the encoded payload.
pub type Message = (Vec<(String, Vec<u8>)>, Vec<u8>);

/// Encodes events as the sink receives them.
pub async fn encode(events: &[ChangeEvent], codec: &Codec) -> Vec<Message> {
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let value = e.encode_value(codec, &e.kind().default_topic()).await.unwrap();
        let headers = e.ce_headers(codec).into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        out.push((headers, value));
    }
    out
}

/// Resident set size of this process, in bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}
