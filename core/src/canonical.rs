//! The workspace's one canonical JSON text (object keys sorted, no whitespace) and the hashes built
//! on it: the sink's content hash of a payload ([`crate::event::Payload::content_hash`]) and the
//! content version of a source record that has no modification counter ([`content_version`]).

use serde_json::Value;

/// `v` as canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace, scalars as
/// `serde_json` writes them. Equal values give equal text whatever the key order they were read in.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

/// Appends the canonical JSON of `v` to `out`.
pub fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A stable 64-bit content version of a source record: FNV-1a of its [`canonical_json`]. For
/// systems whose records carry no modification counter (Coupa's `updated-at` has whole seconds, a
/// file row has only its content): two different contents at one instant get different versions.
pub fn content_version(v: &Value) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical_json(v).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter_and_content_does() {
        let a = json!({"id": 1, "name": "x", "nested": {"a": 1, "b": [1, 2]}});
        let b: Value = serde_json::from_str(r#"{"nested": {"b": [1, 2], "a": 1}, "name": "x", "id": 1}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"id":1,"name":"x","nested":{"a":1,"b":[1,2]}}"#);
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(content_version(&a), content_version(&b));
        assert_ne!(content_version(&a), content_version(&json!({"id": 1, "name": "y"})));
        assert_ne!(content_version(&json!([1, 2])), content_version(&json!([2, 1])), "arrays keep their order");
        assert_eq!(canonical_json(&json!({"s": "a\"b"})), r#"{"s":"a\"b"}"#, "strings are escaped");
    }
}
