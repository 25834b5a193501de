//! `sluice`: the local loop for Sluice modules.
//!
//! Create a codec or router from a template, build it to a WebAssembly component, run its test
//! vectors on the production runtime, decode/encode/route single messages, inspect a component,
//! and see the sandbox at work in a self-contained demo.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

mod commands;
mod manifest;
mod output;
mod sandbox;

/// Runs customers' IoT codecs and routers as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "\
The local loop:
  sluice new codec my-codec        create a codec project from a template
  cd my-codec
  sluice build                     build it to target/sluice/my-codec.wasm and validate it
  sluice test                      run vectors.yaml on the production runtime
  sluice decode --module target/sluice/my-codec.wasm --hex \"00 EB 2D\"

See it run:
  sluice demo                      an embedded Cayenne LPP codec: throughput, latency, limits
  sluice serve --demo              the service, with a demo tenant and simulated devices"
)]
struct Cli {
    /// Diagnostics on stderr: a level (`error`, `warn`, `info`, `debug`, `trace`) for Sluice's
    /// own crates, or tracing directives such as `wasmtime=debug,sluice=trace`.
    #[arg(
        long,
        global = true,
        env = "RUST_LOG",
        hide_env_values = true,
        value_name = "FILTER"
    )]
    log_level: Option<String>,

    #[command(subcommand)]
    command: commands::Command,
}

/// The hidden subcommand that sandboxes a Rust build (`sluice_builder::sandbox_main`). It is
/// handled before argument parsing: its arguments are the sandbox's own, then cargo's.
pub const RUST_BUILD_SANDBOX: &str = "rust-build-sandbox";

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == RUST_BUILD_SANDBOX) {
        return sluice_builder::sandbox_main(args);
    }
    let cli = Cli::parse();
    // A worker hardens itself before anything else starts (no logging set-up, no threads).
    if matches!(cli.command, commands::Command::Worker) {
        return sluice_worker::worker_main();
    }
    let level = cli
        .log_level
        .clone()
        .unwrap_or_else(|| cli.command.default_log_level().to_string());
    init_tracing(&level);
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sends the CLI's own diagnostics to stderr; stdout stays for results.
///
/// A bare level (`debug`) applies to Sluice's own crates only, so the compiler's chatter does
/// not drown them; full directives (`wasmtime=debug,sluice=trace`) are taken as they are.
fn init_tracing(filter: &str) {
    let directives = match filter.trim().parse::<tracing::Level>() {
        Ok(level) => format!(
            "warn,sluice={level},sluice_runtime={level},sluice_vectors={level},\
             sluice_pipeline={level},sluice_connectors={level},sluice_server={level},\
             sluice_store={level}"
        ),
        Err(_) => filter.to_string(),
    };
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!("warning: ignoring log filter {filter:?}: {e}");
        EnvFilter::new("warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
}
