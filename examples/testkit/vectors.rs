//! Native checker for an example's `vectors.yaml`.
//!
//! `sluice test` runs the same file against the production runtime; this module runs it against
//! the crate's plain-Rust functions, so a wrong vector fails `cargo test` before it ships.
//! Each crate includes this file from `tests/vectors.rs` with `#[path]`.
//!
//! Comparison is strict, so a vector that passes here also passes a more lenient runner:
//! documents must have exactly the expected keys, numbers compare numerically (`10 == 10.0`),
//! and a route decision without `document` or `drop_reason` must have none.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;
use sluice_sdk::serde_json;
use sluice_sdk::{CodecError, Decision, Downlink, Encoded, ErrorKind, Uplink, Value};

/// The plain-Rust entry points of one example; `None` for what it does not implement.
pub struct Entrypoints {
    /// Decodes an uplink, as the codec's `decode-uplink` export does.
    pub decode: Option<DecodeFn>,
    /// Encodes a downlink, as the codec's `encode-downlink` export does.
    pub encode: Option<EncodeFn>,
    /// Routes a decoded document, with the binding config given explicitly.
    pub route: Option<RouteFn>,
}

/// A codec's decode entry point.
pub type DecodeFn = fn(&Uplink) -> Result<Value, CodecError>;

/// A codec's encode entry point.
pub type EncodeFn = fn(&Downlink) -> Result<Encoded, CodecError>;

/// A router entry point taking the binding config as an argument.
pub type RouteFn =
    fn(&Uplink, &Value, &BTreeMap<String, String>) -> Result<Vec<Decision>, CodecError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    vectors: Vec<Vector>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Kind {
    #[default]
    Decode,
    Encode,
    Route,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    #[serde(default)]
    kind: Kind,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default = "default_device_id")]
    device_id: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    payload_hex: Option<String>,
    payload_base64: Option<String>,
    document: Option<Value>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    expect: Option<Value>,
    expect_error: Option<ExpectError>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectError {
    kind: String,
    message_contains: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectEncoded {
    port: u16,
    payload_hex: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectDecision {
    output: String,
    document: Option<Value>,
    drop_reason: Option<String>,
}

fn default_port() -> u16 {
    1
}

fn default_device_id() -> String {
    "test-device".to_owned()
}

/// Runs every vector of `path` and panics listing all that fail.
pub fn check_file(path: impl AsRef<Path>, entrypoints: &Entrypoints) {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let file: VectorFile = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a valid vectors file: {e}", path.display()));
    assert!(
        !file.vectors.is_empty(),
        "{} has no vectors",
        path.display()
    );

    let mut names = HashSet::new();
    let mut failures = Vec::new();
    for vector in &file.vectors {
        if !names.insert(vector.name.as_str()) {
            failures.push(format!("{}: duplicate vector name", vector.name));
            continue;
        }
        if let Err(why) = check_vector(vector, entrypoints) {
            failures.push(format!("{} ({:?}): {why}", vector.name, vector.kind));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors in {} fail:\n  {}",
        failures.len(),
        file.vectors.len(),
        path.display(),
        failures.join("\n  ")
    );
}

fn check_vector(vector: &Vector, entrypoints: &Entrypoints) -> Result<(), String> {
    let payload = payload(vector)?;
    let metadata: Vec<(String, String)> = vector
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let uplink = Uplink {
        device_id: vector.device_id.clone(),
        port: vector.port,
        received_at_ms: 0,
        payload: payload.clone().unwrap_or_default(),
        metadata: metadata.clone(),
    };
    if vector.kind != Kind::Route && !vector.config.is_empty() {
        return Err("this native checker passes config to routers only".into());
    }

    match vector.kind {
        Kind::Decode => {
            let decode = entrypoints.decode.ok_or("this example does not decode")?;
            if payload.is_none() {
                return Err("decode vector needs payload_hex or payload_base64".into());
            }
            let actual = decode(&uplink);
            if let Ok(document) = &actual
                && !document.is_object()
            {
                return Err(format!("decoded document is not a map: {document}"));
            }
            check_outcome(vector, actual, |expect, document| {
                compare(expect, &document, "$")
            })
        }
        Kind::Encode => {
            let encode = entrypoints.encode.ok_or("this example does not encode")?;
            let document = vector
                .document
                .clone()
                .ok_or("encode vector needs document")?;
            let downlink = Downlink {
                device_id: vector.device_id.clone(),
                port: vector.port,
                document,
                metadata,
            };
            check_outcome(vector, encode(&downlink), |expect, encoded| {
                let expect: ExpectEncoded = serde_json::from_value(expect.clone())
                    .map_err(|e| format!("encode expect must be {{port, payload_hex}}: {e}"))?;
                let want = parse_hex(&expect.payload_hex)?;
                if expect.port != encoded.port || want != encoded.payload {
                    return Err(format!(
                        "expected port {} payload {}, got port {} payload {}",
                        expect.port,
                        hex::encode(&want),
                        encoded.port,
                        hex::encode(&encoded.payload)
                    ));
                }
                Ok(())
            })
        }
        Kind::Route => {
            let route = entrypoints.route.ok_or("this example does not route")?;
            let document = vector
                .document
                .as_ref()
                .ok_or("route vector needs document")?;
            check_outcome(
                vector,
                route(&uplink, document, &vector.config),
                |expect, decisions| {
                    let expect: Vec<ExpectDecision> = serde_json::from_value(expect.clone())
                        .map_err(|e| format!("route expect must be a list of decisions: {e}"))?;
                    compare_decisions(&expect, &decisions)
                },
            )
        }
    }
}

fn check_outcome<T: std::fmt::Debug>(
    vector: &Vector,
    actual: Result<T, CodecError>,
    check_ok: impl FnOnce(&Value, T) -> Result<(), String>,
) -> Result<(), String> {
    match (&vector.expect, &vector.expect_error, actual) {
        (Some(expect), None, Ok(value)) => check_ok(expect, value),
        (Some(_), None, Err(e)) => Err(format!("expected success, got error {e}")),
        (None, Some(want), Err(e)) => {
            let kind = match e.kind {
                ErrorKind::InvalidInput => "invalid-input",
                ErrorKind::Unsupported => "unsupported",
                ErrorKind::Internal => "internal",
            };
            if want.kind != kind {
                return Err(format!("expected error kind {}, got {e}", want.kind));
            }
            match &want.message_contains {
                Some(part) if !e.message.contains(part.as_str()) => Err(format!(
                    "expected error message containing {part:?}, got {:?}",
                    e.message
                )),
                _ => Ok(()),
            }
        }
        (None, Some(want), Ok(value)) => Err(format!(
            "expected error {}, got success {value:?}",
            want.kind
        )),
        _ => Err("needs exactly one of expect and expect_error".into()),
    }
}

fn payload(vector: &Vector) -> Result<Option<Vec<u8>>, String> {
    match (&vector.payload_hex, &vector.payload_base64) {
        (Some(_), Some(_)) => Err("give payload_hex or payload_base64, not both".into()),
        (Some(hex), None) => parse_hex(hex).map(Some),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map(Some)
            .map_err(|e| format!("payload_base64 is not base64: {e}")),
        (None, None) => Ok(None),
    }
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&compact).map_err(|e| format!("{text:?} is not hex: {e}"))
}

fn compare_decisions(expect: &[ExpectDecision], actual: &[Decision]) -> Result<(), String> {
    if expect.len() != actual.len() {
        return Err(format!(
            "expected {} decisions, got {}: {actual:?}",
            expect.len(),
            actual.len()
        ));
    }
    for (i, (want, got)) in expect.iter().zip(actual).enumerate() {
        if want.output != got.output {
            return Err(format!(
                "decision {i}: expected output {}, got {}",
                want.output, got.output
            ));
        }
        match (&want.document, &got.document) {
            (None, None) => {}
            (Some(w), Some(g)) => compare(w, g, &format!("decision {i} document"))?,
            (w, g) => return Err(format!("decision {i}: expected document {w:?}, got {g:?}")),
        }
        if want.drop_reason != got.drop_reason {
            return Err(format!(
                "decision {i}: expected drop_reason {:?}, got {:?}",
                want.drop_reason, got.drop_reason
            ));
        }
    }
    Ok(())
}

/// Structural equality where numbers compare by value (`10 == 10.0`).
fn compare(expect: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expect, actual) {
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => Ok(()),
        (Value::Object(e), Value::Object(a)) => {
            let missing: Vec<_> = e.keys().filter(|k| !a.contains_key(*k)).collect();
            let extra: Vec<_> = a.keys().filter(|k| !e.contains_key(*k)).collect();
            if !missing.is_empty() || !extra.is_empty() {
                return Err(format!(
                    "{at}: missing keys {missing:?}, unexpected keys {extra:?} in {actual}"
                ));
            }
            e.iter()
                .try_for_each(|(k, v)| compare(v, &a[k], &format!("{at}.{k}")))
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .try_for_each(|(i, (e, a))| compare(e, a, &format!("{at}[{i}]"))),
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{at}: expected {e}, got {a}")),
    }
}
