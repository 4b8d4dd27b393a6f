//! Offsets and ownership: committing up to the watermark, handing partitions over on revocation,
//! draining at shutdown, and what `/status` and the lag metric show.

use super::*;

impl Driver {
    /// The barrier of a new assignment: the ledger, pending and parked stores are read up to their
    /// end, so what the partitions' previous owner wrote (an intent before a POST, a pending event, a
    /// park) is known before any of their events is applied. A store that cannot say where its end
    /// is stops the sink (applying without the barrier could create an entity twice).
    pub(super) async fn read_stores_to_end(&mut self) {
        let started = Instant::now();
        for store in [self.shared.ledger.store(), &self.shared.pending, &self.shared.parked] {
            if let Err(e) = store.sync().await {
                self.broken = Some(format!("cannot read the state store {} to its end: {e}", store.namespace()));
                return;
            }
        }
        tracing::debug!(connector = %self.label(), elapsed_ms = started.elapsed().as_millis() as u64, "state stores read to their end");
    }

    pub(super) async fn commit(&mut self, sub: &dyn Subscriber) {
        for (tp, offset) in self.tracker.to_commit() {
            match sub.commit(&tp.topic, tp.partition, offset).await {
                Ok(()) => self.tracker.committed(&tp, offset),
                Err(e) => {
                    tracing::warn!(connector = %self.label(), topic = %tp.topic, partition = tp.partition, error = %e, "commit failed; will retry")
                }
            }
        }
    }

    pub(super) async fn on_revoked(
        &mut self,
        sub: &dyn Subscriber,
        tps: Vec<TopicPartition>,
        shutdown: &CancellationToken,
    ) {
        tracing::info!(connector = %self.label(), count = tps.len(), partitions = %TopicPartition::summary(&tps), "partitions revoked; finishing in-flight work");
        // Work in flight is idempotent, but its commit belongs to this member: finish it first.
        let grace = self.shared.config.shutdown_grace;
        let deadline = Instant::now() + grace;
        while !self.tasks.is_empty() && Instant::now() < deadline && !shutdown.is_cancelled() {
            match tokio::time::timeout(deadline - Instant::now(), self.tasks.join_next_with_id()).await {
                Ok(Some(Ok((id, (key, work, finish))))) => {
                    if let Err(e) = self.finish(id, key, work, finish).await {
                        tracing::error!(connector = %self.label(), error = %e, "error while finishing work on revoke");
                    }
                }
                Ok(Some(Err(e))) if e.is_cancelled() => {}
                _ => break,
            }
        }
        // Staged ledger entries are written before the hand-over: written later, one could land
        // after the new owner's newer entry of the same key.
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        let flushed = self.flush_staged(left).await;
        self.commit(sub).await;
        let revoked: HashSet<&TopicPartition> = tps.iter().collect();
        // Work of revoked partitions still running after the grace period (Dastra slow, quota
        // exhausted) is abandoned before the hand-over: its offsets are not committed, so the new
        // owner applies it again — after reading this replica's intent, never beside it.
        let stale: Vec<EntityKey> =
            self.running.iter().filter(|(_, (_, tp))| revoked.contains(tp)).map(|(k, _)| k.clone()).collect();
        for key in &stale {
            if let Some((handle, _)) = self.running.remove(key) {
                handle.abort();
                self.in_flight -= 1;
                if let Some(slot) = self.slots.get_mut(key) {
                    slot.running = None;
                }
            }
        }
        if !stale.is_empty() {
            tracing::warn!(connector = %self.label(), abandoned = stale.len(), "grace period over: in-flight work of revoked partitions abandoned (the new owner applies it again)");
        }
        if !flushed {
            // Not written in time, they must not be written at all once the partitions are handed
            // over (the caller does that next). After the stale workers are stopped: a worker
            // waiting for a staged entry of its key is released by the abandon, and must not go on
            // to write. The flusher ends with it, so the sink stops: the events of the abandoned
            // entries (their offsets never committed) are applied again by the next owner.
            self.abandon_staged().await;
            self.broken = Some("the ledger's staged writes could not be made durable before a hand-over".into());
        }
        // Queued events of revoked partitions belong to the new owner, who reads them again from
        // the committed offset; that includes those queued behind a key still running here (held
        // events, with no offsets, stay: they are released by whoever owns their partition).
        let mut dropped = 0;
        for slot in self.slots.values_mut() {
            if slot.queued.as_ref().is_some_and(|w| w.offsets.iter().any(|(tp, _)| revoked.contains(tp))) {
                slot.queued = None;
                dropped += 1;
            }
        }
        self.slots.retain(|_, slot| slot.running.is_some() || slot.queued.is_some());
        self.buffered = self.slots.values().filter(|s| s.queued.is_some()).count();
        // A key whose running work was abandoned and that still has queued work (a held event)
        // waits in no lane yet: it goes back to the lane of its class.
        let orphans: Vec<(EntityKey, Priority)> = self
            .slots
            .iter()
            .filter(|(_, s)| s.running.is_none() && s.ticket.is_none())
            .filter_map(|(k, s)| s.queued.as_ref().map(|w| (k.clone(), w.class)))
            .collect();
        for (key, class) in orphans {
            let ticket = self.ready.push(key.clone(), class);
            if let Some(slot) = self.slots.get_mut(&key) {
                slot.ticket = Some(ticket);
            }
        }
        for tp in &tps {
            self.tracker.forget(tp);
        }
        if dropped > 0 {
            tracing::info!(connector = %self.label(), dropped, "queued events of revoked partitions left to the new owner");
        }
    }

    /// Waits for in-flight work up to `grace`; what is left is abandoned (not committed).
    pub(super) async fn drain(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while !self.tasks.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.tasks.join_next_with_id()).await {
                Ok(Some(Ok((id, (key, work, finish))))) => {
                    if let Err(e) = self.finish(id, key, work, finish).await {
                        tracing::error!(connector = %self.label(), error = %e, "error while draining");
                    }
                }
                Ok(Some(Err(e))) if e.is_cancelled() => {}
                Ok(Some(Err(e))) => {
                    tracing::error!(connector = %self.label(), error = %e, "worker panicked while draining")
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(connector = %self.label(), abandoned = self.tasks.len(), "grace period over; abandoning in-flight work (it will be redelivered)");
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        if !self.flush_staged(left).await {
            // The partitions are given up when `run` returns: nothing staged may land after that.
            tracing::warn!(connector = %self.label(), "the ledger's staged writes did not become durable; their events will be redelivered");
            self.abandon_staged().await;
        }
    }

    /// Consumer lag from the broker into the metric and `/status`.
    pub(super) async fn read_lag(&self, sub: &dyn Subscriber) {
        let lag = sub.lag().await;
        for (tp, n) in &lag {
            let partition = tp.partition.to_string();
            self.shared.metrics.consumer_lag.with_label_values(&[self.label(), &tp.topic, &partition]).set(*n);
        }
        self.status.lock().lag =
            lag.into_iter().map(|(tp, n)| (format!("{}[{}]", tp.topic, tp.partition), n)).collect();
    }

    pub(super) fn publish_status(&self, sub: &dyn Subscriber) {
        let mut s = self.status.lock();
        s.partitions = sub.assignment().iter().map(|tp| format!("{}[{}]", tp.topic, tp.partition)).collect();
        s.in_flight = self.in_flight;
        s.buffered = self.buffered;
        s.uncommitted = self
            .tracker
            .uncommitted()
            .into_iter()
            .map(|(tp, n)| (format!("{}[{}]", tp.topic, tp.partition), n))
            .collect();
        s.ledger_writes_failing = self.shared.ledger.write_failure();
        s.pending = self.shared.pending.len();
        s.parked = self.shared.parked.len();
        s.parked_keys = self
            .shared
            .parked
            .snapshot()
            .into_iter()
            .take(50)
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
    }
}
