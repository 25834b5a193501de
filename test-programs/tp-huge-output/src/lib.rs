//! A codec that returns a document with a 4 MiB string field: the host's output limit must
//! refuse it.

use sluice_sdk::{Codec, CodecError, Uplink, Value, json};

/// Length of the `blob` field.
const BLOB_BYTES: usize = 4 << 20;

/// Returns a huge document.
struct HugeOutput;

impl Codec for HugeOutput {
    fn decode(_msg: &Uplink) -> Result<Value, CodecError> {
        Ok(json!({ "blob": "x".repeat(BLOB_BYTES) }))
    }
}

sluice_sdk::export_codec!(HugeOutput);
