//! Starting the runtime and loading modules the way every command does.

use std::path::Path;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use sluice_runtime::{CallReport, Module, Runtime, RuntimeConfig};
use sluice_types::{GuestFailure, ModulePolicy, ModuleRef};

/// Hex digits of the SHA-256 used as a module version in messages.
const SHORT_SHA_LEN: usize = 12;

/// The production runtime with fewer instance slots: a CLI runs one instance at a time, and
/// a small pool starts faster. Limits (the ceiling) are the production ones. Compiled
/// components are cached on disk (see [`cache_dir`]), so running the same module again does
/// not compile it again.
pub fn runtime() -> anyhow::Result<Runtime> {
    let config = RuntimeConfig {
        max_instances: 16,
        cache_dir: cache_dir(),
        ..RuntimeConfig::default()
    };
    Runtime::new(config).context("cannot start the wasm runtime")
}

/// Where compiled components are cached: `$SLUICE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/sluice`, else `~/.cache/sluice`. `SLUICE_CACHE_DIR=""` turns it off.
pub fn cache_dir() -> Option<std::path::PathBuf> {
    if let Some(dir) = std::env::var_os("SLUICE_CACHE_DIR") {
        return (!dir.is_empty()).then(|| dir.into());
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(std::path::PathBuf::from(dir).join("sluice"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| std::path::PathBuf::from(home).join(".cache").join("sluice"))
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The first hex digits of a SHA-256, as shown to people.
pub fn short_sha(sha256_hex: &str) -> &str {
    sha256_hex.get(..SHORT_SHA_LEN).unwrap_or(sha256_hex)
}

/// The module's name from a component path: the file stem (`target/sluice/foo.wasm` → `foo`).
pub fn name_from_path(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "module".to_string())
}

/// Reads a component file; a `.js` file is a JavaScript codec, built into a component.
pub fn read_component(path: &Path) -> anyhow::Result<Vec<u8>> {
    if is_javascript(path) {
        return build_js(path);
    }
    std::fs::read(path).with_context(|| format!("cannot read the module {}", path.display()))
}

/// Whether `path` names a JavaScript codec (by its extension: `.js`, `.cjs`, `.mjs`).
pub fn is_javascript(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "js" | "cjs" | "mjs"))
}

/// Builds the JavaScript codec in `path` into a `sluice:codec` component, as the server does
/// with an uploaded source. A syntax error reads `FILE:LINE:COLUMN: message`.
pub fn build_js(path: &Path) -> anyhow::Result<Vec<u8>> {
    let source = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the JavaScript codec {}", path.display()))?;
    sluice_js::build_js_codec(&source).map_err(|e| match e {
        sluice_js::JsBuildError::Syntax {
            line,
            column,
            message,
        } => anyhow::anyhow!("{}:{line}:{column}: {message}", path.display()),
        other => anyhow::Error::new(other).context(format!("cannot build {}", path.display())),
    })
}

/// Validates, compiles and links `bytes` as module `name` (version: its short hash) under
/// `policy`. A refusal is the runtime's own `Rejected` failure.
pub fn load(
    runtime: &Runtime,
    name: &str,
    bytes: &[u8],
    policy: ModulePolicy,
) -> Result<Module, GuestFailure> {
    let sha = sha256_hex(bytes);
    let module_ref = ModuleRef::new(name, short_sha(&sha));
    tracing::debug!(module = %module_ref, size_bytes = bytes.len(), "loading");
    runtime.load(module_ref, bytes, policy)
}

/// Prints a guest's log lines of one call to stderr as `[module] LEVEL message`.
pub fn print_logs(module: &str, report: &CallReport) {
    for line in &report.logs {
        eprintln!("[{module}] {} {}", line.level, line.message);
    }
    if report.logs_dropped > 0 {
        eprintln!(
            "[{module}] ({} more log lines dropped by the per-call cap)",
            report.logs_dropped
        );
    }
}

/// Prints a typed failure to stderr: `error: <failure>`, and the guest backtrace for traps.
pub fn print_failure(failure: &GuestFailure) {
    eprintln!("error: {failure}");
    if let GuestFailure::Trap {
        backtrace: Some(backtrace),
        ..
    } = failure
    {
        eprintln!("guest backtrace:");
        for frame in backtrace.lines() {
            eprintln!("  {frame}");
        }
    }
}
