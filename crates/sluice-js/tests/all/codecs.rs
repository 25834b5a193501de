//! Real codecs: TS013 `decodeUplink`/`encodeDownlink`, the legacy `Decoder`/`Encoder`, an
//! ES2015 DataView codec, and the host API as JavaScript sees it.

use serde_json::json;
use sluice_runtime::{InstanceEnv, LogLevel, MetricUpdate};
use sluice_types::{
    CodecErrorKind, Document, Downlink, GuestFailure, ModulePolicy, ModuleRef, Uplink,
};
use sluice_vectors::{VectorFile, VectorKind, json_eq};

use crate::{hex, instance, json, load_with, runtime, uplink};

fn lpp_vectors() -> VectorFile {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/cayenne-lpp/vectors.yaml"
    );
    VectorFile::load(std::path::Path::new(path)).expect("the Rust example's vectors parse")
}

fn codec_error(failure: GuestFailure) -> sluice_types::CodecError {
    match failure {
        GuestFailure::GuestError { error, .. } => error,
        other => panic!("expected a codec error, got {other}"),
    }
}

fn downlink(port: u16, document: serde_json::Value) -> Downlink {
    Downlink {
        device_id: "dev-1".into(),
        port,
        document: Document::from_value(document).expect("a document"),
        metadata: vec![],
    }
}

#[test]
fn lpp_decode_uplink_matches_the_rust_example_on_its_vectors() {
    let module = load_with("cayenne-lpp.js", Default::default());
    let mut file = lpp_vectors();
    // Every good frame of the Rust example's decode vectors: the JavaScript codec must
    // produce the same values (numbers compare by value: JS prints 10.0 as 10).
    file.vectors
        .retain(|v| v.kind == VectorKind::Decode && v.expect.is_some());
    assert!(file.vectors.len() >= 20, "{} vectors", file.vectors.len());
    for result in sluice_vectors::run(&module, &file) {
        assert!(
            result.passed,
            "{}: {}",
            result.name,
            result.diff.unwrap_or_default()
        );
    }
}

#[test]
fn lpp_decode_uplink_reuses_one_instance_across_frames() {
    let mut lpp = instance("cayenne-lpp.js");
    let frames = [
        (
            "03 67 01 10 05 67 00 FF",
            json!({"temperature_3": 27.2, "temperature_5": 25.5}),
        ),
        ("01 67 FF D7", json!({"temperature_1": -4.1})),
        (
            "01 88 06 76 5f f2 96 0a 00 03 e8",
            json!({"gps_1": {"latitude": 42.3519, "longitude": -87.9094, "altitude": 10.0}}),
        ),
    ];
    for round in 0..3 {
        for (frame, expected) in &frames {
            let out = lpp.decode(&uplink(1, &hex(frame)));
            assert_eq!(out.report.instantiated, round == 0 && *frame == frames[0].0);
            let document = out.result.unwrap_or_else(|e| panic!("{frame}: {e}"));
            assert!(
                json_eq(&json(&document), expected),
                "{frame}: {}",
                json(&document)
            );
        }
    }
    assert_eq!(lpp.instantiations(), 1);
}

#[test]
fn lpp_errors_array_is_an_invalid_input_codec_error_and_the_instance_is_kept() {
    let mut lpp = instance("cayenne-lpp.js");
    let error = codec_error(
        lpp.decode(&uplink(1, &hex("03 67 01")))
            .result
            .expect_err("short"),
    );
    assert_eq!(error.kind, CodecErrorKind::InvalidInput);
    assert_eq!(
        error.message,
        "truncated temperature on channel 3 at offset 2"
    );
    assert!(lpp.is_live());
    let error = codec_error(lpp.decode(&uplink(1, &[])).result.expect_err("empty"));
    assert_eq!(error.message, "empty payload");
    assert_eq!(lpp.instantiations(), 1);
}

#[test]
fn lpp_encode_downlink_returns_bytes_and_port() {
    let mut lpp = instance("cayenne-lpp.js");
    let out = lpp.encode(&downlink(
        10,
        json!({"temperature_3": 27.2, "humidity_5": 48.5}),
    ));
    let frame = out.result.expect("encodes");
    assert_eq!(frame.port, 1);
    assert_eq!(frame.payload, hex("03 67 01 10 05 68 61"));
    let error = codec_error(
        lpp.encode(&downlink(1, json!({"gps_1": {"latitude": 1}})))
            .result
            .expect_err("composite"),
    );
    assert_eq!(error.kind, CodecErrorKind::InvalidInput);
    assert_eq!(error.message, "cannot encode gps_1");
}

#[test]
fn legacy_decoder_gets_bytes_and_port_and_its_object_is_the_document() {
    let mut codec = instance("legacy-decoder.js");
    let out = codec.decode(&uplink(1, &[0x0e, 0x10, 0xf8, 0x30]));
    let document = out.result.expect("decodes");
    assert_eq!(
        json(&document),
        json!({"battery_mv": 3600, "temperature": -20, "port": 1, "unused": null})
    );
    let document = codec
        .decode(&uplink(2, &[1]))
        .result
        .expect("decodes port 2");
    assert_eq!(json(&document), json!({"led": true}));
}

#[test]
fn legacy_encoder_keeps_the_proposed_port() {
    let mut codec = instance("legacy-decoder.js");
    let frame = codec
        .encode(&downlink(2, json!({"led": true})))
        .result
        .expect("encodes");
    assert_eq!((frame.port, frame.payload), (2, vec![1]));
}

#[test]
fn es2015_dataview_codec_decodes_little_endian_fields() {
    let mut codec = instance("dataview.js");
    let mut frame = vec![1, 0x2a, 0x00];
    frame.extend_from_slice(&(-512i16).to_le_bytes());
    frame.extend_from_slice(&0.375f32.to_le_bytes());
    frame.extend_from_slice(&2150i16.to_le_bytes());
    frame.extend_from_slice(&12.5f32.to_le_bytes());
    frame.push(0xee);
    let out = codec.decode(&uplink(7, &frame));
    let document = out.result.expect("decodes");
    assert_eq!(
        json(&document),
        json!({
            "kind": "soil",
            "count": 42,
            "readings": [
                {"temperature": -5.12, "moisture": 0.38},
                {"temperature": 21.5, "moisture": 12.5},
            ],
            "port": 7,
            "received": "2023-11-14T22:13:20.000Z",
        })
    );
    assert!(
        out.report
            .logs
            .iter()
            .any(|l| l.level == LogLevel::Warn && l.message == "warning: 1 trailing bytes"),
        "{:?}",
        out.report.logs
    );
    let error = codec_error(codec.decode(&uplink(7, &[1])).result.expect_err("short"));
    assert_eq!(error.message, "frame too short: 1 bytes");
}

#[test]
fn console_goes_to_the_log_and_date_now_is_the_message_time() {
    let mut codec = instance("console-clock.js");
    let out = codec.decode(&uplink(3, &[1, 2]));
    let document = json(&out.result.expect("decodes"));
    assert_eq!(document["now"], json!(1_700_000_000_000u64));
    assert_eq!(document["recv"], json!(1_700_000_000_000u64));
    assert_eq!(document["calls"], json!(1));
    assert_eq!(document["nothing"], json!(null));
    let random = document["random"].as_f64().expect("a number");
    assert!((0.0..1.0).contains(&random));
    let logs: Vec<(LogLevel, &str)> = out
        .report
        .logs
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(
        logs,
        [
            (LogLevel::Info, "decoding 2 bytes on port 3"),
            (LogLevel::Warn, "{\"calls\":1}"),
            (LogLevel::Error, "TypeError: just a log line"),
            (LogLevel::Warn, "warning: low battery"),
        ]
    );

    // The script was evaluated once: its state carries over on a reused instance, and the
    // same message sees the same random number.
    let again = json(&codec.decode(&uplink(3, &[1, 2])).result.expect("decodes"));
    assert_eq!(again["calls"], json!(2));
    assert_eq!(again["random"], document["random"]);

    let error = codec_error(
        codec
            .decode(&uplink(3, &[0xff]))
            .result
            .expect_err("errors"),
    );
    assert_eq!(error.kind, CodecErrorKind::InvalidInput);
    assert_eq!(error.message, "reserved first byte; second problem");
}

#[test]
fn a_script_without_an_encoder_refuses_downlinks_as_unsupported() {
    let mut codec = instance("dataview.js");
    let error = codec_error(
        codec
            .encode(&downlink(1, json!({"x": 1})))
            .result
            .expect_err("no encoder"),
    );
    assert_eq!(error.kind, CodecErrorKind::Unsupported);
}

/// One shape of `decodeUplink`'s result per fPort: every case of the compatibility rules
/// (docs/js.md) that the bridge handles on its own.
const RESULT_SHAPES: &str = r#"
function decodeUplink(input) {
  switch (input.fPort) {
    case 1: return { data: { a: undefined, b: [undefined, 1], big: 10n, huge: 2n ** 70n }, warnings: [], errors: [] };
    case 2: return { data: { n: input.bytes.length }, warnings: ["low battery", 2], errors: null };
    case 3: return { data: {}, warnings: "one", errors: "only error" };
    case 4: return (async function () { return { data: {} }; })();
    case 5: return 5;
    case 6: return { data: [1] };
    case 7: return { then: 1, data: { thenIsData: true } };
    default: return {};
  }
}
"#;

#[test]
fn decode_uplink_result_shapes_follow_the_compatibility_rules() {
    let component = sluice_js::build_js_codec(RESULT_SHAPES).expect("builds");
    let mut codec = runtime()
        .load(
            ModuleRef::new("result-shapes", "1"),
            &component,
            ModulePolicy::default(),
        )
        .expect("loads")
        .instantiate(InstanceEnv::default());
    let logs = |out: &sluice_runtime::CallOutcome<Document>| -> Vec<(LogLevel, String)> {
        out.report
            .logs
            .iter()
            .map(|l| (l.level, l.message.clone()))
            .collect()
    };

    // `undefined` becomes null, a BigInt a number or its decimal string; empty lists log nothing.
    let out = codec.decode(&uplink(1, &[1, 2]));
    assert!(logs(&out).is_empty(), "{:?}", out.report.logs);
    let document = json(&out.result.expect("decodes"));
    assert!(
        json_eq(
            &document,
            &json!({"a": null, "b": [null, 1], "big": 10, "huge": "1180591620717411303424"})
        ),
        "{document}"
    );

    // Each warning is a `warn` line; `errors: null` is no error.
    let out = codec.decode(&uplink(2, &[1, 2]));
    assert_eq!(
        logs(&out),
        [
            (LogLevel::Warn, "warning: low battery".to_string()),
            (LogLevel::Warn, "warning: 2".to_string()),
        ]
    );
    assert_eq!(json(&out.result.expect("decodes")), json!({"n": 2}));

    // A single value is one message.
    let out = codec.decode(&uplink(3, &[1]));
    assert_eq!(logs(&out), [(LogLevel::Warn, "warning: one".to_string())]);
    let error = codec_error(out.result.expect_err("errors"));
    assert_eq!(
        (error.kind, error.message.as_str()),
        (CodecErrorKind::InvalidInput, "only error")
    );

    for (port, message) in [
        (
            4,
            "decodeUplink returned a Promise; asynchronous codecs are not supported",
        ),
        (
            5,
            "decodeUplink must return {data, warnings, errors}, got number",
        ),
        (
            6,
            "decodeUplink must return an object as data, got an array",
        ),
        (
            8,
            "decodeUplink must return an object as data, got undefined",
        ),
    ] {
        let error = codec_error(
            codec
                .decode(&uplink(port, &[1]))
                .result
                .expect_err("refused"),
        );
        assert_eq!(
            (error.kind, error.message.as_str()),
            (CodecErrorKind::Internal, message),
            "port {port}"
        );
    }

    // A `then` that is not a function does not make the result a Promise.
    let out = codec.decode(&uplink(7, &[1]));
    assert_eq!(
        json(&out.result.expect("decodes")),
        json!({"thenIsData": true})
    );
    assert_eq!(codec.instantiations(), 1, "refusals keep the instance");
}

#[test]
fn state_config_and_metrics_reach_javascript() {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    let env = InstanceEnv {
        config: Arc::new(BTreeMap::from([
            ("scale".to_string(), "10".to_string()),
            ("unit".to_string(), "dC".to_string()),
        ])),
        ..InstanceEnv::default()
    };
    let mut codec = load_with("host-apis.js", ModulePolicy::default()).instantiate(env);
    let on = |device: &str, payload: &[u8]| Uplink {
        device_id: device.into(),
        ..uplink(1, payload)
    };

    let first = codec.decode(&on("a", &[3, 4]));
    let metrics = first.report.metrics.clone();
    let first = json(&first.result.expect("decodes"));
    assert_eq!(
        first,
        json!({ "count": 1, "scaled": 30, "unit": "dC", "keys": ["scale", "unit"],
                "previous": null, "label": "café" })
    );
    assert_eq!(
        metrics,
        [
            MetricUpdate::Counter {
                name: "frames".into(),
                delta: 1
            },
            MetricUpdate::Counter {
                name: "bytes".into(),
                delta: 2
            },
            MetricUpdate::Gauge {
                name: "first_byte".into(),
                value: 3.0
            },
        ]
    );

    // The state is the device's own and lasts between messages.
    let second = json(&codec.decode(&on("a", &[5])).result.expect("decodes"));
    assert_eq!(second["count"], json!(2));
    assert_eq!(second["previous"], json!([3, 4]));
    let other = json(&codec.decode(&on("b", &[6])).result.expect("decodes"));
    assert_eq!(other["count"], json!(1));
    assert_eq!(other["previous"], json!(null));

    // Over the device's quota: the script's exception, a typed refusal; nothing was stored.
    let error = codec_error(
        codec
            .decode(&on("a", &[0xff]))
            .result
            .expect_err("over the quota"),
    );
    assert_eq!(error.kind, CodecErrorKind::Internal);
    assert!(error.message.contains("state quota"), "{}", error.message);
    let third = json(&codec.decode(&on("a", &[7])).result.expect("decodes"));
    assert_eq!(third["count"], json!(3));

    // Forgetting the device starts it over.
    codec.decode(&on("a", &[0xfe])).result.expect("forgets");
    let fresh = json(&codec.decode(&on("a", &[8])).result.expect("decodes"));
    assert_eq!(fresh["count"], json!(1));
    assert_eq!(fresh["previous"], json!(null));
}

#[test]
fn host_apis_at_the_top_level_are_a_build_error_that_says_when_they_work() {
    let err = sluice_js::build_js_codec(
        "const scale = sluice.config.get('scale');\nfunction decodeUplink(input) { return { data: {} }; }\n",
    )
    .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("while a message is handled"), "{text}");
    assert!(text.contains("line 1"), "{text}");
}
