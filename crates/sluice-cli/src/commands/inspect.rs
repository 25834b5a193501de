//! `sluice inspect`: what a component is, and whether the runtime would load it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;
use sluice_runtime::ComponentInfo;

use crate::manifest::Manifest;
use crate::output::size;
use crate::sandbox;

/// Examples and notes shown after `sluice inspect --help`.
pub const AFTER_HELP: &str = "\
Examples:
  sluice inspect target/sluice/my-codec.wasm
  sluice inspect module.wasm --json | jq .imports
  sluice inspect module.wasm --manifest sluice.toml

Describes the component even when a policy would refuse its imports, and says whether it loads
under the default policy (or the manifest's). Exits 1 for a binary that is not a valid Sluice
component at all (not wasm, a core module, no codec/router exports).";

/// Arguments of `sluice inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The component.
    #[arg(value_name = "M.wasm")]
    module: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Check loading under the [policy] of this manifest instead of the default policy.
    #[arg(long, value_name = "sluice.toml")]
    manifest: Option<PathBuf>,
}

/// The JSON shape of `inspect --json`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    info: &'a ComponentInfo,
    /// The WIT world, in full (`sluice:codec/codec@0.1.0`).
    wit_world: String,
    /// `None` when the module loads under the policy, else why not.
    policy_error: Option<String>,
}

/// Runs `sluice inspect`.
pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes = sandbox::read_component(&args.module)?;
    let policy = match &args.manifest {
        Some(path) => Manifest::load(path)?.policy,
        None => Default::default(),
    };
    let runtime = sandbox::runtime()?;
    let info = runtime
        .inspect(&bytes)
        .with_context(|| format!("{} is not a Sluice component", args.module.display()))?;
    let name = sandbox::name_from_path(&args.module);
    let policy_error = sandbox::load(&runtime, &name, &bytes, policy)
        .err()
        .map(|failure| match failure {
            sluice_types::GuestFailure::Rejected { error, .. } => error.to_string(),
            other => other.to_string(),
        });

    if args.json {
        let report = Report {
            info: &info,
            wit_world: info.world.to_string(),
            policy_error,
        };
        let text = serde_json::to_string_pretty(&report).context("cannot print JSON")?;
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", args.module.display());
    println!("  world    {}", info.world);
    println!("  size     {}", size(info.size_bytes));
    println!("  sha256   {}", info.sha256);
    println!("  exports  {}", info.exports.join(", "));
    println!("  imports  {}", info.imports.len());
    for import in &info.imports {
        println!("    {import}");
    }
    let under = if args.manifest.is_some() {
        "the manifest's policy"
    } else {
        "the default policy"
    };
    match policy_error {
        None => println!("  loads    yes, under {under}"),
        Some(error) => println!("  loads    no, under {under}: {error}"),
    }
    Ok(ExitCode::SUCCESS)
}
