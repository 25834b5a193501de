//! Hostile scripts: every limit of the runtime holds, each failure is typed, and the host
//! goes on decoding.

use sluice_types::{CodecErrorKind, GuestFailure, Limits, ModulePolicy};

use crate::{assert_host_unharmed, instance, load_with, uplink};

fn policy(limits: Limits) -> ModulePolicy {
    ModulePolicy {
        limits,
        ..ModulePolicy::default()
    }
}

#[test]
fn endless_loop_exhausts_the_fuel() {
    let mut codec = instance("infinite-loop.js");
    let failure = codec
        .decode(&uplink(1, &[1]))
        .result
        .expect_err("never returns");
    assert!(
        matches!(
            failure,
            GuestFailure::FuelExhausted {
                limit_fuel: 10_000_000,
                ..
            }
        ),
        "{failure}"
    );
    assert!(!codec.is_live(), "the instance is discarded");
    // The next message gets a fresh instance from the snapshot, and loops again.
    let again = codec.decode(&uplink(1, &[1]));
    assert!(again.report.instantiated);
    assert!(matches!(
        again.result,
        Err(GuestFailure::FuelExhausted { .. })
    ));
    assert_host_unharmed();
}

#[test]
fn endless_loop_with_ample_fuel_meets_the_deadline() {
    let limits = Limits {
        fuel_per_call: 1_000_000_000,
        deadline_ms: 20,
        ..Limits::default()
    };
    let mut codec = load_with("infinite-loop.js", policy(limits)).instantiate(Default::default());
    let out = codec.decode(&uplink(1, &[1]));
    let failure = out.result.expect_err("never returns");
    assert!(
        matches!(failure, GuestFailure::DeadlineExceeded { limit_ms: 20, .. }),
        "{failure}"
    );
    assert_host_unharmed();
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let limits = Limits {
        fuel_per_call: 1_000_000_000,
        deadline_ms: 10_000,
        max_memory_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let mut codec = load_with("memory-bomb.js", policy(limits)).instantiate(Default::default());
    let failure = codec
        .decode(&uplink(1, &[1]))
        .result
        .expect_err("grows without end");
    assert!(
        matches!(failure, GuestFailure::MemoryLimit { limit_bytes, .. } if limit_bytes == 8 * 1024 * 1024),
        "{failure}"
    );
    assert!(!codec.is_live());
    assert_host_unharmed();
}

#[test]
fn deep_recursion_is_a_typed_failure() {
    let mut codec = instance("deep-recursion.js");
    let failure = codec.decode(&uplink(1, &[1])).result.expect_err("recurses");
    match &failure {
        GuestFailure::GuestError { error, .. } => {
            assert_eq!(error.kind, CodecErrorKind::Internal);
            assert!(error.message.contains("stack"), "{failure}");
        }
        GuestFailure::StackOverflow { .. } => {}
        other => panic!("expected a stack failure, got {other}"),
    }
    // Whatever stopped it, the next call answers the same way.
    let again = codec
        .decode(&uplink(1, &[1]))
        .result
        .expect_err("recurses again");
    assert_eq!(again.kind(), failure.kind());
    assert_host_unharmed();
}

#[test]
fn thrown_string_is_an_internal_codec_error() {
    let mut codec = instance("throw-string.js");
    let failure = codec.decode(&uplink(1, &[1])).result.expect_err("throws");
    let GuestFailure::GuestError { error, .. } = &failure else {
        panic!("expected a codec error, got {failure}");
    };
    assert_eq!(error.kind, CodecErrorKind::Internal);
    assert_eq!(error.message, "decodeUplink threw cannot decode this");
    assert!(codec.is_live(), "a codec error keeps the instance");
    let ok = codec
        .decode(&uplink(1, &[]))
        .result
        .expect("no bytes, no throw");
    assert!(ok.as_map().is_empty());
}

#[test]
fn thrown_error_names_its_line_and_column() {
    let source =
        "function decodeUplink(input) {\n  return { data: { x: input.bytes.nope.length } };\n}\n";
    let component = sluice_js::build_js_codec(source).expect("builds");
    let module = crate::runtime()
        .load(
            sluice_types::ModuleRef::new("thrower", "1"),
            &component,
            ModulePolicy::default(),
        )
        .expect("loads");
    let mut codec = module.instantiate(Default::default());
    let failure = codec.decode(&uplink(1, &[1])).result.expect_err("throws");
    let GuestFailure::GuestError { error, .. } = &failure else {
        panic!("expected a codec error, got {failure}");
    };
    assert_eq!(error.kind, CodecErrorKind::Internal);
    assert!(
        error.message.starts_with("decodeUplink threw TypeError: "),
        "{}",
        error.message
    );
    assert!(
        error.message.ends_with("at line 2, column 23"),
        "{}",
        error.message
    );
}

#[test]
fn abusing_the_host_imports_hits_their_caps_and_typed_errors() {
    let mut codec = instance("host-api-flood.js");

    // A thousand metric names in one call: the per-call cap keeps 64, the rest are counted.
    let out = codec.decode(&uplink(1, &[1]));
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.report.metrics.len(), 64);
    assert_eq!(out.report.metrics_dropped, 1000 - 64);

    // The state quota (4 KiB per device by default) stops the writes with an exception the
    // script can catch.
    let out = codec.decode(&uplink(1, &[2]));
    let document = crate::json(&out.result.expect("decodes"));
    let stored = document["stored"].as_u64().expect("a count");
    assert!((20..32).contains(&stored), "{document}");
    assert!(
        document["refused"]
            .as_str()
            .is_some_and(|m| m.contains("state quota")),
        "{document}"
    );

    // An empty key, bytes out of range, a negative counter: uncaught, each is the codec's
    // internal error naming the problem, and the instance goes on.
    for (frame, expected) in [
        (3u8, "not a valid key"),
        (4, "byte 2 is 300"),
        (5, "not a whole number"),
    ] {
        let failure = codec
            .decode(&uplink(1, &[frame]))
            .result
            .expect_err("refused");
        match failure {
            GuestFailure::GuestError { error, .. } => {
                assert_eq!(error.kind, CodecErrorKind::Internal);
                assert!(error.message.contains(expected), "{}", error.message);
            }
            other => panic!("expected a codec error, got {other}"),
        }
        assert!(codec.is_live());
    }
    assert_host_unharmed();
}
