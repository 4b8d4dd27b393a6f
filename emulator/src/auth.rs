//! Authentication as Dastra documents it (docs/dastra-api.md §1.2, §7 #14): `X-API-Key: <private>`,
//! `Authorization: Basic base64(<private>:<anything>)` or `base64(<public>:<private>)`, and Bearer
//! tokens minted by `POST /connect/token` (client credentials, scope `api1`, 3600 s).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::config::ApiKey;
use crate::error::ApiError;

/// Who is calling: the key (by position and name, never the secret) and its workspace binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Index of the key in the config.
    pub key_index: usize,
    /// Name of the key (for logs, counters and the quota bucket).
    pub name: String,
    /// Workspace the key is bound to (`None` = all).
    pub workspace: Option<i64>,
}

impl Principal {
    /// 403 when the key is bound to another workspace.
    pub fn check_workspace(&self, ws: i64) -> Result<(), ApiError> {
        match self.workspace {
            Some(bound) if bound != ws => Err(ApiError::Forbidden),
            _ => Ok(()),
        }
    }
}

/// Issued Bearer tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: HashMap<String, (usize, Instant)>,
}

fn principal(keys: &[ApiKey], index: usize) -> Option<Principal> {
    keys.get(index).map(|k| Principal { key_index: index, name: k.name.clone(), workspace: k.workspace })
}

fn find_private(keys: &[ApiKey], private: &str) -> Option<usize> {
    keys.iter().position(|k| constant_time_eq(k.key.as_bytes(), private.as_bytes()))
}

/// Comparison whose time does not depend on where the strings differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':').unwrap_or((&text, ""));
    Some((user.to_string(), pass.to_string()))
}

impl Tokens {
    /// Identifies the caller of an API request. `Err(Unauthorized)` when nothing valid is given.
    pub fn authenticate(&self, keys: &[ApiKey], headers: &HeaderMap, now: Instant) -> Result<Principal, ApiError> {
        if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
            return find_private(keys, key.trim()).and_then(|i| principal(keys, i)).ok_or(ApiError::Unauthorized);
        }
        if let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            if let Some(token) = value.trim().strip_prefix("Bearer ").or_else(|| value.trim().strip_prefix("bearer ")) {
                return match self.issued.get(token.trim()) {
                    Some((index, expires)) if *expires > now => principal(keys, *index).ok_or(ApiError::Unauthorized),
                    _ => Err(ApiError::Unauthorized),
                };
            }
            if let Some((user, pass)) = basic_credentials(headers) {
                // Basic with the private key as user name (password ignored), or public:private.
                let index = find_private(keys, &user).or_else(|| {
                    keys.iter()
                        .position(|k| k.public_key == user)
                        .filter(|&i| keys.get(i).is_some_and(|k| constant_time_eq(k.key.as_bytes(), pass.as_bytes())))
                });
                return index.and_then(|i| principal(keys, i)).ok_or(ApiError::Unauthorized);
            }
        }
        Err(ApiError::Unauthorized)
    }

    /// `POST /connect/token`: client credentials from Basic `public:private` or from the form
    /// fields `client_id` / `client_secret`. Returns the token response body.
    pub fn issue(
        &mut self,
        keys: &[ApiKey],
        headers: &HeaderMap,
        form: &HashMap<String, String>,
        lifetime: Duration,
        token: String,
        now: Instant,
    ) -> Result<Value, (u16, Value)> {
        let grant = form.get("grant_type").map(String::as_str);
        if grant != Some("client_credentials") {
            return Err((400, json!({"error": "unsupported_grant_type"})));
        }
        let (id, secret) = basic_credentials(headers)
            .or_else(|| Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone())))
            .ok_or((401, json!({"error": "invalid_client"})))?;
        let index = keys
            .iter()
            .position(|k| k.public_key == id && constant_time_eq(k.key.as_bytes(), secret.as_bytes()))
            .ok_or((401, json!({"error": "invalid_client"})))?;
        if let Some(scope) = form.get("scope")
            && !scope.split_whitespace().all(|s| s == "api1")
        {
            return Err((400, json!({"error": "invalid_scope"})));
        }
        self.issued.retain(|_, (_, exp)| *exp > now);
        self.issued.insert(token.clone(), (index, now + lifetime));
        Ok(json!({
            "access_token": token,
            "expires_in": lifetime.as_secs(),
            "token_type": "Bearer",
            "scope": "api1",
        }))
    }

    /// Forgets every token.
    pub fn clear(&mut self) {
        self.issued.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn keys() -> Vec<ApiKey> {
        vec![
            ApiKey { key: "priv-a".into(), public_key: "pub-a".into(), workspace: None, name: "a".into() },
            ApiKey { key: "priv-b".into(), public_key: "pub-b".into(), workspace: Some(2), name: "b".into() },
        ]
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
        h
    }

    #[test]
    fn all_documented_schemes() {
        let t = Tokens::default();
        let now = Instant::now();
        let k = keys();
        assert_eq!(t.authenticate(&k, &headers("x-api-key", "priv-b"), now).map(|p| p.name), Ok("b".into()));
        let basic = format!("Basic {}", STANDARD.encode("priv-a:"));
        assert_eq!(t.authenticate(&k, &headers("authorization", &basic), now).map(|p| p.name), Ok("a".into()));
        let basic = format!("Basic {}", STANDARD.encode("pub-a:priv-a"));
        assert!(t.authenticate(&k, &headers("authorization", &basic), now).is_ok());
        assert_eq!(t.authenticate(&k, &headers("x-api-key", "wrong"), now), Err(ApiError::Unauthorized));
        assert_eq!(t.authenticate(&k, &HeaderMap::new(), now), Err(ApiError::Unauthorized));
        assert_eq!(t.authenticate(&k, &headers("authorization", "Bearer nope"), now), Err(ApiError::Unauthorized));
    }

    #[test]
    fn tokens_expire() {
        let mut t = Tokens::default();
        let now = Instant::now();
        let k = keys();
        let form: HashMap<String, String> =
            [("grant_type", "client_credentials"), ("client_id", "pub-a"), ("client_secret", "priv-a")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        let body = t.issue(&k, &HeaderMap::new(), &form, Duration::from_secs(10), "tok".into(), now);
        assert_eq!(body.ok().map(|b| b["expires_in"].clone()), Some(json!(10)));
        assert!(t.authenticate(&k, &headers("authorization", "Bearer tok"), now).is_ok());
        let later = now + Duration::from_secs(11);
        assert_eq!(t.authenticate(&k, &headers("authorization", "Bearer tok"), later), Err(ApiError::Unauthorized));
    }
}
