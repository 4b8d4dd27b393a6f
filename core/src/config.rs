//! Configuration helpers: YAML with `${ENV}` interpolation, `*_file` secrets, errors that name the key
//! path, and a [`Secret`] type that never prints its value.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configuration error: the key path (e.g. `connectors[0].bus.brokers`) and why it is wrong.
#[derive(Debug, thiserror::Error)]
#[error("config error at `{path}`: {reason}")]
pub struct ConfigError {
    /// Dotted key path into the document; `.` for the whole document.
    pub path: String,
    /// What is wrong, as an operator would want to read it.
    pub reason: String,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { path: path.into(), reason: reason.into() }
    }
}

impl crate::Classify for ConfigError {
    fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::Fatal
    }
    fn code(&self) -> &'static str {
        "config"
    }
}

/// A secret string (password, token, API key). `Debug`, `Display` and `Serialize` print `***`;
/// only [`Secret::expose`] gives the value, so it never reaches logs, metrics, errors or the DLQ by
/// accident.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for the one place that must send it (an auth header, a client property).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no value was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A plain `${KEY}` whose value reads as a number or boolean is typed that way (only when the
        // type prints back the exact text), so accept those too.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Secret, E> {
                Ok(Secret(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Secret, E> {
                Ok(Secret(serde_yaml::Number::from(v).to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A secret. May also be given as `<key>_file: /path` (the file's content, trimmed) or `${ENV_VAR}`."
        })
    }
}

/// Replaces `${NAME}` and `${NAME:-default}` in a string with environment values; `$$` is a literal
/// `$`. A missing variable without default is an error naming it (never its value). This works on
/// one scalar value; config files go through [`from_yaml_str`], which never pastes values into the
/// YAML text.
pub fn interpolate_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for piece in scan_references(text) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Reference(r) => out.push_str(&r.resolve(".", &lookup)?),
        }
    }
    Ok(out)
}

/// A `${…}` reference found in the config text.
#[derive(Debug, Clone)]
enum Reference {
    /// `${NAME}` or `${NAME:-default}`.
    Var { name: String, default: Option<String> },
    /// Something that is not a valid reference (reported only if it ends up in a value).
    Invalid(String),
}

impl Reference {
    fn parse(expr: &str) -> Reference {
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d.to_owned())),
            None => (expr, None),
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            Reference::Var { name: name.to_owned(), default }
        } else {
            Reference::Invalid(format!("`${{{expr}}}` is not a valid environment reference"))
        }
    }

    /// The value, or an error at `path` that names the variable (never a value).
    fn resolve(&self, path: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
        match self {
            Reference::Invalid(reason) => Err(ConfigError::new(path, reason.clone())),
            Reference::Var { name, default } => match (lookup(name), default) {
                (Some(v), _) => Ok(v),
                (None, Some(d)) => Ok(d.clone()),
                (None, None) => Err(ConfigError::new(
                    path,
                    format!(
                        "environment variable `{name}` is referenced but not set (use `${{{name}:-default}}` for a default)"
                    ),
                )),
            },
        }
    }
}

enum Piece<'a> {
    Text(&'a str),
    Reference(Reference),
}

/// Splits `text` into literal text and references. `$$` yields a literal `$`; an unterminated `${`
/// (no `}` on the same line) is an invalid reference.
fn scan_references(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push(Piece::Text(&rest[..pos]));
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push(Piece::Text("$"));
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let line_end = body.find('\n').unwrap_or(body.len());
            match body[..line_end].find('}') {
                Some(end) => {
                    out.push(Piece::Reference(Reference::parse(&body[..end])));
                    rest = &body[end + 1..];
                }
                None => {
                    out.push(Piece::Reference(Reference::Invalid(
                        "unterminated `${` (no `}` on the same line)".into(),
                    )));
                    rest = body;
                }
            }
        } else {
            out.push(Piece::Text("$"));
            rest = after;
        }
    }
    out.push(Piece::Text(rest));
    out
}

/// Config text with every `${…}` replaced by a placeholder made of digits only, which cannot change
/// the YAML structure wherever it stands (plain, quoted or block scalar, key, comment). A placeholder
/// that is a whole plain scalar parses as a number, so the parsed tree still tells a plain
/// `${PORT}` (typed like YAML would type the value) from a quoted `"${KEY}"` (always a string).
struct Templated {
    text: String,
    prefix: String,
    references: Vec<Reference>,
}

/// Digits of a placeholder after its prefix.
const INDEX_DIGITS: usize = 9;

impl Templated {
    fn new(text: &str) -> Templated {
        // An 18-digit prefix+index stays an i64; pick a prefix the text does not already contain.
        let mut seed: u64 = 730_194_562;
        let prefix = loop {
            let p = seed.to_string();
            if !text.contains(&p) {
                break p;
            }
            seed += 1;
        };
        let mut out = String::with_capacity(text.len());
        let mut references = Vec::new();
        for piece in scan_references(text) {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Reference(r) => {
                    out.push_str(&format!("{prefix}{:0width$}", references.len(), width = INDEX_DIGITS));
                    references.push(r);
                }
            }
        }
        Templated { text: out, prefix, references }
    }

    /// Index of the reference when `s` is exactly one placeholder.
    fn whole(&self, s: &str) -> Option<usize> {
        let digits = s.strip_prefix(self.prefix.as_str())?;
        (digits.len() == INDEX_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
            .filter(|i| *i < self.references.len())
    }

    /// `s` with its placeholders replaced by their values.
    fn substitute(&self, s: &str, path: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(pos) = rest.find(self.prefix.as_str()) {
            let candidate = rest.get(pos..pos + self.prefix.len() + INDEX_DIGITS);
            match candidate.and_then(|c| self.whole(c)) {
                Some(i) => {
                    out.push_str(&rest[..pos]);
                    out.push_str(&self.references[i].resolve(path, env)?);
                    rest = &rest[pos + self.prefix.len() + INDEX_DIGITS..];
                }
                None => {
                    out.push_str(&rest[..pos + 1]);
                    rest = &rest[pos + 1..];
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Replaces placeholders in every scalar of `value` (keys included), recursively. A plain whole
    /// reference is typed (see [`typed_plain_scalar`]) unless its path is in `as_string`; the paths
    /// (and values) of those that can be typed are added to `typed`.
    fn apply(
        &self,
        value: &mut serde_yaml::Value,
        path: &str,
        env: &dyn Fn(&str) -> Option<String>,
        as_string: &HashSet<String>,
        typed: &mut Vec<(String, String)>,
    ) -> Result<(), ConfigError> {
        use serde_yaml::Value;
        match value {
            Value::String(s) => {
                if s.contains(self.prefix.as_str()) {
                    *s = self.substitute(s, path, env)?;
                }
            }
            Value::Number(n) => {
                if let Some(i) = self.whole(&n.to_string()) {
                    let v = self.references[i].resolve(path, env)?;
                    let as_typed = typed_plain_scalar(v.clone());
                    let typeable = !matches!(as_typed, serde_yaml::Value::String(_));
                    *value = if as_string.contains(path) { serde_yaml::Value::String(v.clone()) } else { as_typed };
                    if typeable {
                        typed.push((path.to_owned(), v));
                    }
                }
            }
            Value::Sequence(items) => {
                for (i, v) in items.iter_mut().enumerate() {
                    self.apply(v, &format!("{path}[{i}]"), env, as_string, typed)?;
                }
            }
            Value::Mapping(map) => {
                let old = std::mem::take(map);
                for (mut k, mut v) in old {
                    let key_path = join(path, &key_text(&k));
                    self.apply(&mut k, &key_path, env, as_string, &mut Vec::new())?;
                    let key_path = join(path, &key_text(&k));
                    self.apply(&mut v, &key_path, env, as_string, typed)?;
                    if map.insert(k, v).is_some() {
                        return Err(ConfigError::new(key_path, "duplicate key after `${…}` substitution"));
                    }
                }
            }
            Value::Tagged(t) => self.apply(&mut t.value, path, env, as_string, typed)?,
            Value::Null | Value::Bool(_) => {}
        }
        Ok(())
    }
}

fn key_text(k: &serde_yaml::Value) -> String {
    match k {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        _ => "?".into(),
    }
}

/// The value of a plain `${VAR}` scalar, typed as YAML would type the same text written there, but
/// only when that type gives back exactly the same text (`3`, `true`, `2.5`); anything else
/// (`0123`, `ab: c`, `[x]`, text with newlines) stays the exact string. The value is never parsed as
/// structure.
fn typed_plain_scalar(v: String) -> serde_yaml::Value {
    use serde_yaml::Value;
    if v == "true" || v == "false" {
        return Value::Bool(v == "true");
    }
    let numeric = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'));
    if numeric
        && let Ok(Value::Number(n)) = serde_yaml::from_str::<Value>(&v)
        && n.to_string() == v
    {
        return Value::Number(n);
    }
    Value::String(v)
}

/// Replaces every mapping entry `foo_file: PATH` by `foo: <content of PATH, trimmed>`, recursively.
/// Giving both `foo` and `foo_file` is an error.
fn resolve_secret_files(value: &mut serde_yaml::Value, path: &str) -> Result<(), ConfigError> {
    match value {
        serde_yaml::Value::Mapping(map) => {
            let file_keys: Vec<String> = map
                .keys()
                .filter_map(|k| k.as_str())
                .filter(|k| k.ends_with("_file") && k.len() > 5)
                .map(str::to_owned)
                .collect();
            for fk in file_keys {
                let key = fk.trim_end_matches("_file").to_owned();
                let here = join(path, &fk);
                if map.contains_key(key.as_str()) {
                    return Err(ConfigError::new(here, format!("give either `{key}` or `{fk}`, not both")));
                }
                let file = map
                    .remove(fk.as_str())
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .ok_or_else(|| ConfigError::new(here.clone(), "expected a file path"))?;
                let content = std::fs::read_to_string(&file)
                    .map_err(|e| ConfigError::new(here, format!("cannot read secret file {file}: {e}")))?;
                map.insert(key.into(), serde_yaml::Value::String(content.trim_end_matches(['\n', '\r']).to_owned()));
            }
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or("?").to_owned();
                resolve_secret_files(v, &join(path, &key))?;
            }
            Ok(())
        }
        serde_yaml::Value::Sequence(items) => {
            for (i, v) in items.iter_mut().enumerate() {
                resolve_secret_files(v, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// Parses a YAML config: interpolates the environment, reads `*_file` secrets, then deserializes,
/// reporting the key path of the first error (unknown keys included, via `deny_unknown_fields`).
pub fn from_yaml_str<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    from_yaml_str_with_env(text, |k| std::env::var(k).ok())
}

/// [`from_yaml_str`] with an explicit environment, for tests.
pub fn from_yaml_str_with_env<T: DeserializeOwned>(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<T, ConfigError> {
    // Environment values go into the parsed scalars, never into the text: a secret with `"`, `: `,
    // `#` or a newline cannot change the document's structure, and comments are never interpolated.
    let templated = Templated::new(text);
    let value: serde_yaml::Value = serde_yaml::from_str(&templated.text).map_err(|e| {
        let loc = e.location().map(|l| format!(" (line {}, column {})", l.line(), l.column())).unwrap_or_default();
        ConfigError::new(".", format!("not valid YAML{loc}: {e}"))
    })?;
    // A plain `${PORT}` is typed like YAML types `8080`; when the field wants a string after all
    // (`name: ${NAME}` with NAME=42) it is given the exact string on a second pass.
    let mut as_string = HashSet::new();
    let mut keep_typed = HashSet::new();
    let mut attempts = 0;
    loop {
        let mut doc = value.clone();
        let mut typed = Vec::new();
        templated.apply(&mut doc, "", &env, &as_string, &mut typed)?;
        resolve_secret_files(&mut doc, "")?;
        match serde_path_to_error::deserialize(doc) {
            Ok(v) => return Ok(v),
            Err(e) => {
                let path = e.path().to_string();
                let reason = e.into_inner().to_string();
                // Inside an internally tagged enum serde names only the enum, so the culprit is one
                // of the typed values under it with the quoted text: try them one at a time, in
                // document order, and take one back when it turns out to be wanted as a number.
                attempts += 1;
                if attempts <= 64 {
                    if let Some(p) = wrongly_typed(&reason, &path, &typed)
                        .into_iter()
                        .find(|p| !as_string.contains(p) && !keep_typed.contains(p))
                    {
                        as_string.insert(p);
                        continue;
                    }
                    if let Some(p) = wrongly_stringed(&reason, &path, &typed, &as_string) {
                        as_string.remove(&p);
                        keep_typed.insert(p);
                        continue;
                    }
                }
                return Err(ConfigError::new(if path.is_empty() { ".".into() } else { path }, without_values(&reason)));
            }
        }
    }
}

/// The typed `${…}` substitutions an "invalid type: integer `7`, expected a string" error at `path`
/// can be about: those at or under `path` (inside an internally tagged enum serde reports only the
/// enum's path) whose value is the one quoted.
fn wrongly_typed(reason: &str, path: &str, typed: &[(String, String)]) -> Vec<String> {
    let kinds = ["invalid type: integer `", "invalid type: floating point `", "invalid type: boolean `"];
    let Some(rest) = kinds.iter().find_map(|k| reason.strip_prefix(k)) else { return Vec::new() };
    let Some((quoted, _)) = rest.split_once('`') else { return Vec::new() };
    let under = |p: &str| {
        path.is_empty()
            || path == "."
            || p == path
            || p.strip_prefix(path).is_some_and(|tail| tail.starts_with('.') || tail.starts_with('['))
    };
    typed.iter().filter(|(p, v)| under(p) && v == quoted).map(|(p, _)| p.clone()).collect()
}

/// The last value given as a string (after a [`wrongly_typed`] retry) that an "invalid type: string
/// \"7\", expected u32" error at `path` can be about.
fn wrongly_stringed(
    reason: &str,
    path: &str,
    typed: &[(String, String)],
    as_string: &HashSet<String>,
) -> Option<String> {
    let rest = reason.strip_prefix("invalid type: string \"")?;
    let (quoted, _) = rest.rsplit_once("\", expected")?;
    let under = |p: &str| {
        path.is_empty()
            || path == "."
            || p == path
            || p.strip_prefix(path).is_some_and(|tail| tail.starts_with('.') || tail.starts_with('['))
    };
    typed.iter().rev().find(|(p, v)| as_string.contains(p) && under(p) && v == quoted).map(|(p, _)| p.clone())
}

/// serde's "invalid type: string \"…\", expected …" quotes the value, which may be a secret: keep
/// the kind and what was expected, drop the value.
fn without_values(reason: &str) -> String {
    for head in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = reason.strip_prefix(head)
            && let Some(expected) = rest.rfind(", expected")
        {
            let kind = rest.split([' ', ',']).next().unwrap_or("value");
            return format!("{head}{kind}{}", &rest[expected..]);
        }
    }
    reason.to_owned()
}

/// Reads and parses a YAML config file (see [`from_yaml_str`]).
pub fn load_file<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(".", format!("cannot read config file {}: {e}", path.display())))?;
    from_yaml_str(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        brokers: String,
        password: Option<Secret>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        inner: Vec<Inner>,
    }

    fn env(k: &str) -> Option<String> {
        (k == "BROKERS").then(|| "k1:9092".to_owned())
    }

    #[test]
    fn interpolates_and_reports_missing_variables() {
        let cfg: Outer =
            from_yaml_str_with_env("name: x-${MISSING:-d}\ninner:\n  - brokers: ${BROKERS}\n", env).unwrap();
        assert_eq!(cfg.name, "x-d");
        assert_eq!(cfg.inner[0].brokers, "k1:9092");
        let err = from_yaml_str_with_env::<Outer>("name: ${NOPE}\ninner: []\n", env).unwrap_err();
        assert!(err.to_string().contains("`NOPE`"), "{err}");
        assert_eq!(interpolate_env("a$$b $x", env).unwrap(), "a$b $x");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_path() {
        let err =
            from_yaml_str_with_env::<Outer>("name: a\ninner:\n  - brokers: b\n    brokerz: c\n", env).unwrap_err();
        assert_eq!(err.path, "inner[0].brokerz");
        assert!(err.reason.contains("unknown field `brokerz`"), "{err}");
    }

    #[test]
    fn secret_files_are_read_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "hunter2\n").unwrap();
        let yaml = format!("name: a\ninner:\n  - brokers: b\n    password_file: {}\n", f.display());
        let cfg: Outer = from_yaml_str_with_env(&yaml, env).unwrap();
        let pw = cfg.inner[0].password.as_ref().unwrap();
        assert_eq!(pw.expose(), "hunter2");
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert_eq!(serde_json::to_string(pw).unwrap(), "\"***\"");
        let both = format!("name: a\ninner:\n  - brokers: b\n    password: x\n    password_file: {}\n", f.display());
        let err = from_yaml_str_with_env::<Outer>(&both, env).unwrap_err();
        assert_eq!(err.path, "inner[0].password_file");
    }
}
