#![recursion_limit = "256"]
//! Sluice's HTTP API: a tenant-scoped JSON API over the registry ([`sluice_store::Store`]) and
//! the sandbox ([`sluice_runtime::Runtime`]).
//!
//! Every `/v1` request carries `Authorization: Bearer <token>`; the token's tenant scopes
//! every object (modules, bindings, dead letters), and another tenant's object is answered
//! exactly like a missing one (404). Tenants and tokens are managed with an admin token.
//! Uploads are validated, compiled and checked against their test vectors before they are
//! stored, so a stored version is always loadable. See `docs/api.md`.

mod bindings;
mod compile;
mod dlq;
mod error;
mod extract;
mod handlers;
mod ingest;
mod openapi;
mod tenants;
mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use sluice_pipeline::Pipeline;
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
    /// The running message path; `None` serves the API alone (ingest and replay answer 503).
    pub pipeline: Option<Pipeline>,
    /// JavaScript codecs built recently, by source.
    js_builds: Arc<compile::JsBuilds>,
    /// Builds Rust sources; `None`: uploads of `rust_source` answer 501.
    rust_builder: Option<Arc<sluice_builder::RustBuilder>>,
}

impl AppState {
    /// The API alone, without a pipeline.
    pub fn new(store: Store, runtime: Runtime) -> Self {
        Self {
            store,
            runtime,
            pipeline: None,
            js_builds: Arc::default(),
            rust_builder: None,
        }
    }

    /// The API that also builds Rust sources (`rust_source`) with `builder`.
    pub fn with_rust_builder(mut self, builder: Arc<sluice_builder::RustBuilder>) -> Self {
        self.rust_builder = Some(builder);
        self
    }

    /// The API with the message path: ingest, replay, live view and binding control.
    pub fn with_pipeline(mut self, pipeline: Pipeline) -> Self {
        self.pipeline = Some(pipeline);
        self
    }

    /// Tells the pipeline the registry changed (bindings, active versions).
    pub(crate) async fn registry_changed(&self) {
        if let Some(pipeline) = &self.pipeline
            && let Err(e) = pipeline.refresh().await
        {
            tracing::error!(error = %e, "the pipeline could not pick up a registry change");
        }
    }
}

/// The API's routes, ready to serve.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(web::to_editor))
        .route("/editor", get(web::to_editor))
        .route("/editor/", get(web::index))
        .route("/editor/{file}", get(web::asset))
        .route("/livez", get(handlers::livez))
        .route("/readyz", get(ingest::readyz))
        .route("/metrics", get(ingest::metrics))
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
            "/v1/modules/{name}/versions/{version}",
            get(handlers::get_version),
        )
        .route("/v1/modules/{name}/check", post(handlers::check))
        .route(
            "/v1/modules/{name}/versions/{version}/activate",
            post(handlers::activate),
        )
        .route("/v1/modules/{name}/rollback", post(handlers::rollback))
        .route("/v1/modules/{name}/decode", post(handlers::decode))
        .route(
            "/v1/bindings",
            get(bindings::list_bindings).post(bindings::create_binding),
        )
        .route(
            "/v1/bindings/{name}",
            get(bindings::get_binding)
                .put(bindings::replace_binding)
                .delete(bindings::delete_binding),
        )
        .route("/v1/dlq", get(dlq::list_dead_letters))
        .route("/v1/dlq/purge", post(dlq::purge_dead_letters))
        .route("/v1/dlq/replay", post(ingest::replay))
        .route("/v1/bindings/{name}/messages", post(ingest::ingest))
        .route("/v1/bindings/{name}/recent", get(ingest::recent))
        .route("/v1/bindings/{name}/pause", post(bindings::pause_binding))
        .route("/v1/bindings/{name}/resume", post(bindings::resume_binding))
        .route("/v1/bindings/{name}/status", get(bindings::binding_status))
        .route(
            "/v1/dlq/{id}",
            get(dlq::get_dead_letter).delete(dlq::delete_dead_letter),
        )
        .route(
            "/v1/tenants",
            get(tenants::list_tenants).post(tenants::create_tenant),
        )
        .route("/v1/tenants/{tenant}", get(tenants::get_tenant))
        .route(
            "/v1/tenants/{tenant}/throttle",
            put(tenants::set_throttle).delete(tenants::clear_throttle),
        )
        .route(
            "/v1/tenants/{tenant}/tokens",
            get(tenants::list_tokens).post(tenants::create_token),
        )
        .route(
            "/v1/tenants/{tenant}/tokens/{id}/revoke",
            post(tenants::revoke_token),
        )
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
