//! `sluice decode`, `encode` and `route`: one call of a module, as the server would make it.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::Args;
use sluice_runtime::{CallOutcome, Instance, InstanceEnv};
use sluice_types::{Document, Downlink, Uplink};
use sluice_vectors::{DEFAULT_DEVICE_ID, parse_hex};

use crate::manifest::Manifest;
use crate::sandbox;

/// Examples and notes shown after `sluice decode --help`.
pub const DECODE_AFTER_HELP: &str = "\
Examples:
  sluice decode --module cayenne_lpp.wasm --hex \"03 67 01 10 05 67 00 FF\"
  sluice decode --module cayenne_lpp.wasm --base64 A2cBEAVnAP8= --compact
  sluice decode --module my.wasm --file frame.bin --port 2 --metadata rssi=-97
  echo 03670110 | sluice decode --module cayenne_lpp.wasm

Without --hex, --base64 or --file the frame is read from stdin: as hex when it looks like hex,
else as raw bytes. The document goes to stdout; the guest's log lines go to stderr as
`[module] LEVEL message`. A failure (typed codec error, trap, limit) is printed as `error: ...`
and exits 1.";

/// Examples and notes shown after `sluice encode --help`.
pub const ENCODE_AFTER_HELP: &str = "\
Examples:
  sluice encode --module cayenne_lpp.wasm --document '{\"temperature_3\": 27.2}'
  sluice encode --module my.wasm --document @downlink.json --port 10

Prints the port the codec chose and the frame as hex.";

/// Examples and notes shown after `sluice route --help`.
pub const ROUTE_AFTER_HELP: &str = "\
Examples:
  sluice route --module threshold_router.wasm --document '{\"temperature\": 31.5}'
  sluice route --module router.wasm --document @decoded.json --config temperature_max=25 \\
      --metadata site=lab --hex 01670110

Prints the decisions as JSON: one per output, with the replacement document or the drop reason.";

/// What every call takes: the module, the message envelope and the binding config.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The component to run (e.g. `target/sluice/NAME.wasm` from `sluice build`).
    #[arg(long, short, value_name = "M.wasm")]
    module: PathBuf,
    /// The application port (LoRaWAN fPort).
    #[arg(long, default_value_t = 1)]
    port: u16,
    /// The device id the module sees.
    #[arg(long, value_name = "ID", default_value = DEFAULT_DEVICE_ID)]
    device: String,
    /// Binding configuration the module reads (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_pair)]
    config: Vec<(String, String)>,
    /// Message metadata (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_pair)]
    metadata: Vec<(String, String)>,
    /// Run under the [policy] of this module manifest instead of the default policy.
    #[arg(long, value_name = "sluice.toml")]
    manifest: Option<PathBuf>,
}

/// Arguments of `sluice decode`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").multiple(false))]
pub struct DecodeArgs {
    #[command(flatten)]
    call: CallArgs,
    /// The frame as hex (spaces, `0x` and `:` allowed).
    #[arg(long, group = "input", value_name = "HEX")]
    hex: Option<String>,
    /// The frame as base64.
    #[arg(long, group = "input", value_name = "B64")]
    base64: Option<String>,
    /// Read the frame's raw bytes from a file.
    #[arg(long, group = "input", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Print the document on one line.
    #[arg(long)]
    compact: bool,
}

/// Arguments of `sluice encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    call: CallArgs,
    /// The downlink document: JSON, or `@FILE` to read it from a file.
    #[arg(long, value_name = "JSON")]
    document: String,
}

/// Arguments of `sluice route`.
#[derive(Debug, Args)]
pub struct RouteArgs {
    #[command(flatten)]
    call: CallArgs,
    /// The decoded document to route: JSON, or `@FILE` to read it from a file.
    #[arg(long, value_name = "JSON")]
    document: String,
    /// The original frame as hex (optional; routers usually look at the document).
    #[arg(long, value_name = "HEX")]
    hex: Option<String>,
    /// Print the decisions on one line.
    #[arg(long)]
    compact: bool,
}

/// `KEY=VALUE` → (key, value).
fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// A loaded module with one instance, ready for a call.
struct Session {
    name: String,
    instance: Instance,
}

impl CallArgs {
    fn open(&self) -> anyhow::Result<Session> {
        let name = sandbox::name_from_path(&self.module);
        let policy = match &self.manifest {
            Some(path) => Manifest::load(path)?.policy,
            None => Default::default(),
        };
        let bytes = sandbox::read_component(&self.module)?;
        let runtime = sandbox::runtime()?;
        let module = sandbox::load(&runtime, &name, &bytes, policy)
            .map_err(anyhow::Error::new)
            .with_context(|| format!("cannot load {}", self.module.display()))?;
        let env = InstanceEnv::with_config(self.config.iter().cloned().collect());
        Ok(Session {
            name,
            instance: module.instantiate(env),
        })
    }

    fn uplink(&self, payload: Vec<u8>) -> Uplink {
        let mut uplink = Uplink::new(self.device.clone(), self.port, payload);
        uplink.metadata = self.metadata.clone();
        uplink
    }
}

/// Prints the call's logs, then either hands over the output or prints the failure.
fn finish<T>(session: &Session, outcome: CallOutcome<T>) -> Option<T> {
    sandbox::print_logs(&session.name, &outcome.report);
    tracing::debug!(
        fuel = outcome.report.fuel_consumed,
        duration_us = outcome.report.duration.as_micros() as u64,
        instantiated = outcome.report.instantiated,
        "call finished"
    );
    match outcome.result {
        Ok(value) => Some(value),
        Err(failure) => {
            sandbox::print_failure(&failure);
            None
        }
    }
}

fn print_json(value: &impl serde::Serialize, compact: bool) -> anyhow::Result<()> {
    let text = if compact {
        serde_json::to_string(value)
    } else {
        serde_json::to_string_pretty(value)
    }
    .context("cannot print the result as JSON")?;
    println!("{text}");
    Ok(())
}

/// The payload from --hex, --base64, --file or stdin.
fn payload(args: &DecodeArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(hex) = &args.hex {
        return parse_hex(hex).map_err(anyhow::Error::msg).context("--hex");
    }
    if let Some(b64) = &args.base64 {
        return base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .context("--base64 is not valid base64");
    }
    if let Some(path) = &args.file {
        return std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
    }
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("give the frame with --hex, --base64 or --file, or pipe it on stdin");
    }
    let mut bytes = Vec::new();
    stdin
        .read_to_end(&mut bytes)
        .context("cannot read the frame from stdin")?;
    Ok(hex_text(&bytes).unwrap_or(bytes))
}

/// The bytes `input` spells when it is hex text (whitespace, `0x`, `:` allowed), else `None`.
fn hex_text(input: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(input).ok()?;
    if text.trim().is_empty() {
        return None;
    }
    parse_hex(text).ok()
}

/// A document from JSON text or `@FILE`.
fn document(text: &str) -> anyhow::Result<Document> {
    let json = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the document from {path}"))?,
        None => text.to_string(),
    };
    Document::from_json_slice(json.as_bytes()).context("--document is not a valid document")
}

/// Runs `sluice decode`.
pub fn decode(args: DecodeArgs) -> anyhow::Result<ExitCode> {
    let payload = payload(&args)?;
    let mut session = args.call.open()?;
    let uplink = args.call.uplink(payload);
    let outcome = session.instance.decode(&uplink);
    match finish(&session, outcome) {
        Some(document) => {
            print_json(&document, args.compact)?;
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::FAILURE),
    }
}

/// Runs `sluice encode`.
pub fn encode(args: EncodeArgs) -> anyhow::Result<ExitCode> {
    let document = document(&args.document)?;
    let mut session = args.call.open()?;
    let downlink = Downlink {
        device_id: args.call.device.clone(),
        port: args.call.port,
        document,
        metadata: args.call.metadata.clone(),
    };
    let outcome = session.instance.encode(&downlink);
    match finish(&session, outcome) {
        Some(frame) => {
            println!("port {}", frame.port);
            println!("hex  {}", hex::encode(&frame.payload));
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::FAILURE),
    }
}

/// Runs `sluice route`.
pub fn route(args: RouteArgs) -> anyhow::Result<ExitCode> {
    let document = document(&args.document)?;
    let payload = match &args.hex {
        Some(hex) => parse_hex(hex)
            .map_err(anyhow::Error::msg)
            .context("--hex")?,
        None => Vec::new(),
    };
    let mut session = args.call.open()?;
    let uplink = args.call.uplink(payload);
    let outcome = session.instance.route(&uplink, &document);
    match finish(&session, outcome) {
        Some(decisions) => {
            print_json(&decisions, args.compact)?;
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::FAILURE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_at_the_first_equals_sign() {
        assert_eq!(parse_pair("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_pair("k="), Ok(("k".into(), String::new())));
        assert!(parse_pair("novalue").is_err());
        assert!(parse_pair("=v").is_err());
    }

    #[test]
    fn stdin_hex_text_is_recognised() {
        assert_eq!(hex_text(b"03 67 01 10\n"), Some(vec![3, 0x67, 1, 0x10]));
        assert_eq!(hex_text(b"0x03:0x67"), Some(vec![3, 0x67]));
        assert_eq!(hex_text(b"\x03\x67\x01\x10"), None);
        assert_eq!(hex_text(b"abc"), None);
        assert_eq!(hex_text(b"\n"), None);
    }
}
