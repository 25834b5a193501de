//! Builds a customer's Rust codec or router, one `lib.rs` written against the guest SDK, into
//! a WebAssembly component, in the backend.
//!
//! The customer's code is compiled by `cargo build --offline --locked --release --target
//! wasm32-wasip2` against a copy of the SDK and its dependencies that this crate writes out
//! and vendors once ([`RustBuilder::new`]); the build never reaches a network and never reads
//! the user's cargo configuration. Compiling runs no customer code (a single `lib.rs` has no
//! build script and cannot add dependencies or procedural macros), but the compiler reads
//! files the code names (`include_bytes!`, `#[path]`) and can be driven into long or large
//! compilations, so every build runs in a sandbox ([`sandbox_main`], a separate process):
//!
//! - landlock: the toolchain, the SDK and the vendored crates are readable; only the tenant's
//!   own build directory is writable (and readable); nothing else is, so one tenant's build
//!   cannot read the service's data or another tenant's sources and artifacts. TCP is refused.
//! - rlimits: CPU seconds and data size per process, file size, no core dumps.
//! - a wall-clock limit: the whole process group is killed when it is over.
//! - a clean environment: only the variables the build needs.
//!
//! Each tenant has its own target directory (dependencies are compiled once per tenant, later
//! builds take seconds), and builds run one at a time.

mod sandbox;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use sandbox::{SANDBOX_FAILED_EXIT, sandbox_main};

/// Largest `lib.rs` accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;
/// Largest component accepted from a build, in bytes.
pub const MAX_COMPONENT_BYTES: u64 = 32 * 1024 * 1024;
/// The Rust target whose cdylib output is a component.
pub const TARGET: &str = "wasm32-wasip2";

/// How much of cargo's own error output is kept for an error message.
const MAX_STDERR_BYTES: usize = 16 * 1024;
/// How much of cargo's JSON messages is read.
const MAX_STDOUT_BYTES: usize = 4 * 1024 * 1024;
/// The package name of a customer's build; its component is `module.wasm`.
const PACKAGE: &str = "module";

const SDK_LIB: &str = include_str!("../../sluice-sdk/src/lib.rs");
const SDK_MANIFEST: &str = include_str!("../../sluice-sdk/Cargo.toml");
const WIT: &str = include_str!("../../../wit/codec.wit");
/// The dependency versions every build uses: the SDK's, resolved once and checked in.
const TEMPLATE_LOCK: &str = include_str!("../template/Cargo.lock");

const MODULE_MANIFEST: &str = r#"[package]
name = "module"
version = "0.0.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
sluice-sdk = { path = "../../../sdk/crates/sluice-sdk" }

[workspace]

[profile.release]
opt-level = "s"
strip = true
panic = "abort"
"#;

/// Where and how builds run.
#[derive(Debug, Clone)]
pub struct BuilderConfig {
    /// The builder's directory: SDK copy, vendored crates, one directory per tenant.
    pub root: PathBuf,
    /// The sandbox program and its leading arguments, e.g. `[sluice, "rust-build-sandbox"]`:
    /// it is run as `PROGRAM ARGS... <sandbox options> -- cargo build ...` and must call
    /// [`sandbox_main`].
    pub sandbox: Vec<String>,
    /// Wall-clock limit of one build, the tenant's first (which compiles the SDK's
    /// dependencies) included.
    pub timeout: Duration,
    /// CPU seconds per process of the build (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
    /// Data size per process of the build (`RLIMIT_DATA`), in bytes.
    pub max_data_bytes: u64,
    /// A `rustc` to ask for the toolchain (`rustc --print sysroot`); `None`: `rustc` on `PATH`.
    pub rustc: Option<PathBuf>,
}

impl BuilderConfig {
    /// A builder in `root` that sandboxes with `sandbox`, with the default limits: 10 minutes,
    /// 10 CPU minutes and 3 GiB of data per process.
    pub fn new(root: impl Into<PathBuf>, sandbox: Vec<String>) -> Self {
        Self {
            root: root.into(),
            sandbox,
            timeout: Duration::from_secs(600),
            cpu_seconds: 600,
            max_data_bytes: 3 << 30,
            rustc: None,
        }
    }
}

/// A compiler message about the customer's code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// `error` or `warning`.
    pub level: String,
    /// The message, e.g. "cannot find value `x` in this scope".
    pub message: String,
    /// The file, relative to the package (`src/lib.rs`), when the message points at one.
    pub file: Option<String>,
    /// 1-based line of the primary span.
    pub line: Option<u32>,
    /// 1-based column of the primary span.
    pub column: Option<u32>,
    /// The message as rustc prints it, with the code excerpt.
    pub rendered: String,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum RustBuildError {
    /// The source is too large.
    #[error("the source is {size_bytes} bytes, over the limit of {limit_bytes} bytes")]
    SourceTooLarge {
        /// Its size.
        size_bytes: usize,
        /// [`MAX_SOURCE_BYTES`].
        limit_bytes: usize,
    },
    /// The code does not compile.
    #[error("{}", describe_compile_errors(.diagnostics))]
    Compile {
        /// The compiler's errors (then warnings) about the code.
        diagnostics: Vec<Diagnostic>,
    },
    /// The build ran over its time limit and was stopped.
    #[error("the build took longer than {} s and was stopped", .limit.as_secs())]
    Timeout {
        /// The limit.
        limit: Duration,
    },
    /// The build failed without a compiler error: killed by a resource limit, a sandbox
    /// refusal, an output that is not a usable component.
    #[error("the build failed: {message}")]
    Failed {
        /// What happened, with cargo's own output.
        message: String,
    },
    /// The machine cannot build Rust: no toolchain, no `wasm32-wasip2` target, no sandbox.
    #[error("Rust builds are not available here: {message}")]
    Unavailable {
        /// What is missing and how to add it.
        message: String,
    },
    /// A file of the builder could not be written or read.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn describe_compile_errors(diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.level == "error").collect();
    match errors.first() {
        Some(first) => {
            let at = match (&first.file, first.line, first.column) {
                (Some(file), Some(line), Some(column)) => format!("{file}:{line}:{column}: "),
                _ => String::new(),
            };
            format!(
                "{} compile error{}; the first: {at}{}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                first.message
            )
        }
        None => "the code does not compile".to_string(),
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RustBuildError {
    let path = path.to_path_buf();
    move |source| RustBuildError::Io {
        action,
        path,
        source,
    }
}

/// A built component.
#[derive(Debug, Clone)]
pub struct Built {
    /// The component bytes.
    pub component: Vec<u8>,
    /// The compiler's warnings about the code.
    pub warnings: Vec<Diagnostic>,
    /// How long the build took.
    pub elapsed: Duration,
}

/// Builds Rust sources; one build at a time.
#[derive(Debug)]
pub struct RustBuilder {
    config: BuilderConfig,
    /// The toolchain's sysroot: `bin/cargo`, `bin/rustc`, `lib/rustlib/wasm32-wasip2`.
    sysroot: PathBuf,
    building: Mutex<()>,
}

impl RustBuilder {
    /// Checks the toolchain (its `wasm32-wasip2` target included), writes the SDK copy and the
    /// vendored dependencies into `config.root` unless they are there, and returns the
    /// builder. Vendoring copies the crates from the local cargo registry (`cargo vendor
    /// --offline`), or fetches them from crates.io when it lacks them.
    pub fn new(mut config: BuilderConfig) -> Result<Self, RustBuildError> {
        // One spelling of the directory: cargo fingerprints dependencies by their source
        // path, so `a/../b` and `b` would rebuild everything.
        std::fs::create_dir_all(&config.root).map_err(io("create", &config.root))?;
        config.root = config
            .root
            .canonicalize()
            .map_err(io("resolve", &config.root))?;
        if config.sandbox.is_empty() {
            return Err(RustBuildError::Unavailable {
                message: "no sandbox program configured".into(),
            });
        }
        let sysroot = find_sysroot(config.rustc.as_deref())?;
        for tool in ["cargo", "rustc"] {
            if !sysroot.join("bin").join(tool).is_file() {
                return Err(RustBuildError::Unavailable {
                    message: format!("the toolchain at {} has no {tool}", sysroot.display()),
                });
            }
        }
        if !sysroot.join("lib/rustlib").join(TARGET).is_dir() {
            return Err(RustBuildError::Unavailable {
                message: format!(
                    "the Rust target {TARGET} is not installed; install it with `rustup target add {TARGET}`"
                ),
            });
        }
        let builder = Self {
            config,
            sysroot,
            building: Mutex::new(()),
        };
        builder.prepare()?;
        Ok(builder)
    }

    /// The toolchain builds use.
    pub fn sysroot(&self) -> &Path {
        &self.sysroot
    }

    fn sdk_dir(&self) -> PathBuf {
        self.config.root.join("sdk")
    }

    fn vendor_dir(&self) -> PathBuf {
        self.config.root.join("vendor")
    }

    /// Writes the SDK (its manifest without the workspace's lint table), the contract and a
    /// template project, then vendors the template's dependencies once.
    fn prepare(&self) -> Result<(), RustBuildError> {
        let sdk = self.sdk_dir();
        // Without the repository's lint table, and a workspace of its own, so that cargo
        // never looks for one in the directories above.
        let manifest = SDK_MANIFEST
            .split("\n[lints]")
            .next()
            .unwrap_or(SDK_MANIFEST);
        write_file(
            &sdk.join("crates/sluice-sdk/Cargo.toml"),
            &format!("{manifest}\n[workspace]\n"),
        )?;
        write_file(&sdk.join("crates/sluice-sdk/src/lib.rs"), SDK_LIB)?;
        write_file(&sdk.join("wit/codec.wit"), WIT)?;
        let vendor = self.vendor_dir();
        if vendor.join(".complete").is_file() {
            return Ok(());
        }
        // The template sits where tenants' projects sit, so the SDK path is the same.
        let template = self.config.root.join("tenants/template/module");
        write_file(&template.join("Cargo.toml"), MODULE_MANIFEST)?;
        write_file(&template.join("Cargo.lock"), TEMPLATE_LOCK)?;
        write_file(&template.join("src/lib.rs"), "")?;
        // Builders preparing the same directory at once each vendor into their own staging
        // directory; the first to finish moves its copy in place.
        let staging = self.config.root.join(format!(
            "vendor.partial.{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io("remove", &staging))?;
        }
        // From the local registry if it has the crates, else from crates.io: this is the one
        // step that may use the network; builds never do.
        let vendor_with = |offline: bool| {
            let mut command = Command::new(self.sysroot.join("bin/cargo"));
            command.args(["vendor", "--locked", "--quiet"]);
            if offline {
                command.arg("--offline");
            }
            command
                .arg("--manifest-path")
                .arg(template.join("Cargo.toml"))
                .arg(&staging)
                .env("RUSTC", self.sysroot.join("bin/rustc"))
                .stdin(Stdio::null())
                .output()
                .map_err(io("run cargo vendor for", &template))
        };
        let mut output = vendor_with(true)?;
        if !output.status.success() {
            tracing::info!("the local cargo registry lacks the SDK's dependencies; fetching them");
            output = vendor_with(false)?;
        }
        if !output.status.success() {
            return Err(RustBuildError::Unavailable {
                message: format!(
                    "cannot vendor the SDK's dependencies, neither from the local cargo registry nor from crates.io ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            });
        }
        write_file(&staging.join(".complete"), "")?;
        if vendor.join(".complete").is_file() {
            std::fs::remove_dir_all(&staging).map_err(io("remove", &staging))?;
            return Ok(());
        }
        if vendor.exists() {
            std::fs::remove_dir_all(&vendor).map_err(io("remove", &vendor))?;
        }
        if let Err(e) = std::fs::rename(&staging, &vendor) {
            // Another builder moved its copy in first.
            if !vendor.join(".complete").is_file() {
                return Err(io("move the vendored crates to", &vendor)(e));
            }
            std::fs::remove_dir_all(&staging).map_err(io("remove", &staging))?;
        }
        Ok(())
    }

    /// Builds `source` (a `lib.rs`) for `tenant` into a component.
    pub fn build(&self, tenant: &str, source: &str) -> Result<Built, RustBuildError> {
        if source.len() > MAX_SOURCE_BYTES {
            return Err(RustBuildError::SourceTooLarge {
                size_bytes: source.len(),
                limit_bytes: MAX_SOURCE_BYTES,
            });
        }
        if tenant.is_empty()
            || tenant == "template"
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(RustBuildError::Failed {
                message: format!("`{tenant}` cannot name a build directory"),
            });
        }
        // A poisoned lock only means another build panicked; building is still safe.
        let _building = self
            .building
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = Instant::now();
        let home = self.config.root.join("tenants").join(tenant);
        let project = home.join("module");
        write_file(&project.join("Cargo.toml"), MODULE_MANIFEST)?;
        write_file(&project.join("Cargo.lock"), TEMPLATE_LOCK)?;
        write_file(&project.join("src/lib.rs"), source)?;
        let cargo_home = home.join("cargo-home");
        write_file(
            &cargo_home.join("config.toml"),
            &format!(
                "[source.crates-io]\nreplace-with = \"vendored\"\n\n[source.vendored]\ndirectory = {}\n\n[net]\noffline = true\n",
                toml_string(&self.vendor_dir())
            ),
        )?;
        let tmp = home.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
        let target_dir = home.join("target");

        let mut command = Command::new(&self.config.sandbox[0]);
        command.args(&self.config.sandbox[1..]);
        for read in [&self.sysroot, &self.sdk_dir(), &self.vendor_dir()] {
            command.arg("--read").arg(read);
        }
        for system in sandbox::SYSTEM_READ_PATHS {
            if Path::new(system).exists() {
                command.arg("--read").arg(system);
            }
        }
        command
            .arg("--write")
            .arg(&home)
            .arg("--cpu-seconds")
            .arg(self.config.cpu_seconds.to_string())
            .arg("--data-bytes")
            .arg(self.config.max_data_bytes.to_string())
            .arg("--")
            .arg(self.sysroot.join("bin/cargo"))
            .args([
                "build",
                "--offline",
                "--locked",
                "--release",
                "--target",
                TARGET,
                "--message-format=json",
                "--manifest-path",
            ])
            .arg(project.join("Cargo.toml"))
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.sysroot.join("bin").display()),
            )
            .env("HOME", &home)
            .env("CARGO_HOME", &cargo_home)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("RUSTC", self.sysroot.join("bin/rustc"))
            .env("TMPDIR", &tmp)
            .env("CARGO_BUILD_JOBS", "1")
            .env("CARGO_INCREMENTAL", "0")
            .env("CARGO_TERM_COLOR", "never")
            .current_dir(&project)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group, so that a timeout stops cargo and every rustc it started.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let run = run_with_timeout(command, self.config.timeout)?;
        let elapsed = started.elapsed();
        if run.timed_out {
            return Err(RustBuildError::Timeout {
                limit: self.config.timeout,
            });
        }
        let messages = parse_messages(&run.stdout);
        let mut diagnostics = messages.diagnostics;
        diagnostics.sort_by_key(|d| d.level != "error");
        if !run.success {
            if diagnostics.iter().any(|d| d.level == "error") {
                return Err(RustBuildError::Compile { diagnostics });
            }
            let stderr = String::from_utf8_lossy(&run.stderr);
            let reason = if run.exit_code == Some(SANDBOX_FAILED_EXIT) {
                "the sandbox could not be set up".to_string()
            } else {
                match run.exit_code {
                    Some(code) => format!("cargo exited with {code}"),
                    None => "cargo was killed by a signal (a resource limit?)".to_string(),
                }
            };
            return Err(RustBuildError::Failed {
                message: format!("{reason}: {}", stderr.trim()),
            });
        }
        let wasm = messages.artifact.ok_or_else(|| RustBuildError::Failed {
            message: "cargo reported no component (is the crate a cdylib?)".into(),
        })?;
        let size = std::fs::metadata(&wasm).map_err(io("read", &wasm))?.len();
        if size > MAX_COMPONENT_BYTES {
            return Err(RustBuildError::Failed {
                message: format!(
                    "the component is {size} bytes, over the limit of {MAX_COMPONENT_BYTES}"
                ),
            });
        }
        let component = std::fs::read(&wasm).map_err(io("read", &wasm))?;
        tracing::info!(
            tenant,
            elapsed_ms = elapsed.as_millis() as u64,
            size_bytes = component.len(),
            "built a Rust module"
        );
        Ok(Built {
            component,
            warnings: diagnostics,
            elapsed,
        })
    }
}

/// `rustc --print sysroot`.
fn find_sysroot(rustc: Option<&Path>) -> Result<PathBuf, RustBuildError> {
    let rustc = rustc.unwrap_or_else(|| Path::new("rustc"));
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| RustBuildError::Unavailable {
            message: format!(
                "cannot run {}: {e}; install Rust with rustup",
                rustc.display()
            ),
        })?;
    if !output.status.success() {
        return Err(RustBuildError::Unavailable {
            message: format!(
                "{} --print sysroot failed: {}",
                rustc.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    ))
}

/// Writes `content` to `path` unless the file holds it already: cargo fingerprints path
/// dependencies by modification time, so rewriting the SDK would rebuild it every time.
fn write_file(path: &Path, content: &str) -> Result<(), RustBuildError> {
    if std::fs::read(path).is_ok_and(|existing| existing == content.as_bytes()) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    }
    std::fs::write(path, content).map_err(io("write", path))
}

/// A path as a TOML basic string.
fn toml_string(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

struct Run {
    success: bool,
    exit_code: Option<i32>,
    timed_out: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `command` (in its own process group), reading at most the first megabytes of its
/// output; after `timeout` the group is killed.
fn run_with_timeout(mut command: Command, timeout: Duration) -> Result<Run, RustBuildError> {
    let program = PathBuf::from(command.get_program());
    let mut child = command
        .spawn()
        .map_err(io("run the build sandbox", &program))?;
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_stdout = std::thread::spawn(move || read_capped(stdout, MAX_STDOUT_BYTES));
    let read_stderr = std::thread::spawn(move || read_capped(stderr, MAX_STDERR_BYTES));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().map_err(io("wait for", &program))? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                timed_out = true;
                kill_group(pid);
                break child.wait().map_err(io("wait for", &program))?;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    // The group's other processes (rustc) hold the pipes too; stop them all before reading
    // the output to its end.
    kill_group(pid);
    let stdout = read_stdout.join().unwrap_or_default();
    let stderr = read_stderr.join().unwrap_or_default();
    Ok(Run {
        success: status.success(),
        exit_code: status.code(),
        timed_out,
        stdout,
        stderr,
    })
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // The group may be gone already: nothing to do then.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Reads `from` to its end, keeping the first `cap` bytes.
fn read_capped(from: Option<impl std::io::Read>, cap: usize) -> Vec<u8> {
    let Some(from) = from else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut limited = from.take(cap as u64);
    let _ = limited.read_to_end(&mut kept);
    // Drain the rest so the writer never blocks on a full pipe.
    let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
    kept
}

/// What cargo's JSON messages say about the customer's package.
#[derive(Debug, Default)]
struct Messages {
    diagnostics: Vec<Diagnostic>,
    artifact: Option<PathBuf>,
}

#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    package_id: String,
    #[serde(default)]
    message: Option<RustcMessage>,
    #[serde(default)]
    target: Option<CargoTarget>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct CargoTarget {
    name: String,
}

#[derive(Deserialize)]
struct RustcMessage {
    message: String,
    level: String,
    #[serde(default)]
    spans: Vec<RustcSpan>,
    #[serde(default)]
    rendered: Option<String>,
}

#[derive(Deserialize)]
struct RustcSpan {
    file_name: String,
    line_start: u32,
    column_start: u32,
    is_primary: bool,
}

/// Whether cargo's `package_id` names the customer's package (`path+file:///…/module#0.0.0`
/// or the older `module 0.0.0 (path+file://…)`).
fn is_customer_package(package_id: &str) -> bool {
    package_id.contains(&format!("/{PACKAGE}#")) || package_id.starts_with(&format!("{PACKAGE} "))
}

fn parse_messages(stdout: &[u8]) -> Messages {
    let mut found = Messages::default();
    for line in stdout.split(|b| *b == b'\n') {
        let Ok(message) = serde_json::from_slice::<CargoMessage>(line) else {
            continue;
        };
        match message.reason.as_str() {
            "compiler-message" if is_customer_package(&message.package_id) => {
                let Some(m) = message.message else { continue };
                if m.level != "error" && m.level != "warning" {
                    continue;
                }
                // "aborting due to N previous errors" and the like carry no span.
                if m.spans.is_empty() && m.message.starts_with("aborting due to") {
                    continue;
                }
                let primary = m.spans.iter().find(|s| s.is_primary);
                found.diagnostics.push(Diagnostic {
                    level: m.level,
                    message: m.message,
                    file: primary.map(|s| s.file_name.clone()),
                    line: primary.map(|s| s.line_start),
                    column: primary.map(|s| s.column_start),
                    rendered: m.rendered.unwrap_or_default(),
                });
            }
            "compiler-artifact"
                if is_customer_package(&message.package_id)
                    && message.target.as_ref().is_some_and(|t| t.name == PACKAGE) =>
            {
                found.artifact = message
                    .filenames
                    .into_iter()
                    .find(|f| f.extension().is_some_and(|e| e == "wasm"));
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_messages_of_the_customer_package_become_diagnostics() {
        let stdout = br#"{"reason":"compiler-message","package_id":"path+file:///b/tenants/acme/module#0.0.0","message":{"message":"cannot find value `x` in this scope","level":"error","spans":[{"file_name":"src/lib.rs","line_start":7,"column_start":13,"is_primary":true}],"rendered":"error[E0425]: cannot find value `x`"}}
{"reason":"compiler-message","package_id":"registry+https://github.com/rust-lang/crates.io-index#serde_json@1.0.0","message":{"message":"a dependency's warning","level":"warning","spans":[],"rendered":"w"}}
{"reason":"compiler-message","package_id":"path+file:///b/tenants/acme/module#0.0.0","message":{"message":"aborting due to 1 previous error","level":"error","spans":[],"rendered":"error: aborting"}}
not json
{"reason":"compiler-artifact","package_id":"path+file:///b/tenants/acme/module#0.0.0","target":{"name":"module"},"filenames":["/b/target/wasm32-wasip2/release/module.wasm"]}
"#;
        let found = parse_messages(stdout);
        assert_eq!(found.diagnostics.len(), 1);
        let d = &found.diagnostics[0];
        assert_eq!(
            (d.file.as_deref(), d.line, d.column),
            (Some("src/lib.rs"), Some(7), Some(13))
        );
        assert_eq!(
            found.artifact.as_deref(),
            Some(Path::new("/b/target/wasm32-wasip2/release/module.wasm"))
        );
        assert_eq!(
            describe_compile_errors(&found.diagnostics),
            "1 compile error; the first: src/lib.rs:7:13: cannot find value `x` in this scope"
        );
    }

    #[test]
    fn only_the_customer_package_is_the_customers() {
        assert!(is_customer_package("path+file:///x/module#0.0.0"));
        assert!(is_customer_package("module 0.0.0 (path+file:///x/module)"));
        assert!(!is_customer_package(
            "path+file:///x/sdk/crates/sluice-sdk#0.1.0"
        ));
        assert!(!is_customer_package("registry+https://x#module-util@1.0.0"));
    }
}
