//! A faithful local emulator of the Dastra REST API, built from Dastra's own OpenAPI document
//! (`openapi/openapi-2022.json`) and the API notes: the same routes (case-insensitive), auth
//! (`X-API-Key`, Basic, OAuth2 client credentials), paging and JSON-rule `filters`, JSON Patch,
//! the two-window quota with 429 + `Retry-After`, 400 problem JSON on invalid DTOs, webhooks signed
//! like Dastra's, plus an admin API (`/__admin`) for fault injection and observation and a
//! read-only page at `/`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), dastra_emulator::EmulatorError> {
//! let emu = dastra_emulator::spawn(dastra_emulator::EmulatorConfig::default()).await?;
//! // POST {emu.base_url}/v1/ws/1/Assets with header X-API-Key: emulator-key …
//! let assets = emu.state.entities(1, "Assets");
//! # Ok(()) }
//! ```

pub mod admin;
pub mod auth;
pub mod config;
pub mod customfields;
pub mod entities;
pub mod error;
pub mod faults;
pub mod filters;
pub mod observe;
pub mod openapi;
pub mod page;
pub mod quota;
mod routes;
pub mod server;
pub mod state;
pub mod store;
pub mod webhooks;

use axum::Router;
use axum::routing::get;

pub use config::{ApiKey, EmulatorConfig, QuotaWindow, WorkspaceListShape, WorkspaceSeed};
pub use error::{ApiError, EmulatorError};
pub use faults::{FaultKind, FaultRule};
pub use observe::{CounterRow, Counters, LoggedRequest};
pub use server::{EmulatorHandle, RunningEmulator, serve, serve_state, spawn};
pub use state::EmulatorState;
pub use store::{CustomFieldDef, CustomFieldType};
pub use webhooks::Delivery;

/// The emulator as an axum router: `/` (page), `/__admin/…`, and every Dastra path as fallback
/// (matched case-insensitively). Usable in-process with `tower::ServiceExt::oneshot`; the
/// "drop connection" faults need [`serve`] (in-process they answer 504).
pub fn app(state: EmulatorState) -> Router {
    Router::new()
        .route("/", get(page::index))
        .nest("/__admin", admin::router())
        .fallback(routes::handle)
        .with_state(state)
}
