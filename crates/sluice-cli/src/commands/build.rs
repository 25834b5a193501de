//! `sluice build`: cargo to a component, then the runtime's own validation.

use std::io::{BufRead as _, BufReader, IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};
use clap::Args;
use serde::Deserialize;
use sluice_runtime::{Module, Runtime};
use sluice_types::ModulePolicy;

use crate::manifest::{self, Manifest};
use crate::output::{display_path, size};
use crate::sandbox;

/// Examples and notes shown after `sluice build --help`.
pub const AFTER_HELP: &str = "\
Examples:
  sluice build                      build the project in the current directory
  sluice build --dir my-codec       build another project
  sluice build lpp.js               build a JavaScript codec to lpp.wasm

Runs `cargo build --release --target wasm32-wasip2`, copies the component to
DIR/target/sluice/NAME.wasm (NAME from sluice.toml, else the crate), and loads it with the
runtime under the [policy] of sluice.toml, exactly as the server would. Fails when the code does
not compile or the runtime rejects the component.

A JavaScript codec (TS013 decodeUplink/encodeDownlink, or the older Decoder/Encoder) is built
into a component the way the server builds an uploaded source: the engine is pre-initialised
with the script. A syntax error is reported as FILE:LINE:COLUMN. See docs/js.md.";

/// The target whose cdylib output is a component.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// What cargo prints when the target's standard library is missing.
const MISSING_TARGET_HINTS: &[&str] = &[
    "target may not be installed",
    "can't find crate for `std`",
    "can't find crate for `core`",
];

/// Arguments of `sluice build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// A JavaScript codec to build instead of a project.
    #[arg(value_name = "FILE.js", conflicts_with = "dir")]
    script: Option<PathBuf>,
    /// The project directory (holding Cargo.toml and, optionally, sluice.toml).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Where to write a JavaScript codec's component [default: FILE.wasm next to FILE.js].
    #[arg(long, short, value_name = "FILE.wasm", requires = "script")]
    out: Option<PathBuf>,
}

/// Runs `sluice build`.
pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let built = match &args.script {
        Some(script) => build_script(script, args.out.as_deref())?,
        None => build(&args.dir)?,
    };
    let info = built.module.info();
    println!("Built {}", display_path(&built.wasm).display());
    println!("  world    {}", info.world);
    println!("  size     {}", size(info.size_bytes));
    println!("  sha256   {}", sandbox::short_sha(&info.sha256));
    println!("  exports  {}", info.exports.join(", "));
    println!("  imports  {}", info.imports.len());
    for import in &info.imports {
        println!("    {import}");
    }
    match &built.manifest_path {
        Some(path) => println!(
            "  policy   valid under the [policy] of {}",
            display_path(path).display()
        ),
        None => println!("  policy   valid under the default policy (no sluice.toml)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A built, validated module.
pub struct Built {
    /// `DIR/target/sluice/NAME.wasm`.
    pub wasm: PathBuf,
    /// The manifest used, when there is one.
    pub manifest_path: Option<PathBuf>,
    /// The module as the runtime loaded it.
    pub module: Module,
}

/// Builds the JavaScript codec `script` to `out` (default: the script's path with `.wasm`)
/// and loads it with the runtime under the default policy.
fn build_script(script: &Path, out: Option<&Path>) -> anyhow::Result<Built> {
    if !sandbox::is_javascript(script) {
        bail!(
            "{} is not a JavaScript file (.js); to build a Rust module project, pass its \
             directory with --dir",
            script.display()
        );
    }
    let bytes = sandbox::build_js(script)?;
    let wasm = out.map_or_else(|| script.with_extension("wasm"), Path::to_path_buf);
    std::fs::write(&wasm, &bytes).with_context(|| format!("cannot write {}", wasm.display()))?;
    let runtime = sandbox::runtime()?;
    let name = sandbox::name_from_path(script);
    let module = load_checked(&runtime, &name, &bytes, ModulePolicy::default())
        .with_context(|| format!("{} does not load", display_path(&wasm).display()))?;
    Ok(Built {
        wasm,
        manifest_path: None,
        module,
    })
}

/// Builds the project in `dir`, copies the component to `target/sluice/` and loads it with
/// the runtime under the manifest's policy.
pub fn build(dir: &Path) -> anyhow::Result<Built> {
    if !dir.join("Cargo.toml").is_file() {
        bail!(
            "no Cargo.toml in {}; run `sluice build` in a module project (create one with \
             `sluice new codec NAME`) or pass --dir",
            dir.display()
        );
    }
    let manifest = Manifest::load_in(dir)?;
    check_target_installed(dir)?;
    let artifacts = cargo_build(dir)?;
    let wanted = manifest.as_ref().map(|(m, _)| m.module.name.as_str());
    let artifact = pick_artifact(&artifacts, wanted)?;

    let name = match &manifest {
        Some((m, _)) => m.module.name.clone(),
        None => sandbox::name_from_path(&artifact.path),
    };
    let out_dir = dir.join("target").join("sluice");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let wasm = out_dir.join(format!("{name}.wasm"));
    std::fs::copy(&artifact.path, &wasm).with_context(|| {
        format!(
            "cannot copy {} to {}",
            artifact.path.display(),
            wasm.display()
        )
    })?;
    tracing::debug!(from = %artifact.path.display(), to = %wasm.display(), "copied the component");

    let bytes = sandbox::read_component(&wasm)?;
    let policy = manifest
        .as_ref()
        .map(|(m, _)| m.policy.clone())
        .unwrap_or_default();
    let runtime = sandbox::runtime()?;
    let module = load_checked(&runtime, &name, &bytes, policy)
        .with_context(|| format!("{} does not load", display_path(&wasm).display()))?;
    if let Some((m, path)) = &manifest
        && m.module.world != module.world()
    {
        bail!(
            "{} says world = \"{}\", but the component implements {}",
            path.display(),
            manifest::world_name(m.module.world),
            module.world()
        );
    }
    Ok(Built {
        wasm,
        manifest_path: manifest.map(|(_, path)| path),
        module,
    })
}

/// Loads a freshly built component; a refusal is an error carrying the runtime's message.
fn load_checked(
    runtime: &Runtime,
    name: &str,
    bytes: &[u8],
    policy: ModulePolicy,
) -> anyhow::Result<Module> {
    sandbox::load(runtime, name, bytes, policy).map_err(anyhow::Error::new)
}

/// The message to show when the wasm target is missing.
fn missing_target_message() -> String {
    format!(
        "the Rust target `{WASM_TARGET}` is not installed; install it with:\n\n    \
         rustup target add {WASM_TARGET}\n"
    )
}

/// With rustup, asks which targets the directory's toolchain has; without, cargo's own error
/// is recognised after the build.
fn check_target_installed(dir: &Path) -> anyhow::Result<()> {
    let output = match Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(dir)
        .output()
    {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            tracing::debug!(status = %output.status, "rustup target list failed; skipping the check");
            return Ok(());
        }
        Err(e) => {
            tracing::debug!("rustup not available ({e}); skipping the target check");
            return Ok(());
        }
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if installed.lines().any(|line| line.trim() == WASM_TARGET) {
        Ok(())
    } else {
        bail!("{}", missing_target_message())
    }
}

/// One cdylib `.wasm` cargo produced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Artifact {
    /// The crate target name (`my_codec`).
    target_name: String,
    /// The `.wasm` file.
    path: PathBuf,
}

/// The parts of cargo's JSON messages we read.
#[derive(Debug, Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    target: Option<CargoTarget>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct CargoTarget {
    name: String,
    kind: Vec<String>,
}

/// The cargo to run: the one that ran us (when `CARGO` is set), else the one on `PATH`.
fn cargo_program() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Runs cargo in `dir`, streams its diagnostics to stderr, and returns the cdylib `.wasm`
/// files it reported.
fn cargo_build(dir: &Path) -> anyhow::Result<Vec<Artifact>> {
    let color = if std::io::stderr().is_terminal() {
        "always"
    } else {
        "never"
    };
    let mut command = Command::new(cargo_program());
    command
        .args(["build", "--release", "--target", WASM_TARGET])
        .arg("--message-format=json-render-diagnostics")
        .args(["--color", color])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tracing::debug!(?command, "running cargo");
    let mut child = command
        .spawn()
        .context("cannot run cargo; is the Rust toolchain installed (https://rustup.rs)?")?;

    // Forward cargo's stderr (progress and rendered diagnostics) as it comes, keeping a copy
    // to recognise a missing target.
    let stderr = child
        .stderr
        .take()
        .context("cargo's stderr was not captured")?;
    let forward = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut reader = BufReader::new(stderr);
        let mut buf = [0u8; 8192];
        let mut out = std::io::stderr();
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    seen.extend_from_slice(&buf[..n]);
                }
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });

    let stdout = child
        .stdout
        .take()
        .context("cargo's stdout was not captured")?;
    let mut artifacts = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("cannot read cargo's output")?;
        let Ok(message) = serde_json::from_str::<CargoMessage>(&line) else {
            continue;
        };
        if message.reason != "compiler-artifact" {
            continue;
        }
        let Some(target) = message.target else {
            continue;
        };
        if !target.kind.iter().any(|k| k == "cdylib") {
            continue;
        }
        for path in message.filenames {
            if path.extension().is_some_and(|e| e == "wasm") {
                artifacts.push(Artifact {
                    target_name: target.name.clone(),
                    path,
                });
            }
        }
    }
    let status = child.wait().context("cargo did not finish")?;
    let stderr_text = forward.join().unwrap_or_default();
    if !status.success() {
        if MISSING_TARGET_HINTS.iter().any(|h| stderr_text.contains(h)) {
            bail!("{}", missing_target_message());
        }
        bail!("cargo build failed ({status}); the compiler output is above");
    }
    Ok(artifacts)
}

/// The component to use: the one of the manifest's crate, else the only one.
fn pick_artifact(artifacts: &[Artifact], wanted: Option<&str>) -> anyhow::Result<Artifact> {
    match artifacts {
        [] => bail!(
            "cargo built no `.wasm`; the crate needs `crate-type = [\"cdylib\"]` under [lib] in \
             its Cargo.toml"
        ),
        [only] => Ok(only.clone()),
        many => {
            let normalized = wanted.map(|w| w.replace('-', "_"));
            if let Some(found) = many
                .iter()
                .find(|a| Some(a.target_name.as_str()) == normalized.as_deref())
            {
                return Ok(found.clone());
            }
            let names: Vec<_> = many.iter().map(|a| a.target_name.as_str()).collect();
            bail!(
                "cargo built several components ({}); run `sluice build` in one crate's \
                 directory, or name the crate in {}",
                names.join(", "),
                manifest::FILE_NAME
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(name: &str) -> Artifact {
        Artifact {
            target_name: name.into(),
            path: PathBuf::from(format!("/t/{name}.wasm")),
        }
    }

    #[test]
    fn the_only_artifact_is_picked() {
        assert_eq!(
            pick_artifact(&[artifact("foo")], Some("other")).expect("one"),
            artifact("foo")
        );
    }

    #[test]
    fn the_manifest_name_picks_among_several() {
        let all = [artifact("a_b"), artifact("c")];
        assert_eq!(
            pick_artifact(&all, Some("a-b")).expect("a-b"),
            artifact("a_b")
        );
        assert!(pick_artifact(&all, None).is_err());
    }

    #[test]
    fn no_artifact_explains_cdylib() {
        let error = pick_artifact(&[], None).expect_err("none");
        assert!(error.to_string().contains("cdylib"), "{error}");
    }

    #[test]
    fn cargo_artifact_messages_parse() {
        let line = r#"{"reason":"compiler-artifact","package_id":"x","target":{"kind":["cdylib"],"crate_types":["cdylib"],"name":"foo","src_path":"/x/src/lib.rs"},"filenames":["/x/target/wasm32-wasip2/release/foo.wasm"],"fresh":true}"#;
        let message: CargoMessage = serde_json::from_str(line).expect("parses");
        assert_eq!(message.reason, "compiler-artifact");
        assert_eq!(message.filenames.len(), 1);
    }
}
