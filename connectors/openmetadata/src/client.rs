//! The OpenMetadata REST API client (`docs/openmetadata-api.md`): entity lists `GET
//! /api/v1/<entities>?fields=…&limit=…&after=…` answering `{data, paging: {after, before, total}}`
//! (cursor paging: `paging.after` is absent on the last page); one entity `GET
//! /api/v1/<entities>/{id}?fields=…`; the change events feed `GET /api/v1/events?entityCreated=<type>&…
//! &timestamp=<epoch ms>` answering `{data: [ChangeEvent]}`; lineage `GET
//! /api/v1/lineage/{type}/{id}?upstreamDepth=1&downstreamDepth=1`. Authentication: a bot's JWT as
//! `Authorization: Bearer`. Requests go through the engine's [`SourceHttp`] (retries, 429 and
//! `Retry-After`, pacing, secret-free errors).

use dastra_connect_core::config::Secret;
use dastra_connect_core::source::{HttpSettings, SourceAuth, SourceError, SourceHttp};
use serde_json::Value;
use url::Url;

use crate::config::OmEntity;

const SYSTEM: &str = "openmetadata";

/// A page of an entity list.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// `data`.
    pub data: Vec<Value>,
    /// `paging.after`: the cursor of the next page, absent on the last.
    pub after: Option<String>,
    /// `paging.total`.
    pub total: Option<u64>,
}

/// Talks to one OpenMetadata server.
pub struct OpenMetadataClient {
    http: SourceHttp,
    base: Url,
}

impl OpenMetadataClient {
    /// A client for the server at `url`, authenticated with the bot `token`.
    pub fn new(url: &Url, token: &Secret, settings: HttpSettings) -> Result<OpenMetadataClient, SourceError> {
        let mut base = url.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let auth = SourceAuth::Bearer { token: token.clone() };
        Ok(OpenMetadataClient { http: SourceHttp::new(SYSTEM, auth, settings)?, base })
    }

    fn url(&self, path: &str, params: &[(String, String)]) -> Result<Url, SourceError> {
        let mut url =
            self.base.join(path).map_err(|e| SourceError::Config(format!("bad OpenMetadata URL for `{path}`: {e}")))?;
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params.iter());
        }
        Ok(url)
    }

    fn bad(what: &str, detail: &str) -> SourceError {
        SourceError::BadResponse { system: SYSTEM.into(), what: what.into(), detail: detail.into() }
    }

    /// One page of `entity`'s list: `filters` plus `fields`, `limit`, `after`.
    pub async fn list(
        &self,
        entity: OmEntity,
        filters: &[(String, String)],
        after: Option<&str>,
        limit: u32,
    ) -> Result<ListPage, SourceError> {
        let mut params = filters.to_vec();
        params.push(("fields".into(), entity.fields().into()));
        params.push(("limit".into(), limit.clamp(1, 1000).to_string()));
        if let Some(a) = after {
            params.push(("after".into(), a.to_owned()));
        }
        let what = format!("/{}", entity.path());
        let body = self.http.get_json(self.url(entity.path(), &params)?, &what).await?.body;
        let data = match body.get("data") {
            Some(Value::Array(a)) => a.clone(),
            _ => return Err(Self::bad(&what, "the answer has no `data` array")),
        };
        let paging = body.get("paging");
        let after = paging.and_then(|p| p.get("after")).and_then(Value::as_str).map(str::to_owned);
        let total = paging.and_then(|p| p.get("total")).and_then(Value::as_u64);
        Ok(ListPage { data, after, total })
    }

    /// One entity by id, `None` when OpenMetadata no longer has it (404).
    pub async fn get(&self, entity: OmEntity, id: &str) -> Result<Option<Value>, SourceError> {
        let path = format!("{}/{id}", entity.path());
        let what = format!("/{}/{{id}}", entity.path());
        let params = vec![("fields".to_owned(), entity.fields().to_owned())];
        match self.http.get_json(self.url(&path, &params)?, &what).await {
            Ok(r) => Ok(Some(r.body)),
            Err(SourceError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Change events at or after `timestamp_ms` whose `eventType` is one of `event_types`, for
    /// entities of type `entity_type`, sorted by time.
    pub async fn events(
        &self,
        event_types: &[&str],
        entity_type: &str,
        timestamp_ms: i64,
    ) -> Result<Vec<Value>, SourceError> {
        let mut params: Vec<(String, String)> =
            event_types.iter().map(|t| ((*t).to_owned(), entity_type.to_owned())).collect();
        params.push(("timestamp".into(), timestamp_ms.max(0).to_string()));
        let what = "/api/v1/events";
        let body = self.http.get_json(self.url("api/v1/events", &params)?, what).await?.body;
        match body.get("data") {
            Some(Value::Array(a)) => Ok(a.clone()),
            // An empty feed may come back as `{}` or `null` data.
            Some(Value::Null) | None => Ok(Vec::new()),
            Some(_) => Err(Self::bad(what, "`data` is not an array")),
        }
    }

    /// The lineage of one entity, one hop up and down: `{entity, nodes, upstreamEdges,
    /// downstreamEdges}`.
    pub async fn lineage(&self, entity_type: &str, id: &str) -> Result<Value, SourceError> {
        let path = format!("api/v1/lineage/{entity_type}/{id}");
        let params = vec![("upstreamDepth".to_owned(), "1".to_owned()), ("downstreamDepth".to_owned(), "1".to_owned())];
        let what = format!("/api/v1/lineage/{entity_type}/{{id}}");
        Ok(self.http.get_json(self.url(&path, &params)?, &what).await?.body)
    }
}
