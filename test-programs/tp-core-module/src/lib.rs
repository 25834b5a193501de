//! A core wasm module, not a component (built for wasm32-unknown-unknown): the host must
//! refuse it with an error that says it needs a component.

/// Always 42; exists so the module has an export.
#[unsafe(no_mangle)]
pub extern "C" fn decode() -> i32 {
    42
}
