//! In-memory data of the emulated organisation: workspaces, their entity collections (stored as the
//! full DTO JSON), custom-field definitions, workflow steps, and the tenant-level webhook list.

use std::collections::BTreeMap;
use std::fmt;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::EmulatorConfig;
use crate::entities::{IdType, KINDS};

/// An entity id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Id {
    /// int32 id.
    Int(i64),
    /// uuid id.
    Uuid(uuid::Uuid),
}

impl Id {
    /// Parses a path segment or JSON value as an id of the given type.
    pub fn parse(ty: IdType, text: &str) -> Option<Self> {
        match ty {
            IdType::Int => text.trim().parse::<i32>().ok().map(|i| Self::Int(i64::from(i))),
            IdType::Uuid => uuid::Uuid::parse_str(text.trim()).ok().map(Self::Uuid),
        }
    }

    /// Parses a JSON value (number or string) as an id.
    pub fn from_json(ty: IdType, value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) if ty == IdType::Int => n.as_i64().map(Self::Int),
            Value::String(s) => Self::parse(ty, s),
            _ => None,
        }
    }

    /// The JSON form (number or lower-case hyphenated uuid).
    pub fn to_json(self) -> Value {
        match self {
            Self::Int(i) => json!(i),
            Self::Uuid(u) => json!(u.to_string()),
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Uuid(u) => write!(f, "{u}"),
        }
    }
}

/// A stored entity: its creation sequence number and its DTO.
#[derive(Debug, Clone)]
pub struct Item {
    /// Creation order across the whole store (sort key for uuid-keyed families).
    pub seq: u64,
    /// The entity as Dastra would return it (before response shaping).
    pub value: Value,
}

/// One entity family of one workspace.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    /// Items by id.
    pub items: BTreeMap<Id, Item>,
    next_int: i64,
}

/// Type of a custom field (CF: the types Dastra offers).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum CustomFieldType {
    /// Short text (≤ 255 characters in the emulator).
    ShortText,
    /// Long text.
    LongText,
    /// Rich text (HTML).
    RichText,
    /// Integer.
    Integer,
    /// Decimal number.
    Decimal,
    /// Date (`YYYY-MM-DD` or ISO date-time).
    Date,
    /// Date-time (ISO).
    DateTime,
    /// Several checkboxes (array of option values).
    MultiCheckbox,
    /// One radio choice among options.
    SingleChoice,
    /// One value among options.
    SingleSelect,
    /// Several values among options.
    MultiSelect,
    /// Boolean.
    YesNo,
}

/// A custom-field definition of a workspace for one entity family.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CustomFieldDef {
    /// The variable name (the key in `customFields`).
    pub key: String,
    /// Value type.
    #[serde(rename = "type")]
    pub field_type: CustomFieldType,
    /// Whether a value is mandatory on create / replace.
    #[serde(default)]
    pub required: bool,
    /// Allowed values for choice / select / checkbox types.
    #[serde(default)]
    pub options: Vec<String>,
}

/// One workspace and everything in it.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Workspace id.
    pub id: i64,
    /// Label.
    pub label: String,
    /// Collections by family name (`Kind::name`).
    pub collections: BTreeMap<&'static str, Collection>,
    /// Custom-field definitions by family name.
    pub custom_fields: BTreeMap<String, Vec<CustomFieldDef>>,
    /// Workflow steps (`WorkFlowStepDto`).
    pub workflows: Vec<Value>,
}

/// The whole emulated organisation.
pub struct Store {
    /// Workspaces by id.
    pub workspaces: BTreeMap<i64, Workspace>,
    /// Tenant-level webhook subscriptions (`WebHookUrlDto`) by id.
    pub webhooks: BTreeMap<i64, Value>,
    next_webhook: i64,
    seq: u64,
    rng: StdRng,
}

/// Current time in Dastra's format: ISO-8601 with 7 fractional digits, in UTC with `Z`
/// (docs/dastra-api.md §7 #16: decided once; the `Z` keeps it RFC 3339 for schema validators).
pub fn now_string() -> String {
    format_time(chrono::Utc::now())
}

/// Formats a UTC time like [`now_string`] (chrono has no 7-digit fraction specifier).
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::Timelike;
    format!("{}.{:07}Z", t.format("%Y-%m-%dT%H:%M:%S"), t.nanosecond() % 1_000_000_000 / 100)
}

impl Store {
    /// A store seeded from the config: each workspace gets an Area (id 1, an `Entity`) and workflow
    /// steps for DSRs, Tasks, DataProcessings and DataBreaches.
    pub fn new(config: &EmulatorConfig) -> Self {
        let mut store = Self {
            workspaces: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            next_webhook: 1,
            seq: 0,
            rng: StdRng::seed_from_u64(config.seed),
        };
        for seed in &config.workspaces {
            let mut ws = Workspace {
                id: seed.id,
                label: seed.label.clone(),
                collections: KINDS.iter().map(|k| (k.name, Collection::default())).collect(),
                custom_fields: BTreeMap::new(),
                workflows: default_workflows(),
            };
            let area_id = store.next_int(&mut ws, "Areas");
            let seq = store.next_seq();
            if let Some(c) = ws.collections.get_mut("Areas") {
                c.items.insert(
                    Id::Int(area_id),
                    Item {
                        seq,
                        value: json!({
                            "id": area_id, "type": "Entity", "label": "Default entity", "ref": "default",
                            "countryCode": "FR", "order": 0, "children": [], "teams": []
                        }),
                    },
                );
            }
            store.workspaces.insert(seed.id, ws);
        }
        store
    }

    /// Next creation sequence number.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Allocates the next int id of a family in a workspace.
    pub fn next_int(&mut self, ws: &mut Workspace, kind: &'static str) -> i64 {
        let c = ws.collections.entry(kind).or_default();
        c.next_int += 1;
        c.next_int
    }

    /// A uuid from the seeded randomness (v4 layout).
    pub fn next_uuid(&mut self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// Allocates an id of the given type for a family.
    pub fn new_id(&mut self, ws_id: i64, kind: &'static str, ty: IdType) -> Option<Id> {
        match ty {
            IdType::Uuid => Some(Id::Uuid(self.next_uuid())),
            IdType::Int => {
                let ws = self.workspaces.get_mut(&ws_id)?;
                let c = ws.collections.entry(kind).or_default();
                c.next_int += 1;
                Some(Id::Int(c.next_int))
            }
        }
    }

    /// Allocates a webhook id.
    pub fn next_webhook_id(&mut self) -> i64 {
        let id = self.next_webhook;
        self.next_webhook += 1;
        id
    }

    /// A collection of a workspace.
    pub fn collection(&self, ws: i64, kind: &str) -> Option<&Collection> {
        self.workspaces.get(&ws)?.collections.get(kind)
    }

    /// A mutable collection of a workspace.
    pub fn collection_mut(&mut self, ws: i64, kind: &str) -> Option<&mut Collection> {
        self.workspaces.get_mut(&ws)?.collections.get_mut(kind)
    }

    /// One entity.
    pub fn get(&self, ws: i64, kind: &str, id: Id) -> Option<&Value> {
        self.collection(ws, kind)?.items.get(&id).map(|i| &i.value)
    }

    /// JSON dump of a workspace: `{id, label, entities: {Family: [dto…]}, customFields, workflows}`.
    pub fn dump_workspace(&self, ws: i64) -> Option<Value> {
        let w = self.workspaces.get(&ws)?;
        let entities: serde_json::Map<String, Value> = w
            .collections
            .iter()
            .map(|(name, c)| {
                let mut items: Vec<&Item> = c.items.values().collect();
                items.sort_by_key(|i| i.seq);
                (name.to_string(), Value::Array(items.into_iter().map(|i| i.value.clone()).collect()))
            })
            .collect();
        Some(json!({
            "id": w.id,
            "label": w.label,
            "entities": entities,
            "customFields": w.custom_fields,
            "workflows": w.workflows,
        }))
    }
}

fn default_workflows() -> Vec<Value> {
    let mut steps = Vec::new();
    let mut id = 0;
    for (ty, names) in [
        ("DataSubject", &["New", "In progress", "Done"]),
        ("Task", &["To do", "Doing", "Done"]),
        ("DataProcessing", &["Draft", "Review", "Published"]),
        ("DataBreach", &["Open", "Investigating", "Closed"]),
    ] {
        for (order, (label, state)) in names.iter().zip(["Open", "Active", "Closed"]).enumerate() {
            id += 1;
            steps.push(json!({
                "id": id, "label": label, "color": "#3366ff", "order": order, "type": ty,
                "finalStep": order == 2, "initialStep": order == 0, "mappedState": state
            }));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_has_seven_digits_and_parses() {
        let s = now_string();
        assert_eq!(s.len(), "2023-09-18T10:31:30.6882299Z".len(), "{s}");
        assert!(chrono::DateTime::parse_from_rfc3339(&s).is_ok());
    }

    #[test]
    fn store_is_seeded_with_an_area() {
        let store = Store::new(&EmulatorConfig::default());
        assert!(store.get(1, "Areas", Id::Int(1)).is_some());
    }
}
