//! The engine, the compile cache and loading modules.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sluice_types::{GuestFailure, Limits, ModulePolicy, ModuleRef, ValidationError, World};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings;
use crate::host::{HostState, InstanceEnv};
use crate::instance::Instance;
use crate::validate::{self, ComponentInfo};

/// How the runtime is set up. Limits of individual modules may tighten `ceiling`, never
/// exceed it.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The largest limits any module may have; also the default limits of a module.
    pub ceiling: Limits,
    /// Instances that may be alive at once (pooling allocator slots).
    pub max_instances: u32,
    /// How often the epoch ticks; deadlines are enforced at this granularity.
    pub epoch_tick: Duration,
    /// Directory for compiled artifacts, reused across processes. `None` keeps the cache in
    /// memory only.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            ceiling: Limits {
                fuel_per_call: 1_000_000_000,
                deadline_ms: 10_000,
                max_memory_bytes: 64 * 1024 * 1024,
                max_table_elements: 100_000,
                max_stack_bytes: 1024 * 1024,
                max_output_bytes: 1024 * 1024,
                max_log_lines_per_call: 1_000,
                max_log_bytes_per_call: 256 * 1024,
                max_state_bytes_per_device: 1024 * 1024,
            },
            max_instances: 256,
            epoch_tick: Duration::from_millis(2),
            cache_dir: None,
        }
    }
}

/// Why the runtime itself could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime refused the configuration.
    #[error("cannot configure the wasm engine: {0}")]
    Engine(String),
    /// The ceiling limits are unusable.
    #[error("invalid runtime limits: {0}")]
    Limits(String),
}

/// Smallest stack class: module stack limits are rounded up to a power of two from here.
const MIN_STACK_CLASS_BYTES: u64 = 64 * 1024;

/// One wasmtime engine, its linker and its compile cache.
///
/// wasmtime applies `max_wasm_stack` to a whole engine, so the runtime keeps one engine per
/// stack class (a power of two between 64 KiB and the ceiling) and compiles each module in the
/// engine of its `max_stack_bytes`. There are at most a handful of classes.
pub(crate) struct EngineSlot {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    /// The stack limit this engine enforces.
    pub stack_bytes: u64,
    cache: Mutex<HashMap<[u8; 32], Component>>,
}

pub(crate) struct RuntimeInner {
    pub config: RuntimeConfig,
    slots: Mutex<BTreeMap<u64, Arc<EngineSlot>>>,
    /// Engines the epoch ticker advances.
    ticked: Arc<Mutex<Vec<Engine>>>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// The sandbox: wasmtime engines, their compile caches and the epoch ticker.
///
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn engine_config(config: &RuntimeConfig, stack_bytes: u64) -> Config {
    let ceiling = &config.ceiling;
    let slots = config.max_instances;
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(4))
        .total_memories(slots.saturating_mul(2))
        .total_tables(slots.saturating_mul(4))
        .max_memory_size(usize::try_from(ceiling.max_memory_bytes).unwrap_or(usize::MAX))
        .table_elements(usize::try_from(ceiling.max_table_elements).unwrap_or(usize::MAX))
        // Keep the first pages of each slot resident between instances: a fresh instance
        // then starts without page faults on the memory it touched last time. Where the
        // kernel has PAGEMAP_SCAN (Linux 6.7+), only the pages actually dirtied are reset,
        // instead of a memset of the whole resident region.
        .linear_memory_keep_resident(2 * 1024 * 1024)
        .table_keep_resident(64 * 1024)
        .pagemap_scan(wasmtime::Enabled::Auto)
        // Calls are synchronous: no fiber stacks. The default pool would map 1,000 async
        // stacks of 2 MiB read-write up front (2 GiB of writable memory per engine, which is
        // what a worker process's RLIMIT_DATA counts).
        .total_stacks(0);
    let mut cfg = Config::new();
    cfg.consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(usize::try_from(stack_bytes).unwrap_or(usize::MAX))
        .wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    cfg
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The stack class of a module's stack limit: the next power of two, at least 64 KiB, at most
/// the ceiling.
fn stack_class(requested_bytes: u64, ceiling_bytes: u64) -> u64 {
    requested_bytes
        .max(MIN_STACK_CLASS_BYTES)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
        .min(ceiling_bytes)
}

impl Runtime {
    /// Starts a runtime: checks the configuration, builds the engine of the ceiling's stack
    /// class and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        config
            .ceiling
            .validate(&config.ceiling)
            .map_err(|e| RuntimeError::Limits(e.to_string()))?;
        if config.epoch_tick.is_zero() {
            return Err(RuntimeError::Limits("epoch_tick must be > 0".into()));
        }
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticked: Arc<Mutex<Vec<Engine>>> = Arc::default();
        {
            let engines = ticked.clone();
            let stop = stop_ticker.clone();
            let tick = config.epoch_tick;
            std::thread::Builder::new()
                .name("sluice-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        for engine in engines.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                            engine.increment_epoch();
                        }
                    }
                })
                .map_err(|e| RuntimeError::Engine(format!("cannot start epoch ticker: {e}")))?;
        }
        let runtime = Self {
            inner: Arc::new(RuntimeInner {
                config,
                slots: Mutex::new(BTreeMap::new()),
                ticked,
                stop_ticker,
            }),
        };
        // Build the ceiling's engine now, so a bad configuration fails here.
        runtime.slot(runtime.inner.config.ceiling.max_stack_bytes)?;
        Ok(runtime)
    }

    /// The engine for a stack limit, created on first use.
    fn slot(&self, stack_bytes: u64) -> Result<Arc<EngineSlot>, RuntimeError> {
        let class = stack_class(stack_bytes, self.inner.config.ceiling.max_stack_bytes);
        let mut slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(&class) {
            return Ok(slot.clone());
        }
        let engine = Engine::new(&engine_config(&self.inner.config, class))
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::<HostState>::new(&engine);
        add_host_to_linker(&mut linker).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        self.inner
            .ticked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(engine.clone());
        let slot = Arc::new(EngineSlot {
            engine,
            linker,
            stack_bytes: class,
            cache: Mutex::new(HashMap::new()),
        });
        slots.insert(class, slot.clone());
        Ok(slot)
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Compiles `bytes` (or takes the compiled artifact from the cache) and describes it,
    /// without applying any policy: what `sluice inspect` shows.
    pub fn inspect(&self, bytes: &[u8]) -> Result<ComponentInfo, ValidationError> {
        let slot = self
            .slot(self.inner.config.ceiling.max_stack_bytes)
            .map_err(|e| ValidationError::Invalid {
                message: e.to_string(),
            })?;
        let component = self.compile(&slot, bytes)?;
        Self::describe(&slot, &component, bytes)
    }

    fn describe(
        slot: &EngineSlot,
        component: &Component,
        bytes: &[u8],
    ) -> Result<ComponentInfo, ValidationError> {
        let engine = &slot.engine;
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        let world = validate::world_of(&exports)?;
        Ok(ComponentInfo {
            world,
            imports,
            exports,
            size_bytes: bytes.len() as u64,
            sha256: hex::encode(hash(bytes)),
        })
    }

    /// Validates, compiles and pre-links a module under `policy`.
    ///
    /// Every refusal is [`GuestFailure::Rejected`] naming the problem: not wasm, a core
    /// module, an invalid binary, an unknown world, an import outside the contract or not
    /// granted, or limits above the runtime's ceiling.
    pub fn load(
        &self,
        module: ModuleRef,
        bytes: &[u8],
        policy: ModulePolicy,
    ) -> Result<Module, GuestFailure> {
        let rejected = |error: ValidationError| GuestFailure::Rejected {
            module: module.clone(),
            error,
        };
        policy
            .limits
            .validate(&self.inner.config.ceiling)
            .map_err(|e| rejected(ValidationError::Limits(e.to_string())))?;
        let slot = self
            .slot(policy.limits.max_stack_bytes)
            .map_err(|e| GuestFailure::Host {
                module: module.clone(),
                message: e.to_string(),
            })?;
        let component = self.compile(&slot, bytes).map_err(rejected)?;
        let info = Self::describe(&slot, &component, bytes).map_err(rejected)?;
        for import in &info.imports {
            validate::check_import(import, &policy).map_err(rejected)?;
        }
        let pre = slot.linker.instantiate_pre(&component).map_err(|e| {
            rejected(ValidationError::WrongContract {
                export: "(imports)".into(),
                world: info.world.to_string(),
                message: format!("{e:#}"),
            })
        })?;
        let pre = match info.world {
            World::Codec => bindings::codec::CodecPre::new(pre).map(Pre::Codec),
            World::Router => bindings::router::RouterPre::new(pre).map(Pre::Router),
        }
        .map_err(|e| {
            rejected(ValidationError::WrongContract {
                export: match info.world {
                    World::Codec => "decode-uplink/encode-downlink".into(),
                    World::Router => "route".into(),
                },
                world: info.world.to_string(),
                message: format!("{e:#}"),
            })
        })?;
        Ok(Module {
            inner: Arc::new(ModuleInner {
                module_ref: module,
                info,
                policy,
                pre,
                slot,
                runtime: self.inner.clone(),
            }),
        })
    }

    fn compile(&self, slot: &EngineSlot, bytes: &[u8]) -> Result<Component, ValidationError> {
        validate::check_binary(bytes)?;
        let key = hash(bytes);
        if let Some(hit) = slot.cache().get(&key) {
            return Ok(hit.clone());
        }
        let disk = self.inner.config.cache_dir.as_deref().map(|dir| DiskCache {
            dir,
            engine: &slot.engine,
            key,
        });
        let component = match disk.as_ref().and_then(DiskCache::load) {
            Some(component) => component,
            None => {
                let component =
                    Component::new(&slot.engine, bytes).map_err(|e| ValidationError::Invalid {
                        message: format!("{e:#}"),
                    })?;
                if let Some(disk) = &disk {
                    disk.store(&component);
                }
                component
            }
        };
        slot.cache().insert(key, component.clone());
        Ok(component)
    }
}

impl EngineSlot {
    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Component>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Compiled artifacts on disk, named by the component's hash and the engine's compatibility
/// hash, each with a SHA-256 sidecar that is checked before the artifact is loaded. A missing,
/// corrupt or incompatible entry is a miss, never an error: the component is compiled again.
///
/// The directory must be writable only by the user running Sluice: a loaded artifact is native
/// code.
struct DiskCache<'a> {
    dir: &'a std::path::Path,
    engine: &'a Engine,
    key: [u8; 32],
}

impl DiskCache<'_> {
    fn path(&self) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        self.dir.join(format!(
            "{}-{:016x}.cwasm",
            hex::encode(self.key),
            hasher.finish()
        ))
    }

    fn load(&self) -> Option<Component> {
        let path = self.path();
        let artifact = std::fs::read(&path).ok()?;
        let sidecar = std::fs::read_to_string(path.with_extension("sha256")).ok()?;
        if sidecar.trim() != hex::encode(hash(&artifact)) {
            tracing::warn!(path = %path.display(), "compiled artifact does not match its checksum; recompiling");
            return None;
        }
        // SAFETY: the artifact was produced by `Component::serialize` of an engine with the
        // same compatibility hash (it is in the file name; wasmtime checks it again), its
        // checksum matches what was written next to it, and the cache directory belongs to
        // the user running Sluice.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(self.engine, &artifact) };
        match component {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot load compiled artifact; recompiling");
                None
            }
        }
    }

    fn store(&self, component: &Component) {
        let result = (|| -> std::io::Result<()> {
            let artifact = component
                .serialize()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            std::fs::create_dir_all(self.dir)?;
            let path = self.path();
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, &artifact)?;
            std::fs::write(path.with_extension("sha256"), hex::encode(hash(&artifact)))?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write compiled artifact");
        }
    }
}

fn add_host_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    type Host = HasSelf<HostState>;
    bindings::types::add_to_linker::<HostState, Host>(linker, |s| s)?;
    bindings::log::add_to_linker::<HostState, Host>(linker, |s| s)?;
    bindings::config::add_to_linker::<HostState, Host>(linker, |s| s)?;
    bindings::state::add_to_linker::<HostState, Host>(linker, |s| s)?;
    bindings::clock::add_to_linker::<HostState, Host>(linker, |s| s)?;
    bindings::metrics::add_to_linker::<HostState, Host>(linker, |s| s)?;
    // Every WASI interface is linked, but a component only reaches the ones it imports, and
    // `validate::check_import` refuses the imports the module's policy does not grant. The
    // context behind them has no preopened directory, no environment, no network.
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    Ok(())
}

pub(crate) enum Pre {
    Codec(bindings::codec::CodecPre<HostState>),
    Router(bindings::router::RouterPre<HostState>),
}

pub(crate) struct ModuleInner {
    pub module_ref: ModuleRef,
    pub info: ComponentInfo,
    pub policy: ModulePolicy,
    pub pre: Pre,
    /// The engine the module is compiled for.
    pub slot: Arc<EngineSlot>,
    /// Keeps the epoch ticker alive while the module is.
    pub runtime: Arc<RuntimeInner>,
}

/// A validated, compiled and pre-linked module. Cheap to clone.
#[derive(Clone)]
pub struct Module {
    pub(crate) inner: Arc<ModuleInner>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("module", &self.inner.module_ref)
            .field("world", &self.inner.info.world)
            .finish_non_exhaustive()
    }
}

impl Module {
    /// The module's id and version.
    pub fn module_ref(&self) -> &ModuleRef {
        &self.inner.module_ref
    }

    /// The world it implements.
    pub fn world(&self) -> World {
        self.inner.info.world
    }

    /// What the component is.
    pub fn info(&self) -> &ComponentInfo {
        &self.inner.info
    }

    /// The policy it runs under.
    pub fn policy(&self) -> &ModulePolicy {
        &self.inner.policy
    }

    /// An instance bound to `env` (binding config and state store). The wasm instance is
    /// created on the first call.
    pub fn instantiate(&self, env: InstanceEnv) -> Instance {
        Instance::new(self.clone(), env)
    }
}
