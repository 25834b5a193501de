//! The route handlers. Blocking work (SQLite, compiling, running guests) runs on tokio's
//! blocking pool so it never stalls the async workers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_runtime::{InstanceEnv, LogLine};
use sluice_store::{Module, NewVersion, VersionInfo};
use sluice_types::{GuestFailure, ModulePolicy, ModuleRef, Uplink, World};
use sluice_vectors::VectorFile;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

/// Runs `work` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("a worker task failed: {e}")))?
}

/// `GET /livez`: the process is up.
pub async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /openapi.json`.
pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::openapi_document())
}

/// Any path the API does not have.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such route")
}

/// A known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not take this method",
    )
}

/// A module as the API shows it.
#[derive(Debug, Serialize)]
pub struct ModuleView {
    name: String,
    world: World,
    active_version: Option<u32>,
    created_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    versions: Option<Vec<VersionInfo>>,
}

impl ModuleView {
    fn new(m: Module, versions: Option<Vec<VersionInfo>>) -> Self {
        Self {
            name: m.name,
            world: m.world,
            active_version: m.active_version,
            created_at_ms: m.created_at_ms,
            versions,
        }
    }
}

/// Body of `POST /v1/modules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateModule {
    name: String,
    world: World,
}

/// `POST /v1/modules`: creates a module with no versions.
pub async fn create_module(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateModule>,
) -> Result<(StatusCode, Json<ModuleView>), ApiError> {
    caller.require_write()?;
    let module = blocking(move || {
        state
            .store
            .create_module(&caller.tenant, &body.name, body.world)
            .map_err(|e| match e {
                sluice_store::StoreError::Invalid { problem, .. } => {
                    ApiError::bad_field("name", format!("invalid module name: {problem}"))
                }
                e => e.into(),
            })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(ModuleView::new(module, None))))
}

/// `GET /v1/modules`: the tenant's modules, by name.
pub async fn list_modules(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let modules = blocking(move || Ok(state.store.list_modules(&caller.tenant)?)).await?;
    let modules: Vec<ModuleView> = modules
        .into_iter()
        .map(|m| ModuleView::new(m, None))
        .collect();
    Ok(Json(json!({ "modules": modules })))
}

/// `GET /v1/modules/{name}`: one module with its versions.
pub async fn get_module(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ModuleView>, ApiError> {
    blocking(move || {
        let module = state
            .store
            .get_module(&caller.tenant, &name)?
            .ok_or_else(|| ApiError::module_not_found(&name))?;
        let versions = state.store.list_versions(&caller.tenant, &name)?;
        Ok(Json(ModuleView::new(module, Some(versions))))
    })
    .await
}

/// Body of `POST /v1/modules/{name}/versions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadVersion {
    /// The component, base64. Exactly one of this and `js_source`.
    #[serde(default)]
    component_base64: Option<String>,
    /// A JavaScript codec (TS013 `decodeUplink`, or legacy `Decoder`): compiled here into a
    /// `sluice:codec` component.
    #[serde(default)]
    js_source: Option<String>,
    #[serde(default)]
    policy: ModulePolicy,
    #[serde(default)]
    vectors_yaml: Option<String>,
}

/// The component an upload carries, and the field it came from: the decoded
/// `component_base64`, or `js_source` compiled into a codec component.
fn upload_bytes(
    body: &UploadVersion,
    name: &str,
    world: World,
) -> Result<(Vec<u8>, &'static str), ApiError> {
    match (body.component_base64.as_deref(), body.js_source.as_deref()) {
        (Some(_), Some(_)) => Err(ApiError::bad_field(
            "js_source",
            "give either component_base64 or js_source, not both",
        )),
        (None, None) => Err(ApiError::bad_field(
            "component_base64",
            "missing: give component_base64 (a component, base64) or js_source (a JavaScript codec)",
        )),
        (Some(encoded), None) => BASE64
            .decode(encoded.trim())
            .map(|bytes| (bytes, "component_base64"))
            .map_err(|e| ApiError::bad_field("component_base64", format!("not valid base64: {e}"))),
        (None, Some(source)) => {
            if world != World::Codec {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "wrong-world",
                    format!(
                        "module `{name}` is a {world}; a JavaScript source can only be a codec"
                    ),
                )
                .with_field("js_source"));
            }
            sluice_js::build_js_codec(source)
                .map(|component| (component, "js_source"))
                .map_err(|e| match e {
                    sluice_js::JsBuildError::Syntax {
                        line,
                        column,
                        message,
                    } => ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "js-syntax-error",
                        format!("line {line}, column {column}: {message}"),
                    )
                    .with_field("js_source")
                    .with_extra("line", json!(line))
                    .with_extra("column", json!(column)),
                    sluice_js::JsBuildError::Internal { .. } => ApiError::internal(e.to_string()),
                    other => ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "js-build-failed",
                        other.to_string(),
                    )
                    .with_field("js_source"),
                })
        }
    }
}

/// What an upload answers.
#[derive(Debug, Serialize)]
pub struct Uploaded {
    version: u32,
    sha256: String,
    size_bytes: u64,
    /// `false` when an identical version already existed and was returned.
    created: bool,
}

/// `POST /v1/modules/{name}/versions`: validates, compiles and tests a component, then
/// stores it as the module's next version (not activated).
pub async fn upload_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UploadVersion>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    caller.require_write()?;
    blocking(move || {
        let module = state
            .store
            .get_module(&caller.tenant, &name)?
            .ok_or_else(|| ApiError::module_not_found(&name))?;
        let (component, field) = upload_bytes(&body, &name, module.world)?;
        let vectors = body
            .vectors_yaml
            .as_deref()
            .map(|yaml| {
                VectorFile::parse(yaml, "vectors_yaml").map_err(|e| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid-vectors",
                        e.to_string(),
                    )
                    .with_field("vectors_yaml")
                })
            })
            .transpose()?;
        let loaded = state
            .runtime
            .load(
                ModuleRef::new(&name, "upload"),
                &component,
                body.policy.clone(),
            )
            .map_err(|failure| match failure {
                GuestFailure::Rejected { error, .. } => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-component",
                    error.to_string(),
                )
                .with_field(field),
                other => ApiError::internal(other.to_string()),
            })?;
        if loaded.world() != module.world {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "wrong-world",
                format!(
                    "module `{name}` is a {}, but the component implements {}",
                    module.world,
                    loaded.world()
                ),
            )
            .with_field(field));
        }
        if let Some(file) = &vectors {
            let failures: Vec<Value> = sluice_vectors::run(&loaded, file)
                .into_iter()
                .filter(|r| !r.passed)
                .map(|r| json!({ "name": r.name, "diff": r.diff }))
                .collect();
            if !failures.is_empty() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "vectors-failed",
                    format!(
                        "{} of {} test vectors failed; the version was not stored",
                        failures.len(),
                        file.vectors.len()
                    ),
                )
                .with_field("vectors_yaml")
                .with_extra("failures", Value::Array(failures)));
            }
        }
        let upload = state.store.add_version(
            &caller.tenant,
            &name,
            NewVersion {
                component: &component,
                policy: &body.policy,
                test_vectors_yaml: body.vectors_yaml.as_deref(),
            },
        )?;
        let status = if upload.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok((
            status,
            Json(Uploaded {
                version: upload.version.version,
                sha256: upload.version.sha256,
                size_bytes: upload.version.size_bytes,
                created: upload.created,
            }),
        ))
    })
    .await
}

/// `POST /v1/modules/{name}/versions/{version}/activate`.
pub async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ModuleView>, ApiError> {
    caller.require_write()?;
    let version: u32 = version.parse().map_err(|_| {
        ApiError::bad_field("version", format!("`{version}` is not a version number"))
    })?;
    let notify = state.clone();
    let view = blocking(move || {
        let module = state.store.activate(&caller.tenant, &name, version)?;
        Ok(Json(ModuleView::new(module, None)))
    })
    .await?;
    notify.registry_changed().await;
    Ok(view)
}

/// `POST /v1/modules/{name}/rollback`: re-activates the previously active version.
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ModuleView>, ApiError> {
    caller.require_write()?;
    let notify = state.clone();
    let view = blocking(move || {
        let module = state.store.rollback(&caller.tenant, &name)?;
        Ok(Json(ModuleView::new(module, None)))
    })
    .await?;
    notify.registry_changed().await;
    Ok(view)
}

/// Body of `POST /v1/modules/{name}/decode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeRequest {
    #[serde(default)]
    payload_hex: Option<String>,
    #[serde(default)]
    payload_base64: Option<String>,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    device_id: Option<String>,
}

impl DecodeRequest {
    fn payload(&self) -> Result<Vec<u8>, ApiError> {
        parse_payload(
            self.payload_hex.as_deref(),
            self.payload_base64.as_deref(),
            "",
        )
    }
}

/// The payload of a request that gives it as `payload_hex` or `payload_base64` (exactly
/// one). `at` prefixes the field names in errors (`messages[3].`).
pub(crate) fn parse_payload(
    hex: Option<&str>,
    base64: Option<&str>,
    at: &str,
) -> Result<Vec<u8>, ApiError> {
    match (hex, base64) {
        (Some(hex), None) => sluice_vectors::parse_hex(hex).map_err(|e| {
            ApiError::bad_field(format!("{at}payload_hex"), format!("not valid hex: {e}"))
        }),
        (None, Some(b64)) => BASE64.decode(b64.trim()).map_err(|e| {
            ApiError::bad_field(
                format!("{at}payload_base64"),
                format!("not valid base64: {e}"),
            )
        }),
        (Some(_), Some(_)) => Err(ApiError::bad_field(
            format!("{at}payload_hex"),
            "give `payload_hex` or `payload_base64`, not both",
        )),
        (None, None) => Err(ApiError::bad_field(
            format!("{at}payload_hex"),
            "missing payload: give `payload_hex` or `payload_base64`",
        )),
    }
}

/// What a decode answers.
#[derive(Debug, Serialize)]
pub struct Decoded {
    version: u32,
    document: Value,
    fuel_consumed: u64,
    logs: Vec<LogLine>,
}

/// `POST /v1/modules/{name}/decode`: decodes one payload with the active version.
pub async fn decode(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<DecodeRequest>,
) -> Result<Json<Decoded>, ApiError> {
    let payload = body.payload()?;
    blocking(move || {
        let Some(active) = state.store.get_active_version(&caller.tenant, &name)? else {
            return Err(match state.store.get_module(&caller.tenant, &name)? {
                None => ApiError::module_not_found(&name),
                Some(_) => ApiError::new(
                    StatusCode::CONFLICT,
                    "no-active-version",
                    format!("module `{name}` has no active version; activate one first"),
                ),
            });
        };
        let version = active.info.version;
        let module = state
            .runtime
            .load(
                ModuleRef::new(&name, version.to_string()),
                &active.component,
                active.info.policy.clone(),
            )
            .map_err(|f| ApiError::internal(format!("the stored version no longer loads: {f}")))?;
        let mut instance = module.instantiate(InstanceEnv::default());
        let uplink = Uplink::new(
            body.device_id.unwrap_or_else(|| "api".to_string()),
            body.port,
            payload,
        );
        let outcome = instance.decode(&uplink);
        match outcome.result {
            Ok(document) => Ok(Json(Decoded {
                version,
                document: serde_json::to_value(&document)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
                fuel_consumed: outcome.report.fuel_consumed,
                logs: outcome.report.logs,
            })),
            Err(failure) => {
                let typed = serde_json::to_value(&failure)
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    failure.kind(),
                    failure.to_string(),
                )
                .with_extra("failure", typed)
                .with_extra("fuel_consumed", json!(outcome.report.fuel_consumed))
                .with_extra("logs", json!(outcome.report.logs)))
            }
        }
    })
    .await
}
