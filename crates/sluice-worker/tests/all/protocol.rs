//! The supervisor does not trust what comes out of the socket: a "worker" that sends garbage,
//! an oversized frame, nothing at all, or exits at once is reported and never harms it.

use std::time::{Duration, Instant};

use sluice_worker::{SpawnOptions, WorkerError, WorkerExit, WorkerHandle, WorkerOptions};

/// Starts `/bin/sh -c script` as the worker (its stdin is the socket).
fn fake_worker(script: &str, ready_timeout: Duration) -> Result<WorkerHandle, WorkerError> {
    let mut options =
        SpawnOptions::new("/bin/sh", WorkerOptions::new("fake")).with_args(["-c", script]);
    options.ready_timeout = ready_timeout;
    WorkerHandle::spawn(options)
}

#[test]
fn a_worker_that_sends_garbage_is_killed_as_a_protocol_violation() {
    let err = fake_worker(
        r"printf '\000\000\000\003abc' >&0; sleep 30",
        Duration::from_secs(10),
    )
    .expect_err("garbage");
    assert!(
        matches!(&err, WorkerError::ProtocolViolation { reason, .. } if reason.contains("malformed")),
        "{err}"
    );
}

#[test]
fn a_worker_that_announces_an_oversized_frame_is_killed() {
    let started = Instant::now();
    let err = fake_worker(
        r"printf '\377\377\377\377' >&0; sleep 30",
        Duration::from_secs(10),
    )
    .expect_err("oversized");
    assert!(
        matches!(&err, WorkerError::ProtocolViolation { reason, .. } if reason.contains("frame of 4294967295 bytes")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_worker_that_never_gets_ready_is_killed_after_the_ready_timeout() {
    let err = fake_worker("sleep 30", Duration::from_millis(300)).expect_err("silent");
    assert!(
        matches!(err, WorkerError::Unresponsive { waited_ms: 300, .. }),
        "{err}"
    );
}

#[test]
fn a_worker_that_exits_at_once_is_reported_with_its_status() {
    let err = fake_worker("exit 3", Duration::from_secs(10)).expect_err("exits");
    assert!(
        matches!(
            err,
            WorkerError::Died {
                exit: WorkerExit::Exited { code: 3 },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_missing_executable_is_a_spawn_error() {
    let err = WorkerHandle::spawn(SpawnOptions::new(
        "/nonexistent/sluice",
        WorkerOptions::new("acme"),
    ))
    .expect_err("missing");
    assert!(matches!(err, WorkerError::Spawn { .. }), "{err}");
    assert!(err.to_string().contains("tenant `acme`"), "{err}");
}
