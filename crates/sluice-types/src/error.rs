use serde::{Deserialize, Serialize};

/// Which module (and which version of it) an outcome belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModuleRef {
    /// The module's name, unique per tenant.
    pub id: String,
    /// The module version (a registry version number, or a content hash prefix).
    pub version: String,
}

impl ModuleRef {
    /// A reference to `id` at `version`.
    pub fn new(id: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            version: version.into(),
        }
    }
}

impl std::fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.id, self.version)
    }
}

/// Why a codec refused a message, as the guest said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodecErrorKind {
    /// The input is malformed: truncated, bad checksum, out-of-range field.
    InvalidInput,
    /// The input is well formed but not supported (unknown type, version or port).
    Unsupported,
    /// The codec itself failed.
    Internal,
}

impl std::fmt::Display for CodecErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CodecErrorKind::InvalidInput => "invalid-input",
            CodecErrorKind::Unsupported => "unsupported",
            CodecErrorKind::Internal => "internal",
        })
    }
}

/// A codec's typed refusal of a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct CodecError {
    /// What kind of refusal.
    pub kind: CodecErrorKind,
    /// The guest's explanation.
    pub message: String,
}

/// The kind of a wasm trap that is not one of the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrapKind {
    /// `unreachable` executed: a Rust panic or abort in the guest lands here.
    Unreachable,
    /// Out-of-bounds memory access.
    MemoryOutOfBounds,
    /// Out-of-bounds table access.
    TableOutOfBounds,
    /// Indirect call to a null table entry.
    IndirectCallToNull,
    /// Indirect call with the wrong signature.
    BadSignature,
    /// Integer overflow (e.g. `i32.div_s` of `MIN / -1`).
    IntegerOverflow,
    /// Integer division by zero.
    IntegerDivisionByZero,
    /// Float to integer conversion out of range.
    BadConversionToInteger,
    /// The guest's own exit (`wasi:cli/exit`) or another host-initiated stop.
    Exit,
    /// The component model refused re-entry or a lifted value was invalid.
    ComponentModel,
    /// Anything else.
    Other,
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "other".into());
        f.write_str(&text)
    }
}

/// Why a module was refused at load time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum ValidationError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly binary (the file does not start with the `\\0asm` magic)")]
    NotWasm,
    /// A core module where a component is required.
    #[error(
        "this is a core WebAssembly module, not a component; build with `--target wasm32-wasip2` (or `sluice build`) so the output is a component"
    )]
    CoreModule,
    /// The binary does not validate or does not compile.
    #[error("invalid component: {message}")]
    Invalid {
        /// What the validator said.
        message: String,
    },
    /// The exports match neither the codec nor the router world.
    #[error(
        "unknown world: the component exports [{exports}]; a codec exports `decode-uplink` and `encode-downlink`, a router exports `route`"
    )]
    UnknownWorld {
        /// The component's exports, comma separated.
        exports: String,
    },
    /// An export has the right name but the wrong type.
    #[error("export `{export}` does not match the {world} contract: {message}")]
    WrongContract {
        /// The export name.
        export: String,
        /// The world it was checked against.
        world: String,
        /// What did not match.
        message: String,
    },
    /// An import outside the set the host can ever provide.
    #[error("import `{import}` is not part of the Sluice contract and is never provided")]
    ImportNotAllowed {
        /// The full import name.
        import: String,
    },
    /// A WASI import the module's policy does not grant.
    #[error("import `{import}` needs the `{grant}` grant, which this module does not have")]
    NotGranted {
        /// The full import name.
        import: String,
        /// The grant that would allow it.
        grant: String,
    },
    /// The module's limits do not make sense.
    #[error("invalid limits: {0}")]
    Limits(String),
}

/// Every way running a guest can fail. Each names the module and, for limits, the limit.
///
/// A failure never harms the host: after any of these the next message runs in a fresh or
/// intact instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "failure", rename_all = "kebab-case")]
pub enum GuestFailure {
    /// The call used all of its fuel.
    #[error("{module}: fuel exhausted (limit {limit_fuel} units per call)")]
    FuelExhausted {
        /// The module.
        module: ModuleRef,
        /// The fuel limit per call.
        limit_fuel: u64,
    },
    /// The call ran past its wall-clock deadline.
    #[error("{module}: deadline exceeded (limit {limit_ms} ms per call)")]
    DeadlineExceeded {
        /// The module.
        module: ModuleRef,
        /// The deadline per call.
        limit_ms: u64,
    },
    /// The guest tried to grow its memory past the limit.
    #[error("{module}: memory limit reached (limit {limit_bytes} bytes)")]
    MemoryLimit {
        /// The module.
        module: ModuleRef,
        /// The linear-memory limit.
        limit_bytes: u64,
    },
    /// The guest tried to grow a table past the limit.
    #[error("{module}: table limit reached (limit {limit_elements} elements)")]
    TableLimit {
        /// The module.
        module: ModuleRef,
        /// The table-elements limit.
        limit_elements: u64,
    },
    /// The guest's call stack overflowed.
    #[error("{module}: stack overflow (limit {limit_bytes} bytes)")]
    StackOverflow {
        /// The module.
        module: ModuleRef,
        /// The stack limit.
        limit_bytes: u64,
    },
    /// The guest trapped.
    #[error("{module}: trap ({kind}): {message}")]
    Trap {
        /// The module.
        module: ModuleRef,
        /// What kind of trap.
        kind: TrapKind,
        /// The trap message (includes the panic message when the guest printed one).
        message: String,
        /// The guest's wasm backtrace, one frame per line, when available.
        backtrace: Option<String>,
    },
    /// The guest refused the message with a typed codec error.
    #[error("{module}: codec error: {error}")]
    GuestError {
        /// The module.
        module: ModuleRef,
        /// The guest's error.
        error: CodecError,
    },
    /// The guest returned something that is not a valid document or decision.
    #[error("{module}: invalid output: {reason}")]
    InvalidOutput {
        /// The module.
        module: ModuleRef,
        /// What was wrong with it.
        reason: String,
    },
    /// The guest's output exceeded the output limit.
    #[error("{module}: output too large ({size_bytes} bytes, limit {limit_bytes})")]
    OutputTooLarge {
        /// The module.
        module: ModuleRef,
        /// The output's size.
        size_bytes: u64,
        /// The output limit.
        limit_bytes: u64,
    },
    /// The module was refused at load time.
    #[error("{module}: rejected: {error}")]
    Rejected {
        /// The module.
        module: ModuleRef,
        /// Why.
        error: ValidationError,
    },
    /// The module does not implement the function that was called (e.g. `route` on a codec).
    #[error("{module}: the module is a {world} and has no `{function}`")]
    WrongWorld {
        /// The module.
        module: ModuleRef,
        /// The module's world.
        world: String,
        /// The function that was called.
        function: String,
    },
    /// The decoded document could not be delivered to a sink: its format could not carry it
    /// (`attempts` is 0) or the sink kept failing past its retries.
    #[error("{module}: sink `{sink}` failed after {attempts} attempt(s): {message}")]
    SinkFailed {
        /// The codec (or router) whose document it was.
        module: ModuleRef,
        /// The sink's output name.
        sink: String,
        /// Delivery attempts made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// The binding is quarantined (its circuit breaker is open after repeated failures); the
    /// message was not run.
    #[error("{module}: quarantined after repeated failures; next trial in {retry_in_ms} ms")]
    Quarantined {
        /// The binding (as `tenant/binding@quarantine`).
        module: ModuleRef,
        /// When the breaker lets a trial message through.
        retry_in_ms: u64,
    },
    /// The host failed for a reason that is not the guest's (e.g. no instance slot free).
    #[error("{module}: host error: {message}")]
    Host {
        /// The module.
        module: ModuleRef,
        /// What failed.
        message: String,
    },
}

impl GuestFailure {
    /// The module the failure belongs to.
    pub fn module(&self) -> &ModuleRef {
        match self {
            GuestFailure::FuelExhausted { module, .. }
            | GuestFailure::DeadlineExceeded { module, .. }
            | GuestFailure::MemoryLimit { module, .. }
            | GuestFailure::TableLimit { module, .. }
            | GuestFailure::StackOverflow { module, .. }
            | GuestFailure::Trap { module, .. }
            | GuestFailure::GuestError { module, .. }
            | GuestFailure::InvalidOutput { module, .. }
            | GuestFailure::OutputTooLarge { module, .. }
            | GuestFailure::Rejected { module, .. }
            | GuestFailure::WrongWorld { module, .. }
            | GuestFailure::SinkFailed { module, .. }
            | GuestFailure::Quarantined { module, .. }
            | GuestFailure::Host { module, .. } => module,
        }
    }

    /// A short stable name for metrics and logs (`fuel-exhausted`, `trap`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            GuestFailure::FuelExhausted { .. } => "fuel-exhausted",
            GuestFailure::DeadlineExceeded { .. } => "deadline-exceeded",
            GuestFailure::MemoryLimit { .. } => "memory-limit",
            GuestFailure::TableLimit { .. } => "table-limit",
            GuestFailure::StackOverflow { .. } => "stack-overflow",
            GuestFailure::Trap { .. } => "trap",
            GuestFailure::GuestError { .. } => "guest-error",
            GuestFailure::InvalidOutput { .. } => "invalid-output",
            GuestFailure::OutputTooLarge { .. } => "output-too-large",
            GuestFailure::Rejected { .. } => "rejected",
            GuestFailure::WrongWorld { .. } => "wrong-world",
            GuestFailure::SinkFailed { .. } => "sink-failed",
            GuestFailure::Quarantined { .. } => "quarantined",
            GuestFailure::Host { .. } => "host-error",
        }
    }

    /// Whether the instance that produced this failure must be discarded.
    ///
    /// A typed codec error or a bad output leaves the guest in a consistent state; a trap or a
    /// limit stopped it mid-way, so its memory cannot be trusted.
    pub fn poisons_instance(&self) -> bool {
        !matches!(
            self,
            GuestFailure::GuestError { .. }
                | GuestFailure::InvalidOutput { .. }
                | GuestFailure::OutputTooLarge { .. }
                | GuestFailure::Rejected { .. }
                | GuestFailure::WrongWorld { .. }
                | GuestFailure::SinkFailed { .. }
                | GuestFailure::Quarantined { .. }
        )
    }
}
