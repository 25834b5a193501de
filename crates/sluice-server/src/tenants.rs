//! `/v1/tenants`: tenants and their API tokens, for administrators only (the [`Admin`]
//! extractor answers 403 to every other token).
//!
//! A token's secret is in the answer of the call that creates it and nowhere else: the store
//! keeps only its hash.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_store::{StoreError, Tenant, TokenId, TokenInfo, TokenScope};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use crate::handlers::blocking;

/// Body of `POST /v1/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    id: String,
    name: String,
}

/// `POST /v1/tenants`: creates a tenant.
pub async fn create_tenant(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    let tenant = blocking(move || {
        state
            .store
            .create_tenant(&body.id, &body.name)
            .map_err(|e| match e {
                StoreError::Invalid { field, problem } => {
                    let field = if field == "tenant name" { "name" } else { "id" };
                    ApiError::bad_field(field, format!("invalid tenant {field}: {problem}"))
                }
                e => e.into(),
            })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// `GET /v1/tenants`: every tenant, by id.
pub async fn list_tenants(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let tenants = blocking(move || Ok(state.store.list_tenants()?)).await?;
    Ok(Json(json!({ "tenants": tenants })))
}

/// `GET /v1/tenants/{tenant}`.
pub async fn get_tenant(
    State(state): State<AppState>,
    _admin: Admin,
    Path(tenant): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    blocking(move || {
        state
            .store
            .get_tenant(&tenant)?
            .map(Json)
            .ok_or_else(|| ApiError::tenant_not_found(&tenant))
    })
    .await
}

/// Body of `POST /v1/tenants/{tenant}/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    scope: TokenScope,
}

/// What creating a token answers: the token and, this once, its secret.
#[derive(Debug, Serialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    token: TokenInfo,
    /// `slc_<id>_<64 hex digits>`; not stored, so never shown again.
    secret: String,
}

/// `POST /v1/tenants/{tenant}/tokens`: creates a `tenant` or `read-only` token bound to the
/// tenant and answers its secret.
pub async fn create_token(
    State(state): State<AppState>,
    _admin: Admin,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let created = blocking(move || {
        let (id, secret) = state
            .store
            .create_token(Some(&tenant), body.scope)
            .map_err(|e| match e {
                StoreError::Invalid { .. } => ApiError::bad_field("scope", e.to_string()),
                e => e.into(),
            })?;
        let token = state.store.get_token(&id)?.ok_or_else(|| {
            ApiError::internal(format!("token `{id}` was created but cannot be read back"))
        })?;
        Ok(CreatedToken { token, secret })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/tenants/{tenant}/tokens`: the tenant's tokens, revoked ones included, oldest
/// first. Never their secrets.
pub async fn list_tokens(
    State(state): State<AppState>,
    _admin: Admin,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        if state.store.get_tenant(&tenant)?.is_none() {
            return Err(ApiError::tenant_not_found(&tenant));
        }
        let tokens = state.store.list_tokens(Some(&tenant))?;
        Ok(Json(json!({ "tokens": tokens })))
    })
    .await
}

/// `POST /v1/tenants/{tenant}/tokens/{id}/revoke`: revokes one of the tenant's tokens; it
/// stays listed, with `revoked_at_ms`. Revoking twice keeps the first time.
pub async fn revoke_token(
    State(state): State<AppState>,
    _admin: Admin,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<TokenInfo>, ApiError> {
    blocking(move || {
        let id = TokenId(id);
        state.store.revoke_tenant_token(&tenant, &id)?;
        let token = state.store.get_token(&id)?.ok_or_else(|| {
            ApiError::internal(format!("token `{id}` was revoked but cannot be read back"))
        })?;
        Ok(Json(token))
    })
    .await
}

/// `PUT /v1/tenants/{tenant}/throttle`: sets the tenant-wide throttle budget, shared by all
/// its bindings (`{"messages_per_second": 200, "fuel_per_second": 50000000,
/// "burst_seconds": 1}`). Over budget, messages wait; none is dropped.
pub async fn set_throttle(
    State(state): State<AppState>,
    _admin: Admin,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Tenant>, ApiError> {
    let config: sluice_pipeline::policy::ThrottleConfig = serde_path_to_error::deserialize(&body)
        .map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "throttle".to_string()
        } else {
            path
        };
        let message = format!("{field}: {}", e.into_inner());
        ApiError::bad_field(field, message)
    })?;
    config
        .validate()
        .map_err(|e| ApiError::bad_field(e.field.clone(), format!("{}: {}", e.field, e.message)))?;
    let stored = serde_json::to_value(config).map_err(|e| ApiError::internal(e.to_string()))?;
    let store = state.store.clone();
    let updated = blocking(move || Ok(store.set_tenant_throttle(&tenant, Some(&stored))?)).await?;
    state.registry_changed().await;
    Ok(Json(updated))
}

/// `DELETE /v1/tenants/{tenant}/throttle`: removes the tenant-wide budget.
pub async fn clear_throttle(
    State(state): State<AppState>,
    _admin: Admin,
    Path(tenant): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    let store = state.store.clone();
    let updated = blocking(move || Ok(store.set_tenant_throttle(&tenant, None)?)).await?;
    state.registry_changed().await;
    Ok(Json(updated))
}
