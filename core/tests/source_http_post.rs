//! `SourceHttp::post_json` (search endpoints that take their query as a JSON body, e.g. HubSpot's):
//! the body and the credential reach the system on every attempt, a 429 is retried with the same
//! body, and a 400 is an error naming the request without the credential.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use dastra_connect_core::config::Secret;
use dastra_connect_core::source::{HttpSettings, SourceAuth, SourceHttp};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// What the system received: the `Authorization` header and the body, per request.
type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[tokio::test]
async fn post_json_sends_the_body_on_every_attempt_and_retries_a_429() {
    // Answers 429 to the first request, 400 to a body without `limit`, else echoes the body.
    let seen: Received = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/search",
        axum::routing::post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let log = log.clone();
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let n = {
                    let mut l = log.lock();
                    l.push((auth, body.clone()));
                    l.len()
                };
                if n == 1 {
                    return (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
                }
                if body.get("limit").is_none() {
                    return (StatusCode::BAD_REQUEST, "limit is required").into_response();
                }
                Json(json!({"echo": body})).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url: url::Url = format!("http://{}/search", listener.local_addr().unwrap()).parse().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let settings = HttpSettings { initial_backoff: Duration::from_millis(10), ..Default::default() };
    let http = SourceHttp::new("sys", SourceAuth::Bearer { token: Secret::new("t0ken-s3cret") }, settings).unwrap();

    let body =
        json!({"filterGroups": [{"filters": [{"propertyName": "x", "operator": "GTE", "value": "1"}]}], "limit": 5});
    let answer = http.post_json(url.clone(), &body, "/search").await.unwrap();
    assert_eq!(answer.body["echo"], body);
    assert_eq!(http.throttled(), 1);
    {
        let l = seen.lock();
        assert_eq!(l.len(), 2, "the 429 and the retry");
        assert!(l.iter().all(|(auth, b)| auth.as_deref() == Some("Bearer t0ken-s3cret") && *b == body));
    }

    let err = http.post_json(url, &json!({}), "/search").await.unwrap_err().to_string();
    assert!(err.contains("400") && err.contains("/search") && err.contains("limit is required"), "{err}");
    assert!(!err.contains("t0ken-s3cret"), "{err}");
}
