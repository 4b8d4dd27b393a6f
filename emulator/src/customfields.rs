//! Custom fields (CF, docs/dastra-api.md §4.17): per-workspace definitions per entity family; on write, keys
//! that are not defined are silently dropped and an invalid value (wrong type, not an option,
//! missing required value) is a 400 naming `customFields.<key>`.

use serde_json::{Map, Value};

use crate::openapi::{FieldErrors, parse_date_time};
use crate::store::{CustomFieldDef, CustomFieldType};

/// Validates `given` against `defs`. `complete` = create or full replace (required fields must be
/// present); a JSON Patch result is also complete. Returns the cleaned map.
pub fn validate(
    defs: &[CustomFieldDef],
    given: Option<&Value>,
    complete: bool,
) -> Result<Map<String, Value>, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut out = Map::new();
    let given = match given {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            errors.insert("customFields".into(), vec!["customFields must be an object.".into()]);
            return Err(errors);
        }
    };
    for def in defs {
        let value = given.iter().find(|(k, _)| k.eq_ignore_ascii_case(&def.key)).map(|(_, v)| v.clone());
        match value {
            None | Some(Value::Null) => {
                if def.required && complete {
                    errors.insert(
                        format!("customFields.{}", def.key),
                        vec![format!("The custom field {} is required.", def.key)],
                    );
                }
            }
            Some(v) => match check(def, &v) {
                Ok(()) => {
                    out.insert(def.key.clone(), v);
                }
                Err(why) => {
                    errors.insert(format!("customFields.{}", def.key), vec![why]);
                }
            },
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn check(def: &CustomFieldDef, v: &Value) -> Result<(), String> {
    use CustomFieldType::*;
    let in_options = |s: &str| def.options.is_empty() || def.options.iter().any(|o| o == s);
    let ok = match def.field_type {
        ShortText => v.as_str().is_some_and(|s| s.chars().count() <= 255),
        LongText | RichText => v.is_string(),
        Integer => v.as_i64().is_some(),
        Decimal => v.is_number(),
        Date | DateTime => v.as_str().is_some_and(|s| parse_date_time(s).is_some()),
        YesNo => v.is_boolean(),
        SingleChoice | SingleSelect => v.as_str().is_some_and(in_options),
        MultiCheckbox | MultiSelect => {
            v.as_array().is_some_and(|a| a.iter().all(|i| i.as_str().is_some_and(in_options)))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("The value {v} is not valid for the custom field {} ({:?}).", def.key, def.field_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defs() -> Vec<CustomFieldDef> {
        vec![
            CustomFieldDef {
                key: "externalId".into(),
                field_type: CustomFieldType::ShortText,
                required: true,
                options: vec![],
            },
            CustomFieldDef {
                key: "tier".into(),
                field_type: CustomFieldType::SingleSelect,
                required: false,
                options: vec!["gold".into(), "silver".into()],
            },
        ]
    }

    #[test]
    fn unknown_dropped_invalid_rejected() {
        let ok = validate(&defs(), Some(&json!({"externalId": "x", "nope": 1})), true);
        assert_eq!(ok.ok().map(Value::Object), Some(json!({"externalId": "x"})));
        let bad = validate(&defs(), Some(&json!({"externalId": "x", "tier": "bronze"})), true);
        assert!(bad.err().is_some_and(|e| e.contains_key("customFields.tier")));
        let missing = validate(&defs(), Some(&json!({})), true);
        assert!(missing.err().is_some_and(|e| e.contains_key("customFields.externalId")));
    }
}
