//! The Debezium change-event envelope → a [`Change`] (pure). See `docs/debezium-events.md` for the
//! format facts this relies on and their sources.
//!
//! - `op` `c` (create), `u` (update), `r` (snapshot read) → an upsert of `after`; `r` is marked as
//!   a snapshot. `d` → a delete (with `before`, when the table logs it). `t` (truncate) and `m`
//!   (logical decoding message) carry no row and are skipped.
//! - The record id is the message key (the table's primary key) as canonical JSON.
//! - The version is the position in the database's log, from `source`, per connector:
//!   PostgreSQL `lsn`; MySQL/MariaDB binlog `file` number, `pos`, `row`; SQL Server and Db2
//!   `commit_lsn`, `change_lsn`, `event_serial_no`; Oracle `scn`; MongoDB `sec`, `ord`. Any other
//!   connector: `source.ts_ms` with the record's offset as tie-breaker. So a re-read or an older
//!   copy of a row change never sorts after a newer one. A last digit orders a delete (`0`) before
//!   an upsert (`1`) at the same position (a primary-key change).

use chrono::{DateTime, TimeZone, Utc};
use dastra_connect_core::canonical::canonical_json;
use dastra_connect_core::event::{sequence_from_time, sequence_from_u64};
use serde_json::Value;

use crate::reader::{Change, Reject, Row};

/// Reads one Debezium change event (`value`, schema envelope already removed) with its message
/// `key`; `offset` is the record's offset (the tie-breaker of the fallback version).
pub fn read_envelope(value: &Value, key: Option<&Value>, offset: i64) -> Result<Change, Reject> {
    let op = value.get("op").and_then(Value::as_str).ok_or_else(|| {
        (
            "not_debezium",
            "the record has no `op`: not a Debezium change event (flattened records are read with `type: topic`)"
                .to_owned(),
        )
    })?;
    let source = value.get("source").filter(|s| s.is_object()).ok_or_else(|| {
        ("not_debezium", format!("the `{op}` event has no `source` block: its version cannot be read"))
    })?;
    let row = match op {
        "c" | "u" | "r" => match value.get("after") {
            Some(after @ Value::Object(_)) => Row::Upsert(after.clone()),
            _ => return Err(("not_debezium", format!("the `{op}` event has no `after` row"))),
        },
        "d" => Row::Delete(value.get("before").filter(|b| b.is_object()).cloned()),
        "t" => Row::Skip("truncate"),
        "m" => Row::Skip("message"),
        other => return Err(("not_debezium", format!("unknown Debezium `op` {other:?}"))),
    };
    let record_id = match key {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(k) if !k.is_null() => canonical_json(k),
        _ if matches!(row, Row::Skip(_)) => String::new(),
        _ => {
            return Err((
                "no_key",
                "the change event has no message key (a table without primary key): its row cannot be tracked".into(),
            ));
        }
    };
    let time = millis(source.get("ts_ms")).or_else(|| millis(value.get("ts_ms")));
    // A primary-key change is a delete under the old key and a create under the new one at the
    // same log position: the last digit puts the delete first, so a mapping that gives both rows
    // the same entity (an id from another column) ends with the create.
    let last = if matches!(row, Row::Delete(_)) { '0' } else { '1' };
    let mut sequence = position(source, time, offset).map_err(|e| ("no_version", e))?;
    sequence.push(last);
    Ok(Change { record_id, sequence, time, snapshot: op == "r", row, also: Vec::new() })
}

fn millis(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_i64).and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

/// A non-negative integer field, also when written as a decimal string (Oracle's `scn`).
fn uint(source: &Value, field: &str) -> Result<u64, String> {
    match source.get(field) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("`source.{field}` is missing or not a non-negative integer"))
}

fn opt_uint(source: &Value, field: &str) -> u64 {
    uint(source, field).unwrap_or(0)
}

/// A log sequence number written as text (SQL Server `0000002b:00000bb0:0003`): fixed-width hex
/// groups, so lower-cased text order is log order.
fn lsn_text(source: &Value, field: &str) -> Result<String, String> {
    match source.get(field).and_then(Value::as_str) {
        Some(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit() || c == ':') => Ok(s.to_ascii_lowercase()),
        Some(_) => Err(format!("`source.{field}` is not a log sequence number")),
        None => Ok("-".into()),
    }
}

/// The version of a change from its `source` block (see the module doc).
pub fn position(source: &Value, time: Option<DateTime<Utc>>, offset: i64) -> Result<String, String> {
    let connector = source.get("connector").and_then(Value::as_str).unwrap_or("");
    Ok(match connector {
        "postgresql" => sequence_from_u64(uint(source, "lsn")?),
        "mysql" | "mariadb" => {
            let file = source.get("file").and_then(Value::as_str).unwrap_or("");
            let number: u64 = file
                .rsplit('.')
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("`source.file` {file:?} does not end in a binlog number"))?;
            format!("{number:020}{:020}{:010}", uint(source, "pos")?, opt_uint(source, "row"))
        }
        "sqlserver" | "db2" => format!(
            "{}/{}/{:020}",
            lsn_text(source, "commit_lsn")?,
            lsn_text(source, "change_lsn")?,
            opt_uint(source, "event_serial_no")
        ),
        "oracle" => sequence_from_u64(uint(source, "scn")?),
        "mongodb" => format!("{:020}{:010}", uint(source, "sec")?, opt_uint(source, "ord")),
        _ => {
            let t = time.ok_or("neither `source.ts_ms` nor `ts_ms` gives the change's time")?;
            sequence_from_time(t, offset.max(0) as u64)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dastra_connect_core::event::is_newer;
    use serde_json::json;

    fn pg(op: &str, lsn: u64, after: Value) -> Value {
        json!({"op": op, "before": null, "after": after, "ts_ms": 1_700_000_000_500_i64,
               "source": {"connector": "postgresql", "lsn": lsn, "ts_ms": 1_700_000_000_000_i64, "snapshot": "false"}})
    }

    #[test]
    fn ops_map_to_upserts_deletes_and_skips() {
        let key = json!({"id": 7});
        let c = read_envelope(&pg("r", 10, json!({"id": 7, "name": "a"})), Some(&key), 0).unwrap();
        assert!(c.snapshot);
        assert_eq!(c.record_id, r#"{"id":7}"#);
        assert!(matches!(c.row, Row::Upsert(ref r) if r["name"] == "a"));
        assert_eq!(c.time.unwrap().timestamp_millis(), 1_700_000_000_000);
        let u = read_envelope(&pg("u", 11, json!({"id": 7, "name": "b"})), Some(&key), 1).unwrap();
        assert!(!u.snapshot && is_newer(&u.sequence, &c.sequence));
        let mut d = pg("d", 12, Value::Null);
        d["before"] = json!({"id": 7});
        let d = read_envelope(&d, Some(&key), 2).unwrap();
        assert!(matches!(d.row, Row::Delete(Some(_))));
        assert!(matches!(read_envelope(&pg("t", 13, Value::Null), None, 3).unwrap().row, Row::Skip(_)));
        // A primary-key change: delete under the old key, create under the new one, one LSN.
        let create = read_envelope(&pg("c", 12, json!({"id": 8})), Some(&json!({"id": 8})), 3).unwrap();
        assert!(is_newer(&create.sequence, &d.sequence) && is_newer(&d.sequence, &u.sequence));
        assert_eq!(read_envelope(&json!({"id": 1}), Some(&key), 0).unwrap_err().0, "not_debezium");
        assert_eq!(read_envelope(&pg("u", 11, json!({"id": 7})), None, 0).unwrap_err().0, "no_key");
        assert_eq!(read_envelope(&pg("x", 11, json!({"id": 7})), Some(&key), 0).unwrap_err().0, "not_debezium");
    }

    #[test]
    fn positions_order_like_the_log() {
        let mysql = |file: &str, pos: u64, row: u64| {
            position(&json!({"connector": "mysql", "file": file, "pos": pos, "row": row}), None, 0).unwrap()
        };
        assert!(is_newer(&mysql("mysql-bin.000003", 10, 0), &mysql("mysql-bin.000002", 999_999, 5)));
        assert!(is_newer(&mysql("mysql-bin.000003", 10, 1), &mysql("mysql-bin.000003", 10, 0)));
        assert!(is_newer(&mysql("mysql-bin.000003", 11, 0), &mysql("mysql-bin.000003", 10, 9)));
        let pg = |lsn: u64| position(&json!({"connector": "postgresql", "lsn": lsn}), None, 0).unwrap();
        assert!(is_newer(&pg(9_000_000_000), &pg(999)));
        let ms = |c: &str, ch: &str, n: u64| {
            position(
                &json!({"connector": "sqlserver", "commit_lsn": c, "change_lsn": ch, "event_serial_no": n}),
                None,
                0,
            )
            .unwrap()
        };
        assert!(is_newer(
            &ms("0000002B:00000BB0:0003", "0000002B:00000BA0:0002", 2),
            &ms("0000002b:00000bb0:0003", "0000002b:00000ba0:0002", 1)
        ));
        assert!(is_newer(
            &ms("0000002c:00000010:0001", "0000002c:00000010:0001", 1),
            &ms("0000002b:00000bb0:0003", "0000002b:00000bb0:0003", 9)
        ));
        let ora = |scn: &str| position(&json!({"connector": "oracle", "scn": scn}), None, 0).unwrap();
        assert!(is_newer(&ora("10000"), &ora("9999")));
        let mongo =
            |sec: u64, ord: u64| position(&json!({"connector": "mongodb", "sec": sec, "ord": ord}), None, 0).unwrap();
        assert!(is_newer(&mongo(100, 2), &mongo(100, 1)) && is_newer(&mongo(101, 1), &mongo(100, 9)));
        let t = Utc.timestamp_millis_opt(1_000).single();
        let other = |off: i64| position(&json!({"connector": "vitess"}), t, off).unwrap();
        assert!(is_newer(&other(5), &other(4)));
        assert!(position(&json!({"connector": "postgresql"}), None, 0).unwrap_err().contains("lsn"));
        assert!(position(&json!({"connector": "mysql", "file": "x", "pos": 1}), None, 0).is_err());
    }
}
