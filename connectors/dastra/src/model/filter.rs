//! The `filters` query parameter: JsonRuleEngine.Net rules (docs/dastra-api.md §2.3), JSON-serialised and
//! URL-encoded. A rule is `{"field","operator","value"}`, a group `{"separator":"And"|"Or","rules":[…]}`.
//! Field names are written in PascalCase (C# property names, as the spec's own example
//! `ProcessingType`), which is what a case-sensitive engine would need.

use serde::Serialize;

/// `ConditionRuleOperator` (plus nothing invented).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FilterOperator {
    /// `equal`.
    Equal,
    /// `notEqual`.
    NotEqual,
    /// `isNotNull`.
    IsNotNull,
    /// `isNull`.
    IsNull,
    /// `lessThan`.
    LessThan,
    /// `lessThanInclusive`.
    LessThanInclusive,
    /// `greaterThan`.
    GreaterThan,
    /// `greaterThanInclusive`.
    GreaterThanInclusive,
    /// `in`.
    In,
    /// `notIn`.
    NotIn,
    /// `contains`.
    Contains,
    /// `doesNotContains` (sic).
    DoesNotContains,
    /// `isEmpty`.
    IsEmpty,
    /// `isNotEmpty`.
    IsNotEmpty,
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Filter {
    /// One condition.
    Rule {
        /// Property name (PascalCase), or a dotted path one level into a collection.
        field: String,
        /// Operator.
        operator: FilterOperator,
        /// Operand (omitted for `isNull` and friends).
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<serde_json::Value>,
    },
    /// A group of conditions.
    Group {
        /// `And` or `Or`.
        separator: Separator,
        /// The members.
        rules: Vec<Filter>,
    },
}

/// `ConditionRuleSeparator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Separator {
    /// All must match.
    And,
    /// Any may match.
    Or,
}

impl Filter {
    /// `field == value`.
    pub fn equal(field: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        Filter::Rule { field: field.into(), operator: FilterOperator::Equal, value: Some(value.into()) }
    }
    /// All of `rules`.
    pub fn and(rules: Vec<Filter>) -> Self {
        Filter::Group { separator: Separator::And, rules }
    }
    /// Any of `rules`.
    pub fn or(rules: Vec<Filter>) -> Self {
        Filter::Group { separator: Separator::Or, rules }
    }
    /// The JSON text that goes into `?filters=` (the HTTP layer URL-encodes it).
    pub fn to_query_value(&self) -> String {
        // Serializing these plain enums and strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Fits an external key into a field of at most `max_len` characters, deterministically: keys that fit
/// are kept as they are; longer ones keep a readable prefix and end with `~` + 16 hex digits of the
/// SHA-256 of the whole key, so two different keys never share a value in practice and the same key
/// always maps to the same value (which the reconciliation lookup relies on).
pub fn fit_external_key(key: &str, max_len: usize) -> String {
    if key.chars().count() <= max_len {
        return key.to_owned();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let keep = max_len.saturating_sub(hash.len() + 1);
    let prefix: String = key.chars().take(keep).collect();
    let mut out = format!("{prefix}~{hash}");
    // Tiny limits: the hash alone, truncated.
    if out.chars().count() > max_len {
        out = hash.chars().take(max_len).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_groups_serialize_in_json_rule_engine_form() {
        let f = Filter::and(vec![
            Filter::equal("CompanyName", "ACME"),
            Filter::equal("CountryCode", "FR"),
            Filter::Rule { field: "Ref".into(), operator: FilterOperator::IsNotNull, value: None },
        ]);
        assert_eq!(
            f.to_query_value(),
            r#"{"separator":"And","rules":[{"field":"CompanyName","operator":"equal","value":"ACME"},{"field":"CountryCode","operator":"equal","value":"FR"},{"field":"Ref","operator":"isNotNull"}]}"#
        );
    }

    #[test]
    fn long_keys_are_shortened_deterministically_and_distinctly() {
        let short = "netbox:asset:42";
        assert_eq!(fit_external_key(short, 50), short);
        let a = "servicenow:asset:8f2c1d5e9a7b4c3d2e1f0a9b8c7d6e5f-extra";
        let b = "servicenow:asset:8f2c1d5e9a7b4c3d2e1f0a9b8c7d6e5f-other";
        let fa = fit_external_key(a, 50);
        assert_eq!(fa.chars().count(), 50);
        assert_eq!(fa, fit_external_key(a, 50));
        assert_ne!(fa, fit_external_key(b, 50));
        assert!(fa.starts_with("servicenow:asset:"));
        assert_eq!(fit_external_key(a, 5).chars().count(), 5);
    }
}
