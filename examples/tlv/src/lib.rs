//! A type-length-value frame decoder.
//!
//! A frame is a sequence of items `[type u8][length u8][value: length bytes]`; integers are
//! big-endian. Each type appears at most once:
//!
//! | type | document key       | value                                    | length   |
//! |------|--------------------|------------------------------------------|----------|
//! | 0x01 | `temperature`      | i16, 0.01 °C                             | 2        |
//! | 0x02 | `battery_mv`       | u16, mV                                  | 2        |
//! | 0x03 | `firmware_version` | UTF-8 text                               | 0–255    |
//! | 0x04 | `counter`          | u32                                      | 4        |
//! | 0x05 | `location`         | `{latitude, longitude}`: 2 × i32, 1e-7 ° | 8        |
//!
//! The codec decodes only; downlinks are refused as unsupported (the SDK's default).

use sluice_sdk::{Codec, CodecError, Map, Uplink, Value, json};

/// Type code of the device temperature.
pub const TEMPERATURE: u8 = 0x01;
/// Type code of the battery voltage.
pub const BATTERY: u8 = 0x02;
/// Type code of the firmware version string.
pub const FIRMWARE_VERSION: u8 = 0x03;
/// Type code of the message counter.
pub const COUNTER: u8 = 0x04;
/// Type code of the location.
pub const LOCATION: u8 = 0x05;

/// Decodes a TLV frame into a document with one key per item.
///
/// Errors: an empty frame, an item running past the end, a fixed-size type with the wrong
/// length, text that is not UTF-8, a location out of range or a repeated type is invalid
/// input; an unknown type code is unsupported.
pub fn decode(frame: &[u8]) -> Result<Value, CodecError> {
    if frame.is_empty() {
        return Err(CodecError::invalid_input("empty payload"));
    }
    let mut document = Map::new();
    let mut offset = 0;
    while let Some(&code) = frame.get(offset) {
        let Some(&length) = frame.get(offset + 1) else {
            return Err(CodecError::invalid_input(format!(
                "truncated item at offset {offset}: type 0x{code:02x} has no length byte"
            )));
        };
        let start = offset + 2;
        let end = start + usize::from(length);
        let value = frame.get(start..end).ok_or_else(|| {
            CodecError::invalid_input(format!(
                "truncated item at offset {offset}: type 0x{code:02x} has length {length}, \
                 {} bytes left",
                frame.len() - start
            ))
        })?;
        let (key, decoded) = decode_item(code, value, offset)?;
        if document.contains_key(key) {
            return Err(CodecError::invalid_input(format!(
                "duplicate {key} (type 0x{code:02x}) at offset {offset}"
            )));
        }
        document.insert(key.to_owned(), decoded);
        offset = end;
    }
    Ok(Value::Object(document))
}

/// Decodes the value of one item; `offset` is where the item starts, for errors.
fn decode_item(code: u8, value: &[u8], offset: usize) -> Result<(&'static str, Value), CodecError> {
    match code {
        TEMPERATURE => {
            let raw = i16::from_be_bytes(fixed(code, "temperature", value, offset)?);
            Ok(("temperature", json!(f64::from(raw) / 100.0)))
        }
        BATTERY => {
            let raw = u16::from_be_bytes(fixed(code, "battery_mv", value, offset)?);
            Ok(("battery_mv", json!(raw)))
        }
        FIRMWARE_VERSION => {
            let text = std::str::from_utf8(value).map_err(|e| {
                CodecError::invalid_input(format!(
                    "firmware_version (type 0x{code:02x}) at offset {offset} is not valid \
                     UTF-8: {e}"
                ))
            })?;
            Ok(("firmware_version", json!(text)))
        }
        COUNTER => {
            let raw = u32::from_be_bytes(fixed(code, "counter", value, offset)?);
            Ok(("counter", json!(raw)))
        }
        LOCATION => {
            let raw: [u8; 8] = fixed(code, "location", value, offset)?;
            let (lat, lon) = raw.split_at(4);
            let latitude = degrees(lat);
            let longitude = degrees(lon);
            if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
                return Err(CodecError::invalid_input(format!(
                    "location at offset {offset} is out of range: latitude {latitude}, \
                     longitude {longitude}"
                )));
            }
            Ok((
                "location",
                json!({ "latitude": latitude, "longitude": longitude }),
            ))
        }
        _ => Err(CodecError::unsupported(format!(
            "unknown TLV type 0x{code:02x} at offset {offset}"
        ))),
    }
}

/// The value as exactly `N` bytes, or an error naming the item and both lengths.
fn fixed<const N: usize>(
    code: u8,
    name: &str,
    value: &[u8],
    offset: usize,
) -> Result<[u8; N], CodecError> {
    value.try_into().map_err(|_| {
        CodecError::invalid_input(format!(
            "{name} (type 0x{code:02x}) at offset {offset} has length {}, expected {N}",
            value.len()
        ))
    })
}

/// A big-endian i32 in units of 1e-7 degrees, as degrees (by division, so the result is the
/// double nearest the decimal).
fn degrees(bytes: &[u8]) -> f64 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(bytes);
    f64::from(i32::from_be_bytes(raw)) / 1e7
}

/// The TLV codec as a Sluice module; it decodes only.
pub struct Tlv;

impl Codec for Tlv {
    fn decode(message: &Uplink) -> Result<Value, CodecError> {
        decode(&message.payload)
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export_codec!(Tlv);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::ErrorKind;

    #[test]
    fn decode_sign_extends_temperature() {
        assert_eq!(
            decode(&[0x01, 0x02, 0xff, 0x9c]).expect("decodes"),
            json!({"temperature": -1.0})
        );
        assert_eq!(
            decode(&[0x01, 0x02, 0x80, 0x00]).expect("decodes"),
            json!({"temperature": -327.68})
        );
    }

    #[test]
    fn decode_reads_counter_as_unsigned() {
        assert_eq!(
            decode(&[0x04, 0x04, 0xff, 0xff, 0xff, 0xff]).expect("decodes"),
            json!({"counter": 4_294_967_295u32})
        );
    }

    #[test]
    fn decode_scales_negative_coordinates_exactly() {
        let mut frame = vec![0x05, 0x08];
        frame.extend((-338_688_000i32).to_be_bytes());
        frame.extend(1_512_093_000i32.to_be_bytes());
        assert_eq!(
            decode(&frame).expect("decodes"),
            json!({"location": {"latitude": -33.8688, "longitude": 151.2093}})
        );
    }

    #[test]
    fn decode_accepts_an_empty_string() {
        assert_eq!(
            decode(&[0x03, 0x00]).expect("decodes"),
            json!({"firmware_version": ""})
        );
    }

    #[test]
    fn decode_rejects_length_running_past_the_end() {
        let err = decode(&[0x02, 0x02, 0x0c, 0xe4, 0x03, 0x05, b'1', b'.']).expect_err("overrun");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(
            err.message.contains("truncated item at offset 4"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("length 5, 2 bytes left"),
            "{}",
            err.message
        );
    }

    #[test]
    fn decode_rejects_wrong_fixed_length() {
        let err = decode(&[0x04, 0x02, 0x00, 0x01]).expect_err("short counter");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(
            err.message.contains("has length 2, expected 4"),
            "{}",
            err.message
        );
    }

    #[test]
    fn decode_rejects_invalid_utf8() {
        let err = decode(&[0x03, 0x02, 0xc3, 0x28]).expect_err("bad utf-8");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.contains("not valid UTF-8"));
    }

    #[test]
    fn decode_names_unknown_type_in_hex() {
        let err = decode(&[0x01, 0x02, 0x00, 0x00, 0x7e, 0x00]).expect_err("unknown");
        assert_eq!(err.kind, ErrorKind::Unsupported);
        assert!(err.message.contains("0x7e at offset 4"), "{}", err.message);
    }

    #[test]
    fn decode_rejects_a_repeated_type() {
        let err = decode(&[0x02, 0x02, 0x00, 0x01, 0x02, 0x02, 0x00, 0x02]).expect_err("twice");
        assert!(err.message.contains("duplicate battery_mv"));
    }
}
