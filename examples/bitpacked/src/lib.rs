//! A custom bit-packed sensor frame, protected by a CRC-8.
//!
//! Six bytes: a 40-bit body of fields at fixed bit offsets (bit 0 is the most significant bit
//! of byte 0), then a CRC-8 of the body. The layout is in `README.md` next to this crate and
//! in the field constants below; this is the kind of format a firmware team invents to fit a
//! reading into a small LoRaWAN frame.

use sluice_sdk::{Codec, CodecError, Downlink, Encoded, Map, Uplink, Value, json};

/// The only frame version this codec reads and writes.
pub const VERSION: u8 = 1;

/// Bytes in a version 1 frame: the 5-byte body and the CRC.
pub const FRAME_BYTES: usize = 6;

const BODY_BYTES: usize = FRAME_BYTES - 1;
const BODY_BITS: u32 = 8 * BODY_BYTES as u32;

/// Thermostat modes, indexed by their 3-bit code; codes 6 and 7 are reserved.
pub const MODES: [&str; 6] = ["off", "eco", "comfort", "boost", "away", "frost_protection"];

/// A field of the body: `width` bits starting `offset` bits from the most significant bit.
#[derive(Debug, Clone, Copy)]
struct Field {
    offset: u32,
    width: u32,
}

impl Field {
    const fn new(offset: u32, width: u32) -> Self {
        Self { offset, width }
    }

    fn mask(self) -> u64 {
        (1 << self.width) - 1
    }

    fn shift(self) -> u32 {
        BODY_BITS - self.offset - self.width
    }

    /// The field's bits of `body` (the body as a big-endian integer), unsigned.
    fn get(self, body: u64) -> u64 {
        (body >> self.shift()) & self.mask()
    }

    /// The field's bits of `body` as a two's complement number of `width` bits.
    fn get_signed(self, body: u64) -> i64 {
        let unused = 64 - self.width;
        ((self.get(body) << unused) as i64) >> unused
    }

    /// Writes the low `width` bits of `value` into `body` (the caller checked the range).
    fn set(self, body: &mut u64, value: u64) {
        *body = (*body & !(self.mask() << self.shift())) | ((value & self.mask()) << self.shift());
    }
}

const VERSION_FIELD: Field = Field::new(0, 4);
const TEMPERATURE: Field = Field::new(4, 12);
const HUMIDITY: Field = Field::new(16, 7);
const BATTERY: Field = Field::new(23, 10);
const DOOR_OPEN: Field = Field::new(33, 1);
const ALARM: Field = Field::new(34, 1);
const MODE: Field = Field::new(35, 3);
// Bits 38..40 are reserved: written as 0, ignored when read.

/// Temperature resolution: raw units per °C.
const TEMPERATURE_PER_DEGREE: f64 = 10.0;
/// Battery resolution: millivolts per raw unit.
const BATTERY_MV_PER_STEP: u64 = 5;
/// Humidity is a percentage; raw values above this are invalid.
const HUMIDITY_MAX: u64 = 100;

/// CRC-8 with polynomial 0x07, initial value 0x00, no reflection and no final XOR
/// (the CRC-8/SMBUS parameters), computed bit by bit.
pub fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |mut crc, &byte| {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// Decodes a version 1 frame into
/// `{"temperature", "humidity", "battery_mv", "door_open", "alarm", "mode"}`.
///
/// Errors: an empty frame, a frame of the wrong length, a CRC mismatch or an out-of-range
/// humidity is invalid input; another version, or a reserved mode, is unsupported.
pub fn decode(frame: &[u8]) -> Result<Value, CodecError> {
    let Some(&first) = frame.first() else {
        return Err(CodecError::invalid_input("empty payload"));
    };
    let version = first >> 4;
    if version != VERSION {
        return Err(CodecError::unsupported(format!(
            "frame version {version} is not supported; this codec reads version {VERSION}"
        )));
    }
    if frame.len() != FRAME_BYTES {
        let what = if frame.len() < FRAME_BYTES {
            "truncated frame"
        } else {
            "frame too long"
        };
        return Err(CodecError::invalid_input(format!(
            "{what}: version {VERSION} frames are {FRAME_BYTES} bytes, got {}",
            frame.len()
        )));
    }
    let (body, crc) = frame.split_at(BODY_BYTES);
    let expected = crc8(body);
    if crc[0] != expected {
        return Err(CodecError::invalid_input(format!(
            "crc mismatch: expected 0x{expected:02x} (computed over bytes 0..{BODY_BYTES}), \
             actual 0x{:02x} (byte {BODY_BYTES})",
            crc[0]
        )));
    }

    let body = body.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let humidity = HUMIDITY.get(body);
    if humidity > HUMIDITY_MAX {
        return Err(CodecError::invalid_input(format!(
            "humidity {humidity} % is out of range 0..={HUMIDITY_MAX}"
        )));
    }
    let mode_code = MODE.get(body);
    let mode = usize::try_from(mode_code)
        .ok()
        .and_then(|code| MODES.get(code))
        .ok_or_else(|| CodecError::unsupported(format!("mode {mode_code} is reserved")))?;

    Ok(json!({
        "temperature": TEMPERATURE.get_signed(body) as f64 / TEMPERATURE_PER_DEGREE,
        "humidity": humidity,
        "battery_mv": BATTERY.get(body) * BATTERY_MV_PER_STEP,
        "door_open": DOOR_OPEN.get(body) == 1,
        "alarm": ALARM.get(body) == 1,
        "mode": mode,
    }))
}

/// Encodes a document of the shape [`decode`] returns into a version 1 frame with its CRC.
///
/// Values are rounded to the field's resolution (0.1 °C, 1 %, 5 mV). Errors: a missing,
/// unknown, mistyped or out-of-range field, or an unknown mode, is invalid input.
pub fn encode(document: &Value) -> Result<Vec<u8>, CodecError> {
    let fields = document.as_object().ok_or_else(|| {
        CodecError::invalid_input(format!("document must be a map, got {document}"))
    })?;
    const KNOWN: [&str; 6] = [
        "temperature",
        "humidity",
        "battery_mv",
        "door_open",
        "alarm",
        "mode",
    ];
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(CodecError::invalid_input(format!(
            "unknown field {unknown}; this frame carries {}",
            KNOWN.join(", ")
        )));
    }

    let mut body = 0u64;
    VERSION_FIELD.set(&mut body, u64::from(VERSION));
    let temperature = number(fields, "temperature", TEMPERATURE_PER_DEGREE, -2048, 2047)?;
    TEMPERATURE.set(&mut body, temperature as u64);
    let humidity = number(fields, "humidity", 1.0, 0, HUMIDITY_MAX as i64)?;
    HUMIDITY.set(&mut body, humidity as u64);
    let battery = number(
        fields,
        "battery_mv",
        1.0 / BATTERY_MV_PER_STEP as f64,
        0,
        1023,
    )?;
    BATTERY.set(&mut body, battery as u64);
    DOOR_OPEN.set(&mut body, u64::from(flag(fields, "door_open")?));
    ALARM.set(&mut body, u64::from(flag(fields, "alarm")?));
    let mode = field(fields, "mode")?;
    let code = mode
        .as_str()
        .and_then(|name| MODES.iter().position(|m| *m == name))
        .ok_or_else(|| {
            CodecError::invalid_input(format!(
                "mode must be one of {}, got {mode}",
                MODES.join(", ")
            ))
        })?;
    MODE.set(&mut body, code as u64);

    let mut frame = body.to_be_bytes()[8 - BODY_BYTES..].to_vec();
    frame.push(crc8(&frame));
    Ok(frame)
}

fn field<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a Value, CodecError> {
    fields
        .get(name)
        .ok_or_else(|| CodecError::invalid_input(format!("{name} is missing")))
}

/// The raw value of a numeric field: `round(value * per_unit)`, checked against `min..=max`.
fn number(
    fields: &Map<String, Value>,
    name: &str,
    per_unit: f64,
    min: i64,
    max: i64,
) -> Result<i64, CodecError> {
    let value = field(fields, name)?;
    let number = value.as_f64().ok_or_else(|| {
        CodecError::invalid_input(format!("{name} must be a number, got {value}"))
    })?;
    let raw = (number * per_unit).round();
    if !(min as f64..=max as f64).contains(&raw) {
        return Err(CodecError::invalid_input(format!(
            "{name} = {number} is out of range {}..={}",
            min as f64 / per_unit,
            max as f64 / per_unit
        )));
    }
    Ok(raw as i64)
}

fn flag(fields: &Map<String, Value>, name: &str) -> Result<bool, CodecError> {
    let value = field(fields, name)?;
    value.as_bool().ok_or_else(|| {
        CodecError::invalid_input(format!("{name} must be true or false, got {value}"))
    })
}

/// The bit-packed codec as a Sluice module. The downlink keeps the port the platform proposes.
pub struct Bitpacked;

impl Codec for Bitpacked {
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
sluice_sdk::export_codec!(Bitpacked);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::ErrorKind;

    fn reading() -> Value {
        json!({
            "temperature": 21.5,
            "humidity": 45,
            "battery_mv": 3300,
            "door_open": true,
            "alarm": false,
            "mode": "comfort",
        })
    }

    #[test]
    fn crc8_matches_the_published_check_value() {
        // CRC-8/SMBUS ("123456789" -> 0xF4), the standard check for poly 0x07, init 0x00.
        assert_eq!(crc8(b"123456789"), 0xf4);
        assert_eq!(crc8(&[]), 0x00);
        assert_eq!(crc8(&[0x01]), 0x07);
        assert_eq!(crc8(&[0x80]), 0x89);
    }

    #[test]
    fn fields_tile_the_body_without_overlap() {
        let fields = [
            VERSION_FIELD,
            TEMPERATURE,
            HUMIDITY,
            BATTERY,
            DOOR_OPEN,
            ALARM,
            MODE,
        ];
        let mut next = 0;
        for f in fields {
            assert_eq!(f.offset, next, "fields are contiguous");
            next += f.width;
        }
        assert!(next <= BODY_BITS);
    }

    #[test]
    fn field_extracts_bits_that_straddle_bytes() {
        // Battery occupies bits 23..33: the last bit of byte 2, all of byte 3, the first of 4.
        let body = 0x00_00_01_ff_80u64;
        assert_eq!(BATTERY.get(body), 0x3ff);
        assert_eq!(HUMIDITY.get(body), 0);
        assert_eq!(DOOR_OPEN.get(body), 0);
        let body = 0x00_00_00_00_40u64;
        assert_eq!(DOOR_OPEN.get(body), 1);
        assert_eq!(BATTERY.get(body), 0);
    }

    #[test]
    fn field_set_then_get_is_identity_and_leaves_neighbours_alone() {
        let mut body = u64::MAX >> (64 - BODY_BITS);
        BATTERY.set(&mut body, 0x155);
        assert_eq!(BATTERY.get(body), 0x155);
        assert_eq!(HUMIDITY.get(body), 0x7f);
        assert_eq!(DOOR_OPEN.get(body), 1);
    }

    #[test]
    fn twelve_bit_temperature_sign_extends() {
        let at = |raw: u64| {
            let mut body = 0;
            TEMPERATURE.set(&mut body, raw);
            TEMPERATURE.get_signed(body)
        };
        assert_eq!(at(0x7ff), 2047);
        assert_eq!(at(0x800), -2048);
        assert_eq!(at(0xfff), -1);
        assert_eq!(at(0xf38), -200);
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let frame = encode(&reading()).expect("encodes");
        assert_eq!(frame.len(), FRAME_BYTES);
        assert_eq!(frame[0] >> 4, VERSION);
        assert_eq!(decode(&frame).expect("decodes"), reading());
    }

    #[test]
    fn every_mode_and_flag_combination_round_trips() {
        for mode in MODES {
            for (door_open, alarm) in [(false, false), (true, false), (false, true), (true, true)] {
                let doc = json!({
                    "temperature": -204.8, "humidity": 100, "battery_mv": 5115,
                    "door_open": door_open, "alarm": alarm, "mode": mode,
                });
                let frame = encode(&doc).expect("encodes");
                assert_eq!(decode(&frame).expect("decodes"), doc);
            }
        }
    }

    #[test]
    fn decode_reports_expected_and_actual_crc() {
        let mut frame = encode(&reading()).expect("encodes");
        let good = frame[5];
        frame[5] ^= 0xff;
        let err = decode(&frame).expect_err("bad crc");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(
            err.message.contains(&format!("expected 0x{good:02x}")),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains(&format!("actual 0x{:02x}", good ^ 0xff))
        );
    }

    #[test]
    fn decode_detects_a_single_flipped_bit_anywhere() {
        let frame = encode(&reading()).expect("encodes");
        // Skip the version nibble: flipping it changes the version, reported first.
        for bit in 4..8 * FRAME_BYTES {
            let mut corrupt = frame.clone();
            corrupt[bit / 8] ^= 0x80 >> (bit % 8);
            let err = decode(&corrupt).expect_err("corrupt");
            assert!(
                err.message.contains("crc mismatch"),
                "bit {bit}: {}",
                err.message
            );
        }
    }

    #[test]
    fn decode_checks_version_before_length() {
        let err = decode(&[0x20]).expect_err("version 2");
        assert_eq!(err.kind, ErrorKind::Unsupported);
        let err = decode(&[0x10, 0, 0]).expect_err("short");
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.contains("truncated"));
    }

    #[test]
    fn decode_ignores_reserved_bits() {
        let mut frame = encode(&reading()).expect("encodes");
        frame[4] |= 0b11;
        frame[5] = crc8(&frame[..5]);
        assert_eq!(decode(&frame).expect("decodes"), reading());
    }

    #[test]
    fn encode_rounds_battery_to_five_millivolts() {
        let mut doc = reading();
        doc["battery_mv"] = json!(3302);
        let frame = encode(&doc).expect("encodes");
        assert_eq!(decode(&frame).expect("decodes")["battery_mv"], json!(3300));
    }

    #[test]
    fn encode_refuses_out_of_range_and_unknown_values() {
        for (name, value) in [
            ("temperature", json!(204.8)),
            ("humidity", json!(101)),
            ("battery_mv", json!(5118)),
            ("battery_mv", json!(-5)),
            ("mode", json!("turbo")),
            ("door_open", json!(1)),
            ("colour", json!("red")),
        ] {
            let mut doc = reading();
            doc[name] = value;
            let err = encode(&doc).expect_err(name);
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{name}: {}", err.message);
        }
    }
}
