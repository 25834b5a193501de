//! The host API seen from a guest: config, per-device state, clock, metrics, logs, and the
//! example codecs' documented outputs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use sluice_runtime::{InstanceEnv, LogLevel, MemoryStateStore, MetricUpdate};
use sluice_test_programs as tp;
use sluice_types::{ClockMode, Downlink, Limits, ModulePolicy};

use crate::{doc, instance, load, load_with, uplink};

#[test]
fn echo_sees_the_message_and_logs_a_line() {
    let mut inst = instance(tp::TP_ECHO);
    let out = inst.decode(&uplink(&[0xAB, 0xCD]));
    let document = out.result.expect("decodes");
    assert_eq!(document.as_map()["device"], "dev-1");
    assert_eq!(document.as_map()["port"], 1);
    assert_eq!(document.as_map()["first"], 0xAB);
    assert_eq!(out.report.logs.len(), 1);
    assert_eq!(out.report.logs[0].level, LogLevel::Info);
    assert!(out.report.fuel_consumed > 0);
}

#[test]
fn config_is_the_binding_config() {
    let config: BTreeMap<String, String> = [("threshold".to_string(), "30".to_string())].into();
    let env = InstanceEnv {
        config: Arc::new(config),
        ..InstanceEnv::default()
    };
    let mut inst = load(tp::TP_ECHO).instantiate(env);
    let document = inst.decode(&uplink(b"config")).result.expect("decodes");
    assert_eq!(document.to_value(), json!({"threshold": "30"}));
}

#[test]
fn state_is_per_device_and_survives_instance_discard() {
    let store = Arc::new(MemoryStateStore::new());
    let env = InstanceEnv {
        state: store.clone(),
        ..InstanceEnv::default()
    };
    let module = load(tp::TP_ECHO);
    let mut inst = module.instantiate(env.clone());
    let count = |inst: &mut sluice_runtime::Instance, device: &str| {
        let mut msg = uplink(b"state");
        msg.device_id = device.into();
        inst.decode(&msg).result.expect("decodes").as_map()["count"].clone()
    };
    assert_eq!(count(&mut inst, "a"), 1);
    assert_eq!(count(&mut inst, "a"), 2);
    assert_eq!(count(&mut inst, "b"), 1, "devices do not share state");
    // A new instance of the same binding sees the same store.
    let mut other = module.instantiate(env);
    assert_eq!(count(&mut other, "a"), 3);
    assert!(store.device_bytes("a") > 0);
}

#[test]
fn state_quota_is_reported_to_the_guest() {
    let mut inst = instance(tp::TP_ECHO);
    let document = inst.decode(&uplink(b"bigstate")).result.expect("decodes");
    assert_eq!(document.as_map()["quota_exceeded"], true);
}

#[test]
fn the_clock_is_the_message_time_unless_real() {
    let mut inst = instance(tp::TP_ECHO);
    let document = inst.decode(&uplink(b"clock")).result.expect("decodes");
    assert_eq!(document.as_map()["now_ms"], 1_700_000_000_000u64);

    let real = ModulePolicy {
        clock: ClockMode::Real,
        ..ModulePolicy::default()
    };
    let mut inst = load_with(tp::TP_ECHO, real).instantiate(InstanceEnv::default());
    let document = inst.decode(&uplink(b"clock")).result.expect("decodes");
    let now = document.as_map()["now_ms"].as_u64().expect("a number");
    assert!(now > 1_700_000_000_000 + 86_400_000, "{now}");
}

#[test]
fn metrics_are_reported_with_the_call() {
    let mut inst = instance(tp::TP_ECHO);
    let out = inst.decode(&uplink(b"metrics"));
    assert!(out.result.is_ok());
    assert!(
        out.report
            .metrics
            .iter()
            .any(|m| matches!(m, MetricUpdate::Counter { .. })),
        "{:?}",
        out.report.metrics
    );
}

#[test]
fn fresh_instance_per_call_instantiates_every_time() {
    let policy = ModulePolicy {
        fresh_instance_per_call: true,
        ..ModulePolicy::default()
    };
    let mut inst = load_with(tp::TP_ECHO, policy).instantiate(InstanceEnv::default());
    for _ in 0..3 {
        let out = inst.decode(&uplink(b"x"));
        assert!(out.result.is_ok());
        assert!(out.report.instantiated);
    }
    assert_eq!(inst.instantiations(), 3);
}

#[test]
fn reused_instance_instantiates_once() {
    let mut inst = instance(tp::TP_ECHO);
    for i in 0..5 {
        let out = inst.decode(&uplink(b"x"));
        assert!(out.result.is_ok());
        assert_eq!(out.report.instantiated, i == 0);
    }
    assert_eq!(inst.instantiations(), 1);
}

#[test]
fn cayenne_lpp_decodes_the_documentation_examples_exactly() {
    let mut inst = instance(tp::CAYENNE_LPP);
    let cases = [
        (
            "03 67 01 10 05 67 00 FF",
            json!({"temperature_3": 27.2, "temperature_5": 25.5}),
        ),
        ("01 67 FF D7", json!({"temperature_1": -4.1})),
        (
            "06 71 04 D2 FB 2E 00 00",
            json!({"accelerometer_6": {"x": 1.234, "y": -1.234, "z": 0.0}}),
        ),
        (
            "01 88 06 76 5f f2 96 0a 00 03 e8",
            json!({"gps_1": {"latitude": 42.3519, "longitude": -87.9094, "altitude": 10.0}}),
        ),
    ];
    for (hex, expected) in cases {
        let bytes = sluice_vectors_free_hex(hex);
        let document = inst.decode(&uplink(&bytes)).result.expect(hex);
        assert!(
            json_num_eq(&document.to_value(), &expected),
            "{hex}: {document} != {expected}"
        );
    }
}

#[test]
fn cayenne_lpp_round_trips_encode_then_decode() {
    let mut inst = instance(tp::CAYENNE_LPP);
    let original = json!({
        "temperature_3": 27.2,
        "humidity_5": 50.5,
        "gps_1": {"latitude": 42.3519, "longitude": -87.9094, "altitude": 10.0},
    });
    let frame = inst
        .encode(&Downlink {
            device_id: "dev-1".into(),
            port: 1,
            document: doc(original.clone()),
            metadata: vec![],
        })
        .result
        .expect("encodes");
    let decoded = inst
        .decode(&uplink(&frame.payload))
        .result
        .expect("decodes");
    assert!(json_num_eq(&decoded.to_value(), &original), "{decoded}");
}

#[test]
fn router_decides_outputs() {
    let mut inst = instance(tp::TP_ROUTER);
    let decisions = inst
        .route(&uplink(b"x"), &doc(json!({"temperature": 35.0})))
        .result
        .expect("routes");
    let outputs: Vec<_> = decisions.iter().map(|d| d.output.as_str()).collect();
    assert_eq!(outputs, ["storage", "alerts"]);
}

#[test]
fn tight_fuel_stops_a_real_codec() {
    let limits = Limits {
        fuel_per_call: 100,
        ..Limits::default()
    };
    let mut inst = load_with(
        tp::CAYENNE_LPP,
        ModulePolicy {
            limits,
            ..ModulePolicy::default()
        },
    )
    .instantiate(InstanceEnv::default());
    let out = inst.decode(&uplink(&[3, 0x67, 1, 0x10]));
    assert!(matches!(
        out.result,
        Err(sluice_types::GuestFailure::FuelExhausted {
            limit_fuel: 100,
            ..
        })
    ));
}

fn sluice_vectors_free_hex(text: &str) -> Vec<u8> {
    let cleaned: String = text.split_whitespace().collect();
    hex::decode(cleaned).expect("hex")
}

fn json_num_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_num_eq(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| json_num_eq(v, w))
        }
        _ => a == b,
    }
}
