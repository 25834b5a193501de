//! Hardening the worker process: resource limits, landlock and a seccomp-bpf allowlist.
//!
//! [`harden`] must run while the process has a single thread: landlock and seccomp apply to
//! the calling thread and to the threads it creates later, so every thread of the worker (the
//! runtime's epoch ticker, the compiler's thread pool) inherits both.

use std::collections::BTreeMap;
use std::os::fd::RawFd;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::WorkerError;
use crate::options::WorkerOptions;
use crate::protocol::SandboxReport;

/// The landlock ABI whose rights the worker handles (filesystem, TCP, scopes). Newer kernels
/// enforce all of it; older ones enforce what they know (best effort).
const LANDLOCK_ABI: ABI = ABI::V6;

/// `PAGEMAP_SCAN`: `_IOWR('f', 16, struct pm_scan_arg)` (96 bytes). wasmtime asks the kernel
/// which pages of a pooled instance were dirtied through this ioctl on `/proc/self/pagemap`.
const PAGEMAP_SCAN: u64 = 0xC060_6610;

fn sandbox_error(step: &'static str) -> impl Fn(String) -> WorkerError {
    move |message| WorkerError::Sandbox { step, message }
}

/// Hardens the calling process: rlimits, then landlock, then seccomp (each step needs system
/// calls the next one forbids). Fails unless the process has exactly one thread.
pub(crate) fn harden(options: &WorkerOptions) -> Result<SandboxReport, WorkerError> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(WorkerError::Sandbox {
            step: "threads",
            message: format!(
                "the process has {threads} threads; harden before starting any, or the others would escape landlock and seccomp"
            ),
        });
    }
    let (max_data_bytes, max_address_space_bytes, max_open_files) = set_rlimits(options)?;
    let (landlock, landlock_fully_enforced) = restrict_filesystem(options)?;
    let (seccomp_allowed_syscalls, seccomp_refused_syscalls) =
        install_seccomp(options.cache_dir.is_some())?;
    Ok(SandboxReport {
        landlock,
        landlock_fully_enforced,
        seccomp_allowed_syscalls,
        seccomp_refused_syscalls,
        max_data_bytes,
        max_address_space_bytes,
        max_open_files,
    })
}

/// Closes every descriptor the process inherited except stdio and `keep` (the socket): a
/// descriptor the supervisor leaked (a file, a pipe, a listening socket without
/// close-on-exec) would otherwise be usable from inside the sandbox, since seccomp allows
/// `read` and `write` on any descriptor and landlock checks only opens.
///
/// Must run before the process opens descriptors of its own; no Rust object owns the
/// inherited ones, so closing them cannot pull a descriptor from under its owner.
pub(crate) fn close_inherited_fds(keep: RawFd) -> Result<usize, WorkerError> {
    let error = sandbox_error("descriptors");
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| error(format!("cannot list /proc/self/fd: {e}")))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && *fd != keep)
        .collect();
    let mut closed = 0;
    for fd in fds {
        // The directory listed above had a descriptor too, already closed: EBADF.
        match nix::unistd::close(fd) {
            Ok(()) => closed += 1,
            Err(nix::errno::Errno::EBADF) => {}
            Err(e) => {
                return Err(error(format!(
                    "cannot close inherited descriptor {fd}: {e}"
                )));
            }
        }
    }
    Ok(closed)
}

/// Threads of this process, from `/proc/self/task`.
pub(crate) fn thread_count() -> Result<usize, WorkerError> {
    std::fs::read_dir("/proc/self/task")
        .map(Iterator::count)
        .map_err(|e| WorkerError::Sandbox {
            step: "threads",
            message: format!("cannot list /proc/self/task: {e}"),
        })
}

/// Lowers a limit to `value` (never raises it past the current hard limit); returns the limit
/// now in force.
fn lower_limit(resource: Resource, name: &'static str, value: u64) -> Result<u64, WorkerError> {
    let current = getrlimit(resource);
    let value = current.maximum.map_or(value, |hard| hard.min(value));
    setrlimit(
        resource,
        Rlimit {
            current: Some(value),
            maximum: Some(value),
        },
    )
    .map_err(|e| WorkerError::Sandbox {
        step: "rlimit",
        message: format!("cannot set {name} to {value}: {e}"),
    })?;
    Ok(value)
}

fn set_rlimits(options: &WorkerOptions) -> Result<(u64, Option<u64>, u64), WorkerError> {
    // No core dumps: a dump would write the guest's memory (and the tenant's data) to disk.
    lower_limit(Resource::Core, "RLIMIT_CORE", 0)?;
    // The worker never locks memory.
    lower_limit(Resource::Memlock, "RLIMIT_MEMLOCK", 0)?;
    let open_files = lower_limit(Resource::Nofile, "RLIMIT_NOFILE", options.max_open_files)?;
    let data = lower_limit(Resource::Data, "RLIMIT_DATA", options.max_data_bytes)?;
    let address_space = options
        .max_address_space_bytes
        .map(|bytes| lower_limit(Resource::As, "RLIMIT_AS", bytes))
        .transpose()?;
    Ok((data, address_space, open_files))
}

/// Rights on the cache directory: read and write files and directories under it; nothing is
/// executed, and no device, socket, pipe or link is created there.
fn cache_dir_access() -> landlock::BitFlags<AccessFs> {
    AccessFs::ReadFile
        | AccessFs::ReadDir
        | AccessFs::WriteFile
        | AccessFs::Truncate
        | AccessFs::RemoveFile
        | AccessFs::RemoveDir
        | AccessFs::MakeReg
        | AccessFs::MakeDir
}

/// Landlock: no filesystem access except under the tenant's cache directory, no TCP bind or connect,
/// no signals to or abstract sockets of processes outside the worker.
fn restrict_filesystem(options: &WorkerOptions) -> Result<(String, bool), WorkerError> {
    let error = sandbox_error("landlock");
    let level = if options.require_landlock {
        CompatLevel::HardRequirement
    } else {
        CompatLevel::BestEffort
    };
    let mut ruleset = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))
        .and_then(|r| r.handle_access(AccessNet::from_all(LANDLOCK_ABI)))
        .and_then(|r| r.scope(Scope::from_all(LANDLOCK_ABI)))
        .and_then(|r| r.create())
        .map_err(|e| error(e.to_string()))?;
    if let Some(dir) = &options.tenant_cache_dir() {
        std::fs::create_dir_all(dir).map_err(|e| {
            error(format!(
                "cannot create the cache directory {}: {e}",
                dir.display()
            ))
        })?;
        let fd = PathFd::new(dir).map_err(|e| error(format!("{}: {e}", dir.display())))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, cache_dir_access()))
            .map_err(|e| error(e.to_string()))?;
    }
    let status = ruleset.restrict_self().map_err(|e| error(e.to_string()))?;
    let description = match status.ruleset {
        RulesetStatus::FullyEnforced => format!("fully enforced (landlock ABI {LANDLOCK_ABI:?})"),
        RulesetStatus::PartiallyEnforced => format!(
            "partially enforced: the kernel supports only part of landlock ABI {LANDLOCK_ABI:?} ({:?})",
            status.landlock
        ),
        RulesetStatus::NotEnforced => format!(
            "not enforced: the kernel has no usable landlock ({:?}); seccomp and rlimits still apply",
            status.landlock
        ),
    };
    let fully = status.ruleset == RulesetStatus::FullyEnforced;
    if !fully {
        tracing::warn!(tenant = %options.tenant, landlock = %description, "worker filesystem sandbox is weaker than requested");
    }
    Ok((description, fully))
}

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, WorkerError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value).map_err(|e| {
        WorkerError::Sandbox {
            step: "seccomp",
            message: e.to_string(),
        }
    })
}

fn dword_condition(arg: u8, value: u64) -> Result<SeccompCondition, WorkerError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value).map_err(|e| {
        WorkerError::Sandbox {
            step: "seccomp",
            message: e.to_string(),
        }
    })
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, WorkerError> {
    SeccompRule::new(conditions).map_err(|e| WorkerError::Sandbox {
        step: "seccomp",
        message: e.to_string(),
    })
}

/// System calls the worker may make once hardened, with argument checks where a call is only
/// safe in one form. Anything else kills the process (`SECCOMP_RET_KILL_PROCESS`: `SIGSYS`).
///
/// Found by running the worker's tests under this filter (and `strace -f`): the request loop
/// on the socket, wasmtime (mmap family, traps through signals, the epoch ticker thread,
/// the compiler's thread pool, pooled instance reset), the std library and glibc.
pub(crate) fn allowlist(
    with_cache_dir: bool,
    pid: u32,
) -> Result<BTreeMap<i64, Vec<SeccompRule>>, WorkerError> {
    let any = |syscalls: &[i64]| {
        syscalls
            .iter()
            .map(|s| (*s, Vec::new()))
            .collect::<Vec<_>>()
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    rules.extend(any(&[
        // The socket to the supervisor (std's send and recv), stderr for logs, descriptors.
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_recvfrom,
        libc::SYS_sendto,
        libc::SYS_close,
        libc::SYS_fcntl,
        libc::SYS_fstat,
        // Memory: the allocator, wasm linear memories, JIT code, pooled instance reset.
        libc::SYS_brk,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_mremap,
        libc::SYS_membarrier,
        // wasmtime keeps each module's initial memory image in a sealed memfd (no path).
        libc::SYS_memfd_create,
        // Threads and synchronisation.
        libc::SYS_futex,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_getpid,
        libc::SYS_gettid,
        // The tokio runtime wasmtime-wasi starts on first use of a WASI stream (a guest
        // writing to stderr): its I/O driver waits on an epoll set woken by an eventfd.
        libc::SYS_epoll_create1,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_pwait,
        libc::SYS_eventfd2,
        // Time: the epoch ticker sleeps; clocks when the vDSO cannot answer.
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_gettimeofday,
        libc::SYS_clock_nanosleep,
        // Signals: wasmtime turns faults into traps with the handlers installed before
        // hardening; std and wasmtime give each thread an alternate signal stack.
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sigaltstack,
        libc::SYS_restart_syscall,
        // Randomness (hash maps).
        libc::SYS_getrandom,
        // Exiting (a thread, the process).
        libc::SYS_exit,
        libc::SYS_exit_group,
    ]));
    // New threads only (`CLONE_THREAD`), never a new process. (`clone3`, whose flags seccomp
    // cannot see, is answered ENOSYS: see `refused`.)
    let clone_thread = libc::CLONE_THREAD as u64;
    rules.insert(
        libc::SYS_clone,
        vec![rule(vec![condition(
            0,
            SeccompCmpOp::MaskedEq(clone_thread),
            clone_thread,
        )?])?],
    );
    #[cfg(target_arch = "x86_64")]
    rules.insert(libc::SYS_epoll_wait, Vec::new());
    // An unnamed, connected pair of local sockets (seen on the failure path of a guest trap
    // and of an allocation over RLIMIT_DATA, under load): it reaches nothing outside the
    // process. `socket` itself, and every other address family, stay forbidden.
    rules.insert(
        libc::SYS_socketpair,
        vec![rule(vec![dword_condition(0, libc::AF_UNIX as u64)?])?],
    );
    // abort() (a failed allocation under RLIMIT_DATA) signals this process, nothing else.
    rules.insert(
        libc::SYS_tgkill,
        vec![rule(vec![dword_condition(0, u64::from(pid))?])?],
    );
    // Thread names (std names its threads; newer glibc names its mappings).
    rules.insert(
        libc::SYS_prctl,
        vec![
            rule(vec![dword_condition(0, libc::PR_SET_NAME as u64)?])?,
            rule(vec![dword_condition(0, libc::PR_GET_NAME as u64)?])?,
            rule(vec![dword_condition(0, libc::PR_SET_VMA as u64)?])?,
        ],
    );
    // wasmtime's dirty-page scan on the page map opened before hardening; no other ioctl.
    rules.insert(
        libc::SYS_ioctl,
        vec![rule(vec![dword_condition(1, PAGEMAP_SCAN)?])?],
    );
    if with_cache_dir {
        // Opening files: landlock confines it to the cache directory (without one, `openat`
        // is refused: see `refused`).
        rules.insert(libc::SYS_openat, Vec::new());
        // Reading and writing the compile cache (std uses the legacy calls on x86_64).
        rules.extend(any(&[
            libc::SYS_statx,
            libc::SYS_newfstatat,
            libc::SYS_mkdirat,
            libc::SYS_renameat,
            libc::SYS_renameat2,
        ]));
        #[cfg(target_arch = "x86_64")]
        rules.extend(any(&[libc::SYS_mkdir, libc::SYS_rename]));
    } else {
        // Metadata of open descriptors only: landlock does not cover `stat` of a path.
        let empty_path = libc::AT_EMPTY_PATH as u64;
        let on_descriptor = |flags_arg: u8| -> Result<Vec<SeccompRule>, WorkerError> {
            Ok(vec![rule(vec![condition(
                flags_arg,
                SeccompCmpOp::MaskedEq(empty_path),
                empty_path,
            )?])?])
        };
        rules.insert(libc::SYS_statx, on_descriptor(2)?);
        rules.insert(libc::SYS_newfstatat, on_descriptor(3)?);
    }
    Ok(rules)
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, WorkerError> {
    let error = sandbox_error("seccomp");
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| error(e.to_string()))?;
    SeccompFilter::new(rules, mismatch, matched, arch)
        .and_then(BpfProgram::try_from)
        .map_err(|e| error(e.to_string()))
}

/// System calls answered with an error instead of running (nor killing): `clone3` with
/// ENOSYS, so glibc falls back to `clone`, whose flags the allowlist checks; and, with
/// EACCES, the working directory and the executable's path (`readlink` of
/// `/proc/self/exe`), which printing a panic's backtrace asks for (a panic should end as a
/// panic, exit status 101, not as a seccomp kill); without a cache directory, `openat`.
fn refused(with_cache_dir: bool) -> Vec<(i64, i32)> {
    let mut refused = vec![
        (libc::SYS_clone3, libc::ENOSYS),
        (libc::SYS_getcwd, libc::EACCES),
        (libc::SYS_readlinkat, libc::EACCES),
    ];
    #[cfg(target_arch = "x86_64")]
    refused.push((libc::SYS_readlink, libc::EACCES));
    if !with_cache_dir {
        refused.push((libc::SYS_openat, libc::EACCES));
    }
    refused
}

/// Installs the filters: first one per errno that answers some calls with that error
/// (everything else passes), then the allowlist (anything not on it kills the process),
/// last because once it is in place `seccomp` itself is forbidden. The kernel runs every
/// filter on each call and keeps the strictest answer (kill, then errno, then allow), so a
/// refused call must also be on the allowlist to fail with its errno rather than kill.
///
/// Returns how many system calls run and how many are answered with an error.
fn install_seccomp(with_cache_dir: bool) -> Result<(u32, u32), WorkerError> {
    let error = sandbox_error("seccomp");
    let mut allowed = allowlist(with_cache_dir, std::process::id())?;
    let refused = refused(with_cache_dir);
    let mut by_errno: BTreeMap<i32, BTreeMap<i64, Vec<SeccompRule>>> = BTreeMap::new();
    for (syscall, errno) in &refused {
        allowed.entry(*syscall).or_default();
        by_errno
            .entry(*errno)
            .or_default()
            .insert(*syscall, Vec::new());
    }
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let counts = (count(allowed.len() - refused.len()), count(refused.len()));
    let mut filters = Vec::new();
    for (errno, rules) in by_errno {
        let errno = u32::try_from(errno).map_err(|e| error(e.to_string()))?;
        filters.push(compile(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno),
        )?);
    }
    filters.push(compile(
        allowed,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
    )?);
    for filter in &filters {
        seccompiler::apply_filter(filter).map_err(|e| error(e.to_string()))?;
    }
    Ok(counts)
}
