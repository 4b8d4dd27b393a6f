//! `${ENV}` values go into the parsed YAML scalars, never into the text: any string (quotes, `: `,
//! `#`, newlines, control characters, non-ASCII) round-trips exactly in plain, quoted and block
//! positions; comments are not interpolated; plain references are typed like YAML; errors name the
//! key and the variable, never the value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dastra_connect_core::config::{Secret, from_yaml_str_with_env};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    plain: String,
    single: String,
    double: String,
    block: Option<String>,
    key: Secret,
    #[serde(default)]
    list: Vec<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    nested: Option<Nested>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Nested {
    inner: u32,
}

const DOC: &str = r#"
# a comment may mention ${UNSET_IN_COMMENT} or even ${not valid} and an unterminated ${ here
plain: ${V}
single: '${V}'
double: "${V}"
block: |-
  ${V}
key: ${V}   # trailing comment with ${ALSO_UNSET}
list: [ "${V}", 'pre-${V}-post' ]
"#;

fn env_with(v: &str) -> impl Fn(&str) -> Option<String> + '_ {
    move |k| (k == "V").then(|| v.to_owned())
}

/// Values a secret generator could produce, and the ones that broke text substitution.
fn nasty() -> Vec<String> {
    let mut out: Vec<String> = [
        r#"ab"c: d"#,
        "ab\"c: d # not a comment",
        "'single' and \"double\"",
        "line1\nline2\n  indented: true\n- item",
        "{flow: [map]}",
        "[1, 2]",
        "& anchor * alias ! tag | > %",
        "ünïcødé — 日本語 🙂",
        "\t tabs and trailing spaces  ",
        " leading space",
        "",
        "null",
        "~",
        "0123",
        "1e3",
        "0x1F",
        ".inf",
        "yes",
        "${NESTED}",
        "$$ and $ alone",
        "---\n...",
        "\\ backslash \\n escaped",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // Plus pseudo-random strings over every ASCII byte and a few multi-byte characters.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let alphabet: Vec<char> = (1u8..128).map(char::from).chain(['é', '€', '𝄞', '\u{feff}', '\u{2028}']).collect();
    for _ in 0..300 {
        let mut s = String::new();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 40) as usize;
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        out.push(s);
    }
    out
}

#[test]
fn any_value_round_trips_in_every_scalar_position() {
    for v in nasty() {
        let doc: Doc = from_yaml_str_with_env(DOC, env_with(&v)).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(doc.plain, v, "plain");
        assert_eq!(doc.single, v, "single-quoted");
        assert_eq!(doc.double, v, "double-quoted");
        assert_eq!(doc.block.as_deref(), Some(v.as_str()), "block scalar");
        assert_eq!(doc.key.expose(), v, "secret");
        assert_eq!(doc.list, vec![v.clone(), format!("pre-{v}-post")], "flow sequence");
    }
}

#[test]
fn the_value_that_used_to_break_the_yaml_round_trips() {
    let v = r#"ab"c: d"#;
    let doc: Doc = from_yaml_str_with_env(DOC, env_with(v)).unwrap();
    assert_eq!(doc.key.expose(), v);
    assert_eq!(doc.double, v);
}

#[test]
fn plain_references_are_typed_like_yaml_and_quoted_ones_stay_strings() {
    let yaml =
        "plain: ${P}\nsingle: 'x'\ndouble: \"${P}\"\nkey: ${P}\nport: ${P}\nenabled: ${B}\nnested: { inner: ${P} }\n";
    let env = |k: &str| match k {
        "P" => Some("8080".to_owned()),
        "B" => Some("true".to_owned()),
        _ => None,
    };
    let doc: Doc = from_yaml_str_with_env(yaml, env).unwrap();
    assert_eq!(doc.port, Some(8080));
    assert_eq!(doc.enabled, Some(true));
    assert_eq!(doc.nested.unwrap().inner, 8080);
    assert_eq!(doc.double, "8080");
    assert_eq!(doc.plain, "8080", "a string field accepts a numeric-looking value");
    assert_eq!(doc.key.expose(), "8080");
    // A value whose number would print differently stays the exact string.
    let doc: Doc =
        from_yaml_str_with_env("plain: ${P}\nsingle: a\ndouble: b\nkey: ${P}\n", |_| Some("0123".into())).unwrap();
    assert_eq!(doc.key.expose(), "0123");
    assert_eq!(doc.plain, "0123");
}

/// Like `BusConfig` and the connectors: an internally tagged enum, where serde reports errors at
/// the enum's path only.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Tagged {
    Kafka { brokers: String, partitions: u32, user: Option<String> },
}

#[test]
fn numeric_values_reach_string_fields_inside_tagged_enums() {
    let yaml = "type: kafka\nbrokers: ${N}\npartitions: ${N}\nuser: ${U}\n";
    let env = |k: &str| match k {
        "N" => Some("7".to_owned()),
        "U" => Some("1234".to_owned()),
        _ => None,
    };
    let Tagged::Kafka { brokers, partitions, user } = from_yaml_str_with_env(yaml, env).unwrap();
    assert_eq!((brokers.as_str(), partitions, user.as_deref()), ("7", 7, Some("1234")));
    // The same value wanted as a number first, then as a string.
    let yaml = "type: kafka\npartitions: ${N}\nbrokers: ${N}\n";
    let Tagged::Kafka { brokers, partitions, .. } = from_yaml_str_with_env(yaml, env).unwrap();
    assert_eq!((brokers.as_str(), partitions), ("7", 7));
    // A value that is not a number where one is needed is still an error naming no value.
    let err = from_yaml_str_with_env::<Tagged>("type: kafka\npartitions: ${U}x\nbrokers: b\n", env).unwrap_err();
    assert!(err.reason.contains("expected u32") && !err.reason.contains("1234"), "{err}");
}

#[test]
fn defaults_escapes_and_missing_variables() {
    let yaml = "plain: ${MISSING:-fallback: with colon}\nsingle: 'cost $$5'\ndouble: \"$${NOT_A_REF}\"\nkey: k\n";
    let doc: Doc = from_yaml_str_with_env(yaml, |_| None).unwrap();
    assert_eq!(doc.plain, "fallback: with colon");
    assert_eq!(doc.single, "cost $5");
    assert_eq!(doc.double, "${NOT_A_REF}");

    let err = from_yaml_str_with_env::<Doc>("plain: a\nsingle: b\ndouble: c\nkey: ${NOPE}\n", |_| None).unwrap_err();
    assert_eq!(err.path, "key");
    assert!(err.reason.contains("`NOPE`"), "{err}");
    let err =
        from_yaml_str_with_env::<Doc>("plain: a\nsingle: b\ndouble: ${bad name}\nkey: k\n", |_| None).unwrap_err();
    assert_eq!(err.path, "double");
}

#[test]
fn errors_name_the_key_never_the_value() {
    let secret = "hunter2-\"quoted\": colon";
    // A secret in a field of the wrong type: the error names the field and the type, not the value.
    let yaml = "plain: a\nsingle: b\ndouble: c\nkey: k\nport: \"${S}\"\n";
    let err = from_yaml_str_with_env::<Doc>(yaml, |_| Some(secret.to_owned())).unwrap_err();
    assert_eq!(err.path, "port");
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("expected u16"), "{text}");
    // A YAML syntax error elsewhere in the file never shows a substituted value either.
    let yaml = "plain: ${S}\nsingle: [unclosed\n";
    let err = from_yaml_str_with_env::<Doc>(yaml, |_| Some(secret.to_owned())).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(format!("{:?}", Secret::new(secret)) == "***");
}
