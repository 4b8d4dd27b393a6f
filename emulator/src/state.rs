//! The shared emulator state (`EmulatorState`, cheap to clone) and the Rust-side observation and
//! control API that tests of other crates use: workspace dumps, counters, request log, fault
//! injection, quota changes, custom-field definitions, webhook deliveries, reset.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde_json::{Value, json};

use crate::auth::Tokens;
use crate::config::{EmulatorConfig, QuotaWindow};
use crate::faults::{FaultRule, Faults};
use crate::observe::{Counters, LoggedRequest, Observer};
use crate::quota::Quota;
use crate::store::{CustomFieldDef, Store, now_string};
use crate::webhooks::{self, Delivery};

pub(crate) struct Inner {
    pub config: EmulatorConfig,
    pub store: Mutex<Store>,
    pub quota: Mutex<Quota>,
    pub faults: Mutex<Faults>,
    pub observer: Mutex<Observer>,
    pub tokens: Mutex<Tokens>,
    pub rng: Mutex<StdRng>,
    pub deliveries: Mutex<Vec<Delivery>>,
    pub http: reqwest::Client,
}

/// Everything the emulator holds. Clones share the same state.
#[derive(Clone)]
pub struct EmulatorState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for EmulatorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorState").field("workspaces", &self.inner.config.workspaces).finish_non_exhaustive()
    }
}

impl EmulatorState {
    /// A fresh emulator: seeded workspaces (each with an Area), no faults, empty log.
    pub fn new(config: EmulatorConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let inner = Inner {
            store: Mutex::new(Store::new(&config)),
            quota: Mutex::new(Quota::new(config.quota.clone())),
            faults: Mutex::new(Faults::new(config.seed.wrapping_add(1))),
            observer: Mutex::new(Observer::new(config.request_log_capacity)),
            tokens: Mutex::new(Tokens::default()),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed.wrapping_add(2))),
            deliveries: Mutex::new(Vec::new()),
            http,
            config,
        };
        Self { inner: Arc::new(inner) }
    }

    /// The configuration the emulator was started with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.inner.config
    }

    /// JSON dump of one workspace: `{id, label, entities: {Family: [dto…]}, customFields, workflows}`.
    pub fn dump_workspace(&self, workspace: i64) -> Option<Value> {
        self.inner.store.lock().dump_workspace(workspace)
    }

    /// JSON dump of everything: `{workspaces: [dump…], webhooks: [...]}`.
    pub fn dump(&self) -> Value {
        let store = self.inner.store.lock();
        let workspaces: Vec<Value> = store.workspaces.keys().filter_map(|id| store.dump_workspace(*id)).collect();
        json!({ "workspaces": workspaces, "webhooks": store.webhooks.values().collect::<Vec<_>>() })
    }

    /// The entities of one family in a workspace, in creation order (`family` case-insensitive).
    pub fn entities(&self, workspace: i64, family: &str) -> Vec<Value> {
        let Some(kind) = crate::entities::kind(family) else { return Vec::new() };
        let store = self.inner.store.lock();
        let Some(c) = store.collection(workspace, kind.name) else { return Vec::new() };
        let mut items: Vec<_> = c.items.values().collect();
        items.sort_by_key(|i| i.seq);
        items.into_iter().map(|i| i.value.clone()).collect()
    }

    /// Request counters by method / route template / status.
    pub fn counters(&self) -> Counters {
        self.inner.observer.lock().counters()
    }

    /// The request log, oldest first.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.inner.observer.lock().log()
    }

    pub(crate) fn record(&self, entry: LoggedRequest) {
        self.inner.observer.lock().record(entry);
    }

    /// Adds a fault rule; `Err` names what is invalid.
    pub fn add_fault(&self, rule: FaultRule) -> Result<(), String> {
        self.inner.faults.lock().add(rule)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.inner.faults.lock().clear();
    }

    /// Active fault rules with their hit counts.
    pub fn faults(&self) -> Vec<(FaultRule, u64)> {
        self.inner.faults.lock().list()
    }

    /// Replaces the quota windows (`vec![]` disables) and forgets usage.
    pub fn set_quota(&self, windows: Vec<QuotaWindow>) {
        self.inner.quota.lock().set_windows(windows);
    }

    /// Quota state of a key (by key name), as `/rate-limiting-state` shows it.
    pub fn quota_state(&self, key_name: &str) -> Value {
        self.inner.quota.lock().state_json(key_name, Instant::now())
    }

    /// Defines the custom fields of a family in a workspace (replacing earlier definitions).
    /// `Err` when the workspace or family is unknown, or the family takes no custom fields.
    pub fn define_custom_fields(&self, workspace: i64, family: &str, defs: Vec<CustomFieldDef>) -> Result<(), String> {
        let kind = crate::entities::kind(family).ok_or_else(|| format!("unknown entity family {family}"))?;
        if !kind.custom_fields {
            return Err(format!("{} takes no custom fields", kind.name));
        }
        let mut store = self.inner.store.lock();
        let ws = store.workspaces.get_mut(&workspace).ok_or_else(|| format!("unknown workspace {workspace}"))?;
        ws.custom_fields.insert(kind.name.to_string(), defs);
        Ok(())
    }

    /// Adds a workspace user (a `UserDto` with at least `email`); answers it with its new id.
    /// Dastra's API cannot create users (docs/dastra-api.md §3.9): tests and demos seed them here.
    pub fn add_user(&self, workspace: i64, user: Value) -> Result<Value, String> {
        let Value::Object(mut user) = user else { return Err("a user is a JSON object".into()) };
        let email = user.get("email").and_then(Value::as_str).map(str::trim).unwrap_or_default().to_owned();
        if !email.contains('@') {
            return Err("a user needs an e-mail".into());
        }
        let mut store = self.inner.store.lock();
        if !store.workspaces.contains_key(&workspace) {
            return Err(format!("unknown workspace {workspace}"));
        }
        let taken = store.collection(workspace, "Users").is_some_and(|c| {
            c.items.values().any(|i| i.value["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(&email)))
        });
        if taken {
            return Err(format!("a user with e-mail {email} exists"));
        }
        let id = store
            .new_id(workspace, "Users", crate::entities::IdType::Int)
            .ok_or_else(|| format!("unknown workspace {workspace}"))?;
        let now = now_string();
        user.insert("id".into(), id.to_json());
        user.entry("displayName").or_insert_with(|| json!(email.clone()));
        user.entry("active").or_insert(json!(true));
        user.entry("tenantId").or_insert(json!(1));
        user.insert("dateCreation".into(), json!(now));
        user.insert("dateUpdate".into(), json!(now));
        let value = Value::Object(user);
        let seq = store.next_seq();
        let c = store.collection_mut(workspace, "Users").ok_or_else(|| format!("unknown workspace {workspace}"))?;
        c.items.insert(id, crate::store::Item { seq, value: value.clone() });
        Ok(value)
    }

    /// Webhook deliveries attempted so far.
    pub fn webhook_deliveries(&self) -> Vec<Delivery> {
        self.inner.deliveries.lock().clone()
    }

    /// Back to the start state: data re-seeded, no faults, empty log and counters, quota usage and
    /// tokens forgotten, quota windows back to the config's.
    pub fn reset(&self) {
        *self.inner.store.lock() = Store::new(&self.inner.config);
        self.inner.faults.lock().clear();
        self.inner.observer.lock().clear();
        self.inner.tokens.lock().clear();
        self.inner.quota.lock().set_windows(self.inner.config.quota.clone());
        self.inner.deliveries.lock().clear();
        *self.inner.rng.lock() = StdRng::seed_from_u64(self.inner.config.seed.wrapping_add(2));
    }

    /// A random hex token from the seeded randomness.
    pub(crate) fn random_token(&self) -> String {
        let mut bytes = [0u8; 24];
        self.inner.rng.lock().fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Emits a webhook event of a workspace to every subscription that wants it.
    pub(crate) fn emit(&self, workspace: i64, event: &str, data: Value) {
        let targets: Vec<(i64, String, String)> = {
            let store = self.inner.store.lock();
            store
                .webhooks
                .values()
                .filter(|w| !w["inError"].as_bool().unwrap_or(false))
                .filter(|w| w["workSpaceId"].as_i64().is_none_or(|ws| ws == workspace))
                .filter(|w| {
                    w["subscribedEvents"].as_array().is_some_and(|e| e.iter().any(|e| e.as_str() == Some(event)))
                })
                .filter_map(|w| {
                    Some((w["id"].as_i64()?, w["url"].as_str()?.to_string(), w["signatureKey"].as_str()?.to_string()))
                })
                .collect()
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        for (id, url, key) in targets {
            let body = webhooks::payload(id, &url, 1, event, &data, &now_string());
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let signature = webhooks::sign(&key, &bytes);
            let state = self.clone();
            let event = event.to_string();
            let delay = self.inner.config.webhook_delay;
            runtime.spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let (status, error) = webhooks::send(&state.inner.http, &url, bytes.clone(), &signature).await;
                state.after_delivery(id, error.as_deref());
                state.inner.deliveries.lock().push(Delivery {
                    webhook_id: id,
                    event_type: event,
                    url,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                    signature,
                    status,
                    ok: error.is_none(),
                    error,
                });
            });
        }
    }

    fn after_delivery(&self, webhook: i64, error: Option<&str>) {
        let Some(error) = error else { return };
        let max = u64::from(self.inner.config.webhook_max_errors);
        let mut store = self.inner.store.lock();
        if let Some(w) = store.webhooks.get_mut(&webhook).and_then(Value::as_object_mut) {
            // Errors are cumulative until the subscription is re-saved (docs/dastra-api.md §7 #12 default).
            let n = w.get("nbErrors").and_then(Value::as_u64).unwrap_or(0) + 1;
            w.insert("nbErrors".into(), json!(n));
            w.insert("errorMessage".into(), json!(error));
            w.insert("dateLastError".into(), json!(now_string()));
            if n > max {
                w.insert("inError".into(), json!(true));
            }
        }
    }
}
