//! A well-behaved codec: echoes the frame back as a document and exercises each host interface.
//!
//! Decode, by payload:
//! - `state`: increments the device's counter (`count`, u64 little-endian) and returns `{"count": n}`;
//! - `config`: returns every binding config key with its value;
//! - `clock`: returns `{"now_ms": <host clock>}`;
//! - `bigstate`: stores 64 KiB under `big` and returns `{"quota_exceeded": bool}`;
//! - `metrics`: adds 1 to the counter `echo_metrics_calls`, sets the gauge `echo_gauge` to 2.5
//!   and returns `{}`;
//! - `m:NAME`: adds 1 to the counter `NAME` (a guest inventing metric names) and returns `{}`;
//! - first byte `0xEE`: refuses with invalid-input `bad frame`;
//! - anything else: `{"len", "hex", "port", "device", "first"}`.
//!
//! Encode turns `{"hex": "..."}` into those bytes, on the proposed port. Every call logs one
//! `info` line.

use sluice_sdk::{
    Codec, CodecError, Downlink, Encoded, Map, Uplink, Value, clock, config, json, metrics, state,
};

/// The echo codec.
struct Echo;

impl Codec for Echo {
    fn decode(msg: &Uplink) -> Result<Value, CodecError> {
        sluice_sdk::info!(
            "decode device={} port={} len={}",
            msg.device_id,
            msg.port,
            msg.payload.len()
        );
        match &msg.payload[..] {
            b"state" => count(),
            b"config" => Ok(Value::Object(
                config::keys()
                    .into_iter()
                    .map(|key| {
                        let value = config::get(&key).map_or(Value::Null, Value::String);
                        (key, value)
                    })
                    .collect::<Map<_, _>>(),
            )),
            b"clock" => Ok(json!({ "now_ms": clock::now_ms() })),
            b"bigstate" => match state::set("big", &[0u8; 64 * 1024]) {
                Ok(()) => Ok(json!({ "quota_exceeded": false })),
                Err(state::StateError::QuotaExceeded) => Ok(json!({ "quota_exceeded": true })),
                Err(e) => Err(CodecError::internal(format!("state set failed: {e:?}"))),
            },
            b"metrics" => {
                metrics::increment("echo_metrics_calls", 1);
                metrics::gauge("echo_gauge", 2.5);
                Ok(json!({}))
            }
            [b'm', b':', name @ ..] => {
                metrics::increment(&String::from_utf8_lossy(name), 1);
                Ok(json!({}))
            }
            [0xEE, ..] => Err(CodecError::invalid_input("bad frame")),
            payload => Ok(json!({
                "len": payload.len(),
                "hex": hex::encode(payload),
                "port": msg.port,
                "device": msg.device_id,
                "first": payload.first(),
            })),
        }
    }

    fn encode(msg: &Downlink) -> Result<Encoded, CodecError> {
        sluice_sdk::info!("encode device={} port={}", msg.device_id, msg.port);
        let hex = msg
            .document
            .get("hex")
            .and_then(Value::as_str)
            .ok_or_else(|| CodecError::invalid_input("expected {\"hex\": \"...\"}"))?;
        let payload = hex::decode(hex)
            .map_err(|e| CodecError::invalid_input(format!("`hex` is not hex: {e}")))?;
        Ok(Encoded {
            port: msg.port,
            payload,
        })
    }
}

/// Increments and returns the device's `count`.
fn count() -> Result<Value, CodecError> {
    let previous = match state::get("count") {
        None => 0,
        Some(bytes) => u64::from_le_bytes(
            bytes
                .try_into()
                .map_err(|_| CodecError::internal("state `count` is not 8 bytes"))?,
        ),
    };
    let count = previous + 1;
    state::set("count", &count.to_le_bytes())
        .map_err(|e| CodecError::internal(format!("state set failed: {e:?}")))?;
    Ok(json!({ "count": count }))
}

sluice_sdk::export_codec!(Echo);
