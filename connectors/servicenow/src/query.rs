//! ServiceNow encoded queries: the cursor queries the source sends, and a parser that checks user
//! filters, because ServiceNow silently ignores a query part it cannot use (an unknown field, a
//! misspelt operator) and would then return the whole table.

use chrono::{DateTime, Utc};

/// Operators of encoded queries, longest first so that `>=` is tried before `>`.
const OPERATORS: &[&str] = &[
    "NOT LIKE",
    "NOT IN",
    "ISNOTEMPTY",
    "ISEMPTY",
    "STARTSWITH",
    "ENDSWITH",
    "BETWEEN",
    "SAMEAS",
    "NSAMEAS",
    "ANYTHING",
    "EMPTYSTRING",
    "VALCHANGES",
    "LIKE",
    "IN",
    ">=",
    "<=",
    "!=",
    ">",
    "<",
    "=",
];

/// One condition `field operator value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Field name (may be dot-walked: `location.city`).
    pub field: String,
    /// Operator (one of the encoded-query operators).
    pub op: String,
    /// Value (raw text).
    pub value: String,
    /// True when joined to the previous condition with `^OR`.
    pub or: bool,
}

/// A parsed query: OR-groups (`^NQ`) of AND-ed conditions, and `ORDERBY` terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Groups joined by `^NQ`.
    pub groups: Vec<Vec<Condition>>,
    /// `(field, descending)` in order.
    pub order_by: Vec<(String, bool)>,
}

/// Parses one condition; `None` when it does not look like `field<op>value`.
pub fn parse_condition(part: &str) -> Option<Condition> {
    let (or, part) = match part.strip_prefix("OR") {
        // `ORDERBY…` is not an OR-condition; a field never starts with upper-case letters.
        Some(rest) if !part.starts_with("ORDERBY") => (true, rest),
        _ => (false, part),
    };
    let end = part.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(part.len());
    let (field, rest) = part.split_at(end);
    // A field is lower-case; upper-case operators like `ISEMPTY` directly follow it.
    let field_end = field.find(|c: char| c.is_ascii_uppercase()).unwrap_or(field.len());
    let (field, rest) = (&part[..field_end], if field_end < field.len() { &part[field_end..] } else { rest });
    if field.is_empty() {
        return None;
    }
    let op = OPERATORS.iter().find(|op| rest.starts_with(**op))?;
    Some(Condition { field: field.to_owned(), op: (*op).to_owned(), value: rest[op.len()..].to_owned(), or })
}

/// Parses an encoded query. Errors name the part that is not a condition.
pub fn parse(query: &str) -> Result<Query, String> {
    let mut q = Query::default();
    for group in query.split("^NQ") {
        let mut conds = Vec::new();
        for part in group.split('^').filter(|p| !p.is_empty()) {
            if let Some(f) = part.strip_prefix("ORDERBYDESC") {
                q.order_by.push((f.to_owned(), true));
            } else if let Some(f) = part.strip_prefix("ORDERBY") {
                q.order_by.push((f.to_owned(), false));
            } else {
                conds.push(
                    parse_condition(part)
                        .ok_or_else(|| format!("`{part}` is not a condition (field, operator, value)"))?,
                );
            }
        }
        if !conds.is_empty() {
            q.groups.push(conds);
        }
    }
    Ok(q)
}

/// Checks a user filter: parseable, no `^NQ` (it is AND-ed into the cursor query), no `ORDERBY`
/// (the source orders), no `javascript:` (server-side script). Returns the fields it uses.
pub fn check_filter(filter: &str) -> Result<Vec<String>, String> {
    if filter.contains("^NQ") {
        return Err("`^NQ` is not allowed in a filter (it is combined with the cursor condition)".into());
    }
    if filter.to_ascii_lowercase().contains("javascript:") {
        return Err("`javascript:` values are not allowed in a filter".into());
    }
    let q = parse(filter)?;
    if !q.order_by.is_empty() {
        return Err("ORDERBY is not allowed in a filter (the source orders by its cursor)".into());
    }
    let mut fields: Vec<String> = q.groups.iter().flatten().map(|c| c.field.clone()).collect();
    fields.sort();
    fields.dedup();
    Ok(fields)
}

/// ServiceNow's internal date-time format (UTC with `sysparm_display_value=false`).
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Formats an instant for a query (UTC, second precision: ServiceNow stores seconds).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format(TIME_FORMAT).to_string()
}

/// Parses a ServiceNow date-time (`2025-05-02 08:30:00`, UTC).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(text, TIME_FORMAT).ok().map(|n| n.and_utc())
}

fn with_filter(filter: Option<&str>, cond: &str) -> String {
    match filter {
        Some(f) if !f.is_empty() => format!("{f}^{cond}"),
        _ => cond.to_owned(),
    }
}

/// Records changed at or after `time` (`id` empty), or strictly after `(time, id)`, oldest first:
/// `sys_updated_on>T^NQsys_updated_on=T^sys_id>ID^ORDERBYsys_updated_on^ORDERBYsys_id`, the filter
/// AND-ed into each group.
pub fn changes_after(filter: Option<&str>, time: DateTime<Utc>, id: &str) -> String {
    let t = format_time(time);
    let body = if id.is_empty() {
        with_filter(filter, &format!("sys_updated_on>={t}"))
    } else {
        format!(
            "{}^NQ{}",
            with_filter(filter, &format!("sys_updated_on>{t}")),
            with_filter(filter, &format!("sys_updated_on={t}^sys_id>{id}"))
        )
    };
    format!("{body}^ORDERBYsys_updated_on^ORDERBYsys_id")
}

/// Every record with a `sys_id` after `after_id`, in `sys_id` order (the sweep).
pub fn all_after(filter: Option<&str>, after_id: Option<&str>) -> String {
    match after_id {
        Some(id) => format!("{}^ORDERBYsys_id", with_filter(filter, &format!("sys_id>{id}"))),
        None => match filter {
            Some(f) if !f.is_empty() => format!("{f}^ORDERBYsys_id"),
            _ => "ORDERBYsys_id".to_owned(),
        },
    }
}

/// `sys_audit_delete` entries of `table` (for `cmdb_ci`: of every CI class) strictly after
/// `(time, id)`, oldest first.
pub fn deletes_after(table: &str, time: DateTime<Utc>, id: &str) -> String {
    let t = format_time(time);
    let table_cond =
        if table == "cmdb_ci" { "tablenameSTARTSWITHcmdb_ci".to_owned() } else { format!("tablename={table}") };
    if id.is_empty() {
        format!("{table_cond}^sys_created_on>={t}^ORDERBYsys_created_on^ORDERBYsys_id")
    } else {
        format!(
            "{table_cond}^sys_created_on>{t}^NQ{table_cond}^sys_created_on={t}^sys_id>{id}^ORDERBYsys_created_on^ORDERBYsys_id"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_conditions_and_rejects_garbage() {
        let q = parse("operational_status!=6^nameSTARTSWITHlnx^ORnameISEMPTY^NQsys_id>ab^ORDERBYDESCname").unwrap();
        assert_eq!(q.groups.len(), 2);
        assert_eq!(
            q.groups[0][0],
            Condition { field: "operational_status".into(), op: "!=".into(), value: "6".into(), or: false }
        );
        assert_eq!(q.groups[0][1].op, "STARTSWITH");
        assert_eq!(
            q.groups[0][2],
            Condition { field: "name".into(), op: "ISEMPTY".into(), value: "".into(), or: true }
        );
        assert_eq!(q.order_by, vec![("name".to_owned(), true)]);
        assert!(parse("operational_status~6").is_err());
        assert_eq!(check_filter("vendor=true^ORmanufacturer=true").unwrap(), vec!["manufacturer", "vendor"]);
        assert!(check_filter("a=1^ORDERBYname").is_err());
        assert!(check_filter("a=1^NQb=2").is_err());
        assert!(check_filter("sys_created_on>javascript:gs.daysAgo(3)").is_err());
        assert_eq!(parse_condition("location.cityLIKEParis").unwrap().field, "location.city");
    }

    #[test]
    fn builds_cursor_queries() {
        let t = Utc.with_ymd_and_hms(2025, 5, 2, 8, 30, 0).unwrap();
        assert_eq!(
            changes_after(None, t, ""),
            "sys_updated_on>=2025-05-02 08:30:00^ORDERBYsys_updated_on^ORDERBYsys_id"
        );
        assert_eq!(
            changes_after(Some("active=true"), t, "ab"),
            "active=true^sys_updated_on>2025-05-02 08:30:00^NQactive=true^sys_updated_on=2025-05-02 08:30:00^sys_id>ab^ORDERBYsys_updated_on^ORDERBYsys_id"
        );
        assert_eq!(all_after(None, None), "ORDERBYsys_id");
        assert_eq!(all_after(Some("x=1"), Some("ab")), "x=1^sys_id>ab^ORDERBYsys_id");
        assert!(deletes_after("cmdb_ci", t, "").starts_with("tablenameSTARTSWITHcmdb_ci^sys_created_on>="));
        assert_eq!(parse_time("2025-05-02 08:30:00"), Some(t));
        assert_eq!(format_time(t), "2025-05-02 08:30:00");
    }
}
