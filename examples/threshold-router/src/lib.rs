//! A threshold router.
//!
//! For each decoded message it decides, in this order:
//!
//! 1. `storage`: always, with the decoded document.
//! 2. `alerts`: one decision per exceeded threshold, with a small alert document
//!    `{"device", "alert", "value"}` instead of the decoded one (`temperature_high` when
//!    `temperature > temperature_max`, then `humidity_high` when `humidity > humidity_max`).
//! 3. `analytics`: the decoded document, except for devices whose metadata `site` is `lab`,
//!    which are dropped there with a reason.
//!
//! The thresholds come from the binding config (`temperature_max`, default 30.0;
//! `humidity_max`, default 80.0). The decision logic is the plain function [`route`]; the
//! module reads the config from the host and calls it.

use sluice_sdk::{CodecError, Decision, Uplink, Value, json};

/// The metadata value of `site` whose devices are excluded from analytics.
pub const LAB_SITE: &str = "lab";

/// Alert thresholds: a reading strictly above one raises an alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Degrees Celsius; config key `temperature_max`.
    pub temperature_max: f64,
    /// Percent relative humidity; config key `humidity_max`.
    pub humidity_max: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            temperature_max: 30.0,
            humidity_max: 80.0,
        }
    }
}

impl Thresholds {
    /// Reads the thresholds through `lookup` (the binding config), defaulting the keys that are
    /// not set.
    ///
    /// A key that is set to something other than a finite number is an `internal` error rather
    /// than silently replaced by the default: a typo in the binding must not move the alarm.
    pub fn from_config(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CodecError> {
        let defaults = Self::default();
        let read = |key: &str, default: f64| match lookup(key) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    CodecError::internal(format!(
                        "binding config {key} = {text:?} is not a number; set it to e.g. \
                         \"{default}\" or remove it"
                    ))
                }),
        };
        Ok(Self {
            temperature_max: read("temperature_max", defaults.temperature_max)?,
            humidity_max: read("humidity_max", defaults.humidity_max)?,
        })
    }
}

/// Decides the outputs of one decoded message (see the crate documentation).
///
/// Errors: a decoded document that is not a map, or whose `temperature` or `humidity` is
/// present but not a number, is invalid input. A document without them is stored and
/// analysed, never alerted on.
pub fn route(
    message: &Uplink,
    decoded: &Value,
    thresholds: &Thresholds,
) -> Result<Vec<Decision>, CodecError> {
    let document = decoded.as_object().ok_or_else(|| {
        CodecError::invalid_input(format!("decoded document must be a map, got {decoded}"))
    })?;

    let mut decisions = vec![Decision::to("storage")];
    let checks = [
        (
            "temperature",
            thresholds.temperature_max,
            "temperature_high",
        ),
        ("humidity", thresholds.humidity_max, "humidity_high"),
    ];
    for (field, max, alert) in checks {
        let Some(value) = document.get(field) else {
            continue;
        };
        let reading = value.as_f64().ok_or_else(|| {
            CodecError::invalid_input(format!("{field} must be a number, got {value}"))
        })?;
        if reading > max {
            decisions.push(Decision::to("alerts").with_document(json!({
                "device": message.device_id,
                "alert": alert,
                "value": value,
            })));
        }
    }

    decisions.push(if message.meta("site") == Some(LAB_SITE) {
        Decision::drop("analytics", "lab devices are excluded")
    } else {
        Decision::to("analytics")
    });
    Ok(decisions)
}

/// The router as a Sluice module: thresholds from the binding config, then [`route`].
#[cfg(target_arch = "wasm32")]
pub struct ThresholdRouter;

#[cfg(target_arch = "wasm32")]
impl sluice_sdk::Router for ThresholdRouter {
    fn route(message: &Uplink, decoded: &Value) -> Result<Vec<Decision>, CodecError> {
        let thresholds = Thresholds::from_config(sluice_sdk::config::get)?;
        let decisions = route(message, decoded, &thresholds)?;
        let alerts = decisions.iter().filter(|d| d.output == "alerts").count();
        if alerts > 0 {
            sluice_sdk::metrics::increment("alerts_raised", alerts as u64);
        }
        Ok(decisions)
    }
}

#[cfg(target_arch = "wasm32")]
sluice_sdk::export_router!(ThresholdRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::ErrorKind;
    use std::collections::HashMap;

    fn uplink(site: Option<&str>) -> Uplink {
        Uplink {
            device_id: "dev-1".into(),
            port: 1,
            received_at_ms: 0,
            payload: Vec::new(),
            metadata: site
                .map(|s| vec![("site".to_owned(), s.to_owned())])
                .unwrap_or_default(),
        }
    }

    fn config(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |key| map.get(key).cloned()
    }

    fn outputs(decisions: &[Decision]) -> Vec<&str> {
        decisions.iter().map(|d| d.output.as_str()).collect()
    }

    #[test]
    fn thresholds_default_when_unset() {
        assert_eq!(
            Thresholds::from_config(config(&[])).expect("valid"),
            Thresholds::default()
        );
    }

    #[test]
    fn thresholds_parse_trimmed_numbers() {
        let t = Thresholds::from_config(config(&[
            ("temperature_max", " 25.5 "),
            ("humidity_max", "90"),
        ]))
        .expect("valid");
        assert_eq!(t.temperature_max, 25.5);
        assert_eq!(t.humidity_max, 90.0);
    }

    #[test]
    fn thresholds_refuse_text_and_non_finite_numbers() {
        for bad in ["warm", "", "NaN", "inf"] {
            let err = Thresholds::from_config(config(&[("humidity_max", bad)])).expect_err(bad);
            assert_eq!(err.kind, ErrorKind::Internal);
            assert!(err.message.contains("humidity_max"), "{}", err.message);
        }
    }

    #[test]
    fn route_alerts_only_strictly_above_the_threshold() {
        let t = Thresholds::default();
        let at = route(&uplink(None), &json!({"temperature": 30.0}), &t).expect("routes");
        assert_eq!(outputs(&at), ["storage", "analytics"]);
        let above = route(&uplink(None), &json!({"temperature": 30.1}), &t).expect("routes");
        assert_eq!(outputs(&above), ["storage", "alerts", "analytics"]);
        assert_eq!(
            above[1].document,
            Some(json!({"device": "dev-1", "alert": "temperature_high", "value": 30.1}))
        );
    }

    #[test]
    fn route_raises_one_alert_per_exceeded_threshold() {
        let decisions = route(
            &uplink(None),
            &json!({"temperature": 35, "humidity": 95}),
            &Thresholds::default(),
        )
        .expect("routes");
        assert_eq!(
            outputs(&decisions),
            ["storage", "alerts", "alerts", "analytics"]
        );
        assert_eq!(
            decisions[2].document.as_ref().map(|d| &d["alert"]),
            Some(&json!("humidity_high"))
        );
    }

    #[test]
    fn route_drops_lab_devices_from_analytics_only() {
        let decisions = route(
            &uplink(Some("lab")),
            &json!({"temperature": 40}),
            &Thresholds::default(),
        )
        .expect("routes");
        assert_eq!(outputs(&decisions), ["storage", "alerts", "analytics"]);
        assert_eq!(
            decisions[2].drop_reason.as_deref(),
            Some("lab devices are excluded")
        );
        let decisions =
            route(&uplink(Some("plant-1")), &json!({}), &Thresholds::default()).expect("routes");
        assert_eq!(decisions[1].drop_reason, None);
    }

    #[test]
    fn route_refuses_non_numeric_readings_and_non_map_documents() {
        for doc in [
            json!({"temperature": "31"}),
            json!({"temperature": null}),
            json!({"humidity": true}),
            json!([1, 2]),
        ] {
            let err = route(&uplink(None), &doc, &Thresholds::default()).expect_err("invalid");
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{doc}");
        }
    }
}
