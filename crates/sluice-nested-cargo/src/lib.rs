//! For build scripts that build guests (wasm workspaces of their own) with a nested cargo:
//! `sluice-test-programs` (the test guests), `sluice-js` (the JavaScript engine) and the peer
//! benchmark (its guests).
//!
//! A build script runs inside the outer build, whose environment carries its configuration:
//! host flags, compiler wrappers, its target dir and target. Passed on, they would build the
//! guests with the host's flags into the outer target dir. [`cargo_build`] removes them and
//! keeps `CARGO_MAKEFLAGS`, so the nested build shares the outer one's jobserver.
//!
//! These functions panic with instructions: in a build script a panic fails the build and
//! shows the message.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables of the outer build that would leak its configuration (host flags, wrappers,
/// target dir, target, C toolchain) into the nested one.
pub const LEAKY_ENV: &[&str] = &[
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
];

/// `cargo build --release --target TARGET --manifest-path MANIFEST --target-dir TARGET_DIR`
/// with the outer build's configuration removed from its environment and its output on
/// stderr (cargo reads a build script's stdout as directives). Add packages and variables,
/// then run it with [`run`].
pub fn cargo_build(manifest: &Path, target: &str, target_dir: &Path) -> Command {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .args(["build", "--release", "--target", target, "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    for var in LEAKY_ENV {
        cargo.env_remove(var);
    }
    cargo.stdout(io::stderr());
    cargo
}

/// Runs a nested build; panics naming `what` when it fails (its compiler output is above).
pub fn run(mut cargo: Command, what: &str) {
    let status = cargo
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {what}: {e}"));
    assert!(
        status.success(),
        "building {what} failed ({status}); the compiler output is above"
    );
}

/// `name` inside the outer build's target dir (the ancestor of `out_dir` that cargo tagged
/// with `CACHEDIR.TAG`), else inside `out_dir`: nested builds keep their artifacts across
/// the outer build's cleanings of `OUT_DIR`, and next to its own.
pub fn target_dir(out_dir: &Path, name: &str) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out_dir)
        .join(name)
}

/// Panics with the `rustup` command to run when `target`'s standard library is missing;
/// `needed_by` says what needs it.
pub fn require_target(target: &str, needed_by: &str, install: &str) {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", rustc.to_string_lossy()));
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || !Path::new(&libdir).is_dir() {
        panic!(
            "the Rust target `{target}` is not installed, and {needed_by} needs it.\n\
             Install it with:\n\n    {install}\n"
        );
    }
}
