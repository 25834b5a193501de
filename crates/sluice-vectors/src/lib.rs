//! Codec test vectors.
//!
//! A `vectors.yaml` file lists inputs and what the module must answer: a document, a frame,
//! routing decisions, or a typed codec error. [`run`] executes each vector on the production
//! runtime (same limits, same host) and reports a readable diff for every mismatch. The CLI's
//! `sluice test` and the server's upload check both use it.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_runtime::{CallOutcome, Instance, InstanceEnv, Module};
use sluice_types::{
    CodecErrorKind, Decision, Document, Downlink, EncodedDownlink, GuestFailure, Uplink,
};

/// Device id used when a vector does not name one.
pub const DEFAULT_DEVICE_ID: &str = "test-device";
/// Reception time used when a vector does not give one (2023-11-14T22:13:20Z).
pub const DEFAULT_RECEIVED_AT_MS: u64 = 1_700_000_000_000;

/// A file of test vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorFile {
    /// The vectors, run in order.
    pub vectors: Vec<Vector>,
}

/// What a vector exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorKind {
    /// `decode-uplink`: payload → document.
    #[default]
    Decode,
    /// `encode-downlink`: document → frame.
    Encode,
    /// `route`: payload and decoded document → decisions.
    Route,
}

/// One test vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vector {
    /// A unique, descriptive name.
    pub name: String,
    /// What is exercised (default `decode`).
    #[serde(default)]
    pub kind: VectorKind,
    /// Port (default 1).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Device id (default `test-device`).
    #[serde(default)]
    pub device_id: Option<String>,
    /// Reception time, ms since the epoch.
    #[serde(default)]
    pub received_at_ms: Option<u64>,
    /// Message metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Binding configuration the module sees.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Payload as hex (spaces allowed).
    #[serde(default)]
    pub payload_hex: Option<String>,
    /// Payload as base64.
    #[serde(default)]
    pub payload_base64: Option<String>,
    /// Input document: for `encode`, the document to encode; for `route`, the decoded one.
    #[serde(default)]
    pub document: Option<Value>,
    /// Expected output: a document (decode), `{port, payload_hex}` (encode), or a list of
    /// decisions (route).
    #[serde(default)]
    pub expect: Option<Value>,
    /// Expected typed codec error.
    #[serde(default)]
    pub expect_error: Option<ExpectedError>,
}

fn default_port() -> u16 {
    1
}

/// An expected codec error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedError {
    /// The error kind.
    pub kind: CodecErrorKind,
    /// A substring the message must contain.
    #[serde(default)]
    pub message_contains: Option<String>,
}

/// A vector file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML does not parse or has unknown fields.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A vector is inconsistent (no payload, two expectations, bad hex...).
    #[error("{path}: vector `{name}`: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// The vector.
        name: String,
        /// What is wrong.
        message: String,
    },
}

impl VectorFile {
    /// Reads and checks a vector file.
    pub fn load(path: &Path) -> Result<Self, VectorError> {
        let text = std::fs::read_to_string(path).map_err(|source| VectorError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks vector YAML; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, VectorError> {
        let file: VectorFile = serde_yaml::from_str(text).map_err(|e| VectorError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for v in &file.vectors {
            let invalid = |message: &str| VectorError::Invalid {
                path: origin.to_string(),
                name: v.name.clone(),
                message: message.to_string(),
            };
            if !seen.insert(v.name.as_str()) {
                return Err(invalid("the name is used twice"));
            }
            match (&v.expect, &v.expect_error) {
                (Some(_), Some(_)) => return Err(invalid("has both `expect` and `expect_error`")),
                (None, None) => return Err(invalid("needs `expect` or `expect_error`")),
                _ => {}
            }
            if v.payload_hex.is_some() && v.payload_base64.is_some() {
                return Err(invalid("has both `payload_hex` and `payload_base64`"));
            }
            v.payload().map_err(|m| invalid(&m))?;
            match v.kind {
                VectorKind::Decode if v.document.is_some() => {
                    return Err(invalid("a decode vector takes a payload, not a `document`"));
                }
                VectorKind::Encode | VectorKind::Route if v.document.is_none() => {
                    return Err(invalid("needs an input `document`"));
                }
                _ => {}
            }
            if let Some(doc) = &v.document {
                Document::from_value(doc.clone())
                    .map_err(|e| invalid(&format!("input `document`: {e}")))?;
            }
        }
        Ok(file)
    }
}

/// Parses hex that may contain spaces, `0x` prefixes or colons.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = text
        .split(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .map(|part| part.trim_start_matches("0x").trim_start_matches("0X"))
        .collect();
    hex::decode(&cleaned).map_err(|e| format!("payload is not valid hex: {e}"))
}

impl Vector {
    /// The payload bytes (empty when the vector gives none).
    pub fn payload(&self) -> Result<Vec<u8>, String> {
        match (&self.payload_hex, &self.payload_base64) {
            (Some(hex), _) => parse_hex(hex),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| format!("payload is not valid base64: {e}")),
            (None, None) => Ok(Vec::new()),
        }
    }

    fn uplink(&self) -> Result<Uplink, String> {
        Ok(Uplink {
            device_id: self
                .device_id
                .clone()
                .unwrap_or_else(|| DEFAULT_DEVICE_ID.to_string()),
            port: self.port,
            received_at_ms: self.received_at_ms.unwrap_or(DEFAULT_RECEIVED_AT_MS),
            payload: self.payload()?,
            metadata: self
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

/// The result of one vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VectorResult {
    /// The vector's name.
    pub name: String,
    /// Whether the module answered as expected.
    pub passed: bool,
    /// When it did not: what was expected and what came, as a readable diff or message.
    pub diff: Option<String>,
    /// Fuel the call consumed.
    pub fuel_consumed: u64,
    /// What the module actually answered (document, frame, decisions or failure).
    pub actual: Value,
}

/// A fresh instance of the module under test, as one vector uses it: in this process
/// ([`Instance`]) or wherever the caller runs guest code (a tenant's worker process).
pub trait Subject {
    /// Decodes an uplink.
    fn decode(&mut self, uplink: &Uplink) -> CallOutcome<Document>;
    /// Encodes a downlink.
    fn encode(&mut self, downlink: &Downlink) -> CallOutcome<EncodedDownlink>;
    /// Routes a decoded uplink.
    fn route(&mut self, uplink: &Uplink, document: &Document) -> CallOutcome<Vec<Decision>>;
}

impl Subject for Instance {
    fn decode(&mut self, uplink: &Uplink) -> CallOutcome<Document> {
        Instance::decode(self, uplink)
    }
    fn encode(&mut self, downlink: &Downlink) -> CallOutcome<EncodedDownlink> {
        Instance::encode(self, downlink)
    }
    fn route(&mut self, uplink: &Uplink, document: &Document) -> CallOutcome<Vec<Decision>> {
        Instance::route(self, uplink, document)
    }
}

/// Runs every vector of `file` on `module`, each on a fresh instance with the vector's config.
pub fn run(module: &Module, file: &VectorFile) -> Vec<VectorResult> {
    run_with(file, |config| {
        Ok(module.instantiate(InstanceEnv::with_config(config.clone())))
    })
}

/// Runs every vector of `file` on a fresh subject from `fresh`, which gets the vector's
/// config (and gives each subject empty device state). A subject that cannot be created fails
/// its vector with the reason.
pub fn run_with<S: Subject>(
    file: &VectorFile,
    mut fresh: impl FnMut(&BTreeMap<String, String>) -> Result<S, GuestFailure>,
) -> Vec<VectorResult> {
    file.vectors
        .iter()
        .map(|vector| match fresh(&vector.config) {
            Ok(mut subject) => run_one(&mut subject, vector),
            Err(failure) => VectorResult {
                name: vector.name.clone(),
                passed: false,
                diff: Some(format!("the module could not be started: {failure}")),
                fuel_consumed: 0,
                actual: Value::Null,
            },
        })
        .collect()
}

fn run_one(instance: &mut impl Subject, vector: &Vector) -> VectorResult {
    let fail = |message: String| VectorResult {
        name: vector.name.clone(),
        passed: false,
        diff: Some(message),
        fuel_consumed: 0,
        actual: Value::Null,
    };
    let uplink = match vector.uplink() {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let input_document = match vector
        .document
        .clone()
        .map(Document::from_value)
        .transpose()
    {
        Ok(d) => d,
        Err(e) => return fail(format!("input document: {e}")),
    };
    let (actual, fuel) = match vector.kind {
        VectorKind::Decode => {
            let out = instance.decode(&uplink);
            (
                out.result.map(Document::into_value),
                out.report.fuel_consumed,
            )
        }
        VectorKind::Encode => {
            let downlink = Downlink {
                device_id: uplink.device_id.clone(),
                port: uplink.port,
                document: input_document.unwrap_or_default(),
                metadata: uplink.metadata.clone(),
            };
            let out = instance.encode(&downlink);
            let value = out.result.map(|frame| {
                serde_json::json!({ "port": frame.port, "payload_hex": hex::encode(frame.payload) })
            });
            (value, out.report.fuel_consumed)
        }
        VectorKind::Route => {
            let out = instance.route(&uplink, &input_document.unwrap_or_default());
            let value = out
                .result
                .map(|decisions| serde_json::to_value(decisions).unwrap_or(Value::Null));
            (value, out.report.fuel_consumed)
        }
    };
    let (passed, diff, actual_value) = judge(vector, actual);
    VectorResult {
        name: vector.name.clone(),
        passed,
        diff,
        fuel_consumed: fuel,
        actual: actual_value,
    }
}

fn judge(vector: &Vector, actual: Result<Value, GuestFailure>) -> (bool, Option<String>, Value) {
    match (actual, &vector.expect, &vector.expect_error) {
        (Ok(value), Some(expected), _) => {
            let expected = normalize_expected(vector.kind, expected);
            if json_eq(&expected, &value) {
                (true, None, value)
            } else {
                let diff = text_diff(&pretty(&expected), &pretty(&value));
                (false, Some(diff), value)
            }
        }
        (Ok(value), None, Some(err)) => {
            let diff = format!(
                "expected a {} error, but the module answered:\n{}",
                err.kind,
                pretty(&value)
            );
            (false, Some(diff), value)
        }
        (Err(failure), _, Some(expected)) => {
            let shown = serde_json::to_value(&failure).unwrap_or(Value::Null);
            match &failure {
                GuestFailure::GuestError { error, .. }
                    if error.kind == expected.kind
                        && expected
                            .message_contains
                            .as_ref()
                            .is_none_or(|m| error.message.contains(m.as_str())) =>
                {
                    (true, None, shown)
                }
                GuestFailure::GuestError { error, .. } => (
                    false,
                    Some(format!(
                        "expected a {} error{}, got {}: {}",
                        expected.kind,
                        expected
                            .message_contains
                            .as_ref()
                            .map(|m| format!(" containing {m:?}"))
                            .unwrap_or_default(),
                        error.kind,
                        error.message
                    )),
                    shown,
                ),
                other => (
                    false,
                    Some(format!("expected a {} error, got: {other}", expected.kind)),
                    shown,
                ),
            }
        }
        (Err(failure), _, None) => {
            let shown = serde_json::to_value(&failure).unwrap_or(Value::Null);
            (false, Some(format!("the call failed: {failure}")), shown)
        }
        (Ok(value), None, None) => (true, None, value),
    }
}

/// Brings an `expect` into the shape the runner produces (hex without spaces for frames).
fn normalize_expected(kind: VectorKind, expected: &Value) -> Value {
    match (kind, expected) {
        (VectorKind::Encode, Value::Object(map)) => {
            let mut map = map.clone();
            if let Some(Value::String(hex)) = map.get("payload_hex")
                && let Ok(bytes) = parse_hex(hex)
            {
                map.insert("payload_hex".into(), Value::String(hex::encode(bytes)));
            }
            Value::Object(map)
        }
        _ => expected.clone(),
    }
}

/// JSON equality where numbers compare by value (`10 == 10.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|other| json_eq(v, other)))
        }
        _ => a == b,
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn text_diff(expected: &str, actual: &str) -> String {
    let diff = similar::TextDiff::from_lines(expected, actual);
    let mut out = String::from("--- expected\n+++ actual\n");
    for change in diff.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => '-',
            similar::ChangeTag::Insert => '+',
            similar::ChangeTag::Equal => ' ',
        };
        out.push(sign);
        out.push_str(change.value());
        if !change.value().ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_eq(&json!({"a": 10}), &json!({"a": 10.0})));
        assert!(!json_eq(&json!({"a": 10}), &json!({"a": 10.5})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }

    #[test]
    fn hex_accepts_spaces_and_prefixes() {
        assert_eq!(parse_hex("03 67 0x01 10"), Ok(vec![3, 0x67, 1, 0x10]));
        assert!(parse_hex("0").is_err());
    }

    #[test]
    fn a_vector_needs_exactly_one_expectation() {
        let err = VectorFile::parse("vectors:\n  - name: a\n    payload_hex: '00'\n", "v.yaml")
            .expect_err("no expectation");
        assert_eq!(
            err.to_string(),
            "v.yaml: vector `a`: needs `expect` or `expect_error`"
        );
    }

    #[test]
    fn unknown_fields_are_errors_with_a_location() {
        let err = VectorFile::parse(
            "vectors:\n  - name: a\n    payload_hx: '00'\n    expect: {}\n",
            "v.yaml",
        )
        .expect_err("typo");
        let text = err.to_string();
        assert!(text.contains("unknown field `payload_hx`"), "{text}");
        assert!(text.contains("line 3"), "{text}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let err = VectorFile::parse(
            "vectors:\n  - {name: a, expect: {}}\n  - {name: a, expect: {}}\n",
            "v.yaml",
        )
        .expect_err("duplicate");
        assert!(err.to_string().contains("used twice"));
    }

    #[test]
    fn diffs_show_expected_and_actual_lines() {
        let d = text_diff(&pretty(&json!({"t": 1})), &pretty(&json!({"t": 2})));
        assert!(d.contains("-  \"t\": 1"), "{d}");
        assert!(d.contains("+  \"t\": 2"), "{d}");
    }
}
