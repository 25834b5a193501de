//! `sluice serve`: the service. The registry on embedded SQLite, the HTTP API, the pipeline,
//! and the MQTT / NATS connections, with a graceful shutdown that settles what is in flight.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde::Deserialize;
use sluice_connectors::SinkContext;
use sluice_connectors::mqtt::{MqttPublisher, MqttSettings};
use sluice_connectors::nats::{NatsPublisher, NatsSettings};
use sluice_pipeline::{Isolation, Metrics, Pipeline, PipelineConfig, SpawnOptions, WorkerOptions};
use sluice_runtime::{Runtime, RuntimeConfig};
use sluice_server::AppState;
use sluice_store::{Store, TokenScope};

use super::serve_demo;

/// Examples and notes shown after `sluice serve --help`.
pub const AFTER_HELP: &str = "\
Examples:
  sluice serve --demo                          everything on the embedded defaults, with a
                                               demo tenant, codecs and a simulated device feed
  sluice serve --config sluice.toml
  sluice serve --listen 0.0.0.0:8080 --mqtt mqtt://127.0.0.1:1883

The data directory holds the SQLite database (sluice.db), the compiled-module cache and the
file sinks. On first start an admin API token is created and written to <data-dir>/admin-token.
Flags and SLUICE_* variables override the config file. SIGINT/SIGTERM stop intake, settle
what is queued and in flight (up to --drain-timeout), then acknowledge and exit.";

/// Arguments of `sluice serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML config file (see docs/operations.md).
    #[arg(long, env = "SLUICE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address of the HTTP API and metrics (port 0 picks a free one).
    #[arg(long, env = "SLUICE_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Where the database, the module cache and file sinks live.
    #[arg(long, env = "SLUICE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// MQTT broker to subscribe and publish on (`mqtt://host:port`).
    #[arg(long, env = "SLUICE_MQTT_URL", value_name = "URL")]
    mqtt: Option<String>,
    /// MQTT client id prefix (`<id>-in`, `<id>-out`); keep it fixed across restarts.
    #[arg(long, env = "SLUICE_MQTT_CLIENT_ID", value_name = "ID")]
    mqtt_client_id: Option<String>,
    /// NATS server (`nats://host:port`).
    #[arg(long, env = "SLUICE_NATS_URL", value_name = "URL")]
    nats: Option<String>,
    /// Where guest code runs: `process` (the default: one sandboxed worker process per
    /// tenant), or `in-process`.
    #[arg(long, env = "SLUICE_ISOLATION", value_name = "MODE")]
    isolation: Option<IsolationMode>,
    /// Longest wait for in-flight messages at shutdown, in seconds.
    #[arg(long, value_name = "SECONDS")]
    drain_timeout: Option<u64>,
    /// Build Rust sources uploaded as `rust_source`: `auto` (when a Rust toolchain with the
    /// wasm32-wasip2 target is found), `on` (refuse to start without one) or `off`.
    #[arg(
        long,
        env = "SLUICE_RUST_BUILDS",
        value_name = "MODE",
        default_value = "auto"
    )]
    rust_builds: RustBuilds,
    /// Where Rust builds keep the SDK copy, the vendored crates and each tenant's target
    /// directory [default: DATA_DIR/rust-builds].
    #[arg(long, env = "SLUICE_RUST_BUILDS_DIR", value_name = "DIR")]
    rust_builds_dir: Option<PathBuf>,
    /// Start with a demo tenant, the example codecs and a simulated device feed.
    #[arg(long)]
    demo: bool,
    /// Messages per second of the demo's simulated devices.
    #[arg(long, default_value_t = 2.0, value_name = "RATE")]
    demo_rate: f64,
    /// Stop (gracefully) after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    run_for: Option<u64>,
}

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    runtime: RuntimeSection,
    #[serde(default)]
    pipeline: PipelineConfig,
    #[serde(default)]
    mqtt: Option<MqttSettings>,
    #[serde(default)]
    nats: Option<NatsSettings>,
    #[serde(default)]
    isolation: IsolationSection,
}

/// Whether the service builds Rust sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RustBuilds {
    /// When the machine has a Rust toolchain with the wasm32-wasip2 target.
    Auto,
    /// Always; the service does not start without a toolchain.
    On,
    /// Never: uploads of `rust_source` answer 501.
    Off,
}

/// Where guest code runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationMode {
    /// In the service's process: for development and single-tenant installs.
    InProcess,
    /// In one sandboxed worker process per tenant: no tenant's code shares a process with
    /// another's.
    #[default]
    Process,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IsolationSection {
    #[serde(default)]
    mode: IsolationMode,
    /// `RLIMIT_DATA` of a worker process, in bytes.
    #[serde(default = "default_worker_data")]
    max_data_bytes: u64,
}

fn default_worker_data() -> u64 {
    4 * 1024 * 1024 * 1024
}

impl Default for IsolationSection {
    fn default() -> Self {
        Self {
            mode: IsolationMode::default(),
            max_data_bytes: default_worker_data(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default = "default_drain")]
    drain_timeout_s: u64,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("sluice-data")
}
fn default_drain() -> u64 {
    30
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            drain_timeout_s: default_drain(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeSection {
    #[serde(default = "default_instances")]
    max_instances: u32,
    #[serde(default = "default_tick")]
    epoch_tick_ms: u64,
}

fn default_instances() -> u32 {
    256
}
fn default_tick() -> u64 {
    2
}

impl Default for RuntimeSection {
    fn default() -> Self {
        Self {
            max_instances: default_instances(),
            epoch_tick_ms: default_tick(),
        }
    }
}

impl ServeConfig {
    /// Reads `path`; unknown keys and bad values are errors with the line and key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// Parses and checks a config.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: ServeConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(config)
    }

    /// Checks every value; all problems are reported at once.
    fn validate(&self) -> anyhow::Result<SocketAddr> {
        let mut problems = Vec::new();
        let listen = self.server.listen.parse::<SocketAddr>();
        if listen.is_err() {
            problems.push(format!(
                "server.listen: `{}` is not an address like 127.0.0.1:8080",
                self.server.listen
            ));
        }
        if self.pipeline.queue_capacity == 0 {
            problems.push("pipeline.queue_capacity: must be at least 1".to_string());
        }
        if self.pipeline.max_in_flight == 0 {
            problems.push("pipeline.max_in_flight: must be at least 1".to_string());
        }
        if self.runtime.max_instances == 0 {
            problems.push("runtime.max_instances: must be at least 1".to_string());
        }
        if self.runtime.epoch_tick_ms == 0 || self.runtime.epoch_tick_ms > 1000 {
            problems.push("runtime.epoch_tick_ms: must be between 1 and 1000".to_string());
        }
        if let Some(mqtt) = &self.mqtt
            && let Err(e) = mqtt.host_port()
        {
            problems.push(e.to_string());
        }
        if let Some(nats) = &self.nats
            && !nats.url.starts_with("nats://")
        {
            problems.push(format!(
                "nats.url `{}`: must start with `nats://`",
                nats.url
            ));
        }
        match listen {
            Ok(addr) if problems.is_empty() => Ok(addr),
            _ => bail!(
                "the configuration has {} problem(s):\n  {}",
                problems.len(),
                problems.join("\n  ")
            ),
        }
    }
}

/// Runs `sluice serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => ServeConfig::load(path)?,
        None => ServeConfig::default(),
    };
    if let Some(listen) = &args.listen {
        config.server.listen = listen.clone();
    }
    if let Some(dir) = &args.data_dir {
        config.server.data_dir = dir.clone();
    } else if args.demo && args.config.is_none() {
        config.server.data_dir = PathBuf::from("sluice-demo-data");
    }
    if let Some(url) = &args.mqtt {
        let mut settings = config.mqtt.take().unwrap_or_else(|| MqttSettings::new(url));
        settings.url = url.clone();
        config.mqtt = Some(settings);
    }
    if let (Some(id), Some(mqtt)) = (&args.mqtt_client_id, config.mqtt.as_mut()) {
        mqtt.client_id = id.clone();
    }
    if let Some(url) = &args.nats {
        config.nats = Some(NatsSettings { url: url.clone() });
    }
    if let Some(mode) = args.isolation {
        config.isolation.mode = mode;
    }
    if let Some(s) = args.drain_timeout {
        config.server.drain_timeout_s = s;
    }
    let listen = config.validate()?;

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice-io")
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(serve(config, listen, &args))
}

/// The Rust builder in `dir`, sandboxed by this executable's `rust-build-sandbox`; `None`
/// when builds are off, or unavailable in `auto` mode.
async fn rust_builder(
    mode: RustBuilds,
    dir: &Path,
) -> anyhow::Result<Option<std::sync::Arc<sluice_builder::RustBuilder>>> {
    if mode == RustBuilds::Off {
        return Ok(None);
    }
    let exe = std::env::current_exe().context("locating the sluice executable")?;
    let config = sluice_builder::BuilderConfig::new(
        dir,
        vec![
            exe.to_string_lossy().into_owned(),
            crate::RUST_BUILD_SANDBOX.to_string(),
        ],
    );
    let built = tokio::task::spawn_blocking(move || sluice_builder::RustBuilder::new(config))
        .await
        .context("preparing Rust builds")?;
    match built {
        Ok(builder) => {
            tracing::info!(sysroot = %builder.sysroot().display(), "Rust sources are built here (rust_source)");
            Ok(Some(std::sync::Arc::new(builder)))
        }
        Err(e) if mode == RustBuilds::Auto => {
            tracing::warn!("Rust sources will not be built here: {e}");
            Ok(None)
        }
        Err(e) => Err(e).context("--rust-builds on"),
    }
}

async fn serve(
    config: ServeConfig,
    listen: SocketAddr,
    args: &ServeArgs,
) -> anyhow::Result<ExitCode> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let db_path = data_dir.join("sluice.db");
    let store = Store::open(&db_path)
        .with_context(|| format!("cannot open the database {}", db_path.display()))?;
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: config.runtime.max_instances,
        epoch_tick: Duration::from_millis(config.runtime.epoch_tick_ms),
        cache_dir: Some(data_dir.join("cache")),
        ..RuntimeConfig::default()
    })
    .context("cannot start the wasm runtime")?;

    let mut sinks = SinkContext::new(data_dir.join("sinks"));
    if let Some(mqtt) = &config.mqtt {
        sinks.mqtt = Some(MqttPublisher::start(mqtt)?);
    }
    if let Some(nats) = &config.nats {
        sinks.nats = Some(NatsPublisher::connect(nats).await?);
    }
    let isolation = match config.isolation.mode {
        IsolationMode::InProcess => Isolation::InProcess,
        IsolationMode::Process => {
            let exe = std::env::current_exe().context("finding the sluice executable")?;
            let worker = WorkerOptions {
                cache_dir: Some(data_dir.join("worker-cache")),
                max_instances: config.runtime.max_instances,
                max_data_bytes: config.isolation.max_data_bytes,
                ..WorkerOptions::default()
            };
            Isolation::Process(Box::new(
                SpawnOptions::new(exe, worker).with_args(["worker"]),
            ))
        }
    };
    let pipeline = Pipeline::new(
        store.clone(),
        runtime.clone(),
        sinks.clone(),
        Metrics::new(),
        config.pipeline,
    )
    .with_isolation(isolation);

    let admin_token = bootstrap_admin(&store, data_dir)?;
    let demo = if args.demo {
        Some(
            serve_demo::setup(&store, data_dir, config.mqtt.is_some())
                .context("setting up the demo")?,
        )
    } else {
        None
    };
    // The bindings and their routes first: a message the broker redelivers the moment the
    // subscriber connects must find its binding.
    pipeline.refresh().await.context("starting the bindings")?;
    if let Some(mqtt) = &config.mqtt {
        pipeline.attach_mqtt(mqtt.clone());
    }
    if let Some(nats) = &sinks.nats {
        pipeline.attach_nats(nats.clone());
    }
    pipeline
        .refresh()
        .await
        .context("subscribing to the bindings' sources")?;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    let mut state = AppState::new(store.clone(), runtime).with_pipeline(pipeline.clone());
    let builds_dir = args
        .rust_builds_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("rust-builds"));
    if let Some(builder) = rust_builder(args.rust_builds, &builds_dir).await? {
        state = state.with_rust_builder(builder);
    }
    let app = sluice_server::router(state);
    println!("sluice: listening on http://{bound}");
    println!("sluice: editor at http://{bound}/editor/");
    println!("sluice: data directory {}", data_dir.display());
    if let Some(path) = &admin_token {
        println!("sluice: admin token written to {}", path.display());
    }
    if let Some(demo) = &demo {
        serve_demo::print_banner(demo, bound, data_dir, config.mqtt.as_ref());
    }
    tracing::info!(%bound, isolation = ?config.isolation.mode, mqtt = config.mqtt.as_ref().map(|m| m.url.as_str()), nats = config.nats.as_ref().map(|n| n.url.as_str()), "sluice serve started");

    let feed = demo
        .as_ref()
        .map(|d| serve_demo::spawn_feed(pipeline.clone(), d, args.demo_rate));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run_for = args.run_for;
    tokio::spawn(async move {
        wait_for_stop(run_for).await;
        let _ = stop_tx.send(true);
    });
    let mut server_stop = stop_rx.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = server_stop.wait_for(|stop| *stop).await;
        })
        .await
        .context("the HTTP server failed")?;
    if let Some(feed) = feed {
        feed.abort();
    }
    tracing::info!("stopping: settling queued and in-flight messages");
    pipeline
        .shutdown(Duration::from_secs(config.server.drain_timeout_s))
        .await;
    if let Some(nats) = &sinks.nats {
        nats.close().await;
    }
    println!("sluice: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Waits for SIGINT, SIGTERM, or the end of `run_for` seconds.
async fn wait_for_stop(run_for: Option<u64>) {
    let timer = async {
        match run_for {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminate = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate => tracing::info!("SIGTERM received"),
        _ = timer => tracing::info!("run time over"),
    }
}

/// Creates an admin token when the database has none that is live, and writes it to
/// `<data_dir>/admin-token` (mode 0600). Returns the file's path when a token was created.
fn bootstrap_admin(store: &Store, data_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let live_admin = store
        .list_tokens(None)?
        .iter()
        .any(|t| t.scope == TokenScope::Admin && t.revoked_at_ms.is_none());
    if live_admin {
        return Ok(None);
    }
    let (_, secret) = store.create_token(None, TokenScope::Admin)?;
    let path = data_dir.join("admin-token");
    write_secret(&path, &secret)?;
    Ok(Some(path))
}

/// Writes `secret` to `path`, readable by the owner only.
pub fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{secret}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = ServeConfig::parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n")
            .expect_err("unknown key");
        let text = format!("{err:#}");
        assert!(text.contains("lisen"), "{text}");
        assert!(text.contains("line 3"), "{text}");
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let config = ServeConfig::parse(
            "[server]\nlisten = \"nowhere\"\n[pipeline]\nqueue_capacity = 0\n[mqtt]\nurl = \"mqtts://x\"\n",
        )
        .expect("parses");
        let text = format!("{:#}", config.validate().expect_err("invalid"));
        assert!(text.contains("3 problem(s)"), "{text}");
        assert!(text.contains("server.listen"), "{text}");
        assert!(text.contains("pipeline.queue_capacity"), "{text}");
        assert!(text.contains("mqtt.url"), "{text}");
    }

    #[test]
    fn an_empty_config_is_the_embedded_defaults() {
        let config = ServeConfig::parse("").expect("parses");
        assert_eq!(
            config.validate().expect("valid"),
            "127.0.0.1:8080".parse::<SocketAddr>().expect("addr")
        );
        assert!(config.mqtt.is_none());
        assert_eq!(config.pipeline, PipelineConfig::default());
    }
}
