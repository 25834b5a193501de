//! `examples/bitpacked` as an Extism plug-in: `call` takes the frame, returns the JSON.
// `#[plugin_fn]` wraps the function in an undocumented `extern "C"` export.
#![allow(missing_docs)]

use extism_pdk::{Error, FnResult, plugin_fn};

/// Decodes one frame.
#[plugin_fn]
pub fn call(frame: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(guest_glue::document_json(bitpacked::decode(&frame)).map_err(Error::msg)?)
}
