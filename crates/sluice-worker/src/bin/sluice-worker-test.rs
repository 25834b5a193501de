//! A worker executable for the integration tests: what the `sluice` binary's hidden `worker`
//! subcommand does in production.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Logs go to stderr, as in production; the subscriber is set up before hardening.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    sluice_worker::worker_main()
}
