//! The worker process: hardens itself, then runs the supervisor's requests one at a time.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_runtime::{CallReport, Instance, InstanceEnv, Runtime, StateStore, StateStoreError};
use sluice_types::{GuestFailure, ModuleRef};

use crate::WorkerError;
use crate::options::{
    SELF_TEST_ALLOWED_EXIT_CODE, SELF_TEST_DENIED_EXIT_CODE, SelfTest, WorkerOptions,
};
use crate::protocol::{
    FromWorker, ProtocolError, StateOp, StateValue, ToWorker, read_frame, write_frame,
};
use crate::sandbox;

/// How long the warm-up runtime's epoch thread may take to exit.
const WARM_UP_THREAD_EXIT: Duration = Duration::from_secs(2);

/// The socket the supervisor passed as the worker's standard input, as a stream of its own
/// (a duplicate of descriptor 0). Fails when standard input is not a socket.
pub fn stdin_socket() -> Result<UnixStream, WorkerError> {
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| WorkerError::Io {
            context: "cannot duplicate standard input".into(),
            source,
        })?;
    let stream = UnixStream::from(fd);
    stream.local_addr().map_err(|source| WorkerError::Io {
        context:
            "standard input is not the supervisor's socket (a worker is started by the supervisor)"
                .into(),
        source,
    })?;
    Ok(stream)
}

/// The whole worker: options from [`crate::WORKER_OPTIONS_ENV`], the socket from standard
/// input, then [`run_worker`]. What a `worker` subcommand of a binary calls.
pub fn worker_main() -> ExitCode {
    let result = WorkerOptions::from_env()
        .and_then(|options| Ok((options, stdin_socket()?)))
        .and_then(|(options, socket)| run_worker(socket, &options));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Only stderr is left to say it; if even that fails there is no one to tell.
            let _ = writeln!(std::io::stderr(), "sluice worker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a worker on `socket` until the supervisor sends `Shutdown` or closes the socket.
///
/// Order of operations:
/// 0. every inherited descriptor but stdio and `socket` is closed;
/// 1. a throw-away runtime initialises process-wide state while the filesystem is still
///    reachable (wasmtime's trap handlers, its `/proc/self/pagemap` descriptor), and its
///    thread is waited for, so the process is single-threaded again;
/// 2. hardening, on the single thread: rlimits, landlock, seccomp;
/// 3. the real runtime (its epoch thread, later the compiler's threads, inherit the sandbox);
/// 4. the `Ready` frame, then requests until `Shutdown` or end of stream.
///
/// Must be called before the process starts any thread or opens any descriptor (other than
/// `socket`).
pub fn run_worker(socket: UnixStream, options: &WorkerOptions) -> Result<(), WorkerError> {
    options.validate()?;
    let closed = sandbox::close_inherited_fds(socket.as_raw_fd())?;
    if closed > 0 {
        tracing::debug!(tenant = %options.tenant, closed, "closed inherited descriptors");
    }
    warm_up(options)?;
    let sandbox = sandbox::harden(options)?;
    tracing::debug!(tenant = %options.tenant, ?sandbox, "worker hardened");
    let runtime = Runtime::new(options.runtime_config())?;
    let channel = Arc::new(Mutex::new(socket));
    send(&channel, &FromWorker::Ready { sandbox })?;
    if let Some(test) = &options.self_test {
        self_test(test);
    }
    Worker {
        runtime,
        channel,
        instances: BTreeMap::new(),
        op_ids: Arc::new(AtomicU64::new(0)),
    }
    .serve()
}

/// Creates and drops a runtime, then waits until its epoch thread is gone.
fn warm_up(options: &WorkerOptions) -> Result<(), WorkerError> {
    drop(Runtime::new(options.runtime_config())?);
    let started = Instant::now();
    while sandbox::thread_count()? > 1 {
        if started.elapsed() > WARM_UP_THREAD_EXIT {
            return Err(WorkerError::Sandbox {
                step: "threads",
                message: "the warm-up runtime's thread did not exit".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Attempts a forbidden operation; exits when it did not kill the process.
fn self_test(test: &SelfTest) {
    let outcome: Result<(), String> = match test {
        SelfTest::TcpConnect => std::net::TcpStream::connect(("127.0.0.1", 9))
            .map(drop)
            .map_err(|e| e.to_string()),
        SelfTest::Execve => {
            let path = c"/bin/true";
            nix::unistd::execv(path, &[path])
                .map(drop)
                .map_err(|e| e.to_string())
        }
        SelfTest::Spawn => std::process::Command::new("/bin/true")
            .status()
            .map(drop)
            .map_err(|e| e.to_string()),
        SelfTest::ReadFile(path) => std::fs::read(path).map(drop).map_err(|e| e.to_string()),
        SelfTest::WriteFile(path) => std::fs::write(path, b"self-test")
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    let code = match outcome {
        Ok(()) => {
            let _ = writeln!(std::io::stderr(), "self-test {test:?}: allowed");
            SELF_TEST_ALLOWED_EXIT_CODE
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "self-test {test:?}: denied: {e}");
            SELF_TEST_DENIED_EXIT_CODE
        }
    };
    std::process::exit(code);
}

fn lock(channel: &Mutex<UnixStream>) -> std::sync::MutexGuard<'_, UnixStream> {
    // Every use writes or reads whole frames; a panic mid-frame would break the protocol
    // anyway, and the supervisor would kill the worker.
    channel.lock().unwrap_or_else(|e| e.into_inner())
}

fn send(channel: &Mutex<UnixStream>, message: &FromWorker) -> Result<(), WorkerError> {
    write_frame(&mut *lock(channel), message).map_err(WorkerError::Protocol)
}

struct Worker {
    runtime: Runtime,
    channel: Arc<Mutex<UnixStream>>,
    /// One instance per loaded slot.
    instances: BTreeMap<u64, Instance>,
    op_ids: Arc<AtomicU64>,
}

impl Worker {
    fn serve(mut self) -> Result<(), WorkerError> {
        loop {
            let request = match read_frame::<_, ToWorker>(&mut *lock(&self.channel)) {
                Ok(request) => request,
                Err(ProtocolError::Closed) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let reply = match request {
                ToWorker::Shutdown => return Ok(()),
                ToWorker::Unload { slot } => {
                    self.instances.remove(&slot);
                    continue;
                }
                ToWorker::StateReply { op_id, .. } => {
                    return Err(WorkerError::Protocol(ProtocolError::Malformed(format!(
                        "state reply {op_id} outside a state operation"
                    ))));
                }
                ToWorker::Load {
                    slot,
                    module,
                    component,
                    policy,
                    config,
                } => {
                    // A slot being replaced releases its instance first.
                    self.instances.remove(&slot);
                    let result = self.runtime.load(module, &component, policy).map(|loaded| {
                        let env = InstanceEnv {
                            config: Arc::new(config),
                            state: Arc::new(RemoteState {
                                slot,
                                channel: self.channel.clone(),
                                op_ids: self.op_ids.clone(),
                            }),
                        };
                        self.instances.insert(slot, loaded.instantiate(env));
                    });
                    FromWorker::Loaded { slot, result }
                }
                ToWorker::Decode {
                    call_id,
                    slot,
                    uplink,
                } => {
                    let (result, report) = match self.instances.get_mut(&slot) {
                        Some(instance) => {
                            let out = instance.decode(&uplink);
                            (out.result, out.report)
                        }
                        None => not_loaded(slot),
                    };
                    FromWorker::Decoded {
                        call_id,
                        result,
                        report,
                    }
                }
                ToWorker::Encode {
                    call_id,
                    slot,
                    downlink,
                } => {
                    let (result, report) = match self.instances.get_mut(&slot) {
                        Some(instance) => {
                            let out = instance.encode(&downlink);
                            (out.result, out.report)
                        }
                        None => not_loaded(slot),
                    };
                    FromWorker::Encoded {
                        call_id,
                        result,
                        report,
                    }
                }
                ToWorker::Route {
                    call_id,
                    slot,
                    uplink,
                    document,
                } => {
                    let (result, report) = match self.instances.get_mut(&slot) {
                        Some(instance) => {
                            let out = instance.route(&uplink, &document);
                            (out.result, out.report)
                        }
                        None => not_loaded(slot),
                    };
                    FromWorker::Routed {
                        call_id,
                        result,
                        report,
                    }
                }
            };
            send(&self.channel, &reply)?;
        }
    }
}

/// The answer to a call on a slot that holds nothing (the supervisor checks first, so this
/// only happens if the two disagree).
fn not_loaded<T>(slot: u64) -> (Result<T, GuestFailure>, CallReport) {
    (
        Err(GuestFailure::Host {
            module: ModuleRef::new(format!("slot-{slot}"), "unknown"),
            message: format!("slot {slot} is not loaded in the worker"),
        }),
        CallReport::default(),
    )
}

/// The worker's [`StateStore`]: each operation is a [`FromWorker::StateOp`] frame to the
/// supervisor, which owns the real store, and blocks until the [`ToWorker::StateReply`].
struct RemoteState {
    slot: u64,
    channel: Arc<Mutex<UnixStream>>,
    op_ids: Arc<AtomicU64>,
}

impl RemoteState {
    fn call(&self, op: StateOp) -> Result<StateValue, StateStoreError> {
        let op_id = self.op_ids.fetch_add(1, Ordering::Relaxed);
        let mut stream = lock(&self.channel);
        let failed = |e: ProtocolError| {
            StateStoreError(format!("state request to the supervisor failed: {e}"))
        };
        write_frame(
            &mut *stream,
            &FromWorker::StateOp {
                op_id,
                slot: self.slot,
                op,
            },
        )
        .map_err(failed)?;
        match read_frame::<_, ToWorker>(&mut *stream).map_err(failed)? {
            ToWorker::StateReply { op_id: id, result } if id == op_id => {
                result.map_err(StateStoreError)
            }
            other => Err(StateStoreError(format!(
                "the supervisor answered state operation {op_id} with {}",
                request_name(&other)
            ))),
        }
    }
}

fn request_name(request: &ToWorker) -> &'static str {
    match request {
        ToWorker::Load { .. } => "load",
        ToWorker::Unload { .. } => "unload",
        ToWorker::Decode { .. } => "decode",
        ToWorker::Encode { .. } => "encode",
        ToWorker::Route { .. } => "route",
        ToWorker::StateReply { .. } => "a state reply for another operation",
        ToWorker::Shutdown => "shutdown",
    }
}

fn unexpected(op: &str, value: StateValue) -> StateStoreError {
    StateStoreError(format!("the supervisor answered {op} with {value:?}"))
}

impl StateStore for RemoteState {
    fn get(&self, device_id: &str, key: &str) -> Result<Option<Vec<u8>>, StateStoreError> {
        match self.call(StateOp::Get {
            device: device_id.to_string(),
            key: key.to_string(),
        })? {
            StateValue::Value(value) => Ok(value),
            other => Err(unexpected("get", other)),
        }
    }

    fn set(
        &self,
        device_id: &str,
        key: &str,
        value: &[u8],
        max_device_bytes: u64,
    ) -> Result<bool, StateStoreError> {
        match self.call(StateOp::Set {
            device: device_id.to_string(),
            key: key.to_string(),
            value: value.to_vec(),
            max_device_bytes,
        })? {
            StateValue::Stored(stored) => Ok(stored),
            other => Err(unexpected("set", other)),
        }
    }

    fn delete(&self, device_id: &str, key: &str) -> Result<(), StateStoreError> {
        match self.call(StateOp::Delete {
            device: device_id.to_string(),
            key: key.to_string(),
        })? {
            StateValue::Deleted => Ok(()),
            other => Err(unexpected("delete", other)),
        }
    }
}
