//! `/v1/bindings`: a tenant's codec (and optional router) wired to its sources and sinks.
//!
//! Every binding that is written goes through [`check_binding_io`] first, so there is one
//! place where the shape of `sources` and `sinks` is decided.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use sluice_store::{Binding, BindingSpec, StoreError};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, parse_value};
use crate::handlers::blocking;

/// Checks the `sources` and `sinks` of a binding before it is stored: each must be a JSON
/// array of objects. Errors name the field at fault (`sources`, `sinks[1]`).
///
/// This is the one check of binding I/O; it is where the connectors' parser will be called.
pub fn check_binding_io(tenant: &str, spec: &BindingSpec) -> Result<(), ApiError> {
    for (field, value) in [("sources", &spec.sources), ("sinks", &spec.sinks)] {
        let items = value.as_array().ok_or_else(|| {
            ApiError::bad_field(
                field,
                format!(
                    "`{field}` must be an array of objects, not {}",
                    json_kind(value)
                ),
            )
        })?;
        if let Some((index, item)) = items.iter().enumerate().find(|(_, v)| !v.is_object()) {
            let at = format!("{field}[{index}]");
            return Err(ApiError::bad_field(
                at.clone(),
                format!("`{at}` must be an object, not {}", json_kind(item)),
            ));
        }
    }
    sluice_connectors::parse_binding_io(tenant, &spec.name, &spec.sources, &spec.sinks)
        .map_err(|e| ApiError::bad_field(e.field.clone(), e.to_string()))?;
    let policy: sluice_pipeline::policy::BindingPolicy =
        serde_path_to_error::deserialize(&spec.policy).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "policy".to_string()
            } else {
                format!("policy.{path}")
            };
            let message = format!("{field}: {}", e.into_inner());
            ApiError::bad_field(field, message)
        })?;
    policy.validate().map_err(|e| {
        let field = format!("policy.{}", e.field);
        ApiError::bad_field(field.clone(), format!("{field}: {}", e.message))
    })?;
    Ok(())
}

/// What kind of JSON value `value` is, with its article, for error messages.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A binding as the API shows it: the tenant is the caller's, so it is left out.
#[derive(Debug, Serialize)]
pub struct BindingView {
    name: String,
    codec: String,
    router: Option<String>,
    config: BTreeMap<String, String>,
    sources: Value,
    sinks: Value,
    policy: Value,
    paused: bool,
    created_at_ms: u64,
    updated_at_ms: u64,
}

impl From<Binding> for BindingView {
    fn from(b: Binding) -> Self {
        Self {
            name: b.name,
            codec: b.codec,
            router: b.router,
            config: b.config,
            sources: b.sources,
            sinks: b.sinks,
            policy: b.policy,
            paused: b.paused,
            created_at_ms: b.created_at_ms,
            updated_at_ms: b.updated_at_ms,
        }
    }
}

/// Whether a write creates a binding or replaces an existing one.
#[derive(Debug, Clone, Copy)]
enum Write {
    Create,
    Replace,
}

/// Checks `spec` and stores it for the caller's tenant.
async fn save(
    state: AppState,
    caller: Caller,
    spec: BindingSpec,
    write: Write,
) -> Result<BindingView, ApiError> {
    check_binding_io(&caller.tenant, &spec)?;
    let notify = state.clone();
    let saved = blocking(move || {
        let saved = match write {
            Write::Create => state.store.create_binding(&caller.tenant, &spec),
            Write::Replace => state.store.update_binding(&caller.tenant, &spec),
        };
        saved
            .map(BindingView::from)
            .map_err(|e| spec_error(&spec, e))
    })
    .await?;
    notify.registry_changed().await;
    Ok(saved)
}

/// Maps a store error about `spec` to an error naming the request field at fault.
fn spec_error(spec: &BindingSpec, e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid {
            field: "binding name",
            problem,
        } => ApiError::bad_field("name", format!("invalid binding name: {problem}")),
        // The codec is resolved before the router, so a missing module that is not the
        // codec is the router. The message is the module 404's: another tenant's module
        // reads like a missing one.
        StoreError::ModuleNotFound { module, .. } => {
            let field = if module == spec.codec {
                "codec"
            } else {
                "router"
            };
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-module",
                format!("module `{module}` does not exist"),
            )
            .with_field(field)
        }
        e @ StoreError::WrongWorld { expected, .. } => {
            ApiError::from(e).with_field(if expected == "router" {
                "router"
            } else {
                "codec"
            })
        }
        e => e.into(),
    }
}

/// `GET /v1/bindings`: the tenant's bindings, by name.
pub async fn list_bindings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let bindings = blocking(move || Ok(state.store.list_bindings(&caller.tenant)?)).await?;
    let bindings: Vec<BindingView> = bindings.into_iter().map(BindingView::from).collect();
    Ok(Json(json!({ "bindings": bindings })))
}

/// `POST /v1/bindings`: creates a binding.
pub async fn create_binding(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(spec): ApiJson<BindingSpec>,
) -> Result<(StatusCode, Json<BindingView>), ApiError> {
    caller.require_write()?;
    let binding = save(state, caller, spec, Write::Create).await?;
    Ok((StatusCode::CREATED, Json(binding)))
}

/// `GET /v1/bindings/{name}`.
pub async fn get_binding(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<BindingView>, ApiError> {
    blocking(move || {
        let binding = state
            .store
            .get_binding(&caller.tenant, &name)?
            .ok_or_else(|| ApiError::binding_not_found(&name))?;
        Ok(Json(BindingView::from(binding)))
    })
    .await
}

/// `PUT /v1/bindings/{name}`: replaces an existing binding's codec, router, config, sources
/// and sinks. The body is a binding spec whose `name` may be left out; a binding cannot be
/// renamed.
pub async fn replace_binding(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(mut body): ApiJson<Value>,
) -> Result<Json<BindingView>, ApiError> {
    caller.require_write()?;
    if let Value::Object(members) = &mut body {
        match members.get("name") {
            None => {
                members.insert("name".into(), Value::String(name.clone()));
            }
            Some(Value::String(given)) if *given == name => {}
            Some(_) => {
                return Err(ApiError::bad_field(
                    "name",
                    format!(
                        "`name` must be `{name}` as in the path, or left out; a binding cannot be renamed"
                    ),
                ));
            }
        }
    }
    let spec: BindingSpec = parse_value(body)?;
    Ok(Json(save(state, caller, spec, Write::Replace).await?))
}

/// `DELETE /v1/bindings/{name}`: deletes a binding; its dead letters are kept.
pub async fn delete_binding(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_write()?;
    let notify = state.clone();
    blocking(move || {
        state.store.delete_binding(&caller.tenant, &name)?;
        Ok(())
    })
    .await?;
    notify.registry_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/bindings/{name}/pause`: the binding stops taking messages; they wait in its
/// queue and at the broker, unacknowledged, until it is resumed. Survives restarts.
pub async fn pause_binding(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<BindingView>, ApiError> {
    set_paused(state, caller, name, true).await
}

/// `POST /v1/bindings/{name}/resume`: the binding takes its waiting messages, in order.
pub async fn resume_binding(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<BindingView>, ApiError> {
    set_paused(state, caller, name, false).await
}

async fn set_paused(
    state: AppState,
    caller: Caller,
    name: String,
    paused: bool,
) -> Result<Json<BindingView>, ApiError> {
    caller.require_write()?;
    let notify = state.clone();
    let view = blocking(move || {
        Ok(BindingView::from(state.store.set_binding_paused(
            &caller.tenant,
            &name,
            paused,
        )?))
    })
    .await?;
    notify.registry_changed().await;
    Ok(Json(view))
}

/// `GET /v1/bindings/{name}/status`: the binding's worker as it is now (pause, queue,
/// quarantine, restarts, throttling).
pub async fn binding_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store.clone();
    let (tenant, binding) = (caller.tenant.clone(), name.clone());
    let stored = blocking(move || Ok(store.get_binding(&tenant, &binding)?))
        .await?
        .ok_or_else(|| {
            ApiError::from(StoreError::BindingNotFound {
                tenant: caller.tenant.clone(),
                binding: name.clone(),
            })
        })?;
    let live = state
        .pipeline
        .as_ref()
        .and_then(|p| p.status(&caller.tenant, &name));
    let worker_pid = state
        .pipeline
        .as_ref()
        .and_then(|p| p.worker_pid(&caller.tenant));
    Ok(Json(json!({
        "name": stored.name,
        "paused": stored.paused,
        "running": live.is_some(),
        "worker": live,
        "worker_pid": worker_pid,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(sources: Value, sinks: Value) -> BindingSpec {
        BindingSpec {
            name: "b".into(),
            codec: "c".into(),
            router: None,
            config: BTreeMap::new(),
            sources,
            sinks,
            policy: json!({}),
        }
    }

    #[test]
    fn arrays_of_objects_are_accepted_including_empty_ones() {
        let ok = spec(json!([{ "type": "mqtt", "topic": "acme/+/up" }]), json!([]));
        assert!(check_binding_io("acme", &ok).is_ok());
    }

    #[test]
    fn a_field_that_is_not_an_array_is_named() {
        let err = check_binding_io("acme", &spec(json!({ "type": "mqtt" }), json!([])))
            .expect_err("object instead of array");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.field.as_deref(), Some("sources"));
        assert_eq!(
            err.message,
            "`sources` must be an array of objects, not an object"
        );
    }

    #[test]
    fn an_item_that_is_not_an_object_is_named_with_its_index() {
        let err = check_binding_io(
            "acme",
            &spec(json!([]), json!([{ "type": "file" }, "stdout"])),
        )
        .expect_err("string item");
        assert_eq!(err.field.as_deref(), Some("sinks[1]"));
        assert_eq!(err.message, "`sinks[1]` must be an object, not a string");
    }
}
