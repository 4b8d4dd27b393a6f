//! Schema-driven validation and response shaping from Dastra's own OpenAPI document
//! (`openapi/openapi-2022.json`, embedded at compile time): required fields, maxLength, enums and
//! types are read from the document instead of being re-typed as Rust DTOs, so the emulator cannot
//! drift from it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// Dastra's OpenAPI document, verbatim.
pub const OPENAPI_2022: &str = include_str!("../openapi/openapi-2022.json");

/// The parsed document plus the emulator's provisional schemas.
pub struct Spec {
    root: Value,
}

/// The process-wide parsed document.
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        // The embedded file is a constant of this crate; a parse failure is a build defect that the
        // unit test `document_parses` catches, so falling back to an empty document is only a guard.
        let mut root: Value = serde_json::from_str(OPENAPI_2022).unwrap_or_else(|_| json!({}));
        add_provisional_schemas(&mut root);
        Spec { root }
    })
}

/// Schemas SPEC-2022 does not publish. Contracts: docs/dastra-api.md §7 #10 recommends this exact field set
/// and calls it provisional until a real payload is captured.
fn add_provisional_schemas(root: &mut Value) {
    let Some(schemas) = root.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    schemas.insert(
        "EmulatorContractDto".into(),
        json!({
            "required": ["label"],
            "type": "object",
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "label": {"type": "string", "maxLength": 255},
                "ref": {"type": "string", "maxLength": 50, "nullable": true},
                "description": {"type": "string", "nullable": true},
                "areaId": {"type": "integer", "format": "int32", "nullable": true},
                "tags": {"type": "array", "items": {"$ref": "#/components/schemas/TagDto"}, "nullable": true},
                "dateStart": {"type": "string", "format": "date-time", "nullable": true},
                "dateEnd": {"type": "string", "format": "date-time", "nullable": true},
                "assets": {"type": "array", "items": {"type": "integer", "format": "int32"}, "nullable": true},
                "signatories": {"type": "array", "items": {"type": "integer", "format": "int32"}, "nullable": true},
                "users": {"type": "array", "items": {"type": "integer", "format": "int32"}, "nullable": true},
                "workFlowStepId": {"type": "integer", "format": "int32", "nullable": true},
                "versions": {"type": "array", "items": {}, "nullable": true},
                "archived": {"type": "boolean"},
                "dateCreation": {"type": "string", "format": "date-time", "readOnly": true},
                "dateUpdate": {"type": "string", "format": "date-time", "nullable": true, "readOnly": true}
            },
            "additionalProperties": false
        }),
    );
}

/// Field errors collected by a validation pass: field path → messages.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

impl Spec {
    /// The whole document.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// `components.schemas[name]`.
    pub fn schema(&self, name: &str) -> Option<&Value> {
        self.root.pointer(&format!("/components/schemas/{name}"))
    }

    /// Follows `$ref` (and a single-element `allOf`) until a concrete schema.
    pub fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..16 {
            if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
                match r.strip_prefix("#").and_then(|p| self.root.pointer(p)) {
                    Some(s) => schema = s,
                    None => return schema,
                }
            } else if let Some([only]) = schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                schema = only;
            } else {
                return schema;
            }
        }
        schema
    }

    /// Property names of an object schema.
    pub fn properties(&self, schema_name: &str) -> Vec<String> {
        self.schema(schema_name)
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Writable (not `readOnly`) property names of an object schema, with their resolved schemas.
    pub fn writable_properties(&self, schema_name: &str) -> Vec<(String, &Value)> {
        let Some(props) = self.schema(schema_name).and_then(|s| s.get("properties")).and_then(Value::as_object) else {
            return Vec::new();
        };
        props.iter().filter(|(_, s)| !is_read_only(s)).map(|(k, s)| (k.clone(), self.resolve(s))).collect()
    }

    /// Validates `value` against `components.schemas[schema_name]` the way ASP.NET model binding
    /// does: property names case-insensitively (renamed to the document's spelling), enum names
    /// case-insensitively or by 0-based number (rewritten to the name), unknown and read-only
    /// properties dropped, then required / nullable / type / maxLength / minLength / format checks.
    pub fn validate_named(&self, schema_name: &str, value: &mut Value) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        match self.schema(schema_name) {
            Some(schema) => self.validate(schema, value, "", &mut errors),
            None => push(&mut errors, "$", format!("no schema {schema_name}")),
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// Validates against an inline schema (see [`Spec::validate_named`]).
    pub fn validate(&self, schema: &Value, value: &mut Value, path: &str, errors: &mut FieldErrors) {
        let nullable = schema.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        let schema = self.resolve(schema);
        let nullable = nullable || schema.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        if value.is_null() {
            if !nullable && has_type(schema) {
                push(errors, path, format!("The {} field must not be null.", field_label(path)));
            }
            return;
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            let canonical = match &*value {
                Value::String(s) => options.iter().find(|o| o.as_str().is_some_and(|o| o.eq_ignore_ascii_case(s))),
                Value::Number(n) => n.as_u64().and_then(|i| options.get(usize::try_from(i).ok()?)),
                _ => None,
            };
            match canonical {
                Some(c) => *value = c.clone(),
                None => push(errors, path, format!("The value {value} is not valid for {}.", field_label(path))),
            }
            return;
        }
        let ty = schema.get("type").and_then(Value::as_str);
        let is_object = ty == Some("object") || schema.get("properties").is_some();
        match ty {
            Some("string") => self.validate_string(schema, value, path, errors),
            Some("integer") => {
                let ok = match value.as_i64() {
                    Some(i) => {
                        schema.get("format").and_then(Value::as_str) != Some("int32") || i32::try_from(i).is_ok()
                    }
                    None => false,
                };
                if !ok {
                    push(
                        errors,
                        path,
                        format!("The JSON value could not be converted to an integer at {}.", field_label(path)),
                    );
                }
            }
            Some("number") if !value.is_number() => push(
                errors,
                path,
                format!("The JSON value could not be converted to a number at {}.", field_label(path)),
            ),
            Some("boolean") if !value.is_boolean() => push(
                errors,
                path,
                format!("The JSON value could not be converted to a boolean at {}.", field_label(path)),
            ),
            Some("array") => match value.as_array_mut() {
                Some(items) => {
                    if let Some(item_schema) = schema.get("items") {
                        for (i, item) in items.iter_mut().enumerate() {
                            self.validate(item_schema, item, &format!("{path}[{i}]"), errors);
                        }
                    }
                }
                None => push(
                    errors,
                    path,
                    format!("The JSON value could not be converted to an array at {}.", field_label(path)),
                ),
            },
            _ if is_object => self.validate_object(schema, value, path, errors),
            _ => {}
        }
    }

    fn validate_string(&self, schema: &Value, value: &Value, path: &str, errors: &mut FieldErrors) {
        let Some(s) = value.as_str() else {
            push(errors, path, format!("The JSON value could not be converted to a string at {}.", field_label(path)));
            return;
        };
        let len = s.chars().count();
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len as u64 > max
        {
            push(
                errors,
                path,
                format!("The field {} must be a string with a maximum length of {max}.", field_label(path)),
            );
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && (len as u64) < min
        {
            push(
                errors,
                path,
                format!("The field {} must be a string with a minimum length of {min}.", field_label(path)),
            );
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("uuid") if uuid::Uuid::parse_str(s).is_err() => {
                push(errors, path, format!("The value {s:?} is not a valid uuid for {}.", field_label(path)))
            }
            Some("date-time") if parse_date_time(s).is_none() => {
                push(errors, path, format!("The value {s:?} is not a valid date-time for {}.", field_label(path)))
            }
            _ => {}
        }
    }

    fn validate_object(&self, schema: &Value, value: &mut Value, path: &str, errors: &mut FieldErrors) {
        let Some(obj) = value.as_object_mut() else {
            push(errors, path, format!("The JSON value could not be converted to an object at {}.", field_label(path)));
            return;
        };
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties").filter(|a| a.is_object());
        let Some(props) = props else {
            // A map (`additionalProperties: {schema}`) or a free object: keep as sent.
            if let Some(item_schema) = additional {
                for (k, v) in obj.iter_mut() {
                    self.validate(item_schema, v, &join(path, k), errors);
                }
            }
            return;
        };
        let mut out = Map::new();
        for (key, v) in std::mem::take(obj) {
            let Some((name, prop)) = props.iter().find(|(p, _)| p.eq_ignore_ascii_case(&key)) else {
                continue; // unknown property: ASP.NET ignores it
            };
            if is_read_only(prop) {
                continue;
            }
            let mut v = v;
            self.validate(prop, &mut v, &join(path, name), errors);
            out.insert(name.clone(), v);
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                // ASP.NET's [Required] also rejects empty and whitespace-only strings.
                let missing = match out.get(r) {
                    None | Some(Value::Null) => true,
                    Some(Value::String(s)) => s.trim().is_empty(),
                    Some(_) => false,
                };
                if missing {
                    push(errors, &join(path, r), format!("The {} field is required.", upper_first(r)));
                }
            }
        }
        *obj = out;
    }

    /// Shapes a stored object into what `schema_name` allows in a response: only the document's
    /// properties, no `null` where the property is not nullable, enums only with declared names.
    pub fn conform_named(&self, schema_name: &str, value: &Value) -> Value {
        match self.schema(schema_name) {
            Some(schema) => self.conform(schema, value).unwrap_or(Value::Null),
            None => value.clone(),
        }
    }

    /// See [`Spec::conform_named`]; `None` = leave the property out.
    pub fn conform(&self, schema: &Value, value: &Value) -> Option<Value> {
        let nullable = schema.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        let schema = self.resolve(schema);
        let nullable = nullable || schema.get("nullable").and_then(Value::as_bool).unwrap_or(false);
        if value.is_null() {
            return (nullable || !has_type(schema)).then_some(Value::Null);
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            return options.contains(value).then(|| value.clone());
        }
        let ty = schema.get("type").and_then(Value::as_str);
        match ty {
            Some("string") => value.is_string().then(|| value.clone()),
            Some("integer") => value.as_i64().map(|_| value.clone()),
            Some("number") => value.is_number().then(|| value.clone()),
            Some("boolean") => value.is_boolean().then(|| value.clone()),
            Some("array") => {
                let items = value.as_array()?;
                Some(Value::Array(match schema.get("items") {
                    Some(s) => items.iter().filter_map(|i| self.conform(s, i)).collect(),
                    None => items.clone(),
                }))
            }
            _ if ty == Some("object") || schema.get("properties").is_some() => {
                let obj = value.as_object()?;
                let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                    return Some(value.clone());
                };
                let mut out = Map::new();
                for (name, prop) in props {
                    if let Some(v) = obj.get(name)
                        && let Some(v) = self.conform(prop, v)
                    {
                        out.insert(name.clone(), v);
                    }
                }
                Some(Value::Object(out))
            }
            _ => Some(value.clone()),
        }
    }
}

/// Accepts RFC 3339 and the offset-less ISO form Dastra itself emits (`2023-09-18T10:31:30.6882299`).
pub fn parse_date_time(s: &str) -> Option<chrono::NaiveDateTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|d| d.naive_utc())
        .ok()
        .or_else(|| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .or_else(|| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
}

fn is_read_only(schema: &Value) -> bool {
    schema.get("readOnly").and_then(Value::as_bool).unwrap_or(false)
}

fn has_type(schema: &Value) -> bool {
    schema.get("type").is_some() || schema.get("enum").is_some() || schema.get("properties").is_some()
}

fn push(errors: &mut FieldErrors, path: &str, message: String) {
    let key = if path.is_empty() { "$".to_string() } else { path.to_string() };
    errors.entry(key).or_default().push(message);
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn field_label(path: &str) -> String {
    if path.is_empty() { "body".into() } else { path.to_string() }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_parses() {
        let doc: Value = serde_json::from_str(OPENAPI_2022).unwrap_or_default();
        assert_eq!(doc["openapi"], "3.0.1");
        assert!(spec().schema("AssetDto").is_some());
        assert!(spec().schema("EmulatorContractDto").is_some());
    }

    #[test]
    fn validation_follows_the_document() {
        let s = spec();
        let mut v = json!({"Label": "x", "type": "software", "city": "c".repeat(200), "junk": 1, "id": 9});
        let errors = s.validate_named("AssetDto", &mut v).err().unwrap_or_default();
        assert!(errors.contains_key("city"), "{errors:?}");
        assert_eq!(v["label"], "x");
        assert_eq!(v["type"], "Software");
        assert!(v.get("junk").is_none());

        let mut v = json!({"label": "x"});
        let errors = s.validate_named("AssetDto", &mut v).err().unwrap_or_default();
        assert!(errors.contains_key("type"), "{errors:?}");

        let mut v = json!({"title": "t", "areaId": 1, "locale": "fr", "purposes": ["Nope"]});
        let errors = s.validate_named("DataSubjectRequestDto", &mut v).err().unwrap_or_default();
        assert!(errors.contains_key("purposes[0]"), "{errors:?}");
        let mut v = json!({"title": "t", "areaId": 1, "locale": "fr", "purposes": [3]});
        assert!(s.validate_named("DataSubjectRequestDto", &mut v).is_ok());
        assert_eq!(v["purposes"][0], "Rectification");
    }

    #[test]
    fn conform_drops_what_the_schema_forbids() {
        let out =
            spec().conform_named("TagDto", &json!({"id": 1, "label": "l", "type": "Task", "color": null, "x": 1}));
        assert_eq!(out, json!({"id": 1, "label": "l", "type": "Task", "color": null}));
        let out = spec().conform_named("AssetDto", &json!({"id": 1, "label": "l", "type": "Data", "readonly": null}));
        assert_eq!(out, json!({"id": 1, "label": "l", "type": "Data"}));
    }
}
