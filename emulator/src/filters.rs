//! The `filters` query parameter: JsonRuleEngine.Net rules (docs/dastra-api.md §2.3) — `{field, operator,
//! value}` rules and nestable `{separator: And|Or, rules}` groups — evaluated against stored DTOs.
//! Field names match case-insensitively (camelCase or PascalCase), dotted paths go one level into
//! nested objects or collections, and an unknown field is a 400 (docs/dastra-api.md §7 #5).

use serde_json::Value;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// One comparison.
    Rule {
        /// Field path, as written by the client.
        field: String,
        /// Operator name (lower-cased).
        operator: String,
        /// Comparison value.
        value: Value,
    },
    /// `And` (`all = true`) or `Or` group.
    Group {
        /// True for And.
        all: bool,
        /// Members.
        rules: Vec<Filter>,
    },
}

const OPERATORS: &[&str] = &[
    "equal",
    "notequal",
    "lessthan",
    "lessthaninclusive",
    "greaterthan",
    "greaterthaninclusive",
    "in",
    "notin",
    "contains",
    "doesnotcontains",
    "doesnotcontain",
    "isnull",
    "isnotnull",
    "isempty",
    "isnotempty",
    "includeall",
    "excludeall",
    "regex",
];

/// Parses the JSON text of `filters`. `known` says whether a top-level field name exists on the
/// entity (the document's properties plus extensions).
pub fn parse(text: &str, known: &dyn Fn(&str) -> bool) -> Result<Filter, String> {
    let json: Value = serde_json::from_str(text).map_err(|e| format!("filters is not valid JSON: {e}"))?;
    parse_value(&json, known)
}

fn parse_value(json: &Value, known: &dyn Fn(&str) -> bool) -> Result<Filter, String> {
    if let Some(items) = json.as_array() {
        let rules = items.iter().map(|r| parse_value(r, known)).collect::<Result<_, _>>()?;
        return Ok(Filter::Group { all: true, rules });
    }
    let obj = json.as_object().ok_or("a filter must be an object or an array of rules")?;
    let get = |name: &str| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    if let Some(rules) = get("rules") {
        let sep = get("separator").or_else(|| get("condition")).and_then(Value::as_str).unwrap_or("And");
        let all = match sep.to_ascii_lowercase().as_str() {
            "and" => true,
            "or" => false,
            other => return Err(format!("unknown separator {other:?} (And, Or)")),
        };
        let rules = rules
            .as_array()
            .ok_or("rules must be an array")?
            .iter()
            .map(|r| parse_value(r, known))
            .collect::<Result<_, _>>()?;
        return Ok(Filter::Group { all, rules });
    }
    let field = get("field").and_then(Value::as_str).ok_or("a rule needs a string `field`")?;
    let operator = get("operator").and_then(Value::as_str).ok_or("a rule needs a string `operator`")?;
    let op = operator.to_ascii_lowercase();
    if !OPERATORS.contains(&op.as_str()) {
        return Err(format!("unknown operator {operator:?}"));
    }
    let head = field.split('.').next().unwrap_or(field);
    if !known(head) {
        return Err(format!("unknown field {field:?}"));
    }
    Ok(Filter::Rule { field: field.to_string(), operator: op, value: get("value").cloned().unwrap_or(Value::Null) })
}

/// Looks a property up case-insensitively.
pub fn lookup<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(name).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// Values found at a dotted path (several when the path crosses a collection).
fn resolve(obj: &Value, path: &str) -> Vec<Value> {
    let mut current = vec![obj.clone()];
    for part in path.split('.') {
        let mut next = Vec::new();
        for v in &current {
            match v {
                Value::Array(items) => next.extend(items.iter().filter_map(|i| lookup(i, part).cloned())),
                _ => next.push(lookup(v, part).cloned().unwrap_or(Value::Null)),
            }
        }
        current = next;
    }
    current
}

impl Filter {
    /// Whether the entity matches.
    pub fn matches(&self, entity: &Value) -> bool {
        match self {
            Self::Group { all: true, rules } => rules.iter().all(|r| r.matches(entity)),
            Self::Group { all: false, rules } => rules.is_empty() || rules.iter().any(|r| r.matches(entity)),
            Self::Rule { field, operator, value } => {
                let found = resolve(entity, field);
                let negative = matches!(
                    operator.as_str(),
                    "notequal" | "notin" | "doesnotcontains" | "doesnotcontain" | "excludeall"
                );
                if found.is_empty() {
                    return matches!(operator.as_str(), "isnull" | "isempty") || negative;
                }
                if negative {
                    found.iter().all(|f| compare(f, operator, value))
                } else {
                    found.iter().any(|f| compare(f, operator, value))
                }
            }
        }
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Equality as JsonRuleEngine does it on typed C# values: numbers by value, strings exactly, with
/// enum names and booleans compared case-insensitively (they are case-insensitive in Dastra input).
fn equal(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::String(x), Value::String(y)) => x == y || (is_identifier(x) && x.eq_ignore_ascii_case(y)),
        _ => match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) if !(a.is_string() && b.is_string()) => x == y,
            _ => text(a).zip(text(b)).is_some_and(|(x, y)| x.eq_ignore_ascii_case(&y)),
        },
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (as_f64(a), as_f64(b)) {
        (Some(x), Some(y)) if !(a.is_string() && b.is_string()) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        },
    }
}

fn compare(field: &Value, operator: &str, value: &Value) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let list = || value.as_array().cloned().unwrap_or_else(|| vec![value.clone()]);
    match operator {
        "equal" => equal(field, value),
        "notequal" => !equal(field, value),
        "lessthan" => order(field, value) == Some(Less),
        "lessthaninclusive" => matches!(order(field, value), Some(Less | Equal)),
        "greaterthan" => order(field, value) == Some(Greater),
        "greaterthaninclusive" => matches!(order(field, value), Some(Greater | Equal)),
        "in" => list().iter().any(|v| equal(field, v)),
        "notin" => !list().iter().any(|v| equal(field, v)),
        "contains" => contains(field, value),
        "doesnotcontains" | "doesnotcontain" => !contains(field, value),
        "isnull" => field.is_null(),
        "isnotnull" => !field.is_null(),
        "isempty" => is_empty(field),
        "isnotempty" => !is_empty(field),
        "includeall" => {
            let items = field.as_array().cloned().unwrap_or_else(|| vec![field.clone()]);
            list().iter().all(|v| items.iter().any(|i| equal(i, v)))
        }
        "excludeall" => {
            let items = field.as_array().cloned().unwrap_or_else(|| vec![field.clone()]);
            !list().iter().any(|v| items.iter().any(|i| equal(i, v)))
        }
        "regex" => match (field.as_str(), value.as_str()) {
            (Some(f), Some(pattern)) => regex::Regex::new(pattern).is_ok_and(|r| r.is_match(f)),
            _ => false,
        },
        _ => false,
    }
}

fn contains(field: &Value, value: &Value) -> bool {
    match field {
        Value::String(s) => text(value).is_some_and(|v| s.to_lowercase().contains(&v.to_lowercase())),
        Value::Array(items) => items.iter().any(|i| equal(i, value)),
        _ => false,
    }
}

fn is_empty(field: &Value) -> bool {
    match field {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(text: &str) -> Filter {
        parse(text, &|f: &str| {
            ["label", "ref", "type", "tags", "purposes", "areaId", "description"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(f))
        })
        .unwrap_or(Filter::Group { all: false, rules: vec![Filter::Group { all: true, rules: vec![] }] })
    }

    #[test]
    fn rules_and_groups() {
        let e = json!({"label": "CRM", "ref": "sn:1", "type": "Software", "areaId": 3, "description": null,
                       "tags": [{"label": "a"}, {"label": "b"}], "purposes": ["Access", "Erasure"]});
        assert!(f(r#"{"field":"Ref","operator":"equal","value":"sn:1"}"#).matches(&e));
        assert!(!f(r#"{"field":"ref","operator":"equal","value":"SN:1"}"#).matches(&e));
        assert!(f(r#"{"field":"type","operator":"equal","value":"software"}"#).matches(&e));
        assert!(f(r#"{"field":"areaId","operator":"in","value":[1,3]}"#).matches(&e));
        assert!(f(r#"{"field":"areaId","operator":"greaterThan","value":2}"#).matches(&e));
        assert!(f(r#"{"field":"label","operator":"contains","value":"rm"}"#).matches(&e));
        assert!(f(r#"{"field":"description","operator":"isNull"}"#).matches(&e));
        assert!(f(r#"{"field":"tags.label","operator":"equal","value":"b"}"#).matches(&e));
        assert!(f(r#"{"field":"purposes","operator":"contains","value":"Erasure"}"#).matches(&e));
        assert!(f(r#"{"separator":"Or","rules":[{"field":"label","operator":"equal","value":"x"},{"field":"areaId","operator":"equal","value":3}]}"#).matches(&e));
        assert!(!f(r#"{"separator":"And","rules":[{"field":"label","operator":"equal","value":"x"},{"field":"areaId","operator":"equal","value":3}]}"#).matches(&e));
    }

    #[test]
    fn rejects_unknown_fields_and_operators() {
        let known = |f: &str| f == "label";
        assert!(parse(r#"{"field":"nope","operator":"equal","value":1}"#, &known).is_err());
        assert!(parse(r#"{"field":"label","operator":"like","value":1}"#, &known).is_err());
        assert!(parse("not json", &known).is_err());
    }
}
