//! Hostile guests get their typed failure and the worker survives; a worker that dies is
//! reported precisely and can be respawned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use sluice_runtime::MemoryStateStore;
use sluice_test_programs as tp;
use sluice_types::{GuestFailure, Limits, ModulePolicy, TrapKind};
use sluice_worker::{SpawnOptions, WorkerError, WorkerExit, WorkerHandle, WorkerStderr};

use crate::{
    WORKER_EXE, assert_worker_healthy, load, load_with, module_ref, read, spawn, uplink,
    worker_options,
};

fn policy(limits: Limits) -> ModulePolicy {
    ModulePolicy {
        limits,
        ..ModulePolicy::default()
    }
}

/// Fuel no loop exhausts within the tests' deadlines.
const ENDLESS_FUEL: u64 = 1_000_000_000_000_000;

/// A worker whose ceiling allows [`ENDLESS_FUEL`] and a 60 s deadline.
fn long_running_options(tenant: &str) -> sluice_worker::WorkerOptions {
    let mut options = worker_options(tenant);
    options.ceiling.fuel_per_call = ENDLESS_FUEL;
    options.ceiling.deadline_ms = 60_000;
    options
}

/// A policy under which the infinite loop runs for `deadline_ms`.
fn long_loop(deadline_ms: u64) -> ModulePolicy {
    policy(Limits {
        fuel_per_call: ENDLESS_FUEL,
        deadline_ms,
        ..Limits::default()
    })
}

#[test]
fn infinite_loop_exhausts_fuel_and_the_worker_survives() {
    let mut worker = spawn("acme");
    let pid = worker.pid();
    load(&mut worker, 1, "tp_infinite_loop", tp::TP_INFINITE_LOOP);
    let out = worker.decode(1, &uplink(b"x"));
    assert_eq!(
        out.result.expect_err("loops"),
        GuestFailure::FuelExhausted {
            module: module_ref("tp_infinite_loop"),
            limit_fuel: Limits::default().fuel_per_call,
        }
    );
    assert_eq!(out.report.fuel_consumed, Limits::default().fuel_per_call);
    assert_worker_healthy(&mut worker);
    assert_eq!(worker.pid(), pid, "same process");
}

#[test]
fn infinite_loop_hits_the_deadline_in_the_worker() {
    let mut worker = crate::spawn_with(long_running_options("acme"));
    load_with(
        &mut worker,
        1,
        "tp_infinite_loop",
        &read(tp::TP_INFINITE_LOOP),
        long_loop(20),
        Arc::new(MemoryStateStore::new()),
    );
    let out = worker.decode(1, &uplink(b"x"));
    assert_eq!(
        out.result.expect_err("loops"),
        GuestFailure::DeadlineExceeded {
            module: module_ref("tp_infinite_loop"),
            limit_ms: 20,
        }
    );
    assert!(
        out.report.duration < Duration::from_secs(2),
        "{:?}",
        out.report.duration
    );
    assert_worker_healthy(&mut worker);
}

#[test]
fn memory_bomb_hits_the_memory_limit_and_the_worker_survives() {
    let mut worker = spawn("acme");
    load_with(
        &mut worker,
        1,
        "tp_memory_bomb",
        &read(tp::TP_MEMORY_BOMB),
        policy(Limits {
            max_memory_bytes: 8 * 1024 * 1024,
            ..Limits::default()
        }),
        Arc::new(MemoryStateStore::new()),
    );
    for _ in 0..2 {
        let out = worker.decode(1, &uplink(b"x"));
        assert_eq!(
            out.result.expect_err("explodes"),
            GuestFailure::MemoryLimit {
                module: module_ref("tp_memory_bomb"),
                limit_bytes: 8 * 1024 * 1024,
            }
        );
    }
    assert_worker_healthy(&mut worker);
}

#[test]
fn traps_that_arrive_as_signals_work_under_seccomp() {
    // Stack overflow (a fault on a guard page) and a panic (`unreachable`, an illegal
    // instruction) reach wasmtime as signals; its handlers must run inside the filter.
    let mut worker = spawn("acme");
    load(&mut worker, 1, "tp_recursion", tp::TP_RECURSION);
    load(&mut worker, 2, "tp_panic", tp::TP_PANIC);
    let out = worker.decode(1, &uplink(b"x"));
    assert_eq!(
        out.result.expect_err("recurses"),
        GuestFailure::StackOverflow {
            module: module_ref("tp_recursion"),
            limit_bytes: Limits::default().max_stack_bytes,
        }
    );
    let out = worker.decode(2, &uplink(b""));
    let Err(GuestFailure::Trap { kind, message, .. }) = out.result else {
        panic!("expected a trap, got {:?}", out.result);
    };
    assert_eq!(kind, TrapKind::Unreachable);
    assert!(message.contains("codec panicked on purpose"), "{message}");
    assert_worker_healthy(&mut worker);
}

#[test]
fn sigkill_mid_call_is_reported_by_name_and_a_respawned_worker_carries_on() {
    let mut worker = crate::spawn_with(long_running_options("acme"));
    let store = Arc::new(MemoryStateStore::new());
    load_with(
        &mut worker,
        1,
        "tp_echo",
        &read(tp::TP_ECHO),
        ModulePolicy::default(),
        store.clone(),
    );
    load_with(
        &mut worker,
        2,
        "tp_infinite_loop",
        &read(tp::TP_INFINITE_LOOP),
        long_loop(30_000),
        Arc::new(MemoryStateStore::new()),
    );
    let out = worker.decode(1, &uplink(b"state"));
    assert_eq!(out.result.expect("counts").to_value(), json!({"count": 1}));

    let pid = worker.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        kill(
            Pid::from_raw(i32::try_from(pid).expect("pid")),
            Signal::SIGKILL,
        )
        .expect("kill");
    });
    let started = Instant::now();
    let out = worker.decode(2, &uplink(b"x"));
    killer.join().expect("killer");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let Err(GuestFailure::Host { module, message }) = out.result else {
        panic!("expected a host failure, got {:?}", out.result);
    };
    assert_eq!(module, module_ref("tp_infinite_loop"));
    assert_eq!(
        message,
        format!(
            "worker process for tenant `acme` (pid {pid}) died: killed by signal SIGKILL (killed by the supervisor, an operator or the out-of-memory killer)"
        )
    );
    assert!(matches!(
        worker.failure(),
        Some(WorkerError::Died {
            exit: WorkerExit::Signaled { signal: 9, .. },
            ..
        })
    ));
    assert!(!worker.is_alive());
    // Until it is respawned, calls fail at once with the reason.
    let out = worker.decode(1, &uplink(b"state"));
    let Err(GuestFailure::Host { message, .. }) = out.result else {
        panic!("expected a host failure, got {:?}", out.result);
    };
    assert!(
        message.contains("is not running") && message.contains("SIGKILL"),
        "{message}"
    );

    worker.respawn().expect("respawns");
    assert_ne!(worker.pid(), pid);
    assert_eq!(worker.spawns(), 2);
    assert!(worker.is_alive());
    // Slots were loaded again, and the state (in the supervisor) survived the crash.
    let out = worker.decode(1, &uplink(b"state"));
    assert_eq!(out.result.expect("counts").to_value(), json!({"count": 2}));
    assert_worker_healthy(&mut worker);
}

#[test]
fn a_worker_that_stops_answering_is_killed_after_the_call_timeout() {
    let mut options = SpawnOptions::new(WORKER_EXE, long_running_options("acme"));
    options.call_timeout = Duration::from_millis(500);
    let mut worker = WorkerHandle::spawn(options).expect("starts");
    load_with(
        &mut worker,
        1,
        "tp_infinite_loop",
        &read(tp::TP_INFINITE_LOOP),
        long_loop(30_000),
        Arc::new(MemoryStateStore::new()),
    );
    let started = Instant::now();
    let out = worker.decode(1, &uplink(b"x"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let Err(GuestFailure::Host { message, .. }) = out.result else {
        panic!("expected a host failure, got {:?}", out.result);
    };
    assert!(
        message.contains("did not answer within 500 ms"),
        "{message}"
    );
    assert!(matches!(
        worker.failure(),
        Some(WorkerError::Unresponsive { waited_ms: 500, .. })
    ));
    assert!(!worker.is_alive());
    worker.respawn().expect("respawns");
    assert_worker_healthy(&mut worker);
}

#[test]
fn killing_the_worker_between_calls_is_noticed() {
    let mut worker = spawn("acme");
    load(&mut worker, 1, "tp_echo", tp::TP_ECHO);
    let exit = worker.kill().expect("it was running");
    assert_eq!(
        exit,
        WorkerExit::Signaled {
            signal: 9,
            core_dumped: false
        }
    );
    assert!(!worker.is_alive());
    worker.respawn().expect("respawns");
    assert!(worker.decode(1, &uplink(b"x")).result.is_ok());
    assert_eq!(worker.shutdown(), Some(WorkerExit::Exited { code: 0 }));
}

/// The worker's `VmData` (what `RLIMIT_DATA` limits), in bytes.
fn data_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmData:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmData");
    kib * 1024
}

#[test]
fn a_worker_over_its_memory_cap_is_stopped_without_harming_the_supervisor() {
    // Every module in the ceiling's stack class: a second engine would not fit either.
    let ceiling_stack = sluice_worker::WorkerOptions::default()
        .ceiling
        .max_stack_bytes;
    let bomb = policy(Limits {
        max_memory_bytes: 64 * 1024 * 1024,
        fuel_per_call: 1_000_000_000,
        max_stack_bytes: ceiling_stack,
        ..Limits::default()
    });
    let echo = policy(Limits {
        max_stack_bytes: ceiling_stack,
        ..Limits::default()
    });
    // Measure what a ready worker uses, and let it compile the modules into the cache (the
    // capped worker has no room to compile); then cap another one 24 MiB above that: a guest
    // allowed 64 MiB of linear memory cannot have it.
    let mut uncapped = spawn("acme");
    let baseline = data_bytes(uncapped.pid());
    println!("a ready worker's writable data: {} MiB", baseline >> 20);
    let store = || Arc::new(MemoryStateStore::new());
    load_with(
        &mut uncapped,
        1,
        "tp_memory_bomb",
        &read(tp::TP_MEMORY_BOMB),
        bomb.clone(),
        store(),
    );
    load_with(
        &mut uncapped,
        2,
        "tp_echo",
        &read(tp::TP_ECHO),
        echo.clone(),
        store(),
    );
    drop(uncapped);

    let mut options = SpawnOptions::new(WORKER_EXE, worker_options("acme"));
    options.worker.max_data_bytes = baseline + 24 * 1024 * 1024;
    // It may die of a panic: its last words would only be noise here.
    options.stderr = WorkerStderr::Null;
    let mut worker = WorkerHandle::spawn(options).expect("starts");
    assert_eq!(worker.sandbox().max_data_bytes, baseline + 24 * 1024 * 1024);
    load_with(
        &mut worker,
        1,
        "tp_memory_bomb",
        &read(tp::TP_MEMORY_BOMB),
        bomb,
        store(),
    );
    let out = worker.decode(1, &uplink(b"x"));
    match out.result.expect_err("cannot have the memory") {
        // The worker ran out of memory and died of it (not of seccomp).
        GuestFailure::Host { message, .. } => {
            assert!(message.contains("died"), "{message}");
            let exit = worker.failure().and_then(WorkerError::exit).expect("died");
            assert!(!exit.is_seccomp_kill(), "{exit}");
            worker.respawn().expect("respawns");
        }
        // Or the guest's growth failed inside the worker, which goes on.
        other => assert!(
            matches!(
                other,
                GuestFailure::MemoryLimit { .. } | GuestFailure::Trap { .. }
            ),
            "{other}"
        ),
    }
    load_with(&mut worker, 2, "tp_echo", &read(tp::TP_ECHO), echo, store());
    assert!(worker.decode(2, &uplink(b"x")).result.is_ok());
}
