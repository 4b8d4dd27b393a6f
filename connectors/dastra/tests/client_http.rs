//! The Dastra client against a real local HTTP server (axum, scripted answers): the auth header is
//! sent, an OAuth2 token is fetched once, shared and refreshed, 5xx and 429 are retried (a 429's
//! `Retry-After` pauses every request), permanent 4xx are not retried, a create that times out or
//! loses its connection is classified `ambiguous_create` and not repeated, multipart uploads use the
//! part `File`, and secrets never appear in `Display`/`Debug` of errors or the client.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use dastra_connect_core::config::Secret;
use dastra_connect_core::{Classify, ErrorClass};
use dastra_connect_dastra::model::{Asset, AssetType, AttachmentUpload, Filter};
use dastra_connect_dastra::{
    Assets, AttemptOutcome, AuthConfig, DastraClient, DastraClientConfig, DastraError, Priority, QuotaLimiter,
    RequestEvent, RequestObserver, RetryConfig,
};
use parking_lot::Mutex;
use tokio::time::Instant;
use url::Url;

const KEY: &str = "priv-KEY-0123456789";

#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    body: String,
    retry_after: Option<&'static str>,
    delay: Duration,
}

fn ok(body: &str) -> Reply {
    Reply { status: 200, body: body.into(), retry_after: None, delay: Duration::ZERO }
}
fn status(s: u16, body: &str) -> Reply {
    Reply { status: s, body: body.into(), retry_after: None, delay: Duration::ZERO }
}

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

#[derive(Default)]
struct Mock {
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
    tokens_issued: Mutex<u32>,
    token_lifetime: Mutex<u64>,
}

async fn api(State(mock): State<Arc<Mock>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 10 << 20).await.unwrap_or_default();
    let path = parts.uri.path().to_owned();
    if path == "/connect/token" {
        let mut n = mock.tokens_issued.lock();
        *n += 1;
        let lifetime = *mock.token_lifetime.lock();
        mock.seen.lock().push(Seen {
            method: parts.method.to_string(),
            path,
            query: String::new(),
            headers: parts.headers,
            body,
            at: Instant::now(),
        });
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            format!(r#"{{"access_token":"tok-{n}","expires_in":{lifetime},"token_type":"Bearer","scope":"api1"}}"#),
        )
            .into_response();
    }
    mock.seen.lock().push(Seen {
        method: parts.method.to_string(),
        path,
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body,
        at: Instant::now(),
    });
    let reply = mock.replies.lock().pop_front().unwrap_or_else(|| ok("{}"));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = (StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK), reply.body).into_response();
    resp.headers_mut().insert("content-type", "application/json".parse().unwrap_or_else(|_| unreachable!()));
    if let Some(ra) = reply.retry_after {
        resp.headers_mut().insert("retry-after", ra.parse().unwrap_or_else(|_| unreachable!()));
    }
    resp
}

async fn start(replies: Vec<Reply>) -> (Arc<Mock>, Url) {
    let mock =
        Arc::new(Mock { replies: Mutex::new(replies.into()), token_lifetime: Mutex::new(3600), ..Mock::default() });
    let app = Router::new().fallback(api).with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (mock, Url::parse(&format!("http://{addr}")).expect("url"))
}

fn config(base: &Url, auth: AuthConfig) -> DastraClientConfig {
    let mut c = DastraClientConfig::new(base.clone(), 7, auth);
    c.retry = RetryConfig {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        default_retry_after: Duration::from_millis(200),
    };
    c.request_timeout = Duration::from_secs(5);
    c
}

fn api_key() -> AuthConfig {
    AuthConfig::ApiKey { api_key: Secret::new(KEY) }
}

#[derive(Default)]
struct Events(Mutex<Vec<RequestEvent>>);
impl RequestObserver for Events {
    fn request_done(&self, event: &RequestEvent) {
        self.0.lock().push(event.clone());
    }
}

fn client(cfg: &DastraClientConfig) -> (DastraClient, Arc<Events>) {
    let events = Arc::new(Events::default());
    let c = DastraClient::new(cfg, QuotaLimiter::new(&cfg.quota), Some(events.clone())).expect("client");
    (c, events)
}

fn asset() -> Asset {
    Asset {
        label: "CRM".into(),
        r#type: Some(AssetType::Software),
        r#ref: Some("netbox:asset:1".into()),
        ..Asset::default()
    }
}

#[tokio::test]
async fn api_key_header_paths_query_and_body_are_what_dastra_expects() {
    let (mock, base) = start(vec![
        ok(r#"{"id":5,"label":"CRM","type":"Software","ref":"netbox:asset:1"}"#),
        ok(r#"{"items":[{"id":5,"label":"CRM","type":"Software","ref":"netbox:asset:1"}],"total":1,"size":100,"page":1}"#),
    ])
    .await;
    let (c, events) = client(&config(&base, api_key()));
    let created = c.create::<Assets>(&asset()).await.expect("create");
    assert_eq!(created.id, Some(5));
    let found = c.find_by_external_key::<Assets>("netbox:asset:1").await.expect("find");
    assert_eq!(found.len(), 1);

    let seen = mock.seen.lock().clone();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/ws/7/Assets");
    assert_eq!(seen[0].headers.get("x-api-key").and_then(|v| v.to_str().ok()), Some(KEY));
    assert!(seen[0].headers.get("authorization").is_none());
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).expect("json body");
    assert_eq!(body, serde_json::json!({"label":"CRM","type":"Software","ref":"netbox:asset:1"}));
    assert_eq!(seen[1].path, "/v1/ws/7/Assets");
    let q: Vec<(String, String)> = url::form_urlencoded::parse(seen[1].query.as_bytes()).into_owned().collect();
    let filters = q.iter().find(|(k, _)| k == "filters").map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(filters, Filter::equal("Ref", "netbox:asset:1").to_query_value());
    assert!(q.contains(&("sortBy".into(), "Id".into())) && q.contains(&("page".into(), "1".into())));

    let ev = events.0.lock().clone();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].route, "POST /v1/ws/{workspaceId}/Assets");
    assert_eq!(ev[0].status, Some(200));
    assert_eq!(ev[0].outcome, AttemptOutcome::Success);
    assert_eq!(ev[1].route, "GET /v1/ws/{workspaceId}/Assets");
}

#[tokio::test]
async fn basic_auth_sends_the_key_as_user_name() {
    let (mock, base) = start(vec![ok("{}")]).await;
    let (c, _) = client(&config(&base, AuthConfig::Basic { api_key: Secret::new(KEY) }));
    c.me().await.expect("me");
    let seen = mock.seen.lock().clone();
    use base64::Engine;
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:")));
    assert_eq!(seen[0].path, "/me");
    assert_eq!(seen[0].headers.get("authorization").and_then(|v| v.to_str().ok()), Some(expected.as_str()));
}

#[tokio::test]
async fn oauth_token_is_fetched_once_shared_and_refreshed_before_expiry() {
    let (mock, base) = start(vec![]).await;
    let token_url = base.join("/connect/token").expect("url");
    let auth = AuthConfig::Oauth2 {
        token_url,
        client_id: "pub-client".into(),
        client_secret: Secret::new("priv-SECRET"),
        scope: "api1".into(),
        refresh_before: Duration::from_secs(60),
    };
    let (c, _) = client(&config(&base, auth));
    // Ten concurrent calls: one token request.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.me().await })
        })
        .collect();
    for h in calls {
        assert!(h.await.expect("join").is_ok());
    }
    assert_eq!(*mock.tokens_issued.lock(), 1);
    assert_eq!(c.token_fetches(), 1);
    let seen = mock.seen.lock().clone();
    let token_req = seen.iter().find(|s| s.path == "/connect/token").expect("token request");
    use base64::Engine;
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("pub-client:priv-SECRET"));
    assert_eq!(token_req.headers.get("authorization").and_then(|v| v.to_str().ok()), Some(basic.as_str()));
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token_req.body).into_owned().collect();
    assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
    assert!(form.contains(&("scope".into(), "api1".into())));
    assert!(
        seen.iter()
            .filter(|s| s.path == "/me")
            .all(|s| s.headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer tok-1"))
    );

    // A token living 2 s is refreshed after half its life (refresh_before is capped at lifetime/2).
    *mock.token_lifetime.lock() = 2;
    let (c2, _) = client(&config(
        &base,
        AuthConfig::Oauth2 {
            token_url: base.join("/connect/token").expect("url"),
            client_id: "pub-client".into(),
            client_secret: Secret::new("priv-SECRET"),
            scope: "api1".into(),
            refresh_before: Duration::from_secs(60),
        },
    ));
    c2.me().await.expect("me");
    c2.me().await.expect("me");
    assert_eq!(c2.token_fetches(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c2.me().await.expect("me");
    assert_eq!(c2.token_fetches(), 2);
}

#[tokio::test]
async fn a_401_with_oauth_fetches_a_new_token_once_then_fails_fatally() {
    let (mock, base) = start(vec![status(401, ""), ok("{}"), status(401, ""), status(401, "")]).await;
    let auth = AuthConfig::Oauth2 {
        token_url: base.join("/connect/token").expect("url"),
        client_id: "pub".into(),
        client_secret: Secret::new("priv-SECRET"),
        scope: "api1".into(),
        refresh_before: Duration::from_secs(60),
    };
    let (c, _) = client(&config(&base, auth));
    c.me().await.expect("second token works");
    assert_eq!(*mock.tokens_issued.lock(), 2);
    let err = c.me().await.expect_err("401 twice");
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.class(), ErrorClass::Fatal);
    assert_eq!(err.code(), "dastra_unauthorized");
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_success() {
    let (mock, base) =
        start(vec![status(503, ""), status(500, "oops"), ok(r#"{"id":9,"label":"x","type":"Data"}"#)]).await;
    let (c, events) = client(&config(&base, api_key()));
    let a = c.get::<Assets>(&9).await.expect("third attempt succeeds");
    assert_eq!(a.id, Some(9));
    assert_eq!(mock.seen.lock().len(), 3);
    let outcomes: Vec<_> = events.0.lock().iter().map(|e| (e.attempt, e.status, e.outcome)).collect();
    assert_eq!(
        outcomes,
        vec![
            (1, Some(503), AttemptOutcome::Retrying),
            (2, Some(500), AttemptOutcome::Retrying),
            (3, Some(200), AttemptOutcome::Success),
        ]
    );
}

#[tokio::test]
async fn retries_stop_after_max_attempts_with_a_retryable_error() {
    let (mock, base) = start(vec![status(502, ""); 10]).await;
    let (c, _) = client(&config(&base, api_key()));
    let err = c.get::<Assets>(&1).await.expect_err("always 502");
    assert_eq!(mock.seen.lock().len(), 4);
    assert!(matches!(err, DastraError::Http { status: 502, attempts: 4, .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.route(), Some("GET /v1/ws/{workspaceId}/Assets/{id}"));
}

#[tokio::test]
async fn permanent_client_errors_are_not_retried_and_name_invalid_fields() {
    let problem = r#"{"type":"https://tools.ietf.org/html/rfc7231#section-6.5.1","title":"One or more validation errors occurred.","status":400,"errors":{"Label":["The Label field is required."]}}"#;
    let (mock, base) = start(vec![status(400, problem), status(404, ""), status(404, "")]).await;
    let (c, _) = client(&config(&base, api_key()));
    let err = c.create::<Assets>(&Asset::default()).await.expect_err("400");
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(err.code(), "dastra_bad_request");
    assert!(
        matches!(&err, DastraError::Http { invalid_fields, attempts: 1, .. } if invalid_fields == &vec!["Label".to_owned()])
    );
    let err = c.get::<Assets>(&3).await.expect_err("404");
    assert!(err.is_not_found());
    // A delete of something already gone is done.
    c.delete::<Assets>(&3).await.expect("404 on delete is success");
    assert_eq!(mock.seen.lock().len(), 3);
}

#[tokio::test]
async fn a_429_pauses_every_request_until_retry_after_then_retries() {
    let mut limited = status(429, "");
    limited.retry_after = Some("1");
    let (mock, base) = start(vec![limited, ok("{}"), ok("{}")]).await;
    let (c, events) = client(&config(&base, api_key()));
    let first = {
        let c = c.clone();
        tokio::spawn(async move { c.me().await })
    };
    // Let the first request meet the 429 before the second one starts.
    while mock.seen.lock().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(c.quota().snapshot().paused_for.is_some(), "the 429 paused the shared quota");
    let second = c.with_priority(Priority::Urgent).me().await;
    assert!(second.is_ok());
    assert!(first.await.expect("join").is_ok());
    let seen = mock.seen.lock().clone();
    assert_eq!(seen.len(), 3);
    // Both later requests waited for the pause: no request in between.
    assert!(seen[1].at.duration_since(seen[0].at) >= Duration::from_secs(1));
    assert!(seen[2].at.duration_since(seen[0].at) >= Duration::from_secs(1));
    assert_eq!(events.0.lock().iter().filter(|e| e.status == Some(429)).count(), 1);
    assert_eq!(c.quota().snapshot().pauses_total, 1);
}

#[tokio::test]
async fn a_create_is_retried_after_429_but_not_after_503() {
    let (mock, base) =
        start(vec![status(429, ""), ok(r#"{"id":1,"label":"CRM","type":"Software"}"#), status(503, "")]).await;
    let mut cfg = config(&base, api_key());
    cfg.retry.default_retry_after = Duration::from_millis(20);
    let (c, _) = client(&cfg);
    assert!(c.create::<Assets>(&asset()).await.is_ok(), "429 means not processed: retried");
    let err = c.create::<Assets>(&asset()).await.expect_err("503 on a create");
    assert_eq!(err.code(), "ambiguous_create");
    assert!(err.is_ambiguous_create());
    assert_eq!(mock.seen.lock().len(), 3, "the 503 create was not repeated");
}

#[tokio::test]
async fn a_create_that_times_out_is_ambiguous_and_not_repeated_while_a_get_is_retried() {
    let slow = Reply {
        status: 200,
        body: r#"{"id":1,"label":"CRM","type":"Software"}"#.into(),
        retry_after: None,
        delay: Duration::from_secs(3),
    };
    let (mock, base) = start(vec![slow.clone(), slow, ok(r#"{"id":1,"label":"CRM","type":"Software"}"#)]).await;
    let mut cfg = config(&base, api_key());
    cfg.request_timeout = Duration::from_millis(300);
    let (c, events) = client(&cfg);
    let err = c.create::<Assets>(&asset()).await.expect_err("timed out");
    assert!(matches!(err, DastraError::AmbiguousCreate { route: "POST /v1/ws/{workspaceId}/Assets", .. }), "{err:?}");
    assert!(err.to_string().contains("look the entity up"), "{err}");
    assert_eq!(events.0.lock().last().map(|e| e.transport_error), Some(Some("dastra_timeout")));
    // The GET is idempotent: its timeout is retried and the next answer is fast.
    let got = c.get::<Assets>(&1).await.expect("retried");
    assert_eq!(got.id, Some(1));
    assert_eq!(mock.seen.lock().iter().filter(|s| s.method == "POST").count(), 1);
}

/// A server that reads the request and closes the connection without answering.
async fn dropping_server() -> (Url, Arc<Mutex<u32>>) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(Mutex::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            *c.lock() += 1;
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 65536];
            let _ = tokio::time::timeout(Duration::from_millis(200), sock.read(&mut buf)).await;
            drop(sock);
        }
    });
    (Url::parse(&format!("http://{addr}")).expect("url"), count)
}

#[tokio::test]
async fn a_dropped_connection_makes_a_create_ambiguous_and_a_refused_connection_is_retried() {
    let (base, accepted) = dropping_server().await;
    let (c, _) = client(&config(&base, api_key()));
    let err = c.create::<Assets>(&asset()).await.expect_err("dropped");
    assert!(err.is_ambiguous_create(), "{err:?}");
    assert_eq!(*accepted.lock(), 1, "not repeated");

    // Nothing listens: the request never left, so even a create is retried, then reported.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let base = Url::parse(&format!("http://127.0.0.1:{port}")).expect("url");
    let (c, events) = client(&config(&base, api_key()));
    let err = c.create::<Assets>(&asset()).await.expect_err("refused");
    assert_eq!(err.code(), "dastra_connect");
    assert!(err.is_retryable());
    assert_eq!(events.0.lock().len(), 4, "all attempts used");
}

#[tokio::test]
async fn attachments_are_uploaded_as_multipart_part_file() {
    let (mock, base) = start(vec![ok(
        r#"{"id":"6f1c2a9e-8a43-4a4b-9b51-3e0c7e0d2f10","fileName":"export.pdf","size":5,"userRequestId":3}"#,
    )])
    .await;
    let (c, _) = client(&config(&base, api_key()));
    let att = c
        .with_priority(Priority::Urgent)
        .upload_dsr_attachment(
            3,
            AttachmentUpload {
                file_name: "export.pdf".into(),
                content_type: "application/pdf".into(),
                content: Bytes::from_static(b"%PDF-"),
            },
        )
        .await
        .expect("upload");
    assert_eq!(att.file_name.as_deref(), Some("export.pdf"));
    let seen = mock.seen.lock().clone();
    assert_eq!(seen[0].path, "/v1/ws/7/DataSubjectAttachments/3");
    let ct = seen[0].headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    let body = String::from_utf8_lossy(&seen[0].body);
    assert!(body.contains(r#"name="File"; filename="export.pdf""#), "{body}");
    assert!(body.contains("Content-Type: application/pdf") && body.contains("%PDF-"));
}

#[tokio::test]
async fn secrets_never_reach_error_display_or_debug() {
    let echo = format!(r#"{{"detail":"key {KEY} refused","access_token":"tok-LEAK","password":"pw-LEAK"}}"#);
    let (_, base) = start(vec![status(403, &echo), status(500, &echo)]).await;
    let mut cfg = config(&base, api_key());
    cfg.retry.max_attempts = 1;
    let (c, _) = client(&cfg);
    let err = c.get::<Assets>(&1).await.expect_err("403");
    let err2 = c.create::<Assets>(&asset()).await.expect_err("500 on create");
    for text in [
        err.to_string(),
        format!("{err:?}"),
        err2.to_string(),
        format!("{err2:?}"),
        format!("{c:?}"),
        format!("{cfg:?}"),
    ] {
        assert!(!text.contains(KEY), "{text}");
        assert!(!text.contains("tok-LEAK") && !text.contains("pw-LEAK"), "{text}");
    }
    assert!(err.to_string().contains("403"));
}
