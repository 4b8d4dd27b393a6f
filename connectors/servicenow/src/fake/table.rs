//! The fake's Table API query engine: table inheritance, encoded-query evaluation (unknown fields
//! ignored, as ServiceNow does), ordering, offset paging, field selection with dot-walking and
//! display values, `X-Total-Count` and `Link`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::reference_table;
use crate::query::{Condition, parse_condition};

/// What one `GET` answers.
pub struct Answer {
    /// The page.
    pub records: Vec<Value>,
    /// All matching records.
    pub total: usize,
    /// The `Link` header.
    pub link: Option<String>,
}

fn field_text(tables: &BTreeMap<String, Vec<Value>>, rec: &Value, field: &str) -> Option<String> {
    match field.split_once('.') {
        None => rec.get(field).map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())),
        Some((reference, rest)) => {
            let target_table = reference_table(reference)?;
            let id = rec.get(reference)?.as_str()?;
            if id.is_empty() {
                return Some(String::new());
            }
            let target = tables.get(target_table)?.iter().find(|r| r["sys_id"] == id)?;
            field_text(tables, target, rest).or(Some(String::new()))
        }
    }
}

fn compare(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.cmp(b),
    }
}

fn holds(tables: &BTreeMap<String, Vec<Value>>, rec: &Value, c: &Condition) -> bool {
    let v = field_text(tables, rec, &c.field).unwrap_or_default();
    let x = c.value.as_str();
    match c.op.as_str() {
        "=" => v == x,
        "!=" => v != x,
        ">" => compare(&v, x) == Ordering::Greater,
        ">=" => compare(&v, x) != Ordering::Less,
        "<" => compare(&v, x) == Ordering::Less,
        "<=" => compare(&v, x) != Ordering::Greater,
        "STARTSWITH" => v.starts_with(x),
        "ENDSWITH" => v.ends_with(x),
        "LIKE" => v.to_lowercase().contains(&x.to_lowercase()),
        "NOT LIKE" => !v.to_lowercase().contains(&x.to_lowercase()),
        "IN" => x.split(',').any(|p| p == v),
        "NOT IN" => !x.split(',').any(|p| p == v),
        "ISEMPTY" => v.is_empty(),
        "ISNOTEMPTY" => !v.is_empty(),
        // Operators the fake does not implement match nothing rather than everything.
        _ => false,
    }
}

/// Splits a group into OR-runs: `a^b^ORc` → `[[a], [b, c]]`.
fn and_of_ors(conds: Vec<Condition>) -> Vec<Vec<Condition>> {
    let mut out: Vec<Vec<Condition>> = Vec::new();
    for c in conds {
        match out.last_mut() {
            Some(last) if c.or => last.push(c),
            _ => out.push(vec![c]),
        }
    }
    out
}

/// Evaluates a `GET /api/now/table/{table}`.
pub fn select(
    tables: &BTreeMap<String, Vec<Value>>,
    table: &str,
    params: &HashMap<String, String>,
    base_url: &str,
) -> Result<Answer, String> {
    // Inheritance: `cmdb_ci` holds every class `cmdb_ci_*`.
    let sources: Vec<&Vec<Value>> = tables
        .iter()
        .filter(|(name, _)| *name == table || (table == "cmdb_ci" && name.starts_with("cmdb_ci_")))
        .map(|(_, r)| r)
        .collect();
    let known_table = !sources.is_empty()
        || matches!(table, "sys_audit_delete" | "cmn_location" | "core_company" | "sys_user" | "cmdb_ci");
    if !known_table {
        return Err(format!("Invalid table {table}"));
    }
    let rows: Vec<&Value> = sources.into_iter().flatten().collect();
    // The fields this table has (for "unknown field → condition ignored").
    let mut columns: BTreeSet<String> =
        rows.iter().filter_map(|r| r.as_object()).flat_map(|o| o.keys().cloned()).collect();
    columns
        .extend(["sys_id", "sys_updated_on", "sys_created_on", "sys_mod_count", "sys_class_name"].map(str::to_owned));
    let has_field = |f: &str| match f.split_once('.') {
        None => columns.contains(f),
        Some((r, _)) => columns.contains(r) && reference_table(r).is_some(),
    };

    let query = params.get("sysparm_query").cloned().unwrap_or_default();
    let mut groups: Vec<Vec<Vec<Condition>>> = Vec::new();
    let mut order: Vec<(String, bool)> = Vec::new();
    for group in query.split("^NQ") {
        let mut conds = Vec::new();
        for part in group.split('^').filter(|p| !p.is_empty()) {
            if let Some(f) = part.strip_prefix("ORDERBYDESC") {
                order.push((f.to_owned(), true));
            } else if let Some(f) = part.strip_prefix("ORDERBY") {
                order.push((f.to_owned(), false));
            } else if let Some(c) = parse_condition(part) {
                // ServiceNow drops a condition on an unknown field and keeps the rest.
                if has_field(&c.field) {
                    conds.push(c);
                }
            }
            // An unparseable part is dropped too.
        }
        groups.push(and_of_ors(conds));
    }
    let mut matched: Vec<&Value> = rows
        .into_iter()
        .filter(|r| groups.iter().any(|and| and.iter().all(|ors| ors.iter().any(|c| holds(tables, r, c)))))
        .collect();
    matched.sort_by(|a, b| {
        for (f, desc) in &order {
            let x = field_text(tables, a, f).unwrap_or_default();
            let y = field_text(tables, b, f).unwrap_or_default();
            let o = compare(&x, &y);
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    let total = matched.len();
    let limit: usize = params.get("sysparm_limit").and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let offset: usize = params.get("sysparm_offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let fields: Option<Vec<String>> = params
        .get("sysparm_fields")
        .filter(|f| !f.is_empty())
        .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect());
    let display = params.get("sysparm_display_value").map(String::as_str).unwrap_or("false");
    let exclude_links = params.get("sysparm_exclude_reference_link").is_some_and(|v| v == "true");

    let page: Vec<Value> = matched
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| render(tables, r, fields.as_deref(), display, exclude_links, base_url))
        .collect();

    let link = (limit > 0).then(|| {
        let url = |off: usize| {
            let mut p: Vec<(String, String)> =
                params.iter().filter(|(k, _)| *k != "sysparm_offset").map(|(k, v)| (k.clone(), v.clone())).collect();
            p.sort();
            p.push(("sysparm_offset".into(), off.to_string()));
            let q = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(p).finish();
            format!("<{base_url}/api/now/table/{table}?{q}>")
        };
        let last = if total == 0 { 0 } else { (total - 1) / limit * limit };
        let mut parts = vec![format!("{};rel=\"first\"", url(0))];
        if offset > 0 {
            parts.push(format!("{};rel=\"prev\"", url(offset.saturating_sub(limit))));
        }
        if offset + limit < total {
            parts.push(format!("{};rel=\"next\"", url(offset + limit)));
        }
        parts.push(format!("{};rel=\"last\"", url(last)));
        parts.join(",")
    });
    Ok(Answer { records: page, total, link })
}

fn display_of(tables: &BTreeMap<String, Vec<Value>>, field: &str, raw: &str) -> String {
    match reference_table(field) {
        Some(t) if !raw.is_empty() => tables
            .get(t)
            .and_then(|rs| rs.iter().find(|r| r["sys_id"] == raw))
            .and_then(|r| r.get("name").and_then(Value::as_str))
            .unwrap_or("")
            .to_owned(),
        _ => raw.to_owned(),
    }
}

fn render(
    tables: &BTreeMap<String, Vec<Value>>,
    rec: &Value,
    fields: Option<&[String]>,
    display: &str,
    exclude_links: bool,
    base_url: &str,
) -> Value {
    let names: Vec<String> = match fields {
        Some(f) => f.to_vec(),
        None => rec.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default(),
    };
    let mut out = Map::new();
    for name in names {
        // A field the table does not have is left out of the answer.
        let Some(raw) = field_text(tables, rec, &name) else { continue };
        let is_ref = !name.contains('.') && reference_table(&name).is_some();
        let value = match display {
            "true" => json!(display_of(tables, &name, &raw)),
            "all" => json!({"display_value": display_of(tables, &name, &raw), "value": raw}),
            _ if is_ref && !exclude_links && !raw.is_empty() => {
                let t = reference_table(&name).unwrap_or("sys_user");
                json!({"link": format!("{base_url}/api/now/table/{t}/{raw}"), "value": raw})
            }
            _ => json!(raw),
        };
        out.insert(name, value);
    }
    Value::Object(out)
}
