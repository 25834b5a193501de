//! The route handlers. Blocking work (SQLite, compiling, running guests) runs on tokio's
//! blocking pool so it never stalls the async workers.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_runtime::LogLine;
use sluice_store::{Module, NewVersion, Source, SourceLanguage, VersionInfo};
use sluice_types::{ModulePolicy, ModuleRef, Uplink, World};

use crate::AppState;
use crate::compile::{self, Code};
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
    /// A Rust codec or router (`lib.rs` against the guest SDK): built here, sandboxed.
    #[serde(default)]
    rust_source: Option<String>,
    #[serde(default)]
    policy: ModulePolicy,
    #[serde(default)]
    vectors_yaml: Option<String>,
}

impl UploadVersion {
    fn code(&self) -> Code<'_> {
        Code {
            component_base64: self.component_base64.as_deref(),
            js_source: self.js_source.as_deref(),
            rust_source: self.rust_source.as_deref(),
            policy: &self.policy,
            vectors_yaml: self.vectors_yaml.as_deref(),
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
        let prepared = compile::prepare(&state, &caller.tenant, &name, body.code())?;
        if let Some(file) = &prepared.vectors {
            let runner = compile::Runner::new(
                &state,
                &caller.tenant,
                prepared.loaded.clone(),
                prepared.component.clone(),
            );
            let failures: Vec<Value> = runner
                .vectors(file)
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
        let source = prepared.source_language.and_then(|language| {
            let text = match language {
                SourceLanguage::JavaScript => body.js_source.as_deref(),
                SourceLanguage::Rust => body.rust_source.as_deref(),
            };
            text.map(|text| Source { language, text })
        });
        let upload = state.store.add_version(
            &caller.tenant,
            &name,
            NewVersion {
                component: &prepared.component,
                policy: &body.policy,
                test_vectors_yaml: body.vectors_yaml.as_deref(),
                source,
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

/// A version as `GET /v1/modules/{name}/versions/{n}` shows it: its metadata and the source
/// it was built from (`null` when it was uploaded as a component).
#[derive(Debug, Serialize)]
pub struct VersionView {
    #[serde(flatten)]
    info: VersionInfo,
    source: Option<String>,
}

/// `GET /v1/modules/{name}/versions/{version}`: one version with its source.
pub async fn get_version(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<VersionView>, ApiError> {
    let number = parse_version(&version)?;
    blocking(move || {
        let found = state.store.get_version(&caller.tenant, &name, number)?;
        match found {
            Some(v) => Ok(Json(VersionView {
                info: v.info,
                source: v.source,
            })),
            None => Err(match state.store.get_module(&caller.tenant, &name)? {
                None => ApiError::module_not_found(&name),
                Some(_) => ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not-found",
                    format!("module `{name}` has no version {number}"),
                ),
            }),
        }
    })
    .await
}

fn parse_version(version: &str) -> Result<u32, ApiError> {
    version
        .parse()
        .map_err(|_| ApiError::bad_field("version", format!("`{version}` is not a version number")))
}

/// Body of `POST /v1/modules/{name}/check`: the members of an upload, and a payload to try.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    #[serde(default)]
    component_base64: Option<String>,
    #[serde(default)]
    js_source: Option<String>,
    #[serde(default)]
    rust_source: Option<String>,
    #[serde(default)]
    policy: ModulePolicy,
    #[serde(default)]
    vectors_yaml: Option<String>,
    /// A payload to decode with the code, as `POST /v1/modules/{name}/decode` takes it.
    #[serde(default, rename = "try")]
    try_decode: Option<DecodeRequest>,
}

/// What a check answers.
#[derive(Debug, Serialize)]
pub struct Checked {
    /// Every vector's result, in file order.
    vectors: Vec<sluice_vectors::VectorResult>,
    passed: usize,
    failed: usize,
    /// The decode of the `try` payload: `{document, fuel_consumed, logs}` or
    /// `{failure, fuel_consumed, logs}`.
    #[serde(rename = "try", skip_serializing_if = "Option::is_none")]
    tried: Option<Value>,
}

/// `POST /v1/modules/{name}/check`: builds, validates and loads the code as an upload would,
/// runs its vectors and decodes the `try` payload, and stores nothing. A failing vector or a
/// failing decode is a result (200), not an error; code that does not build or load is.
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<CheckRequest>,
) -> Result<Json<Checked>, ApiError> {
    caller.require_write()?;
    let tried = body
        .try_decode
        .as_ref()
        .map(|t| t.uplink("try."))
        .transpose()?;
    blocking(move || {
        let code = Code {
            component_base64: body.component_base64.as_deref(),
            js_source: body.js_source.as_deref(),
            rust_source: body.rust_source.as_deref(),
            policy: &body.policy,
            vectors_yaml: body.vectors_yaml.as_deref(),
        };
        let prepared = compile::prepare(&state, &caller.tenant, &name, code)?;
        let runner = compile::Runner::new(
            &state,
            &caller.tenant,
            prepared.loaded.clone(),
            prepared.component.clone(),
        );
        let vectors = prepared
            .vectors
            .as_ref()
            .map(|file| runner.vectors(file))
            .unwrap_or_default();
        let passed = vectors.iter().filter(|r| r.passed).count();
        let tried = match tried {
            None => None,
            Some(uplink) => {
                let outcome = runner.decode(&uplink);
                let mut result = match outcome.result {
                    Ok(document) => json!({ "document": document }),
                    Err(failure) => json!({ "failure": failure }),
                };
                result["fuel_consumed"] = json!(outcome.report.fuel_consumed);
                result["logs"] = json!(outcome.report.logs);
                Some(result)
            }
        };
        Ok(Json(Checked {
            failed: vectors.len() - passed,
            passed,
            vectors,
            tried,
        }))
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
    let version = parse_version(&version)?;
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
    /// The uplink to decode (device `api` unless named); `at` prefixes the field names in
    /// errors (`try.`).
    fn uplink(&self, at: &str) -> Result<Uplink, ApiError> {
        let payload = parse_payload(
            self.payload_hex.as_deref(),
            self.payload_base64.as_deref(),
            at,
        )?;
        let device = self.device_id.clone().unwrap_or_else(|| "api".to_string());
        Ok(Uplink::new(device, self.port, payload))
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
    let uplink = body.uplink("")?;
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
        let runner =
            compile::Runner::new(&state, &caller.tenant, module, Arc::new(active.component));
        let outcome = runner.decode(&uplink);
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
