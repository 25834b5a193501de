//! One instance of a module: runs calls under the module's limits and turns every outcome
//! into a typed result.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sluice_types::{
    CodecError, CodecErrorKind, Decision, Document, DocumentError, Downlink, EncodedDownlink,
    GuestFailure, ModuleRef, TrapKind, Uplink, World,
};
use wasmtime::{Store, Trap, WasmBacktrace};

use crate::bindings::{self, types as wit};
use crate::engine::{Module, Pre};
use crate::host::{HostFailure, HostState, InstanceEnv, LimitHit, LogLevel, LogLine, MetricUpdate};

/// Longest output name a router may use.
const MAX_OUTPUT_NAME_BYTES: usize = 128;

/// What a call cost and what the guest said while it ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallReport {
    /// Fuel the call consumed.
    pub fuel_consumed: u64,
    /// Wall-clock time of the call, including instantiation when it happened.
    pub duration: Duration,
    /// Whether a fresh wasm instance was created for this call.
    pub instantiated: bool,
    /// Log lines kept (the guest's log calls, stdout and stderr).
    pub logs: Vec<LogLine>,
    /// Log lines dropped because the call's log caps were reached.
    pub logs_dropped: u64,
    /// Metric updates the guest reported.
    pub metrics: Vec<MetricUpdate>,
    /// Metric updates dropped (too many names, bad names or values).
    pub metrics_dropped: u64,
}

/// The result of one call and its report.
#[derive(Debug, Clone)]
pub struct CallOutcome<T> {
    /// The output, or the typed failure.
    pub result: Result<T, GuestFailure>,
    /// What the call cost and logged; present whatever the result.
    pub report: CallReport,
}

enum Exports {
    Codec(bindings::codec::Codec),
    Router(bindings::router::Router),
}

struct Live {
    store: Store<HostState>,
    exports: Exports,
}

/// A running instance of a [`Module`], bound to one binding's config and state.
///
/// Not shareable between threads at once: give each worker thread its own instance.
pub struct Instance {
    module: Module,
    env: InstanceEnv,
    live: Option<Live>,
    instantiations: u64,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("module", self.module.module_ref())
            .field("live", &self.live.is_some())
            .field("instantiations", &self.instantiations)
            .finish()
    }
}

/// Per-call inputs the host controls.
struct CallInput<'a> {
    device_id: &'a str,
    time_ms: u64,
    seed: u64,
}

impl Instance {
    pub(crate) fn new(module: Module, env: InstanceEnv) -> Self {
        Self {
            module,
            env,
            live: None,
            instantiations: 0,
        }
    }

    /// The module this instance runs.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// How many wasm instances were created so far (one, plus one after each discard).
    pub fn instantiations(&self) -> u64 {
        self.instantiations
    }

    /// Whether a wasm instance is alive right now (false after a trap, until the next call).
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Creates the wasm instance now instead of on the first call (to warm up a binding, or
    /// to measure instantiation). Does nothing when one is alive.
    pub fn prepare(&mut self) -> Result<(), GuestFailure> {
        if self.live.is_some() {
            return Ok(());
        }
        match self.instantiate() {
            Ok(live) => {
                self.live = Some(live);
                Ok(())
            }
            Err(e) => Err(classify(
                self.module.module_ref(),
                &self.module.policy().limits,
                self.stack_limit_bytes(),
                e,
                &[],
            )),
        }
    }

    /// Decodes one uplink into a document.
    pub fn decode(&mut self, message: &Uplink) -> CallOutcome<Document> {
        let input = CallInput {
            device_id: &message.device_id,
            time_ms: message.received_at_ms,
            seed: seed_of(message),
        };
        let arg = uplink_to_wit(message);
        let module_ref = self.module.module_ref().clone();
        let limit = self.module.policy().limits.max_output_bytes;
        self.call(World::Codec, "decode-uplink", input, |exports, store| {
            let Exports::Codec(codec) = exports else {
                return Ok(Err(mismatched_exports(&module_ref)));
            };
            let result = codec.call_decode_uplink(store, &arg)?;
            Ok(result
                .map_err(|e| guest_error(&module_ref, e))
                .and_then(|doc| document_from_wit(&module_ref, doc, limit)))
        })
    }

    /// Encodes one downlink document into a frame.
    pub fn encode(&mut self, message: &Downlink) -> CallOutcome<EncodedDownlink> {
        let input = CallInput {
            device_id: &message.device_id,
            time_ms: now_ms(),
            seed: fnv(message.document.to_json_vec().as_slice()),
        };
        let arg = wit::Downlink {
            device_id: message.device_id.clone(),
            port: message.port,
            document: document_to_wit(&message.document),
            metadata: metadata_to_wit(&message.metadata),
        };
        let module_ref = self.module.module_ref().clone();
        let limit = self.module.policy().limits.max_output_bytes;
        self.call(World::Codec, "encode-downlink", input, |exports, store| {
            let Exports::Codec(codec) = exports else {
                return Ok(Err(mismatched_exports(&module_ref)));
            };
            let result = codec.call_encode_downlink(store, &arg)?;
            Ok(result
                .map_err(|e| guest_error(&module_ref, e))
                .and_then(|frame| {
                    let size = frame.payload.len() as u64;
                    if size > limit {
                        return Err(GuestFailure::OutputTooLarge {
                            module: module_ref.clone(),
                            size_bytes: size,
                            limit_bytes: limit,
                        });
                    }
                    Ok(EncodedDownlink {
                        port: frame.port,
                        payload: frame.payload,
                    })
                }))
        })
    }

    /// Routes one decoded message.
    pub fn route(&mut self, message: &Uplink, decoded: &Document) -> CallOutcome<Vec<Decision>> {
        let input = CallInput {
            device_id: &message.device_id,
            time_ms: message.received_at_ms,
            seed: seed_of(message),
        };
        let arg = uplink_to_wit(message);
        let doc = document_to_wit(decoded);
        let module_ref = self.module.module_ref().clone();
        let limit = self.module.policy().limits.max_output_bytes;
        self.call(World::Router, "route", input, |exports, store| {
            let Exports::Router(router) = exports else {
                return Ok(Err(mismatched_exports(&module_ref)));
            };
            let result = router.call_route(store, &arg, &doc)?;
            Ok(result
                .map_err(|e| guest_error(&module_ref, e))
                .and_then(|decisions| decisions_from_wit(&module_ref, decisions, limit)))
        })
    }

    fn call<T>(
        &mut self,
        world: World,
        function: &str,
        input: CallInput<'_>,
        f: impl FnOnce(&Exports, &mut Store<HostState>) -> wasmtime::Result<Result<T, GuestFailure>>,
    ) -> CallOutcome<T> {
        let started = Instant::now();
        let mut report = CallReport::default();
        let module_ref = self.module.module_ref().clone();
        if self.module.world() != world {
            return CallOutcome {
                result: Err(GuestFailure::WrongWorld {
                    module: module_ref,
                    world: self.module.world().to_string(),
                    function: function.to_string(),
                }),
                report,
            };
        }
        let limits = self.module.policy().limits.clone();
        if self.live.is_none() {
            report.instantiated = true;
            match self.instantiate() {
                Ok(live) => self.live = Some(live),
                Err(e) => {
                    report.duration = started.elapsed();
                    return CallOutcome {
                        result: Err(classify(
                            &module_ref,
                            &limits,
                            self.stack_limit_bytes(),
                            e,
                            &[],
                        )),
                        report,
                    };
                }
            }
        }
        let Some(live) = self.live.as_mut() else {
            return CallOutcome {
                result: Err(GuestFailure::Host {
                    module: module_ref,
                    message: "instance vanished".into(),
                }),
                report,
            };
        };
        let epoch_tick = self.module.inner.runtime.config.epoch_tick;
        let store = &mut live.store;
        {
            let host = store.data_mut();
            host.device_id.clear();
            host.device_id.push_str(input.device_id);
            host.clock.set_ms(input.time_ms);
            host.random.seed(input.seed);
            host.metrics.clear();
            host.metrics_dropped = 0;
            host.log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reset(&limits);
        }
        let outcome = match arm_budget(store, &limits, epoch_tick) {
            Ok(()) => f(&live.exports, store),
            Err(e) => Err(e),
        };
        report.fuel_consumed = limits
            .fuel_per_call
            .saturating_sub(store.get_fuel().unwrap_or(0));
        {
            let host = store.data_mut();
            let mut log = host.log.lock().unwrap_or_else(|e| e.into_inner());
            log.flush_streams();
            report.logs = std::mem::take(&mut log.lines);
            report.logs_dropped = log.dropped_lines;
            drop(log);
            report.metrics = std::mem::take(&mut host.metrics);
            report.metrics_dropped = host.metrics_dropped;
        }
        let result = match outcome {
            Ok(result) => result,
            Err(e) => Err(classify(
                &module_ref,
                &limits,
                self.stack_limit_bytes(),
                e,
                &report.logs,
            )),
        };
        if let Err(failure) = &result
            && failure.poisons_instance()
        {
            self.live = None;
        }
        if self.module.policy().fresh_instance_per_call {
            self.live = None;
        }
        report.duration = started.elapsed();
        CallOutcome { result, report }
    }

    fn stack_limit_bytes(&self) -> u64 {
        self.module.inner.slot.stack_bytes
    }

    fn instantiate(&mut self) -> wasmtime::Result<Live> {
        let inner = &self.module.inner;
        let policy = &inner.policy;
        let state = HostState::new(self.env.clone(), &policy.limits, policy.clock);
        let mut store = Store::new(&inner.slot.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Instantiation runs start functions and data initialisers: give it a call's budget.
        arm_budget(&mut store, &policy.limits, inner.runtime.config.epoch_tick)?;
        let exports = match &inner.pre {
            Pre::Codec(pre) => Exports::Codec(pre.instantiate(&mut store)?),
            Pre::Router(pre) => Exports::Router(pre.instantiate(&mut store)?),
        };
        self.instantiations += 1;
        Ok(Live { store, exports })
    }
}

/// Gives the store one call's fuel and wall-clock deadline (in epoch ticks, rounded up, plus
/// one because the current tick may be almost over).
fn arm_budget(
    store: &mut Store<HostState>,
    limits: &sluice_types::Limits,
    epoch_tick: Duration,
) -> wasmtime::Result<()> {
    let tick_ms = epoch_tick.as_millis().max(1) as u64;
    store.set_epoch_deadline(limits.deadline_ms.div_ceil(tick_ms) + 1);
    store.set_fuel(limits.fuel_per_call)
}

/// `call` checks the world before calling, so the exports always match it; should they not,
/// the call fails as a host error instead of panicking.
fn mismatched_exports(module: &ModuleRef) -> GuestFailure {
    GuestFailure::Host {
        module: module.clone(),
        message: "the instance's exports do not match the module's world".into(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Randomness seed of a message: the same message always sees the same random bytes.
fn seed_of(message: &Uplink) -> u64 {
    fnv(message.device_id.as_bytes())
        ^ fnv(&message.payload).rotate_left(17)
        ^ message.received_at_ms
}

fn metadata_to_wit(metadata: &[(String, String)]) -> Vec<wit::MetadataEntry> {
    metadata
        .iter()
        .map(|(key, value)| wit::MetadataEntry {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

fn uplink_to_wit(message: &Uplink) -> wit::Uplink {
    wit::Uplink {
        device_id: message.device_id.clone(),
        port: message.port,
        received_at_ms: message.received_at_ms,
        payload: message.payload.clone(),
        metadata: metadata_to_wit(&message.metadata),
    }
}

fn document_to_wit(document: &Document) -> wit::Document {
    wit::Document {
        format: wit::DocumentFormat::Json,
        bytes: document.to_json_vec(),
    }
}

fn guest_error(module: &ModuleRef, error: wit::CodecError) -> GuestFailure {
    GuestFailure::GuestError {
        module: module.clone(),
        error: CodecError {
            kind: match error.kind {
                wit::CodecErrorKind::InvalidInput => CodecErrorKind::InvalidInput,
                wit::CodecErrorKind::Unsupported => CodecErrorKind::Unsupported,
                wit::CodecErrorKind::Internal => CodecErrorKind::Internal,
            },
            message: error.message,
        },
    }
}

fn parse_document(document: &wit::Document) -> Result<Document, DocumentError> {
    match document.format {
        wit::DocumentFormat::Json => Document::from_json_slice(&document.bytes),
        wit::DocumentFormat::Cbor => {
            let value: ciborium::Value = ciborium::from_reader(document.bytes.as_slice())
                .map_err(|e| DocumentError::Cbor(e.to_string()))?;
            Document::from_cbor_value(cbor_to_json(value, "$")?)
        }
    }
}

fn cbor_to_json(value: ciborium::Value, path: &str) -> Result<serde_json::Value, DocumentError> {
    use ciborium::Value as C;
    use serde_json::Value as J;
    Ok(match value {
        C::Null => J::Null,
        C::Bool(b) => J::Bool(b),
        C::Text(s) => J::String(s),
        C::Integer(i) => {
            let i = i128::from(i);
            if let Ok(v) = i64::try_from(i) {
                J::from(v)
            } else if let Ok(v) = u64::try_from(i) {
                J::from(v)
            } else {
                return Err(DocumentError::Cbor(format!(
                    "integer at {path} does not fit in 64 bits"
                )));
            }
        }
        C::Float(f) => serde_json::Number::from_f64(f)
            .map(J::Number)
            .ok_or_else(|| DocumentError::NonFinite(path.to_string()))?,
        C::Tag(_, inner) => cbor_to_json(*inner, path)?,
        C::Array(items) => J::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| cbor_to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        C::Map(entries) => {
            let mut map = serde_json::Map::with_capacity(entries.len());
            for (k, v) in entries {
                let C::Text(key) = k else {
                    return Err(DocumentError::Cbor(format!(
                        "map key at {path} is not a text string"
                    )));
                };
                let child = cbor_to_json(v, &format!("{path}.{key}"))?;
                map.insert(key, child);
            }
            J::Object(map)
        }
        C::Bytes(_) => {
            return Err(DocumentError::Cbor(format!(
                "byte string at {path} has no JSON equivalent"
            )));
        }
        _ => {
            return Err(DocumentError::Cbor(format!(
                "unsupported CBOR value at {path}"
            )));
        }
    })
}

fn document_from_wit(
    module: &ModuleRef,
    document: wit::Document,
    limit_bytes: u64,
) -> Result<Document, GuestFailure> {
    let size = document.bytes.len() as u64;
    if size > limit_bytes {
        return Err(GuestFailure::OutputTooLarge {
            module: module.clone(),
            size_bytes: size,
            limit_bytes,
        });
    }
    parse_document(&document).map_err(|e| GuestFailure::InvalidOutput {
        module: module.clone(),
        reason: e.to_string(),
    })
}

fn decisions_from_wit(
    module: &ModuleRef,
    decisions: Vec<wit::Decision>,
    limit_bytes: u64,
) -> Result<Vec<Decision>, GuestFailure> {
    let size: u64 = decisions
        .iter()
        .map(|d| {
            (d.output.len()
                + d.document.as_ref().map_or(0, |doc| doc.bytes.len())
                + d.drop_reason.as_ref().map_or(0, String::len)) as u64
        })
        .sum();
    if size > limit_bytes {
        return Err(GuestFailure::OutputTooLarge {
            module: module.clone(),
            size_bytes: size,
            limit_bytes,
        });
    }
    decisions
        .into_iter()
        .map(|d| {
            if d.output.is_empty() || d.output.len() > MAX_OUTPUT_NAME_BYTES {
                return Err(GuestFailure::InvalidOutput {
                    module: module.clone(),
                    reason: format!(
                        "output name must be 1 to {MAX_OUTPUT_NAME_BYTES} bytes, got {} bytes",
                        d.output.len()
                    ),
                });
            }
            let document = d
                .document
                .as_ref()
                .map(parse_document)
                .transpose()
                .map_err(|e| GuestFailure::InvalidOutput {
                    module: module.clone(),
                    reason: format!("document for output `{}`: {e}", d.output),
                })?;
            Ok(Decision {
                output: d.output,
                document,
                drop_reason: d.drop_reason,
            })
        })
        .collect()
}

/// The panic message a Rust guest printed on stderr before aborting, if any.
fn panic_message(logs: &[LogLine]) -> Option<String> {
    let at = logs
        .iter()
        .position(|l| l.level == LogLevel::Error && l.message.contains("panicked at"))?;
    let mut text = logs[at].message.trim().to_string();
    if let Some(next) = logs.get(at + 1)
        && next.level == LogLevel::Error
        && !next.message.starts_with("note:")
    {
        text.push(' ');
        text.push_str(next.message.trim());
    }
    Some(text)
}

/// Maps a wasmtime error from a call or an instantiation to the typed failure.
///
/// `stack_limit_bytes` is the stack limit in force: the module's stack class.
fn classify(
    module: &ModuleRef,
    limits: &sluice_types::Limits,
    stack_limit_bytes: u64,
    error: wasmtime::Error,
    logs: &[LogLine],
) -> GuestFailure {
    let module = module.clone();
    if let Some(hit) = error.downcast_ref::<LimitHit>() {
        return match hit {
            LimitHit::Memory => GuestFailure::MemoryLimit {
                module,
                limit_bytes: limits.max_memory_bytes,
            },
            LimitHit::Table => GuestFailure::TableLimit {
                module,
                limit_elements: limits.max_table_elements,
            },
        };
    }
    if let Some(failure) = error.downcast_ref::<HostFailure>() {
        return GuestFailure::Host {
            module,
            message: failure.0.clone(),
        };
    }
    let backtrace = error
        .downcast_ref::<WasmBacktrace>()
        .map(|bt| bt.to_string().trim().to_string())
        .filter(|bt| !bt.is_empty());
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return GuestFailure::Trap {
            module,
            kind: TrapKind::Exit,
            message: format!("the guest called exit({})", exit.0),
            backtrace,
        };
    }
    let Some(trap) = error.downcast_ref::<Trap>() else {
        let message = format!("{error:#}");
        // Errors raised while lifting or lowering values (bad pointers, invalid UTF-8) come
        // from the component model, not from a wasm trap.
        return GuestFailure::Trap {
            module,
            kind: TrapKind::ComponentModel,
            message,
            backtrace,
        };
    };
    let kind = match trap {
        Trap::OutOfFuel => {
            return GuestFailure::FuelExhausted {
                module,
                limit_fuel: limits.fuel_per_call,
            };
        }
        Trap::Interrupt => {
            return GuestFailure::DeadlineExceeded {
                module,
                limit_ms: limits.deadline_ms,
            };
        }
        Trap::StackOverflow => {
            return GuestFailure::StackOverflow {
                module,
                limit_bytes: stack_limit_bytes,
            };
        }
        Trap::UnreachableCodeReached => TrapKind::Unreachable,
        Trap::MemoryOutOfBounds | Trap::HeapMisaligned => TrapKind::MemoryOutOfBounds,
        Trap::TableOutOfBounds => TrapKind::TableOutOfBounds,
        Trap::IndirectCallToNull => TrapKind::IndirectCallToNull,
        Trap::BadSignature => TrapKind::BadSignature,
        Trap::IntegerOverflow => TrapKind::IntegerOverflow,
        Trap::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        Trap::BadConversionToInteger => TrapKind::BadConversionToInteger,
        Trap::CannotEnterComponent | Trap::CannotLeaveComponent | Trap::InvalidChar => {
            TrapKind::ComponentModel
        }
        _ => TrapKind::Other,
    };
    let mut message = trap.to_string();
    if let Some(panic) = panic_message(logs) {
        message = format!("{message}; guest {panic}");
    }
    GuestFailure::Trap {
        module,
        kind,
        message,
        backtrace,
    }
}
