//! The Sluice guest SDK.
//!
//! A codec is a type implementing [`Codec`]; a router is a type implementing [`Router`]. The
//! SDK generates the component bindings for the `sluice:codec@0.1.0` contract, converts
//! messages to plain Rust values, serializes documents and wraps the host calls
//! ([`log!`], [`config`], [`state`], [`clock`], [`metrics`]).
//!
//! ```ignore
//! use sluice_sdk::{Codec, CodecError, Uplink, Value, json};
//!
//! struct Thermo;
//!
//! impl Codec for Thermo {
//!     fn decode(msg: &Uplink) -> Result<Value, CodecError> {
//!         let [hi, lo] = msg.payload[..] else {
//!             return Err(CodecError::invalid_input("expected 2 bytes"));
//!         };
//!         Ok(json!({ "temperature": i16::from_be_bytes([hi, lo]) as f64 / 10.0 }))
//!     }
//! }
//!
//! sluice_sdk::export_codec!(Thermo);
//! ```

pub use serde_json::{self, Map, Value, json};

#[doc(hidden)]
pub mod bindings {
    //! Generated component bindings. Customers use the safe wrappers of the crate root.

    #[allow(missing_docs, unsafe_code, clippy::all)]
    pub mod codec {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "codec",
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "::sluice_sdk::bindings::codec",
            generate_all,
        });
    }

    #[allow(missing_docs, unsafe_code, clippy::all)]
    pub mod router {
        wit_bindgen::generate!({
            path: "../../wit",
            world: "router",
            pub_export_macro: true,
            export_macro_name: "export",
            default_bindings_module: "::sluice_sdk::bindings::router",
            with: {
                "sluice:codec/types@0.1.0": crate::bindings::codec::sluice::codec::types,
                "sluice:codec/log@0.1.0": crate::bindings::codec::sluice::codec::log,
                "sluice:codec/config@0.1.0": crate::bindings::codec::sluice::codec::config,
                "sluice:codec/state@0.1.0": crate::bindings::codec::sluice::codec::state,
                "sluice:codec/clock@0.1.0": crate::bindings::codec::sluice::codec::clock,
                "sluice:codec/metrics@0.1.0": crate::bindings::codec::sluice::codec::metrics,
            },
        });
    }
}

use bindings::codec::sluice::codec::types as wit;

/// A device message handed to a codec or router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// The device that sent the frame.
    pub device_id: String,
    /// Application port (LoRaWAN fPort or equivalent); 0 when the source has none.
    pub port: u16,
    /// When the host received the frame, in milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// The raw frame.
    pub payload: Vec<u8>,
    /// Source metadata, in the order the source gave it.
    pub metadata: Vec<(String, String)>,
}

impl Uplink {
    /// The first metadata value for `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A document to encode into a frame for a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Downlink {
    /// The device the frame is for.
    pub device_id: String,
    /// The port the platform proposes.
    pub port: u16,
    /// The document to encode.
    pub document: Value,
    /// Metadata attached by the platform.
    pub metadata: Vec<(String, String)>,
}

impl Downlink {
    /// The first metadata value for `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An encoded downlink frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The port to send the frame on.
    pub port: u16,
    /// The frame bytes.
    pub payload: Vec<u8>,
}

/// The kind of a [`CodecError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed: truncated, bad checksum, out-of-range field.
    InvalidInput,
    /// The input is well formed but not supported (unknown type, version or port).
    Unsupported,
    /// The codec itself failed.
    Internal,
}

/// A codec's typed refusal of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// What went wrong, in one word.
    pub kind: ErrorKind,
    /// What went wrong, for a human.
    pub message: String,
}

impl CodecError {
    /// The input is malformed.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::InvalidInput,
            message: message.into(),
        }
    }

    /// The input is well formed but not supported.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Unsupported,
            message: message.into(),
        }
    }

    /// The codec itself failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }
}

impl ErrorKind {
    /// The contract's name for the kind: `invalid-input`, `unsupported` or `internal`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for CodecError {}

/// One routing decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The named output of the binding.
    pub output: String,
    /// Replaces the decoded document for this output when present.
    pub document: Option<Value>,
    /// When present, the message is dropped for this output with this reason.
    pub drop_reason: Option<String>,
}

impl Decision {
    /// Send the decoded document, unchanged, to `output`.
    pub fn to(output: impl Into<String>) -> Self {
        Self {
            output: output.into(),
            document: None,
            drop_reason: None,
        }
    }

    /// Send `document` instead of the decoded one.
    pub fn with_document(mut self, document: Value) -> Self {
        self.document = Some(document);
        self
    }

    /// Drop the message for `output`, saying why.
    pub fn drop(output: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            output: output.into(),
            document: None,
            drop_reason: Some(reason.into()),
        }
    }
}

/// A codec: decodes uplink frames into documents, and encodes downlink documents into frames.
pub trait Codec {
    /// Decodes one frame. The returned value must be a JSON object.
    fn decode(message: &Uplink) -> Result<Value, CodecError>;

    /// Encodes one downlink. Codecs that do not encode keep the default, which refuses.
    fn encode(message: &Downlink) -> Result<Encoded, CodecError> {
        let _ = message;
        Err(CodecError::unsupported(
            "this codec does not encode downlinks",
        ))
    }
}

/// A router: decides which outputs a decoded message goes to.
pub trait Router {
    /// Returns the decisions for one decoded message (an empty list sends it nowhere).
    fn route(message: &Uplink, decoded: &Value) -> Result<Vec<Decision>, CodecError>;
}

/// Log levels for [`log!`].
pub use bindings::codec::sluice::codec::log::Level;

/// Writes one line to the module's log (levelled). Lines over the host's per-call cap are
/// dropped and counted by the host.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        $crate::write_log($level, &::std::format!($($arg)+))
    };
}

/// Logs at `info` level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Info, $($arg)+) };
}

/// Logs at `warn` level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Warn, $($arg)+) };
}

/// Logs at `debug` level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Debug, $($arg)+) };
}

/// Logs at `error` level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log!($crate::Level::Error, $($arg)+) };
}

/// Writes one log line; use the [`log!`] macro instead.
#[doc(hidden)]
pub fn write_log(level: Level, message: &str) {
    bindings::codec::sluice::codec::log::log(level, message);
}

/// Read-only configuration of the binding that runs this module.
pub mod config {
    use crate::bindings::codec::sluice::codec::config as host;

    /// The value of `key`, if the binding sets it.
    pub fn get(key: &str) -> Option<String> {
        host::get(key)
    }

    /// The value of `key` parsed as `T`, if set and parseable.
    pub fn parse<T: std::str::FromStr>(key: &str) -> Option<T> {
        host::get(key).and_then(|v| v.trim().parse().ok())
    }

    /// Every key the binding sets, sorted.
    pub fn keys() -> Vec<String> {
        host::keys()
    }
}

/// Per-device state kept by the host between messages of the same device.
pub mod state {
    use crate::bindings::codec::sluice::codec::state as host;

    pub use host::StateError;

    /// The bytes stored under `key` for the current device.
    pub fn get(key: &str) -> Option<Vec<u8>> {
        host::get(key)
    }

    /// Stores `value` under `key` for the current device.
    pub fn set(key: &str, value: &[u8]) -> Result<(), StateError> {
        host::set(key, value)
    }

    /// Removes `key` for the current device.
    pub fn delete(key: &str) {
        host::delete(key)
    }
}

/// The host-controlled clock: the message's time, frozen for the call.
pub mod clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms() -> u64 {
        crate::bindings::codec::sluice::codec::clock::now_ms()
    }
}

/// Milliseconds since the Unix epoch, from the host-controlled clock.
pub fn now_ms() -> u64 {
    clock::now_ms()
}

/// Custom metrics, aggregated by the host per module.
pub mod metrics {
    use crate::bindings::codec::sluice::codec::metrics as host;

    /// Adds `delta` to the counter `name`.
    pub fn increment(name: &str, delta: u64) {
        host::increment(name, delta)
    }

    /// Records `value` for the gauge `name`.
    pub fn gauge(name: &str, value: f64) {
        host::gauge(name, value)
    }
}

fn metadata_from_wit(entries: Vec<wit::MetadataEntry>) -> Vec<(String, String)> {
    entries.into_iter().map(|e| (e.key, e.value)).collect()
}

fn error_to_wit(error: CodecError) -> wit::CodecError {
    wit::CodecError {
        kind: match error.kind {
            ErrorKind::InvalidInput => wit::CodecErrorKind::InvalidInput,
            ErrorKind::Unsupported => wit::CodecErrorKind::Unsupported,
            ErrorKind::Internal => wit::CodecErrorKind::Internal,
        },
        message: error.message,
    }
}

fn document_to_wit(value: &Value) -> Result<wit::Document, wit::CodecError> {
    let bytes = serde_json::to_vec(value).map_err(|e| {
        error_to_wit(CodecError::internal(format!(
            "document does not serialize: {e}"
        )))
    })?;
    Ok(wit::Document {
        format: wit::DocumentFormat::Json,
        bytes,
    })
}

fn document_from_wit(document: &wit::Document) -> Result<Value, wit::CodecError> {
    let parsed = match document.format {
        wit::DocumentFormat::Json => serde_json::from_slice(&document.bytes)
            .map_err(|e| CodecError::invalid_input(format!("document is not valid JSON: {e}"))),
        wit::DocumentFormat::Cbor => Err(CodecError::unsupported(
            "this SDK reads JSON documents; the host sent CBOR",
        )),
    };
    parsed.map_err(error_to_wit)
}

fn uplink_from_wit(message: wit::Uplink) -> Uplink {
    Uplink {
        device_id: message.device_id,
        port: message.port,
        received_at_ms: message.received_at_ms,
        payload: message.payload,
        metadata: metadata_from_wit(message.metadata),
    }
}

/// Glue called by [`export_codec!`] and [`export_router!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    pub fn decode_uplink<C: Codec>(message: wit::Uplink) -> Result<wit::Document, wit::CodecError> {
        let message = uplink_from_wit(message);
        let value = C::decode(&message).map_err(error_to_wit)?;
        document_to_wit(&value)
    }

    pub fn encode_downlink<C: Codec>(
        message: wit::Downlink,
    ) -> Result<wit::EncodedDownlink, wit::CodecError> {
        let document = document_from_wit(&message.document)?;
        let downlink = Downlink {
            device_id: message.device_id,
            port: message.port,
            document,
            metadata: metadata_from_wit(message.metadata),
        };
        let encoded = C::encode(&downlink).map_err(error_to_wit)?;
        Ok(wit::EncodedDownlink {
            port: encoded.port,
            payload: encoded.payload,
        })
    }

    pub fn route<R: Router>(
        message: wit::Uplink,
        decoded: wit::Document,
    ) -> Result<Vec<wit::Decision>, wit::CodecError> {
        let message = uplink_from_wit(message);
        let decoded = document_from_wit(&decoded)?;
        let decisions = R::route(&message, &decoded).map_err(error_to_wit)?;
        decisions
            .into_iter()
            .map(|d| {
                Ok(wit::Decision {
                    output: d.output,
                    document: d.document.as_ref().map(document_to_wit).transpose()?,
                    drop_reason: d.drop_reason,
                })
            })
            .collect()
    }
}

/// Exports a [`Codec`] implementation as the module's `codec` world.
///
/// Expands to nothing when not compiling to wasm, so the same crate can be unit-tested
/// natively.
#[macro_export]
macro_rules! export_codec {
    ($codec:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct __SluiceCodecExport;

        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings::codec::Guest for __SluiceCodecExport {
            fn decode_uplink(
                message: $crate::bindings::codec::sluice::codec::types::Uplink,
            ) -> ::core::result::Result<
                $crate::bindings::codec::sluice::codec::types::Document,
                $crate::bindings::codec::sluice::codec::types::CodecError,
            > {
                $crate::__private::decode_uplink::<$codec>(message)
            }

            fn encode_downlink(
                message: $crate::bindings::codec::sluice::codec::types::Downlink,
            ) -> ::core::result::Result<
                $crate::bindings::codec::sluice::codec::types::EncodedDownlink,
                $crate::bindings::codec::sluice::codec::types::CodecError,
            > {
                $crate::__private::encode_downlink::<$codec>(message)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings::codec::export!(__SluiceCodecExport);
    };
}

/// Exports a [`Router`] implementation as the module's `router` world.
///
/// Expands to nothing when not compiling to wasm.
#[macro_export]
macro_rules! export_router {
    ($router:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct __SluiceRouterExport;

        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings::router::Guest for __SluiceRouterExport {
            fn route(
                message: $crate::bindings::codec::sluice::codec::types::Uplink,
                decoded: $crate::bindings::codec::sluice::codec::types::Document,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::bindings::codec::sluice::codec::types::Decision>,
                $crate::bindings::codec::sluice::codec::types::CodecError,
            > {
                $crate::__private::route::<$router>(message, decoded)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings::router::export!(__SluiceRouterExport);
    };
}
