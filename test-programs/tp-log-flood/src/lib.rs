//! A codec that writes 100,000 log lines per call, spread over the `log` interface, stdout and
//! stderr, then returns `{"ok": true}`: the host's log caps must hold.

use sluice_sdk::{Codec, CodecError, Uplink, Value, json};

/// Lines written per call, all channels together.
const LINES: u32 = 100_000;

/// Floods the module log.
struct LogFlood;

impl Codec for LogFlood {
    fn decode(_msg: &Uplink) -> Result<Value, CodecError> {
        for line in 0..LINES {
            match line % 3 {
                0 => sluice_sdk::info!("flood line {line}"),
                1 => println!("flood stdout line {line}"),
                _ => eprintln!("flood stderr line {line}"),
            }
        }
        Ok(json!({ "ok": true }))
    }
}

sluice_sdk::export_codec!(LogFlood);
