// Cayenne LPP in the TTN / LoRa Alliance TS013 style: decodeUplink({bytes, fPort}) returns
// {data, warnings, errors}. The same logic as examples/cayenne-lpp: values are named
// <type>_<channel>, and scaled by division so 0x0110 / 10 is exactly 27.2.
var LPP_TYPES = {
  0x00: { name: "digital_input", fields: [["", 1, false, 1]] },
  0x01: { name: "digital_output", fields: [["", 1, false, 1]] },
  0x02: { name: "analog_input", fields: [["", 2, true, 100]] },
  0x03: { name: "analog_output", fields: [["", 2, true, 100]] },
  0x65: { name: "luminosity", fields: [["", 2, false, 1]] },
  0x66: { name: "presence", fields: [["", 1, false, 1]] },
  0x67: { name: "temperature", fields: [["", 2, true, 10]] },
  0x68: { name: "humidity", fields: [["", 1, false, 2]] },
  0x71: { name: "accelerometer", fields: [["x", 2, true, 1000], ["y", 2, true, 1000], ["z", 2, true, 1000]] },
  0x73: { name: "barometer", fields: [["", 2, false, 10]] },
  0x86: { name: "gyrometer", fields: [["x", 2, true, 100], ["y", 2, true, 100], ["z", 2, true, 100]] },
  0x88: { name: "gps", fields: [["latitude", 3, true, 10000], ["longitude", 3, true, 10000], ["altitude", 3, true, 100]] },
};

function readScaled(bytes, offset, size, signed, divisor) {
  var raw = 0;
  for (var i = 0; i < size; i++) {
    raw = raw * 256 + bytes[offset + i];
  }
  if (signed && (bytes[offset] & 0x80)) {
    raw -= Math.pow(2, 8 * size);
  }
  return divisor === 1 ? raw : raw / divisor;
}

function decodeUplink(input) {
  var bytes = input.bytes;
  if (bytes.length === 0) {
    return { errors: ["empty payload"] };
  }
  var data = {};
  var offset = 0;
  while (offset < bytes.length) {
    var channel = bytes[offset];
    if (offset + 1 >= bytes.length) {
      return { errors: ["truncated frame at offset " + offset] };
    }
    var type = LPP_TYPES[bytes[offset + 1]];
    if (!type) {
      return { errors: ["unknown LPP type " + bytes[offset + 1] + " on channel " + channel] };
    }
    var at = offset + 2;
    var size = 0;
    for (var f = 0; f < type.fields.length; f++) {
      size += type.fields[f][1];
    }
    if (at + size > bytes.length) {
      return { errors: ["truncated " + type.name + " on channel " + channel] };
    }
    var key = type.name + "_" + channel;
    if (Object.prototype.hasOwnProperty.call(data, key)) {
      return { errors: ["duplicate " + key] };
    }
    if (type.fields[0][0] === "") {
      var only = type.fields[0];
      data[key] = readScaled(bytes, at, only[1], only[2], only[3]);
    } else {
      var value = {};
      var fieldAt = at;
      for (var g = 0; g < type.fields.length; g++) {
        var field = type.fields[g];
        value[field[0]] = readScaled(bytes, fieldAt, field[1], field[2], field[3]);
        fieldAt += field[1];
      }
      data[key] = value;
    }
    offset = at + size;
  }
  return { data: data, warnings: [], errors: [] };
}
