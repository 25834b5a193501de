//! Calls through a worker process give what the runtime gives in process; device state lives
//! in the supervisor.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use sluice_runtime::{MemoryStateStore, StateStore};
use sluice_test_programs as tp;
use sluice_types::{Document, Downlink, GuestFailure, Limits, ModulePolicy, ValidationError};
use sluice_worker::{SpawnOptions, WorkerHandle, WorkerOptions, WorkerStderr};

use crate::{
    WORKER_EXE, assert_worker_healthy, load, load_with, module_ref, read, spawn, spawn_with,
    uplink, worker_options,
};

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

fn doc(value: serde_json::Value) -> Document {
    Document::from_value(value).expect("valid document")
}

#[test]
fn cayenne_lpp_decodes_through_the_worker_process() {
    let mut worker = spawn("acme");
    load_with(
        &mut worker,
        1,
        "cayenne",
        tp::CAYENNE_LPP_BYTES,
        ModulePolicy::default(),
        Arc::new(MemoryStateStore::new()),
    );
    let cases = [
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
    for (frame, expected) in cases {
        let out = worker.decode(1, &uplink(&hex(frame)));
        let document = out.result.expect(frame);
        assert_eq!(document.to_value(), expected, "{frame}");
        assert!(out.report.fuel_consumed > 0);
    }
    // Encode goes through the worker too, and decodes back to the same document.
    let original = json!({"temperature_3": 27.2, "humidity_5": 50.5});
    let frame = worker
        .encode(
            1,
            &Downlink {
                device_id: "dev-1".into(),
                port: 1,
                document: doc(original.clone()),
                metadata: vec![],
            },
        )
        .result
        .expect("encodes");
    let decoded = worker
        .decode(1, &uplink(&frame.payload))
        .result
        .expect("decodes");
    assert_eq!(decoded.to_value(), original);
}

#[test]
fn state_operations_round_trip_through_the_supervisors_store() {
    let mut worker = spawn("acme");
    let store = Arc::new(MemoryStateStore::new());
    load_with(
        &mut worker,
        1,
        "tp_echo",
        &read(tp::TP_ECHO),
        ModulePolicy::default(),
        store.clone(),
    );
    for expected in 1..=3u64 {
        let out = worker.decode(1, &uplink(b"state"));
        assert_eq!(
            out.result.expect("counts").to_value(),
            json!({"count": expected})
        );
    }
    // The counter is in the supervisor's store, where anyone can see and change it.
    assert_eq!(
        store.get("dev-1", "count").expect("store"),
        Some(3u64.to_le_bytes().to_vec())
    );
    assert!(
        store
            .set("dev-1", "count", &41u64.to_le_bytes(), 1024)
            .expect("store")
    );
    let out = worker.decode(1, &uplink(b"state"));
    assert_eq!(out.result.expect("counts").to_value(), json!({"count": 42}));
    // Another device has its own counter.
    let mut other = uplink(b"state");
    other.device_id = "dev-2".into();
    let out = worker.decode(1, &other);
    assert_eq!(out.result.expect("counts").to_value(), json!({"count": 1}));
}

#[test]
fn the_state_quota_of_the_slots_policy_applies() {
    let mut worker = spawn("acme");
    let store = Arc::new(MemoryStateStore::new());
    let policy = ModulePolicy {
        limits: Limits {
            max_state_bytes_per_device: 1024,
            ..Limits::default()
        },
        ..ModulePolicy::default()
    };
    load_with(
        &mut worker,
        1,
        "tp_echo",
        &read(tp::TP_ECHO),
        policy,
        store.clone(),
    );
    let out = worker.decode(1, &uplink(b"bigstate"));
    assert_eq!(
        out.result.expect("answers").to_value(),
        json!({"quota_exceeded": true})
    );
    assert_eq!(store.device_bytes("dev-1"), 0);
}

#[test]
fn binding_config_reaches_the_guest() {
    let mut worker = spawn("acme");
    worker
        .load(
            1,
            module_ref("tp_echo"),
            &read(tp::TP_ECHO),
            ModulePolicy::default(),
            BTreeMap::from([("site".to_string(), "plant-7".to_string())]),
            Arc::new(MemoryStateStore::new()),
        )
        .expect("loads");
    let out = worker.decode(1, &uplink(b"config"));
    assert_eq!(
        out.result.expect("answers").to_value(),
        json!({"site": "plant-7"})
    );
    assert_eq!(out.report.logs.len(), 1, "{:?}", out.report.logs);
}

#[test]
fn router_decides_outputs_through_the_worker() {
    let mut worker = spawn("acme");
    load(&mut worker, 2, "tp_router", tp::TP_ROUTER);
    let decisions = worker
        .route(2, &uplink(b"x"), &doc(json!({"temperature": 35.0})))
        .result
        .expect("routes");
    let outputs: Vec<_> = decisions.iter().map(|d| d.output.as_str()).collect();
    assert_eq!(outputs, ["storage", "alerts"]);
}

#[test]
fn a_refused_module_is_a_typed_failure_and_the_worker_goes_on() {
    let mut worker = spawn("acme");
    let err = worker
        .load(
            1,
            module_ref("garbage"),
            &tp::garbage_bytes(),
            ModulePolicy::default(),
            BTreeMap::new(),
            Arc::new(MemoryStateStore::new()),
        )
        .expect_err("refused");
    assert_eq!(
        err,
        GuestFailure::Rejected {
            module: module_ref("garbage"),
            error: ValidationError::NotWasm,
        }
    );
    let err = worker
        .load(
            1,
            module_ref("truncated"),
            &tp::truncated_component(),
            ModulePolicy::default(),
            BTreeMap::new(),
            Arc::new(MemoryStateStore::new()),
        )
        .expect_err("refused");
    assert!(matches!(err, GuestFailure::Rejected { .. }), "{err}");
    // A codec called as a router is the runtime's typed failure, from the worker.
    load(&mut worker, 3, "tp_echo", tp::TP_ECHO);
    let out = worker.route(3, &uplink(b"x"), &Document::new());
    assert!(
        matches!(out.result, Err(GuestFailure::WrongWorld { .. })),
        "{:?}",
        out.result
    );
    assert_worker_healthy(&mut worker);
}

#[test]
fn calls_on_a_slot_that_is_not_loaded_fail_without_harming_the_worker() {
    let mut worker = spawn("acme");
    let out = worker.decode(5, &uplink(b"x"));
    let Err(GuestFailure::Host { message, .. }) = out.result else {
        panic!("expected a host failure, got {:?}", out.result);
    };
    assert!(message.contains("slot 5 is not loaded"), "{message}");
    load(&mut worker, 5, "tp_echo", tp::TP_ECHO);
    assert!(worker.decode(5, &uplink(b"x")).result.is_ok());
    assert!(worker.unload(5));
    assert!(!worker.unload(5));
    assert!(worker.decode(5, &uplink(b"x")).result.is_err());
    assert_worker_healthy(&mut worker);
}

#[test]
fn a_worker_without_a_cache_dir_compiles_and_runs() {
    let mut worker = spawn_with(WorkerOptions {
        max_instances: 4,
        ..WorkerOptions::new("no-cache")
    });
    assert_worker_healthy(&mut worker);
}

#[test]
fn each_tenant_has_its_own_process() {
    let a = spawn("tenant-a");
    let b = spawn("tenant-b");
    assert_ne!(a.pid(), b.pid());
    assert_ne!(a.pid(), std::process::id());
    assert_eq!(a.tenant(), "tenant-a");
}

#[test]
fn a_component_too_large_for_a_frame_is_refused_before_it_is_sent() {
    let mut worker = spawn("acme");
    let huge = vec![0u8; sluice_worker::MAX_FRAME_BYTES + 1];
    let err = worker
        .load(
            1,
            module_ref("huge"),
            &huge,
            ModulePolicy::default(),
            BTreeMap::new(),
            Arc::new(MemoryStateStore::new()),
        )
        .expect_err("too large");
    let GuestFailure::Host { message, .. } = &err else {
        panic!("expected a host failure, got {err:?}");
    };
    assert!(message.contains("bytes refused"), "{message}");
    // Nothing was sent: the worker is not blamed.
    assert!(worker.failure().is_none());
    assert_worker_healthy(&mut worker);
}

#[test]
fn the_sandbox_report_says_what_is_enforced() {
    let with_cache = spawn("acme");
    let without_cache = spawn_with(WorkerOptions::new("acme"));
    // The numbers are in docs/isolation.md and the crate documentation: update them with
    // the allowlist. The cache directory adds what writing artifacts needs, and lets
    // `openat` run (under landlock) instead of refusing it.
    let counts = |worker: &sluice_worker::WorkerHandle| {
        (
            worker.sandbox().seccomp_allowed_syscalls,
            worker.sandbox().seccomp_refused_syscalls,
        )
    };
    assert_eq!(
        counts(&without_cache),
        (45, 5),
        "{:?}",
        without_cache.sandbox()
    );
    assert_eq!(counts(&with_cache), (51, 4), "{:?}", with_cache.sandbox());
    assert!(with_cache.sandbox().landlock_fully_enforced);
    assert_eq!(with_cache.sandbox().max_open_files, 1024);
    assert_eq!(with_cache.sandbox().max_address_space_bytes, None);
}

#[test]
fn a_worker_holds_only_its_socket_stdio_and_runtime_descriptors() {
    let mut options = SpawnOptions::new(WORKER_EXE, worker_options("acme"));
    options.stderr = WorkerStderr::Null;
    let mut worker = WorkerHandle::spawn(options).expect("starts");
    load(&mut worker, 1, "tp_echo", tp::TP_ECHO);
    assert!(worker.decode(1, &uplink(b"x")).result.is_ok());
    let pid = worker.pid();
    let mut targets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .map(|e| {
            let link = std::fs::read_link(e.expect("entry").path()).expect("link");
            let link = link.to_string_lossy();
            // Keep the kind, not the inode or pid.
            link.split([':', '/'])
                .find(|part| !part.is_empty())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    targets.sort();
    // stdin and its duplicate (the socket), stdout and stderr (/dev/null), the page map
    // (/proc/<pid>/pagemap), the module's memory image (memfd): nothing inherited from this
    // test process (cargo's jobserver pipe, for one).
    assert_eq!(
        targets,
        ["dev", "dev", "memfd", "proc", "socket", "socket"],
        "{targets:?}"
    );
}
