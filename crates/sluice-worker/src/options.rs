//! What a worker process is told at start: the tenant, the runtime's settings and the sandbox's
//! limits. The supervisor serializes [`WorkerOptions`] as JSON into the
//! [`WORKER_OPTIONS_ENV`] environment variable of the child, so the worker knows them before
//! it reads any frame, and the executable's own argument parser needs to know nothing of them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sluice_runtime::RuntimeConfig;
use sluice_types::Limits;

use crate::WorkerError;

/// The environment variable that carries the JSON of [`WorkerOptions`] to the child.
pub const WORKER_OPTIONS_ENV: &str = "SLUICE_WORKER_OPTIONS";

/// Exit status of a worker whose self-test found the forbidden operation allowed.
#[doc(hidden)]
pub const SELF_TEST_ALLOWED_EXIT_CODE: i32 = 10;
/// Longest tenant id accepted.
const MAX_TENANT_BYTES: usize = 128;

/// The smallest `max_data_bytes` accepted. A ready worker uses about 27 MiB of writable
/// memory (heap, thread stacks, the pools' tables); below this the value is certainly a
/// mistake.
const MIN_DATA_BYTES: u64 = 32 * 1024 * 1024;

/// Exit status of a worker whose self-test found the forbidden operation refused with an
/// error (rather than killing the process).
#[doc(hidden)]
pub const SELF_TEST_DENIED_EXIT_CODE: i32 = 11;

/// Settings of one worker process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerOptions {
    /// The tenant whose code the worker runs (for messages and logs).
    pub tenant: String,
    /// Root of the compile caches. The worker caches compiled artifacts in
    /// `<cache_dir>/<tenant>` (see [`WorkerOptions::tenant_cache_dir`]), may read and write
    /// under that directory and nowhere else. Artifacts are native code loaded without
    /// recompilation, so each tenant gets a directory of its own: a worker that could write
    /// another tenant's artifacts could run code in that tenant's worker. `None` gives the
    /// worker no filesystem access at all (every module is compiled at load).
    pub cache_dir: Option<PathBuf>,
    /// Instances that may be alive at once in the worker (pooling allocator slots).
    pub max_instances: u32,
    /// The largest limits any module of the worker may have.
    pub ceiling: Limits,
    /// `RLIMIT_DATA`, in bytes: the worker's writable private mappings together (heap,
    /// thread stacks, the pools' tables and the wasm memories as they grow; about 27 MiB when
    /// ready). It bounds what the tenant's instances can hold together, as committed size
    /// rather than resident pages; a worker that needs more fails allocations and usually
    /// dies (panic or `SIGABRT`), which the supervisor reports.
    pub max_data_bytes: u64,
    /// `RLIMIT_AS`, in bytes. Off by default: the pooling allocator reserves (without
    /// committing) several GiB of address space per instance slot, so a useful address-space
    /// cap would be in the terabytes; `max_data_bytes` is the memory cap that works.
    pub max_address_space_bytes: Option<u64>,
    /// `RLIMIT_NOFILE`: the worker needs its socket, stdio, the page-map file, cache files
    /// while they are written, and one memfd per loaded module with initialised memory.
    pub max_open_files: u64,
    /// Refuse to start when landlock cannot be fully enforced (instead of logging and going
    /// on with seccomp and rlimits only).
    pub require_landlock: bool,
    /// Test support: a forbidden operation to attempt once hardened.
    #[doc(hidden)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_test: Option<SelfTest>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        let runtime = RuntimeConfig::default();
        Self {
            tenant: String::new(),
            cache_dir: None,
            max_instances: 64,
            ceiling: runtime.ceiling,
            max_data_bytes: 4 * 1024 * 1024 * 1024,
            max_address_space_bytes: None,
            max_open_files: 1024,
            require_landlock: false,
            self_test: None,
        }
    }
}

/// Test support: what a worker attempts right after hardening (and after its `Ready` frame),
/// to prove the sandbox refuses it.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelfTest {
    /// Open a TCP connection to 127.0.0.1:9 (`socket` is not allowed: `SIGSYS`).
    TcpConnect,
    /// Replace the process with `/bin/true` (`execve` is not allowed: `SIGSYS`).
    Execve,
    /// Start a child process (`clone` without `CLONE_THREAD` is not allowed: `SIGSYS`).
    Spawn,
    /// Read a file; exits with [`SELF_TEST_DENIED_EXIT_CODE`] when the read fails, with
    /// [`SELF_TEST_ALLOWED_EXIT_CODE`] when it works.
    ReadFile(PathBuf),
    /// Write a file; exit codes as for `ReadFile`.
    WriteFile(PathBuf),
}

impl WorkerOptions {
    /// Options for `tenant`, everything else at its default.
    pub fn new(tenant: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            ..Self::default()
        }
    }

    /// The tenant's own cache directory, `<cache_dir>/<tenant>`, when there is a cache.
    pub fn tenant_cache_dir(&self) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|root| root.join(&self.tenant))
    }

    /// The runtime configuration the worker builds from these options.
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            ceiling: self.ceiling.clone(),
            max_instances: self.max_instances,
            cache_dir: self.tenant_cache_dir(),
            ..RuntimeConfig::default()
        }
    }

    /// The options as the JSON the supervisor puts in [`WORKER_OPTIONS_ENV`].
    pub fn to_json(&self) -> Result<String, WorkerError> {
        serde_json::to_string(self).map_err(|e| WorkerError::Options(e.to_string()))
    }

    /// Parses options from JSON; an unknown field is an error.
    pub fn from_json(json: &str) -> Result<Self, WorkerError> {
        serde_json::from_str(json).map_err(|e| WorkerError::Options(e.to_string()))
    }

    /// The options the supervisor passed in [`WORKER_OPTIONS_ENV`].
    pub fn from_env() -> Result<Self, WorkerError> {
        let json = std::env::var(WORKER_OPTIONS_ENV).map_err(|e| {
            WorkerError::Options(format!(
                "{WORKER_OPTIONS_ENV} is not set or not UTF-8 ({e}); a worker is started by the supervisor"
            ))
        })?;
        Self::from_json(&json)
    }

    /// Checks the options make sense before a process is started for them.
    pub fn validate(&self) -> Result<(), WorkerError> {
        let bad = |message: String| Err(WorkerError::Options(message));
        // The tenant names a directory: one plain path component.
        let tenant = &self.tenant;
        let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if tenant.is_empty()
            || tenant.len() > MAX_TENANT_BYTES
            || tenant == "."
            || tenant == ".."
            || !tenant.chars().all(safe)
        {
            return bad(format!(
                "tenant `{tenant}` must be 1 to {MAX_TENANT_BYTES} ASCII letters, digits, `-`, `_` or `.` (and not `.` or `..`)"
            ));
        }
        if self.max_instances == 0 {
            return bad("max_instances must be greater than zero".into());
        }
        if self.max_open_files < 8 {
            return bad(format!(
                "max_open_files is {}, the worker needs at least 8",
                self.max_open_files
            ));
        }
        if self.max_data_bytes < MIN_DATA_BYTES {
            return bad(format!(
                "max_data_bytes is {}, the worker needs more than {MIN_DATA_BYTES} (a ready worker uses about 27 MiB)",
                self.max_data_bytes
            ));
        }
        if let Some(dir) = &self.cache_dir
            && !dir.is_absolute()
        {
            return bad(format!("cache_dir `{}` must be absolute", dir.display()));
        }
        self.ceiling
            .validate(&self.ceiling)
            .map_err(|e| WorkerError::Options(format!("ceiling: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_through_json() {
        let options = WorkerOptions {
            cache_dir: Some("/var/cache/sluice".into()),
            self_test: Some(SelfTest::ReadFile("/etc/passwd".into())),
            ..WorkerOptions::new("acme")
        };
        let json = options.to_json().expect("serializes");
        assert_eq!(WorkerOptions::from_json(&json).expect("parses"), options);
    }

    #[test]
    fn options_refuse_unknown_fields_and_bad_values() {
        let err =
            WorkerOptions::from_json(r#"{"tenant": "a", "max_instance": 3}"#).expect_err("typo");
        assert!(err.to_string().contains("max_instance"), "{err}");
        let relative = WorkerOptions {
            cache_dir: Some("cache".into()),
            ..WorkerOptions::new("a")
        };
        assert!(relative.validate().is_err());
        assert!(WorkerOptions::new("a").validate().is_ok());
        for tenant in ["", "..", "a/b", "acme corp"] {
            assert!(WorkerOptions::new(tenant).validate().is_err(), "{tenant:?}");
        }
    }

    #[test]
    fn each_tenant_caches_in_a_directory_of_its_own() {
        let options = WorkerOptions {
            cache_dir: Some("/var/cache/sluice".into()),
            ..WorkerOptions::new("acme")
        };
        assert_eq!(
            options.tenant_cache_dir(),
            Some("/var/cache/sluice/acme".into())
        );
        assert_eq!(
            options.runtime_config().cache_dir,
            options.tenant_cache_dir()
        );
        assert_eq!(WorkerOptions::new("acme").tenant_cache_dir(), None);
    }
}
