//! What the peer guests share: every contender takes and gives the same JSON, so outputs
//! compare byte for byte after parsing.
//!
//! - A codec takes the frame's bytes and gives the decoded document as JSON.
//! - A router takes `{"device_id", "port", "received_at_ms", "metadata": [[key, value], …],
//!   "decoded": {…}}` and gives `[{"output", "document"?, "drop_reason"?}, …]`.
//!
//! The raw core ABI ([`raw_abi!`]) is the least a host needs: `input(len) -> ptr` returns a
//! guest buffer of `len` bytes for the host to write the input into (reused across calls),
//! then `call(len) -> u64` runs the logic on it and returns `ptr << 32 | len` of the output,
//! which stays valid until the next call; bit 63 set means the output is an error message.

use std::cell::RefCell;

pub use sluice_sdk::{CodecError, Decision, Uplink, Value, json, serde_json};

/// The decoded document (or the codec's error) as JSON bytes.
pub fn document_json(decoded: Result<Value, CodecError>) -> Result<Vec<u8>, String> {
    let document = decoded.map_err(|e| e.to_string())?;
    serde_json::to_vec(&document).map_err(|e| e.to_string())
}

/// Parses a router input (see the crate documentation) into the message and its document.
pub fn route_input(bytes: &[u8]) -> Result<(Uplink, Value), String> {
    let mut input: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let text = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{what} must be a string"))
    };
    let metadata = input["metadata"]
        .as_array()
        .ok_or("metadata must be a list of [key, value] pairs")?
        .iter()
        .map(|pair| {
            Ok((
                text(&pair[0], "a metadata key")?,
                text(&pair[1], "a metadata value")?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let uplink = Uplink {
        device_id: text(&input["device_id"], "device_id")?,
        port: input["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("port must be 0..=65535")?,
        received_at_ms: input["received_at_ms"]
            .as_u64()
            .ok_or("received_at_ms must be a number")?,
        payload: Vec::new(),
        metadata,
    };
    Ok((uplink, input["decoded"].take()))
}

/// The router's decisions (or its error) as JSON bytes.
pub fn decisions_json(decisions: Result<Vec<Decision>, CodecError>) -> Result<Vec<u8>, String> {
    let decisions = decisions.map_err(|e| e.to_string())?;
    let list: Vec<Value> = decisions
        .into_iter()
        .map(|d| {
            let mut item = serde_json::Map::new();
            item.insert("output".into(), Value::String(d.output));
            if let Some(document) = d.document {
                item.insert("document".into(), document);
            }
            if let Some(reason) = d.drop_reason {
                item.insert("drop_reason".into(), Value::String(reason));
            }
            Value::Object(item)
        })
        .collect();
    serde_json::to_vec(&list).map_err(|e| e.to_string())
}

thread_local! {
    static INPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Bit 63 of [`call`]'s result: the output is an error message.
pub const ERROR_BIT: u64 = 1 << 63;

/// The raw ABI's `input`: a buffer of `len` bytes for the host to write the input into.
pub fn input(len: u32) -> *mut u8 {
    INPUT.with_borrow_mut(|buffer| {
        buffer.clear();
        buffer.resize(len as usize, 0);
        buffer.as_mut_ptr()
    })
}

/// The raw ABI's `call`: runs `logic` on the first `len` input bytes and keeps its output.
pub fn call(len: u32, logic: fn(&[u8]) -> Result<Vec<u8>, String>) -> u64 {
    let result = INPUT.with_borrow(|buffer| match buffer.get(..len as usize) {
        Some(input) => logic(input),
        None => Err(format!("input of {len} bytes, but input() was given less")),
    });
    OUTPUT.with_borrow_mut(|output| {
        let flag = match result {
            Ok(bytes) => {
                *output = bytes;
                0
            }
            Err(message) => {
                *output = message.into_bytes();
                ERROR_BIT
            }
        };
        // wasm32 addresses are below 2^31 in practice (memories stay far below 2 GiB here).
        flag | ((output.as_ptr() as usize as u64) << 32) | output.len() as u64
    })
}

/// Exports the raw ABI (`input`, `call`) around `logic: fn(&[u8]) -> Result<Vec<u8>, String>`.
#[macro_export]
macro_rules! raw_abi {
    ($logic:expr) => {
        /// Raw ABI: a buffer of `len` bytes for the host to write the input into.
        #[unsafe(no_mangle)]
        pub extern "C" fn input(len: u32) -> *mut u8 {
            $crate::input(len)
        }

        /// Raw ABI: runs the logic on the input; `ptr << 32 | len` of the output.
        #[unsafe(no_mangle)]
        pub extern "C" fn call(len: u32) -> u64 {
            $crate::call(len, $logic)
        }
    };
}
