//! Export files → rows (JSON objects): CSV per RFC 4180 (quoted fields with doubled quotes and line
//! breaks, CRLF or LF, a UTF-8 BOM; delimiter `;`, `,` or tab given or detected from the header),
//! JSON (an array of objects, at the top or under a JSON pointer) and NDJSON (one object per line).
//! Pure: no I/O. A row that cannot be read (wrong number of CSV fields, an unterminated quote, an
//! NDJSON line that is not an object) becomes [`Row::Malformed`], which the source dead-letters; a
//! file that cannot be read at all is a [`ParseError`] (the poll fails and is retried: a half-written
//! file must not look like a file whose rows were all deleted).

use dastra_connect_core::{Classify, ErrorClass};
use serde_json::{Map, Value};

/// One row of an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// A readable row.
    Ok {
        /// 1-based line where the row starts.
        line: usize,
        /// Column → value (CSV values are strings).
        value: Map<String, Value>,
    },
    /// A row that cannot be read.
    Malformed {
        /// 1-based line where the row starts.
        line: usize,
        /// Its id when the id column could still be read.
        id: Option<String>,
        /// Why.
        reason: String,
        /// The raw text (CSV, NDJSON) or value (JSON).
        raw: String,
    },
}

/// A file that cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not UTF-8.
    #[error("the file is not UTF-8 text (byte {0})")]
    NotUtf8(usize),
    /// A CSV file without a header row.
    #[error("the CSV file has no header row")]
    NoHeader,
    /// The same column twice in the header.
    #[error("the CSV header names column `{0}` twice")]
    DuplicateColumn(String),
    /// Not JSON.
    #[error("the file is not valid JSON: {0}")]
    BadJson(String),
    /// JSON without an array of records where expected.
    #[error("no array of records at `{0}`")]
    NotAnArray(String),
}

impl Classify for ParseError {
    fn class(&self) -> ErrorClass {
        // Retried at the next poll: the file may be rewritten (or still being written).
        ErrorClass::Retryable
    }
    fn code(&self) -> &'static str {
        match self {
            ParseError::NotUtf8(_) => "file_not_utf8",
            ParseError::NoHeader | ParseError::DuplicateColumn(_) => "file_bad_header",
            ParseError::BadJson(_) => "file_bad_json",
            ParseError::NotAnArray(_) => "file_not_an_array",
        }
    }
}

/// Bytes → text (a UTF-8 BOM removed).
pub fn text(bytes: &[u8]) -> Result<&str, ParseError> {
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| ParseError::NotUtf8(e.valid_up_to()))
}

/// The delimiter of a CSV header line: the most frequent of `;`, `,` and tab outside quotes
/// (`,` on a tie or when none occurs: a single-column file).
pub fn detect_delimiter(text: &str) -> char {
    let mut counts = [(';', 0usize), (',', 0), ('\t', 0)];
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '\n' | '\r' if !quoted => break,
            _ if !quoted => {
                for slot in counts.iter_mut() {
                    if slot.0 == c {
                        slot.1 += 1;
                    }
                }
            }
            _ => {}
        }
    }
    let best = counts.iter().max_by_key(|(_, n)| *n).map(|(c, n)| (*c, *n)).unwrap_or((',', 0));
    if best.1 == 0 || counts[1].1 == best.1 { ',' } else { best.0 }
}

/// A raw CSV record: start line, fields, raw text, and whether a quote was left open.
struct RawRecord {
    line: usize,
    fields: Vec<String>,
    raw: String,
    open_quote: bool,
}

fn records(text: &str, delim: char) -> Vec<RawRecord> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut raw = String::new();
        let mut quoted = false;
        let mut was_quoted = false;
        while let Some(c) = chars.next() {
            if quoted {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                        raw.push_str("\"\"");
                        continue;
                    }
                    quoted = false;
                    raw.push(c);
                    continue;
                }
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
                raw.push(c);
                continue;
            }
            match c {
                '"' if field.is_empty() && !was_quoted => {
                    quoted = true;
                    was_quoted = true;
                    raw.push(c);
                }
                c if c == delim => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                    raw.push(c);
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' | '\r' => {
                    line += 1;
                    break;
                }
                c => {
                    field.push(c);
                    raw.push(c);
                }
            }
        }
        fields.push(field);
        // Blank lines are not records.
        if fields.len() == 1 && fields[0].is_empty() && !was_quoted {
            continue;
        }
        out.push(RawRecord { line: start, fields, raw, open_quote: quoted });
    }
    out
}

/// CSV text → rows keyed by the header's column names (trimmed). `id_column` names the column
/// used to label malformed rows.
pub fn parse_csv(text: &str, delimiter: Option<char>, id_column: &str) -> Result<Vec<Row>, ParseError> {
    let delim = delimiter.unwrap_or_else(|| detect_delimiter(text));
    let mut recs = records(text, delim).into_iter();
    let header = recs.next().ok_or(ParseError::NoHeader)?;
    let columns: Vec<String> = header.fields.iter().map(|c| c.trim().to_owned()).collect();
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            return Err(ParseError::DuplicateColumn(c.clone()));
        }
    }
    let id_index = columns.iter().position(|c| c == id_column);
    let mut rows = Vec::new();
    for r in recs {
        let id = id_index.and_then(|i| r.fields.get(i)).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if r.open_quote {
            rows.push(Row::Malformed {
                line: r.line,
                id,
                reason: format!("line {}: a quoted field is never closed", r.line),
                raw: r.raw,
            });
            continue;
        }
        if r.fields.len() != columns.len() {
            rows.push(Row::Malformed {
                line: r.line,
                id,
                reason: format!("line {}: {} fields where the header has {}", r.line, r.fields.len(), columns.len()),
                raw: r.raw,
            });
            continue;
        }
        let value = columns.iter().cloned().zip(r.fields.into_iter().map(Value::String)).collect();
        rows.push(Row::Ok { line: r.line, value });
    }
    Ok(rows)
}

fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// JSON text → rows: the array at `pointer` (RFC 6901; empty = the top level).
pub fn parse_json(text: &str, pointer: &str) -> Result<Vec<Row>, ParseError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| ParseError::BadJson(e.to_string()))?;
    let Some(Value::Array(items)) = doc.pointer(pointer) else {
        return Err(ParseError::NotAnArray(if pointer.is_empty() {
            "the top level".into()
        } else {
            pointer.to_owned()
        }));
    };
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(m) => Row::Ok { line: i + 1, value: m.clone() },
            other => Row::Malformed {
                line: i + 1,
                id: None,
                reason: format!("element {} is not an object", i + 1),
                raw: other.to_string(),
            },
        })
        .collect())
}

/// NDJSON text → rows, one per non-blank line.
pub fn parse_ndjson(text: &str, id_column: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Object(m)) => rows.push(Row::Ok { line: i + 1, value: m }),
            Ok(other) => rows.push(Row::Malformed {
                line: i + 1,
                id: None,
                reason: format!("line {}: not a JSON object", i + 1),
                raw: other.to_string(),
            }),
            Err(e) => {
                // A broken line may still show its id: look for `"<id column>": …` textually.
                let id = serde_json::from_str::<Value>(&format!(
                    "{{{}}}",
                    extract_pair(trimmed, id_column).unwrap_or_default()
                ))
                .ok()
                .and_then(|v| id_text(v.get(id_column)));
                rows.push(Row::Malformed {
                    line: i + 1,
                    id,
                    reason: format!("line {}: invalid JSON ({e})", i + 1),
                    raw: line.to_owned(),
                })
            }
        }
    }
    rows
}

/// `"key": <scalar>` cut out of a broken JSON line.
fn extract_pair(line: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let start = line.find(&needle)?;
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(rows: &[Row]) -> Vec<Value> {
        rows.iter()
            .filter_map(|r| match r {
                Row::Ok { value, .. } => Some(Value::Object(value.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn csv_with_semicolons_quotes_crlf_and_a_bad_row() {
        let t = text(b"\xEF\xBB\xBFid;name;note\r\n1;\"Acme; Inc\";\"said \"\"hi\"\"\"\r\n\r\n2;Globex;\"two\nlines\"\r\n3;short\r\n").unwrap();
        assert_eq!(detect_delimiter(t), ';');
        let rows = parse_csv(t, None, "id").unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            ok(&rows),
            vec![
                json!({"id": "1", "name": "Acme; Inc", "note": "said \"hi\""}),
                json!({"id": "2", "name": "Globex", "note": "two\nlines"})
            ]
        );
        let Row::Malformed { line, id, reason, .. } = &rows[2] else { panic!("{rows:?}") };
        assert_eq!((*line, id.as_deref()), (6, Some("3")));
        assert!(reason.contains("2 fields where the header has 3"), "{reason}");
    }

    #[test]
    fn comma_csv_unterminated_quote_and_header_errors() {
        let rows = parse_csv("a,b\n1,\"x\n", None, "a").unwrap();
        assert!(matches!(&rows[0], Row::Malformed { reason, .. } if reason.contains("never closed")));
        assert_eq!(parse_csv("", None, "a").unwrap_err(), ParseError::NoHeader);
        assert_eq!(parse_csv("a,a\n1,2\n", None, "a").unwrap_err(), ParseError::DuplicateColumn("a".into()));
        assert_eq!(detect_delimiter("only\n"), ',');
        assert_eq!(detect_delimiter("a\tb\tc\n"), '\t');
        assert!(text(b"\xff\xfe").is_err());
    }

    #[test]
    fn json_arrays_and_ndjson() {
        let rows = parse_json(r#"{"data": [{"id": 1}, 7]}"#, "/data").unwrap();
        assert_eq!(ok(&rows), vec![json!({"id": 1})]);
        assert!(matches!(rows[1], Row::Malformed { .. }));
        assert!(matches!(parse_json("{}", ""), Err(ParseError::NotAnArray(_))));
        assert!(matches!(parse_json("[", ""), Err(ParseError::BadJson(_))));
        let rows = parse_ndjson("{\"id\": \"a\"}\n\n{\"id\": \"b\", \"x\": tru}\n[1]\n", "id");
        assert_eq!(rows.len(), 3);
        let Row::Malformed { id, .. } = &rows[1] else { panic!() };
        assert_eq!(id.as_deref(), Some("b"), "the id of a broken line is still found");
        assert!(matches!(&rows[2], Row::Malformed { reason, .. } if reason.contains("not a JSON object")));
    }
}
