//! The API's one error type and its JSON body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sluice_store::StoreError;

/// An API failure: an HTTP status and `{"error": {"code", "message", "field"?}}`, plus extra
/// top-level members when the error carries details (`failures`, `failure`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code (`not-found`, `vectors-failed`, ...).
    pub code: String,
    /// A readable explanation.
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
    /// Extra top-level members of the body.
    pub extra: serde_json::Map<String, Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            field: None,
            extra: serde_json::Map::new(),
        }
    }

    /// 400 about request field `field`.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-request", message).with_field(field)
    }

    /// 404 for a module that does not exist for the caller's tenant (or belongs to another).
    pub fn module_not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("module `{name}` does not exist"),
        )
    }

    /// 404 for a binding that does not exist for the caller's tenant (or belongs to another).
    pub fn binding_not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("binding `{name}` does not exist"),
        )
    }

    /// 404 for a dead letter that does not exist for the caller's tenant (or belongs to
    /// another).
    pub fn dead_letter_not_found(id: i64) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("dead letter {id} does not exist"),
        )
    }

    /// 404 for a tenant that does not exist (admin routes only).
    pub fn tenant_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("tenant `{id}` does not exist"),
        )
    }

    /// 500 hiding nothing the caller can act on but the message.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Adds a top-level member to the body.
    pub fn with_extra(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            // Never say which tenant: the caller's own tenant is implied, another's is hidden.
            StoreError::ModuleNotFound { module, .. } => ApiError::module_not_found(module),
            StoreError::VersionNotFound {
                module, version, ..
            } => ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("module `{module}` has no version {version}"),
            ),
            StoreError::Conflict { kind, name, .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{kind} `{name}` already exists"),
            ),
            StoreError::NoPreviousVersion { module, .. } => ApiError::new(
                StatusCode::CONFLICT,
                "no-previous-version",
                format!("module `{module}` has no previously active version to roll back to"),
            ),
            StoreError::BindingNotFound { binding, .. } => ApiError::binding_not_found(binding),
            StoreError::DeadLetterNotFound { id, .. } => ApiError::dead_letter_not_found(*id),
            StoreError::UnknownTenant { tenant } => ApiError::tenant_not_found(tenant),
            StoreError::TokenNotFound { id } => ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("API token `{id}` does not exist"),
            ),
            StoreError::WrongWorld { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong-world",
                e.to_string(),
            ),
            StoreError::ModuleInUse { .. } => {
                ApiError::new(StatusCode::CONFLICT, "module-in-use", e.to_string())
            }
            StoreError::Invalid { field, problem } => {
                ApiError::bad_field(*field, format!("invalid {field}: {problem}"))
            }
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = self.field {
            error["field"] = Value::String(field);
        }
        let mut body = self.extra;
        body.insert("error".into(), error);
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
