use serde::{Deserialize, Serialize};

use crate::Document;

/// A device message as a source received it: the input of a codec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uplink {
    /// The device that sent the frame, as the source named it.
    pub device_id: String,
    /// Application port (LoRaWAN fPort or an equivalent); 0 when the source has none.
    pub port: u16,
    /// When the host received the frame, in milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// The raw frame.
    #[serde(with = "hex_bytes")]
    pub payload: Vec<u8>,
    /// Source metadata, in the order the source gave it.
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
}

impl Uplink {
    /// A message for `device_id` on `port` with `payload`, received now, without metadata.
    pub fn new(device_id: impl Into<String>, port: u16, payload: impl Into<Vec<u8>>) -> Self {
        let received_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self {
            device_id: device_id.into(),
            port,
            received_at_ms,
            payload: payload.into(),
            metadata: Vec::new(),
        }
    }
}

/// A document to encode into a frame for a device: the input of a codec's encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Downlink {
    /// The device the frame is for.
    pub device_id: String,
    /// The port the platform proposes.
    pub port: u16,
    /// The document to encode.
    pub document: Document,
    /// Metadata attached by the platform.
    #[serde(default)]
    pub metadata: Vec<(String, String)>,
}

/// A frame produced by a codec's encoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedDownlink {
    /// The port to send the frame on.
    pub port: u16,
    /// The frame.
    #[serde(with = "hex_bytes")]
    pub payload: Vec<u8>,
}

/// One routing decision of a router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// A named output of the binding.
    pub output: String,
    /// Replaces the decoded document for this output when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Document>,
    /// When present, the message is dropped for this output with this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<String>,
}

/// Which world of the contract a module implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `sluice:codec/codec`: decode-uplink and encode-downlink.
    Codec,
    /// `sluice:codec/router`: route.
    Router,
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            World::Codec => "sluice:codec/codec@0.1.0",
            World::Router => "sluice:codec/router@0.1.0",
        })
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("hex string has an odd length"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(&text[i..i + 2], 16)
                    .map_err(|_| serde::de::Error::custom(format!("not hex at offset {i}")))
            })
            .collect()
    }
}
