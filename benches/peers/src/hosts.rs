//! The contenders. Each [`Host`] loads the module (or script) of a workload's example and makes
//! [`Instance`]s of it; an instance runs one message per [`Instance::run`] call.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;
use sluice_runtime::{InstanceEnv, MemoryStateStore, Runtime, RuntimeConfig};
use sluice_types::{Decision, Document, ModulePolicy, ModuleRef};

use crate::workloads::{Example, Input, Workload};

/// What one message gave, in the contender's own form; converted to JSON only to check it.
pub enum Output {
    /// JSON bytes (native, raw wasm, Extism, JavaScript).
    Json(Vec<u8>),
    /// A checked document (Sluice codecs).
    Document(Document),
    /// Typed decisions (Sluice routers).
    Decisions(Vec<Decision>),
}

impl Output {
    /// The output as a JSON value.
    pub fn to_value(&self) -> Result<Value> {
        Ok(match self {
            Output::Json(bytes) => serde_json::from_slice(bytes).with_context(|| {
                format!("output is not JSON: {}", String::from_utf8_lossy(bytes))
            })?,
            Output::Document(document) => document.to_value(),
            Output::Decisions(decisions) => serde_json::to_value(decisions)?,
        })
    }
}

/// One instance of a workload's module: runs one message per call.
pub trait Instance {
    /// Runs one message.
    fn run(&mut self, input: &Input) -> Result<Output>;
}

/// A contender: loads a workload's module and makes instances of it.
pub trait Host {
    /// Row label.
    fn name(&self) -> &'static str;
    /// Loads (validates, compiles) the module of `workload`, once, before any instance.
    fn load(&mut self, workload: &Workload) -> Result<()>;
    /// A new instance of the loaded module of `workload`.
    fn instance(&self, workload: &Workload) -> Result<Box<dyn Instance>>;
    /// The size of what is loaded for `workload` (wasm module, component or script), in bytes.
    fn artifact_bytes(&self, workload: &Workload) -> Option<usize>;
    /// Whether loading compiles something (JavaScript is parsed by every new context).
    fn compiles(&self) -> bool {
        true
    }
    /// Whether the contender can run `workload` at all (JavaScript components are codecs
    /// only); a workload it cannot run is shown as n/a.
    fn supports(&self, _workload: &Workload) -> bool {
        true
    }
    /// What an instance is: `Kept` instances hold state between messages, `PerMessage` ones
    /// build everything for every message (cold start and per-instance memory do not apply),
    /// `Process` is a worker process.
    fn kind(&self) -> Kind {
        Kind::Kept
    }
}

/// How a contender's instances live (see [`Host::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Native code: no module, no instance.
    Native,
    /// An instance is kept and reused across messages.
    Kept,
    /// Everything is built for every message.
    PerMessage,
    /// A worker process.
    Process,
}

// ---------------------------------------------------------------------------------------------
// Native Rust: the example crates called directly.

/// The example crates called directly, their output serialized to JSON bytes as the guests do.
pub struct Native;

struct NativeInstance(Example);

impl Host for Native {
    fn name(&self) -> &'static str {
        "native Rust"
    }
    fn load(&mut self, _: &Workload) -> Result<()> {
        Ok(())
    }
    fn instance(&self, workload: &Workload) -> Result<Box<dyn Instance>> {
        Ok(Box::new(NativeInstance(workload.example)))
    }
    fn artifact_bytes(&self, _: &Workload) -> Option<usize> {
        None
    }
    fn compiles(&self) -> bool {
        false
    }
    fn kind(&self) -> Kind {
        Kind::Native
    }
}

impl Instance for NativeInstance {
    fn run(&mut self, input: &Input) -> Result<Output> {
        let json = match self.0 {
            Example::CayenneLpp => guest_glue::document_json(cayenne_lpp::decode(&input.wire)),
            Example::Bitpacked => guest_glue::document_json(bitpacked::decode(&input.wire)),
            Example::ThresholdRouter => guest_glue::decisions_json(threshold_router::route(
                &input.sdk_uplink,
                &input.decoded,
                &threshold_router::Thresholds::default(),
            )),
        };
        json.map(Output::Json).map_err(|e| anyhow!(e))
    }
}

// ---------------------------------------------------------------------------------------------
// Bare wasmtime 48: a core module behind a two-function ABI, no limits at all.

/// Paths of the peer guests, built by `build.rs`.
mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

fn guest_path(prefix: &str, example: Example) -> &'static str {
    match (prefix, example) {
        ("raw", Example::CayenneLpp) => guests::RAW_CAYENNE_LPP,
        ("raw", Example::Bitpacked) => guests::RAW_BITPACKED,
        ("raw", Example::ThresholdRouter) => guests::RAW_THRESHOLD_ROUTER,
        (_, Example::CayenneLpp) => guests::EXTISM_CAYENNE_LPP,
        (_, Example::Bitpacked) => guests::EXTISM_BITPACKED,
        (_, Example::ThresholdRouter) => guests::EXTISM_THRESHOLD_ROUTER,
    }
}

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(Path::new(path)).with_context(|| format!("cannot read {path}"))
}

/// wasmtime 48 with a hand-written host: the floor for any wasm sandbox. Pooling allocator and
/// `InstancePre`, as Sluice; no fuel, no epoch deadline, no output checks.
pub struct RawWasmtime {
    engine: wasmtime::Engine,
    loaded: BTreeMap<&'static str, (wasmtime::InstancePre<()>, usize)>,
}

impl RawWasmtime {
    /// An engine with a pool large enough for the per-instance memory measurement.
    pub fn new(max_instances: u32) -> Result<Self> {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_core_instances(max_instances)
            .total_memories(max_instances)
            .total_tables(max_instances)
            .max_memory_size(64 << 20)
            // As sluice-runtime: keep the first pages of a slot resident between instances and
            // reset only the dirtied ones, so this floor is not slower to instantiate.
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = wasmtime::Config::new();
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config).map_err(|e| anyhow!("{e:#}"))?;
        Ok(Self {
            engine,
            loaded: BTreeMap::new(),
        })
    }
}

struct RawInstance {
    store: wasmtime::Store<()>,
    memory: wasmtime::Memory,
    input: wasmtime::TypedFunc<u32, u32>,
    call: wasmtime::TypedFunc<u32, u64>,
}

/// Bit 63 of the raw ABI's `call` result: the output is an error message.
const RAW_ERROR_BIT: u64 = 1 << 63;

impl Host for RawWasmtime {
    fn name(&self) -> &'static str {
        "bare wasmtime 48, core module"
    }
    fn load(&mut self, workload: &Workload) -> Result<()> {
        let bytes = read(guest_path("raw", workload.example))?;
        let module = wasmtime::Module::new(&self.engine, &bytes).map_err(|e| anyhow!("{e:#}"))?;
        let mut linker = wasmtime::Linker::new(&self.engine);
        // The example crate also carries its Sluice component exports, whose config and
        // metrics imports the raw entry points never call.
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(|e| anyhow!("{e:#}"))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| anyhow!("{e:#}"))?;
        self.loaded
            .insert(workload.example.name(), (pre, bytes.len()));
        Ok(())
    }
    fn instance(&self, workload: &Workload) -> Result<Box<dyn Instance>> {
        let (pre, _) = self
            .loaded
            .get(workload.example.name())
            .context("module not loaded")?;
        let mut store = wasmtime::Store::new(&self.engine, ());
        let instance = pre.instantiate(&mut store).map_err(|e| anyhow!("{e:#}"))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .context("the guest exports no memory")?;
        let input = instance
            .get_typed_func(&mut store, "input")
            .map_err(|e| anyhow!("{e:#}"))?;
        let call = instance
            .get_typed_func(&mut store, "call")
            .map_err(|e| anyhow!("{e:#}"))?;
        Ok(Box::new(RawInstance {
            store,
            memory,
            input,
            call,
        }))
    }
    fn artifact_bytes(&self, workload: &Workload) -> Option<usize> {
        self.loaded.get(workload.example.name()).map(|(_, n)| *n)
    }
}

impl Instance for RawInstance {
    fn run(&mut self, input: &Input) -> Result<Output> {
        let len = u32::try_from(input.wire.len())?;
        let at = self
            .input
            .call(&mut self.store, len)
            .map_err(|e| anyhow!("{e:#}"))?;
        self.memory
            .write(&mut self.store, at as usize, &input.wire)
            .map_err(|e| anyhow!("{e:#}"))?;
        let packed = self
            .call
            .call(&mut self.store, len)
            .map_err(|e| anyhow!("{e:#}"))?;
        let start = ((packed & !RAW_ERROR_BIT) >> 32) as usize;
        let end = start + (packed & 0xFFFF_FFFF) as usize;
        let bytes = self
            .memory
            .data(&self.store)
            .get(start..end)
            .context("the guest's output is outside its memory")?
            .to_vec();
        if packed & RAW_ERROR_BIT != 0 {
            bail!("guest error: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(Output::Json(bytes))
    }
}

// ---------------------------------------------------------------------------------------------
// Extism 1.30 (wasmtime 43): the same logic as an extism-pdk plug-in.

/// Extism: plug-ins compiled once (`CompiledPlugin`), a `Plugin` per instance. No WASI, no
/// timeout, no fuel (Extism's defaults); the compile cache is off.
#[derive(Default)]
pub struct Extism {
    loaded: BTreeMap<&'static str, (extism::CompiledPlugin, usize)>,
}

struct ExtismInstance(extism::Plugin);

/// Host functions for the imports of `bytes` outside Extism's own (the example crate's Sluice
/// component imports, never called by the plug-in's entry point): each fails if called.
fn extism_stubs(bytes: &[u8]) -> Result<Vec<extism::Function>> {
    // Read the imports with wasmtime 48 (a throwaway compile; wasmparser is not a dependency).
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::new(&engine, bytes).map_err(|e| anyhow!("{e:#}"))?;
    let mut stubs = Vec::new();
    for import in module.imports() {
        if import.module() == "extism:host/env" {
            continue;
        }
        let wasmtime::ExternType::Func(ty) = import.ty() else {
            bail!("unexpected non-function import {}", import.name());
        };
        let convert = |t: wasmtime::ValType| match t {
            wasmtime::ValType::I32 => Ok(extism::ValType::I32),
            wasmtime::ValType::I64 => Ok(extism::ValType::I64),
            wasmtime::ValType::F32 => Ok(extism::ValType::F32),
            wasmtime::ValType::F64 => Ok(extism::ValType::F64),
            other => Err(anyhow!("unexpected import type {other}")),
        };
        let params = ty.params().map(convert).collect::<Result<Vec<_>>>()?;
        let results = ty.results().map(convert).collect::<Result<Vec<_>>>()?;
        let name = format!("{}#{}", import.module(), import.name());
        stubs.push(
            extism::Function::new(
                import.name(),
                params,
                results,
                extism::UserData::new(()),
                move |_, _, _, _| Err(anyhow!("{name} is not available in this benchmark")),
            )
            .with_namespace(import.module()),
        );
    }
    Ok(stubs)
}

impl Host for Extism {
    fn name(&self) -> &'static str {
        "Extism 1.30 plug-in"
    }
    fn load(&mut self, workload: &Workload) -> Result<()> {
        let bytes = read(guest_path("extism", workload.example))?;
        let stubs = extism_stubs(&bytes)?;
        let compiled =
            extism::PluginBuilder::new(extism::Manifest::new([extism::Wasm::data(bytes.clone())]))
                .with_wasi(false)
                .with_cache_disabled()
                .with_functions(stubs)
                .compile()?;
        self.loaded
            .insert(workload.example.name(), (compiled, bytes.len()));
        Ok(())
    }
    fn instance(&self, workload: &Workload) -> Result<Box<dyn Instance>> {
        let (compiled, _) = self
            .loaded
            .get(workload.example.name())
            .context("plug-in not loaded")?;
        Ok(Box::new(ExtismInstance(extism::Plugin::new_from_compiled(
            compiled,
        )?)))
    }
    fn artifact_bytes(&self, workload: &Workload) -> Option<usize> {
        self.loaded.get(workload.example.name()).map(|(_, n)| *n)
    }
}

impl Instance for ExtismInstance {
    fn run(&mut self, input: &Input) -> Result<Output> {
        let output: &[u8] = self.0.call("call", input.wire.as_slice())?;
        Ok(Output::Json(output.to_vec()))
    }
}

// ---------------------------------------------------------------------------------------------
// QuickJS (rquickjs, native): the same logic as a TTN / TS013 JavaScript codec.

/// The JavaScript of each example (`js/`).
fn script(example: Example) -> &'static str {
    match example {
        Example::CayenneLpp => include_str!("../js/cayenne-lpp.js"),
        Example::Bitpacked => include_str!("../js/bitpacked.js"),
        Example::ThresholdRouter => include_str!("../js/threshold-router.js"),
    }
}

/// QuickJS through rquickjs, natively on the host. `per_message`: a new `Runtime` and
/// `Context` for every message, the script evaluated each time (what ChirpStack does); else
/// one context per instance, the script evaluated once.
pub struct QuickJs {
    /// Whether every message gets a new runtime and context.
    pub per_message: bool,
}

struct JsContext {
    // The runtime must outlive its context.
    context: rquickjs::Context,
    _runtime: rquickjs::Runtime,
}

impl JsContext {
    fn new(example: Example) -> Result<Self> {
        let runtime = rquickjs::Runtime::new()?;
        let context = rquickjs::Context::full(&runtime)?;
        context.with(|ctx| ctx.eval::<(), _>(script(example)))?;
        Ok(Self {
            context,
            _runtime: runtime,
        })
    }

    /// Calls `decodeUplink({bytes, fPort})` (codecs) or `route(input)` (routers) and returns
    /// `JSON.stringify` of its `data` (codecs) or `decisions` (routers).
    fn run(&self, example: Example, input: &Input) -> Result<Output> {
        self.context.with(|ctx| -> Result<Output> {
            let globals = ctx.globals();
            let (result, field): (rquickjs::Object, &str) = if example.is_router() {
                let route: rquickjs::Function = globals.get("route")?;
                let message = ctx.json_parse(input.wire.as_slice())?;
                (route.call((message,))?, "decisions")
            } else {
                let decode: rquickjs::Function = globals.get("decodeUplink")?;
                let message = rquickjs::Object::new(ctx.clone())?;
                message.set("bytes", input.wire.as_slice())?;
                message.set("fPort", input.uplink.port)?;
                (decode.call((message,))?, "data")
            };
            let value: rquickjs::Value = result.get(field)?;
            if value.is_undefined() {
                let errors = ctx.json_stringify(result.get::<_, rquickjs::Value>("errors")?)?;
                let errors = match errors {
                    Some(text) => text.to_string()?,
                    None => String::new(),
                };
                bail!("script error: {errors}");
            }
            let json = ctx
                .json_stringify(value)?
                .context("the result does not stringify")?;
            Ok(Output::Json(json.to_string()?.into_bytes()))
        })
    }
}

struct JsReused {
    context: JsContext,
    example: Example,
}

struct JsPerMessage(Example);

impl Host for QuickJs {
    fn name(&self) -> &'static str {
        if self.per_message {
            "QuickJS (rquickjs), new runtime + context per message"
        } else {
            "QuickJS (rquickjs), reused context"
        }
    }
    fn load(&mut self, _: &Workload) -> Result<()> {
        Ok(())
    }
    fn instance(&self, workload: &Workload) -> Result<Box<dyn Instance>> {
        Ok(if self.per_message {
            Box::new(JsPerMessage(workload.example))
        } else {
            Box::new(JsReused {
                context: JsContext::new(workload.example)?,
                example: workload.example,
            })
        })
    }
    fn artifact_bytes(&self, workload: &Workload) -> Option<usize> {
        Some(script(workload.example).len())
    }
    fn compiles(&self) -> bool {
        false
    }
    fn kind(&self) -> Kind {
        if self.per_message {
            Kind::PerMessage
        } else {
            Kind::Kept
        }
    }
}

impl Instance for JsReused {
    fn run(&mut self, input: &Input) -> Result<Output> {
        self.context.run(self.example, input)
    }
}

impl Instance for JsPerMessage {
    fn run(&mut self, input: &Input) -> Result<Output> {
        JsContext::new(self.0)?.run(self.0, input)
    }
}

// ---------------------------------------------------------------------------------------------
// Sluice in process: sluice-runtime, as the service runs it.

/// The production component of each example (built by `sluice-test-programs`).
fn component_path(example: Example) -> &'static str {
    match example {
        Example::CayenneLpp => sluice_test_programs::CAYENNE_LPP,
        Example::Bitpacked => sluice_test_programs::BITPACKED,
        Example::ThresholdRouter => sluice_test_programs::THRESHOLD_ROUTER,
    }
}

/// Sluice in process: the runtime with its defaults (fuel, deadline, memory and output limits,
/// host-checked documents), one instance reused across messages, or (`fresh`) a fresh
/// instance for every message. The component is the Rust example's, or (`javascript`) the
/// JavaScript port the QuickJS contenders run, built by `sluice_js::build_js_codec` (a fresh
/// instance then starts from the snapshot; codecs only, `sluice-js` builds no routers).
pub struct SluiceInProcess {
    runtime: Runtime,
    fresh: bool,
    /// The JavaScript codecs' components, built once when the contender starts (a build is
    /// per script version, like a compile, and is not part of the load figure); `None` for
    /// the Rust components.
    javascript: Option<BTreeMap<&'static str, Vec<u8>>>,
    loaded: BTreeMap<&'static str, (sluice_runtime::Module, usize)>,
}

impl SluiceInProcess {
    /// The Rust components; a runtime with `max_instances` pool slots and no disk cache (every
    /// load compiles).
    pub fn new(fresh: bool, max_instances: u32) -> Result<Self> {
        Self::with_components(fresh, max_instances, None)
    }

    /// The JavaScript codecs, built now, on the same runtime settings as [`Self::new`].
    pub fn javascript(fresh: bool, max_instances: u32) -> Result<Self> {
        let mut built = BTreeMap::new();
        for example in [Example::CayenneLpp, Example::Bitpacked] {
            let component = sluice_js::build_js_codec(script(example))
                .with_context(|| format!("building the JavaScript {}", example.name()))?;
            built.insert(example.name(), component);
        }
        Self::with_components(fresh, max_instances, Some(built))
    }

    fn with_components(
        fresh: bool,
        max_instances: u32,
        javascript: Option<BTreeMap<&'static str, Vec<u8>>>,
    ) -> Result<Self> {
        let runtime = Runtime::new(RuntimeConfig {
            max_instances,
            cache_dir: None,
            ..RuntimeConfig::default()
        })?;
        Ok(Self {
            runtime,
            fresh,
            javascript,
            loaded: BTreeMap::new(),
        })
    }
}

struct SluiceInstance(sluice_runtime::Instance);

impl Host for SluiceInProcess {
    fn name(&self) -> &'static str {
        match (self.javascript.is_some(), self.fresh) {
            (false, false) => "Sluice in process, reused instance",
            (false, true) => "Sluice in process, fresh instance per message",
            (true, false) => "Sluice, JavaScript codec, reused instance",
            (true, true) => "Sluice, JavaScript codec, fresh instance per message",
        }
    }
    fn load(&mut self, workload: &Workload) -> Result<()> {
        let bytes: std::borrow::Cow<'_, [u8]> = match &self.javascript {
            None => read(component_path(workload.example))?.into(),
            Some(built) => built
                .get(workload.example.name())
                .with_context(|| format!("no JavaScript component for {}", workload.name))?
                .into(),
        };
        let tenant = match (self.javascript.is_some(), self.fresh) {
            (false, false) => "bench",
            (false, true) => "bench-fresh",
            (true, false) => "bench-js",
            (true, true) => "bench-js-fresh",
        };
        let module = self.runtime.load(
            ModuleRef::new(workload.example.name(), tenant),
            &bytes,
            ModulePolicy {
                fresh_instance_per_call: self.fresh,
                ..ModulePolicy::default()
            },
        )?;
        self.loaded
            .insert(workload.example.name(), (module, bytes.len()));
        Ok(())
    }
    fn instance(&self, workload: &Workload) -> Result<Box<dyn Instance>> {
        let (module, _) = self
            .loaded
            .get(workload.example.name())
            .context("module not loaded")?;
        Ok(Box::new(SluiceInstance(
            module.instantiate(InstanceEnv::default()),
        )))
    }
    fn artifact_bytes(&self, workload: &Workload) -> Option<usize> {
        self.loaded.get(workload.example.name()).map(|(_, n)| *n)
    }
    fn supports(&self, workload: &Workload) -> bool {
        self.javascript.is_none() || !workload.example.is_router()
    }
    fn kind(&self) -> Kind {
        if self.fresh {
            Kind::PerMessage
        } else {
            Kind::Kept
        }
    }
}

impl Instance for SluiceInstance {
    fn run(&mut self, input: &Input) -> Result<Output> {
        match &input.document {
            Some(document) => self
                .0
                .route(&input.uplink, document)
                .result
                .map(Output::Decisions)
                .map_err(|e| anyhow!("{e}")),
            None => self
                .0
                .decode(&input.uplink)
                .result
                .map(Output::Document)
                .map_err(|e| anyhow!("{e}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sluice through a worker process: the tenant's process isolation (`--isolation process`).

/// Sluice through the tenant's worker process (sluice-worker: seccomp, landlock, rlimits), the
/// benchmark binary itself as the worker executable. Every call is a request over the Unix
/// socket; the worker runs it on a reused instance, as in process.
pub struct SluiceWorker {
    handle: Rc<RefCell<sluice_worker::WorkerHandle>>,
    slots: BTreeMap<&'static str, (u64, usize)>,
}

/// The argument that makes the benchmark binary run as a worker.
pub const WORKER_ARG: &str = "--sluice-worker";

/// Starts a worker process for `tenant`.
pub fn spawn_worker(tenant: &str) -> Result<sluice_worker::WorkerHandle> {
    let exe = std::env::current_exe().context("cannot find the benchmark executable")?;
    let options = sluice_worker::SpawnOptions::new(exe, sluice_worker::WorkerOptions::new(tenant))
        .with_args([WORKER_ARG]);
    Ok(sluice_worker::WorkerHandle::spawn(options)?)
}

/// Loads `workload`'s component into `slot` of `worker`.
pub fn load_in_worker(
    worker: &mut sluice_worker::WorkerHandle,
    slot: u64,
    workload: &Workload,
) -> Result<usize> {
    let bytes = read(component_path(workload.example))?;
    worker
        .load(
            slot,
            ModuleRef::new(workload.example.name(), "bench-worker"),
            &bytes,
            ModulePolicy::default(),
            BTreeMap::new(),
            Arc::new(MemoryStateStore::new()),
        )
        .map_err(|e| anyhow!("{e}"))?;
    Ok(bytes.len())
}

impl SluiceWorker {
    /// One worker process for every workload (one slot each).
    pub fn new() -> Result<Self> {
        Ok(Self {
            handle: Rc::new(RefCell::new(spawn_worker("bench-worker")?)),
            slots: BTreeMap::new(),
        })
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.handle.borrow().pid()
    }
}

struct WorkerInstance {
    handle: Rc<RefCell<sluice_worker::WorkerHandle>>,
    slot: u64,
}

impl Host for SluiceWorker {
    fn name(&self) -> &'static str {
        "Sluice through the tenant's worker process"
    }
    fn load(&mut self, workload: &Workload) -> Result<()> {
        let slot = self.slots.len() as u64 + 1;
        let bytes = load_in_worker(&mut self.handle.borrow_mut(), slot, workload)?;
        self.slots.insert(workload.example.name(), (slot, bytes));
        Ok(())
    }
    fn instance(&self, workload: &Workload) -> Result<Box<dyn Instance>> {
        let (slot, _) = self
            .slots
            .get(workload.example.name())
            .context("module not loaded")?;
        Ok(Box::new(WorkerInstance {
            handle: self.handle.clone(),
            slot: *slot,
        }))
    }
    fn artifact_bytes(&self, workload: &Workload) -> Option<usize> {
        self.slots.get(workload.example.name()).map(|(_, n)| *n)
    }
    fn kind(&self) -> Kind {
        Kind::Process
    }
}

impl Instance for WorkerInstance {
    fn run(&mut self, input: &Input) -> Result<Output> {
        let mut handle = self.handle.borrow_mut();
        match &input.document {
            Some(document) => handle
                .route(self.slot, &input.uplink, document)
                .result
                .map(Output::Decisions)
                .map_err(|e| anyhow!("{e}")),
            None => handle
                .decode(self.slot, &input.uplink)
                .result
                .map(Output::Document)
                .map_err(|e| anyhow!("{e}")),
        }
    }
}

/// Resident set size of process `pid` (`self` for this one), from `/proc/<pid>/status`.
pub fn rss_bytes(pid: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")?;
    Ok(kib * 1024)
}
