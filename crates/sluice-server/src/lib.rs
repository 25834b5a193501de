//! Sluice's HTTP API: a tenant-scoped JSON API over the registry ([`sluice_store::Store`]) and
//! the sandbox ([`sluice_runtime::Runtime`]).
//!
//! Every `/v1` request carries `Authorization: Bearer <token>`; the token's tenant scopes
//! every object, and another tenant's object is answered exactly like a missing one (404).
//! Uploads are validated, compiled and checked against their test vectors before they are
//! stored, so a stored version is always loadable. See `docs/api.md`.

mod error;
mod extract;
mod handlers;
mod openapi;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use sluice_runtime::Runtime;
use sluice_store::Store;

pub use error::ApiError;
pub use openapi::openapi_document;

/// Largest request body accepted, in bytes: a base64 component of up to ~24 MiB.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// What every handler shares: the registry and the sandbox. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The registry: tenants, tokens, modules and versions.
    pub store: Store,
    /// The sandbox uploads are validated in and decodes run in.
    pub runtime: Runtime,
}

/// The API's routes, ready to serve.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(handlers::livez))
        .route("/openapi.json", get(handlers::openapi))
        .route(
            "/v1/modules",
            get(handlers::list_modules).post(handlers::create_module),
        )
        .route("/v1/modules/{name}", get(handlers::get_module))
        .route(
            "/v1/modules/{name}/versions",
            post(handlers::upload_version),
        )
        .route(
            "/v1/modules/{name}/versions/{version}/activate",
            post(handlers::activate),
        )
        .route("/v1/modules/{name}/rollback", post(handlers::rollback))
        .route("/v1/modules/{name}/decode", post(handlers::decode))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
