//! Events that wait: in the pending store for referenced entities, or held behind a parked key
//! (`parked: wait`); their release when the references appear or the key is un-parked, their
//! expiry into the DLQ, and the DLQ itself.

use super::*;

/// The newest not-yet-applied event of a key, persisted in the pending store: waiting for
/// referenced entities (`missing`), or held behind a parked key (`held`, parked policy `wait`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PendingEntry {
    pub(super) raw: RawMessage,
    pub(super) missing: Vec<String>,
    pub(super) since: chrono::DateTime<chrono::Utc>,
    /// The event's source version (absent in entries written by older builds: treated as older
    /// than anything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sequence: Option<String>,
    /// Held because the key is parked: released when `dlq redrive` un-parks it, never expired.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) held: bool,
}

/// The messages of the events waiting for references in `pending` (not those held behind a parked
/// key), as they were consumed: what `plan` adds to the backlog.
pub(super) fn waiting_messages(pending: &dyn StateStore) -> Vec<InboundMessage> {
    pending
        .snapshot()
        .values()
        .filter_map(|v| serde_json::from_slice::<PendingEntry>(v).ok())
        .filter(|p| !p.held)
        .map(|p| InboundMessage {
            headers: p.raw.header_bytes(),
            topic: p.raw.topic,
            partition: p.raw.partition,
            offset: p.raw.offset,
            key: Bytes::from(p.raw.key),
            payload: p.raw.value,
            timestamp: Some(p.since),
        })
        .collect()
}

impl PendingEntry {
    /// Whether this entry's event is newer than `sequence`.
    pub(super) fn newer_than(&self, sequence: &str) -> bool {
        !order::may_replace_pending(sequence, self.sequence.as_deref())
    }
}

impl Driver {
    /// An event of a parked key, by the `parked` policy: `dlq` sends it to the DLQ (reason
    /// `parked`) so that `dlq redrive` replays it after the failed one; `wait` holds the key's
    /// newest event in the pending store until the key is un-parked. Its offsets are released
    /// once it is durably in one or the other; when neither can be written the loop stops (the
    /// event is redelivered after the restart).
    pub(super) async fn divert_parked(&mut self, key: &EntityKey, work: Work) {
        let kind = work.event.kind().as_str();
        match self.shared.config.parked {
            ParkedPolicy::Dlq => {
                let why = DlqReason {
                    code: "parked".into(),
                    error: format!("{key} is parked behind an earlier failed event; redrive the DLQ in order"),
                    status: None,
                    attempts: 0,
                };
                self.shared.metrics.dlq_events.with_label_values(&[self.label(), "parked"]).inc();
                if self.dead_letter(&work.raw, &why).await {
                    if work.from_pending
                        && let Err(e) = self.shared.pending.delete(key.as_str()).await
                    {
                        self.broken = Some(format!("cannot clear the pending event of {key}: {e}"));
                        return;
                    }
                    self.release(&work);
                }
            }
            ParkedPolicy::Wait => {
                let existing = self.pending_entry(key.as_str());
                if existing.as_ref().is_some_and(|p| p.newer_than(&work.event.sequence)) {
                    // A newer event of the key is already kept (held, or waiting for references):
                    // this one is superseded and must not replace it.
                    self.shared.metrics.events_skipped.with_label_values(&[&self.shared.name, kind, "coalesced"]).inc();
                    self.release(&work);
                    return;
                }
                let entry = PendingEntry {
                    raw: work.raw.clone(),
                    missing: Vec::new(),
                    since: existing.map(|p| p.since).unwrap_or_else(chrono::Utc::now),
                    sequence: Some(work.event.sequence.clone()),
                    held: true,
                };
                let bytes = Bytes::from(serde_json::to_vec(&entry).unwrap_or_default());
                if let Err(e) = self.shared.pending.put(key.as_str(), bytes).await {
                    self.broken = Some(format!("cannot hold the event of parked key {key}: {e}"));
                    return;
                }
                tracing::info!(connector = %self.label(), key = %key, sequence = %work.event.sequence, "event held behind a parked key");
                self.release(&work);
            }
        }
    }

    /// Whether this replica owns the partition an event came in on: only the owner releases or
    /// expires a held event (the pending store is shared by every replica of the sink).
    pub(super) fn owns(&self, raw: &RawMessage) -> bool {
        self.owned.iter().any(|tp| tp.partition == raw.partition && tp.topic == raw.topic)
    }

    pub(super) fn pending_entry(&self, key: &str) -> Option<PendingEntry> {
        serde_json::from_slice(&self.shared.pending.get(key)?).ok()
    }

    pub(super) fn pending_since(&self, key: &EntityKey) -> Option<chrono::DateTime<chrono::Utc>> {
        let raw = self.shared.pending.get(key.as_str())?;
        serde_json::from_slice::<PendingEntry>(&raw).ok().map(|p| p.since)
    }

    /// The key's event was applied (or dead-lettered): its pending entry is done with, unless the
    /// entry holds a newer event (one that arrived out of order), which is kept for its turn.
    pub(super) async fn clear_pending(&mut self, key: &EntityKey, work: &Work) {
        let Some(entry) = self.pending_entry(key.as_str()) else { return };
        if entry.newer_than(&work.event.sequence) {
            if !self.is_parked(key) {
                self.redrive_pending(key.as_str()).await;
            }
            return;
        }
        if let Err(e) = self.shared.pending.delete(key.as_str()).await {
            // Harmless: the entry's event is older than what was applied, so its redrive is
            // skipped as stale.
            tracing::warn!(connector = %self.label(), key = %key, error = %e, "cannot clear a pending event");
        }
        for waiters in self.waiting_on.values_mut() {
            waiters.remove(key.as_str());
        }
    }

    pub(super) fn rebuild_waiting(&mut self) {
        for (k, v) in self.shared.pending.snapshot() {
            if let Ok(p) = serde_json::from_slice::<PendingEntry>(&v) {
                for m in p.missing {
                    self.waiting_on.entry(m).or_default().insert(k.clone());
                }
            }
        }
    }

    /// A key became live: re-drive the pending events that waited for it.
    pub(super) async fn wake_waiting(&mut self, key: &EntityKey) {
        let Some(waiters) = self.waiting_on.remove(key.as_str()) else { return };
        for w in waiters {
            self.redrive_pending(&w).await;
        }
    }

    pub(super) async fn redrive_pending(&mut self, key_text: &str) {
        let Some(raw) = self.shared.pending.get(key_text) else { return };
        let Ok(entry) = serde_json::from_slice::<PendingEntry>(&raw) else { return };
        if !self.owns(&entry.raw) {
            return;
        }
        let Ok(key) = EntityKey::parse(key_text) else { return };
        let headers = entry.raw.header_bytes();
        let value = entry.raw.value.clone().unwrap_or_default();
        if let Ok(event) = ChangeEvent::from_parts(&headers, &value, &self.shared.codec).await {
            let work = Work::new(event, entry.raw, Vec::new(), true);
            let applied = self.shared.ledger.get(&key);
            let known = order::KeyVersions {
                ledger: applied.as_ref(),
                pending: entry.sequence.as_deref(),
                running: self.slots.get(&key).and_then(|s| s.running.as_deref()),
            };
            match order::admit(&work.event.sequence, order::Origin::Pending, known) {
                order::Admission::Admit => {}
                order::Admission::InProgress => return,
                order::Admission::Superseded => {
                    // Applied already (by this or an earlier owner): the entry is done with.
                    if let Err(e) = self.shared.pending.delete(key_text).await {
                        tracing::warn!(connector = %self.label(), key = %key, error = %e, "cannot clear a superseded pending event");
                    }
                    return;
                }
            }
            if self.is_parked(&key) {
                if !entry.held {
                    self.divert_parked(&key, work).await;
                }
                return;
            }
            self.submit(key, work);
        }
    }

    /// Pending events whose references are all in the ledger now (written by this or another
    /// replica) are tried again.
    pub(super) async fn redrive_resolved_pending(&mut self) {
        let ready: Vec<String> = self
            .shared
            .pending
            .snapshot()
            .into_iter()
            .filter_map(|(k, v)| {
                let p: PendingEntry = serde_json::from_slice(&v).ok()?;
                let resolved = if p.held {
                    // Released once `dlq redrive` (or an operator) un-parks the key.
                    self.shared.parked.get(&k).is_none()
                } else {
                    p.missing
                        .iter()
                        .all(|m| EntityKey::parse(m).ok().and_then(|mk| self.shared.ledger.live_id(&mk)).is_some())
                };
                let busy = EntityKey::parse(&k).ok().and_then(|ek| self.slots.get(&ek)).is_some();
                (resolved && !busy && self.owns(&p.raw)).then_some(k)
            })
            .collect();
        for k in ready {
            self.redrive_pending(&k).await;
        }
        self.shared.metrics.pending_references.with_label_values(&[self.label()]).set(self.shared.pending.len() as i64);
        self.shared.metrics.parked_keys.with_label_values(&[self.label()]).set(self.shared.parked.len() as i64);
        self.shared.metrics.ledger_entries.with_label_values(&[self.label()]).set(self.shared.ledger.len() as i64);
    }

    /// Pending events past the deadline go to the DLQ (reason `missing_reference`).
    pub(super) async fn expire_pending(&mut self) {
        let deadline = chrono::Duration::from_std(self.shared.config.pending_deadline).unwrap_or(chrono::Duration::MAX);
        let now = chrono::Utc::now();
        for (k, v) in self.shared.pending.snapshot() {
            let Ok(p) = serde_json::from_slice::<PendingEntry>(&v) else { continue };
            if p.held || now - p.since < deadline || !self.owns(&p.raw) {
                continue;
            }
            if EntityKey::parse(&k).ok().and_then(|ek| self.slots.get(&ek)).is_some() {
                continue;
            }
            let why = DlqReason {
                code: "missing_reference".into(),
                error: format!("referenced entities never appeared: {}", p.missing.join(", ")),
                status: None,
                attempts: 0,
            };
            self.shared.metrics.dlq_events.with_label_values(&[self.label(), "missing_reference"]).inc();
            if self.dead_letter(&p.raw, &why).await
                && let Err(e) = self.shared.pending.delete(&k).await
            {
                tracing::warn!(connector = %self.label(), key = %k, error = %e, "cannot clear an expired pending event");
            }
        }
    }

    /// Publishes to the DLQ, retrying with backoff for about a minute. When the broker still refuses,
    /// the loop stops with an error (the process exits and the event is redelivered from the last
    /// commit): an event that can neither be applied nor dead-lettered is never skipped.
    pub(super) async fn dead_letter(&mut self, raw: &RawMessage, why: &DlqReason) -> bool {
        let msg = dlq_message(&self.shared.dlq_topic, &self.shared.name, raw, why);
        let mut delay = Duration::from_millis(100);
        for _ in 0..20 {
            match self.shared.publisher.publish(msg.clone()).await {
                Ok(_) => return true,
                Err(e) => {
                    tracing::warn!(connector = %self.label(), error = %e, "DLQ publish failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.broken = Some(format!(
            "the DLQ topic {} refuses writes; stopping so the event is redelivered",
            self.shared.dlq_topic
        ));
        false
    }
}
