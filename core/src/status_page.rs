//! The read-only status page of the admin server (`/`, `/ui`): one self-contained HTML document (no
//! external script, style or font) that polls `/status` and draws, per connector, its state, owned
//! partitions, lag, the quota windows as gauges, requests per minute over the last hour, 429s, the
//! DLQ and parked keys with their reasons and the `dlq redrive` command, and pending references.

use axum::http::header;
use axum::response::IntoResponse;

/// The page.
const PAGE: &str = include_str!("status_page.html");

/// `GET /` and `GET /ui`.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Read-only and self-contained: nothing may be loaded from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
            ),
        ],
        PAGE,
    )
}
