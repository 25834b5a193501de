//! Turning what a client sends (a component, or a JavaScript codec's source) into a loaded,
//! world-checked module with its test vectors: shared by uploads (which then store a version)
//! and by `check` (which runs the vectors and a sample decode without storing anything, as the
//! editor's "Compile & test" and "Try" do).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;
use sha2::{Digest, Sha256};
use sluice_store::SourceLanguage;
use sluice_types::{GuestFailure, ModulePolicy, ModuleRef, World};
use sluice_vectors::VectorFile;

use crate::AppState;
use crate::error::ApiError;

/// How many built JavaScript components are kept. Building one takes seconds (the engine is
/// pre-initialised with the script, then packaged), and an editor session compiles, tries and
/// saves the same source in a row.
const JS_BUILDS_KEPT: usize = 16;

/// A built component and the SHA-256 of its source.
type KeptBuild = ([u8; 32], Arc<Vec<u8>>);

/// Components built from JavaScript sources, by the SHA-256 of the source; the most recently
/// used last.
///
/// One build runs at a time: a build keeps a core busy for seconds, and the message path
/// shares the machine.
#[derive(Debug, Default)]
pub struct JsBuilds {
    kept: Mutex<VecDeque<KeptBuild>>,
    building: Mutex<()>,
}

impl JsBuilds {
    /// The component built from `source`, from the cache or built now.
    fn component(&self, source: &str) -> Result<Arc<Vec<u8>>, sluice_js::JsBuildError> {
        let key: [u8; 32] = Sha256::digest(source.as_bytes()).into();
        if let Some(component) = self.kept(&key) {
            return Ok(component);
        }
        // A poisoned lock only means another build panicked; building is still safe.
        let _building = self
            .building
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The same source may have been built while this request waited.
        if let Some(component) = self.kept(&key) {
            return Ok(component);
        }
        let component = Arc::new(sluice_js::build_js_codec(source)?);
        if let Ok(mut kept) = self.kept.lock() {
            if kept.len() >= JS_BUILDS_KEPT {
                kept.pop_front();
            }
            kept.push_back((key, component.clone()));
        }
        Ok(component)
    }

    /// The kept build of the source with hash `key`, now the most recently used.
    fn kept(&self, key: &[u8; 32]) -> Option<Arc<Vec<u8>>> {
        let mut kept = self.kept.lock().ok()?;
        let at = kept.iter().position(|(k, _)| k == key)?;
        let entry = kept.remove(at)?;
        let component = entry.1.clone();
        kept.push_back(entry);
        Some(component)
    }
}

/// The code members of an upload or check request.
#[derive(Debug, Clone, Copy)]
pub struct Code<'a> {
    /// A component, base64.
    pub component_base64: Option<&'a str>,
    /// A JavaScript codec's source.
    pub js_source: Option<&'a str>,
    /// A Rust codec's or router's `lib.rs`, written against the guest SDK.
    pub rust_source: Option<&'a str>,
    /// The policy to load it under.
    pub policy: &'a ModulePolicy,
    /// Its test vectors, YAML.
    pub vectors_yaml: Option<&'a str>,
}

/// A request's code, built, loaded and checked against its module's world.
pub struct Prepared {
    /// The component bytes.
    pub component: Arc<Vec<u8>>,
    /// The component loaded in the production runtime.
    pub loaded: sluice_runtime::Module,
    /// The parsed test vectors, if any were given.
    pub vectors: Option<VectorFile>,
    /// The source's language, when the component was built from source here.
    pub source_language: Option<SourceLanguage>,
}

/// Builds (JavaScript) or decodes (base64) `code`, loads it with its policy, checks it
/// implements module `name`'s world, and parses its vectors. Blocking.
pub fn prepare(
    state: &AppState,
    tenant: &str,
    name: &str,
    code: Code<'_>,
) -> Result<Prepared, ApiError> {
    let module = state
        .store
        .get_module(tenant, name)?
        .ok_or_else(|| ApiError::module_not_found(name))?;
    let (component, field, source_language) =
        component_of(state, &code, tenant, name, module.world)?;
    let vectors = code
        .vectors_yaml
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
            ModuleRef::new(name, "upload"),
            &component,
            code.policy.clone(),
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
    Ok(Prepared {
        component,
        loaded,
        vectors,
        source_language,
    })
}

/// The component of a request, the field it came from, and the source language when it was
/// built from source.
type Carried = (Arc<Vec<u8>>, &'static str, Option<SourceLanguage>);

/// The component `code` carries.
fn component_of(
    state: &AppState,
    code: &Code<'_>,
    tenant: &str,
    name: &str,
    world: World,
) -> Result<Carried, ApiError> {
    let given: Vec<&str> = [
        ("component_base64", code.component_base64.is_some()),
        ("js_source", code.js_source.is_some()),
        ("rust_source", code.rust_source.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, present)| present.then_some(field))
    .collect();
    match given.as_slice() {
        [] => {
            return Err(ApiError::bad_field(
                "component_base64",
                "missing: give component_base64 (a component, base64), js_source (a JavaScript codec) or rust_source (a Rust lib.rs)",
            ));
        }
        [_] => {}
        [_, second, ..] => {
            return Err(ApiError::bad_field(
                *second,
                format!("give only one of {}", given.join(", ")),
            ));
        }
    }
    if let Some(encoded) = code.component_base64 {
        return BASE64
            .decode(encoded.trim())
            .map(|bytes| (Arc::new(bytes), "component_base64", None))
            .map_err(|e| {
                ApiError::bad_field("component_base64", format!("not valid base64: {e}"))
            });
    }
    if let Some(source) = code.rust_source {
        let builder = state.rust_builder.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "rust-builds-unavailable",
                "this server does not build Rust sources (no Rust toolchain with the wasm32-wasip2 target); upload a component built with `sluice build`",
            )
            .with_field("rust_source")
        })?;
        return builder
            .build(tenant, source)
            .map(|built| {
                (
                    Arc::new(built.component),
                    "rust_source",
                    Some(SourceLanguage::Rust),
                )
            })
            .map_err(rust_build_error);
    }
    let source = code.js_source.unwrap_or_default();
    if world != World::Codec {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong-world",
            format!("module `{name}` is a {world}; a JavaScript source can only be a codec"),
        )
        .with_field("js_source"));
    }
    state
        .js_builds
        .component(source)
        .map(|component| (component, "js_source", Some(SourceLanguage::JavaScript)))
        .map_err(js_build_error)
}

fn rust_build_error(e: sluice_builder::RustBuildError) -> ApiError {
    use sluice_builder::RustBuildError;
    match &e {
        RustBuildError::Compile { diagnostics } => {
            let first = diagnostics.iter().find(|d| d.level == "error");
            let mut error = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rust-compile-error",
                e.to_string(),
            )
            .with_field("rust_source")
            .with_extra("diagnostics", json!(diagnostics));
            if let Some(first) = first {
                error = error
                    .with_extra("line", json!(first.line))
                    .with_extra("column", json!(first.column));
            }
            error
        }
        RustBuildError::Unavailable { .. } => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "rust-builds-unavailable",
            e.to_string(),
        )
        .with_field("rust_source"),
        RustBuildError::Io { .. } => ApiError::internal(e.to_string()),
        RustBuildError::SourceTooLarge { .. }
        | RustBuildError::Timeout { .. }
        | RustBuildError::Failed { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rust-build-failed",
            e.to_string(),
        )
        .with_field("rust_source"),
    }
}

fn js_build_error(e: sluice_js::JsBuildError) -> ApiError {
    match e {
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
    }
}

/// Where the API runs a tenant's code (test vectors, trial decodes): through the pipeline,
/// so in the tenant's worker process when guest code is isolated, exactly where its
/// bindings run it; in this process when the API runs without a pipeline.
pub struct Runner {
    module: sluice_runtime::Module,
    trial: Option<sluice_pipeline::Trial>,
}

/// A fresh instance from a [`Runner`].
pub enum Fresh {
    /// In this process.
    Local(sluice_runtime::Instance),
    /// Where the pipeline runs the tenant's code.
    Trial(sluice_pipeline::TrialInstance),
}

impl sluice_vectors::Subject for Fresh {
    fn decode(
        &mut self,
        uplink: &sluice_types::Uplink,
    ) -> sluice_runtime::CallOutcome<sluice_types::Document> {
        match self {
            Fresh::Local(instance) => instance.decode(uplink),
            Fresh::Trial(instance) => instance.decode(uplink),
        }
    }

    fn encode(
        &mut self,
        downlink: &sluice_types::Downlink,
    ) -> sluice_runtime::CallOutcome<sluice_types::EncodedDownlink> {
        match self {
            Fresh::Local(instance) => instance.encode(downlink),
            Fresh::Trial(instance) => instance.encode(downlink),
        }
    }

    fn route(
        &mut self,
        uplink: &sluice_types::Uplink,
        document: &sluice_types::Document,
    ) -> sluice_runtime::CallOutcome<Vec<sluice_types::Decision>> {
        match self {
            Fresh::Local(instance) => instance.route(uplink, document),
            Fresh::Trial(instance) => instance.route(uplink, document),
        }
    }
}

impl Runner {
    /// Runs `module` of `tenant`, loaded from `component`.
    pub fn new(
        state: &AppState,
        tenant: &str,
        module: sluice_runtime::Module,
        component: Arc<Vec<u8>>,
    ) -> Self {
        let trial = state
            .pipeline
            .as_ref()
            .map(|pipeline| pipeline.trial(tenant, module.clone(), component));
        Self { module, trial }
    }

    /// A fresh instance with `config` as the binding config and empty device state.
    /// Blocking.
    pub fn fresh(
        &self,
        config: &std::collections::BTreeMap<String, String>,
    ) -> Result<Fresh, GuestFailure> {
        match &self.trial {
            Some(trial) => trial.instance(config).map(Fresh::Trial),
            None => Ok(Fresh::Local(self.module.instantiate(
                sluice_runtime::InstanceEnv::with_config(config.clone()),
            ))),
        }
    }

    /// Runs every vector of `file`, each on a fresh instance. Blocking.
    pub fn vectors(&self, file: &VectorFile) -> Vec<sluice_vectors::VectorResult> {
        sluice_vectors::run_with(file, |config| self.fresh(config))
    }

    /// Decodes `uplink` on a fresh instance with no config. Blocking.
    pub fn decode(
        &self,
        uplink: &sluice_types::Uplink,
    ) -> sluice_runtime::CallOutcome<sluice_types::Document> {
        use sluice_vectors::Subject as _;
        match self.fresh(&Default::default()) {
            Ok(mut instance) => instance.decode(uplink),
            Err(failure) => sluice_runtime::CallOutcome {
                result: Err(failure),
                report: Default::default(),
            },
        }
    }
}
