//! Request extractors that answer with [`ApiError`] bodies: the bearer token (as a tenant
//! [`Caller`] or an [`Admin`]), JSON bodies and query strings.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sluice_store::{TokenInfo, TokenScope};

use crate::AppState;
use crate::error::ApiError;

/// The caller: an authenticated token bound to a tenant.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The tenant every object of the request belongs to.
    pub tenant: String,
    /// The token's scope.
    pub scope: TokenScope,
}

impl Caller {
    /// Refuses read-only tokens: 403.
    pub fn require_write(&self) -> Result<(), ApiError> {
        match self.scope {
            TokenScope::ReadOnly => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token is read-only; use a tenant token to change objects",
            )),
            TokenScope::Admin | TokenScope::Tenant => Ok(()),
        }
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The live token named by the `Authorization: Bearer <token>` header, or 401.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<TokenInfo, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>` header"))?;
    let secret = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the `Authorization` header must be `Bearer <token>`"))?;
    let store = state.store.clone();
    let secret = secret.to_string();
    let info: Option<TokenInfo> = tokio::task::spawn_blocking(move || store.authenticate(&secret))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    info.ok_or_else(|| unauthorized("the token is unknown, malformed or revoked"))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let info = authenticate(parts, state).await?;
        let tenant = info.tenant_id.ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this token is not bound to a tenant; this route needs a tenant token",
            )
        })?;
        Ok(Caller {
            tenant,
            scope: info.scope,
        })
    }
}

/// An administrator: a token of the `admin` scope, which spans every tenant. Any other
/// token is refused with 403, so tenants never see or change tenants and tokens.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let info = authenticate(parts, state).await?;
        match info.scope {
            TokenScope::Admin => Ok(Admin),
            TokenScope::Tenant | TokenScope::ReadOnly => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "tenants and tokens are managed with an admin token; this token is not one",
            )),
        }
    }
}

/// The query string as name/value pairs, in order (percent-decoded); an undecodable query
/// is a 400. Handlers check names and values themselves, so errors name the parameter.
#[derive(Debug)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "invalid-request", e.body_text()))?;
        Ok(QueryPairs(pairs))
    }
}

/// A JSON body whose problems are answered with 400 naming the field at fault.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "invalid-request", e.body_text()))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses `bytes` as `T`; errors name the field (a dotted path) when serde knows it.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(body_error)?;
    de.end()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-request", e.to_string()))?;
    Ok(value)
}

/// Converts an already parsed body to `T`; errors name the field like [`parse_json`]'s.
pub fn parse_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(body_error)
}

/// 400 for a body serde refused, naming the field (a dotted path) when serde knows it.
fn body_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let message = inner.to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let field = match (missing, path.as_str()) {
        (Some(m), "." | "") => Some(m.to_string()),
        (Some(m), p) => Some(format!("{p}.{m}")),
        (None, "." | "") => None,
        (None, p) => Some(p.to_string()),
    };
    let error = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid-request",
        format!("the request body is not valid: {message}"),
    );
    match field {
        Some(f) => error.with_field(f),
        None => error,
    }
}
