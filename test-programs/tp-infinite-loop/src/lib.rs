//! A codec whose decode never returns: the host must interrupt it (epoch deadline or fuel).

use core::hint::black_box;
use sluice_sdk::{Codec, CodecError, Uplink, Value};

/// Spins forever.
struct InfiniteLoop;

impl Codec for InfiniteLoop {
    fn decode(_msg: &Uplink) -> Result<Value, CodecError> {
        // `black_box` keeps the optimiser from proving the loop has no effect.
        let mut spins = 0u64;
        loop {
            spins = black_box(spins.wrapping_add(1));
        }
    }
}

sluice_sdk::export_codec!(InfiniteLoop);
