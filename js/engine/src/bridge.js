// The bridge between the `sluice:codec` world and a customer's TS013 codec script.
//
// Evaluated once, before the customer's script, with two native functions: `nativeLog(level,
// line)` (the `log` import) and `nativeRandom()` (a generator seeded from each message). It
// installs `console` and `Math.random`, and returns the object whose `decode` and `encode` the
// engine calls per message. A document is its JSON string (`{json}` in the odd case that
// `JSON.stringify` gives no string); everything else is a plain object: `{port, bytes}` for a
// frame, `{kind, message}` for a refusal. Nothing thrown by the customer's code escapes.
//
// `decode` runs for every message, so it does no work it can skip: an absent `warnings` or
// `errors` costs no array and no iterator.
(function (nativeLog, nativeRandom) {
  "use strict";

  const G = globalThis;
  const indirectEval = G.eval;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const isArray = Array.isArray;
  const isInteger = Number.isInteger;
  const isSafeInteger = Number.isSafeInteger;
  const TRACE = 0, DEBUG = 1, INFO = 2, WARN = 3, ERROR = 4;

  function safeString(value) {
    try {
      return String(value);
    } catch (e) {
      return Object.prototype.toString.call(value);
    }
  }

  // One console argument as text: strings as they are, errors as `Name: message`, the rest
  // as JSON where possible.
  function show(value) {
    if (typeof value === "string") return value;
    if (value instanceof Error) return safeString(value);
    try {
      const text = stringify(value, (key, v) => (typeof v === "bigint" ? safeString(v) : v));
      return text === undefined ? safeString(value) : text;
    } catch (e) {
      return safeString(value);
    }
  }

  function logger(level) {
    return function () {
      nativeLog(level, Array.prototype.map.call(arguments, show).join(" "));
    };
  }

  G.console = {
    trace: logger(TRACE),
    debug: logger(DEBUG),
    log: logger(INFO),
    info: logger(INFO),
    warn: logger(WARN),
    error: logger(ERROR),
  };
  Math.random = function random() {
    return nativeRandom();
  };

  // ` at line L, column C` of the customer's script, from an error's stack.
  function where(error) {
    let stack;
    try {
      stack = error !== null && typeof error === "object" ? error.stack : undefined;
    } catch (e) {
      return "";
    }
    if (typeof stack !== "string") return "";
    const found = /codec\.js:(\d+):(\d+)/.exec(stack);
    return found ? ` at line ${found[1]}, column ${found[2]}` : "";
  }

  // What a caught exception says: `TypeError: x is undefined at line 3, column 7`, or the
  // thrown value itself when it is not an Error.
  function describe(thrown) {
    if (thrown instanceof Error) {
      let text;
      try {
        text = `${safeString(thrown.name)}: ${safeString(thrown.message)}`;
      } catch (e) {
        text = safeString(thrown);
      }
      return text + where(thrown);
    }
    return show(thrown);
  }

  function refuse(kind, message) {
    return { kind, message };
  }

  function typeName(value) {
    if (value === null) return "null";
    if (isArray(value)) return "an array";
    return typeof value;
  }

  // TS013 `errors`/`warnings`: an array of messages (a single value is one message).
  function messages(list) {
    if (list === undefined || list === null) return [];
    return isArray(list) ? list.map(show) : [show(list)];
  }

  // JSON for a document: `undefined` becomes null, a BigInt a number (or its decimal string
  // when it is not a safe integer).
  function replacer(key, value) {
    if (value === undefined) return null;
    if (typeof value === "bigint") {
      const number = Number(value);
      return isSafeInteger(number) ? number : value.toString();
    }
    return value;
  }

  // The document's JSON text (or `{json}` when `toJSON` makes it something else, which the
  // engine then refuses), or a refusal.
  function document(data, entry) {
    if (data === null || typeof data !== "object" || isArray(data)) {
      return refuse("internal", `${entry} must return an object as data, got ${typeName(data)}`);
    }
    const json = stringify(data, replacer);
    return typeof json === "string" ? json : { json };
  }

  function isThenable(value) {
    return value !== null && typeof value === "object" && typeof value.then === "function";
  }

  // The frame an encoder returned: an array or typed array of integers 0..=255.
  function frame(bytes, entry) {
    if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
    const arrayLike = isArray(bytes) || ArrayBuffer.isView(bytes);
    if (!arrayLike) {
      return refuse("internal", `${entry} must return bytes as an array of numbers, got ${typeName(bytes)}`);
    }
    const out = [];
    for (let i = 0; i < bytes.length; i++) {
      const byte = bytes[i];
      if (!isInteger(byte) || byte < 0 || byte > 255) {
        return refuse("internal", `${entry} returned bytes[${i}] = ${show(byte)}, which is not a byte (0..255)`);
      }
      out.push(byte);
    }
    return { bytes: out };
  }

  function find(name) {
    try {
      return indirectEval(`typeof ${name} === "function" ? ${name} : undefined`);
    } catch (e) {
      return undefined;
    }
  }

  let decodeUplink, legacyDecoder, encodeDownlink, legacyEncoder;

  return {
    // Looks up the entry points once the customer's script has run; returns the decoder's
    // name, or "" when there is none.
    bind() {
      decodeUplink = find("decodeUplink");
      legacyDecoder = find("Decoder");
      encodeDownlink = find("encodeDownlink");
      legacyEncoder = find("Encoder");
      return decodeUplink ? "decodeUplink" : legacyDecoder ? "Decoder" : "";
    },

    describe,

    decode(bytes, fPort, receivedAtMs) {
      const entry = decodeUplink ? "decodeUplink" : "Decoder";
      try {
        if (decodeUplink) {
          const result = decodeUplink({ bytes, fPort, recvTime: new Date(receivedAtMs) });
          // `isThenable`, inlined (one call less per message); a non-object is never thenable,
          // so checking it first changes nothing.
          if (result === null || typeof result !== "object") {
            return refuse("internal", `decodeUplink must return {data, warnings, errors}, got ${typeName(result)}`);
          }
          if (typeof result.then === "function") {
            return refuse("internal", "decodeUplink returned a Promise; asynchronous codecs are not supported");
          }
          // Usually absent or `[]`: then there is nothing to map or iterate. (Inlined: a call
          // costs more than the check.)
          const warnings = result.warnings;
          if (warnings !== undefined && warnings !== null && !(isArray(warnings) && warnings.length === 0)) {
            for (const warning of messages(warnings)) nativeLog(WARN, `warning: ${warning}`);
          }
          const errorList = result.errors;
          if (errorList !== undefined && errorList !== null && !(isArray(errorList) && errorList.length === 0)) {
            const errors = messages(errorList);
            if (errors.length > 0) return refuse("invalid-input", errors.join("; "));
          }
          return document(result.data, entry);
        }
        if (legacyDecoder) return document(legacyDecoder(bytes, fPort), entry);
        return refuse("unsupported", "the script defines no decodeUplink or Decoder function");
      } catch (thrown) {
        return refuse("internal", `${entry} threw ${describe(thrown)}`);
      }
    },

    encode(json, fPort) {
      const entry = encodeDownlink ? "encodeDownlink" : "Encoder";
      try {
        const data = parse(json);
        if (encodeDownlink) {
          const result = encodeDownlink({ data });
          if (isThenable(result)) {
            return refuse("internal", "encodeDownlink returned a Promise; asynchronous codecs are not supported");
          }
          if (result === null || typeof result !== "object") {
            return refuse("internal", `encodeDownlink must return {bytes, fPort, warnings, errors}, got ${typeName(result)}`);
          }
          for (const warning of messages(result.warnings)) nativeLog(WARN, `warning: ${warning}`);
          const errors = messages(result.errors);
          if (errors.length > 0) return refuse("invalid-input", errors.join("; "));
          let port = fPort;
          if (result.fPort !== undefined && result.fPort !== null) {
            port = result.fPort;
            if (!isInteger(port) || port < 0 || port > 65535) {
              return refuse("internal", `encodeDownlink returned fPort ${show(port)}, which is not a port (0..65535)`);
            }
          }
          const out = frame(result.bytes, entry);
          if (out.bytes) out.port = port;
          return out;
        }
        if (legacyEncoder) {
          const out = frame(legacyEncoder(data, fPort), entry);
          if (out.bytes) out.port = fPort;
          return out;
        }
        return refuse("unsupported", "the script defines no encodeDownlink or Encoder function");
      } catch (thrown) {
        return refuse("internal", `${entry} threw ${describe(thrown)}`);
      }
    },
  };
})
