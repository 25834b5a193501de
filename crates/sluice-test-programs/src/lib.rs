//! Guest fixtures for tests and benchmarks, built to wasm by this crate's build script.
//!
//! Each constant is the absolute path of one built program: the good and hostile programs of
//! `test-programs/` (`TP_*`) and, when that workspace exists, the example codecs of `examples/`.
//! [`ALL`] lists them all. [`garbage_bytes`] and [`truncated_component`] are inputs that are not
//! wasm at all.
//!
//! ```ignore
//! let component = std::fs::read(sluice_test_programs::TP_ECHO)?;
//! ```

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// Length of [`garbage_bytes`].
const GARBAGE_BYTES: usize = 4096;

/// A fixed pseudo-random 4 KiB buffer that is not wasm (it does not start with `\0asm`): the
/// host must refuse it as a module. The same bytes on every call.
pub fn garbage_bytes() -> Vec<u8> {
    // xorshift64*, fixed seed: deterministic without a dependency.
    let mut state: u64 = 0x5EED_C0DE_CAFE_F00D;
    let mut bytes = Vec::with_capacity(GARBAGE_BYTES);
    while bytes.len() < GARBAGE_BYTES {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    bytes
}

/// The first half of the [`TP_ECHO`] component: a valid header followed by a cut-off body,
/// which the host must refuse without panicking.
///
/// # Panics
///
/// When the built component cannot be read (the build script built it, so this is a broken
/// target directory).
pub fn truncated_component() -> Vec<u8> {
    let mut bytes = std::fs::read(TP_ECHO)
        .unwrap_or_else(|e| panic!("cannot read the echo component at {TP_ECHO}: {e}"));
    bytes.truncate(bytes.len() / 2);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const WASM_MAGIC: &[u8] = b"\0asm";

    #[test]
    fn every_program_was_built_as_wasm() {
        assert!(!ALL.is_empty());
        for (name, path) in ALL {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{name} at {path}: {e}"));
            assert!(
                bytes.starts_with(WASM_MAGIC),
                "{name} at {path} is not wasm"
            );
        }
    }

    #[test]
    fn core_module_is_not_a_component_and_echo_is() {
        let version = |path: &str| {
            std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))[4..8].to_vec()
        };
        // Core modules are version 1; components are version 0x0d, layer 1.
        assert_eq!(version(TP_CORE_MODULE), [1, 0, 0, 0]);
        assert_eq!(version(TP_ECHO), [0x0d, 0, 1, 0]);
    }

    #[test]
    fn garbage_is_fixed_4_kib_and_not_wasm() {
        let garbage = garbage_bytes();
        assert_eq!(garbage.len(), 4096);
        assert!(!garbage.starts_with(WASM_MAGIC));
        assert_eq!(garbage, garbage_bytes());
    }

    #[test]
    fn truncated_component_is_half_of_echo_with_a_wasm_header() {
        let full = std::fs::read(TP_ECHO).unwrap_or_else(|e| panic!("{TP_ECHO}: {e}"));
        let truncated = truncated_component();
        assert_eq!(truncated.len(), full.len() / 2);
        assert!(truncated.starts_with(WASM_MAGIC));
    }
}
