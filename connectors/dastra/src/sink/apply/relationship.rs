//! Relationships. Between two processings: a `DataProcessingRelationship` (`POST
//! DataProcessingRelationships/{sourceId}` with `element.id` = the other processing; `reverse`
//! swaps the ends). Between actors and assets: a `GenericRelationship` (`POST GenericRelationships`,
//! which answers no body, so the new id is read back from `GET GenericRelationships?objectIds=…`).
//! Both ends are entity keys resolved from the ledger (missing → pending). The ledger entry keeps
//! the relationship's Dastra id and, in `links`, which route holds it (`route`) and the ends it
//! links (`from`, `to`), so updates and deletes reach the right object.
//!
//! `POST GenericRelationships` answers no body, and the new link's id is needed only to update or
//! delete it: it is not read back after the create (most links never change again) but looked up
//! by the ends and label the entry records when the first update or delete needs it. The entry is
//! then `Live` without an id.
//!
//! Requests: create 1 (generic: POST; processing: POST answering the id), update 1 (PUT / POST on
//! the relationship id; +1 GET the first time for a generic link created without reading its id;
//! a change of ends of a processing link is a DELETE + create), delete 1 (+1 GET likewise).

use std::collections::BTreeMap;

use dastra_connect_core::event::{ChangeEvent, EntityKind, Relationship};
use serde_json::{Value, json};

use super::entities::remove;
use super::refs::{Refs, uuid_id};
use super::{ApplyCtx, ApplyError, Outcome, SkipReason};
use crate::model::{
    DataProcessingLight, DataProcessingRelationship, GenericRelationship, GenericRelationshipCreate,
    GenericRelationshipObject, RelationShipObjectType, RelationShipType,
};
use crate::sink::ledger::{EntryState, FieldHashes, LedgerEntry, content_hashes};

const GENERIC: &str = "generic";
const PROCESSING: &str = "processing";

/// What the relationship is in Dastra terms, once both ends are resolved.
struct Link {
    route: &'static str,
    /// Origin id (generic) or source processing id (processing).
    from: String,
    /// Target id (generic) or related processing id (processing).
    to: String,
    from_type: Option<RelationShipObjectType>,
    to_type: Option<RelationShipObjectType>,
    reverse: bool,
    label: Option<String>,
    description: Option<String>,
    relation_type: Option<RelationShipType>,
}

impl Link {
    /// The content hashed into the ledger: every field Dastra holds for the link.
    fn content(&self) -> Value {
        let mut v = json!({"route": self.route, "from": self.from, "to": self.to});
        let fields: [(&str, Option<Value>); 6] = [
            ("fromType", self.from_type.as_ref().map(|t| json!(t))),
            ("toType", self.to_type.as_ref().map(|t| json!(t))),
            ("reverse", (self.route == GENERIC).then_some(json!(self.reverse))),
            ("label", self.label.as_ref().map(|l| json!(l))),
            ("description", self.description.as_ref().map(|d| json!(d))),
            ("relationShipType", self.relation_type.as_ref().map(|t| json!(t))),
        ];
        for (k, val) in fields {
            if let Some(val) = val {
                v[k] = val;
            }
        }
        v
    }

    fn generic_dto(&self, id: uuid::Uuid) -> GenericRelationship {
        GenericRelationship {
            id: Some(id),
            origin_type: self.from_type.clone(),
            origin_id: self.from.clone(),
            target: Some(GenericRelationshipObject { id: self.to.clone(), r#type: self.to_type.clone(), label: None }),
            reverse: Some(self.reverse),
            label: self.label.clone(),
            description: self.description.clone(),
        }
    }

    fn processing_dto(&self) -> Result<DataProcessingRelationship, ApplyError> {
        Ok(DataProcessingRelationship {
            element: Some(DataProcessingLight { id: Some(uuid_id(&self.to)?), ..Default::default() }),
            relation_ship_type: self.relation_type.clone(),
            label: self.label.clone(),
            ..Default::default()
        })
    }

    /// Finds the link in Dastra (after an open intent, or after a POST that answered no id).
    async fn find(&self, ctx: &ApplyCtx<'_>) -> Result<Option<String>, ApplyError> {
        if self.route == PROCESSING {
            let items = ctx.client.list_processing_relationships(uuid_id(&self.from)?).await?;
            let to = uuid_id(&self.to)?;
            return Ok(items
                .iter()
                .rev()
                .find(|r| r.element.as_ref().and_then(|e| e.id) == Some(to))
                .and_then(|r| r.id)
                .map(|i| i.to_string()));
        }
        let items = ctx
            .client
            .list_generic_relationships(
                std::slice::from_ref(&self.from),
                self.from_type.as_ref(),
                self.to_type.as_ref(),
            )
            .await?;
        let ends = |r: &&GenericRelationship| {
            r.origin_id == self.from
                && r.target.as_ref().is_some_and(|t| t.id == self.to)
                && (r.origin_type.is_none() || r.origin_type == self.from_type)
        };
        let candidates: Vec<&GenericRelationship> = items.iter().filter(ends).collect();
        // Several links may join the same ends: prefer the one with this label, newest first.
        let best = candidates.iter().rev().find(|r| r.label == self.label).or_else(|| candidates.last());
        Ok(best.and_then(|r| r.id).map(|i| i.to_string()))
    }

    /// Creates the link; answers its id when Dastra says it, and the requests sent. `POST
    /// GenericRelationships` answers no body: the new id is not read back here (a `GET` per link,
    /// most of which never change again) but by the first update or delete that needs it, with
    /// the same lookup by ends (see [`apply`]).
    async fn create(&self, ctx: &ApplyCtx<'_>) -> Result<(Option<String>, u32), ApplyError> {
        if self.route == PROCESSING {
            let saved = ctx.client.save_processing_relationship(uuid_id(&self.from)?, &self.processing_dto()?).await?;
            if let Some(id) = saved.and_then(|s| s.id) {
                return Ok((Some(id.to_string()), 1));
            }
            let id = self.find(ctx).await?.ok_or_else(no_id)?;
            return Ok((Some(id), 2));
        }
        let body = GenericRelationshipCreate {
            origin_type: self.from_type.clone(),
            origin_id: self.from.clone(),
            target_type: self.to_type.clone(),
            target_ids: Some(vec![self.to.clone()]),
            reverse: Some(self.reverse),
            label: self.label.clone(),
            description: self.description.clone(),
        };
        ctx.client.create_generic_relationship(&body).await?;
        Ok((None, 1))
    }

    /// Writes the whole link onto an existing relationship id (1 request). `Ok(false)` when the id
    /// is gone from Dastra.
    async fn update(&self, ctx: &ApplyCtx<'_>, id: &str) -> Result<bool, ApplyError> {
        let uuid = uuid_id(id)?;
        let result = if self.route == PROCESSING {
            let mut body = self.processing_dto()?;
            body.id = Some(uuid);
            ctx.client.save_processing_relationship(uuid, &body).await.map(|_| ())
        } else {
            ctx.client.update_generic_relationship(uuid, &self.generic_dto(uuid)).await
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.status() == Some(404) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn links(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("route".to_owned(), self.route.to_owned()),
            ("from".to_owned(), self.from.clone()),
            ("to".to_owned(), self.to.clone()),
        ])
    }
}

impl Link {
    /// The ends recorded in a ledger entry's links (route, from, to and the object types): enough
    /// to find the link in Dastra.
    fn from_links(links: &BTreeMap<String, String>) -> Option<Link> {
        let (Some(route), Some(from), Some(to)) = (links.get("route"), links.get("from"), links.get("to")) else {
            return None;
        };
        Some(Link {
            route: if route == PROCESSING { PROCESSING } else { GENERIC },
            from: from.clone(),
            to: to.clone(),
            from_type: links.get("fromType").map(|t| RelationShipObjectType::parse(t)),
            to_type: links.get("toType").map(|t| RelationShipObjectType::parse(t)),
            reverse: false,
            label: links.get("label").cloned(),
            description: None,
            relation_type: None,
        })
    }

    /// The same ends, without the content.
    fn clone_ends(&self) -> Link {
        Link {
            route: self.route,
            from: self.from.clone(),
            to: self.to.clone(),
            from_type: self.from_type.clone(),
            to_type: self.to_type.clone(),
            reverse: self.reverse,
            label: self.label.clone(),
            description: None,
            relation_type: None,
        }
    }
}

fn no_id() -> ApplyError {
    ApplyError::invalid("dastra_no_id", "Dastra accepted the relationship but it cannot be found afterwards")
}

/// Removes a relationship by the route its ledger links name (1 request; 404 = already gone).
async fn delete_link(ctx: &ApplyCtx<'_>, id: &str, links: &BTreeMap<String, String>) -> Result<u32, ApplyError> {
    let uuid = uuid_id(id)?;
    if links.get("route").map(String::as_str) == Some(PROCESSING) {
        ctx.client.delete_processing_relationship(uuid).await?;
    } else {
        ctx.client.delete_generic_relationship(uuid).await?;
    }
    Ok(1)
}

pub(super) async fn apply(
    ctx: &ApplyCtx<'_>,
    event: &ChangeEvent,
    r: &Relationship,
    current: Option<LedgerEntry>,
) -> Result<Outcome, ApplyError> {
    if r.deleted {
        // An open intent is resolved with the ends the intent recorded (a delete may carry none).
        let links = current.as_ref().map(|c| c.links.clone()).unwrap_or_default();
        let find = || {
            let links = links.clone();
            async move {
                let Some(link) = Link::from_links(&links) else {
                    return Ok(None);
                };
                link.find(ctx).await.map_err(|e| match e {
                    ApplyError::Dastra(d) => d,
                    other => crate::error::DastraError::Build { route: "relationship", detail: other.to_string() },
                })
            }
        };
        let links_for_delete = links.clone();
        return remove(ctx, event, current, find, |id, _policy| async move {
            // Dastra cannot archive links: `archive` removes them too.
            delete_link(ctx, &id, &links_for_delete).await
        })
        .await;
    }

    let (Some(origin), Some(target)) = (&r.origin, &r.target) else {
        return Err(ApplyError::invalid("missing_field", "a relationship needs origin and target"));
    };
    let mut refs = Refs::new(ctx.ledger);
    let origin_id = refs.id(origin);
    let target_id = refs.id(target);
    if let Some(p) = refs.pending() {
        return Ok(p);
    }
    let (Some(origin_id), Some(target_id)) = (origin_id, target_id) else {
        // An end was deleted at the source: the link cannot exist in Dastra.
        return Err(ApplyError::invalid("deleted_reference", format!("an end of {} was deleted", event.key)));
    };
    let both_processings = origin.kind() == EntityKind::DataProcessing && target.kind() == EntityKind::DataProcessing;
    let link = if both_processings {
        let (from, to) = if r.reverse { (target_id, origin_id) } else { (origin_id, target_id) };
        Link {
            route: PROCESSING,
            from,
            to,
            from_type: None,
            to_type: None,
            reverse: r.reverse,
            label: r.label.clone(),
            description: None,
            relation_type: Some(
                r.relation_ship_type
                    .as_ref()
                    .map(|t| RelationShipType::parse(&t.to_string()))
                    .unwrap_or(RelationShipType::Related),
            ),
        }
    } else {
        let object_type = |k: EntityKind| {
            k.relationship_object_type().map(RelationShipObjectType::parse).ok_or_else(|| {
                ApplyError::invalid("invalid_value", format!("Dastra cannot link a {k} in a generic relationship"))
            })
        };
        Link {
            route: GENERIC,
            from: origin_id,
            to: target_id,
            from_type: Some(object_type(origin.kind())?),
            to_type: Some(object_type(target.kind())?),
            reverse: r.reverse,
            label: r.label.clone(),
            description: r.description.clone(),
            relation_type: None,
        }
    };
    if r.description.is_some() && both_processings {
        tracing::debug!(key = %event.key, "processing relationships have no description in Dastra; not written");
    }

    let content = link.content();
    let (hash, fields) = content_hashes(&content);
    let mut links = link.links();
    if let Some(t) = &link.from_type {
        links.insert("fromType".into(), t.to_string());
    }
    if let Some(t) = &link.to_type {
        links.insert("toType".into(), t.to_string());
    }
    // The label too: several links may join the same ends, and an entry without an id (a generic
    // link whose id was not read back) is found by them.
    let mut intent_links = links.clone();
    if let Some(label) = &link.label {
        intent_links.insert("label".into(), label.clone());
    }
    let recorded = |id: Option<String>| LedgerEntry {
        state: EntryState::Live,
        links: if id.is_some() { links.clone() } else { intent_links.clone() },
        id,
        version: Some(event.sequence.clone()),
        hash: Some(hash.clone()),
        fields: FieldHashes::from_map(&fields),
        src: None,
        attempt: None,
    };

    let mut requests = 0u32;
    let mut existing: Option<String> = None;
    match current.as_ref().map(|e| (e.state, e)) {
        Some((EntryState::Live, cur)) => {
            if cur.hash.as_deref() == Some(hash.as_str()) {
                let mut entry = cur.clone();
                entry.version = Some(event.sequence.clone());
                return Ok(Outcome::Skipped { reason: SkipReason::Unchanged, entry: Some(entry) });
            }
            let same_place = cur.links.get("route").map(String::as_str) == Some(link.route)
                && (link.route == GENERIC
                    || (cur.links.get("from") == Some(&link.from) && cur.links.get("to") == Some(&link.to)));
            let id = match (&cur.id, Link::from_links(&cur.links)) {
                (Some(id), _) => Some(id.clone()),
                // Created without reading its id back: found by the ends and label it recorded.
                (None, Some(recorded_link)) => {
                    requests += 1;
                    recorded_link.find(ctx).await?
                }
                (None, None) => None,
            };
            match (id, same_place) {
                (Some(id), true) => existing = Some(id),
                (Some(id), false) => {
                    // The link moved to other ends (or kinds): remove the old one, create the new.
                    requests += delete_link(ctx, &id, &cur.links).await?;
                }
                (None, _) => {}
            }
        }
        Some((EntryState::Intent, cur)) => {
            // The attempted create is looked up with the ends the intent recorded (those of the
            // version attempted, which may differ from this one's).
            requests += 1;
            let attempted = Link::from_links(&cur.links).unwrap_or_else(|| link.clone_ends());
            if let Some(id) = attempted.find(ctx).await? {
                let same_place = attempted.route == link.route
                    && (link.route == GENERIC || (attempted.from == link.from && attempted.to == link.to));
                if same_place {
                    existing = Some(id);
                } else {
                    requests += delete_link(ctx, &id, &cur.links).await?;
                }
            }
        }
        Some((EntryState::Deleted, _)) | None => {}
    }
    if let Some(id) = existing {
        requests += 1;
        if link.update(ctx, &id).await? {
            return Ok(Outcome::Applied { entry: recorded(Some(id)), requests });
        }
        tracing::warn!(key = %event.key, id = %id, "relationship vanished from Dastra; creating it again");
    }
    // Intent first (with the ends, so that a later delete can find an ambiguous create).
    // Rewritten when an open intent attempted another version (its ends may differ).
    let open = current.as_ref().filter(|e| e.state == EntryState::Intent);
    if open.is_none_or(|e| e.attempt.as_deref() != Some(event.sequence.as_str()) || e.links != intent_links) {
        let mut intent = LedgerEntry::intent_for(current.as_ref(), &event.sequence);
        intent.links = intent_links.clone();
        ctx.ledger.put(&event.key, &intent).await?;
    }
    let (id, sent) = link.create(ctx).await?;
    Ok(Outcome::Applied { entry: recorded(id), requests: requests + sent })
}
