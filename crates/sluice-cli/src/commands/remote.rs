//! Commands that talk to a running `sluice serve` over its HTTP API: bindings (pause,
//! resume, status), the dead-letter queue (list, replay) and tenants' throttle budgets.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Examples shown after `sluice binding --help`.
pub const BINDING_AFTER_HELP: &str = "\
Examples:
  export SLUICE_TOKEN=$(cat sluice-demo-data/demo-token)
  sluice binding list
  sluice binding pause lpp          messages wait, unacknowledged, until resumed
  sluice binding status lpp         pause, queue, quarantine, restarts, throttling
  sluice binding resume lpp

The server is --server (SLUICE_SERVER, default http://127.0.0.1:8080); the token is --token
(SLUICE_TOKEN).";

/// Examples shown after `sluice dlq --help`.
pub const DLQ_AFTER_HELP: &str = "\
Examples:
  sluice dlq list --binding lpp
  sluice dlq replay --binding lpp   after activating a fixed codec version
  sluice dlq replay --id 12 --id 13";

/// Examples shown after `sluice tenant --help`.
pub const TENANT_AFTER_HELP: &str = "\
Examples (with an admin token, e.g. SLUICE_TOKEN=$(cat <data-dir>/admin-token)):
  sluice tenant show acme
  sluice tenant throttle acme --messages-per-second 500 --fuel-per-second 200000000
  sluice tenant throttle acme --clear

A tenant's budget is shared by all its bindings; over budget, messages wait (none is dropped).";

/// Where the server is and who is asking.
#[derive(Debug, Args)]
pub struct Remote {
    /// The server's base URL.
    #[arg(
        long,
        env = "SLUICE_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// An API token (tenant or read-only scope).
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
}

/// Arguments of `sluice binding`.
#[derive(Debug, Args)]
pub struct BindingArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    action: BindingAction,
}

#[derive(Debug, Subcommand)]
enum BindingAction {
    /// List the tenant's bindings.
    List,
    /// Show a binding's spec.
    Show {
        /// The binding.
        name: String,
    },
    /// Pause a binding: its messages wait, unacknowledged, until it is resumed.
    Pause {
        /// The binding.
        name: String,
    },
    /// Resume a paused binding: it takes its waiting messages in order.
    Resume {
        /// The binding.
        name: String,
    },
    /// A binding's worker now: pause, queue, quarantine, restarts, throttling.
    Status {
        /// The binding.
        name: String,
    },
}

/// Arguments of `sluice dlq`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    action: DlqAction,
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// List dead letters, oldest first.
    List {
        /// Only this binding's.
        #[arg(long)]
        binding: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Run dead letters through their bindings again (all of them, a binding's, or by id).
    Replay {
        /// Only this binding's.
        #[arg(long)]
        binding: Option<String>,
        /// These entries.
        #[arg(long = "id")]
        ids: Vec<i64>,
    },
}

/// Arguments of `sluice tenant`.
#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    action: TenantAction,
}

#[derive(Debug, Subcommand)]
enum TenantAction {
    /// Show a tenant, with its throttle budget if it has one.
    Show {
        /// The tenant id.
        tenant: String,
    },
    /// Set the tenant-wide throttle budget, or remove it with --clear.
    Throttle {
        /// The tenant id.
        tenant: String,
        /// Messages per second over all the tenant's bindings.
        #[arg(long)]
        messages_per_second: Option<f64>,
        /// Guest fuel per second over all the tenant's bindings.
        #[arg(long)]
        fuel_per_second: Option<u64>,
        /// How many seconds' worth of each rate may be spent at once (default 1).
        #[arg(long)]
        burst_seconds: Option<f64>,
        /// Remove the budget.
        #[arg(long, conflicts_with_all = ["messages_per_second", "fuel_per_second", "burst_seconds"])]
        clear: bool,
    },
}

impl Remote {
    /// Sends a request and returns the answer when it is a success; an error answer becomes
    /// an error carrying the server's message.
    pub(super) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.send(method, path, body)?;
        if !(200..300).contains(&status) {
            let message = value["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            bail!("{method} {path}: HTTP {status}: {message}");
        }
        Ok(value)
    }

    /// Sends a request and returns the status and the answer (JSON, or the text as a string),
    /// whatever the status.
    pub(super) fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let token = self
            .token
            .as_deref()
            .context("no API token: pass --token or set SLUICE_TOKEN")?;
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        // Uploads are built and tested before the server answers (a tenant's first Rust
        // build compiles the SDK's dependencies): allow for that.
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(900))
            .build()
            .context("creating the HTTP client")?;
        let mut request = client
            .request(method.parse().context("HTTP method")?, &url)
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status().as_u16();
        let text = response.text().context("reading the answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }
}

fn print(value: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

/// Runs `sluice binding`.
pub fn binding(args: BindingArgs) -> anyhow::Result<ExitCode> {
    let r = &args.remote;
    match args.action {
        BindingAction::List => {
            let answer = r.call("GET", "/v1/bindings", None)?;
            for b in answer["bindings"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} codec {:<20} router {:<16} {}",
                    b["name"].as_str().unwrap_or("?"),
                    b["codec"].as_str().unwrap_or("?"),
                    b["router"].as_str().unwrap_or("-"),
                    if b["paused"] == true {
                        "paused"
                    } else {
                        "running"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BindingAction::Show { name } => {
            print(&r.call("GET", &format!("/v1/bindings/{name}"), None)?)
        }
        BindingAction::Pause { name } => {
            r.call("POST", &format!("/v1/bindings/{name}/pause"), None)?;
            println!("binding `{name}` paused: its messages wait, unacknowledged");
            Ok(ExitCode::SUCCESS)
        }
        BindingAction::Resume { name } => {
            r.call("POST", &format!("/v1/bindings/{name}/resume"), None)?;
            println!("binding `{name}` resumed");
            Ok(ExitCode::SUCCESS)
        }
        BindingAction::Status { name } => {
            print(&r.call("GET", &format!("/v1/bindings/{name}/status"), None)?)
        }
    }
}

/// Runs `sluice dlq`.
pub fn dlq(args: DlqArgs) -> anyhow::Result<ExitCode> {
    let r = &args.remote;
    match args.action {
        DlqAction::List { binding, limit } => {
            let mut path = format!("/v1/dlq?limit={limit}");
            if let Some(b) = &binding {
                path.push_str(&format!("&binding={b}"));
            }
            let answer = r.call("GET", &path, None)?;
            for e in answer["dead_letters"].as_array().into_iter().flatten() {
                println!(
                    "{:>6}  {:<16} {:<20} {:<18} {}",
                    e["id"],
                    e["binding"].as_str().unwrap_or("?"),
                    e["uplink"]["device_id"].as_str().unwrap_or("?"),
                    e["failure_kind"].as_str().unwrap_or("?"),
                    e["failure"]["message"]
                        .as_str()
                        .or_else(|| e["failure"]["error"]["message"].as_str())
                        .unwrap_or("")
                );
            }
            println!("{} dead letter(s) in all", answer["depth"]);
            Ok(ExitCode::SUCCESS)
        }
        DlqAction::Replay { binding, ids } => {
            let mut body = json!({});
            if let Some(b) = binding {
                body["binding"] = json!(b);
            }
            if !ids.is_empty() {
                body["ids"] = json!(ids);
            }
            let answer = r.call("POST", "/v1/dlq/replay", Some(body))?;
            println!(
                "replayed {}: {} delivered, {} dropped, {} dead-lettered again, {} not replayed",
                answer["replayed"],
                answer["delivered"],
                answer["dropped"],
                answer["dead_lettered"],
                answer["not_replayed"]
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `sluice tenant`.
pub fn tenant(args: TenantArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    match args.action {
        TenantAction::Show { tenant } => {
            print(&remote.call("GET", &format!("/v1/tenants/{tenant}"), None)?)
        }
        TenantAction::Throttle {
            tenant,
            clear: true,
            ..
        } => print(&remote.call("DELETE", &format!("/v1/tenants/{tenant}/throttle"), None)?),
        TenantAction::Throttle {
            tenant,
            messages_per_second,
            fuel_per_second,
            burst_seconds,
            clear: false,
        } => {
            if messages_per_second.is_none() && fuel_per_second.is_none() {
                bail!("give --messages-per-second and/or --fuel-per-second, or --clear");
            }
            let mut body = serde_json::Map::new();
            if let Some(rate) = messages_per_second {
                body.insert("messages_per_second".into(), json!(rate));
            }
            if let Some(rate) = fuel_per_second {
                body.insert("fuel_per_second".into(), json!(rate));
            }
            if let Some(burst) = burst_seconds {
                body.insert("burst_seconds".into(), json!(burst));
            }
            print(&remote.call(
                "PUT",
                &format!("/v1/tenants/{tenant}/throttle"),
                Some(Value::Object(body)),
            )?)
        }
    }
}
