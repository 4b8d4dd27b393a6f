//! Errors of the Dastra client. Each carries the method and the route *template* (e.g.
//! `POST /v1/ws/{workspaceId}/Assets`, low-cardinality, usable as a metric label) and, for HTTP
//! errors, the status and a short excerpt of the response with every known secret redacted.

use dastra_connect_core::{Classify, ErrorClass};

/// What went wrong at the transport level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The connection could not be opened: the request never left, so it is always safe to retry.
    Connect,
    /// No complete answer within the timeout: the request may or may not have been applied.
    Timeout,
    /// The connection broke while sending or reading: the request may or may not have been applied.
    Broken,
}

impl TransportKind {
    fn as_str(self) -> &'static str {
        match self {
            TransportKind::Connect => "could not connect",
            TransportKind::Timeout => "timed out",
            TransportKind::Broken => "connection broke",
        }
    }
}

/// An error of a Dastra call. `Clone`: one failed batch request is every member's answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DastraError {
    /// Dastra answered with a non-success status (after any retries).
    #[error("Dastra answered {status} to {route} after {attempts} attempt(s): {excerpt}")]
    Http {
        /// Route template, e.g. `PATCH /v1/ws/{workspaceId}/Assets/{id}`.
        route: &'static str,
        /// HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// Start of the response body (secrets redacted), or `(empty body)`.
        excerpt: String,
        /// Invalid field names of a validation problem (`errors` keys), if any.
        invalid_fields: Vec<String>,
    },
    /// The request failed below HTTP (after any retries).
    #[error("request {route} {} after {attempts} attempt(s): {detail}", kind.as_str())]
    Transport {
        /// Route template.
        route: &'static str,
        /// What happened.
        kind: TransportKind,
        /// Attempts made.
        attempts: u32,
        /// The library's message (secrets redacted).
        detail: String,
    },
    /// A create (POST) got no clear answer — timeout, broken connection, or a 408/5xx that may have
    /// come after the write. It is **not** retried: the entity may exist now. Look it up by its
    /// external key (`ref`, `refId`, custom field) before any new POST.
    #[error(
        "create {route} has an unknown outcome ({cause}); look the entity up by its external key before creating it again"
    )]
    AmbiguousCreate {
        /// Route template.
        route: &'static str,
        /// What made the outcome unknown (status or transport failure, redacted).
        cause: String,
    },
    /// Dastra's answer could not be read as the expected DTO.
    #[error("cannot read Dastra's answer to {route}: {detail}; body starts with: {excerpt}")]
    Decode {
        /// Route template.
        route: &'static str,
        /// The decoder's message.
        detail: String,
        /// Start of the body (redacted).
        excerpt: String,
    },
    /// The OAuth2 token endpoint refused or failed.
    #[error("OAuth2 token request failed{}: {detail}", status.map(|s| format!(" with {s}")).unwrap_or_default())]
    Token {
        /// HTTP status, if one came back.
        status: Option<u16>,
        /// Body excerpt or transport message (redacted).
        detail: String,
        /// True when retrying can help (5xx, 429, transport).
        retryable: bool,
    },
    /// The request could not be built (bad URL, unserializable body): a bug or bad config.
    #[error("cannot build request {route}: {detail}")]
    Build {
        /// Route template.
        route: &'static str,
        /// Why.
        detail: String,
    },
}

impl DastraError {
    /// The HTTP status, when Dastra answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            DastraError::Http { status, .. } => Some(*status),
            DastraError::Token { status, .. } => *status,
            _ => None,
        }
    }

    /// The route template, when the error belongs to one route.
    pub fn route(&self) -> Option<&'static str> {
        match self {
            DastraError::Http { route, .. }
            | DastraError::Transport { route, .. }
            | DastraError::AmbiguousCreate { route, .. }
            | DastraError::Decode { route, .. }
            | DastraError::Build { route, .. } => Some(route),
            DastraError::Token { .. } => None,
        }
    }

    /// True for a 404: the object is gone (a delete of it is then already done).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// True when the outcome of a create is unknown and must be reconciled by lookup.
    pub fn is_ambiguous_create(&self) -> bool {
        matches!(self, DastraError::AmbiguousCreate { .. })
    }
}

/// Class of an HTTP status: 408, 429 and 5xx are transient; 401 means the credentials are wrong (fatal:
/// every request would fail); other 4xx are permanent for this request.
pub fn status_class(status: u16) -> ErrorClass {
    match status {
        408 | 429 | 500..=599 => ErrorClass::Retryable,
        401 => ErrorClass::Fatal,
        _ => ErrorClass::Permanent,
    }
}

impl Classify for DastraError {
    fn class(&self) -> ErrorClass {
        match self {
            DastraError::Http { status, .. } => status_class(*status),
            DastraError::Transport { .. } | DastraError::AmbiguousCreate { .. } => ErrorClass::Retryable,
            DastraError::Decode { .. } => ErrorClass::Permanent,
            DastraError::Token { status, retryable, .. } => {
                if *retryable {
                    ErrorClass::Retryable
                } else if matches!(status, Some(400 | 401 | 403)) {
                    ErrorClass::Fatal
                } else {
                    ErrorClass::Permanent
                }
            }
            DastraError::Build { .. } => ErrorClass::Fatal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            DastraError::Http { status, .. } => match status {
                400 => "dastra_bad_request",
                401 => "dastra_unauthorized",
                403 => "dastra_forbidden",
                404 => "dastra_not_found",
                408 => "dastra_timeout_status",
                409 => "dastra_conflict",
                413 => "dastra_too_large",
                422 => "dastra_unprocessable",
                429 => "dastra_rate_limited",
                500..=599 => "dastra_server_error",
                _ => "dastra_client_error",
            },
            DastraError::Transport { kind, .. } => match kind {
                TransportKind::Connect => "dastra_connect",
                TransportKind::Timeout => "dastra_timeout",
                TransportKind::Broken => "dastra_connection_broken",
            },
            DastraError::AmbiguousCreate { .. } => "ambiguous_create",
            DastraError::Decode { .. } => "dastra_decode",
            DastraError::Token { .. } => "dastra_token",
            DastraError::Build { .. } => "dastra_build_request",
        }
    }
}

/// Replaces every known secret (API key, client secret, current access token) in a text by `***`,
/// and masks values of JSON keys that look like credentials.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

const SENSITIVE_KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "password",
    "api_key",
    "apikey",
    "privatekey",
    "private_key",
];

impl Redactor {
    /// Redacts the given secrets (empty strings are ignored).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    /// Adds a secret learnt at run time (an access token).
    pub fn with(&self, extra: &str) -> Self {
        let mut all = self.secrets.clone();
        all.push(extra.to_owned());
        Self::new(all)
    }

    /// The redacted text.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        mask_sensitive_json_values(&out)
    }

    /// A redacted excerpt of at most `max` bytes (cut on a char boundary).
    pub fn excerpt(&self, body: &[u8], max: usize) -> String {
        if body.is_empty() {
            return "(empty body)".into();
        }
        // Redact the whole body first so a secret cut by the limit cannot leak half-way.
        let text = self.redact(&String::from_utf8_lossy(body));
        if text.len() <= max {
            return text;
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &text[..end])
    }
}

/// `"access_token": "xyz"` → `"access_token": "***"` for the keys of [`SENSITIVE_KEYS`].
fn mask_sensitive_json_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < text.len() {
        let hit = SENSITIVE_KEYS.iter().find_map(|k| {
            let quoted = format!("\"{k}\"");
            lower[i..].starts_with(&quoted).then_some(quoted.len())
        });
        if let Some(klen) = hit {
            let mut j = i + klen;
            while j < text.len() && (bytes[j] == b' ' || bytes[j] == b':') {
                j += 1;
            }
            if j < text.len() && bytes[j] == b'"' {
                let mut k = text.len();
                let mut escaped = false;
                for (off, c) in text[j + 1..].char_indices() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        k = j + 1 + off;
                        break;
                    }
                }
                out.push_str(&text[i..=j]);
                out.push_str("***");
                i = k;
                continue;
            }
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_token_fields_are_redacted_from_excerpts() {
        let r = Redactor::new(["k3y-SECRET".to_owned(), String::new()]);
        let body = br#"{"detail":"bad key k3y-SECRET","access_token":"eyJabc.def","x":"\u00e9t\u00e9"}"#;
        let e = r.excerpt(body, 1000);
        assert!(!e.contains("k3y-SECRET") && !e.contains("eyJabc"), "{e}");
        assert!(e.contains("\"access_token\":\"***\""), "{e}");
        assert_eq!(r.excerpt(b"", 10), "(empty body)");
        let long = "é".repeat(100);
        assert!(r.excerpt(long.as_bytes(), 11).ends_with('…'));
    }

    #[test]
    fn statuses_classify_as_the_conventions_say() {
        assert_eq!(status_class(429), ErrorClass::Retryable);
        assert_eq!(status_class(503), ErrorClass::Retryable);
        assert_eq!(status_class(408), ErrorClass::Retryable);
        assert_eq!(status_class(400), ErrorClass::Permanent);
        assert_eq!(status_class(404), ErrorClass::Permanent);
        assert_eq!(status_class(401), ErrorClass::Fatal);
        let e = DastraError::AmbiguousCreate { route: "POST /v1/ws/{workspaceId}/Assets", cause: "timeout".into() };
        assert_eq!(e.code(), "ambiguous_create");
        assert!(e.is_ambiguous_create() && e.is_retryable());
    }
}
