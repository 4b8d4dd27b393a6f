//! Partition leases on NATS: one owner per partition while replicas change.
//!
//! Replica `i` of `n` wants the partitions `p` with `p % n == i`. While `replicas` changes in a
//! rolling restart, old replicas (`i/2`) and new ones (`i/3`) run side by side and want some of the
//! same partitions (partition 2 is `0/2`'s and `2/3`'s). Two consumers of one partition would apply
//! the same keys at the same time, each with its own ledger cache: duplicates. So a replica consumes
//! a partition only while it holds its lease, a key `<group>.<partition>` in the KV bucket
//! `<stream>-leases` whose value names the holder (`i/n@<process id>`):
//!
//! - **Claim**: create the key (absent, deleted or expired). At start only, also take it over when
//!   it names this replica's ordinal (`i/n`) from another process: the same ordinal restarted, its
//!   previous process is gone (a StatefulSet runs one pod per ordinal). A process that lost a lease
//!   waits for it like any other, so two processes with one ordinal never take turns.
//! - **Renew**: every third of `lease_ttl`, a compare-and-set on the revision. A failed CAS means
//!   another replica took it: stop consuming the partition at once. When renewals cannot reach the
//!   server for two thirds of the TTL, the lease is given up the same way, before it can expire.
//! - **Reclaim**: a lease that still names this very process (a renewal that landed but whose answer
//!   was lost, or one given up while the server was unreachable and not yet expired) is taken back at
//!   once by the next claim: nobody else can hold a key that names this process.
//! - **Expiry**: the bucket's `max_age` is `lease_ttl`, so the lease of a replica that died without
//!   letting go disappears after at most that long.
//! - **Release**: a graceful stop deletes the keys it holds (after its last commit), so the next
//!   owner starts at once.
//!
//! The bucket's `max_age` is set by whichever replica creates it first.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;

use super::nats::nats_err;
use super::{BusError, NatsConfig};

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This replica holds the lease at this revision.
    Held(u64),
    /// Another replica holds it (its name).
    Busy(String),
}

/// The lease bucket of one consumer group.
#[derive(Clone)]
pub(crate) struct Leases {
    kv: kv::Store,
    group: String,
    /// `i/n`.
    ordinal: String,
    /// `i/n@<random process id>`.
    holder: String,
    ttl: Duration,
}

impl Leases {
    /// Opens (creating if missing) the lease bucket of `cfg`'s stream for `group`.
    pub(crate) async fn open(js: &jetstream::Context, cfg: &NatsConfig, group: &str) -> Result<Self, BusError> {
        let bucket = format!("{}-leases", cfg.stream);
        let kv = match js.get_key_value(&bucket).await {
            Ok(kv) => kv,
            Err(_) => match js
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    history: 1,
                    max_age: cfg.lease_ttl,
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: cfg.stream_replicas,
                    ..Default::default()
                })
                .await
            {
                Ok(kv) => kv,
                // Another replica may have created it meanwhile.
                Err(e) => js.get_key_value(&bucket).await.map_err(|_| nats_err("create lease bucket", e))?,
            },
        };
        let ordinal = format!("{}/{}", cfg.replica_index, cfg.replicas);
        let holder = format!("{ordinal}@{:016x}", rand::random::<u64>());
        Ok(Self { kv, group: group.to_owned(), ordinal, holder, ttl: cfg.lease_ttl })
    }

    /// This process's name in the leases (`index/replicas@id`).
    pub(crate) fn holder(&self) -> &str {
        &self.holder
    }

    /// How often a held lease is renewed.
    pub(crate) fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// How long renewals may fail before the lease is given up (before it can expire).
    pub(crate) fn give_up_after(&self) -> Duration {
        self.ttl * 2 / 3
    }

    fn key(&self, partition: u32) -> String {
        format!("{}.{partition}", self.group)
    }

    /// Tries once to take the lease of `partition`; `at_start`: also from a previous process of this
    /// ordinal.
    pub(crate) async fn claim(&self, partition: u32, at_start: bool) -> Result<Claim, BusError> {
        let key = self.key(partition);
        let value = Bytes::from(self.holder.clone());
        match self.kv.create(&key, value.clone()).await {
            Ok(revision) => return Ok(Claim::Held(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(nats_err("claim partition lease", e)),
        }
        let Some(entry) = self.kv.entry(&key).await.map_err(|e| nats_err("read partition lease", e))? else {
            // Expired or deleted between the two calls: the next attempt creates it.
            return Ok(Claim::Busy(String::new()));
        };
        let owner = String::from_utf8_lossy(&entry.value).into_owned();
        if entry.operation != kv::Operation::Put {
            return Ok(Claim::Busy(String::new()));
        }
        let same_ordinal = owner.split('@').next() == Some(self.ordinal.as_str());
        if !(owner == self.holder || (at_start && same_ordinal)) {
            return Ok(Claim::Busy(owner));
        }
        // Still this process's (see Reclaim), or this ordinal's previous process: it restarted, the
        // old one is gone.
        match self.kv.update(&key, value, entry.revision).await {
            Ok(revision) => Ok(Claim::Held(revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(Claim::Busy(owner)),
            Err(e) => Err(nats_err("take over partition lease", e)),
        }
    }

    /// Renews a held lease: the new revision, or `None` when another replica took it.
    pub(crate) async fn renew(&self, partition: u32, revision: u64) -> Result<Option<u64>, BusError> {
        match self.kv.update(self.key(partition), Bytes::from(self.holder.clone()), revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(nats_err("renew partition lease", e)),
        }
    }

    /// Lets a held lease go (only if still ours at `revision`).
    pub(crate) async fn release(&self, partition: u32, revision: u64) {
        if let Err(e) = self.kv.delete_expect_revision(self.key(partition), Some(revision)).await {
            tracing::debug!(partition, error = %e, "partition lease not released (expired or taken)");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testkit::NatsServer;

    /// A renewal whose answer was lost (the lease moved to a newer revision, still naming this
    /// process) fails its compare-and-set; the next claim takes the lease back at once instead of
    /// waiting for it to expire. A lease naming another process stays busy.
    #[tokio::test]
    async fn a_lease_naming_this_process_is_taken_back_at_once() {
        let nats = NatsServer::start().await;
        let mut cfg = nats.nats_config();
        cfg.lease_ttl = Duration::from_secs(30);
        let js = jetstream::new(crate::bus::nats::connect(&cfg).await.unwrap());
        let leases = Leases::open(&js, &cfg, "g").await.unwrap();
        let Claim::Held(first) = leases.claim(0, true).await.unwrap() else { panic!("not held") };
        // This process's own write landed, its answer did not.
        let moved = leases.kv.update("g.0", Bytes::from(leases.holder().to_owned()), first).await.unwrap();
        assert_eq!(leases.renew(0, first).await.unwrap(), None, "the CAS on the old revision fails");
        let Claim::Held(back) = leases.claim(0, false).await.unwrap() else { panic!("not taken back") };
        assert!(back > moved);
        // Another process of another ordinal: busy until it lets go.
        let mut other_cfg = cfg.clone();
        other_cfg.replica_index = 1;
        other_cfg.replicas = 2;
        let other = Leases::open(&js, &other_cfg, "g").await.unwrap();
        assert_eq!(other.claim(0, true).await.unwrap(), Claim::Busy(leases.holder().to_owned()));
        leases.release(0, back).await;
        assert!(matches!(other.claim(0, false).await.unwrap(), Claim::Held(_)));
    }
}
