//! Cayenne Low Power Payload (LPP) codec.
//!
//! An LPP frame is a sequence of items `[channel u8][type u8][data]`, all integers big-endian,
//! with the data size and resolution fixed by the type (the IPSO types of the myDevices
//! specification). The decoded document names each value `<type>_<channel>`, as The Things
//! Network and ChirpStack do:
//!
//! ```text
//! 03 67 01 10  05 68 64   ->  {"temperature_3": 27.2, "humidity_5": 50.0}
//! ```
//!
//! Encoding takes the same document and produces the frame, items sorted by channel then type,
//! so `encode(decode(frame)) == frame` for every frame in that order.

use sluice_sdk::{Codec, CodecError, Downlink, Encoded, Map, Uplink, Value};

/// How one integer is stored on the wire: `value = raw / divisor`.
#[derive(Debug, Clone, Copy)]
struct Scalar {
    bytes: usize,
    signed: bool,
    divisor: u32,
}

impl Scalar {
    const fn new(bytes: usize, signed: bool, divisor: u32) -> Self {
        Self {
            bytes,
            signed,
            divisor,
        }
    }

    /// The smallest and largest raw integer the field holds.
    fn raw_range(self) -> (i64, i64) {
        let bits = 8 * self.bytes as u32;
        if self.signed {
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        } else {
            (0, (1 << bits) - 1)
        }
    }

    /// Reads the big-endian integer in `data` (exactly `self.bytes` long), sign-extending.
    fn read_raw(self, data: &[u8]) -> i64 {
        let unsigned = data
            .iter()
            .fold(0i64, |acc, &byte| (acc << 8) | i64::from(byte));
        let negative = self.signed && data.first().is_some_and(|b| b & 0x80 != 0);
        if negative {
            unsigned - (1 << (8 * data.len()))
        } else {
            unsigned
        }
    }

    /// The document value: an integer when the resolution is 1, otherwise `raw / divisor`.
    ///
    /// Dividing (rather than multiplying by 0.1) gives the double nearest the decimal, so
    /// `0x0110` decodes to exactly the JSON number `27.2`.
    fn decode(self, data: &[u8]) -> Value {
        let raw = self.read_raw(data);
        if self.divisor == 1 {
            Value::from(raw)
        } else {
            Value::from(raw as f64 / f64::from(self.divisor))
        }
    }

    /// Appends `value` to `out`, rounded to the field's resolution; `what` names it in errors.
    fn encode(self, value: &Value, what: &str, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let number = value.as_f64().ok_or_else(|| {
            CodecError::invalid_input(format!("{what} must be a number, got {value}"))
        })?;
        let divisor = f64::from(self.divisor);
        let raw = (number * divisor).round();
        let (min, max) = self.raw_range();
        if !(min as f64..=max as f64).contains(&raw) {
            return Err(CodecError::invalid_input(format!(
                "{what} = {number} is out of range {}..={}",
                min as f64 / divisor,
                max as f64 / divisor
            )));
        }
        // In range, so the low `bytes` bytes are the two's complement encoding.
        out.extend_from_slice(&(raw as i64).to_be_bytes()[8 - self.bytes..]);
        Ok(())
    }
}

/// The layout of one LPP type's data.
#[derive(Debug)]
enum Shape {
    /// One number.
    Number(Scalar),
    /// A map of named numbers, stored in this order (accelerometer, gyrometer, GPS).
    Fields(&'static [(&'static str, Scalar)]),
}

/// One IPSO type of the LPP specification.
#[derive(Debug)]
struct LppType {
    code: u8,
    name: &'static str,
    shape: Shape,
}

impl LppType {
    /// Bytes of data after the type byte.
    fn size(&self) -> usize {
        match &self.shape {
            Shape::Number(scalar) => scalar.bytes,
            Shape::Fields(fields) => fields.iter().map(|(_, s)| s.bytes).sum(),
        }
    }

    fn decode(&self, data: &[u8]) -> Value {
        match &self.shape {
            Shape::Number(scalar) => scalar.decode(data),
            Shape::Fields(fields) => {
                let mut map = Map::new();
                let mut rest = data;
                for (name, scalar) in *fields {
                    let (field, tail) = rest.split_at(scalar.bytes);
                    map.insert((*name).to_owned(), scalar.decode(field));
                    rest = tail;
                }
                Value::Object(map)
            }
        }
    }

    fn encode(&self, key: &str, value: &Value, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match &self.shape {
            Shape::Number(scalar) => scalar.encode(value, key, out),
            Shape::Fields(fields) => {
                let map = value.as_object().ok_or_else(|| {
                    let names: Vec<_> = fields.iter().map(|(n, _)| *n).collect();
                    CodecError::invalid_input(format!(
                        "{key} must be a map of {}, got {value}",
                        names.join(", ")
                    ))
                })?;
                if let Some(unknown) = map.keys().find(|k| !fields.iter().any(|(n, _)| n == k)) {
                    return Err(CodecError::invalid_input(format!(
                        "{key} has an unknown field {unknown}"
                    )));
                }
                for (name, scalar) in *fields {
                    let what = format!("{key}.{name}");
                    let field = map
                        .get(*name)
                        .ok_or_else(|| CodecError::invalid_input(format!("{what} is missing")))?;
                    scalar.encode(field, &what, out)?;
                }
                Ok(())
            }
        }
    }
}

const XYZ_MILLI: &[(&str, Scalar)] = &[
    ("x", Scalar::new(2, true, 1000)),
    ("y", Scalar::new(2, true, 1000)),
    ("z", Scalar::new(2, true, 1000)),
];

const XYZ_CENTI: &[(&str, Scalar)] = &[
    ("x", Scalar::new(2, true, 100)),
    ("y", Scalar::new(2, true, 100)),
    ("z", Scalar::new(2, true, 100)),
];

const GPS: &[(&str, Scalar)] = &[
    ("latitude", Scalar::new(3, true, 10_000)),
    ("longitude", Scalar::new(3, true, 10_000)),
    ("altitude", Scalar::new(3, true, 100)),
];

/// The standard LPP types: code, document name, layout.
const TYPES: &[LppType] = &[
    lpp(
        0x00,
        "digital_input",
        Shape::Number(Scalar::new(1, false, 1)),
    ),
    lpp(
        0x01,
        "digital_output",
        Shape::Number(Scalar::new(1, false, 1)),
    ),
    lpp(
        0x02,
        "analog_input",
        Shape::Number(Scalar::new(2, true, 100)),
    ),
    lpp(
        0x03,
        "analog_output",
        Shape::Number(Scalar::new(2, true, 100)),
    ),
    lpp(0x65, "luminosity", Shape::Number(Scalar::new(2, false, 1))),
    lpp(0x66, "presence", Shape::Number(Scalar::new(1, false, 1))),
    lpp(0x67, "temperature", Shape::Number(Scalar::new(2, true, 10))),
    lpp(0x68, "humidity", Shape::Number(Scalar::new(1, false, 2))),
    lpp(0x71, "accelerometer", Shape::Fields(XYZ_MILLI)),
    lpp(0x73, "barometer", Shape::Number(Scalar::new(2, false, 10))),
    lpp(0x86, "gyrometer", Shape::Fields(XYZ_CENTI)),
    lpp(0x88, "gps", Shape::Fields(GPS)),
];

const fn lpp(code: u8, name: &'static str, shape: Shape) -> LppType {
    LppType { code, name, shape }
}

/// Decodes an LPP frame into a `{"<type>_<channel>": value}` document.
///
/// Errors: an empty or truncated frame, or the same `<type>_<channel>` twice, is invalid input;
/// a type code outside the standard set is unsupported.
pub fn decode(frame: &[u8]) -> Result<Value, CodecError> {
    if frame.is_empty() {
        return Err(CodecError::invalid_input("empty payload"));
    }
    let mut document = Map::new();
    let mut offset = 0;
    while let Some(&channel) = frame.get(offset) {
        let Some(&code) = frame.get(offset + 1) else {
            return Err(CodecError::invalid_input(format!(
                "truncated frame at offset {offset}: channel {channel} has no type byte"
            )));
        };
        let lpp_type = TYPES.iter().find(|t| t.code == code).ok_or_else(|| {
            CodecError::unsupported(format!(
                "unknown LPP type 0x{code:02x} on channel {channel} at offset {}",
                offset + 1
            ))
        })?;
        let start = offset + 2;
        let end = start + lpp_type.size();
        let data = frame.get(start..end).ok_or_else(|| {
            CodecError::invalid_input(format!(
                "truncated {} on channel {channel} at offset {start}: needs {} bytes, {} left",
                lpp_type.name,
                lpp_type.size(),
                frame.len() - start
            ))
        })?;
        let key = format!("{}_{channel}", lpp_type.name);
        if document.contains_key(&key) {
            return Err(CodecError::invalid_input(format!(
                "duplicate {key} at offset {offset}"
            )));
        }
        document.insert(key, lpp_type.decode(data));
        offset = end;
    }
    Ok(Value::Object(document))
}

/// Encodes a `{"<type>_<channel>": value}` document into an LPP frame, items sorted by channel
/// then type code.
///
/// Errors: a key that names no LPP type is unsupported; a document that is not a non-empty
/// map, a channel over 255, a non-number value or a value out of the type's range is invalid.
pub fn encode(document: &Value) -> Result<Vec<u8>, CodecError> {
    let fields = document.as_object().ok_or_else(|| {
        CodecError::invalid_input(format!(
            "document must be a map of <type>_<channel> keys, got {document}"
        ))
    })?;
    if fields.is_empty() {
        return Err(CodecError::invalid_input(
            "document has no values to encode",
        ));
    }

    let mut items = Vec::with_capacity(fields.len());
    for (key, value) in fields {
        let (lpp_type, channel) = parse_key(key)?;
        items.push((channel, lpp_type, key.as_str(), value));
    }
    items.sort_by_key(|(channel, lpp_type, ..)| (*channel, lpp_type.code));
    if let Some(pair) = items
        .windows(2)
        .find(|w| (w[0].0, w[0].1.code) == (w[1].0, w[1].1.code))
    {
        return Err(CodecError::invalid_input(format!(
            "{} and {} name the same channel",
            pair[0].2, pair[1].2
        )));
    }

    let mut frame = Vec::new();
    for (channel, lpp_type, key, value) in items {
        frame.push(channel);
        frame.push(lpp_type.code);
        lpp_type.encode(key, value, &mut frame)?;
    }
    Ok(frame)
}

/// Splits `temperature_3` into its type and channel.
fn parse_key(key: &str) -> Result<(&'static LppType, u8), CodecError> {
    let unknown = || {
        CodecError::unsupported(format!(
            "unknown key {key}: expected <type>_<channel> with a Cayenne LPP type name"
        ))
    };
    let (name, channel) = key.rsplit_once('_').ok_or_else(unknown)?;
    let lpp_type = TYPES.iter().find(|t| t.name == name).ok_or_else(unknown)?;
    if channel.is_empty() || !channel.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unknown());
    }
    let channel = channel.parse::<u8>().map_err(|_| {
        CodecError::invalid_input(format!("{key}: channel {channel} is out of range 0..=255"))
    })?;
    Ok((lpp_type, channel))
}

/// The Cayenne LPP codec as a Sluice module. The downlink keeps the port the platform proposes.
pub struct CayenneLpp;

impl Codec for CayenneLpp {
    fn decode(message: &Uplink) -> Result<Value, CodecError> {
        decode(&message.payload)
    }

    fn encode(message: &Downlink) -> Result<Encoded, CodecError> {
        Ok(Encoded {
            port: message.port,
            payload: encode(&message.document)?,
        })
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export_codec!(CayenneLpp);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::{ErrorKind, json};

    fn hex(text: &str) -> Vec<u8> {
        let compact: String = text.split_whitespace().collect();
        (0..compact.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&compact[i..i + 2], 16).expect("test hex"))
            .collect()
    }

    #[test]
    fn signed_fields_sign_extend_from_their_own_width() {
        let one = Scalar::new(1, true, 1);
        let two = Scalar::new(2, true, 1);
        let three = Scalar::new(3, true, 1);
        assert_eq!(one.read_raw(&[0x80]), -128);
        assert_eq!(one.read_raw(&[0x7f]), 127);
        assert_eq!(two.read_raw(&[0xff, 0xd7]), -41);
        assert_eq!(two.read_raw(&[0x80, 0x00]), -32768);
        assert_eq!(three.read_raw(&[0xf2, 0x96, 0x0a]), -879_094);
        assert_eq!(three.read_raw(&[0x80, 0x00, 0x00]), -8_388_608);
        assert_eq!(three.read_raw(&[0x7f, 0xff, 0xff]), 8_388_607);
    }

    #[test]
    fn unsigned_fields_do_not_sign_extend() {
        assert_eq!(Scalar::new(2, false, 1).read_raw(&[0xff, 0xff]), 65_535);
        assert_eq!(Scalar::new(1, false, 1).read_raw(&[0xc8]), 200);
    }

    #[test]
    fn decode_scales_by_division_to_exact_decimals() {
        assert_eq!(
            decode(&hex("03 67 01 10 05 67 00 FF")).expect("decodes"),
            json!({"temperature_3": 27.2, "temperature_5": 25.5})
        );
        assert_eq!(
            decode(&hex("01 67 FF D7")).expect("decodes"),
            json!({"temperature_1": -4.1})
        );
    }

    #[test]
    fn decode_reads_gps_with_negative_longitude() {
        assert_eq!(
            decode(&hex("01 88 06 76 5f f2 96 0a 00 03 e8")).expect("decodes"),
            json!({"gps_1": {"latitude": 42.3519, "longitude": -87.9094, "altitude": 10.0}})
        );
    }

    #[test]
    fn decode_rejects_truncated_item_with_its_offset() {
        let err = decode(&hex("03 67 01")).expect_err("truncated");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(
            err.message
                .contains("truncated temperature on channel 3 at offset 2")
        );

        let err = decode(&hex("03 67 01 10 05")).expect_err("no type byte");
        assert!(err.message.contains("truncated frame at offset 4"));
    }

    #[test]
    fn decode_names_unknown_type_in_hex() {
        let err = decode(&hex("01 42 00")).expect_err("unknown");
        assert_eq!(err.kind, ErrorKind::Unsupported);
        assert!(err.message.contains("0x42"), "{}", err.message);
    }

    #[test]
    fn decode_rejects_a_channel_repeated_with_the_same_type() {
        let err = decode(&hex("01 67 00 01 01 67 00 02")).expect_err("duplicate");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.contains("duplicate temperature_1"));
    }

    #[test]
    fn every_type_round_trips_at_its_extremes() {
        for lpp_type in TYPES {
            for fill in [0x00u8, 0x7f, 0x80, 0xff] {
                let mut frame = vec![7, lpp_type.code];
                frame.extend(std::iter::repeat_n(fill, lpp_type.size()));
                let document = decode(&frame).expect("decodes");
                assert_eq!(
                    encode(&document).expect("encodes"),
                    frame,
                    "{} {document}",
                    lpp_type.name
                );
            }
        }
    }

    #[test]
    fn encode_sorts_items_by_channel_then_type() {
        let document = json!({"humidity_5": 50.0, "temperature_5": 25.5, "temperature_3": 27.2});
        assert_eq!(
            encode(&document).expect("encodes"),
            hex("03 67 01 10 05 67 00 ff 05 68 64")
        );
    }

    #[test]
    fn encode_rounds_to_resolution_and_checks_range() {
        assert_eq!(
            encode(&json!({"temperature_1": 27.24})).expect("encodes"),
            hex("01 67 01 10")
        );
        let err = encode(&json!({"temperature_1": 3276.8})).expect_err("too hot");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(
            err.message.contains("out of range -3276.8..=3276.7"),
            "{}",
            err.message
        );
        let err = encode(&json!({"humidity_1": -0.5})).expect_err("negative");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn encode_parses_keys_with_underscores_in_the_type_name() {
        assert_eq!(
            encode(&json!({"digital_input_3": 1, "analog_output_255": -0.01})).expect("encodes"),
            hex("03 00 01 ff 03 ff ff")
        );
    }

    #[test]
    fn encode_refuses_unknown_keys_and_bad_channels() {
        for key in [
            "pressure_1",
            "temperature",
            "temperature_x",
            "temperature_-1",
            "_1",
        ] {
            let err = encode(&json!({ key: 1 })).expect_err(key);
            assert_eq!(err.kind, ErrorKind::Unsupported, "{key}");
        }
        let err = encode(&json!({"temperature_256": 1})).expect_err("channel");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        let err = encode(&json!({"temperature_3": 1, "temperature_03": 2})).expect_err("same");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn encode_requires_every_field_of_a_composite_type() {
        let err = encode(&json!({"gps_1": {"latitude": 1, "longitude": 2}})).expect_err("alt");
        assert!(err.message.contains("gps_1.altitude is missing"));
        let err =
            encode(&json!({"accelerometer_1": {"x": 0, "y": 0, "z": 0, "w": 0}})).expect_err("w");
        assert!(err.message.contains("unknown field w"));
        let err = encode(&json!({"accelerometer_1": 1})).expect_err("not a map");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
    }
}
