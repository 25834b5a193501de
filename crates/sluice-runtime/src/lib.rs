//! The Sluice sandbox.
//!
//! [`Runtime`] owns a wasmtime engine configured for untrusted code (fuel, epoch deadlines,
//! pooling allocator, bounded stack). [`Runtime::load`] validates a component against the
//! guest contract and the module's [`ModulePolicy`], compiles it (cached by content hash) and
//! pre-links it. [`Module::instantiate`] gives an [`Instance`] that runs one call per message
//! and returns a [`CallOutcome`]: the typed result and a [`CallReport`] (fuel, time, logs).
//!
//! Instances are reused across messages: the reactor keeps its memory between calls, which
//! is ~20× cheaper than instantiating per message. After any trap or limit breach the
//! instance is discarded and the next call gets a fresh one. Modules that ask for it
//! (`fresh_instance_per_call`) get a new instance for every message.

mod bindings;
mod engine;
mod host;
mod instance;
mod validate;

pub use engine::{Module, Runtime, RuntimeConfig, RuntimeError};
pub use host::{
    InstanceEnv, LogLevel, LogLine, MAX_METRIC_NAME_BYTES, MAX_METRIC_NAMES_PER_CALL,
    MAX_STATE_KEY_BYTES, MemoryStateStore, MetricUpdate, StateStore, StateStoreError,
};
pub use instance::{CallOutcome, CallReport, Instance};
pub use validate::ComponentInfo;

pub use sluice_types as types;
