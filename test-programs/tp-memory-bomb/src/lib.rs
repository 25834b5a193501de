//! A codec whose decode allocates 1 MiB chunks forever and writes into every 4 KiB of each: the
//! host's memory limit must stop it (the refused `memory.grow` makes the allocator abort, which
//! traps).

use core::hint::black_box;
use sluice_sdk::{Codec, CodecError, Uplink, Value};

const CHUNK_BYTES: usize = 1 << 20;
const TOUCH_STRIDE_BYTES: usize = 4096;

/// Grows memory without bound.
struct MemoryBomb;

impl Codec for MemoryBomb {
    fn decode(_msg: &Uplink) -> Result<Value, CodecError> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK_BYTES];
            for (i, byte) in chunk.iter_mut().step_by(TOUCH_STRIDE_BYTES).enumerate() {
                *byte = i as u8 | 1;
            }
            chunks.push(black_box(chunk));
        }
    }
}

sluice_sdk::export_codec!(MemoryBomb);
