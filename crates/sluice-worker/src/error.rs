//! Errors of the worker and of the supervisor's client, and how a worker process ended.

use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;

use sluice_runtime::RuntimeError;
use sluice_types::{GuestFailure, ModuleRef};

use crate::protocol::ProtocolError;

/// How a worker process ended, from its wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// It exited by itself with this status.
    Exited {
        /// The exit status.
        code: i32,
    },
    /// A signal ended it.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core (never with the worker's `RLIMIT_CORE` of 0).
        core_dumped: bool,
    },
}

impl WorkerExit {
    /// The exit of a process from its wait status.
    pub fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => WorkerExit::Exited { code },
            (None, Some(signal)) => WorkerExit::Signaled {
                signal,
                core_dumped: status.core_dumped(),
            },
            // Stopped or continued: not an end; report the raw status.
            (None, None) => WorkerExit::Exited {
                code: status.into_raw(),
            },
        }
    }

    /// The signal's name (`SIGSYS`) when a signal with a name ended the process.
    pub fn signal_name(&self) -> Option<&'static str> {
        match self {
            WorkerExit::Signaled { signal, .. } => nix::sys::signal::Signal::try_from(*signal)
                .ok()
                .map(nix::sys::signal::Signal::as_str),
            WorkerExit::Exited { .. } => None,
        }
    }

    /// Whether the seccomp filter killed the process (a forbidden system call).
    pub fn is_seccomp_kill(&self) -> bool {
        matches!(self, WorkerExit::Signaled { signal, .. } if *signal == libc::SIGSYS)
    }
}

/// What a signal usually means for a worker.
fn signal_meaning(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGSYS => "a forbidden system call",
        libc::SIGKILL => "killed by the supervisor, an operator or the out-of-memory killer",
        libc::SIGABRT => "aborted, e.g. an allocation failed under the worker's memory limit",
        libc::SIGSEGV => "invalid memory access outside the wasm sandbox",
        libc::SIGBUS => "bus error",
        libc::SIGXCPU => "CPU time limit exceeded",
        libc::SIGXFSZ => "file size limit exceeded",
        libc::SIGTERM | libc::SIGINT => "asked to stop",
        _ => return None,
    })
}

impl std::fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerExit::Exited { code: 101 } => {
                write!(f, "exited with status 101 (the worker panicked)")
            }
            WorkerExit::Exited { code } => write!(f, "exited with status {code}"),
            WorkerExit::Signaled {
                signal,
                core_dumped,
            } => {
                match self.signal_name() {
                    Some(name) => write!(f, "killed by signal {name}")?,
                    None => write!(f, "killed by signal {signal}")?,
                }
                if let Some(meaning) = signal_meaning(*signal) {
                    write!(f, " ({meaning})")?;
                }
                if *core_dumped {
                    write!(f, ", core dumped")?;
                }
                Ok(())
            }
        }
    }
}

/// Everything that can go wrong with a worker process, on either side of the socket.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The worker options are unusable.
    #[error("invalid worker options: {0}")]
    Options(String),
    /// The worker executable could not be started.
    #[error("cannot start the worker process `{program}` for tenant `{tenant}`: {source}")]
    Spawn {
        /// The tenant.
        tenant: String,
        /// The executable.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The worker process ended (crash, seccomp kill, OOM kill, external kill, exit).
    #[error("worker process for tenant `{tenant}` (pid {pid}) died: {exit}")]
    Died {
        /// The tenant.
        tenant: String,
        /// The process id it had.
        pid: u32,
        /// How it ended.
        exit: WorkerExit,
    },
    /// The worker did not answer in time; the supervisor killed it.
    #[error(
        "worker process for tenant `{tenant}` (pid {pid}) did not answer within {waited_ms} ms; the supervisor killed it"
    )]
    Unresponsive {
        /// The tenant.
        tenant: String,
        /// The process id it had.
        pid: u32,
        /// How long the supervisor waited.
        waited_ms: u64,
    },
    /// The worker sent something the protocol does not allow; the supervisor killed it.
    #[error(
        "worker process for tenant `{tenant}` (pid {pid}) broke the protocol ({reason}); the supervisor killed it"
    )]
    ProtocolViolation {
        /// The tenant.
        tenant: String,
        /// The process id it had.
        pid: u32,
        /// What it did.
        reason: String,
    },
    /// A request was made to a worker that failed earlier and was not respawned.
    #[error("worker process for tenant `{tenant}` is not running ({cause}); respawn it")]
    NotRunning {
        /// The tenant.
        tenant: String,
        /// Why it stopped.
        cause: String,
    },
    /// After a respawn, some modules could not be loaded again (their slots are removed).
    #[error(
        "worker process for tenant `{tenant}` restarted, but {} slot(s) could not be reloaded; first: slot {}: {}",
        failures.len(),
        failures.first().map_or(0, |f| f.0),
        failures.first().map_or_else(String::new, |f| f.1.to_string())
    )]
    Reload {
        /// The tenant.
        tenant: String,
        /// Each slot that failed, with its failure.
        failures: Vec<(u64, GuestFailure)>,
    },
    /// A frame could not be read or written.
    #[error("worker protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// The worker could not harden itself.
    #[error("cannot harden the worker process ({step}): {message}")]
    Sandbox {
        /// The hardening step: `threads`, `rlimit`, `landlock` or `seccomp`.
        step: &'static str,
        /// What failed.
        message: String,
    },
    /// The worker's runtime could not start.
    #[error("cannot start the wasm runtime in the worker: {0}")]
    Runtime(#[from] RuntimeError),
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl WorkerError {
    /// The failure a call reports when the worker could not run it: a host error of `module`,
    /// with this error's text (e.g. `worker process for tenant `acme` (pid 42) died: killed
    /// by signal SIGSYS (a forbidden system call)`).
    pub fn to_guest_failure(&self, module: &ModuleRef) -> GuestFailure {
        GuestFailure::Host {
            module: module.clone(),
            message: self.to_string(),
        }
    }

    /// How the worker process ended, when that is what this error is about.
    pub fn exit(&self) -> Option<WorkerExit> {
        match self {
            WorkerError::Died { exit, .. } => Some(*exit),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_names_the_signal_and_what_it_means() {
        let sigsys = WorkerExit::Signaled {
            signal: libc::SIGSYS,
            core_dumped: false,
        };
        assert_eq!(
            sigsys.to_string(),
            "killed by signal SIGSYS (a forbidden system call)"
        );
        assert!(sigsys.is_seccomp_kill());
        let died = WorkerError::Died {
            tenant: "acme".into(),
            pid: 42,
            exit: sigsys,
        };
        assert_eq!(
            died.to_string(),
            "worker process for tenant `acme` (pid 42) died: killed by signal SIGSYS (a forbidden system call)"
        );
        assert_eq!(
            WorkerExit::Exited { code: 3 }.to_string(),
            "exited with status 3"
        );
        assert_eq!(
            WorkerExit::Signaled {
                signal: 64,
                core_dumped: false
            }
            .to_string(),
            "killed by signal 64"
        );
    }
}
