//! The subcommands: one module each, plus the dispatch.

use std::process::ExitCode;

use clap::Subcommand;

mod build;
mod call;
mod demo;
mod deploy;
mod inspect;
mod new;
mod remote;
mod serve;
mod serve_demo;
mod test;

/// What `sluice` can do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a codec or router project from a template that builds and tests green.
    #[command(after_help = new::AFTER_HELP)]
    New(new::NewArgs),
    /// Build the module in a directory to a component and validate it with the runtime.
    #[command(after_help = build::AFTER_HELP)]
    Build(build::BuildArgs),
    /// Run test vectors on the production runtime (builds first unless given --module).
    #[command(after_help = test::AFTER_HELP)]
    Test(test::TestArgs),
    /// Decode one uplink frame with a codec and print the document.
    #[command(after_help = call::DECODE_AFTER_HELP)]
    Decode(call::DecodeArgs),
    /// Encode one downlink document with a codec and print the frame.
    #[command(after_help = call::ENCODE_AFTER_HELP)]
    Encode(call::EncodeArgs),
    /// Route one decoded document with a router and print the decisions.
    #[command(after_help = call::ROUTE_AFTER_HELP)]
    Route(call::RouteArgs),
    /// Describe a component: world, imports, exports, size, hash, and whether it would load.
    #[command(after_help = inspect::AFTER_HELP)]
    Inspect(inspect::InspectArgs),
    /// Run an embedded Cayenne LPP codec: load time, throughput, latency, limits.
    #[command(after_help = demo::AFTER_HELP)]
    Demo(demo::DemoArgs),
    /// Run the service: HTTP API, registry, pipeline, MQTT/NATS ingest and sinks.
    #[command(after_help = serve::AFTER_HELP)]
    Serve(serve::ServeArgs),
    /// Upload a module (project, component or JavaScript codec) to a running service, tested
    /// there, and make it live.
    #[command(after_help = deploy::AFTER_HELP)]
    Deploy(deploy::DeployArgs),
    /// Manage a running service's bindings: list, show, pause, resume, status.
    #[command(after_help = remote::BINDING_AFTER_HELP)]
    Binding(remote::BindingArgs),
    /// A running service's dead-letter queue: list, replay.
    #[command(after_help = remote::DLQ_AFTER_HELP)]
    Dlq(remote::DlqArgs),
    /// A running service's tenants (admin token): show one, set or clear its throttle budget.
    #[command(after_help = remote::TENANT_AFTER_HELP)]
    Tenant(remote::TenantArgs),
    /// A tenant's sandboxed worker process; started by `sluice serve`, not by hand.
    #[command(hide = true)]
    Worker,
}

impl Command {
    /// The log level used when none is given: the service logs its work, the tools stay
    /// quiet.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Serve(_) => "info",
            _ => "warn",
        }
    }
}

/// Runs one command; `Ok` carries the exit code (a failed vector is not an error of the CLI).
pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::New(args) => new::run(args),
        Command::Build(args) => build::run(args),
        Command::Test(args) => test::run(args),
        Command::Decode(args) => call::decode(args),
        Command::Encode(args) => call::encode(args),
        Command::Route(args) => call::route(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Deploy(args) => deploy::run(args),
        Command::Binding(args) => remote::binding(args),
        Command::Dlq(args) => remote::dlq(args),
        Command::Tenant(args) => remote::tenant(args),
        Command::Worker => Ok(sluice_worker::worker_main()),
    }
}
