//! Output formats of Sluice sinks: turns a decoded [`Document`] and the [`Uplink`] it came
//! from into the bytes a sink publishes.
//!
//! - [`OutputFormat::Json`], [`OutputFormat::Cbor`], [`OutputFormat::MessagePack`]: the same
//!   envelope object (device, port, time, tenant, binding, metadata, `data`) in three encodings.
//! - [`OutputFormat::Senml`]: a SenML pack (RFC 8428, JSON), one record per leaf.
//! - [`OutputFormat::InfluxLineProtocol`]: one InfluxDB line, one field per leaf.
//!
//! See `docs/formats.md` for an example of each.

mod envelope;
mod error;
mod leaves;
mod line_protocol;
mod senml;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sluice_types::{Document, Uplink};

pub use error::{FormatError, UnknownFormat};

/// The encoding a sink publishes documents in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// The envelope object as JSON (`json`).
    Json,
    /// The envelope object as CBOR, RFC 8949 (`cbor`).
    Cbor,
    /// The envelope object as MessagePack, maps with field names (`msgpack`).
    #[serde(rename = "msgpack")]
    MessagePack,
    /// A SenML pack, RFC 8428, in JSON (`senml`).
    Senml,
    /// One InfluxDB line-protocol point (`influx`).
    #[serde(rename = "influx")]
    InfluxLineProtocol,
}

impl OutputFormat {
    /// Every format, in the order they are documented.
    pub const ALL: [OutputFormat; 5] = [
        OutputFormat::Json,
        OutputFormat::Cbor,
        OutputFormat::MessagePack,
        OutputFormat::Senml,
        OutputFormat::InfluxLineProtocol,
    ];

    /// The name used in configuration (`json`, `cbor`, `msgpack`, `senml`, `influx`).
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Json => "json",
            OutputFormat::Cbor => "cbor",
            OutputFormat::MessagePack => "msgpack",
            OutputFormat::Senml => "senml",
            OutputFormat::InfluxLineProtocol => "influx",
        }
    }

    /// The media type a sink should label the bytes with (HTTP `Content-Type`, MQTT 5 content
    /// type, NATS header).
    pub fn content_type(self) -> &'static str {
        content_type(self)
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OutputFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutputFormat::ALL
            .into_iter()
            .find(|format| format.name() == s)
            .ok_or_else(|| UnknownFormat {
                value: s.to_string(),
            })
    }
}

/// What a sink publishes: the decoded document, the message it came from, and where it
/// travelled (tenant and binding).
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The message as the source received it.
    pub uplink: &'a Uplink,
    /// The document the codec decoded (or the router replaced).
    pub document: &'a Document,
    /// The tenant that owns the binding.
    pub tenant: &'a str,
    /// The binding the message travelled through.
    pub binding: &'a str,
}

/// Encodes `envelope` in `format`.
///
/// ```
/// use serde_json::json;
/// use sluice_formats::{Envelope, OutputFormat, encode};
/// use sluice_types::{Document, Uplink};
///
/// let mut uplink = Uplink::new("eui-01", 1, vec![0x01]);
/// uplink.received_at_ms = 1_700_000_000_123;
/// let document = Document::from_value(json!({"temperature_3": 27.2, "count": 4}))?;
/// let envelope = Envelope { uplink: &uplink, document: &document, tenant: "acme", binding: "farm" };
/// let line = encode(OutputFormat::InfluxLineProtocol, &envelope)?;
/// assert_eq!(
///     line,
///     b"farm,device=eui-01,tenant=acme count=4i,temperature_3=27.2 1700000000123000000\n"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(format: OutputFormat, envelope: &Envelope<'_>) -> Result<Vec<u8>, FormatError> {
    match format {
        OutputFormat::Json => serde_json::to_vec(&envelope::Record::new(envelope)).map_err(|e| {
            FormatError::Serialize {
                format,
                reason: e.to_string(),
            }
        }),
        OutputFormat::Cbor => {
            let mut out = Vec::new();
            ciborium::into_writer(&envelope::Record::new(envelope), &mut out).map_err(|e| {
                FormatError::Serialize {
                    format,
                    reason: e.to_string(),
                }
            })?;
            Ok(out)
        }
        OutputFormat::MessagePack => rmp_serde::to_vec_named(&envelope::Record::new(envelope))
            .map_err(|e| FormatError::Serialize {
                format,
                reason: e.to_string(),
            }),
        OutputFormat::Senml => senml::encode(envelope),
        OutputFormat::InfluxLineProtocol => line_protocol::encode(envelope),
    }
}

/// The media type of `format`: `application/json`, `application/cbor`,
/// `application/msgpack`, `application/senml+json` or `text/plain; charset=utf-8`.
pub fn content_type(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Json => "application/json",
        OutputFormat::Cbor => "application/cbor",
        OutputFormat::MessagePack => "application/msgpack",
        OutputFormat::Senml => "application/senml+json",
        OutputFormat::InfluxLineProtocol => "text/plain; charset=utf-8",
    }
}
