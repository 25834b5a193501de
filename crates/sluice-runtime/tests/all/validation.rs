//! Load-time refusals name the problem.

use sluice_test_programs as tp;
use sluice_types::{GuestFailure, Limits, ModulePolicy, ValidationError, World};

use crate::{module_ref, read, runtime};

fn reject(bytes: &[u8], policy: ModulePolicy) -> (ValidationError, String) {
    let err = runtime()
        .load(module_ref("bad"), bytes, policy)
        .expect_err("must be refused");
    let text = err.to_string();
    match err {
        GuestFailure::Rejected { module, error } => {
            assert_eq!(module, module_ref("bad"));
            (error, text)
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn garbage_bytes_are_not_wasm() {
    let (error, text) = reject(&tp::garbage_bytes(), ModulePolicy::default());
    assert_eq!(error, ValidationError::NotWasm);
    assert!(text.contains("not a WebAssembly binary"), "{text}");
}

#[test]
fn a_core_module_is_refused_with_a_hint() {
    let (error, text) = reject(&read(tp::TP_CORE_MODULE), ModulePolicy::default());
    assert_eq!(error, ValidationError::CoreModule);
    assert!(text.contains("wasm32-wasip2"), "{text}");
}

#[test]
fn a_truncated_component_is_invalid() {
    let (error, _) = reject(&tp::truncated_component(), ModulePolicy::default());
    assert!(
        matches!(error, ValidationError::Invalid { .. }),
        "{error:?}"
    );
}

#[test]
fn limits_above_the_ceiling_are_refused_naming_the_field() {
    let policy = ModulePolicy {
        limits: Limits {
            max_memory_bytes: u64::MAX,
            ..Limits::default()
        },
        ..ModulePolicy::default()
    };
    let (error, text) = reject(&read(tp::TP_ECHO), policy);
    assert!(matches!(error, ValidationError::Limits(_)));
    assert!(text.contains("max_memory_bytes"), "{text}");
}

#[test]
fn zero_fuel_is_refused() {
    let policy = ModulePolicy {
        limits: Limits {
            fuel_per_call: 0,
            ..Limits::default()
        },
        ..ModulePolicy::default()
    };
    let (_, text) = reject(&read(tp::TP_ECHO), policy);
    assert!(text.contains("fuel_per_call"), "{text}");
}

#[test]
fn inspect_describes_a_codec_and_a_router() {
    let codec = runtime().inspect(&read(tp::TP_ECHO)).expect("inspects");
    assert_eq!(codec.world, World::Codec);
    assert!(codec.exports.contains(&"decode-uplink".to_string()));
    assert!(
        codec
            .imports
            .iter()
            .any(|i| i.starts_with("sluice:codec/log@")),
        "{:?}",
        codec.imports
    );
    assert_eq!(codec.sha256.len(), 64);
    let router = runtime().inspect(&read(tp::TP_ROUTER)).expect("inspects");
    assert_eq!(router.world, World::Router);
}

#[test]
fn calling_a_function_of_the_other_world_is_a_typed_error() {
    let mut router = crate::instance(tp::TP_ROUTER);
    let out = router.decode(&crate::uplink(b"x"));
    assert!(
        matches!(out.result, Err(GuestFailure::WrongWorld { ref function, .. }) if function == "decode-uplink"),
        "{:?}",
        out.result
    );
}

#[test]
fn a_denied_clock_refuses_a_module_that_reads_the_clock() {
    let policy = ModulePolicy {
        clock: sluice_types::ClockMode::Denied,
        ..ModulePolicy::default()
    };
    let (error, _) = reject(&read(tp::TP_ECHO), policy);
    assert!(
        matches!(error, ValidationError::NotGranted { ref grant, .. } if grant == "clock"),
        "{error:?}"
    );
}

#[test]
fn compiled_artifacts_are_reused_from_the_disk_cache_and_corruption_is_a_miss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = sluice_runtime::RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..sluice_runtime::RuntimeConfig::default()
    };
    let bytes = read(tp::TP_ECHO);
    let first = sluice_runtime::Runtime::new(config.clone()).expect("runtime");
    first
        .load(module_ref("echo"), &bytes, ModulePolicy::default())
        .expect("loads");
    let artifacts: Vec<_> = std::fs::read_dir(dir.path())
        .expect("cache dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "one artifact written");

    // A second runtime (a new process, in effect) loads it and it works.
    let second = sluice_runtime::Runtime::new(config.clone()).expect("runtime");
    let module = second
        .load(module_ref("echo"), &bytes, ModulePolicy::default())
        .expect("loads from cache");
    let out = module
        .instantiate(sluice_runtime::InstanceEnv::default())
        .decode(&crate::uplink(b"hi"));
    assert!(out.result.is_ok());

    // A corrupted artifact is detected and recompiled, not loaded.
    let path = artifacts[0].path();
    let mut corrupt = std::fs::read(&path).expect("artifact");
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xFF;
    std::fs::write(&path, corrupt).expect("write");
    let third = sluice_runtime::Runtime::new(config).expect("runtime");
    let module = third
        .load(module_ref("echo"), &bytes, ModulePolicy::default())
        .expect("recompiles");
    let out = module
        .instantiate(sluice_runtime::InstanceEnv::default())
        .decode(&crate::uplink(b"hi"));
    assert!(out.result.is_ok());
}
