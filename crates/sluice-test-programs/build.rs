//! Builds the guest workspaces (`test-programs/`, and `examples/` when present) to wasm with a
//! nested cargo, and writes `OUT_DIR/programs.rs`: one path constant per program plus `ALL`.
//!
//! The nested cargo uses its own target dir, `<target dir>/guests`, so it never waits on the
//! lock held by the outer build, and both guest workspaces share it.

use std::collections::BTreeSet;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// The target guests are components for.
const COMPONENT_TARGET: &str = "wasm32-wasip2";
/// The target of programs that must stay core modules (not components).
const CORE_TARGET: &str = "wasm32-unknown-unknown";
/// Programs built for [`CORE_TARGET`] instead of [`COMPONENT_TARGET`].
const CORE_MODULE_PROGRAMS: &[&str] = &["tp-core-module"];
/// Where the tests that must use every test program live.
const TESTS_DIR: &str = "crates/sluice-runtime/tests";

/// One crate of a guest workspace.
struct Program {
    /// The crate name, e.g. `tp-echo`.
    name: String,
    /// The crate's `description`, used as the constant's doc comment.
    description: String,
    /// The crate directory.
    dir: PathBuf,
    /// The wasm target it is built for.
    target: &'static str,
    /// Whether it is one of the `examples/` programs, whose bytes are also embedded.
    example: bool,
}

impl Program {
    /// The generated constant's name, e.g. `TP_ECHO`.
    fn const_name(&self) -> String {
        self.name.to_uppercase().replace('-', "_")
    }

    /// Where cargo puts the built artifact.
    fn artifact(&self, target_dir: &Path) -> PathBuf {
        target_dir
            .join(self.target)
            .join("release")
            .join(format!("{}.wasm", self.name.replace('-', "_")))
    }
}

fn main() {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("the crate lives at <root>/crates/sluice-test-programs")
        .to_path_buf();
    let out_dir = PathBuf::from(env_var("OUT_DIR"));
    let target_dir = sluice_nested_cargo::target_dir(&out_dir, "guests");

    watch(&manifest_dir.join("build.rs"));
    watch(&root.join("wit"));
    watch(&root.join("crates/sluice-sdk/Cargo.toml"));
    watch(&root.join("crates/sluice-sdk/src"));

    let test_programs = root.join("test-programs");
    let examples = root.join("examples");

    let programs = workspace_programs(&test_programs);
    assert!(
        !programs.is_empty(),
        "no program found under {}",
        test_programs.display()
    );
    check_targets_installed(&programs);
    build_workspace(&test_programs, &programs, &target_dir);

    let mut all = programs;
    let test_program_names: BTreeSet<String> = all.iter().map(Program::const_name).collect();
    if examples.join("Cargo.toml").exists() {
        let mut example_programs = workspace_programs(&examples);
        for program in &mut example_programs {
            program.example = true;
        }
        build_workspace(&examples, &example_programs, &target_dir);
        all.extend(example_programs);
    } else {
        // Rerun when the examples workspace appears.
        watch(&examples);
    }

    warn_untested(&root, &test_program_names);
    write_consts(&out_dir.join("programs.rs"), &all, &root, &target_dir);
}

/// The programs of the guest workspace at `workspace`: every direct subdirectory whose
/// `Cargo.toml` is a `cdylib` package. Also asks cargo to rerun when any of them changes.
fn workspace_programs(workspace: &Path) -> Vec<Program> {
    watch(&workspace.join("Cargo.toml"));
    watch(&workspace.join("Cargo.lock"));
    let entries = fs::read_dir(workspace)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", workspace.display()));
    let mut programs = Vec::new();
    for entry in entries {
        let dir = entry
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", workspace.display()))
            .path();
        let manifest = dir.join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&manifest) else {
            continue;
        };
        let Some(name) = package_field(&text, "name") else {
            continue;
        };
        if !text.contains("cdylib") {
            continue;
        }
        watch(&dir);
        let target = if CORE_MODULE_PROGRAMS.contains(&name.as_str()) {
            CORE_TARGET
        } else {
            COMPONENT_TARGET
        };
        programs.push(Program {
            description: package_field(&text, "description").unwrap_or_default(),
            name,
            dir,
            target,
            example: false,
        });
    }
    programs.sort_by(|a, b| a.name.cmp(&b.name));
    programs
}

/// The string value of `key` in the `[package]` table of a manifest (a one-line basic string).
/// Enough for our own manifests; the nested cargo does the real parsing.
fn package_field(manifest: &str, key: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if !in_package {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() == key {
            let v = v.trim();
            return v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .map(|v| v.replace("\\\"", "\""));
        }
    }
    None
}

/// Fails with instructions when a needed wasm target's standard library is not installed.
fn check_targets_installed(programs: &[Program]) {
    let targets: BTreeSet<&str> = programs.iter().map(|p| p.target).collect();
    for target in targets {
        sluice_nested_cargo::require_target(
            target,
            "the guest test programs",
            &format!("rustup target add {COMPONENT_TARGET} {CORE_TARGET}"),
        );
    }
}

/// Builds `programs` of the workspace at `workspace` in release mode into `target_dir`, one
/// cargo invocation per target. Panics (failing the outer build) when a guest does not compile.
fn build_workspace(workspace: &Path, programs: &[Program], target_dir: &Path) {
    let targets: BTreeSet<&str> = programs.iter().map(|p| p.target).collect();
    for target in targets {
        let mut cargo =
            sluice_nested_cargo::cargo_build(&workspace.join("Cargo.toml"), target, target_dir);
        for program in programs.iter().filter(|p| p.target == target) {
            cargo.args(["--package", &program.name]);
        }
        sluice_nested_cargo::run(
            cargo,
            &format!("the guests of {} for {target}", workspace.display()),
        );
        for program in programs.iter().filter(|p| p.target == target) {
            let artifact = program.artifact(target_dir);
            assert!(
                artifact.is_file(),
                "cargo built {} but {} is missing; is it a `cdylib`?",
                program.name,
                artifact.display()
            );
        }
    }
}

/// Warns about every test program no test under [`TESTS_DIR`] names: a fixture no test runs
/// proves nothing.
fn warn_untested(root: &Path, const_names: &BTreeSet<String>) {
    let tests_dir = root.join(TESTS_DIR);
    if tests_dir.exists() {
        watch(&tests_dir);
    } else {
        // Rerun when the tests directory appears.
        watch(tests_dir.parent().unwrap_or(root));
    }
    let mut sources = String::new();
    read_rust_sources(&tests_dir, &mut sources);
    for name in const_names {
        if !mentions_word(&sources, name) {
            println!(
                "cargo:warning=test program `{name}` is not used by any test under {TESTS_DIR}/"
            );
        }
    }
}

/// Appends the text of every `.rs` file under `dir` (recursively) to `sources`.
fn read_rust_sources(dir: &Path, sources: &mut String) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            read_rust_sources(&path, sources);
        } else if path.extension().is_some_and(|e| e == "rs")
            && let Ok(text) = fs::read_to_string(&path)
        {
            sources.push_str(&text);
            sources.push('\n');
        }
    }
}

/// Whether `word` occurs in `text` as a whole identifier.
fn mentions_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// Writes the constants, rewriting the file only when its content changes.
fn write_consts(path: &Path, programs: &[Program], root: &Path, target_dir: &Path) {
    let mut code = String::from("// Generated by build.rs: paths of the built guest programs.\n");
    for program in programs {
        let artifact = program.artifact(target_dir);
        let artifact = artifact
            .to_str()
            .unwrap_or_else(|| panic!("{} is not UTF-8", artifact.display()));
        let kind = if program.target == CORE_TARGET {
            "core module"
        } else {
            "component"
        };
        // `writeln!` to a String cannot fail.
        let _ = writeln!(
            code,
            "\n/// `{name}` ({kind}, from `{dir}`): {description}\n\
             pub const {const_name}: &str = {artifact:?};",
            name = program.name,
            dir = program
                .dir
                .strip_prefix(root)
                .unwrap_or(&program.dir)
                .display(),
            description = program.description,
            const_name = program.const_name(),
        );
        if program.example {
            // Examples are small; embedding them lets a binary (the CLI's demo) run one
            // without the build tree.
            let _ = writeln!(
                code,
                "\n/// The bytes of [`{const_name}`], embedded at compile time.\n\
                 pub static {const_name}_BYTES: &[u8] = include_bytes!({artifact:?});",
                const_name = program.const_name(),
            );
        }
    }
    code.push_str("\n/// Every built program, as (crate name, path to the `.wasm`).\n");
    code.push_str("pub const ALL: &[(&str, &str)] = &[\n");
    for program in programs {
        let _ = writeln!(code, "    ({:?}, {}),", program.name, program.const_name());
    }
    code.push_str("];\n");
    if fs::read_to_string(path).ok().as_deref() != Some(code.as_str()) {
        fs::write(path, code).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

/// Asks cargo to rerun this script when `path` (a file, or anything under a directory) changes.
/// A path that does not exist is skipped: cargo would rerun the script on every build.
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// A variable cargo always sets for build scripts.
fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}
