//! Every example's `vectors.yaml` passes on the production runtime, and a wrong expectation
//! is reported with a readable diff.

use std::path::PathBuf;
use std::sync::OnceLock;

use sluice_runtime::{Module, Runtime, RuntimeConfig};
use sluice_test_programs as tp;
use sluice_types::{ModulePolicy, ModuleRef};
use sluice_vectors::{VectorFile, run};

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(RuntimeConfig::default()).expect("runtime starts"))
}

fn load(path: &str) -> Module {
    let bytes = std::fs::read(path).expect("component exists");
    runtime()
        .load(
            ModuleRef::new("example", "1"),
            &bytes,
            ModulePolicy::default(),
        )
        .expect("loads")
}

fn vectors(example: &str) -> VectorFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(example)
        .join("vectors.yaml");
    VectorFile::load(&path).expect("vectors parse")
}

fn assert_all_pass(component: &str, example: &str) {
    let file = vectors(example);
    assert!(!file.vectors.is_empty());
    let results = run(&load(component), &file);
    let failures: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}:\n{}", r.name, r.diff.clone().unwrap_or_default()))
        .collect();
    assert!(failures.is_empty(), "{example}: {}", failures.join("\n"));
    assert_eq!(results.len(), file.vectors.len());
}

#[test]
fn cayenne_lpp_vectors_pass_in_the_sandbox() {
    assert_all_pass(tp::CAYENNE_LPP, "cayenne-lpp");
}

#[test]
fn bitpacked_vectors_pass_in_the_sandbox() {
    assert_all_pass(tp::BITPACKED, "bitpacked");
}

#[test]
fn tlv_vectors_pass_in_the_sandbox() {
    assert_all_pass(tp::TLV, "tlv");
}

#[test]
fn threshold_router_vectors_pass_in_the_sandbox() {
    assert_all_pass(tp::THRESHOLD_ROUTER, "threshold-router");
}

#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    let file = VectorFile::parse(
        r#"
vectors:
  - name: wrong temperature
    payload_hex: "03 67 01 10"
    expect: { temperature_3: 99.9 }
  - name: wrong error kind
    payload_hex: "03 67 01"
    expect_error: { kind: unsupported }
  - name: expects an error but decodes
    payload_hex: "03 67 01 10"
    expect_error: { kind: invalid-input }
"#,
        "inline",
    )
    .expect("parses");
    let results = run(&load(tp::CAYENNE_LPP), &file);
    assert!(results.iter().all(|r| !r.passed));
    let diff = results[0].diff.as_deref().expect("a diff");
    assert!(diff.contains("-  \"temperature_3\": 99.9"), "{diff}");
    assert!(diff.contains("+  \"temperature_3\": 27.2"), "{diff}");
    let kind = results[1].diff.as_deref().expect("a message");
    assert!(kind.contains("expected a unsupported error"), "{kind}");
    assert!(kind.contains("got invalid-input"), "{kind}");
}

#[test]
fn a_hostile_module_fails_its_vectors_with_the_typed_failure() {
    let file = VectorFile::parse(
        "vectors:\n  - name: loops\n    payload_hex: '00'\n    expect: {}\n",
        "inline",
    )
    .expect("parses");
    let results = run(&load(tp::TP_INFINITE_LOOP), &file);
    let diff = results[0].diff.as_deref().expect("a message");
    assert!(diff.contains("fuel exhausted"), "{diff}");
}
