//! The supervisor's side: starts a tenant's worker process and runs calls in it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_runtime::{CallOutcome, CallReport, MAX_STATE_KEY_BYTES, StateStore};
use sluice_types::{
    Decision, Document, Downlink, EncodedDownlink, GuestFailure, ModulePolicy, ModuleRef, Uplink,
};

use crate::error::{WorkerError, WorkerExit};
use crate::options::{WORKER_OPTIONS_ENV, WorkerOptions};
use crate::protocol::{
    FromWorker, ProtocolError, SandboxReport, StateOp, StateValue, ToWorker, encode_frame,
    read_frame,
};

/// Environment variables passed on to the worker; its environment is otherwise empty.
const PASSED_ENV: &[&str] = &["RUST_LOG", "RUST_BACKTRACE"];
/// How long a worker whose socket ended may take to be reaped before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long [`WorkerHandle::shutdown`] waits for a clean exit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Where the worker's standard error goes (its logs and last words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerStderr {
    /// The supervisor's own standard error.
    #[default]
    Inherit,
    /// Discarded.
    Null,
}

/// How to start a worker process, and how long to wait for it.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// The executable: in production the `sluice` binary (with a `worker` argument that runs
    /// [`crate::worker_main`]).
    pub program: PathBuf,
    /// Arguments for it.
    pub args: Vec<OsString>,
    /// What the worker is told (tenant, runtime, sandbox limits).
    pub worker: WorkerOptions,
    /// Where its standard error goes.
    pub stderr: WorkerStderr,
    /// How long the worker may take to harden itself and say it is ready.
    pub ready_timeout: Duration,
    /// How long a load (validation and compilation) may take.
    pub load_timeout: Duration,
    /// How long a call may take, state operations included. The guest's own deadline is
    /// enforced inside the worker; this bounds a worker that stopped answering.
    pub call_timeout: Duration,
}

impl SpawnOptions {
    /// Options to start `program` with `worker`, default timeouts, stderr inherited.
    pub fn new(program: impl Into<PathBuf>, worker: WorkerOptions) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            worker,
            stderr: WorkerStderr::Inherit,
            ready_timeout: Duration::from_secs(10),
            load_timeout: Duration::from_secs(120),
            call_timeout: Duration::from_secs(30),
        }
    }

    /// The same options with `args` for the executable.
    pub fn with_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }
}

/// What a slot holds, kept so a respawned worker can load it again.
struct Slot {
    module: ModuleRef,
    component: Arc<[u8]>,
    policy: ModulePolicy,
    config: BTreeMap<String, String>,
    state: Arc<dyn StateStore>,
}

/// A running worker process and the supervisor's end of its socket.
struct Process {
    child: Child,
    stream: UnixStream,
    pid: u32,
}

/// Why a conversation with the worker broke.
enum Broken {
    /// The socket ended or failed: the process is most likely dead.
    Stream(ProtocolError),
    /// The worker did not answer before the deadline.
    Timeout(Duration),
    /// The worker sent something the protocol does not allow.
    Violation(String),
}

impl From<ProtocolError> for Broken {
    fn from(error: ProtocolError) -> Self {
        match error {
            ProtocolError::Closed | ProtocolError::Truncated { .. } | ProtocolError::Io(_) => {
                Broken::Stream(error)
            }
            ProtocolError::FrameSize { .. }
            | ProtocolError::Malformed(_)
            | ProtocolError::Encode(_) => Broken::Violation(error.to_string()),
        }
    }
}

impl Process {
    fn remaining(deadline: Instant, timeout: Duration) -> Result<Duration, Broken> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Broken::Timeout(timeout));
        }
        Ok(left)
    }

    /// Sends one encoded frame, without `SIGPIPE` if the worker is gone.
    fn send(&self, frame: &[u8], deadline: Instant, timeout: Duration) -> Result<(), Broken> {
        let mut sent = 0;
        while sent < frame.len() {
            let left = Self::remaining(deadline, timeout)?;
            self.stream
                .set_write_timeout(Some(left))
                .map_err(|e| Broken::Stream(e.into()))?;
            match rustix::net::send(
                &self.stream,
                &frame[sent..],
                rustix::net::SendFlags::NOSIGNAL,
            ) {
                Ok(n) => sent += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return Err(Broken::Timeout(timeout)),
                Err(e) => return Err(Broken::Stream(std::io::Error::from(e).into())),
            }
        }
        Ok(())
    }

    fn receive(&self, deadline: Instant, timeout: Duration) -> Result<FromWorker, Broken> {
        let left = Self::remaining(deadline, timeout)?;
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| Broken::Stream(e.into()))?;
        read_frame(&mut &self.stream).map_err(|e| {
            if e.is_timeout() {
                Broken::Timeout(timeout)
            } else {
                Broken::from(e)
            }
        })
    }

    /// Kills the process (if it still runs) and reaps it.
    fn kill(&mut self) -> Option<WorkerExit> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(WorkerExit::from_status(status));
        }
        // Fails only when it already exited, which `wait` then reports.
        let _ = self.child.kill();
        self.child.wait().ok().map(WorkerExit::from_status)
    }

    /// Waits up to `grace` for the process to exit by itself.
    fn wait_exit(&mut self, grace: Duration) -> Option<WorkerExit> {
        let until = Instant::now() + grace;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(WorkerExit::from_status(status)),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(2)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Turns a broken conversation into the error that describes it, leaving no process
    /// behind: a dead worker is reaped (its wait status says how it died), a live one is
    /// killed.
    fn bury(mut self, tenant: &str, broken: Broken) -> WorkerError {
        let tenant = tenant.to_string();
        let pid = self.pid;
        match broken {
            Broken::Timeout(waited) => {
                self.kill();
                WorkerError::Unresponsive {
                    tenant,
                    pid,
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                }
            }
            Broken::Violation(reason) => {
                self.kill();
                WorkerError::ProtocolViolation {
                    tenant,
                    pid,
                    reason,
                }
            }
            Broken::Stream(error) => match self.wait_exit(EXIT_GRACE) {
                Some(exit) => WorkerError::Died { tenant, pid, exit },
                None => {
                    self.kill();
                    WorkerError::ProtocolViolation {
                        tenant,
                        pid,
                        reason: format!("its socket failed ({error}) while it kept running"),
                    }
                }
            },
        }
    }
}

/// Starts a worker process and waits for its `Ready` frame.
fn start(options: &SpawnOptions) -> Result<(Process, SandboxReport), WorkerError> {
    options.worker.validate()?;
    let tenant = &options.worker.tenant;
    let (ours, theirs) = UnixStream::pair().map_err(|source| WorkerError::Io {
        context: "cannot create the worker's socket pair".into(),
        source,
    })?;
    let mut command = Command::new(&options.program);
    command
        .args(&options.args)
        .env_clear()
        .env(WORKER_OPTIONS_ENV, options.worker.to_json()?)
        .current_dir("/")
        // Its own process group: a Ctrl-C meant for the supervisor (which drains) does not
        // kill the workers under the calls it waits for.
        .process_group(0)
        // The socket is the worker's standard input: passing it needs no `unsafe` on either
        // side (std moves it to descriptor 0 in the child, clearing close-on-exec).
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(match options.stderr {
            WorkerStderr::Inherit => Stdio::inherit(),
            WorkerStderr::Null => Stdio::null(),
        });
    for var in PASSED_ENV {
        if let Some(value) = std::env::var_os(var) {
            command.env(var, value);
        }
    }
    let child = command.spawn().map_err(|source| WorkerError::Spawn {
        tenant: tenant.clone(),
        program: options.program.display().to_string(),
        source,
    })?;
    // The command holds our copy of the worker's end: close it, so that the worker's death
    // reads as the end of the stream.
    drop(command);
    let pid = child.id();
    let process = Process {
        child,
        stream: ours,
        pid,
    };
    let deadline = Instant::now() + options.ready_timeout;
    match process.receive(deadline, options.ready_timeout) {
        Ok(FromWorker::Ready { sandbox }) => {
            tracing::info!(tenant = %tenant, pid, landlock = %sandbox.landlock, syscalls = sandbox.seccomp_allowed_syscalls, "worker process ready");
            Ok((process, sandbox))
        }
        Ok(other) => Err(process.bury(
            tenant,
            Broken::Violation(format!("it sent {} before ready", reply_name(&other))),
        )),
        Err(broken) => Err(process.bury(tenant, broken)),
    }
}

fn reply_name(reply: &FromWorker) -> &'static str {
    match reply {
        FromWorker::Ready { .. } => "ready",
        FromWorker::Loaded { .. } => "loaded",
        FromWorker::Decoded { .. } => "decoded",
        FromWorker::Encoded { .. } => "encoded",
        FromWorker::Routed { .. } => "routed",
        FromWorker::StateOp { .. } => "a state operation",
    }
}

/// Whose state a call may touch: the slot's store, for the device of the message.
struct StateScope {
    slot: u64,
    store: Arc<dyn StateStore>,
    device: String,
    max_device_bytes: u64,
}

impl StateScope {
    /// Runs one state operation of the worker, or says why the worker had no right to ask.
    fn apply(&self, slot: u64, op: StateOp) -> Result<Result<StateValue, String>, Broken> {
        if slot != self.slot {
            return Err(Broken::Violation(format!(
                "state operation for slot {slot} during a call on slot {}",
                self.slot
            )));
        }
        let (device, key) = match &op {
            StateOp::Get { device, key }
            | StateOp::Set { device, key, .. }
            | StateOp::Delete { device, key } => (device, key),
        };
        // The guest sees only the state of the message's device (instantiation, before the
        // device is known, runs with an empty device id).
        if device != &self.device && !device.is_empty() {
            return Err(Broken::Violation(format!(
                "state operation for another device than the message's ({device:?})"
            )));
        }
        if key.is_empty() || key.len() > MAX_STATE_KEY_BYTES {
            return Err(Broken::Violation(format!(
                "state key of {} bytes",
                key.len()
            )));
        }
        let store = &self.store;
        let result = match op {
            StateOp::Get { device, key } => store.get(&device, &key).map(StateValue::Value),
            StateOp::Set {
                device,
                key,
                value,
                max_device_bytes,
            } => store
                .set(
                    &device,
                    &key,
                    &value,
                    max_device_bytes.min(self.max_device_bytes),
                )
                .map(StateValue::Stored),
            StateOp::Delete { device, key } => {
                store.delete(&device, &key).map(|()| StateValue::Deleted)
            }
        };
        Ok(result.map_err(|e| e.0))
    }
}

/// The supervisor's handle on one tenant's worker process.
///
/// Calls are synchronous and one at a time (`&mut self`): the handle writes a request, serves
/// the worker's state operations from the slot's [`StateStore`], and returns the reply. Share
/// a handle between threads behind a `Mutex`, or start several workers for a tenant.
///
/// When the worker dies (crash, `SIGSYS` from seccomp, OOM kill, `kill -9`), stops answering,
/// or breaks the protocol, the call in flight fails with [`GuestFailure::Host`] whose message
/// says what happened (e.g. `worker process for tenant `acme` (pid 4242) died: killed by
/// signal SIGSYS (a forbidden system call)`), [`WorkerHandle::failure`] holds the typed
/// [`WorkerError`], and every later call fails the same way until [`WorkerHandle::respawn`]
/// starts a new process and loads every slot again. When to respawn is the caller's choice;
/// [`RespawnBackoff`] spaces attempts out.
pub struct WorkerHandle {
    options: SpawnOptions,
    process: Option<Process>,
    pid: u32,
    sandbox: SandboxReport,
    slots: BTreeMap<u64, Slot>,
    failure: Option<WorkerError>,
    next_call_id: u64,
    spawns: u64,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("tenant", &self.options.worker.tenant)
            .field("pid", &self.pid)
            .field("slots", &self.slots.keys().collect::<Vec<_>>())
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// Starts the worker process and waits until it is hardened and ready.
    pub fn spawn(options: SpawnOptions) -> Result<Self, WorkerError> {
        let (process, sandbox) = start(&options)?;
        Ok(Self {
            options,
            pid: process.pid,
            process: Some(process),
            sandbox,
            slots: BTreeMap::new(),
            failure: None,
            next_call_id: 0,
            spawns: 1,
        })
    }

    /// The tenant the worker runs code for.
    pub fn tenant(&self) -> &str {
        &self.options.worker.tenant
    }

    /// The process id of the current (or last) worker process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What the worker's sandbox enforces, as it reported when it started.
    pub fn sandbox(&self) -> &SandboxReport {
        &self.sandbox
    }

    /// Processes started so far: 1, plus one per respawn.
    pub fn spawns(&self) -> u64 {
        self.spawns
    }

    /// Why the worker is unusable, when it is (died, unresponsive, broke the protocol,
    /// killed).
    pub fn failure(&self) -> Option<&WorkerError> {
        self.failure.as_ref()
    }

    /// The slots loaded, in order.
    pub fn slots(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.keys().copied()
    }

    /// Whether the worker process is running and usable. Notices a worker that died between
    /// calls (and records why).
    pub fn is_alive(&mut self) -> bool {
        if self.failure.is_some() {
            return false;
        }
        let Some(process) = self.process.as_mut() else {
            return false;
        };
        match process.child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                self.process = None;
                self.failure = Some(WorkerError::Died {
                    tenant: self.options.worker.tenant.clone(),
                    pid: self.pid,
                    exit: WorkerExit::from_status(status),
                });
                false
            }
            Err(e) => {
                self.fail(Broken::Stream(e.into()));
                false
            }
        }
    }

    /// Kills the worker process (`SIGKILL`) and reaps it; the handle can be respawned.
    pub fn kill(&mut self) -> Option<WorkerExit> {
        let exit = self.process.take()?.kill()?;
        self.failure = Some(WorkerError::Died {
            tenant: self.options.worker.tenant.clone(),
            pid: self.pid,
            exit,
        });
        Some(exit)
    }

    /// Asks the worker to exit and waits for it (killing it after a grace period).
    pub fn shutdown(mut self) -> Option<WorkerExit> {
        let mut process = self.process.take()?;
        if let Ok(frame) = encode_frame(&ToWorker::Shutdown) {
            // A worker that is already gone cannot be told; its exit is reported below.
            let _ = process.send(&frame, Instant::now() + SHUTDOWN_GRACE, SHUTDOWN_GRACE);
        }
        process.wait_exit(SHUTDOWN_GRACE).or_else(|| process.kill())
    }

    /// Starts a new worker process (killing the old one if it still runs) and loads every
    /// slot into it again. Slots whose module no longer loads are removed and reported in
    /// [`WorkerError::Reload`]; the worker is usable all the same.
    pub fn respawn(&mut self) -> Result<(), WorkerError> {
        if let Some(mut old) = self.process.take() {
            old.kill();
        }
        let (process, sandbox) = start(&self.options)?;
        self.pid = process.pid;
        self.process = Some(process);
        self.sandbox = sandbox;
        self.failure = None;
        self.spawns += 1;
        let mut failures = Vec::new();
        let slots: Vec<u64> = self.slots.keys().copied().collect();
        for slot in slots {
            let Some(entry) = self.slots.get(&slot) else {
                continue;
            };
            let request = ToWorker::Load {
                slot,
                module: entry.module.clone(),
                component: entry.component.to_vec(),
                policy: entry.policy.clone(),
                config: entry.config.clone(),
            };
            if let Err(failure) = self.send_load(slot, &request, entry.state.clone())? {
                failures.push((slot, failure));
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        for (slot, _) in &failures {
            self.slots.remove(slot);
        }
        Err(WorkerError::Reload {
            tenant: self.options.worker.tenant.clone(),
            failures,
        })
    }

    /// Loads a module into `slot` (replacing what the slot held): the worker validates,
    /// compiles and pre-links it, and calls on the slot use `config` and `state`.
    ///
    /// The refusal of the runtime is its `GuestFailure`; a worker that cannot run the load
    /// gives [`GuestFailure::Host`] (see [`WorkerHandle::failure`]).
    pub fn load(
        &mut self,
        slot: u64,
        module: ModuleRef,
        component: &[u8],
        policy: ModulePolicy,
        config: BTreeMap<String, String>,
        state: Arc<dyn StateStore>,
    ) -> Result<(), GuestFailure> {
        let request = ToWorker::Load {
            slot,
            module: module.clone(),
            component: component.to_vec(),
            policy: policy.clone(),
            config: config.clone(),
        };
        // The worker drops what the slot held before loading, whatever the outcome.
        self.slots.remove(&slot);
        match self.send_load(slot, &request, state.clone()) {
            Ok(Ok(())) => {
                self.slots.insert(
                    slot,
                    Slot {
                        module,
                        component: Arc::from(component),
                        policy,
                        config,
                        state,
                    },
                );
                Ok(())
            }
            Ok(Err(failure)) => Err(failure),
            Err(e) => Err(e.to_guest_failure(&module)),
        }
    }

    fn send_load(
        &mut self,
        slot: u64,
        request: &ToWorker,
        state: Arc<dyn StateStore>,
    ) -> Result<Result<(), GuestFailure>, WorkerError> {
        let max_device_bytes = match request {
            ToWorker::Load { policy, .. } => policy.limits.max_state_bytes_per_device,
            _ => 0,
        };
        let scope = StateScope {
            slot,
            store: state,
            device: String::new(),
            max_device_bytes,
        };
        let timeout = self.options.load_timeout;
        match self.exchange(request, &scope, timeout)? {
            FromWorker::Loaded { slot: s, result } if s == slot => Ok(result),
            other => Err(self.fail(Broken::Violation(format!(
                "it answered a load of slot {slot} with {}",
                reply_name(&other)
            )))),
        }
    }

    /// Drops a slot's instance in the worker. Returns whether the slot was loaded.
    pub fn unload(&mut self, slot: u64) -> bool {
        if self.slots.remove(&slot).is_none() {
            return false;
        }
        if let Some(process) = &self.process {
            let timeout = self.options.call_timeout;
            let sent = encode_frame(&ToWorker::Unload { slot })
                .map_err(Broken::from)
                .and_then(|frame| process.send(&frame, Instant::now() + timeout, timeout));
            if let Err(broken) = sent {
                self.fail(broken);
            }
        }
        true
    }

    /// Decodes an uplink with the codec in `slot`.
    pub fn decode(&mut self, slot: u64, uplink: &Uplink) -> CallOutcome<Document> {
        let call_id = self.call_id();
        let request = ToWorker::Decode {
            call_id,
            slot,
            uplink: uplink.clone(),
        };
        self.call(slot, &uplink.device_id, &request, |reply| match reply {
            FromWorker::Decoded {
                call_id: id,
                result,
                report,
            } if id == call_id => Some((result, report)),
            _ => None,
        })
    }

    /// Encodes a downlink with the codec in `slot`.
    pub fn encode(&mut self, slot: u64, downlink: &Downlink) -> CallOutcome<EncodedDownlink> {
        let call_id = self.call_id();
        let request = ToWorker::Encode {
            call_id,
            slot,
            downlink: downlink.clone(),
        };
        self.call(slot, &downlink.device_id, &request, |reply| match reply {
            FromWorker::Encoded {
                call_id: id,
                result,
                report,
            } if id == call_id => Some((result, report)),
            _ => None,
        })
    }

    /// Routes a decoded uplink with the router in `slot`.
    pub fn route(
        &mut self,
        slot: u64,
        uplink: &Uplink,
        document: &Document,
    ) -> CallOutcome<Vec<Decision>> {
        let call_id = self.call_id();
        let request = ToWorker::Route {
            call_id,
            slot,
            uplink: uplink.clone(),
            document: document.clone(),
        };
        self.call(slot, &uplink.device_id, &request, |reply| match reply {
            FromWorker::Routed {
                call_id: id,
                result,
                report,
            } if id == call_id => Some((result, report)),
            _ => None,
        })
    }

    fn call_id(&mut self) -> u64 {
        self.next_call_id += 1;
        self.next_call_id
    }

    /// One call: the request, the state operations it causes, the reply `take` accepts.
    fn call<T>(
        &mut self,
        slot: u64,
        device: &str,
        request: &ToWorker,
        take: impl FnOnce(FromWorker) -> Option<(Result<T, GuestFailure>, CallReport)>,
    ) -> CallOutcome<T> {
        let failed = |module: &ModuleRef, message: String| CallOutcome {
            result: Err(GuestFailure::Host {
                module: module.clone(),
                message,
            }),
            report: CallReport::default(),
        };
        let Some(entry) = self.slots.get(&slot) else {
            return failed(
                &ModuleRef::new(format!("slot-{slot}"), "unknown"),
                format!(
                    "slot {slot} is not loaded in the worker of tenant `{}`",
                    self.tenant()
                ),
            );
        };
        let module = entry.module.clone();
        let scope = StateScope {
            slot,
            store: entry.state.clone(),
            device: device.to_string(),
            max_device_bytes: entry.policy.limits.max_state_bytes_per_device,
        };
        let timeout = self.options.call_timeout;
        match self.exchange(request, &scope, timeout) {
            Ok(reply) => {
                let name = reply_name(&reply);
                match take(reply) {
                    Some((result, report)) => CallOutcome { result, report },
                    None => {
                        let error = self.fail(Broken::Violation(format!(
                            "it answered a call on slot {slot} with another call's or kind's reply ({name})"
                        )));
                        failed(&module, error.to_string())
                    }
                }
            }
            Err(error) => failed(&module, error.to_string()),
        }
    }

    /// Sends `request` and serves state operations until the first other frame, which it
    /// returns. A broken conversation fails the worker.
    fn exchange(
        &mut self,
        request: &ToWorker,
        scope: &StateScope,
        timeout: Duration,
    ) -> Result<FromWorker, WorkerError> {
        // A message too large for a frame is refused before anything is sent: the worker is
        // not at fault.
        let frame = encode_frame(request)?;
        let Some(process) = self.process.as_ref() else {
            return Err(self.not_running());
        };
        let deadline = Instant::now() + timeout;
        let result = (|| {
            process.send(&frame, deadline, timeout)?;
            loop {
                match process.receive(deadline, timeout)? {
                    FromWorker::StateOp { op_id, slot, op } => {
                        let result = scope.apply(slot, op)?;
                        let reply = encode_frame(&ToWorker::StateReply { op_id, result })
                            .map_err(Broken::from)?;
                        process.send(&reply, deadline, timeout)?;
                    }
                    other => return Ok(other),
                }
            }
        })();
        result.map_err(|broken| self.fail(broken))
    }

    /// Records that the worker is unusable and returns an error describing it (the stored
    /// one stays in [`WorkerHandle::failure`]).
    fn fail(&mut self, broken: Broken) -> WorkerError {
        let tenant = self.options.worker.tenant.clone();
        let error = match self.process.take() {
            Some(process) => process.bury(&tenant, broken),
            None => return self.not_running(),
        };
        tracing::warn!(tenant = %tenant, pid = self.pid, error = %error, "worker process failed");
        let copy = self.describe(&error);
        self.failure = Some(error);
        copy
    }

    /// A copy of `error` for the caller while the original is kept.
    fn describe(&self, error: &WorkerError) -> WorkerError {
        match error {
            WorkerError::Died { tenant, pid, exit } => WorkerError::Died {
                tenant: tenant.clone(),
                pid: *pid,
                exit: *exit,
            },
            WorkerError::Unresponsive {
                tenant,
                pid,
                waited_ms,
            } => WorkerError::Unresponsive {
                tenant: tenant.clone(),
                pid: *pid,
                waited_ms: *waited_ms,
            },
            WorkerError::ProtocolViolation {
                tenant,
                pid,
                reason,
            } => WorkerError::ProtocolViolation {
                tenant: tenant.clone(),
                pid: *pid,
                reason: reason.clone(),
            },
            other => self.not_running_because(other.to_string()),
        }
    }

    fn not_running(&self) -> WorkerError {
        self.not_running_because(
            self.failure
                .as_ref()
                .map_or_else(|| "it was never started".to_string(), ToString::to_string),
        )
    }

    fn not_running_because(&self, cause: String) -> WorkerError {
        WorkerError::NotRunning {
            tenant: self.options.worker.tenant.clone(),
            cause,
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }
}

/// Exponential delays between respawns of a worker that keeps dying: `initial`, doubling up
/// to `max`, back to `initial` after [`RespawnBackoff::reset`] (call it once a call
/// succeeds). The handle never respawns by itself; the caller decides when to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespawnBackoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl RespawnBackoff {
    /// Delays from `initial` up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay to wait before the next respawn.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Starts again from the initial delay.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for RespawnBackoff {
    /// 100 ms, doubling up to 30 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respawn_backoff_doubles_up_to_the_cap_and_resets() {
        let mut backoff =
            RespawnBackoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<u128> = (0..5).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }
}
