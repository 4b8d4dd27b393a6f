//! Building the SOQL queries the source sends (pure): field names checked, string literals quoted
//! with SOQL's escapes, dateTime literals in UTC with whole seconds, and the keyset condition
//! "strictly after `(SystemModstamp, Id)`". See `docs/salesforce-api.md` for the rules used.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use dastra_connect_core::source::Cursor;

/// A field name or a relationship path (`Contact.Email`): names of letters, digits and `_`,
/// starting with a letter, joined by `.`. Anything else could change the query's meaning.
pub fn is_field_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// A SOQL string literal: `'…'` with `\`, `'`, `"`, newlines and tabs escaped by a backslash.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A SOQL dateTime literal (unquoted), UTC, whole seconds: `2024-05-01T10:00:00Z`.
pub fn datetime(t: DateTime<Utc>) -> String {
    t.with_nanosecond(0).unwrap_or(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The condition "strictly after `after`" in `(SystemModstamp, Id)` order; an open cursor means
/// "at or after its time". SystemModstamp has whole seconds; a cursor time with a fraction (never
/// from Salesforce) is read from its second on, the caller drops what is not after it.
pub fn after_cursor(after: &Cursor) -> String {
    let t = datetime(after.updated);
    if after.is_open() || after.updated.nanosecond() != 0 {
        format!("SystemModstamp >= {t}")
    } else {
        format!("(SystemModstamp > {t} OR (SystemModstamp = {t} AND Id > {}))", quote(&after.id))
    }
}

/// `SELECT <fields> FROM <object> [WHERE <conditions joined by AND>] ORDER BY <order> LIMIT <n>`.
pub fn select(fields: &[String], object: &str, conditions: &[String], order_by: &str, limit: u32) -> String {
    let mut q = format!("SELECT {} FROM {object}", fields.join(", "));
    if !conditions.is_empty() {
        q.push_str(" WHERE ");
        q.push_str(&conditions.join(" AND "));
    }
    q.push_str(&format!(" ORDER BY {order_by} LIMIT {limit}"));
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn field_names_and_literals() {
        for ok in ["Name", "Contact.Email", "Privacy_Type__c", "RecordType.DeveloperName"] {
            assert!(is_field_name(ok), "{ok}");
        }
        for bad in ["", "a b", "Name,Id", "x.", ".x", "1x", "Type' OR Id != '", "(SELECT"] {
            assert!(!is_field_name(bad), "{bad}");
        }
        assert_eq!(quote("O'Brien \\ \"x\"\n"), r#"'O\'Brien \\ \"x\"\n'"#);
    }

    #[test]
    fn the_cursor_condition_is_a_keyset() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 7).unwrap();
        assert_eq!(after_cursor(&Cursor::new(t, "")), "SystemModstamp >= 2024-05-01T10:00:07Z");
        assert_eq!(
            after_cursor(&Cursor::new(t, "001A'")),
            "(SystemModstamp > 2024-05-01T10:00:07Z OR (SystemModstamp = 2024-05-01T10:00:07Z AND Id > '001A\\''))"
        );
        let frac = t + chrono::Duration::milliseconds(5);
        assert_eq!(after_cursor(&Cursor::new(frac, "001")), "SystemModstamp >= 2024-05-01T10:00:07Z");
        let q = select(&["Id".into(), "Name".into()], "Account", &["Type = 'x'".into()], "Id", 10);
        assert_eq!(q, "SELECT Id, Name FROM Account WHERE Type = 'x' ORDER BY Id LIMIT 10");
    }
}
