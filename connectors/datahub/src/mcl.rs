//! [`DataHubRule`]: reads DataHub's MetadataChangeLog (MCL) records for the topic reader of
//! `dastra-connect-debezium` (consume, decode, map, publish, commit are the reader's).
//!
//! An MCL record reports one **aspect** of one entity (`entityUrn`, `aspectName`, `aspect` as
//! `GenericAspect {value: JSON bytes, contentType}`). A Dastra DataField needs two of them at once
//! (a field's tags may sit in `schemaMetadata`, written by ingestion, or in
//! `editableSchemaMetadata`, written in the UI), so the rule remembers, per entity URN, the latest
//! of each aspect it reads (reduced to what the mapping uses) in a state store on the bus, and
//! hands the mapping the **merged entity**: for a dataset its platform, name, env, description and
//! fields (each with the union of its tags and glossary terms from both aspects); for a data
//! platform its `dataPlatformInfo`. What it remembers is saved when the batch is acknowledged,
//! before the offsets are committed ([`RecordRule::save`]).
//!
//! - `changeType: DELETE` of the entity (no `aspectName`, or its key aspect `…Key`) and the
//!   `status` aspect with `removed: true` delete every entity the URN produced; `removed: false`
//!   brings them back. A DELETE of another aspect forgets that aspect and re-maps the rest.
//! - The version is the change's time (`created.time`, else `systemMetadata.lastObserved`, else
//!   the Kafka timestamp) with the record's offset as tie-breaker. An aspect older than the one
//!   remembered is skipped (an older copy never overwrites a newer one).
//! - A **data job** (`dataJob`: `dataJobInfo`, `editableDataJobProperties`, `dataJobInputOutput`)
//!   is handed to the mapping with the datasets it reads and writes, each as the merged dataset
//!   this rule remembers (so the mapping can tell a classified one), or only its URN when none of
//!   its aspects was read.
//!   Each dataset remembers the jobs naming it; when its fields (tags, terms) change, or it
//!   appears or goes, those jobs are mapped again ([`Change::also`]) with a version just above
//!   their latest ([`bump`]): a job read before its tables (another partition) gets their datasets.
//! - Entity types other than `dataset`, `dataPlatform` and `dataJob`, and aspects the mapping does not use,
//!   are skipped without state or events (the MCL topic carries every change DataHub makes).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use dastra_connect_core::bus::InboundMessage;
use dastra_connect_core::event::{cmp_sequence, sequence_from_time};
use dastra_connect_core::source::SourceError;
use dastra_connect_core::state::StateStore;
use dastra_connect_debezium::reader::{Change, RecordRule, Reject, Row, SaveFuture};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Entity type of datasets.
pub const DATASET: &str = "dataset";
/// Entity type of data platforms.
pub const DATA_PLATFORM: &str = "dataPlatform";

/// The aspects read for datasets.
pub const DATASET_ASPECTS: &[&str] =
    &["schemaMetadata", "editableSchemaMetadata", "datasetProperties", "editableDatasetProperties", "status"];
/// The aspects read for data platforms.
pub const PLATFORM_ASPECTS: &[&str] = &["dataPlatformInfo", "status"];
/// Entity type of data jobs (a task of a pipeline: an Airflow task, a dbt model run…).
pub const DATA_JOB: &str = "dataJob";
/// The aspects read for data jobs.
pub const JOB_ASPECTS: &[&str] = &["dataJobInfo", "editableDataJobProperties", "dataJobInputOutput", "status"];

/// One remembered aspect: its version, and its reduced value (`None`: deleted at that version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    seq: String,
    value: Option<Value>,
}

/// What is remembered of an entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct EntityState {
    /// Latest aspects by name.
    #[serde(default)]
    aspects: BTreeMap<String, Stored>,
    /// The version of the entity's delete, while it stays deleted.
    #[serde(default)]
    deleted: Option<String>,
    /// Datasets: the data jobs whose lineage names this dataset (re-mapped when its fields change).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    jobs: BTreeSet<String>,
    /// Data jobs: the version of the job's latest event when a dataset change re-mapped it (the
    /// job's next events must be newer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    followed: Option<String>,
}

/// Reads MCL records; see the module doc.
pub struct DataHubRule {
    store: Arc<dyn StateStore>,
    /// Entities changed by the batch being read, saved by [`RecordRule::save`].
    pending: Mutex<HashMap<String, EntityState>>,
}

impl DataHubRule {
    /// A rule remembering aspects in `store`.
    pub fn new(store: Arc<dyn StateStore>) -> DataHubRule {
        DataHubRule { store, pending: Mutex::new(HashMap::new()) }
    }

    fn state(&self, urn: &str) -> EntityState {
        if let Some(s) = self.pending.lock().get(urn) {
            return s.clone();
        }
        self.store.get(urn).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn remember(&self, urn: &str, state: EntityState) {
        self.pending.lock().insert(urn.to_owned(), state);
    }
}

fn reject(code: &'static str, msg: impl Into<String>) -> Reject {
    (code, msg.into())
}

/// The change's time in epoch milliseconds: `created.time`, else `systemMetadata.lastObserved`
/// (0 means unset), else the message timestamp.
fn change_time(value: &Value, msg: &InboundMessage) -> Option<DateTime<Utc>> {
    let ms = |v: &Value| v.as_i64().filter(|t| *t > 0);
    ms(&value["created"]["time"])
        .or_else(|| ms(&value["systemMetadata"]["lastObserved"]))
        .and_then(DateTime::from_timestamp_millis)
        .or(msg.timestamp)
}

/// The JSON document of a `GenericAspect`: `value` is bytes (base64 text once decoded from Avro,
/// or the JSON text itself when the MCL came as JSON).
pub fn aspect_json(aspect: &Value) -> Result<Value, Reject> {
    let content_type = aspect["contentType"].as_str().unwrap_or("application/json");
    if content_type != "application/json" {
        return Err(reject(
            "unsupported_aspect",
            format!("aspect contentType {content_type:?} (only application/json)"),
        ));
    }
    let text = aspect["value"].as_str().ok_or_else(|| reject("invalid_aspect", "aspect.value is not bytes or text"))?;
    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text)
        && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
        && v.is_object()
    {
        return Ok(v);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(reject("invalid_aspect", "aspect.value is not a JSON object")),
    }
}

fn urns(list: &Value, field: &str) -> Vec<Value> {
    list.as_array()
        .map(|a| a.iter().filter_map(|t| t[field].as_str()).map(|s| Value::String(s.to_owned())).collect())
        .unwrap_or_default()
}

/// A field's name from its path: v2 paths (`[version=2.0].[type=struct].address.[type=string].zip`)
/// without their `[…]` segments (`address.zip`); v1 paths as they are.
pub fn field_name(path: &str) -> String {
    let mut bare = String::with_capacity(path.len());
    let mut depth = 0usize;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            c if depth == 0 => bare.push(c),
            _ => {}
        }
    }
    bare.split('.').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(".")
}

/// A schema field (`SchemaField` or `EditableSchemaFieldInfo`) reduced to what the mapping uses.
fn reduce_field(f: &Value) -> Result<Value, Reject> {
    let path = f["fieldPath"]
        .as_str()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| reject("invalid_aspect", "a schema field has no fieldPath"))?;
    let mut out = Map::new();
    out.insert("fieldPath".into(), json!(path));
    for k in ["description", "nativeDataType", "nullable", "isPartOfKey", "label"] {
        if !f[k].is_null() {
            out.insert(k.into(), f[k].clone());
        }
    }
    // SchemaFieldDataType {type: union}: the union's branch name, e.g. `com.linkedin.schema.StringType`.
    if let Some(branch) = f["type"]["type"].as_object().and_then(|o| o.keys().next()) {
        out.insert("type".into(), json!(branch.rsplit('.').next().unwrap_or(branch)));
    }
    out.insert("tags".into(), Value::Array(urns(&f["globalTags"]["tags"], "tag")));
    out.insert("terms".into(), Value::Array(urns(&f["glossaryTerms"]["terms"], "urn")));
    Ok(Value::Object(out))
}

fn reduce_fields(list: &Value, what: &str) -> Result<Value, Reject> {
    match list {
        Value::Null => Ok(json!([])),
        Value::Array(items) => items.iter().map(reduce_field).collect::<Result<Vec<_>, _>>().map(Value::Array),
        _ => Err(reject("invalid_aspect", format!("{what} is not an array"))),
    }
}

/// An aspect reduced to what the mapping uses (the rest, e.g. a table's full DDL, is not kept).
fn reduce(aspect: &str, v: &Value) -> Result<Value, Reject> {
    let pick = |keys: &[&str]| {
        Value::Object(keys.iter().filter(|k| !v[**k].is_null()).map(|k| ((*k).to_owned(), v[*k].clone())).collect())
    };
    Ok(match aspect {
        "schemaMetadata" => json!({
            "schemaName": v["schemaName"], "platform": v["platform"],
            "fields": reduce_fields(&v["fields"], "schemaMetadata.fields")?,
        }),
        "editableSchemaMetadata" => json!({
            "fields": reduce_fields(&v["editableSchemaFieldInfo"], "editableSchemaMetadata.editableSchemaFieldInfo")?,
        }),
        "status" => json!({"removed": v["removed"].as_bool().unwrap_or(false)}),
        "datasetProperties" => pick(&["name", "qualifiedName", "description", "externalUrl"]),
        "editableDatasetProperties" => pick(&["description"]),
        "dataPlatformInfo" => pick(&["name", "displayName", "type", "logoUrl", "datasetNameDelimiter"]),
        "dataJobInfo" => pick(&["name", "description", "flowUrn", "externalUrl"]),
        "editableDataJobProperties" => pick(&["description"]),
        // The deprecated URN arrays and their `…Edges` successors (`destinationUrn`), united.
        "dataJobInputOutput" => json!({
            "inputs": lineage_urns(v, "inputDatasets", "inputDatasetEdges")?,
            "outputs": lineage_urns(v, "outputDatasets", "outputDatasetEdges")?,
            "inputJobs": lineage_urns(v, "inputDatajobs", "inputDatajobEdges")?,
        }),
        _ => v.clone(),
    })
}

/// The URNs of a lineage list of `dataJobInputOutput`: the deprecated array of URNs and the
/// array of `Edge {destinationUrn}` that replaces it, united in order.
fn lineage_urns(v: &Value, urns_key: &str, edges_key: &str) -> Result<Value, Reject> {
    let mut out: Vec<Value> = Vec::new();
    let mut push = |u: &str| {
        if !u.is_empty() && !out.iter().any(|o| o == u) {
            out.push(json!(u));
        }
    };
    for (key, edge) in [(urns_key, false), (edges_key, true)] {
        match &v[key] {
            Value::Null => {}
            Value::Array(items) => {
                for item in items {
                    let urn = if edge { item["destinationUrn"].as_str() } else { item.as_str() };
                    push(urn.ok_or_else(|| {
                        reject("invalid_aspect", format!("dataJobInputOutput.{key} holds an entry without a URN"))
                    })?);
                }
            }
            _ => return Err(reject("invalid_aspect", format!("dataJobInputOutput.{key} is not an array"))),
        }
    }
    Ok(Value::Array(out))
}

/// `urn:li:dataJob:(urn:li:dataFlow:(<orchestrator>,<flowId>,<cluster>),<jobId>)` → (flow URN,
/// orchestrator, flow id, cluster, job id).
pub fn parse_job_urn(urn: &str) -> Option<(String, String, String, String, String)> {
    let inner = urn.strip_prefix("urn:li:dataJob:(")?.strip_suffix(')')?;
    let flow_end = inner.find("),")?;
    let flow = &inner[..=flow_end];
    let job = &inner[flow_end + 2..];
    let parts = flow.strip_prefix("urn:li:dataFlow:(")?.strip_suffix(')')?;
    let (orchestrator, rest) = parts.split_once(',')?;
    let (flow_id, cluster) = rest.rsplit_once(',')?;
    (!orchestrator.is_empty() && !flow_id.is_empty() && !job.is_empty())
        .then(|| (flow.to_owned(), orchestrator.to_owned(), flow_id.to_owned(), cluster.to_owned(), job.to_owned()))
}

/// `urn:li:dataset:(urn:li:dataPlatform:<platform>,<name>,<env>)` → (platform, name, env).
pub fn parse_dataset_urn(urn: &str) -> Option<(String, String, String)> {
    let inner = urn.strip_prefix("urn:li:dataset:(")?.strip_suffix(')')?;
    let (platform, rest) = inner.split_once(',')?;
    let (name, env) = rest.rsplit_once(',')?;
    let platform = platform.strip_prefix("urn:li:dataPlatform:").unwrap_or(platform);
    (!platform.is_empty() && !name.is_empty()).then(|| (platform.to_owned(), name.to_owned(), env.to_owned()))
}

fn aspect<'a>(state: &'a EntityState, name: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    state.aspects.get(name).and_then(|s| s.value.as_ref()).unwrap_or(&NULL)
}

fn nz(v: &Value) -> Option<&Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        other => Some(other),
    }
}

fn union(a: &Value, b: &Value) -> Value {
    let mut out: Vec<Value> = a.as_array().cloned().unwrap_or_default();
    for v in b.as_array().into_iter().flatten() {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    Value::Array(out)
}

/// The dataset the mapping reads: the fields of `schemaMetadata` in their order, then those only
/// `editableSchemaMetadata` knows; an edited description wins; tags and terms are the union.
fn dataset_row(urn: &str, state: &EntityState) -> Result<Value, Reject> {
    let (platform, name, env) = parse_dataset_urn(urn)
        .ok_or_else(|| reject("invalid_urn", format!("{urn:?} is not a dataset URN (platform, name, env)")))?;
    let schema = aspect(state, "schemaMetadata");
    let editable = aspect(state, "editableSchemaMetadata");
    let edited: HashMap<&str, &Value> = editable["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f["fieldPath"].as_str()?, f)))
        .collect();
    let mut fields = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in schema["fields"].as_array().into_iter().flatten() {
        let Some(path) = f["fieldPath"].as_str() else { continue };
        if !seen.insert(path.to_owned()) {
            continue;
        }
        let mut merged = f.clone();
        if let Some(e) = edited.get(path) {
            if let Some(d) = nz(&e["description"]) {
                merged["description"] = d.clone();
            }
            merged["tags"] = union(&f["tags"], &e["tags"]);
            merged["terms"] = union(&f["terms"], &e["terms"]);
        }
        merged["name"] = json!(field_name(path));
        fields.push(merged);
    }
    for f in editable["fields"].as_array().into_iter().flatten() {
        let Some(path) = f["fieldPath"].as_str() else { continue };
        if seen.insert(path.to_owned()) {
            let mut only = f.clone();
            only["name"] = json!(field_name(path));
            fields.push(only);
        }
    }
    let props = aspect(state, "datasetProperties");
    let description = nz(&aspect(state, "editableDatasetProperties")["description"])
        .or_else(|| nz(&props["description"]))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(json!({
        "urn": urn, "entityType": DATASET, "platform": platform, "name": name, "env": env,
        "displayName": props["name"], "description": description, "fields": fields,
    }))
}

fn platform_row(urn: &str, state: &EntityState) -> Value {
    let name = urn.strip_prefix("urn:li:dataPlatform:").unwrap_or(urn);
    json!({"urn": urn, "entityType": DATA_PLATFORM, "name": name, "info": aspect(state, "dataPlatformInfo")})
}

impl DataHubRule {
    /// The data job the mapping reads: its names, and each dataset it reads or writes as the
    /// mapping sees a dataset (`dataset_row`, `known: true`) when this source has read one of its
    /// aspects and it is not deleted, else only its URN's parts (`known: false`).
    fn job_row(&self, urn: &str, state: &EntityState) -> Result<Value, Reject> {
        let (flow, orchestrator, flow_id, cluster, job_id) = parse_job_urn(urn)
            .ok_or_else(|| reject("invalid_urn", format!("{urn:?} is not a data job URN (flow, job id)")))?;
        let info = aspect(state, "dataJobInfo");
        let io = aspect(state, "dataJobInputOutput");
        let description = nz(&aspect(state, "editableDataJobProperties")["description"])
            .or_else(|| nz(&info["description"]))
            .cloned()
            .unwrap_or(Value::Null);
        let datasets = |key: &str| -> Value {
            let rows = io[key].as_array().into_iter().flatten().filter_map(Value::as_str).map(|d| {
                let ds = self.state(d);
                let gone = ds.deleted.is_some() || aspect(&ds, "status")["removed"] == json!(true);
                match dataset_row(d, &ds) {
                    Ok(mut row) if !gone && !ds.aspects.is_empty() => {
                        row["known"] = json!(true);
                        row
                    }
                    _ => {
                        let (platform, name, env) = parse_dataset_urn(d).unwrap_or_default();
                        json!({"urn": d, "entityType": DATASET, "platform": platform, "name": name, "env": env,
                               "known": false, "fields": []})
                    }
                }
            });
            Value::Array(rows.collect())
        };
        Ok(json!({
            "urn": urn, "entityType": DATA_JOB, "flowUrn": flow, "orchestrator": orchestrator, "flowId": flow_id,
            "cluster": cluster, "jobId": job_id, "name": info["name"], "description": description,
            "externalUrl": info["externalUrl"], "inputs": datasets("inputs"), "outputs": datasets("outputs"),
            "inputJobs": io["inputJobs"].as_array().cloned().unwrap_or_default(),
        }))
    }
}

/// What of a dataset a job's mapping reads (whether it is there, its fields with their tags and
/// terms): when it changes, the jobs whose lineage names the dataset are mapped again.
fn lineage_sig(state: &EntityState) -> Value {
    if state.deleted.is_some() || state.aspects.is_empty() || aspect(state, "status")["removed"] == json!(true) {
        return Value::Null;
    }
    let tags = |fields: &Value| -> Value {
        Value::Array(
            fields.as_array().into_iter().flatten().map(|f| json!([f["fieldPath"], f["tags"], f["terms"]])).collect(),
        )
    };
    json!([tags(&aspect(state, "schemaMetadata")["fields"]), tags(&aspect(state, "editableSchemaMetadata")["fields"])])
}

/// The datasets a job's remembered lineage names.
fn job_datasets(state: &EntityState) -> BTreeSet<String> {
    let io = aspect(state, "dataJobInputOutput");
    ["inputs", "outputs"]
        .iter()
        .flat_map(|k| io[*k].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned))
        .collect()
}

/// A version just above `base` and below any later change time: `<base>+000001`, then `+000002`…
pub fn bump(base: &str) -> String {
    if let Some((head, n)) = base.rsplit_once('+')
        && n.len() == 6
        && let Ok(n) = n.parse::<u32>()
    {
        return format!("{head}+{:06}", n + 1);
    }
    format!("{base}+000001")
}

impl DataHubRule {
    /// The jobs of `jobs` mapped again after a change (version `cause`) of a dataset they read
    /// or write; each gets a version above all its earlier events.
    fn follow_ups(&self, jobs: &BTreeSet<String>, cause: &str, time: DateTime<Utc>) -> Result<Vec<Change>, Reject> {
        let mut out = Vec::new();
        for job in jobs {
            let mut js = self.state(job);
            if js.deleted.is_some() || js.aspects.is_empty() || aspect(&js, "status")["removed"] == json!(true) {
                continue;
            }
            let mut base = cause.to_owned();
            for seq in js.aspects.values().map(|a| &a.seq).chain(js.followed.iter()) {
                if cmp_sequence(seq, &base) == std::cmp::Ordering::Greater {
                    base = seq.clone();
                }
            }
            let sequence = bump(&base);
            js.followed = Some(sequence.clone());
            self.remember(job, js.clone());
            let row = self.job_row(job, &js)?;
            out.push(Change {
                record_id: job.clone(),
                sequence,
                time: Some(time),
                snapshot: false,
                row: Row::Upsert(row),
                also: Vec::new(),
            });
        }
        Ok(out)
    }
}

impl RecordRule for DataHubRule {
    fn read(&self, topic: &str, msg: &InboundMessage, key: Option<&Value>, value: &Value) -> Result<Change, Reject> {
        let urn = nz(&value["entityUrn"]).or_else(|| key.and_then(nz)).and_then(Value::as_str).map(str::to_owned);
        let (entity_type, urn) = match (value["entityType"].as_str(), urn) {
            (Some(t @ (DATASET | DATA_JOB)), Some(u)) => (t, u),
            _ => return self.read_one(topic, msg, key, value),
        };
        let before = self.state(&urn);
        let mut change = self.read_one(topic, msg, key, value)?;
        if matches!(change.row, Row::Skip(_)) {
            return Ok(change);
        }
        let after = self.state(&urn);
        if entity_type == DATASET {
            if lineage_sig(&before) != lineage_sig(&after) {
                change.also = self.follow_ups(&after.jobs, &change.sequence, change.time.unwrap_or_else(Utc::now))?;
            }
            return Ok(change);
        }
        // A job: keep the datasets' index of the jobs naming them, and stay above a re-mapping.
        let (old, new) = (job_datasets(&before), job_datasets(&after));
        for d in old.difference(&new) {
            let mut ds = self.state(d);
            ds.jobs.remove(&urn);
            self.remember(d, ds);
        }
        for d in new.difference(&old) {
            let mut ds = self.state(d);
            ds.jobs.insert(urn.clone());
            self.remember(d, ds);
        }
        if let Some(f) = after.followed.as_deref()
            && cmp_sequence(f, &change.sequence) != std::cmp::Ordering::Less
        {
            change.sequence = bump(f);
            let mut js = after;
            js.followed = Some(change.sequence.clone());
            self.remember(&urn, js);
        }
        Ok(change)
    }

    fn save(&self) -> SaveFuture<'_> {
        self.save_pending()
    }
}

impl DataHubRule {
    /// Reads one record for its own entity (see the module doc).
    fn read_one(
        &self,
        _topic: &str,
        msg: &InboundMessage,
        key: Option<&Value>,
        value: &Value,
    ) -> Result<Change, Reject> {
        let (Some(entity_type), Some(change_type)) = (value["entityType"].as_str(), value["changeType"].as_str())
        else {
            return Err(reject("not_mcl", "no entityType/changeType: not a DataHub MetadataChangeLog record"));
        };
        let urn = nz(&value["entityUrn"])
            .or_else(|| key.and_then(nz))
            .and_then(Value::as_str)
            .ok_or_else(|| reject("no_key", "the record has no entityUrn and no message key"))?
            .to_owned();
        let time = change_time(value, msg)
            .ok_or_else(|| reject("no_version", "no created.time, systemMetadata.lastObserved or message timestamp"))?;
        let sequence = sequence_from_time(time, msg.offset.max(0) as u64);
        let change = |row| Change {
            record_id: urn.clone(),
            sequence: sequence.clone(),
            time: Some(time),
            snapshot: false,
            row,
            also: Vec::new(),
        };
        let aspects = match entity_type {
            DATASET => DATASET_ASPECTS,
            DATA_PLATFORM => PLATFORM_ASPECTS,
            DATA_JOB => JOB_ASPECTS,
            _ => return Ok(change(Row::Skip("entity_type"))),
        };
        let aspect_name = nz(&value["aspectName"]).and_then(Value::as_str);
        let mut state = self.state(&urn);
        let older = |than: &str| cmp_sequence(&sequence, than) == std::cmp::Ordering::Less;
        if state.deleted.as_deref().is_some_and(older) {
            return Ok(change(Row::Skip("stale")));
        }
        if change_type == "DELETE" && aspect_name.is_none_or(|a| a.ends_with("Key")) {
            let gone = EntityState {
                aspects: BTreeMap::new(),
                deleted: Some(sequence.clone()),
                jobs: state.jobs.clone(),
                followed: state.followed.clone(),
            };
            self.remember(&urn, gone);
            return Ok(change(Row::Delete(None)));
        }
        let Some(name) = aspect_name.filter(|a| aspects.contains(a)) else {
            return Ok(change(Row::Skip("aspect")));
        };
        if state.aspects.get(name).is_some_and(|s| older(&s.seq)) {
            return Ok(change(Row::Skip("stale")));
        }
        let reduced = match change_type {
            "DELETE" => None,
            "UPSERT" | "CREATE" | "UPDATE" | "PATCH" | "RESTATE" => {
                let doc = nz(&value["aspect"])
                    .ok_or_else(|| reject("invalid_aspect", format!("{change_type} of {name} without an aspect")))?;
                Some(reduce(name, &aspect_json(doc)?)?)
            }
            other => return Err(reject("unsupported_change", format!("changeType {other:?}"))),
        };
        // Checked before anything is remembered, so a bad URN leaves no state behind.
        if entity_type == DATASET && parse_dataset_urn(&urn).is_none() {
            return Err(reject("invalid_urn", format!("{urn:?} is not a dataset URN (platform, name, env)")));
        }
        if entity_type == DATA_JOB && parse_job_urn(&urn).is_none() {
            return Err(reject("invalid_urn", format!("{urn:?} is not a data job URN (flow, job id)")));
        }
        state.deleted = None;
        state.aspects.insert(name.to_owned(), Stored { seq: sequence.clone(), value: reduced });
        self.remember(&urn, state.clone());
        if aspect(&state, "status")["removed"] == json!(true) {
            return Ok(change(Row::Delete(None)));
        }
        let row = match entity_type {
            DATASET => dataset_row(&urn, &state)?,
            DATA_JOB => self.job_row(&urn, &state)?,
            _ => platform_row(&urn, &state),
        };
        Ok(change(Row::Upsert(row)))
    }

    fn save_pending(&self) -> SaveFuture<'_> {
        Box::pin(async move {
            let entries: Vec<(String, Option<Bytes>)> = self
                .pending
                .lock()
                .iter()
                .map(|(k, v)| (k.clone(), Some(Bytes::from(serde_json::to_vec(v).unwrap_or_default()))))
                .collect();
            if entries.is_empty() {
                return Ok(());
            }
            let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
            self.store.put_batch(entries).await.map_err(SourceError::from)?;
            let mut pending = self.pending.lock();
            for k in keys {
                pending.remove(&k);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urns_and_field_paths() {
        let (p, n, e) =
            parse_dataset_urn("urn:li:dataset:(urn:li:dataPlatform:postgres,crm.public.customers,PROD)").unwrap();
        assert_eq!((p.as_str(), n.as_str(), e.as_str()), ("postgres", "crm.public.customers", "PROD"));
        assert!(parse_dataset_urn("urn:li:dataset:postgres").is_none());
        assert_eq!(field_name("[version=2.0].[type=struct].address.[type=string].zip"), "address.zip");
        assert_eq!(field_name("email"), "email");
        let job = "urn:li:dataJob:(urn:li:dataFlow:(airflow,crm_nightly,prod),load_customers)";
        let (flow, orch, flow_id, cluster, job_id) = parse_job_urn(job).unwrap();
        assert_eq!(flow, "urn:li:dataFlow:(airflow,crm_nightly,prod)");
        assert_eq!(
            (orch.as_str(), flow_id.as_str(), cluster.as_str(), job_id.as_str()),
            ("airflow", "crm_nightly", "prod", "load_customers")
        );
        assert!(parse_job_urn("urn:li:dataJob:load_customers").is_none());
        assert!(parse_job_urn("urn:li:dataJob:(urn:li:dataFlow:(airflow,x,prod),)").is_none());
    }

    #[test]
    fn bumped_versions_sit_between_a_version_and_the_next_time() {
        let v = "2026-12-03T01:00:00.000000000Z/00000000000000000007";
        let later = "2026-12-03T01:00:00.000000001Z/00000000000000000000";
        let (b1, b2) = (bump(v), bump(&bump(v)));
        assert_eq!(b1, format!("{v}+000001"));
        assert_eq!(b2, format!("{v}+000002"));
        for (lo, hi) in [(v, b1.as_str()), (b1.as_str(), b2.as_str()), (b2.as_str(), later)] {
            assert_eq!(cmp_sequence(lo, hi), std::cmp::Ordering::Less, "{lo} < {hi}");
        }
    }

    #[test]
    fn lineage_lists_unite_urns_and_edges() {
        let io = json!({"inputDatasets": ["a", "b"], "inputDatasetEdges": [{"destinationUrn": "b"}, {"destinationUrn": "c"}],
                        "outputDatasetEdges": [{"destinationUrn": "d"}]});
        let r = reduce("dataJobInputOutput", &io).unwrap();
        assert_eq!(r, json!({"inputs": ["a", "b", "c"], "outputs": ["d"], "inputJobs": []}));
        let bad = reduce("dataJobInputOutput", &json!({"inputDatasetEdges": [{"sourceUrn": "x"}]})).unwrap_err();
        assert_eq!(bad.0, "invalid_aspect");
    }

    #[test]
    fn aspect_values_are_json_bytes_or_text() {
        let doc = json!({"removed": true});
        let b64 = base64::engine::general_purpose::STANDARD.encode(doc.to_string());
        assert_eq!(aspect_json(&json!({"value": b64, "contentType": "application/json"})).unwrap(), doc);
        assert_eq!(aspect_json(&json!({"value": doc.to_string(), "contentType": "application/json"})).unwrap(), doc);
        assert_eq!(
            aspect_json(&json!({"value": "x", "contentType": "application/json"})).unwrap_err().0,
            "invalid_aspect"
        );
        assert_eq!(
            aspect_json(&json!({"value": "{}", "contentType": "application/avro"})).unwrap_err().0,
            "unsupported_aspect"
        );
    }
}
