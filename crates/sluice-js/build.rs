//! Builds the JavaScript engine guest (`js/engine/`, its own workspace) to a core wasm module
//! with a nested cargo, and copies it to `OUT_DIR/sluice_js_engine.wasm` for `include_bytes!`.
//!
//! QuickJS is C: rquickjs-sys compiles it with `clang-14` for `wasm32-unknown-unknown` against
//! the wasi-libc headers and `libc.a` it vendors, and archives it with `llvm-ar-14`. The nested
//! cargo uses its own target dir, `<target dir>/js-engine`, so it never waits on the lock held
//! by the outer build.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The engine is a core module without WASI: the host pre-initialises it, then wraps it into
/// a component.
const TARGET: &str = "wasm32-unknown-unknown";
/// C compiler and archiver for QuickJS (Debian packages `clang-14` and `llvm-14`).
const CC: &str = "clang-14";
const AR: &str = "llvm-ar-14";

/// Variables of the outer build that would leak its configuration (host flags, wrappers,
/// target dir, target, C toolchain) into the nested one. `CARGO_MAKEFLAGS` stays: it shares
/// the jobserver.
const LEAKY_ENV: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_BUILD_TARGET",
    "CC",
    "AR",
    "CFLAGS",
    "TARGET_CC",
    "TARGET_AR",
    "TARGET_CFLAGS",
    "WASI_SDK",
];

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
    let target_dir = nested_target_dir(&out_dir);
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
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", rustc.to_string_lossy()));
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || !Path::new(&libdir).is_dir() {
        panic!(
            "the Rust target `{TARGET}` is not installed, and the JavaScript engine needs it.\n\
             Install it with:\n\n    rustup target add {TARGET}\n"
        );
    }
    for tool in [CC, AR] {
        if Command::new(tool).arg("--version").output().is_err() {
            panic!(
                "`{tool}` is not installed, and the JavaScript engine (QuickJS, in C) needs it.\n\
                 Install it with:\n\n    apt-get install -y clang-14 llvm-14\n"
            );
        }
    }
}

/// The nested build's target dir: `js-engine` inside the outer target dir (the ancestor of
/// `OUT_DIR` that cargo tagged with `CACHEDIR.TAG`), else inside `OUT_DIR`.
fn nested_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out_dir)
        .join("js-engine")
}

/// Builds the engine in release mode. Panics (failing the outer build) when it does not
/// compile.
fn build_engine(engine: &Path, target_dir: &Path) {
    let target_var = TARGET.replace('-', "_");
    let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .arg("build")
        .arg("--release")
        .arg("--locked")
        .args(["--target", TARGET])
        .arg("--manifest-path")
        .arg(engine.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for var in LEAKY_ENV {
        cargo.env_remove(var);
    }
    // rquickjs-sys would download wasi-sdk for WASI targets; this target needs none, and the
    // variable keeps it from ever trying.
    cargo
        .env("RQUICKJS_SYS_NO_WASI_SDK", "1")
        .env(format!("CC_{target_var}"), CC)
        .env(format!("AR_{target_var}"), AR);
    // The outer cargo reads a build script's stdout as directives: keep the nested cargo's
    // output on stderr, where a failure shows it.
    cargo.stdout(io::stderr());
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the JavaScript engine: {e}"));
    assert!(
        status.success(),
        "building the JavaScript engine ({}) for {TARGET} failed ({status}); the compiler output \
         is above",
        engine.display()
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
