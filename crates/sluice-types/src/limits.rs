use serde::{Deserialize, Serialize};

/// Per-call limits of a module. Every field has a default; a module may override any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Fuel per call (about one unit per wasm instruction).
    pub fuel_per_call: u64,
    /// Wall-clock deadline per call, in milliseconds.
    pub deadline_ms: u64,
    /// Largest linear memory an instance may grow to, in bytes.
    pub max_memory_bytes: u64,
    /// Largest number of elements a table may grow to.
    pub max_table_elements: u64,
    /// Largest wasm stack a call may use, in bytes.
    pub max_stack_bytes: u64,
    /// Largest output (document, frame or decisions) a call may return, in bytes.
    pub max_output_bytes: u64,
    /// Log lines kept per call; later lines are dropped and counted.
    pub max_log_lines_per_call: u32,
    /// Log bytes kept per call; later bytes are dropped and counted.
    pub max_log_bytes_per_call: u64,
    /// State a single device may hold, keys and values together, in bytes.
    pub max_state_bytes_per_device: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel_per_call: 10_000_000,
            deadline_ms: 100,
            max_memory_bytes: 16 * 1024 * 1024,
            max_table_elements: 10_000,
            max_stack_bytes: 512 * 1024,
            max_output_bytes: 64 * 1024,
            max_log_lines_per_call: 32,
            max_log_bytes_per_call: 8 * 1024,
            max_state_bytes_per_device: 4 * 1024,
        }
    }
}

/// Limits that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct LimitError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl Limits {
    /// Checks every limit against the bounds the host can honour.
    ///
    /// `ceiling` is the runtime's own maximum for each field (e.g. the pooling allocator's
    /// memory slot size): a module may tighten a limit, never raise it past the ceiling.
    pub fn validate(&self, ceiling: &Limits) -> Result<(), LimitError> {
        let checks: [(&'static str, u64, u64); 9] = [
            ("fuel_per_call", self.fuel_per_call, ceiling.fuel_per_call),
            ("deadline_ms", self.deadline_ms, ceiling.deadline_ms),
            (
                "max_memory_bytes",
                self.max_memory_bytes,
                ceiling.max_memory_bytes,
            ),
            (
                "max_table_elements",
                self.max_table_elements,
                ceiling.max_table_elements,
            ),
            (
                "max_stack_bytes",
                self.max_stack_bytes,
                ceiling.max_stack_bytes,
            ),
            (
                "max_output_bytes",
                self.max_output_bytes,
                ceiling.max_output_bytes,
            ),
            (
                "max_log_lines_per_call",
                self.max_log_lines_per_call.into(),
                ceiling.max_log_lines_per_call.into(),
            ),
            (
                "max_log_bytes_per_call",
                self.max_log_bytes_per_call,
                ceiling.max_log_bytes_per_call,
            ),
            (
                "max_state_bytes_per_device",
                self.max_state_bytes_per_device,
                ceiling.max_state_bytes_per_device,
            ),
        ];
        for (field, value, max) in checks {
            if value > max {
                return Err(LimitError {
                    field,
                    problem: format!("is {value}, above the host's maximum of {max}"),
                });
            }
        }
        for (field, value) in [
            ("fuel_per_call", self.fuel_per_call),
            ("deadline_ms", self.deadline_ms),
            ("max_memory_bytes", self.max_memory_bytes),
            ("max_stack_bytes", self.max_stack_bytes),
            ("max_output_bytes", self.max_output_bytes),
        ] {
            if value == 0 {
                return Err(LimitError {
                    field,
                    problem: "must be greater than zero".into(),
                });
            }
        }
        Ok(())
    }
}

/// What time a guest sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockMode {
    /// The message's received-at time, frozen for the call (deterministic, replayable).
    #[default]
    Virtual,
    /// The host's real time.
    Real,
    /// No clock: a module that imports a clock is refused at load.
    Denied,
}

/// Optional capabilities a module may be granted. Everything not granted is refused at load.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Grants {
    /// `wasi:filesystem/*`, served with no preopened directory: the guest links, and every
    /// open fails. Needed by guests whose standard library imports the filesystem.
    pub filesystem: bool,
}

/// Everything the host enforces on one module.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModulePolicy {
    /// Per-call limits.
    pub limits: Limits,
    /// What time the guest sees.
    pub clock: ClockMode,
    /// Optional capabilities.
    pub grants: Grants,
    /// Instantiate a fresh instance for every message instead of reusing one.
    pub fresh_instance_per_call: bool,
}
