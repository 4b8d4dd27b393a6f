//! Configuration helpers: YAML with `${ENV}` interpolation, `*_file` secrets, errors that name the key
//! path, and a [`Secret`] type that never prints its value.

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
        String::deserialize(d).map(Secret)
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

/// Replaces `${NAME}` and `${NAME:-default}` with environment values; `$$` is a literal `$`.
/// A missing variable without default is an error naming it.
pub fn interpolate_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| ConfigError::new(".", "unterminated `${` in config"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(ConfigError::new(".", format!("`${{{expr}}}` is not a valid environment reference")));
            }
            match (lookup(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(ConfigError::new(
                        ".",
                        format!(
                            "environment variable `{name}` is referenced but not set (use `${{{name}:-default}}` for a default)"
                        ),
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
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
    let text = interpolate_env(text, env)?;
    let mut value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        let loc = e.location().map(|l| format!(" (line {}, column {})", l.line(), l.column())).unwrap_or_default();
        ConfigError::new(".", format!("not valid YAML{loc}: {e}"))
    })?;
    resolve_secret_files(&mut value, "")?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::new(if path.is_empty() { ".".into() } else { path }, e.into_inner().to_string())
    })
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
