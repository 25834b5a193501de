// The bit-packed frame of examples/bitpacked in the TS013 style: decodeUplink({bytes, fPort}).
// Six bytes: a 40-bit body (version:4, temperature:12 signed 0.1 °C, humidity:7 %,
// battery:10 × 5 mV, door_open:1, alarm:1, mode:3, reserved:2) and a CRC-8 (poly 0x07).
var MODES = ["off", "eco", "comfort", "boost", "away", "frost_protection"];

function crc8(bytes, length) {
  var crc = 0;
  for (var i = 0; i < length; i++) {
    crc ^= bytes[i];
    for (var b = 0; b < 8; b++) {
      crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
  }
  return crc;
}

// Bits [offset, offset + width) of the 40-bit body, counted from its most significant bit.
function bits(body, offset, width) {
  return Math.floor(body / Math.pow(2, 40 - offset - width)) % Math.pow(2, width);
}

function decodeUplink(input) {
  var bytes = input.bytes;
  if (bytes.length === 0) {
    return { errors: ["empty payload"] };
  }
  var version = bytes[0] >> 4;
  if (version !== 1) {
    return { errors: ["frame version " + version + " is not supported"] };
  }
  if (bytes.length !== 6) {
    return { errors: ["version 1 frames are 6 bytes, got " + bytes.length] };
  }
  var expected = crc8(bytes, 5);
  if (bytes[5] !== expected) {
    return { errors: ["crc mismatch: expected " + expected + ", actual " + bytes[5]] };
  }
  var body = 0;
  for (var i = 0; i < 5; i++) {
    body = body * 256 + bytes[i];
  }
  var temperature = bits(body, 4, 12);
  if (temperature >= 2048) {
    temperature -= 4096;
  }
  var humidity = bits(body, 16, 7);
  if (humidity > 100) {
    return { errors: ["humidity " + humidity + " % is out of range 0..=100"] };
  }
  var mode = MODES[bits(body, 35, 3)];
  if (mode === undefined) {
    return { errors: ["mode " + bits(body, 35, 3) + " is reserved"] };
  }
  return {
    data: {
      temperature: temperature / 10,
      humidity: humidity,
      battery_mv: bits(body, 23, 10) * 5,
      door_open: bits(body, 33, 1) === 1,
      alarm: bits(body, 34, 1) === 1,
      mode: mode,
    },
    warnings: [],
    errors: [],
  };
}
