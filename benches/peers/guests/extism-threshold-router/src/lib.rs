//! `examples/threshold-router` as an Extism plug-in: `call` takes the message JSON, returns
//! the decisions JSON, with the default thresholds (the bench binds no config).
// `#[plugin_fn]` wraps the function in an undocumented `extern "C"` export.
#![allow(missing_docs)]

use extism_pdk::{Error, FnResult, plugin_fn};

/// Routes one decoded message.
#[plugin_fn]
pub fn call(input: Vec<u8>) -> FnResult<Vec<u8>> {
    let (message, decoded) = guest_glue::route_input(&input).map_err(Error::msg)?;
    let thresholds = threshold_router::Thresholds::default();
    let decisions = threshold_router::route(&message, &decoded, &thresholds);
    Ok(guest_glue::decisions_json(decisions).map_err(Error::msg)?)
}
