//! A worked example of DSAR orchestration on dastra-connect: a small discovery worker.
//!
//! It consumes `<prefix>.events` (the webhook receiver's topic) with the project's own bus client,
//! and for each new data subject request (`DataSubjectCreation`) it
//! 1. looks the requester's e-mail up in a sample customer database (`customers.json`),
//! 2. publishes to `<prefix>.changes.dsr` an update of that request under its own key
//!    (`dastra:dsr:<id>`): the discovery report as an attachment, the state `Closed`
//!    (`closedReason: Accepted`) with a resolution message,
//! 3. publishes to `<prefix>.changes.task` a Task for the DPO team, linked to the request
//!    (`object: dastra:dsr:<id>`), assigned to the DPO team (Dastra team `ref` `dpo`; the sink
//!    assigns it to the team's first member).
//!
//! The Dastra sink applies both; the worker never calls Dastra. Everything it publishes is derived
//! from the webhook's body alone (same body → same events, same versions, same report bytes), so
//! a redelivered or replayed event changes nothing in Dastra.
//!
//! The report travels inside the event (`contentBase64`, with its `sha256`): the worker needs no
//! file server, and the sink uploads it once (a replay finds its hash in the ledger).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use dastra_connect_core::bus::{BusConfig, OutboundMessage, Publisher, SubscriberEvent};
use dastra_connect_core::codec::Codec;
use dastra_connect_core::connector::Topics;
use dastra_connect_core::event::enums::{
    ClosedReason, DataSubjectPurposeType, DataSubjectRequestState, Priority, TaskState,
};
use dastra_connect_core::event::{
    Attachment, ChangeEvent, DataSubjectRequest, EntityKey, EntityKind, Payload, Task, sequence_from_time,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// The CloudEvents source of everything the worker publishes.
pub const SOURCE: &str = "/examples/dsar-discovery";
/// The Dastra team (`ref`) the follow-up task is assigned to.
pub const DPO_TEAM: &str = "dpo";
/// The webhook event that starts the work.
pub const TRIGGER: &str = "DataSubjectCreation";

/// One record of the sample customer database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// The system holding the record (`crm`, `billing`…).
    pub system: String,
    /// Its id there.
    pub id: String,
    /// The e-mail the record is filed under.
    pub email: String,
    /// The name on the record.
    pub name: String,
    /// The personal data it holds.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
}

/// The sample "customer database": records from several systems, searched by e-mail.
#[derive(Debug, Clone, Default)]
pub struct CustomerDb {
    records: Vec<Customer>,
}

impl CustomerDb {
    /// Reads a JSON array of [`Customer`]s.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let records =
            serde_json::from_str(&text).with_context(|| format!("{} is not a customer list", path.display()))?;
        Ok(Self { records })
    }

    /// The bundled sample (`examples/dsar-discovery/customers.json`).
    pub fn sample() -> Self {
        Self::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("customers.json")).unwrap_or_default()
    }

    /// Records filed under `email` (case-insensitive), in file order.
    pub fn find(&self, email: &str) -> Vec<&Customer> {
        let email = email.trim();
        self.records.iter().filter(|c| c.email.eq_ignore_ascii_case(email)).collect()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// No records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// What the worker found for one request: the report attached to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report<'a> {
    /// The Dastra request id.
    pub request_id: i64,
    /// The e-mail searched.
    pub subject_email: &'a str,
    /// Systems searched.
    pub systems_searched: Vec<&'a str>,
    /// The records found.
    pub records: Vec<&'a Customer>,
}

/// The discovery worker: the database and the topics.
#[derive(Clone)]
pub struct Discovery {
    db: CustomerDb,
    topics: Topics,
    codec: Codec,
}

/// The events answering one new request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The request's Dastra id.
    pub request_id: i64,
    /// Records found.
    pub found: usize,
    /// The DSR update (attachment, state) and the Task.
    pub events: Vec<ChangeEvent>,
}

impl Discovery {
    /// A worker searching `db`, publishing under `topics`.
    pub fn new(db: CustomerDb, topics: Topics) -> Self {
        Self { db, topics, codec: Codec::single_object() }
    }

    /// The answer to one `<prefix>.events` message body: `None` for events other than a new
    /// request (updates, tasks…); an error for a body that is not a webhook about a request.
    pub fn answer(&self, body: &[u8]) -> anyhow::Result<Option<Answer>> {
        let hook: Value = serde_json::from_slice(body).context("the event is not JSON")?;
        if hook.get("eventType").and_then(Value::as_str) != Some(TRIGGER) {
            return Ok(None);
        }
        let data = hook.get("data").context("the webhook has no `data`")?;
        let id = data.get("id").and_then(Value::as_i64).context("the request has no integer `id`")?;
        let created = data
            .get("dateCreation")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .context("the request has no `dateCreation`")?;
        let email = data.get("email").and_then(Value::as_str).unwrap_or_default();
        let records = if email.is_empty() { Vec::new() } else { self.db.find(email) };
        let mut systems: Vec<&str> = self.db.records.iter().map(|c| c.system.as_str()).collect();
        systems.sort_unstable();
        systems.dedup();
        let found = records.len();
        let report = Report { request_id: id, subject_email: email, systems_searched: systems, records };
        let content = serde_json::to_vec_pretty(&report)?;
        let file_name = format!("discovery-{id}.json");

        let dsr_key = EntityKey::new("dastra", EntityKind::DataSubjectRequest, &id.to_string())?;
        // One version per request: derived from the webhook, so a replay is the very same event.
        let sequence = sequence_from_time(created, 0);
        let purposes: Vec<DataSubjectPurposeType> = data
            .get("purposes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| serde_json::from_value(p.clone()).ok()).collect())
            .unwrap_or_default();
        let text = |f: &str| data.get(f).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        let dsr = DataSubjectRequest {
            // Title, locale and purposes are what every DSR event carries; they are Dastra's own.
            title: Some(text("title").unwrap_or_else(|| format!("Request {id}"))),
            locale: Some(text("locale").unwrap_or_else(|| "en".into())),
            purposes: if purposes.is_empty() { vec![DataSubjectPurposeType::Access] } else { purposes },
            state: Some(DataSubjectRequestState::Closed),
            closed_reason: Some(ClosedReason::Accepted),
            resolution_message: Some(if found == 0 {
                format!("Discovery found no record filed under {email}.")
            } else {
                format!("Discovery found {found} record(s) filed under {email}; the report is attached.")
            }),
            attachments: vec![attachment(&file_name, &content)],
            ..Default::default()
        };
        let task = Task {
            label: Some(format!("Review discovery results of request {id}")),
            description_html: Some(format!(
                "<p>Discovery found {found} record(s) for request {id}. Check the attached report before answering the requester.</p>"
            )),
            state: Some(TaskState::Open),
            priority: Some(Priority::High),
            object: Some(dsr_key.clone()),
            assigned_team: Some(DPO_TEAM.into()),
            ..Default::default()
        };
        let task_key = EntityKey::new("discovery", EntityKind::Task, &format!("dsr-{id}"))?;
        let events = vec![
            ChangeEvent::new(SOURCE, dsr_key, sequence.clone(), created, Payload::DataSubjectRequest(dsr))?,
            ChangeEvent::new(SOURCE, task_key, sequence, created, Payload::Task(task))?,
        ];
        Ok(Some(Answer { request_id: id, found, events }))
    }

    /// The bus messages of `events` (binary-mode CloudEvents, Avro single-object encoding).
    pub async fn messages(&self, events: &[ChangeEvent]) -> anyhow::Result<Vec<OutboundMessage>> {
        let mut out = Vec::new();
        for e in events {
            let topic = self.topics.changes(e.kind());
            let value = e.encode_value(&self.codec, &topic).await?;
            let mut msg = OutboundMessage::new(topic, Bytes::from(e.key.as_str().to_owned()), Bytes::from(value));
            for (k, v) in e.ce_headers(&self.codec) {
                msg = msg.with_header(k, v.into_bytes());
            }
            out.push(msg);
        }
        Ok(out)
    }

    /// Consumes `<prefix>.events` as consumer group `group` until `shutdown`. Each message is
    /// answered (its events published and acknowledged by the broker) before its offset is
    /// committed: at-least-once, and the sink makes repeats harmless. A message that is not a
    /// webhook about a request is logged and skipped. `on_assigned` is called when partitions are
    /// assigned (tests wait for it).
    pub async fn run(
        &self,
        bus: &BusConfig,
        group: &str,
        shutdown: CancellationToken,
        on_assigned: impl Fn() + Send,
    ) -> anyhow::Result<()> {
        let publisher: Arc<dyn Publisher> = bus.publisher().await?;
        let mut sub = bus.subscriber(group, &[self.topics.dastra_events()]).await?;
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => break,
                e = sub.next_event() => e?,
            };
            let m = match event {
                SubscriberEvent::Message(m) => m,
                SubscriberEvent::Assigned(_) => {
                    on_assigned();
                    continue;
                }
                SubscriberEvent::Revoked(_) => continue,
            };
            match self.answer(m.payload.as_deref().unwrap_or_default()) {
                Ok(Some(answer)) => {
                    publisher.publish_batch(self.messages(&answer.events).await?).await?;
                    tracing::info!(request = answer.request_id, found = answer.found, "request answered");
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(offset = m.offset, error = %e, "event skipped"),
            }
            sub.commit(&m.topic, m.partition, m.next_offset()).await?;
        }
        sub.close().await?;
        Ok(())
    }
}

/// The attachment entry of a report: its content inline (standard Base64) with its SHA-256, which
/// the sink checks and records once uploaded.
pub fn attachment(file_name: &str, content: &[u8]) -> Attachment {
    use base64::Engine as _;
    Attachment {
        file_name: file_name.to_owned(),
        content_type: Some("application/json".into()),
        sha256: Some(hex::encode(Sha256::digest(content))),
        content_base64: Some(base64::engine::general_purpose::STANDARD.encode(content)),
        ..Default::default()
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    // Dastra writes dates with or without a zone (UTC either way).
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::Engine as _;

    fn worker() -> Discovery {
        Discovery::new(CustomerDb::sample(), Topics::default())
    }

    fn inline_of(d: &DataSubjectRequest) -> &str {
        d.attachments[0].content_base64.as_deref().unwrap()
    }

    fn hook(event: &str, email: &str) -> Vec<u8> {
        serde_json::json!({"eventType": event, "date": "2026-12-03T01:00:00Z", "data": {
            "id": 7, "title": "Access", "locale": "en", "purposes": ["Access", "Erasure"], "email": email,
            "dateCreation": "2026-12-03T00:59:59.1234567"}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_new_request_gets_a_closed_update_with_the_report_and_a_linked_task() {
        let w = worker();
        let a = w.answer(&hook("DataSubjectCreation", "JANE.DOE@example.org")).unwrap().unwrap();
        assert_eq!((a.request_id, a.found), (7, 3));
        let [dsr, task] = &a.events[..] else { panic!("{:?}", a.events) };
        assert_eq!(dsr.key.as_str(), "dastra:dsr:7");
        let Payload::DataSubjectRequest(d) = &dsr.data else { panic!() };
        assert_eq!(d.state, Some(DataSubjectRequestState::Closed));
        assert_eq!(d.purposes, [DataSubjectPurposeType::Access, DataSubjectPurposeType::Erasure]);
        assert_eq!(d.attachments[0].file_name, "discovery-7.json");
        assert!(d.attachments[0].url.is_empty(), "inline, no URL");
        let bytes = base64::engine::general_purpose::STANDARD.decode(inline_of(d)).unwrap();
        assert_eq!(d.attachments[0].sha256.as_deref(), Some(hex::encode(Sha256::digest(&bytes)).as_str()));
        let report: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(report["records"].as_array().unwrap().len(), 3);
        let Payload::Task(t) = &task.data else { panic!() };
        assert_eq!(t.object.as_ref().map(EntityKey::as_str), Some("dastra:dsr:7"));
        assert_eq!(t.assigned_team.as_deref(), Some(DPO_TEAM));
        // The same body gives the same events (ids, versions, report bytes).
        let again = w.answer(&hook("DataSubjectCreation", "JANE.DOE@example.org")).unwrap().unwrap();
        assert_eq!(
            again.events.iter().map(|e| &e.id).collect::<Vec<_>>(),
            a.events.iter().map(|e| &e.id).collect::<Vec<_>>()
        );
        let Payload::DataSubjectRequest(d2) = &again.events[0].data else { panic!() };
        assert_eq!(d2.attachments, d.attachments);
    }

    #[test]
    fn other_events_are_ignored_and_garbage_is_an_error() {
        let w = worker();
        assert!(w.answer(&hook("DataSubjectUpdate", "jane.doe@example.org")).unwrap().is_none());
        assert!(w.answer(b"not json").is_err());
        assert!(w.answer(br#"{"eventType":"DataSubjectCreation","data":{"title":"no id"}}"#).is_err());
        let unknown = w.answer(&hook("DataSubjectCreation", "nobody@example.org")).unwrap().unwrap();
        assert_eq!(unknown.found, 0);
    }
}
