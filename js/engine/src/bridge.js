// The bridge between the `sluice:codec` world and a customer's TS013 codec script.
//
// Evaluated once, before the customer's script, with two native functions: `nativeLog(level,
// line)` (the `log` import) and `nativeRandom()` (a generator seeded from each message), and
// `host`, the native side of the `config`, `state` and `metrics` imports. It installs
// `console`, `Math.random` and `sluice` (`sluice.config`, `sluice.state`, `sluice.metrics`),
// and returns the object whose `decode` and `encode` the engine calls per message. A document is its JSON string (`{json}` in the odd case that
// `JSON.stringify` gives no string); everything else is a plain object: `{port, bytes}` for a
// frame, `{kind, message}` for a refusal. Nothing thrown by the customer's code escapes.
//
// `decode` runs for every message, so it does no work it can skip: an absent `warnings` or
// `errors` costs no array and no iterator.
(function (nativeLog, nativeRandom, host) {
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

  // The host's imports answer for the message being handled: not while the script is
  // evaluated (that happens once, at build time, for every device at once).
  function during(what) {
    if (!host.inCall()) {
      throw new Error(
        `${what} can be used while a message is handled (in decodeUplink, encodeDownlink or ` +
          "the functions they call), not when the script is loaded"
      );
    }
  }

  function stateKey(key) {
    if (typeof key !== "string") throw new TypeError(`a state key is a string, got ${typeof key}`);
    return key;
  }

  // The elements of an array, typed array or ArrayBuffer as a plain array of integers
  // 0..=255 (`{ bytes }`), or the first element that is not one (`{ at, value }`); `null`
  // when `value` is none of those.
  function byteList(value) {
    if (value instanceof ArrayBuffer) value = new Uint8Array(value);
    if (!isArray(value) && !ArrayBuffer.isView(value)) return null;
    const bytes = [];
    for (let i = 0; i < value.length; i++) {
      const byte = value[i];
      if (!isInteger(byte) || byte < 0 || byte > 255) return { at: i, value: byte };
      bytes.push(byte);
    }
    return { bytes };
  }

  // Bytes to store: a Uint8Array (any other typed array or DataView as its bytes), an
  // ArrayBuffer, or an array of integers 0..=255.
  function storable(value) {
    if (ArrayBuffer.isView(value) && !(value instanceof Uint8Array)) {
      value = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    }
    const list = byteList(value);
    if (list === null) {
      throw new TypeError(
        `sluice.state.set stores bytes (a Uint8Array or an array of 0..255) or a string, got ${typeName(value)}`
      );
    }
    if (list.bytes === undefined) {
      throw new RangeError(`sluice.state.set: byte ${list.at} is ${show(list.value)}, not an integer 0..255`);
    }
    return list.bytes;
  }

  function stored(code, key) {
    if (code === 1) throw new Error(`sluice.state: storing "${key}" would exceed the device's state quota`);
    if (code === 2) throw new Error(`sluice.state: "${key}" is not a valid key (1 to 256 bytes)`);
  }

  const config = Object.freeze({
    // The binding's value for `key`, or undefined.
    get(key) {
      during("sluice.config");
      return host.configGet(String(key));
    },
    // Every key the binding sets, sorted.
    keys() {
      during("sluice.config");
      return host.configKeys();
    },
  });

  const state = Object.freeze({
    // The device's bytes under `key` as a Uint8Array, or undefined.
    get(key) {
      during("sluice.state");
      const bytes = host.stateGet(stateKey(key));
      return bytes === undefined ? undefined : new Uint8Array(bytes);
    },
    // The device's value under `key` as text (UTF-8), or undefined.
    getText(key) {
      during("sluice.state");
      return host.stateGetText(stateKey(key));
    },
    // The device's value under `key` parsed as JSON, or undefined.
    getJSON(key) {
      during("sluice.state");
      const text = host.stateGetText(stateKey(key));
      return text === undefined ? undefined : parse(text);
    },
    // Stores bytes, or a string as UTF-8. Throws when over the device's quota.
    set(key, value) {
      during("sluice.state");
      stateKey(key);
      stored(typeof value === "string" ? host.stateSetText(key, value) : host.stateSet(key, storable(value)), key);
    },
    // Stores `value` as JSON text.
    setJSON(key, value) {
      during("sluice.state");
      stateKey(key);
      const text = stringify(value);
      if (typeof text !== "string") {
        throw new TypeError(`sluice.state.setJSON: ${typeName(value)} has no JSON form`);
      }
      stored(host.stateSetText(key, text), key);
    },
    delete(key) {
      during("sluice.state");
      host.stateDelete(stateKey(key));
    },
  });

  const metrics = Object.freeze({
    // Adds `delta` (a whole number, 1 when left out) to the counter `name`.
    increment(name, delta) {
      during("sluice.metrics");
      const by = delta === undefined ? 1 : delta;
      if (!isSafeInteger(by) || by < 0) {
        throw new RangeError(`sluice.metrics.increment: ${show(by)} is not a whole number >= 0`);
      }
      host.metricIncrement(String(name), by);
    },
    // Sets the gauge `name` to `value`.
    gauge(name, value) {
      during("sluice.metrics");
      if (typeof value !== "number") {
        throw new TypeError(`sluice.metrics.gauge: ${typeName(value)} is not a number`);
      }
      host.metricGauge(String(name), value);
    },
  });

  Object.defineProperty(G, "sluice", {
    value: Object.freeze({ config, state, metrics }),
    writable: true,
    configurable: true,
  });

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
    const list = byteList(bytes);
    if (list === null) {
      return refuse("internal", `${entry} must return bytes as an array of numbers, got ${typeName(bytes)}`);
    }
    if (list.bytes === undefined) {
      return refuse("internal", `${entry} returned bytes[${list.at}] = ${show(list.value)}, which is not a byte (0..255)`);
    }
    return { bytes: list.bytes };
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
