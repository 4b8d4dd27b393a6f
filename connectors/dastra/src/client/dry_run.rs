//! A client that sends nothing: `dastra-connect plan` runs the sink's own apply code through it.
//! Every request the sink would send is recorded (method and route template) and answered here
//! with what Dastra is predicted to answer from what the ledger knows:
//!
//! - a create answers its own body with a new id (an integer or a UUID, as the collection uses);
//! - a lookup (a list, a `?ref=` search) finds nothing, except an area, which is configuration
//!   and is assumed to exist (the sink caches it in the ledger after one lookup);
//! - `GET GenericRelationships?objectIds=…` lists the links the ledger knows (entries of live
//!   generic links: `POST GenericRelationships` answers no id, so the sink finds a link by its ends
//!   when it first updates or deletes it) and those created in this dry run;
//! - `GET …/{id}` answers the id; PATCH, PUT, DELETE, archive, restore answer 2xx;
//! - `GET Users?q=` and `GET Teams?ref=` / `Teams/{id}` find the assignee (people and teams are
//!   configuration, assumed to exist like areas; an unknown one would go to the DLQ instead);
//! - `GET Workflows/{type}` answers no steps (a DSR state change is then a PATCH, one request like
//!   the workflow move it stands for).
//!
//! These answers are estimates: a real lookup may find what the ledger does not know about, and a
//! PATCH may meet an entity a person deleted in Dastra (one more POST).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::{Call, Payload};

/// One request the sink would have sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRequest {
    /// `GET`, `POST`…
    pub method: &'static str,
    /// The route template, e.g. `POST /v1/ws/{workspaceId}/Assets`.
    pub route: &'static str,
}

/// The record of a dry-run client: what it would have sent.
#[derive(Debug, Clone, Default)]
pub struct DryRun {
    sent: Arc<Mutex<Vec<DryRequest>>>,
    next_id: Arc<AtomicU64>,
    /// Generic relationships Dastra is predicted to hold (as `GenericRelationship` JSON).
    links: Arc<Mutex<Vec<Value>>>,
}

/// Collections whose ids are UUIDs (the others use integers).
const UUID_IDS: [&str; 7] = [
    "Contracts",
    "DataProcessings",
    "DataFields",
    "DataRetentionRules",
    "DataProcessingRelationships",
    "GenericRelationships",
    "DataSubjectAttachments",
];

impl DryRun {
    /// Takes the requests recorded so far.
    pub fn take(&self) -> Vec<DryRequest> {
        std::mem::take(&mut *self.sent.lock())
    }

    /// Requests recorded so far.
    pub fn count(&self) -> usize {
        self.sent.lock().len()
    }

    /// A generic relationship Dastra holds, from a ledger entry's `links` (`from`, `to`,
    /// `fromType`, `toType`, `label`) and its id if known.
    pub fn know_generic_link(&self, id: Option<&str>, links: &std::collections::BTreeMap<String, String>) {
        let id = id.map_or_else(|| self.new_id("/v1/ws/{workspaceId}/GenericRelationships"), |i| json!(i));
        self.links.lock().push(json!({
            "id": id,
            "originType": links.get("fromType"),
            "originId": links.get("from"),
            "target": {"id": links.get("to"), "type": links.get("toType")},
            "label": links.get("label"),
        }));
    }

    fn new_id(&self, route: &str) -> Value {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed) + 1_000_000;
        let collection = route.split('/').nth(4).unwrap_or("");
        if UUID_IDS.contains(&collection) {
            json!(uuid::Uuid::from_u64_pair(0x706c_616e, n).to_string())
        } else {
            json!(n)
        }
    }

    /// Records `call` and answers it.
    pub(crate) fn answer(&self, call: &Call) -> Bytes {
        self.sent.lock().push(DryRequest { method: call.method_label, route: call.route });
        let route = call.route;
        let body = match call.method_label {
            "GET" if route.contains("/Areas") => {
                let r = call.query.iter().find(|(k, _)| k.eq_ignore_ascii_case("ref")).map(|(_, v)| v.clone());
                json!({"items": [{"id": 1, "label": "area", "ref": r}], "total": 1, "page": 1, "size": 1})
            }
            // Assignees: the user named by e-mail and the team named by `ref` are assumed to exist
            // (people and teams are configuration, like areas); one member per team.
            "GET" if route.ends_with("/Users") => {
                let q = call.query.iter().find(|(k, _)| k == "q").map(|(_, v)| v.clone());
                json!({"items": [{"id": 1, "email": q}], "total": 1, "page": 1, "size": 1})
            }
            "GET" if route.ends_with("/Teams") => {
                let r = call.query.iter().find(|(k, _)| k.eq_ignore_ascii_case("ref")).map(|(_, v)| v.clone());
                json!({"items": [{"id": 1, "label": "team", "ref": r}], "total": 1, "page": 1, "size": 1})
            }
            "GET" if route.ends_with("/Teams/{id}") => json!({"id": 1, "label": "team", "users": [1]}),
            "GET" if route.ends_with("/{id}") => {
                let id = call.path.rsplit('/').next().unwrap_or("0");
                let id = id.parse::<i64>().map(Value::from).unwrap_or_else(|_| json!(id));
                json!({"id": id, "label": ""})
            }
            "GET" if route.ends_with("/GenericRelationships") => {
                let ids: Vec<&str> =
                    call.query.iter().filter(|(k, _)| k == "objectIds").map(|(_, v)| v.as_str()).collect();
                let links = self.links.lock();
                Value::Array(
                    links
                        .iter()
                        .filter(|l| l["originId"].as_str().is_some_and(|o| ids.contains(&o)))
                        .cloned()
                        .collect(),
                )
            }
            "POST" if route.ends_with("/GenericRelationships") => {
                if let Payload::Json(b) = &call.payload
                    && let Ok(body) = serde_json::from_slice::<Value>(b)
                {
                    self.links.lock().push(json!({
                        "id": self.new_id(route),
                        "originType": body["originType"],
                        "originId": body["originId"],
                        "target": {"id": body["targetIds"][0], "type": body["targetType"]},
                        "label": body["label"],
                    }));
                }
                return Bytes::new();
            }
            "PUT" | "DELETE" if route.contains("/GenericRelationships/") => {
                let id = call.path.rsplit('/').next().unwrap_or("");
                let mut links = self.links.lock();
                links.retain(|l| l["id"].as_str() != Some(id));
                if call.method_label == "PUT"
                    && let Payload::Json(b) = &call.payload
                    && let Ok(body) = serde_json::from_slice::<Value>(b)
                {
                    links.push(body);
                }
                return Bytes::new();
            }
            "GET"
                if route.contains("Workflows")
                    || route.contains("GenericRelationships")
                    || route.contains("DataProcessingRelationships")
                    || route.contains("DataSubjectAttachments") =>
            {
                json!([])
            }
            "GET" => json!({"items": [], "total": 0}),
            "POST" => {
                let mut v = match &call.payload {
                    Payload::Json(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
                    Payload::Multipart(f, _) => json!({"fileName": f.file_name}),
                    Payload::None => Value::Null,
                };
                match &mut v {
                    Value::Object(m) => {
                        if m.get("id").is_none_or(Value::is_null) {
                            m.insert("id".into(), self.new_id(route));
                        }
                    }
                    _ => v = json!({"id": self.new_id(route)}),
                }
                v
            }
            _ => return Bytes::new(),
        };
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }
}
