// The router of examples/threshold-router: route({device_id, metadata: [[key, value], …],
// decoded}) returns {decisions: [{output, document?, drop_reason?}, …], errors}.
// storage always; alerts per exceeded threshold; analytics, dropped for lab devices.
var THRESHOLDS = { temperature_max: 30, humidity_max: 80 };

function meta(metadata, key) {
  for (var i = 0; i < metadata.length; i++) {
    if (metadata[i][0] === key) {
      return metadata[i][1];
    }
  }
  return undefined;
}

function route(input) {
  var decoded = input.decoded;
  if (decoded === null || typeof decoded !== "object" || Array.isArray(decoded)) {
    return { errors: ["decoded document must be a map"] };
  }
  var decisions = [{ output: "storage" }];
  var checks = [
    ["temperature", THRESHOLDS.temperature_max, "temperature_high"],
    ["humidity", THRESHOLDS.humidity_max, "humidity_high"],
  ];
  for (var i = 0; i < checks.length; i++) {
    var field = checks[i][0];
    if (!Object.prototype.hasOwnProperty.call(decoded, field)) {
      continue;
    }
    var value = decoded[field];
    if (typeof value !== "number") {
      return { errors: [field + " must be a number"] };
    }
    if (value > checks[i][1]) {
      decisions.push({
        output: "alerts",
        document: { device: input.device_id, alert: checks[i][2], value: value },
      });
    }
  }
  if (meta(input.metadata, "site") === "lab") {
    decisions.push({ output: "analytics", drop_reason: "lab devices are excluded" });
  } else {
    decisions.push({ output: "analytics" });
  }
  return { decisions: decisions, errors: [] };
}
