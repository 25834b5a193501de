//! A well-behaved router: every message goes to `storage`; messages whose `temperature` is
//! above 30 also go to `alerts`.

use sluice_sdk::{CodecError, Decision, Router, Uplink, Value};

/// Temperature above which a message is also sent to `alerts`.
const ALERT_ABOVE: f64 = 30.0;

/// Routes by temperature.
struct Thermostat;

impl Router for Thermostat {
    fn route(_msg: &Uplink, decoded: &Value) -> Result<Vec<Decision>, CodecError> {
        let mut decisions = vec![Decision::to("storage")];
        if decoded
            .get("temperature")
            .and_then(Value::as_f64)
            .is_some_and(|t| t > ALERT_ABOVE)
        {
            decisions.push(Decision::to("alerts"));
        }
        Ok(decisions)
    }
}

sluice_sdk::export_router!(Thermostat);
