//! A codec whose decode dies, in the way chosen by the first payload byte:
//! - `0x01`: executes the wasm `unreachable` instruction;
//! - `0x02`: divides an integer by zero with the raw wasm instruction (an integer-division trap);
//! - anything else, or an empty payload: panics with `codec panicked on purpose`.

use core::hint::black_box;
use sluice_sdk::{Codec, CodecError, Uplink, Value};

/// Dies on every message.
struct Panic;

impl Codec for Panic {
    fn decode(msg: &Uplink) -> Result<Value, CodecError> {
        match msg.payload.first() {
            Some(0x01) => core::arch::wasm32::unreachable(),
            Some(0x02) => Ok(Value::from(divide(1, black_box(0)))),
            _ => panic!("codec panicked on purpose"),
        }
    }
}

/// Divides without Rust's zero check, so a zero divisor reaches the `i32.div_u` instruction
/// and the wasm runtime traps (Rust's own check would panic instead). Lying to the optimiser
/// is the point of this fixture; `black_box` keeps it from seeing the zero.
#[inline(never)]
fn divide(dividend: u32, divisor: u32) -> u32 {
    // SAFETY: not safe, deliberately: see above. On wasm32 the result is a trap.
    unsafe { core::hint::assert_unchecked(divisor != 0) };
    black_box(dividend) / divisor
}

sluice_sdk::export_codec!(Panic);
