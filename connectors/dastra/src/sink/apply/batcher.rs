//! Dastra's batch routes, where they pay. Of keys worked on at the same time, the deletes of one
//! entity type become one `POST <collection>/batch-delete`; the archives (the `archive` delete
//! policy) one `POST <collection>/archive` (DataProcessings, Contracts) or `POST
//! Tasks/batch-archive`; the restores of archived entities coming back one `POST
//! <collection>/restore` or `POST Tasks/batch-restore`; and identical JSON Patches of one type one
//! `PATCH <collection>` with `{ids, patch}` (a sweep that changes an owner on 300 assets, a source
//! that removes 1 000 CIs or retires 200 processings).
//!
//! Every key still awaits its own answer: a worker hands its request to a group and gets back the
//! result of the request that carried it, so the ledger entry of a key is written only after that
//! key's own change is in Dastra — the crash guarantees are the single requests' (a replay deletes
//! again and gets a 404, which is success; an archive archives again; a patch sets the same values
//! again).
//!
//! How a group forms and is sent (the first member leads, in its own worker, no task of its own):
//! 1. the leader waits up to `window` (or until the group has `max` members),
//! 2. then for a quota slot in the group's class — under quota pressure members keep joining
//!    while the request waits, which is when batching saves the most,
//! 3. then seals the group, leaves out members whose worker has been given up meanwhile
//!    (a revoked partition's work abandoned after the grace period must not be sent later by
//!    someone else), and sends one request for the rest (a group of one is today's single
//!    request: `DELETE …/{id}`, `PATCH …/{id}`).
//! 4. A batch Dastra refuses (a 4xx other than 408/429) is split in halves, each sent again, down
//!    to single requests: the member Dastra refuses gets its own refusal (a 400 → DLQ, a 404 on a
//!    patch or a restore → created again, a 404 on a delete or an archive → already gone, exactly
//!    as without batching) and the others their success. A transient failure (after the client's
//!    retries) is every member's answer, retried by each worker as usual.
//!
//! If the leader's worker is given up while it leads, the members it holds get "abandoned" (a
//! retryable error) and their workers send again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};

use super::engine::SinkResource;
use crate::DastraClient;
use crate::error::{DastraError, TransportKind, status_class};
use crate::model::PatchOperation;
use crate::quota::Priority;
use dastra_connect_core::ErrorClass;

/// What a group sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Op {
    /// `POST <collection>/batch-delete`.
    Delete,
    /// The resource's batch archive ([`SinkResource::BATCH_ARCHIVE`]).
    Archive,
    /// The resource's batch restore ([`SinkResource::BATCH_RESTORE`]).
    Restore,
    /// `PATCH <collection>` with this patch (its JSON text is the group key).
    Patch(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    collection: &'static str,
    op: Op,
    priority: Priority,
}

struct Member {
    id: String,
    answer: oneshot::Sender<Result<(), DastraError>>,
}

#[derive(Default)]
struct Group {
    members: Mutex<Vec<Member>>,
    full: Notify,
}

/// Groups the deletes and identical patches of keys worked on at once (see the module docs).
/// One per sink, shared by its workers.
pub struct RequestBatcher {
    window: Duration,
    max: usize,
    open: Mutex<HashMap<GroupKey, Arc<Group>>>,
    /// Set for `plan`: nothing waits, groups are counted (see [`RequestBatcher::planning`]).
    plan: Option<Mutex<PlanWave>>,
}

/// What a plan counts of batching (see [`RequestBatcher::planning`]).
#[derive(Default)]
struct PlanWave {
    /// Keys started so far, per quota class ([`RequestBatcher::key_started`]).
    started: [u64; 3],
    /// How many starts after its leader's a group still takes members.
    span: u64,
    /// Each open group: the start index of its leader, and its members.
    groups: HashMap<GroupKey, (u64, usize)>,
    /// Requests that joined a group instead of being sent, since the last `take_joined`.
    joined: u64,
    /// `(single route, batch route)` → groups that became batch requests.
    batched: HashMap<(&'static str, &'static str), u64>,
}

impl std::fmt::Debug for RequestBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBatcher").field("window", &self.window).field("max", &self.max).finish_non_exhaustive()
    }
}

/// Removes the group from the open ones when its leader is dropped before sealing it (its worker
/// given up): the members it holds then get "abandoned" and send again.
struct Leading<'a> {
    batcher: &'a RequestBatcher,
    key: GroupKey,
    group: Arc<Group>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.batcher.close(&self.key, &self.group);
        // Dropping the senders answers every member still waiting (`RecvError` → abandoned).
        self.group.members.lock().clear();
    }
}

impl RequestBatcher {
    /// A batcher: groups wait up to `window` for more members and hold at most `max` of them.
    pub fn new(window: Duration, max: usize) -> Self {
        Self { window, max: max.max(1), open: Mutex::new(HashMap::new()), plan: None }
    }

    /// A batcher for `plan`, which applies one key after the other through a dry-run client:
    /// nothing waits; the first delete or patch of a group is sent (recorded) on its own route,
    /// and a later identical one joins it (and sends nothing) when fewer than `span` keys of its
    /// quota class were started since the group's leader and the group has fewer than `max`
    /// members. With a backlog consumed faster than Dastra answers, the leader's request waits for
    /// the quota behind at most `max_in_flight - 1` others (one per key in flight), each of which
    /// frees its key's place for one more key: `span = max_in_flight`. Per class, because the
    /// driver's priority lanes start the waiting keys of one class together.
    pub fn planning(max: usize, span: usize) -> Self {
        let wave = PlanWave { span: span.max(1) as u64, ..PlanWave::default() };
        Self { plan: Some(Mutex::new(wave)), ..Self::new(Duration::ZERO, max) }
    }

    /// Plan: one more key of quota class `class` was started (it sent a request or joined a
    /// group).
    pub fn key_started(&self, class: Priority) {
        if let Some(p) = &self.plan {
            p.lock().started[class.index()] += 1;
        }
    }

    /// Plan: requests that joined a group (sent nothing) since the last call.
    pub fn take_joined(&self) -> u64 {
        self.plan.as_ref().map_or(0, |p| std::mem::take(&mut p.lock().joined))
    }

    /// Plan: `(single route, batch route, groups)`: how many requests recorded on their single
    /// route became batch requests, because others joined them.
    pub fn batched_routes(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.plan.as_ref().map_or_else(Vec::new, |p| p.lock().batched.iter().map(|(&(a, b), &n)| (a, b, n)).collect())
    }

    /// Deletes the entity `id` of `R` (a 404 is success: already gone), in a `batch-delete` with
    /// other keys' deletes of `R` when there are some.
    pub async fn delete<R: SinkResource>(&self, client: &DastraClient, id: &str) -> Result<(), DastraError> {
        if !self.groups::<R>() {
            return single::<R>(client, &Op::Delete, id).await;
        }
        // Deletes always queue as urgent (the client's rule for DELETE).
        self.submit::<R>(client, Op::Delete, Priority::Urgent, id).await
    }

    /// Archives the entity `id` of `R` (a 404 is success: already gone), in one batch archive with
    /// other keys' archives of `R` when Dastra has one for `R` and there are some.
    pub async fn archive<R: SinkResource>(&self, client: &DastraClient, id: &str) -> Result<(), DastraError> {
        if R::BATCH_ARCHIVE.is_none() || !self.groups::<R>() {
            return single::<R>(client, &Op::Archive, id).await;
        }
        self.submit::<R>(client, Op::Archive, client.priority(), id).await
    }

    /// Restores the archived entity `id` of `R`, in one batch restore with other keys' restores of
    /// `R` when Dastra has one for `R` and there are some. A 404 (the record is gone) is the
    /// member's answer: its caller creates the record again.
    pub async fn restore<R: SinkResource>(&self, client: &DastraClient, id: &str) -> Result<(), DastraError> {
        if R::BATCH_RESTORE.is_none() || !self.groups::<R>() {
            return single::<R>(client, &Op::Restore, id).await;
        }
        self.submit::<R>(client, Op::Restore, client.priority(), id).await
    }

    /// Applies `ops` to the entity `id` of `R`, in one `PATCH <collection>` with other keys'
    /// identical patches of `R` when there are some.
    pub async fn patch<R: SinkResource>(
        &self,
        client: &DastraClient,
        id: &R::Id,
        ops: &[PatchOperation],
    ) -> Result<(), DastraError> {
        if !self.groups::<R>() {
            return client.patch::<R>(id, ops).await;
        }
        // The patch's JSON text is its group key.
        let text = serde_json::to_string(ops)
            .map_err(|e| DastraError::Build { route: R::ROUTES.patch, detail: e.to_string() })?;
        self.submit::<R>(client, Op::Patch(text), client.priority(), &id.to_string()).await
    }

    /// Whether requests of `R` can join a group: `R` has batch routes, and there is a window to
    /// group in (or a plan counting groups).
    fn groups<R: SinkResource>(&self) -> bool {
        R::BATCH_ROUTES && (self.plan.is_some() || !(self.window.is_zero() || self.max == 1))
    }

    async fn submit<R: SinkResource>(
        &self,
        client: &DastraClient,
        op: Op,
        priority: Priority,
        id: &str,
    ) -> Result<(), DastraError> {
        if let Some(plan) = &self.plan {
            let key = GroupKey { collection: R::PATH, op, priority };
            let joined = {
                let mut guard = plan.lock();
                let p = &mut *guard;
                let now = p.started[key.priority.index()];
                match p.groups.get_mut(&key) {
                    Some((lead, n)) if *n < self.max && now - *lead < p.span => {
                        *n += 1;
                        let second = *n == 2;
                        p.joined += 1;
                        if second {
                            let routes = match key.op {
                                Op::Delete => (R::ROUTES.delete, R::ROUTES.batch_delete),
                                Op::Archive => (R::ARCHIVE_ROUTE, batch_route::<R>(&Op::Archive)),
                                Op::Restore => (R::RESTORE_ROUTE, batch_route::<R>(&Op::Restore)),
                                Op::Patch(_) => (R::ROUTES.patch, R::ROUTES.batch_patch),
                            };
                            *p.batched.entry(routes).or_default() += 1;
                        }
                        true
                    }
                    _ => {
                        p.groups.insert(key.clone(), (now, 1));
                        false
                    }
                }
            };
            return if joined { Ok(()) } else { single::<R>(client, &key.op, id).await };
        }
        let key = GroupKey { collection: R::PATH, op, priority };
        let (tx, rx) = oneshot::channel();
        let led = {
            let mut open = self.open.lock();
            match open.get(&key) {
                Some(group) => {
                    let mut members = group.members.lock();
                    members.push(Member { id: id.to_owned(), answer: tx });
                    if members.len() >= self.max {
                        // Full: later members start a new group; the leader sends this one.
                        drop(members);
                        let group = open.remove(&key).expect("the group is open");
                        group.full.notify_one();
                    }
                    None
                }
                None => {
                    let group = Arc::new(Group::default());
                    group.members.lock().push(Member { id: id.to_owned(), answer: tx });
                    open.insert(key.clone(), group.clone());
                    Some(group)
                }
            }
        };
        if let Some(group) = led {
            let leading = Leading { batcher: self, key, group };
            tokio::select! {
                () = tokio::time::sleep(self.window) => {}
                () = leading.group.full.notified() => {}
            }
            let reserved = client.reserve(leading.key.priority).await;
            self.close(&leading.key, &leading.group);
            let members: Vec<Member> = std::mem::take(&mut *leading.group.members.lock())
                .into_iter()
                .filter(|m| !m.answer.is_closed())
                .collect();
            if members.len() > 1 {
                tracing::debug!(collection = R::PATH, members = members.len(), "sending a batch request");
            }
            send::<R>(&reserved, &leading.key.op, members).await;
        }
        rx.await.unwrap_or_else(|_| Err(abandoned(R::PATH)))
    }

    /// Stops `group` taking members, if it is still the open group of `key`.
    fn close(&self, key: &GroupKey, group: &Arc<Group>) {
        let mut open = self.open.lock();
        if open.get(key).is_some_and(|g| Arc::ptr_eq(g, group)) {
            open.remove(key);
        }
    }
}

/// The answer of a member whose group was given up before its request was answered: transient
/// (its worker sends again), and harmless to repeat.
fn abandoned(collection: &'static str) -> DastraError {
    DastraError::Transport {
        route: collection,
        kind: TransportKind::Broken,
        attempts: 0,
        detail: "the batch carrying this request was given up before Dastra answered".into(),
    }
}

/// Sends one group's request and answers each member; a refused batch is split in halves.
fn send<'a, R: SinkResource>(client: &'a DastraClient, op: &'a Op, members: Vec<Member>) -> BoxFuture<'a, ()> {
    Box::pin(async move {
        match members.len() {
            0 => {}
            1 => {
                let member = members.into_iter().next().expect("one member");
                let result = single::<R>(client, op, &member.id).await;
                let _ = member.answer.send(result);
            }
            n => {
                let ids: Result<Vec<R::Id>, DastraError> = members.iter().map(|m| typed::<R>(&m.id)).collect();
                let result = match ids {
                    Ok(ids) => batch::<R>(client, op, &ids).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {
                        for m in members {
                            let _ = m.answer.send(Ok(()));
                        }
                    }
                    Err(e) if refused(&e) => {
                        tracing::info!(collection = R::PATH, members = n, status = ?e.status(), "Dastra refused a batch; splitting it to find the member it refuses");
                        let mut first = members;
                        let second = first.split_off(n / 2);
                        // Members given up meanwhile are left out (see the module docs).
                        let alive =
                            |v: Vec<Member>| v.into_iter().filter(|m| !m.answer.is_closed()).collect::<Vec<_>>();
                        send::<R>(client, op, alive(first)).await;
                        send::<R>(client, op, alive(second)).await;
                    }
                    Err(e) => {
                        for m in members {
                            let _ = m.answer.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
    })
}

/// A refusal that may belong to one member only: a permanent 4xx (not 401, which is every
/// request's, nor 408/429, which are transient).
fn refused(e: &DastraError) -> bool {
    e.status().is_some_and(|s| (400..500).contains(&s) && status_class(s) == ErrorClass::Permanent)
}

fn typed<R: SinkResource>(id: &str) -> Result<R::Id, DastraError> {
    R::parse_id(id)
        .ok_or_else(|| DastraError::Build { route: R::ROUTES.patch, detail: format!("{id:?} is not a Dastra id") })
}

/// One entity's delete or patch, on its own route.
async fn single<R: SinkResource>(client: &DastraClient, op: &Op, id: &str) -> Result<(), DastraError> {
    let id = typed::<R>(id)?;
    match op {
        Op::Delete => client.delete::<R>(&id).await,
        Op::Archive => R::archive_one(client, &id).await,
        Op::Restore => R::restore_one(client, &id).await,
        Op::Patch(text) => client.patch::<R>(&id, &ops_of::<R>(text)?).await,
    }
}

/// `(route template, path under the collection)` of `R`'s batch archive or restore.
fn ids_route<R: SinkResource>(op: &Op) -> Option<(&'static str, &'static str)> {
    match op {
        Op::Archive => R::BATCH_ARCHIVE,
        Op::Restore => R::BATCH_RESTORE,
        Op::Delete | Op::Patch(_) => None,
    }
}

/// The route template of `R`'s batch archive or restore (the single route when it has none).
fn batch_route<R: SinkResource>(op: &Op) -> &'static str {
    let single = if *op == Op::Restore { R::RESTORE_ROUTE } else { R::ARCHIVE_ROUTE };
    ids_route::<R>(op).map_or(single, |(route, _)| route)
}

async fn batch<R: SinkResource>(client: &DastraClient, op: &Op, ids: &[R::Id]) -> Result<(), DastraError> {
    match op {
        Op::Delete => client.batch_delete_unchecked::<R>(ids).await,
        Op::Archive | Op::Restore => match ids_route::<R>(op) {
            Some((route, path)) => client.batch_ids_unchecked::<R>(route, path, ids).await,
            None => Err(DastraError::Build {
                route: batch_route::<R>(op),
                detail: format!("{} has no such batch route", R::PATH),
            }),
        },
        Op::Patch(text) => client.batch_patch_unchecked::<R>(ids, &ops_of::<R>(text)?).await,
    }
}

fn ops_of<R: SinkResource>(text: &str) -> Result<Vec<PatchOperation>, DastraError> {
    serde_json::from_str(text).map_err(|e| DastraError::Build { route: R::ROUTES.patch, detail: e.to_string() })
}

/// [`RequestBatcher::archive`] without a batcher: the record's own archive route.
pub(super) async fn archive_one<R: SinkResource>(client: &DastraClient, id: &str) -> Result<(), DastraError> {
    single::<R>(client, &Op::Archive, id).await
}

/// [`RequestBatcher::restore`] without a batcher: the record's own restore route.
pub(super) async fn restore_one<R: SinkResource>(client: &DastraClient, id: &str) -> Result<(), DastraError> {
    single::<R>(client, &Op::Restore, id).await
}

/// [`RequestBatcher::delete`] without a batcher: `DELETE <collection>/{id}`.
pub(super) async fn delete_one<R: SinkResource>(client: &DastraClient, id: &str) -> Result<(), DastraError> {
    single::<R>(client, &Op::Delete, id).await
}
