//! What the builder accepts and refuses, before anything runs.

use sluice_js::{
    JsBuildError, JsBuildOptions, build_js_codec, build_js_codec_report, build_js_codec_with,
};

use crate::{component, fixture, runtime};

#[test]
fn build_produces_a_component_of_the_codec_world_without_wasi() {
    let info = runtime()
        .inspect(&component("cayenne-lpp.js"))
        .expect("the runtime accepts the component");
    assert_eq!(info.world, sluice_types::World::Codec);
    assert!(
        info.imports.iter().all(|i| i.starts_with("sluice:codec/")),
        "imports: {:?}",
        info.imports
    );
}

#[test]
fn build_reports_a_syntax_error_with_line_and_column() {
    let error = build_js_codec(&fixture("syntax-error.js")).expect_err("does not parse");
    let JsBuildError::Syntax {
        line,
        column,
        message,
    } = &error
    else {
        panic!("expected a syntax error, got {error:?}");
    };
    assert_eq!((*line, *column), (4, 31), "{error}");
    assert!(!message.is_empty());
    assert!(
        error
            .to_string()
            .starts_with("syntax error at line 4, column 31: ")
    );
}

#[test]
fn build_refuses_a_script_without_a_decoder() {
    assert_eq!(
        build_js_codec("function encodeDownlink(input) { return { bytes: [] }; }"),
        Err(JsBuildError::NoDecoder)
    );
}

#[test]
fn build_reports_a_top_level_exception_with_its_line() {
    let error = build_js_codec("function decodeUplink() {}\n\nnull.boom;\n").expect_err("throws");
    let JsBuildError::Exception { line, message, .. } = &error else {
        panic!("expected an exception, got {error:?}");
    };
    assert_eq!(*line, Some(3), "{error}");
    assert!(message.contains("null"), "{error}");
}

#[test]
fn build_stops_an_endless_top_level_loop_with_its_fuel() {
    let options = JsBuildOptions {
        init_fuel: 50_000_000,
        ..JsBuildOptions::default()
    };
    assert_eq!(
        build_js_codec_with("function decodeUplink() {}\nfor (;;) {}\n", &options),
        Err(JsBuildError::InitFuelExhausted {
            limit_fuel: 50_000_000
        })
    );
}

#[test]
fn build_stops_a_top_level_memory_bomb_at_its_limit() {
    let error = build_js_codec(
        "function decodeUplink() {}\nconst hoard = [];\nfor (;;) hoard.push(new Array(4096).fill(1));\n",
    )
    .expect_err("runs out of memory");
    assert_eq!(
        error,
        JsBuildError::InitMemoryLimit {
            limit_bytes: JsBuildOptions::default().max_memory_bytes
        }
    );
}

#[test]
fn build_refuses_an_oversized_script() {
    let options = JsBuildOptions {
        max_script_bytes: 16,
        ..JsBuildOptions::default()
    };
    assert!(matches!(
        build_js_codec_with("function Decoder(b, p) { return {}; }", &options),
        Err(JsBuildError::ScriptTooLarge {
            limit_bytes: 16,
            ..
        })
    ));
}

#[test]
fn build_is_reproducible() {
    // The clock reads 0 and Math.random is replaced before the script runs, so the same
    // script gives the same bytes: the runtime's compile cache (keyed by hash) then hits.
    let source =
        "var seed = Math.random() + Date.now();\nfunction Decoder(bytes) { return { seed }; }\n";
    let first = build_js_codec(source).expect("builds");
    let second = build_js_codec(source).expect("builds again");
    assert!(first == second, "two builds of one script differ");
}

#[test]
fn build_reports_what_evaluating_the_script_cost() {
    let build = build_js_codec_report(&fixture("cayenne-lpp.js"), &JsBuildOptions::default())
        .expect("builds");
    assert!(
        build.init_fuel_consumed > 100_000,
        "{}",
        build.init_fuel_consumed
    );
    assert!(build.init_fuel_consumed < JsBuildOptions::default().init_fuel);
    assert!(
        build.initial_memory_bytes >= 64 * 1024,
        "{}",
        build.initial_memory_bytes
    );
    assert_eq!(build.component, component("cayenne-lpp.js"));
}
