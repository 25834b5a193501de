//! Where guest calls run: in this process, or in one sandboxed worker process per tenant
//! (crate `sluice-worker`: seccomp, landlock, rlimits). The binding workers call through
//! [`Exec`] and do not know which.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_runtime::{CallOutcome, Instance, InstanceEnv, Module, Runtime, StateStore};
use sluice_types::{
    Decision, Document, Downlink, EncodedDownlink, GuestFailure, ModulePolicy, ModuleRef, Uplink,
};
use sluice_worker::{RespawnBackoff, SpawnOptions, WorkerHandle};

/// How guest code is isolated.
#[derive(Debug, Clone, Default)]
pub enum Isolation {
    /// Every tenant's code runs in this process (development, the demo, single-tenant use).
    #[default]
    InProcess,
    /// Each tenant's code runs in its own worker process, spawned with these options (the
    /// tenant and the cache directory are filled in per tenant).
    Process(Box<SpawnOptions>),
}

/// One tenant's worker process, started on first use and started again (with backoff)
/// after it dies.
pub(crate) struct TenantProcess {
    tenant: String,
    spawn: SpawnOptions,
    handle: Mutex<Option<WorkerHandle>>,
    backoff: Mutex<RespawnBackoff>,
}

impl TenantProcess {
    pub(crate) fn new(tenant: &str, template: &SpawnOptions) -> Self {
        let mut spawn = template.clone();
        spawn.worker.tenant = tenant.to_string();
        Self {
            tenant: tenant.to_string(),
            spawn,
            handle: Mutex::new(None),
            backoff: Mutex::new(RespawnBackoff::new(
                Duration::from_millis(100),
                Duration::from_secs(30),
            )),
        }
    }

    fn host_failure(&self, module: &ModuleRef, message: String) -> GuestFailure {
        GuestFailure::Host {
            module: module.clone(),
            message: format!("worker process of tenant `{}`: {message}", self.tenant),
        }
    }

    /// Runs `f` on a live worker, starting or restarting it first when needed.
    fn with_worker<T>(
        &self,
        module: &ModuleRef,
        f: impl FnOnce(&mut WorkerHandle) -> T,
    ) -> Result<T, GuestFailure> {
        let mut guard = self
            .handle
            .lock()
            .map_err(|_| self.host_failure(module, "lock poisoned".into()))?;
        let alive = guard.as_mut().map(WorkerHandle::is_alive);
        match (guard.as_mut(), alive) {
            (Some(_), Some(true)) => {}
            (Some(handle), _) => {
                let delay = self
                    .backoff
                    .lock()
                    .map(|mut b| b.next_delay())
                    .unwrap_or_default();
                tracing::warn!(tenant = %self.tenant, delay_ms = delay.as_millis() as u64, failure = ?handle.failure(), "worker process died; restarting it");
                std::thread::sleep(delay);
                if let Err(e) = handle.respawn() {
                    tracing::warn!(tenant = %self.tenant, error = %e, "worker restarted with errors");
                }
            }
            (None, _) => {
                let handle = WorkerHandle::spawn(self.spawn.clone())
                    .map_err(|e| self.host_failure(module, format!("cannot start: {e}")))?;
                tracing::info!(tenant = %self.tenant, pid = handle.pid(), "worker process started");
                *guard = Some(handle);
            }
        }
        let handle = guard
            .as_mut()
            .ok_or_else(|| self.host_failure(module, "not running".into()))?;
        Ok(f(handle))
    }

    /// Whether the worker died during the last call (so the message deserves a retry).
    fn died(&self) -> bool {
        self.handle
            .lock()
            .map(|mut h| h.as_mut().is_some_and(|h| !h.is_alive()))
            .unwrap_or(false)
    }

    pub(crate) fn reset_backoff(&self) {
        if let Ok(mut b) = self.backoff.lock() {
            b.reset();
        }
    }

    /// Stops the worker process.
    pub(crate) fn shutdown(&self) {
        if let Some(handle) = self.handle.lock().ok().and_then(|mut h| h.take()) {
            handle.shutdown();
        }
    }

    /// The worker's pid, when it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.handle
            .lock()
            .ok()
            .and_then(|h| h.as_ref().map(WorkerHandle::pid))
    }
}

/// A loaded module for one binding: a local instance or a slot in the tenant's worker.
pub(crate) enum Exec {
    Local(Instance),
    Remote {
        process: Arc<TenantProcess>,
        slot: u64,
        module: ModuleRef,
    },
}

impl Exec {
    /// Loads `module` (already validated by the local runtime) for a binding.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn load(
        runtime: &Runtime,
        process: Option<Arc<TenantProcess>>,
        slot: u64,
        module_ref: ModuleRef,
        component: &[u8],
        policy: ModulePolicy,
        config: BTreeMap<String, String>,
        state: Arc<dyn StateStore>,
    ) -> Result<Self, GuestFailure> {
        match process {
            None => {
                let module: Module = runtime.load(module_ref, component, policy)?;
                Ok(Exec::Local(module.instantiate(InstanceEnv {
                    config: Arc::new(config),
                    state,
                })))
            }
            Some(process) => {
                let loaded = process.with_worker(&module_ref, |w| {
                    w.load(slot, module_ref.clone(), component, policy, config, state)
                })?;
                loaded?;
                Ok(Exec::Remote {
                    process,
                    slot,
                    module: module_ref,
                })
            }
        }
    }

    pub(crate) fn module_ref(&self) -> ModuleRef {
        match self {
            Exec::Local(instance) => instance.module().module_ref().clone(),
            Exec::Remote { module, .. } => module.clone(),
        }
    }

    /// Runs `call` on the worker; if the worker died during it, starts it again and retries
    /// once, so a crash of the process does not cost the message.
    fn remote<T>(
        process: &TenantProcess,
        module: &ModuleRef,
        call: impl Fn(&mut WorkerHandle) -> CallOutcome<T>,
    ) -> CallOutcome<T> {
        for attempt in 0..2 {
            match process.with_worker(module, &call) {
                Ok(outcome) => {
                    if attempt == 0 && outcome.result.is_err() && process.died() {
                        tracing::warn!(module = %module, "the worker process died during a call; retrying the message once");
                        continue;
                    }
                    if outcome.result.is_ok() {
                        process.reset_backoff();
                    }
                    return outcome;
                }
                Err(failure) => {
                    return CallOutcome {
                        result: Err(failure),
                        report: Default::default(),
                    };
                }
            }
        }
        CallOutcome {
            result: Err(process.host_failure(module, "died twice on the same message".into())),
            report: Default::default(),
        }
    }

    pub(crate) fn decode(&mut self, uplink: &Uplink) -> CallOutcome<Document> {
        match self {
            Exec::Local(instance) => instance.decode(uplink),
            Exec::Remote {
                process,
                slot,
                module,
            } => Self::remote(process, module, |w| w.decode(*slot, uplink)),
        }
    }

    pub(crate) fn encode(&mut self, downlink: &Downlink) -> CallOutcome<EncodedDownlink> {
        match self {
            Exec::Local(instance) => instance.encode(downlink),
            Exec::Remote {
                process,
                slot,
                module,
            } => Self::remote(process, module, |w| w.encode(*slot, downlink)),
        }
    }

    pub(crate) fn route(
        &mut self,
        uplink: &Uplink,
        document: &Document,
    ) -> CallOutcome<Vec<Decision>> {
        match self {
            Exec::Local(instance) => instance.route(uplink, document),
            Exec::Remote {
                process,
                slot,
                module,
            } => Self::remote(process, module, |w| w.route(*slot, uplink, document)),
        }
    }
}

impl Drop for Exec {
    fn drop(&mut self) {
        if let Exec::Remote { process, slot, .. } = self
            && let Ok(mut guard) = process.handle.lock()
            && let Some(handle) = guard.as_mut()
        {
            handle.unload(*slot);
        }
    }
}
