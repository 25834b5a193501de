//! Process isolation: one tenant's guest code runs in a worker process of its own, hardened
//! with rlimits, landlock and seccomp, and never shares a process with another tenant's.
//!
//! # Processes and the socket
//!
//! The supervisor (the `sluice` service) calls [`WorkerHandle::spawn`], which creates a Unix
//! stream socket pair and starts the worker executable (in production the `sluice` binary's
//! hidden `worker` subcommand, which calls [`worker_main`]) with one end of the pair as its
//! **standard input**, an empty environment except [`WORKER_OPTIONS_ENV`] (the JSON of
//! [`WorkerOptions`]), `/` as working directory and standard output discarded. Passing the
//! socket as stdin needs no `unsafe` on either side.
//!
//! # Protocol
//!
//! Frames are a 4-byte big-endian length and a CBOR payload, at most [`MAX_FRAME_BYTES`]
//! (16 MiB); see [`protocol`]. The worker first sends `Ready` (with its [`SandboxReport`]);
//! then the supervisor sends one request at a time (`Load`, `Unload`, `Decode`, `Encode`,
//! `Route`, `Shutdown`) and waits for its reply. Device state stays in the supervisor:
//! during a call the worker's [`sluice_runtime::StateStore`] sends `StateOp` frames and
//! blocks until the supervisor's `StateReply`, which it computes with the slot's store, for
//! the message's device only, with the slot's quota. So the worker needs no database, file
//! or network access. One call is in flight per worker at a time.
//!
//! # Order of operations in the worker
//!
//! 1. Read the options, take the socket from stdin, close every other inherited descriptor.
//! 2. Warm up: create and drop a runtime, so process-wide wasmtime state is set up while the
//!    filesystem is still reachable (trap signal handlers, the `/proc/self/pagemap`
//!    descriptor used to reset pooled instances cheaply); wait until its thread has exited.
//! 3. Harden, single-threaded: rlimits (`RLIMIT_CORE` 0, `RLIMIT_MEMLOCK` 0, `RLIMIT_NOFILE`,
//!    `RLIMIT_DATA` = the memory cap, optional `RLIMIT_AS`); landlock (no filesystem access
//!    except read-write under the tenant's compile cache directory `<cache_dir>/<tenant>`
//!    when there is one, no TCP bind/connect, no signals or abstract sockets outside the
//!    worker; best effort unless `require_landlock`); seccomp-bpf (an allowlist of 44
//!    system calls, 50 with a cache directory, some with checked arguments; anything else
//!    kills the process with `SIGSYS`; `clone` only for threads; `clone3` answered `ENOSYS`
//!    so glibc uses `clone`; without a cache directory `openat` answers `EACCES`).
//!    `socket`, `connect`, `execve`, `fork`, `ptrace`, `kill` and the rest are not on the
//!    list.
//! 4. Create the runtime: its epoch thread and, later, the compiler's threads inherit the
//!    sandbox (landlock and seccomp apply to the hardening thread and its descendants).
//! 5. Send `Ready`; serve requests until `Shutdown` or the end of the stream.
//!
//! # When a worker dies
//!
//! The call in flight returns [`sluice_types::GuestFailure::Host`] naming the tenant, the pid
//! and how it ended, from its wait status (`killed by signal SIGSYS (a forbidden system
//! call)`); [`WorkerHandle::failure`] keeps the typed [`WorkerError`]; [`WorkerHandle::respawn`]
//! starts a new process and reloads every slot. A worker that stops answering is killed after
//! the call timeout; one that sends garbage is killed at once. Operators' documentation:
//! `docs/isolation.md`.

mod client;
mod error;
mod options;
pub mod protocol;
mod sandbox;
mod worker;

pub use client::{RespawnBackoff, SpawnOptions, WorkerHandle, WorkerStderr};
pub use error::{WorkerError, WorkerExit};
#[doc(hidden)]
pub use options::{SELF_TEST_ALLOWED_EXIT_CODE, SELF_TEST_DENIED_EXIT_CODE, SelfTest};
pub use options::{WORKER_OPTIONS_ENV, WorkerOptions};
pub use protocol::{MAX_FRAME_BYTES, SandboxReport};
pub use worker::{run_worker, stdin_socket, worker_main};
