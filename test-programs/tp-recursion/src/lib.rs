//! A codec whose decode recurses without bound: the host's wasm stack limit must stop it.

use core::hint::black_box;
use sluice_sdk::{Codec, CodecError, Uplink, Value};

/// Recurses forever.
struct Recursion;

/// Calls itself and uses the result after the call, so the call cannot become a loop; the exit
/// condition is opaque to the optimiser and never true.
#[inline(never)]
fn descend(depth: u64) -> u64 {
    if depth == black_box(u64::MAX) {
        return 0;
    }
    let below = black_box(descend(black_box(depth + 1)));
    below ^ depth
}

impl Codec for Recursion {
    fn decode(_msg: &Uplink) -> Result<Value, CodecError> {
        Ok(Value::from(descend(0)))
    }
}

sluice_sdk::export_codec!(Recursion);
