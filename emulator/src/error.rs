//! Errors: `EmulatorError` for starting the emulator, `ApiError` for what a Dastra route answers
//! (400 validation problem, 401, 403, 404, 429…), rendered as ASP.NET-style problem JSON
//! (docs/dastra-api.md §7 #1).

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why the emulator could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The `--quota` text could not be parsed.
    #[error("invalid quota `{text}`: {reason}")]
    InvalidQuota {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl EmulatorError {
    /// Stable snake_case code of the error (the emulator does not depend on the core crate's
    /// `Classify`: it shares no code with the connectors; the code follows the same convention).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidQuota { .. } => "invalid_quota",
            Self::Bind { .. } => "bind_failed",
        }
    }
}

/// An error answer of an emulated Dastra route.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 400 with field errors (`errors: {field: [messages]}`).
    Validation(BTreeMap<String, Vec<String>>),
    /// 400 with a single message not tied to a field (bad JSON, bad query parameter).
    BadRequest(String),
    /// 401: no or wrong credentials.
    Unauthorized,
    /// 403: the key is not allowed on this workspace.
    Forbidden,
    /// 404: unknown route, workspace or id.
    NotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 415: body content type not accepted.
    UnsupportedMediaType,
    /// 429 with `Retry-After` seconds.
    TooManyRequests {
        /// Seconds until the window that is full resets.
        retry_after: u64,
    },
}

impl ApiError {
    /// A 400 naming one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = BTreeMap::new();
        errors.insert(field.into(), vec![message.into()]);
        Self::Validation(errors)
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

fn problem(status: StatusCode, title: &str, extra: Option<(&str, serde_json::Value)>) -> Response {
    let mut body = json!({
        "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
        "title": title,
        "status": status.as_u16(),
        "traceId": format!("00-{}-00", uuid::Uuid::new_v4().simple()),
    });
    if let (Some((k, v)), Some(map)) = (extra, body.as_object_mut()) {
        map.insert(k.to_string(), v);
    }
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json; charset=utf-8"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            Self::Validation(errors) => problem(
                status,
                "One or more validation errors occurred.",
                Some(("errors", serde_json::to_value(errors).unwrap_or_default())),
            ),
            Self::BadRequest(message) => {
                let mut errors = BTreeMap::new();
                errors.insert("$".to_string(), vec![message]);
                problem(
                    status,
                    "One or more validation errors occurred.",
                    Some(("errors", serde_json::to_value(errors).unwrap_or_default())),
                )
            }
            // ASP.NET answers 401 with an empty body and a challenge (docs/dastra-api.md §7 #1).
            Self::Unauthorized => {
                let mut r = status.into_response();
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer, Basic realm=\"Dastra\""));
                r
            }
            Self::Forbidden => problem(status, "Forbidden", None),
            Self::NotFound => problem(status, "Not Found", None),
            Self::MethodNotAllowed => problem(status, "Method Not Allowed", None),
            Self::UnsupportedMediaType => problem(status, "Unsupported Media Type", None),
            Self::TooManyRequests { retry_after } => {
                let mut r = problem(status, "Too Many Requests", None);
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
        }
    }
}
