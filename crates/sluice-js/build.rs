//! Builds the JavaScript engine guest (`js/engine/`, its own workspace) to a core wasm module
//! with a nested cargo, and copies it to `OUT_DIR/sluice_js_engine.wasm` for `include_bytes!`.
//!
//! QuickJS is C: rquickjs-sys compiles it with `clang-14` for `wasm32-unknown-unknown` against
//! the wasi-libc headers and `libc.a` it vendors, and archives it with `llvm-ar-14`. The nested
//! cargo uses its own target dir, `<target dir>/js-engine`, so it never waits on the lock held
//! by the outer build.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The engine is a core module without WASI: the host pre-initialises it, then wraps it into
/// a component.
const TARGET: &str = "wasm32-unknown-unknown";
/// C compiler and archiver for QuickJS (Debian packages `clang-14` and `llvm-14`).
const CC: &str = "clang-14";
const AR: &str = "llvm-ar-14";

fn main() {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("the crate lives at <root>/crates/sluice-js")
        .to_path_buf();
    let out_dir = PathBuf::from(env_var("OUT_DIR"));
    let engine = root.join("js/engine");

    watch(&manifest_dir.join("build.rs"));
    watch(&root.join("wit"));
    watch(&engine.join("Cargo.toml"));
    watch(&engine.join("Cargo.lock"));
    watch(&engine.join("src"));

    check_tools();
    let target_dir = sluice_nested_cargo::target_dir(&out_dir, "js-engine");
    build_engine(&engine, &target_dir);

    let artifact = target_dir
        .join(TARGET)
        .join("release")
        .join("sluice_js_engine.wasm");
    let dest = out_dir.join("sluice_js_engine.wasm");
    let bytes = fs::read(&artifact)
        .unwrap_or_else(|e| panic!("cargo built the engine but {}: {e}", artifact.display()));
    if fs::read(&dest).ok().as_deref() != Some(bytes.as_slice()) {
        fs::write(&dest, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", dest.display()));
    }
}

/// Fails with instructions when the wasm target or the C toolchain is missing.
fn check_tools() {
    sluice_nested_cargo::require_target(
        TARGET,
        "the JavaScript engine",
        &format!("rustup target add {TARGET}"),
    );
    for tool in [CC, AR] {
        if Command::new(tool).arg("--version").output().is_err() {
            panic!(
                "`{tool}` is not installed, and the JavaScript engine (QuickJS, in C) needs it.\n\
                 Install it with:\n\n    apt-get install -y clang-14 llvm-14\n"
            );
        }
    }
}

/// Builds the engine in release mode. Panics (failing the outer build) when it does not
/// compile.
fn build_engine(engine: &Path, target_dir: &Path) {
    let target_var = TARGET.replace('-', "_");
    let mut cargo =
        sluice_nested_cargo::cargo_build(&engine.join("Cargo.toml"), TARGET, target_dir);
    // rquickjs-sys would download wasi-sdk for WASI targets; this target needs none, and the
    // variables keep it from ever trying.
    cargo
        .arg("--locked")
        .env_remove("WASI_SDK")
        .env("RQUICKJS_SYS_NO_WASI_SDK", "1")
        .env(format!("CC_{target_var}"), CC)
        .env(format!("AR_{target_var}"), AR);
    sluice_nested_cargo::run(
        cargo,
        &format!("the JavaScript engine ({}) for {TARGET}", engine.display()),
    );
}

/// Asks cargo to rerun this script when `path` (a file, or anything under a directory) changes.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// A variable cargo always sets for build scripts.
fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}
