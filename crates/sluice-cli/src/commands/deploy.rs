//! `sluice deploy`: upload a module to a running `sluice serve` (built, validated and tested
//! there) and make it live.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::Args;
use serde_json::{Value, json};
use sluice_types::{ModulePolicy, World};

use super::build;
use super::remote::Remote;
use crate::manifest::{self, Manifest};
use crate::output::display_path;
use crate::sandbox;

/// Examples and notes shown after `sluice deploy --help`.
pub const AFTER_HELP: &str = "\
Examples:
  export SLUICE_TOKEN=$(cat sluice-demo-data/demo-token)
  sluice deploy                              build the project here, upload it, activate it
  sluice deploy lpp.js                       a JavaScript codec: the server builds it
  sluice deploy lpp.js --module lpp-js --vectors lpp.vectors.yaml
  sluice deploy codec.wasm --no-activate     upload a component, keep the live version
  sluice deploy --source                     send src/lib.rs: the server builds it (and keeps
                                             the source for its web editor)

The module (default: sluice.toml's name, else the file's name) is created when the tenant
has none of that name. The test vectors (default: vectors.yaml next to the code, when there is
one) are uploaded with the version and run by the server before it stores it: a failing vector
stores nothing. The server is --server (SLUICE_SERVER, default http://127.0.0.1:8080); the
token is --token (SLUICE_TOKEN).";

/// Arguments of `sluice deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    remote: Remote,
    /// A module project directory (built here first), a component (`.wasm`), or a JavaScript
    /// codec (`.js`, built by the server).
    #[arg(value_name = "PATH", default_value = ".")]
    path: PathBuf,
    /// The module's name on the server.
    #[arg(long)]
    module: Option<String>,
    /// Test vectors to upload with the version.
    #[arg(long, value_name = "FILE")]
    vectors: Option<PathBuf>,
    /// Upload the version without making it live.
    #[arg(long)]
    no_activate: bool,
    /// For a project: send its `src/lib.rs` for the server to build, instead of building
    /// here.
    #[arg(long)]
    source: bool,
}

/// What is uploaded.
struct Upload {
    name: String,
    world: World,
    /// `component_base64` or `js_source`, with the policy.
    code: Value,
    /// Where default vectors are looked for.
    dir: PathBuf,
}

/// Runs `sluice deploy`.
pub fn run(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let upload = prepare(&args)?;
    let name = &upload.name;
    let vectors_path = args.vectors.clone().or_else(|| {
        let default = upload.dir.join("vectors.yaml");
        default.is_file().then_some(default)
    });
    let mut body = upload.code.clone();
    if let Some(path) = &vectors_path {
        let yaml = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the vectors {}", path.display()))?;
        body["vectors_yaml"] = Value::String(yaml);
    }

    ensure_module(&args.remote, name, upload.world)?;
    let (status, answer) =
        args.remote
            .send("POST", &format!("/v1/modules/{name}/versions"), Some(body))?;
    if !(200..300).contains(&status) {
        return Err(upload_error(&args.path, status, &answer));
    }
    let version = answer["version"]
        .as_u64()
        .context("the server's answer has no version number")?;
    let sha = answer["sha256"].as_str().unwrap_or("");
    let tested = match &vectors_path {
        Some(path) => format!(", vectors of {} passed", display_path(path).display()),
        None => String::new(),
    };
    let fresh = if answer["created"] == json!(false) {
        " (identical to an existing version)"
    } else {
        ""
    };
    println!(
        "Uploaded {name} version {version}{fresh}, sha256 {}{tested}",
        sandbox::short_sha(sha)
    );
    if args.no_activate {
        println!(
            "Not activated (--no-activate); activate it with POST /v1/modules/{name}/versions/{version}/activate"
        );
    } else {
        args.remote.call(
            "POST",
            &format!("/v1/modules/{name}/versions/{version}/activate"),
            None,
        )?;
        println!("{name} version {version} is live");
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads, or builds, what `args.path` names.
fn prepare(args: &DeployArgs) -> anyhow::Result<Upload> {
    let path = &args.path;
    let parent = |p: &Path| {
        p.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    };
    if path.is_dir() && args.source {
        return source_upload(args, path);
    }
    if args.source {
        bail!(
            "--source takes a project directory (with sluice.toml and src/lib.rs), not {}",
            path.display()
        );
    }
    if path.is_dir() {
        let built = build::build(path)?;
        println!("Built {}", display_path(&built.wasm).display());
        let manifest = Manifest::load_in(path)?;
        let policy = manifest
            .as_ref()
            .map(|(m, _)| m.policy.clone())
            .unwrap_or_default();
        let name = args
            .module
            .clone()
            .or_else(|| manifest.map(|(m, _)| m.module.name))
            .unwrap_or_else(|| sandbox::name_from_path(&built.wasm));
        let bytes = sandbox::read_component(&built.wasm)?;
        return Ok(Upload {
            name,
            world: built.module.world(),
            code: component_body(&bytes, &policy)?,
            dir: path.clone(),
        });
    }
    let name = args
        .module
        .clone()
        .unwrap_or_else(|| sandbox::name_from_path(path));
    if sandbox::is_javascript(path) {
        let source = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the JavaScript codec {}", path.display()))?;
        return Ok(Upload {
            name,
            world: World::Codec,
            code: json!({ "js_source": source }),
            dir: parent(path),
        });
    }
    let bytes = sandbox::read_component(path)?;
    let runtime = sandbox::runtime()?;
    let module = sandbox::load(&runtime, &name, &bytes, ModulePolicy::default())
        .map_err(anyhow::Error::new)
        .with_context(|| format!("{} does not load", path.display()))?;
    Ok(Upload {
        name,
        world: module.world(),
        code: component_body(&bytes, &ModulePolicy::default())?,
        dir: parent(path),
    })
}

/// A project's `src/lib.rs`, its world and policy from `sluice.toml`, for the server to build.
fn source_upload(args: &DeployArgs, dir: &Path) -> anyhow::Result<Upload> {
    let Some((manifest, manifest_path)) = Manifest::load_in(dir)? else {
        bail!(
            "{} has no sluice.toml: --source needs it for the module's name and world",
            dir.display()
        );
    };
    let lib = dir.join("src/lib.rs");
    let source =
        std::fs::read_to_string(&lib).with_context(|| format!("cannot read {}", lib.display()))?;
    tracing::debug!(manifest = %manifest_path.display(), "sending the source");
    Ok(Upload {
        name: args.module.clone().unwrap_or(manifest.module.name),
        world: manifest.module.world,
        code: json!({
            "rust_source": source,
            "policy": serde_json::to_value(&manifest.policy).context("encoding the policy")?,
        }),
        dir: dir.to_path_buf(),
    })
}

fn component_body(bytes: &[u8], policy: &ModulePolicy) -> anyhow::Result<Value> {
    Ok(json!({
        "component_base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        "policy": serde_json::to_value(policy).context("encoding the policy")?,
    }))
}

/// Creates module `name` unless the tenant has it; one of another world is an error.
fn ensure_module(remote: &Remote, name: &str, world: World) -> anyhow::Result<()> {
    let world = manifest::world_name(world);
    let (status, module) = remote.send("GET", &format!("/v1/modules/{name}"), None)?;
    match status {
        200 => {
            let existing = module["world"].as_str().unwrap_or("");
            if existing != world {
                bail!("module `{name}` on the server is a {existing}, but this is a {world}");
            }
            Ok(())
        }
        404 => {
            remote.call(
                "POST",
                "/v1/modules",
                Some(json!({ "name": name, "world": world })),
            )?;
            println!("Created module {name} ({world})");
            Ok(())
        }
        _ => bail!(
            "GET /v1/modules/{name}: HTTP {status}: {}",
            module["error"]["message"].as_str().unwrap_or("")
        ),
    }
}

/// The error for a refused upload, in the terms of the file: `FILE:LINE:COLUMN: message` for
/// a syntax error, the failing vectors with their diffs.
fn upload_error(path: &Path, status: u16, answer: &Value) -> anyhow::Error {
    let code = answer["error"]["code"].as_str().unwrap_or("");
    let message = answer["error"]["message"].as_str().unwrap_or("");
    match code {
        "rust-compile-error" => {
            let mut text = format!("{message}:");
            for d in answer["diagnostics"].as_array().into_iter().flatten() {
                if d["level"] == "error" {
                    text.push_str(&format!(
                        "\n\n{}",
                        d["rendered"].as_str().unwrap_or("").trim_end()
                    ));
                }
            }
            anyhow::anyhow!(text)
        }
        "js-syntax-error" => {
            let detail = message.split_once(": ").map_or(message, |(_, m)| m);
            anyhow::anyhow!(
                "{}:{}:{}: {detail}",
                path.display(),
                answer["line"],
                answer["column"]
            )
        }
        "vectors-failed" => {
            let mut text = format!("{message}:");
            for failure in answer["failures"].as_array().into_iter().flatten() {
                text.push_str(&format!(
                    "\n  FAIL {}\n{}",
                    failure["name"].as_str().unwrap_or("?"),
                    indent(failure["diff"].as_str().unwrap_or(""))
                ));
            }
            anyhow::anyhow!(text)
        }
        _ => anyhow::anyhow!("the server refused the upload (HTTP {status}, {code}): {message}"),
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>()
        .trim_end()
        .to_string()
}
