//! The work every contender does: Cayenne LPP frames of several sizes, bit-packed frames, and
//! router decisions on decoded bit-packed readings. Each input is prepared once, in every form
//! a contender takes it, so no contender pays for another's conversion.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use sluice_types::Document;

/// Which example a workload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    /// `examples/cayenne-lpp`, decode.
    CayenneLpp,
    /// `examples/bitpacked`, decode.
    Bitpacked,
    /// `examples/threshold-router`, route.
    ThresholdRouter,
}

impl Example {
    /// The example's directory name, also its module name in the hosts.
    pub fn name(self) -> &'static str {
        match self {
            Example::CayenneLpp => "cayenne-lpp",
            Example::Bitpacked => "bitpacked",
            Example::ThresholdRouter => "threshold-router",
        }
    }

    /// Whether the example is a router (it takes a decoded document, not a frame).
    pub fn is_router(self) -> bool {
        self == Example::ThresholdRouter
    }
}

/// One message, in every form a contender takes it.
#[derive(Debug, Clone)]
pub struct Input {
    /// The message as the Sluice runtime takes it.
    pub uplink: sluice_types::Uplink,
    /// The message as the example crates take it natively.
    pub sdk_uplink: sluice_sdk::Uplink,
    /// Routers: the decoded document (native form).
    pub decoded: Value,
    /// Routers: the decoded document (Sluice form).
    pub document: Option<Document>,
    /// What the raw, Extism and JavaScript contenders take: the frame for a codec, the
    /// router input JSON (see `guest-glue`) for a router.
    pub wire: Vec<u8>,
}

/// A named piece of work: one example and the inputs it runs on, round-robin.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Row label, e.g. `Cayenne LPP, 11 B`.
    pub name: String,
    /// The example that does the work.
    pub example: Example,
    /// The inputs, used round-robin.
    pub inputs: Vec<Input>,
}

/// The device id every message carries.
const DEVICE_ID: &str = "bench-device";
/// The receive time every message carries.
const RECEIVED_AT_MS: u64 = 1_700_000_000_000;

fn codec_input(frame: &[u8], metadata: Vec<(String, String)>) -> Input {
    Input {
        uplink: sluice_types::Uplink {
            device_id: DEVICE_ID.into(),
            port: 1,
            received_at_ms: RECEIVED_AT_MS,
            payload: frame.to_vec(),
            metadata: metadata.clone(),
        },
        sdk_uplink: sluice_sdk::Uplink {
            device_id: DEVICE_ID.into(),
            port: 1,
            received_at_ms: RECEIVED_AT_MS,
            payload: frame.to_vec(),
            metadata,
        },
        decoded: Value::Null,
        document: None,
        wire: frame.to_vec(),
    }
}

/// Bit-packed frames from `examples/bitpacked/vectors.yaml`: a typical reading, a cold one
/// with door and alarm set, every field at its maximum and at its minimum, zero degrees.
pub fn bitpacked_frames() -> Vec<Vec<u8>> {
    vec![
        vec![0x10, 0xD7, 0x5B, 0x4A, 0x04, 0x90],
        vec![0x1F, 0x85, 0xA1, 0x22, 0xF0, 0x04],
        vec![0x17, 0xFF, 0xC9, 0xFF, 0xD4, 0x88],
        vec![0x18, 0x00, 0x00, 0x00, 0x20, 0xCB],
        vec![0x10, 0x00, 0x65, 0x68, 0x0C, 0x4E],
    ]
}

/// The workloads, in table order.
pub fn workloads() -> Result<Vec<Workload>> {
    let cayenne = sluice_benches::cayenne_frames();
    let gateway = || vec![("gateway".to_owned(), "gw-1".to_owned())];
    let mut out = Vec::new();
    // Three sizes of the same frames `benches/benches/decode.rs` uses: one temperature (4 B),
    // GPS (11 B), the multi-sensor frame (41 B).
    for index in [1, 3, 4] {
        let frame = cayenne
            .get(index)
            .context("sluice_benches::cayenne_frames has five frames")?;
        out.push(Workload {
            name: format!("Cayenne LPP decode, {} B", frame.len()),
            example: Example::CayenneLpp,
            inputs: vec![codec_input(frame, gateway())],
        });
    }
    let frames = bitpacked_frames();
    out.push(Workload {
        name: "bit-packed decode, 6 B (5 frames)".into(),
        example: Example::Bitpacked,
        inputs: frames.iter().map(|f| codec_input(f, gateway())).collect(),
    });

    // The router routes the decoded bit-packed readings, from a plant and from the lab (whose
    // devices are dropped from analytics): some raise no alert, some one, some two.
    let mut routes = Vec::new();
    for frame in &frames {
        let decoded = bitpacked::decode(frame)
            .map_err(|e| anyhow::anyhow!("bit-packed vector frame does not decode: {e}"))?;
        for site in ["plant-1", "lab"] {
            let metadata = vec![
                ("gateway".to_owned(), "gw-1".to_owned()),
                ("site".to_owned(), site.to_owned()),
            ];
            let mut input = codec_input(&[], metadata.clone());
            input.wire = serde_json::to_vec(&json!({
                "device_id": DEVICE_ID,
                "port": 1,
                "received_at_ms": RECEIVED_AT_MS,
                "metadata": metadata,
                "decoded": decoded,
            }))?;
            input.document = Some(
                Document::from_value(decoded.clone())
                    .map_err(|e| anyhow::anyhow!("decoded reading is not a document: {e}"))?,
            );
            input.decoded = decoded.clone();
            routes.push(input);
        }
    }
    out.push(Workload {
        name: "threshold router, route (10 messages)".into(),
        example: Example::ThresholdRouter,
        inputs: routes,
    });
    Ok(out)
}

/// Whether two JSON values are the same document: numbers compare by value (`10` and `10.0`
/// are the same JSON number; JavaScript writes the first, serde the second), everything else
/// structurally.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}
