//! Mappings as jq programs (crate `jaq`): a source record (JSON) → zero or more entity outputs.
//!
//! A program runs once per record with the record as input and two global variables: `$params`
//! (the stream's parameters from the connector defaults merged with the config, e.g. a class → type
//! table) and `$system` (the key system segment, e.g. `servicenow`, to build references). Every
//! value it outputs is one entity:
//!
//! ```json
//! {"kind": "asset", "id": "<external id>", "data": { …payload fields in Dastra's names… }}
//! ```
//!
//! `kind` is an entity name (`asset`, `actor`, `relationship`, …); `id` the external id (the key
//! becomes `<system>:<kind>:<id>`), or `key` a whole entity key; a relationship may give neither
//! (its key is then derived from `data.origin` and `data.target`). `null` outputs are skipped, so
//! `if … then … else empty end` and `select` filter records out. A jq `error(…)` rejects the record:
//! the engine dead-letters it with the message.
//!
//! Every program also sees the definitions of [`PRELUDE`] (e.g. `legal_deadline`), so mappings of
//! different systems compute the same thing the same way.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;

use crate::{Classify, ErrorClass};

/// A mapping that cannot compile or that failed on a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// The program does not parse or compile.
    #[error("mapping `{name}` does not compile: {detail}")]
    Compile {
        /// The mapping's name.
        name: String,
        /// The parser's or compiler's complaint.
        detail: String,
    },
    /// The program raised an error (or a runtime type error) on a record.
    #[error("mapping `{name}` failed: {detail}")]
    Run {
        /// The mapping's name.
        name: String,
        /// The jq error.
        detail: String,
    },
    /// An output is not a valid entity description.
    #[error("mapping `{name}` produced an invalid output: {detail}")]
    Output {
        /// The mapping's name.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

impl Classify for MappingError {
    fn class(&self) -> ErrorClass {
        match self {
            MappingError::Compile { .. } => ErrorClass::Fatal,
            _ => ErrorClass::Permanent,
        }
    }
    fn code(&self) -> &'static str {
        match self {
            MappingError::Compile { .. } => "mapping_compile",
            MappingError::Run { .. } => "mapping_error",
            MappingError::Output { .. } => "mapping_output",
        }
    }
}

type Filter = jaq_core::Filter<data::JustLut<Val>>;

/// jq definitions available to every mapping program.
///
/// `legal_deadline($months; $days)`: the input (seconds since the epoch, UTC) plus `$months`
/// calendar months plus `$days` days, in seconds. A calendar month keeps the day of the month,
/// clamped to the month's last day (31 January + 1 month = 28 or 29 February), which is how GDPR
/// art. 12(3)'s "one month" is counted (Regulation 1182/71 art. 3(2)(c)): a fixed 30 days would fall
/// after the legal deadline for a request received in February.
pub const PRELUDE: &str = r#"
def legal_deadline($months; $days):
  (gmtime) as $g
  | ($g[1] + $months) as $m
  | ($g[0] + (($m / 12) | floor)) as $y
  | first(range($g[2]; $g[2] - 4; -1) as $d | [$y, ($m % 12), $d, $g[3], $g[4], ($g[5] | floor)] | try mktime)
  | . + $days * 86400;
"#;

/// A compiled jq mapping.
pub struct Mapping {
    name: String,
    filter: Filter,
    /// `$params` converted once: the same parameters come with every record of a stream.
    params: parking_lot::Mutex<Option<(Value, Val)>>,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").field("name", &self.name).finish_non_exhaustive()
    }
}

fn to_val(v: &Value) -> Result<Val, String> {
    let text = serde_json::to_vec(v).map_err(|e| e.to_string())?;
    jaq_json::read::parse_single(&text).map_err(|e| format!("{e:?}"))
}

fn from_val(v: &Val) -> Result<Value, String> {
    serde_json::from_str(&v.to_string()).map_err(|e| format!("output is not JSON: {e}"))
}

impl Mapping {
    /// Compiles `program` (jq syntax, jq's standard library available). `name` appears in errors.
    pub fn compile(name: &str, program: &str) -> Result<Mapping, MappingError> {
        let err = |detail: String| MappingError::Compile { name: name.to_owned(), detail };
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let code = format!("{PRELUDE}{program}");
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code: &code, path: () })
            .map_err(|errs| err(errs.into_iter().map(|(_, e)| format!("{e:?}")).collect::<Vec<_>>().join("; ")))?;
        let filter =
            Compiler::default().with_funs(funs).with_global_vars(["$params", "$system"]).compile(modules).map_err(
                |errs| {
                    err(errs
                        .into_iter()
                        .flat_map(|(_, es)| es.into_iter().map(|(name, undef)| format!("undefined {undef:?} `{name}`")))
                        .collect::<Vec<_>>()
                        .join("; "))
                },
            )?;
        Ok(Mapping { name: name.to_owned(), filter, params: parking_lot::Mutex::new(None) })
    }

    /// The mapping's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the program on `record`; returns its non-null outputs.
    pub fn run(&self, record: &Value, params: &Value, system: &str) -> Result<Vec<Value>, MappingError> {
        let run_err = |detail: String| MappingError::Run { name: self.name.clone(), detail };
        let input = to_val(record).map_err(run_err)?;
        let params = {
            let mut cache = self.params.lock();
            match cache.as_ref() {
                Some((v, val)) if v == params => val.clone(),
                _ => {
                    let val = to_val(params).map_err(run_err)?;
                    *cache = Some((params.clone(), val.clone()));
                    val
                }
            }
        };
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([params, Val::from(system.to_owned())]));
        let mut out = Vec::new();
        for v in self.filter.id.run((ctx, input)).map(unwrap_valr) {
            let v = v.map_err(|e| run_err(error_text(&e)))?;
            let json = from_val(&v).map_err(|detail| MappingError::Output { name: self.name.clone(), detail })?;
            if !json.is_null() {
                out.push(json);
            }
        }
        Ok(out)
    }
}

/// jq's `error("text")` carries a string value: show it bare rather than quoted.
fn error_text(e: &jaq_core::Error<Val>) -> String {
    let text = e.to_string();
    text.strip_prefix("error: ").map(str::to_owned).unwrap_or(text)
}

/// Deep-merges `over` into `base` (objects key by key, anything else replaced): how a
/// connector's `params` override its mapping's default `$params`.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legal_deadline_counts_calendar_months_clamped_to_the_month_end() {
        let m = Mapping::compile(
            "deadline",
            "{kind: \"x\", id: \"1\", data: (. as $r | .t | fromdateiso8601 | legal_deadline($r.m; $r.d) | todate)}",
        )
        .unwrap();
        let at = |t: &str, months: i64, days: i64| {
            m.run(&json!({"t": t, "m": months, "d": days}), &json!({}), "s").unwrap()[0]["data"].clone()
        };
        assert_eq!(at("2023-01-31T09:30:00Z", 1, 0), "2023-02-28T09:30:00Z");
        assert_eq!(at("2024-01-31T09:30:00Z", 1, 0), "2024-02-29T09:30:00Z");
        assert_eq!(at("2024-04-30T23:59:59Z", 1, 0), "2024-05-30T23:59:59Z");
        assert_eq!(at("2024-12-15T00:00:00Z", 1, 0), "2025-01-15T00:00:00Z");
        assert_eq!(at("2024-11-30T00:00:00Z", 3, 0), "2025-02-28T00:00:00Z");
        assert_eq!(at("2024-05-01T10:00:00Z", 0, 30), "2024-05-31T10:00:00Z");
        assert_eq!(at("2024-05-01T10:00:00Z", 1, 2), "2024-06-03T10:00:00Z");
    }

    #[test]
    fn maps_records_with_params_and_rejects_with_a_reason() {
        let m = Mapping::compile(
            "ci",
            r#"if .class == "skip" then empty
               else {kind: "asset", id: .id,
                     data: {label: .name, type: ($params.types[.class] // error("no AssetType for class \(.class)"))}},
                    (if .vendor then {kind: "actor", key: "\($system):actor:\(.vendor)"} else null end)
               end"#,
        )
        .unwrap();
        let params = json!({"types": {"server": "Material"}});
        let out = m.run(&json!({"id": "1", "name": "srv", "class": "server", "vendor": "v9"}), &params, "sn").unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["data"]["type"], "Material");
        assert_eq!(out[1]["key"], "sn:actor:v9");
        let out = m.run(&json!({"id": "2", "name": "x", "class": "server"}), &params, "sn").unwrap();
        assert_eq!(out.len(), 1, "null outputs are dropped");
        assert!(m.run(&json!({"class": "skip"}), &params, "sn").unwrap().is_empty());
        let err = m.run(&json!({"id": "3", "name": "y", "class": "printer"}), &params, "sn").unwrap_err();
        assert_eq!(err.code(), "mapping_error");
        assert!(err.to_string().contains("no AssetType for class printer"), "{err}");
    }

    #[test]
    fn compile_errors_are_reported() {
        let e = Mapping::compile("bad", "{kind: ").unwrap_err();
        assert_eq!(e.code(), "mapping_compile");
        let e = Mapping::compile("bad", "nosuchfn(1)").unwrap_err();
        assert!(e.to_string().contains("nosuchfn"), "{e}");
    }
}
