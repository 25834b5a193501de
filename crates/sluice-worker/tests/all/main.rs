//! Integration tests of process isolation, on real worker processes (the
//! `sluice-worker-test` binary of this crate) running real guest components.

mod calls;
mod hostile;
mod protocol;
mod sandbox;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use sluice_runtime::{MemoryStateStore, StateStore};
use sluice_types::{ModulePolicy, ModuleRef, Uplink};
use sluice_worker::{SpawnOptions, WorkerHandle, WorkerOptions};

/// The worker executable built with the tests.
pub(crate) const WORKER_EXE: &str = env!("CARGO_BIN_EXE_sluice-worker-test");

/// A compile cache shared by the tests (and by later runs), so each component compiles once.
pub(crate) fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sluice-worker-cache")
}

/// Options of a small worker for `tenant`, with the shared compile cache.
pub(crate) fn worker_options(tenant: &str) -> WorkerOptions {
    WorkerOptions {
        max_instances: 8,
        cache_dir: Some(shared_cache_dir()),
        ..WorkerOptions::new(tenant)
    }
}

/// Starts a worker. With `SLUICE_WORKER_STRACE=<prefix>` in the environment, every worker
/// runs under `strace -ff -o <prefix>`, one file per thread: how the seccomp allowlist is
/// checked against what the worker really calls (tests that use the worker's pid fail then,
/// as the pid is strace's).
pub(crate) fn spawn_with(options: WorkerOptions) -> WorkerHandle {
    let spawn = match std::env::var("SLUICE_WORKER_STRACE") {
        Ok(prefix) => SpawnOptions::new("strace", options).with_args([
            "-ff",
            "-qq",
            "-o",
            prefix.as_str(),
            WORKER_EXE,
        ]),
        Err(_) => SpawnOptions::new(WORKER_EXE, options),
    };
    WorkerHandle::spawn(spawn).expect("the worker starts")
}

pub(crate) fn spawn(tenant: &str) -> WorkerHandle {
    spawn_with(worker_options(tenant))
}

pub(crate) fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

pub(crate) fn module_ref(name: &str) -> ModuleRef {
    ModuleRef::new(name, "1")
}

pub(crate) fn uplink(payload: &[u8]) -> Uplink {
    Uplink {
        device_id: "dev-1".into(),
        port: 1,
        received_at_ms: 1_700_000_000_000,
        payload: payload.to_vec(),
        metadata: vec![("site".into(), "plant-1".into())],
    }
}

/// Loads `component` into `slot` with `policy`, no config and `state`.
pub(crate) fn load_with(
    worker: &mut WorkerHandle,
    slot: u64,
    name: &str,
    component: &[u8],
    policy: ModulePolicy,
    state: Arc<dyn StateStore>,
) {
    worker
        .load(
            slot,
            module_ref(name),
            component,
            policy,
            BTreeMap::new(),
            state,
        )
        .unwrap_or_else(|e| panic!("{name} loads: {e}"));
}

/// Loads the component at `path` into `slot` with the default policy and a fresh store.
pub(crate) fn load(worker: &mut WorkerHandle, slot: u64, name: &str, path: &str) {
    load_with(
        worker,
        slot,
        name,
        &read(path),
        ModulePolicy::default(),
        Arc::new(MemoryStateStore::new()),
    );
}

/// The worker still runs calls correctly: the echo codec in a fresh slot answers.
pub(crate) fn assert_worker_healthy(worker: &mut WorkerHandle) {
    const HEALTH_SLOT: u64 = 999;
    assert!(worker.is_alive(), "worker is alive: {:?}", worker.failure());
    if !worker.slots().any(|s| s == HEALTH_SLOT) {
        load(
            worker,
            HEALTH_SLOT,
            "tp_echo",
            sluice_test_programs::TP_ECHO,
        );
    }
    let document = worker
        .decode(HEALTH_SLOT, &uplink(b"hi"))
        .result
        .expect("the echo codec decodes");
    assert_eq!(document.to_value()["hex"], "6869");
}
