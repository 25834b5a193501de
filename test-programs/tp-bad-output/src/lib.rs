//! A codec whose documents the host must reject, chosen by the first payload byte:
//! - `0` (or an empty payload): JSON format, bytes that are not JSON;
//! - `1`: JSON that is an array, `[1,2,3]`, not a map;
//! - `2`: CBOR format, bytes that are not CBOR;
//! - `3`: JSON maps nested 200 levels deep;
//! - anything else: refused with invalid-input.
//!
//! It implements the generated world trait directly (not `sluice_sdk::Codec`) so that it can
//! hand the host any bytes, as a guest written without the SDK could.

use sluice_sdk::bindings::codec::Guest;
use sluice_sdk::bindings::codec::sluice::codec::types::{
    CodecError, CodecErrorKind, Document, DocumentFormat, Downlink, EncodedDownlink, Uplink,
};

/// Nesting depth of the deep document; deeper than common parser recursion limits (128).
const DEPTH: usize = 200;

/// Returns malformed documents.
struct BadOutput;

impl Guest for BadOutput {
    fn decode_uplink(message: Uplink) -> Result<Document, CodecError> {
        let (format, bytes) = match message.payload.first().copied().unwrap_or(0) {
            0 => (DocumentFormat::Json, b"{\"unterminated\": [1, 2,".to_vec()),
            1 => (DocumentFormat::Json, b"[1,2,3]".to_vec()),
            2 => (
                DocumentFormat::Cbor,
                vec![0xFF, 0xFE, 0x1C, 0x5F, 0x00, 0xBF, 0x7B],
            ),
            3 => (DocumentFormat::Json, nested_json(DEPTH)),
            other => {
                return Err(CodecError {
                    kind: CodecErrorKind::InvalidInput,
                    message: format!("unknown case {other}"),
                });
            }
        };
        Ok(Document { format, bytes })
    }

    fn encode_downlink(_message: Downlink) -> Result<EncodedDownlink, CodecError> {
        Err(CodecError {
            kind: CodecErrorKind::Unsupported,
            message: "this codec does not encode downlinks".to_owned(),
        })
    }
}

/// `{"a":{"a":...{"a":0}...}}` with `depth` maps.
fn nested_json(depth: usize) -> Vec<u8> {
    let mut json = "{\"a\":".repeat(depth).into_bytes();
    json.push(b'0');
    json.extend(std::iter::repeat_n(b'}', depth));
    json
}

sluice_sdk::bindings::codec::export!(BadOutput);
