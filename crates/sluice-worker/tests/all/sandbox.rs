//! The sandbox holds: forbidden system calls kill the worker with `SIGSYS`, and landlock keeps
//! it out of the filesystem except its cache directory.

use std::path::PathBuf;

use sluice_test_programs as tp;
use sluice_types::GuestFailure;
use sluice_worker::{
    SELF_TEST_ALLOWED_EXIT_CODE, SELF_TEST_DENIED_EXIT_CODE, SelfTest, WorkerError, WorkerExit,
    WorkerHandle, WorkerOptions,
};

use crate::{assert_worker_healthy, load, spawn, spawn_with, uplink, worker_options};

fn with_self_test(options: WorkerOptions, test: SelfTest) -> WorkerHandle {
    spawn_with(WorkerOptions {
        self_test: Some(test),
        ..options
    })
}

/// The worker attempts `test` after hardening; the next call finds it dead.
fn assert_killed_by_seccomp(test: SelfTest) {
    let mut worker = with_self_test(worker_options("intruder"), test.clone());
    let pid = worker.pid();
    let err = worker
        .load(
            1,
            crate::module_ref("tp_echo"),
            &crate::read(tp::TP_ECHO),
            Default::default(),
            Default::default(),
            std::sync::Arc::new(sluice_runtime::MemoryStateStore::new()),
        )
        .expect_err("the worker is dead");
    assert_eq!(
        err,
        GuestFailure::Host {
            module: crate::module_ref("tp_echo"),
            message: format!(
                "worker process for tenant `intruder` (pid {pid}) died: killed by signal SIGSYS (a forbidden system call)"
            ),
        },
        "{test:?}"
    );
    let exit = worker.failure().and_then(WorkerError::exit).expect("died");
    assert!(exit.is_seccomp_kill(), "{exit}");
    assert!(!worker.is_alive());
    // The supervisor (this test process) is unharmed, and a worker without the self-test
    // works.
    assert_worker_healthy(&mut spawn("intruder"));
}

#[test]
fn seccomp_kills_a_worker_that_opens_a_socket() {
    assert_killed_by_seccomp(SelfTest::TcpConnect);
}

#[test]
fn seccomp_kills_a_worker_that_calls_execve() {
    assert_killed_by_seccomp(SelfTest::Execve);
}

#[test]
fn seccomp_kills_a_worker_that_starts_a_process() {
    assert_killed_by_seccomp(SelfTest::Spawn);
}

/// Runs a file self-test and returns the worker's exit.
fn file_self_test(options: WorkerOptions, test: SelfTest) -> WorkerExit {
    with_self_test(options, test).shutdown().expect("it ran")
}

const DENIED: WorkerExit = WorkerExit::Exited {
    code: SELF_TEST_DENIED_EXIT_CODE,
};
const ALLOWED: WorkerExit = WorkerExit::Exited {
    code: SELF_TEST_ALLOWED_EXIT_CODE,
};

#[test]
fn landlock_is_fully_enforced_on_this_kernel() {
    let worker = spawn("acme");
    let sandbox = worker.sandbox();
    assert!(
        sandbox.landlock_fully_enforced,
        "landlock ABI 6 (Linux 6.12+) is needed for these tests: {}",
        sandbox.landlock
    );
    assert!(sandbox.seccomp_allowed_syscalls > 30, "{sandbox:?}");
    assert_eq!(
        sandbox.max_data_bytes,
        WorkerOptions::default().max_data_bytes
    );
}

#[test]
fn landlock_denies_reading_etc_passwd() {
    // With a cache directory the seccomp filter lets `openat` through: landlock refuses.
    assert_eq!(
        file_self_test(
            worker_options("acme"),
            SelfTest::ReadFile("/etc/passwd".into())
        ),
        DENIED
    );
    // Without one, `openat` itself is refused.
    assert_eq!(
        file_self_test(
            WorkerOptions::new("acme"),
            SelfTest::ReadFile("/etc/passwd".into())
        ),
        DENIED
    );
}

#[test]
fn landlock_allows_the_cache_dir_and_nothing_else() {
    let cache = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let options = || WorkerOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        ..WorkerOptions::new("acme")
    };
    let inside: PathBuf = cache.path().join("acme").join("probe");
    assert_eq!(
        file_self_test(options(), SelfTest::WriteFile(inside.clone())),
        ALLOWED
    );
    assert_eq!(
        file_self_test(options(), SelfTest::ReadFile(inside)),
        ALLOWED
    );
    assert_eq!(
        file_self_test(options(), SelfTest::WriteFile(outside.path().join("probe"))),
        DENIED
    );
    assert!(!outside.path().join("probe").exists());
    assert_eq!(
        file_self_test(options(), SelfTest::ReadFile("/proc/self/environ".into())),
        DENIED
    );
    // Another tenant's cache directory, next to its own, is out of reach too.
    let other = cache.path().join("globex");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("artifact"), b"native code").expect("write");
    assert_eq!(
        file_self_test(options(), SelfTest::ReadFile(other.join("artifact"))),
        DENIED
    );
    assert_eq!(
        file_self_test(options(), SelfTest::WriteFile(other.join("planted"))),
        DENIED
    );
}

#[test]
fn the_compile_cache_works_inside_the_sandbox() {
    let cache = tempfile::tempdir().expect("tempdir");
    let options = || WorkerOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        max_instances: 4,
        ..WorkerOptions::new("acme")
    };
    let mut first = spawn_with(options());
    load(&mut first, 1, "tp_echo", tp::TP_ECHO);
    drop(first);
    let artifacts = std::fs::read_dir(cache.path().join("acme"))
        .expect("cache dir")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .count();
    assert_eq!(artifacts, 1, "the worker wrote the compiled artifact");
    // A second worker loads it from the cache.
    let mut second = spawn_with(options());
    load(&mut second, 1, "tp_echo", tp::TP_ECHO);
    assert!(second.decode(1, &uplink(b"x")).result.is_ok());
}
