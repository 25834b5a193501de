//! Types shared by every Sluice crate: device messages, documents, limits and the typed
//! outcome of running a guest.
//!
//! Nothing here knows about wasmtime, queues or tenants; every type serializes, so outcomes
//! can be stored (dead-letter queue) and shown (API, CLI) as they are.

mod document;
mod error;
mod limits;
mod message;

pub use document::{Document, DocumentError, MAX_DOCUMENT_DEPTH};
pub use error::{CodecError, CodecErrorKind, GuestFailure, ModuleRef, TrapKind, ValidationError};
pub use limits::{ClockMode, Grants, LimitError, Limits, ModulePolicy};
pub use message::{Decision, Downlink, EncodedDownlink, Uplink, World};
