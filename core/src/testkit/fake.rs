//! The skeleton every fake source system (ServiceNow, NetBox, Coupa, and the next ones) is built
//! on, so that a connector's `fake.rs` holds only what its system's API says: routes, filters,
//! answer shapes and error bodies.
//!
//! - [`Fake`]: the shared state behind a `Mutex` — a simulated clock that ticks per write, an id
//!   counter, 429 injection ([`Fake::throttle_next`]), the log of answered requests (written by
//!   a middleware, so no handler forgets it) — plus the system's own part `S`.
//! - [`RecordStore`]: records (JSON objects with a numeric `id`) by stream: insert, update,
//!   delete, list, bundled samples.
//! - [`OAuthClients`]: OAuth2 client-credentials clients and the tokens issued to them.
//! - [`offset_page`]: `offset`/`limit` paging; [`retry_after`]: the `Retry-After` of a 429.
//! - [`RunningFake`]: a fake served on a local port, stopped when dropped; [`crate::fake_handle`]
//!   declares a fake's handle type around all of this.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, MutexGuard};
use serde_json::Value;

/// Declares a fake's handle, so a connector's fake says only what its system differs in:
/// `pub struct $name(Fake<$state>)` (clones share the state; `Deref` to the [`Fake`] skeleton for
/// the clock, throttling and the log), `Default` (= `$name::new()`, which the fake defines), the
/// `RunningFake` alias, and `spawn` / `spawn_on` serving `$name::router()` (which the fake defines).
///
/// ```
/// use axum::Router;
/// use dastra_connect_core::testkit::fake::Fake;
///
/// /// Acme's own part of the state.
/// #[derive(Default)]
/// pub struct AcmeState;
///
/// dastra_connect_core::fake_handle!(
///     /// A fake Acme CRM.
///     FakeAcme(AcmeState),
///     "fake Acme"
/// );
///
/// impl FakeAcme {
///     /// An empty Acme.
///     pub fn new() -> FakeAcme {
///         FakeAcme(Fake::new(chrono::DateTime::UNIX_EPOCH, 0, AcmeState))
///     }
///     /// Its API.
///     pub fn router(&self) -> Router {
///         self.logged(Router::new())
///     }
/// }
///
/// let acme = FakeAcme::default();
/// acme.throttle_next(1);
/// assert!(acme.lock().take_throttle());
/// assert!(acme.log().is_empty());
/// ```
#[macro_export]
macro_rules! fake_handle {
    ($(#[$meta:meta])* $name:ident($state:ty), $what:literal) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name($crate::testkit::fake::Fake<$state>);

        impl ::std::ops::Deref for $name {
            type Target = $crate::testkit::fake::Fake<$state>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl ::std::default::Default for $name {
            fn default() -> Self {
                $name::new()
            }
        }

        /// A fake served on a local port; dropping it stops the server.
        pub type RunningFake = $crate::testkit::fake::RunningFake<$name>;

        impl $name {
            /// Serves the fake on `127.0.0.1:<free port>`.
            pub async fn spawn(self) -> ::std::io::Result<RunningFake> {
                self.spawn_on("127.0.0.1:0").await
            }

            /// Serves the fake on `addr`.
            pub async fn spawn_on(self, addr: &str) -> ::std::io::Result<RunningFake> {
                let router = self.router();
                $crate::testkit::fake::serve(self, router, addr, $what).await
            }
        }
    };
}

/// One request a fake answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    /// Path.
    pub path: String,
    /// Query parameters (the last value of a repeated one).
    pub params: BTreeMap<String, String>,
    /// Status answered.
    pub status: u16,
}

/// The state every fake has, and its own part `sys`.
pub struct FakeStore<S> {
    /// The simulated clock.
    pub clock: DateTime<Utc>,
    /// The last id handed out by [`FakeStore::next_id`].
    pub last_id: u64,
    /// How many of the next requests to answer 429.
    pub throttle_next: u32,
    /// Requests answered so far.
    pub log: Vec<Logged>,
    /// The system's own state (records, tokens…).
    pub sys: S,
}

impl<S> FakeStore<S> {
    /// Moves the clock `step` forward and returns the new time: each write gets a distinct,
    /// increasing time, so tests are deterministic and never sleep across a second boundary.
    pub fn tick(&mut self, step: chrono::Duration) -> DateTime<Utc> {
        self.clock += step;
        self.clock
    }

    /// A new id.
    pub fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// True (and one fewer to come) when this request is to be answered 429.
    pub fn take_throttle(&mut self) -> bool {
        if self.throttle_next == 0 {
            return false;
        }
        self.throttle_next -= 1;
        true
    }
}

/// A fake's shared state; clones share it.
pub struct Fake<S> {
    inner: Arc<Mutex<FakeStore<S>>>,
}

impl<S> Clone for Fake<S> {
    fn clone(&self) -> Self {
        Fake { inner: Arc::clone(&self.inner) }
    }
}

impl<S: Send + 'static> Fake<S> {
    /// A fake whose clock starts at `clock` and whose first id is `last_id + 1`.
    pub fn new(clock: DateTime<Utc>, last_id: u64, sys: S) -> Fake<S> {
        Fake { inner: Arc::new(Mutex::new(FakeStore { clock, last_id, throttle_next: 0, log: Vec::new(), sys })) }
    }

    /// Locks the state.
    pub fn lock(&self) -> MutexGuard<'_, FakeStore<S>> {
        self.inner.lock()
    }

    /// The simulated clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.lock().clock
    }

    /// The next `n` requests the fake checks for throttling are answered 429.
    pub fn throttle_next(&self, n: u32) {
        self.inner.lock().throttle_next = n;
    }

    /// Requests answered so far.
    pub fn log(&self) -> Vec<Logged> {
        self.inner.lock().log.clone()
    }

    /// How many requests were answered with `status`.
    pub fn count_status(&self, status: u16) -> usize {
        self.inner.lock().log.iter().filter(|l| l.status == status).count()
    }

    /// `router` with every request it answers appended to the [`Fake::log`].
    pub fn logged(&self, router: Router) -> Router {
        let fake = self.clone();
        router.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let fake = fake.clone();
            async move {
                let path = req.uri().path().to_owned();
                let params = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let resp = next.run(req).await;
                fake.inner.lock().log.push(Logged { path, params, status: resp.status().as_u16() });
                resp
            }
        }))
    }
}

/// A fake served on a local port; dropping it stops the server.
pub struct RunningFake<F> {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The state (to change records, throttle, read the log).
    pub state: F,
    task: tokio::task::JoinHandle<()>,
}

impl<F> Drop for RunningFake<F> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on `addr` (`127.0.0.1:0`: a free port); `what` names the fake in the error log.
pub async fn serve<F>(state: F, router: Router, addr: &str, what: &'static str) -> std::io::Result<RunningFake<F>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "{what} stopped");
        }
    });
    Ok(RunningFake { base_url, state, task })
}

/// Records by stream, each a JSON object with a numeric `id`.
#[derive(Debug, Clone)]
pub struct RecordStore<K> {
    records: BTreeMap<K, Vec<Value>>,
}

impl<K> Default for RecordStore<K> {
    fn default() -> Self {
        RecordStore { records: BTreeMap::new() }
    }
}

/// The numeric `id` of a record (0 when it has none).
pub fn id_of(v: &Value) -> u64 {
    v.get("id").and_then(Value::as_u64).unwrap_or(0)
}

impl<K: Ord + Copy + std::fmt::Debug> RecordStore<K> {
    /// Adds the bundled samples: `(stream, JSON array text)`. A broken sample is a bug of the
    /// crate that ships it (its tests parse them), hence the panic.
    pub fn load_samples(&mut self, samples: &[(K, &str)]) {
        for (kind, text) in samples {
            let records: Vec<Value> = serde_json::from_str(text).unwrap_or_else(|e| panic!("sample {kind:?}: {e}"));
            self.records.entry(*kind).or_default().extend(records);
        }
    }

    /// Appends a record.
    pub fn push(&mut self, kind: K, record: Value) {
        self.records.entry(kind).or_default().push(record);
    }

    /// Sets `fields`, then `stamps`, on record `id` (a `PATCH`/`PUT`). False when absent.
    pub fn update(&mut self, kind: K, id: u64, fields: &Value, stamps: &[(&str, Value)]) -> bool {
        let Some(r) = self.records.entry(kind).or_default().iter_mut().find(|r| id_of(r) == id) else {
            return false;
        };
        if let Some(obj) = r.as_object_mut() {
            for (k, v) in fields.as_object().into_iter().flatten() {
                obj.insert(k.clone(), v.clone());
            }
            for (k, v) in stamps {
                obj.insert((*k).to_owned(), v.clone());
            }
        }
        true
    }

    /// Removes record `id`; returns it.
    pub fn remove(&mut self, kind: K, id: u64) -> Option<Value> {
        let list = self.records.entry(kind).or_default();
        let pos = list.iter().position(|r| id_of(r) == id)?;
        Some(list.remove(pos))
    }

    /// Every record of a stream.
    pub fn list(&self, kind: K) -> Vec<Value> {
        self.records.get(&kind).cloned().unwrap_or_default()
    }
}

/// A token issued by [`OAuthClients::issue`].
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedToken {
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// When it stops being accepted (`None`: never).
    pub expires: Option<DateTime<Utc>>,
}

/// Why a token request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// `grant_type` is not `client_credentials`.
    UnsupportedGrant,
    /// Unknown client or wrong secret.
    InvalidClient,
}

/// OAuth2 client-credentials clients and the tokens issued to them.
#[derive(Debug, Clone, Default)]
pub struct OAuthClients {
    clients: HashMap<String, String>,
    tokens: HashMap<String, IssuedToken>,
}

impl OAuthClients {
    /// Accepts client `id` with `secret`.
    pub fn add_client(&mut self, id: &str, secret: &str) {
        self.clients.insert(id.to_owned(), secret.to_owned());
    }

    /// Checks a token request's form (`grant_type=client_credentials`, `client_id`,
    /// `client_secret`, `scope`) and records `token` as issued.
    pub fn issue(
        &mut self,
        form: &HashMap<String, String>,
        token: &str,
        expires: Option<DateTime<Utc>>,
    ) -> Result<IssuedToken, TokenRefusal> {
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return Err(TokenRefusal::UnsupportedGrant);
        }
        let known = match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => self.clients.get(id) == Some(secret),
            _ => false,
        };
        if !known {
            return Err(TokenRefusal::InvalidClient);
        }
        let scopes = form.get("scope").map(|s| s.split_whitespace().map(str::to_owned).collect()).unwrap_or_default();
        let issued = IssuedToken { scopes, expires };
        self.tokens.insert(token.to_owned(), issued.clone());
        Ok(issued)
    }

    /// Records `token` as issued by a grant the fake checked itself (a JWT bearer assertion).
    pub fn grant(&mut self, token: &str, scopes: Vec<String>, expires: Option<DateTime<Utc>>) -> IssuedToken {
        let issued = IssuedToken { scopes, expires };
        self.tokens.insert(token.to_owned(), issued.clone());
        issued
    }

    /// The token, if issued and not expired at `now`.
    pub fn valid(&self, token: &str, now: DateTime<Utc>) -> Option<&IssuedToken> {
        self.tokens.get(token.trim()).filter(|t| t.expires.is_none_or(|e| e > now))
    }

    /// Forgets every token (the next request with one is refused).
    pub fn revoke_all(&mut self) {
        self.tokens.clear();
    }
}

/// The `Authorization` header's value after `scheme ` (e.g. `Bearer`), if it has that scheme.
pub fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix(scheme)?.strip_prefix(' ')
}

/// Marks a 429 answer with `Retry-After: 1` (what every fake's throttle says).
pub fn retry_after(mut resp: Response) -> Response {
    resp.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
    resp
}

/// One page of `total` rows at `offset`, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetPage {
    /// The rows of the page.
    pub rows: Range<usize>,
    /// Offset of the next page, when there is one.
    pub next: Option<usize>,
    /// Offset of the previous page, when this is not the first.
    pub previous: Option<usize>,
}

/// `offset`/`limit` paging over `total` rows.
pub fn offset_page(total: usize, offset: usize, limit: usize) -> OffsetPage {
    let start = offset.min(total);
    let end = offset.saturating_add(limit).min(total);
    OffsetPage {
        rows: start..end,
        next: (offset.saturating_add(limit) < total).then(|| offset + limit),
        previous: (offset > 0).then(|| offset.saturating_sub(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_update_and_remove_by_id() {
        let mut s = RecordStore::<u8>::default();
        s.load_samples(&[(1, r#"[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]"#)]);
        assert!(s.update(1, 2, &json!({"name": "c"}), &[("updated", json!("now"))]));
        assert_eq!(s.list(1)[1], json!({"id": 2, "name": "c", "updated": "now"}));
        assert!(!s.update(1, 9, &json!({}), &[]));
        assert_eq!(s.remove(1, 1).map(|r| id_of(&r)), Some(1));
        assert!(s.remove(1, 1).is_none());
        assert!(s.list(2).is_empty());
    }

    #[test]
    fn tokens_need_the_grant_and_the_client_and_expire() {
        let mut o = OAuthClients::default();
        o.add_client("c", "s");
        let form = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let bad_grant = form(&[("grant_type", "password"), ("client_id", "c"), ("client_secret", "s")]);
        assert_eq!(o.issue(&bad_grant, "t", None), Err(TokenRefusal::UnsupportedGrant));
        let bad_secret = form(&[("grant_type", "client_credentials"), ("client_id", "c"), ("client_secret", "x")]);
        assert_eq!(o.issue(&bad_secret, "t", None), Err(TokenRefusal::InvalidClient));
        let ok =
            form(&[("grant_type", "client_credentials"), ("client_id", "c"), ("client_secret", "s"), ("scope", "a b")]);
        let later = now + chrono::Duration::seconds(10);
        assert_eq!(o.issue(&ok, "t", Some(later)).unwrap().scopes, ["a", "b"]);
        assert!(o.valid("t", now).is_some());
        assert!(o.valid("t", later).is_none(), "expired");
        o.revoke_all();
        assert!(o.valid("t", now).is_none());
    }

    #[test]
    fn pages_have_next_and_previous_offsets() {
        assert_eq!(offset_page(5, 0, 2), OffsetPage { rows: 0..2, next: Some(2), previous: None });
        assert_eq!(offset_page(5, 4, 2), OffsetPage { rows: 4..5, next: None, previous: Some(2) });
        assert_eq!(offset_page(5, 9, 2), OffsetPage { rows: 5..5, next: None, previous: Some(7) });
    }
}
