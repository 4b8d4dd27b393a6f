//! Typed calls per entity. A [`Resource`] names a workspace collection, its id type and DTOs; marker
//! traits say which optional routes exist (JSON Patch, batch patch, batch delete, workflow, archive)
//! so that calling, say, `patch::<Area>` — Areas only have PUT — does not compile.

use std::fmt::Display;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::retry::Safety;
use super::{Call, DastraClient, Payload};
use crate::error::DastraError;
use crate::model::{
    Actor, ArchivePayload, Area, Asset, AttachmentUpload, BareList, BatchPatch, CloudAttachment, CloudAttachmentList,
    Contract, DataField, DataProcessing, DataProcessingCreate, DataProcessingRelationship, DataRetentionRule,
    DataSubjectAttachment, DataSubjectRequest, DataSubjectRequestClose, Filter, GenericRelationship,
    GenericRelationshipCreate, PagedList, PatchOperation, RelationShipObjectType, Task, Team, User, Workspace,
    WorkspaceList,
};
use crate::quota::Priority;

/// Route template of a task's own archive / restore (Tasks have no `archive/{id}`).
pub const TASK_ARCHIVE_ROUTE: &str = "POST /v1/ws/{workspaceId}/Tasks/{id}/archive";

/// Route templates (method + path with placeholders) of one collection: metric labels and error text.
#[derive(Debug, Clone, Copy)]
pub struct Routes {
    /// `GET …/X`.
    pub list: &'static str,
    /// `POST …/X`.
    pub create: &'static str,
    /// `GET …/X/{id}`.
    pub get: &'static str,
    /// `PUT …/X/{id}`.
    pub update: &'static str,
    /// `PATCH …/X/{id}`.
    pub patch: &'static str,
    /// `DELETE …/X/{id}`.
    pub delete: &'static str,
    /// `PATCH …/X`.
    pub batch_patch: &'static str,
    /// `POST …/X/batch-delete`.
    pub batch_delete: &'static str,
    /// `POST …/X/workflow`.
    pub workflow: &'static str,
    /// `POST …/X/archive/{id}`.
    pub archive: &'static str,
    /// `POST …/X/restore/{id}`.
    pub restore: &'static str,
}

macro_rules! routes {
    ($c:literal) => {
        Routes {
            list: concat!("GET /v1/ws/{workspaceId}/", $c),
            create: concat!("POST /v1/ws/{workspaceId}/", $c),
            get: concat!("GET /v1/ws/{workspaceId}/", $c, "/{id}"),
            update: concat!("PUT /v1/ws/{workspaceId}/", $c, "/{id}"),
            patch: concat!("PATCH /v1/ws/{workspaceId}/", $c, "/{id}"),
            delete: concat!("DELETE /v1/ws/{workspaceId}/", $c, "/{id}"),
            batch_patch: concat!("PATCH /v1/ws/{workspaceId}/", $c),
            batch_delete: concat!("POST /v1/ws/{workspaceId}/", $c, "/batch-delete"),
            workflow: concat!("POST /v1/ws/{workspaceId}/", $c, "/workflow"),
            archive: concat!("POST /v1/ws/{workspaceId}/", $c, "/archive/{id}"),
            restore: concat!("POST /v1/ws/{workspaceId}/", $c, "/restore/{id}"),
        }
    };
}

/// A workspace collection of the Dastra API.
pub trait Resource {
    /// Path segment, e.g. `Assets`.
    const PATH: &'static str;
    /// Route templates.
    const ROUTES: Routes;
    /// Id type (`i32` or uuid).
    type Id: Display + Serialize + Clone + Send + Sync;
    /// POST body.
    type Create: Serialize + Send + Sync;
    /// True when the list route hides archived records unless `archived=true` is passed (docs/dastra-api.md
    /// §7 #17): lookups then also search the archived ones.
    const LIST_HIDES_ARCHIVED: bool = false;
    /// What POST answers (`Option<_>` where Dastra answers no body).
    type Created: DeserializeOwned + Send;
    /// PUT body.
    type Write: Serialize + Send + Sync;
    /// GET body and list item.
    type Read: DeserializeOwned + Send;
}

/// Has `PATCH …/{id}` with a JSON Patch.
pub trait Patchable: Resource {}
/// Has `PATCH <collection>` with `{ids, patch}`.
pub trait BatchPatchable: Resource {}
/// Has `POST <collection>/batch-delete`.
pub trait BatchDeletable: Resource {}
/// Has `POST <collection>/workflow` with `{id, stepId}`.
pub trait HasWorkflow: Resource {}
/// Has `POST <collection>/archive/{id}` and `…/restore/{id}`.
pub trait Archivable: Resource {}

/// How an external key is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookup {
    /// `filters={"field":<name>,"operator":"equal","value":key}` (inferred to work, docs/dastra-api.md §6.3).
    Filter(&'static str),
    /// A documented query parameter (`?ref=` on Areas and Teams).
    Query(&'static str),
}

/// Has a field Dastra keeps where the sink writes the entity key.
pub trait ExternalKeyed: Resource {
    /// How to find by that field.
    const KEY_LOOKUP: KeyLookup;
    /// The field's maximum length (use [`crate::model::fit_external_key`]).
    const KEY_MAX_LEN: usize;

    /// The value to write into (and look up in) the key field for an entity key: the key itself when
    /// it fits, else its deterministic shortened form.
    fn key_value(entity_key: &str) -> String {
        crate::model::fit_external_key(entity_key, Self::KEY_MAX_LEN)
    }
}

macro_rules! resource {
    ($t:ident, $path:literal, $id:ty, $create:ty, $created:ty, $write:ty, $read:ty) => {
        resource!($t, $path, $id, $create, $created, $write, $read, false);
    };
    ($t:ident, $path:literal, $id:ty, $create:ty, $created:ty, $write:ty, $read:ty, $hides:literal) => {
        /// Route marker for this collection.
        #[derive(Debug, Clone, Copy)]
        pub struct $t;
        impl Resource for $t {
            const PATH: &'static str = $path;
            const LIST_HIDES_ARCHIVED: bool = $hides;
            const ROUTES: Routes = routes!($path);
            type Id = $id;
            type Create = $create;
            type Created = $created;
            type Write = $write;
            type Read = $read;
        }
    };
}

resource!(Assets, "Assets", i32, Asset, Asset, Asset, Asset);
resource!(Actors, "Actors", i32, Actor, Actor, Actor, Actor);
resource!(Contracts, "Contracts", Uuid, Contract, Contract, Contract, Contract, true);
resource!(
    DataProcessings,
    "DataProcessings",
    Uuid,
    DataProcessingCreate,
    DataProcessing,
    DataProcessing,
    DataProcessing,
    true
);
resource!(DataFields, "DataFields", Uuid, DataField, DataField, DataField, DataField);
resource!(
    DataRetentionRules,
    "DataRetentionRules",
    Uuid,
    DataRetentionRule,
    DataRetentionRule,
    DataRetentionRule,
    DataRetentionRule
);
resource!(
    DataSubjectRequests,
    "DataSubjectRequests",
    i32,
    DataSubjectRequest,
    DataSubjectRequest,
    DataSubjectRequest,
    DataSubjectRequest,
    true
);
resource!(Tasks, "Tasks", i32, Task, Task, Task, Task, true);
resource!(Areas, "Areas", i32, Area, Area, Area, Area);
resource!(Teams, "Teams", i32, Team, Option<Team>, Team, Team);

impl Patchable for Assets {}
impl Patchable for Actors {}
impl Patchable for Contracts {}
impl Patchable for DataProcessings {}
impl Patchable for DataFields {}
impl Patchable for DataRetentionRules {}
impl Patchable for DataSubjectRequests {}
impl Patchable for Tasks {}
impl BatchPatchable for Assets {}
impl BatchPatchable for Actors {}
impl BatchPatchable for Contracts {}
impl BatchPatchable for DataProcessings {}
impl BatchPatchable for DataFields {}
impl BatchPatchable for Tasks {}
impl BatchDeletable for Assets {}
impl BatchDeletable for Actors {}
impl BatchDeletable for Contracts {}
impl BatchDeletable for DataProcessings {}
impl BatchDeletable for DataFields {}
impl BatchDeletable for Tasks {}
impl HasWorkflow for Assets {}
impl HasWorkflow for Actors {}
impl HasWorkflow for Contracts {}
impl HasWorkflow for DataProcessings {}
impl HasWorkflow for DataFields {}
impl HasWorkflow for DataSubjectRequests {}
impl HasWorkflow for Tasks {}
impl Archivable for DataProcessings {}
impl Archivable for DataSubjectRequests {}
impl Archivable for Contracts {}

impl ExternalKeyed for Assets {
    const KEY_LOOKUP: KeyLookup = KeyLookup::Filter("Ref");
    // Not in the 2022 document; docs/dastra-api.md §7 #11 suggests ≤50.
    const KEY_MAX_LEN: usize = 50;
}
impl ExternalKeyed for DataProcessings {
    const KEY_LOOKUP: KeyLookup = KeyLookup::Filter("Ref");
    const KEY_MAX_LEN: usize = 50;
}
impl ExternalKeyed for Contracts {
    const KEY_LOOKUP: KeyLookup = KeyLookup::Filter("Ref");
    const KEY_MAX_LEN: usize = 50;
}
impl ExternalKeyed for DataSubjectRequests {
    const KEY_LOOKUP: KeyLookup = KeyLookup::Filter("RefId");
    const KEY_MAX_LEN: usize = 355;
}
impl ExternalKeyed for Areas {
    const KEY_LOOKUP: KeyLookup = KeyLookup::Query("ref");
    const KEY_MAX_LEN: usize = 80;
}
impl ExternalKeyed for Teams {
    const KEY_LOOKUP: KeyLookup = KeyLookup::Query("ref");
    const KEY_MAX_LEN: usize = 80;
}

/// Query of a list call.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Page, 1-based. Default 1.
    pub page: Option<u32>,
    /// Page size (≤500). Default: the client's `page_size`.
    pub size: Option<u32>,
    /// Sort field. Default `Id` (Dastra's default order is undocumented; paging needs a stable one).
    pub sort_by: Option<String>,
    /// Ascending. Default true.
    pub asc: Option<bool>,
    /// `filters` rule.
    pub filters: Option<Filter>,
    /// Free-text search.
    pub q: Option<String>,
    /// Comma-separated fields to return.
    pub select: Option<String>,
    /// Other documented parameters (`archived`, `areaId`, `ids` repeated…).
    pub params: Vec<(String, String)>,
}

impl ListQuery {
    /// A query with a filter.
    pub fn filtered(filter: Filter) -> Self {
        Self { filters: Some(filter), ..Self::default() }
    }

    fn to_pairs(&self, default_size: u32) -> Vec<(String, String)> {
        let mut v = vec![
            ("page".to_owned(), self.page.unwrap_or(1).max(1).to_string()),
            ("size".to_owned(), self.size.unwrap_or(default_size).clamp(1, 500).to_string()),
            ("sortBy".to_owned(), self.sort_by.clone().unwrap_or_else(|| "Id".to_owned())),
            ("asc".to_owned(), self.asc.unwrap_or(true).to_string()),
        ];
        if let Some(f) = &self.filters {
            v.push(("filters".to_owned(), f.to_query_value()));
        }
        if let Some(q) = &self.q {
            v.push(("q".to_owned(), q.clone()));
        }
        if let Some(s) = &self.select {
            v.push(("select".to_owned(), s.clone()));
        }
        v.extend(self.params.iter().cloned());
        v
    }
}

/// Longest lookup we follow: a key matching more than this many records is a data problem to report,
/// not something to page through.
const MAX_LOOKUP_PAGES: u32 = 10;

impl DastraClient {
    fn call(&self, method: Method, label: &'static str, route: &'static str, path: String) -> Call {
        Call {
            method,
            method_label: label,
            route,
            path,
            query: Vec::new(),
            payload: Payload::None,
            safety: Safety::Idempotent,
            priority: self.priority,
        }
    }

    /// `POST <collection>`: creates. Never retried after an unclear outcome — that comes back as
    /// [`DastraError::AmbiguousCreate`]; look the entity up by its external key before creating again.
    pub async fn create<R: Resource>(&self, body: &R::Create) -> Result<R::Created, DastraError> {
        let mut c = self.call(Method::POST, "POST", R::ROUTES.create, self.ws_path(R::PATH));
        c.payload = Self::json_body(c.route, body)?;
        c.safety = Safety::Create;
        self.call_json(c).await
    }

    /// `GET <collection>/{id}`.
    pub async fn get<R: Resource>(&self, id: &R::Id) -> Result<R::Read, DastraError> {
        let c = self.call(Method::GET, "GET", R::ROUTES.get, self.ws_path(&format!("{}/{id}", R::PATH)));
        self.call_json(c).await
    }

    /// `GET <collection>/{id}`, `None` on 404.
    pub async fn get_opt<R: Resource>(&self, id: &R::Id) -> Result<Option<R::Read>, DastraError> {
        match self.get::<R>(id).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET <collection>` (one page).
    pub async fn list<R: Resource>(&self, query: &ListQuery) -> Result<PagedList<R::Read>, DastraError> {
        let mut c = self.call(Method::GET, "GET", R::ROUTES.list, self.ws_path(R::PATH));
        c.query = query.to_pairs(self.page_size());
        self.call_json(c).await
    }

    /// `GET <collection>` (one page), the records as Dastra sent them (every field kept).
    pub async fn list_raw<R: Resource>(&self, query: &ListQuery) -> Result<PagedList<serde_json::Value>, DastraError> {
        let mut c = self.call(Method::GET, "GET", R::ROUTES.list, self.ws_path(R::PATH));
        c.query = query.to_pairs(self.page_size());
        self.call_json(c).await
    }

    /// Every page of `GET <collection>`, up to `max_pages` pages.
    pub async fn list_all<R: Resource>(&self, query: &ListQuery, max_pages: u32) -> Result<Vec<R::Read>, DastraError> {
        let mut q = query.clone();
        let first = q.page.unwrap_or(1).max(1);
        let mut out = Vec::new();
        for page in first..first.saturating_add(max_pages.max(1)) {
            q.page = Some(page);
            let p = self.list::<R>(&q).await?;
            let more = p.has_more();
            out.extend(p.items);
            if !more {
                break;
            }
        }
        Ok(out)
    }

    /// `PUT <collection>/{id}` with the full object (omitted fields may be reset by Dastra).
    pub async fn update<R: Resource>(&self, id: &R::Id, body: &R::Write) -> Result<(), DastraError> {
        let mut c = self.call(Method::PUT, "PUT", R::ROUTES.update, self.ws_path(&format!("{}/{id}", R::PATH)));
        c.payload = Self::json_body(c.route, body)?;
        self.call_unit(c).await
    }

    /// `PATCH <collection>/{id}` with a JSON Patch. A patch with array appends or moves is treated like
    /// a create (not repeated after an unclear outcome).
    pub async fn patch<R: Patchable>(&self, id: &R::Id, ops: &[PatchOperation]) -> Result<(), DastraError> {
        let mut c = self.call(Method::PATCH, "PATCH", R::ROUTES.patch, self.ws_path(&format!("{}/{id}", R::PATH)));
        c.payload = Self::json_body(c.route, ops)?;
        c.safety = patch_safety(ops);
        self.call_unit(c).await
    }

    /// `DELETE <collection>/{id}` (always in the urgent class). A 404 is success: already gone.
    pub async fn delete<R: Resource>(&self, id: &R::Id) -> Result<(), DastraError> {
        let mut c = self.call(Method::DELETE, "DELETE", R::ROUTES.delete, self.ws_path(&format!("{}/{id}", R::PATH)));
        c.priority = Priority::Urgent;
        match self.call_unit(c).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// `PATCH <collection>` with `{ids, patch}`: one patch for many objects, one request.
    pub async fn batch_patch<R: BatchPatchable>(
        &self,
        ids: &[R::Id],
        ops: &[PatchOperation],
    ) -> Result<(), DastraError> {
        self.batch_patch_unchecked::<R>(ids, ops).await
    }

    /// [`Self::batch_patch`] for a resource the caller knows has the route (the sink's batcher,
    /// generic over its own resource trait).
    pub(crate) async fn batch_patch_unchecked<R: Resource>(
        &self,
        ids: &[R::Id],
        ops: &[PatchOperation],
    ) -> Result<(), DastraError> {
        let mut c = self.call(Method::PATCH, "PATCH", R::ROUTES.batch_patch, self.ws_path(R::PATH));
        c.payload = Self::json_body(c.route, &BatchPatch { ids: ids.to_vec(), patch: ops.to_vec() })?;
        c.safety = patch_safety(ops);
        self.call_unit(c).await
    }

    /// `POST <collection>/batch-delete` with the ids as a JSON array (2024 route; the 2022 form was
    /// `DELETE <collection>` with the same body). Urgent class.
    pub async fn batch_delete<R: BatchDeletable>(&self, ids: &[R::Id]) -> Result<(), DastraError> {
        self.batch_delete_unchecked::<R>(ids).await
    }

    /// [`Self::batch_delete`] for a resource the caller knows has the route.
    pub(crate) async fn batch_delete_unchecked<R: Resource>(&self, ids: &[R::Id]) -> Result<(), DastraError> {
        let mut c =
            self.call(Method::POST, "POST", R::ROUTES.batch_delete, self.ws_path(&format!("{}/batch-delete", R::PATH)));
        c.payload = Self::json_body(c.route, ids)?;
        c.priority = Priority::Urgent;
        self.call_unit(c).await
    }

    /// `POST <collection>/workflow` with `{id, stepId}`.
    pub async fn move_to_step<R: HasWorkflow>(&self, id: &R::Id, step_id: i32) -> Result<(), DastraError> {
        let mut c = self.call(Method::POST, "POST", R::ROUTES.workflow, self.ws_path(&format!("{}/workflow", R::PATH)));
        c.payload = Self::json_body(c.route, &crate::model::WorkflowUpdate { id: id.clone(), step_id })?;
        self.call_unit(c).await
    }

    /// `POST <collection>/archive/{id}`. A 404 is success: a person deleted the record already, and
    /// an archive is a removal.
    pub async fn archive<R: Archivable>(&self, id: &R::Id) -> Result<(), DastraError> {
        let c = self.call(Method::POST, "POST", R::ROUTES.archive, self.ws_path(&format!("{}/archive/{id}", R::PATH)));
        match self.call_unit(c).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Archives or restores many records of a collection in one request: `POST
    /// <collection>/<path>` with the ids as a JSON array, on the route template `route` —
    /// `DataProcessings/archive` and `…/restore` (SPEC-2022), `Contracts/archive`, `…/restore`,
    /// `Tasks/batch-archive` and `Tasks/batch-restore` (EPLIST-2024, body inferred to be the same
    /// array; docs/dastra-api.md). For a resource the caller knows has the route.
    pub(crate) async fn batch_ids_unchecked<R: Resource>(
        &self,
        route: &'static str,
        path: &str,
        ids: &[R::Id],
    ) -> Result<(), DastraError> {
        let mut c = self.call(Method::POST, "POST", route, self.ws_path(&format!("{}/{path}", R::PATH)));
        c.payload = Self::json_body(c.route, ids)?;
        self.call_unit(c).await
    }

    /// `POST <collection>/restore/{id}`.
    pub async fn restore<R: Archivable>(&self, id: &R::Id) -> Result<(), DastraError> {
        let c = self.call(Method::POST, "POST", R::ROUTES.restore, self.ws_path(&format!("{}/restore/{id}", R::PATH)));
        self.call_unit(c).await
    }

    /// A lookup for reconciliation: every page of the query, plus the archived records where the list
    /// route hides them (an archived entity still exists: creating it again would duplicate it).
    async fn lookup<R: Resource>(&self, query: ListQuery) -> Result<Vec<R::Read>, DastraError> {
        let mut found = self.list_all::<R>(&query, MAX_LOOKUP_PAGES).await?;
        if found.is_empty() && R::LIST_HIDES_ARCHIVED {
            let mut archived = query;
            archived.params.push(("archived".to_owned(), "true".to_owned()));
            found = self.list_all::<R>(&archived, MAX_LOOKUP_PAGES).await?;
        }
        Ok(found)
    }

    /// Records whose `field` equals `value` (a `filters` rule; PascalCase C# property names, e.g.
    /// `Ref`, `CompanyName`, or a custom field path). At most 10 pages; archived records included.
    pub async fn find_by_field<R: Resource>(&self, field: &str, value: &str) -> Result<Vec<R::Read>, DastraError> {
        self.lookup::<R>(ListQuery::filtered(Filter::equal(field, value))).await
    }

    /// Records matching a filter (e.g. an Actor's natural key `CompanyName` + `CountryCode`).
    pub async fn find_by_filter<R: Resource>(&self, filter: Filter) -> Result<Vec<R::Read>, DastraError> {
        self.lookup::<R>(ListQuery::filtered(filter)).await
    }

    /// Records carrying `key` in the resource's external-key field (`ref`, `refId`). The caller
    /// passes the key already fitted with [`crate::model::fit_external_key`].
    pub async fn find_by_external_key<R: ExternalKeyed>(&self, key: &str) -> Result<Vec<R::Read>, DastraError> {
        match R::KEY_LOOKUP {
            KeyLookup::Filter(field) => self.find_by_field::<R>(field, key).await,
            KeyLookup::Query(param) => {
                let q = ListQuery { params: vec![(param.to_owned(), key.to_owned())], ..ListQuery::default() };
                self.lookup::<R>(q).await
            }
        }
    }

    // ---- Data subject requests -------------------------------------------------------------

    /// `POST DataSubjectRequests/{id}/close` (body undocumented; see [`DataSubjectRequestClose`]).
    pub async fn close_dsr(&self, id: i32, body: &DataSubjectRequestClose) -> Result<(), DastraError> {
        let mut c = self.call(
            Method::POST,
            "POST",
            "POST /v1/ws/{workspaceId}/DataSubjectRequests/{id}/close",
            self.ws_path(&format!("DataSubjectRequests/{id}/close")),
        );
        c.payload = Self::json_body(c.route, body)?;
        self.call_unit(c).await
    }

    /// `POST DataSubjectAttachments/{dsrId}`: uploads one file (multipart part `File`). An upload
    /// creates: an unclear outcome is [`DastraError::AmbiguousCreate`] (list the attachments to check).
    pub async fn upload_dsr_attachment(
        &self,
        dsr_id: i32,
        file: AttachmentUpload,
    ) -> Result<DataSubjectAttachment, DastraError> {
        let mut c = self.call(
            Method::POST,
            "POST",
            "POST /v1/ws/{workspaceId}/DataSubjectAttachments/{dataSubjectRequestId}",
            self.ws_path(&format!("DataSubjectAttachments/{dsr_id}")),
        );
        c.payload = Payload::Multipart(file, "File");
        c.safety = Safety::Create;
        self.call_json(c).await
    }

    /// `GET DataSubjectAttachments/{dsrId}` (2024 route; read as a bare array).
    pub async fn list_dsr_attachments(&self, dsr_id: i32) -> Result<Vec<DataSubjectAttachment>, DastraError> {
        let c = self.call(
            Method::GET,
            "GET",
            "GET /v1/ws/{workspaceId}/DataSubjectAttachments/{dataSubjectRequestId}",
            self.ws_path(&format!("DataSubjectAttachments/{dsr_id}")),
        );
        Ok(self.call_json::<Option<BareList<DataSubjectAttachment>>>(c).await?.map(|l| l.0).unwrap_or_default())
    }

    /// `DELETE DataSubjectAttachments/{dsrId}/{fileId}` (urgent; 404 = already gone).
    pub async fn delete_dsr_attachment(&self, dsr_id: i32, file_id: Uuid) -> Result<(), DastraError> {
        let mut c = self.call(
            Method::DELETE,
            "DELETE",
            "DELETE /v1/ws/{workspaceId}/DataSubjectAttachments/{dataSubjectRequestId}/{fileId}",
            self.ws_path(&format!("DataSubjectAttachments/{dsr_id}/{file_id}")),
        );
        c.priority = Priority::Urgent;
        match self.call_unit(c).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    // ---- Users and teams ------------------------------------------------------------------

    /// `GET …/Users?q=<text>` (workspace users, 2024 route): one page of up to 50 matches of a
    /// free-text search. Callers match exactly on what they searched for.
    pub async fn search_users(&self, q: &str) -> Result<Vec<User>, DastraError> {
        let mut c = self.call(Method::GET, "GET", "GET /v1/ws/{workspaceId}/Users", self.ws_path("Users"));
        let query = ListQuery { q: Some(q.to_owned()), size: Some(50), ..ListQuery::default() };
        c.query = query.to_pairs(self.page_size());
        Ok(self.call_json::<PagedList<User>>(c).await?.items)
    }

    // ---- Cloud storage (document management) ---------------------------------------------

    /// `POST …/CloudStorage/Dastra`: uploads one file to Dastra's own storage (multipart part
    /// `file`; route from the 2024 endpoint list, body inferred, docs/dastra-api.md §3.13). An
    /// upload creates: an unclear outcome is [`DastraError::AmbiguousCreate`].
    pub async fn upload_cloud_file(&self, file: AttachmentUpload) -> Result<CloudAttachment, DastraError> {
        let mut c = self.call(
            Method::POST,
            "POST",
            "POST /v1/ws/{workspaceId}/CloudStorage/{providerName}",
            self.ws_path("CloudStorage/Dastra"),
        );
        c.payload = Payload::Multipart(file, "file");
        c.safety = Safety::Create;
        self.call_json(c).await
    }

    /// `GET …/CloudStorage/Dastra?q=<name>`: files of Dastra's storage whose name matches (used to
    /// find an upload whose answer was lost).
    pub async fn find_cloud_files(&self, name: &str) -> Result<Vec<CloudAttachment>, DastraError> {
        let mut c = self.call(
            Method::GET,
            "GET",
            "GET /v1/ws/{workspaceId}/CloudStorage/{providerName}",
            self.ws_path("CloudStorage/Dastra"),
        );
        c.query = vec![("q".to_owned(), name.to_owned())];
        Ok(self.call_json::<Option<CloudAttachmentList>>(c).await?.and_then(|l| l.items).unwrap_or_default())
    }

    /// `POST …/CloudStorage/Dastra/link/{fileId}/{type}/{objectId}`: attaches a stored file to a
    /// business object (`type` e.g. `Task`, `Asset`, `DataProcessing`; inferred). Linking twice is
    /// harmless.
    pub async fn link_cloud_file(&self, file_id: &str, object_type: &str, object_id: &str) -> Result<(), DastraError> {
        let c = self.call(
            Method::POST,
            "POST",
            "POST /v1/ws/{workspaceId}/CloudStorage/{providerName}/link/{fileId}/{type}/{objectId}",
            self.ws_path(&format!("CloudStorage/Dastra/link/{file_id}/{object_type}/{object_id}")),
        );
        self.call_unit(c).await
    }

    // ---- Tasks ---------------------------------------------------------------------------

    /// `POST Tasks/{id}/archive` with `{archived}` (true archives, false restores). A 404 when
    /// archiving is success (the task is gone already); when restoring it is the caller's to handle.
    pub async fn archive_task(&self, id: i32, archived: bool) -> Result<(), DastraError> {
        let mut c = self.call(Method::POST, "POST", TASK_ARCHIVE_ROUTE, self.ws_path(&format!("Tasks/{id}/archive")));
        c.payload = Self::json_body(c.route, &ArchivePayload { archived })?;
        match self.call_unit(c).await {
            Err(e) if archived && e.is_not_found() => Ok(()),
            other => other,
        }
    }

    // ---- Generic relationships -----------------------------------------------------------

    /// `GET GenericRelationships?objectIds=…&objectType=…&targetType=…` (bare array).
    pub async fn list_generic_relationships(
        &self,
        object_ids: &[String],
        object_type: Option<&RelationShipObjectType>,
        target_type: Option<&RelationShipObjectType>,
    ) -> Result<Vec<GenericRelationship>, DastraError> {
        let mut c = self.call(
            Method::GET,
            "GET",
            "GET /v1/ws/{workspaceId}/GenericRelationships",
            self.ws_path("GenericRelationships"),
        );
        c.query = object_ids.iter().map(|id| ("objectIds".to_owned(), id.clone())).collect();
        if let Some(t) = object_type {
            c.query.push(("objectType".to_owned(), t.to_string()));
        }
        if let Some(t) = target_type {
            c.query.push(("targetType".to_owned(), t.to_string()));
        }
        Ok(self.call_json::<Option<BareList<GenericRelationship>>>(c).await?.map(|l| l.0).unwrap_or_default())
    }

    /// `POST GenericRelationships` (Dastra answers no body: list to learn the new ids). A create.
    pub async fn create_generic_relationship(&self, body: &GenericRelationshipCreate) -> Result<(), DastraError> {
        let mut c = self.call(
            Method::POST,
            "POST",
            "POST /v1/ws/{workspaceId}/GenericRelationships",
            self.ws_path("GenericRelationships"),
        );
        c.payload = Self::json_body(c.route, body)?;
        c.safety = Safety::Create;
        self.call_unit(c).await
    }

    /// `PUT GenericRelationships/{id}`.
    pub async fn update_generic_relationship(&self, id: Uuid, body: &GenericRelationship) -> Result<(), DastraError> {
        let mut c = self.call(
            Method::PUT,
            "PUT",
            "PUT /v1/ws/{workspaceId}/GenericRelationships/{id}",
            self.ws_path(&format!("GenericRelationships/{id}")),
        );
        c.payload = Self::json_body(c.route, body)?;
        self.call_unit(c).await
    }

    /// `DELETE GenericRelationships/{id}` (urgent; 404 = already gone).
    pub async fn delete_generic_relationship(&self, id: Uuid) -> Result<(), DastraError> {
        let mut c = self.call(
            Method::DELETE,
            "DELETE",
            "DELETE /v1/ws/{workspaceId}/GenericRelationships/{id}",
            self.ws_path(&format!("GenericRelationships/{id}")),
        );
        c.priority = Priority::Urgent;
        match self.call_unit(c).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    // ---- Processing ↔ processing relationships --------------------------------------------

    /// `GET DataProcessingRelationships/{dataProcessingId}` (bare array).
    pub async fn list_processing_relationships(
        &self,
        processing_id: Uuid,
    ) -> Result<Vec<DataProcessingRelationship>, DastraError> {
        let c = self.call(
            Method::GET,
            "GET",
            "GET /v1/ws/{workspaceId}/DataProcessingRelationships/{dataProcessingId}",
            self.ws_path(&format!("DataProcessingRelationships/{processing_id}")),
        );
        Ok(self.call_json::<Option<BareList<DataProcessingRelationship>>>(c).await?.map(|l| l.0).unwrap_or_default())
    }

    /// `POST DataProcessingRelationships/{id}` ("save or update"; the meaning of `{id}` is
    /// undocumented — docs/dastra-api.md §7 #18 reads it as the source processing). Treated as a create.
    pub async fn save_processing_relationship(
        &self,
        id: Uuid,
        body: &DataProcessingRelationship,
    ) -> Result<Option<DataProcessingRelationship>, DastraError> {
        let mut c = self.call(
            Method::POST,
            "POST",
            "POST /v1/ws/{workspaceId}/DataProcessingRelationships/{id}",
            self.ws_path(&format!("DataProcessingRelationships/{id}")),
        );
        c.payload = Self::json_body(c.route, body)?;
        c.safety = Safety::Create;
        self.call_json(c).await
    }

    /// `DELETE DataProcessingRelationships/{id}` (urgent; 404 = already gone).
    pub async fn delete_processing_relationship(&self, id: Uuid) -> Result<(), DastraError> {
        let mut c = self.call(
            Method::DELETE,
            "DELETE",
            "DELETE /v1/ws/{workspaceId}/DataProcessingRelationships/{id}",
            self.ws_path(&format!("DataProcessingRelationships/{id}")),
        );
        c.priority = Priority::Urgent;
        match self.call_unit(c).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    // ---- Tenant level -----------------------------------------------------------------------

    /// `GET /v1/Workspaces` (either documented shape).
    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>, DastraError> {
        let mut c = self.call(Method::GET, "GET", "GET /v1/Workspaces", "v1/Workspaces".to_owned());
        c.query = vec![("size".to_owned(), "500".to_owned())];
        Ok(self.call_json::<WorkspaceList>(c).await?.into_vec())
    }

    /// `GET /v1/Workspaces/{id}`.
    pub async fn get_workspace(&self, id: i32) -> Result<Workspace, DastraError> {
        let c = self.call(Method::GET, "GET", "GET /v1/Workspaces/{id}", format!("v1/Workspaces/{id}"));
        self.call_json(c).await
    }

    /// `GET /me`: the authenticated principal (body undocumented; returned as JSON). A cheap check
    /// that the credentials work.
    pub async fn me(&self) -> Result<serde_json::Value, DastraError> {
        let c = self.call(Method::GET, "GET", "GET /me", "me".to_owned());
        self.call_json(c).await
    }
}

fn patch_safety(ops: &[PatchOperation]) -> Safety {
    if ops.iter().all(PatchOperation::is_idempotent) { Safety::Idempotent } else { Safety::Create }
}
