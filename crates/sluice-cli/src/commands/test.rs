//! `sluice test`: test vectors on the production runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use sluice_vectors::VectorFile;

use crate::commands::build;
use crate::manifest::Manifest;
use crate::output::{display_path, thousands};
use crate::sandbox;

/// Examples and notes shown after `sluice test --help`.
pub const AFTER_HELP: &str = "\
Examples:
  sluice test                                   build, then run ./vectors.yaml
  sluice test --dir my-codec                    the same for another project
  sluice test --module codec.wasm --vectors cases.yaml
  sluice test --module codec.js --vectors cases.yaml   a JavaScript codec, built first

Each vector runs on a fresh instance of the production runtime, with the [policy] of
sluice.toml when there is one. Prints `ok` or `FAIL` per vector, a diff under each failure
(- expected, + actual), and exits 1 when any vector failed. The format of vectors.yaml is
described in examples/README.md.";

/// Arguments of `sluice test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The project directory.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Test this component (or JavaScript codec, `.js`) instead of building the project.
    #[arg(long, value_name = "M.wasm|M.js")]
    module: Option<PathBuf>,
    /// The vector file [default: DIR/vectors.yaml].
    #[arg(long, value_name = "FILE")]
    vectors: Option<PathBuf>,
}

/// Runs `sluice test`.
pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let vectors_path = args
        .vectors
        .clone()
        .unwrap_or_else(|| args.dir.join("vectors.yaml"));
    // Check the vectors before a possibly long build.
    let file = VectorFile::load(&vectors_path)?;

    let module = match &args.module {
        Some(path) => {
            let manifest = Manifest::load_in(&args.dir)?;
            let name = manifest
                .as_ref()
                .map(|(m, _)| m.module.name.clone())
                .unwrap_or_else(|| sandbox::name_from_path(path));
            let policy = manifest.map(|(m, _)| m.policy).unwrap_or_default();
            let bytes = sandbox::read_component(path)?;
            let runtime = sandbox::runtime()?;
            sandbox::load(&runtime, &name, &bytes, policy)
                .map_err(anyhow::Error::new)
                .with_context(|| format!("{} does not load", path.display()))?
        }
        None => {
            let built = build::build(&args.dir)?;
            println!(
                "Built {} ({})",
                display_path(&built.wasm).display(),
                built.module.world()
            );
            built.module
        }
    };

    println!(
        "Running {} vectors from {} on {}",
        file.vectors.len(),
        display_path(&vectors_path).display(),
        module.module_ref()
    );
    let results = sluice_vectors::run(&module, &file);
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut failed = 0usize;
    for result in &results {
        if result.passed {
            println!(
                "ok   {:width$}  (fuel {})",
                result.name,
                thousands(result.fuel_consumed)
            );
        } else {
            failed += 1;
            println!("FAIL {}", result.name);
            if let Some(diff) = &result.diff {
                for line in diff.lines() {
                    println!("       {line}");
                }
            }
        }
    }
    let passed = results.len() - failed;
    println!();
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
