//! The engine, the compile cache and loading modules.

use std::collections::HashMap;
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

pub(crate) struct RuntimeInner {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    pub config: RuntimeConfig,
    cache: Mutex<HashMap<[u8; 32], Component>>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// The sandbox: one wasmtime engine, its compile cache and its epoch ticker.
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

fn engine_config(config: &RuntimeConfig) -> Config {
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
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut cfg = Config::new();
    cfg.consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(usize::try_from(ceiling.max_stack_bytes).unwrap_or(usize::MAX))
        .wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    cfg
}

fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Runtime {
    /// Starts a runtime: builds the engine and the host linker and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        config
            .ceiling
            .validate(&config.ceiling)
            .map_err(|e| RuntimeError::Limits(e.to_string()))?;
        if config.epoch_tick.is_zero() {
            return Err(RuntimeError::Limits("epoch_tick must be > 0".into()));
        }
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::<HostState>::new(&engine);
        add_host_to_linker(&mut linker).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            let tick = config.epoch_tick;
            std::thread::Builder::new()
                .name("sluice-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RuntimeError::Engine(format!("cannot start epoch ticker: {e}")))?;
        }
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                config,
                cache: Mutex::new(HashMap::new()),
                stop_ticker,
            }),
        })
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Compiles `bytes` (or takes the compiled artifact from the cache) and describes it,
    /// without applying any policy: what `sluice inspect` shows.
    pub fn inspect(&self, bytes: &[u8]) -> Result<ComponentInfo, ValidationError> {
        let component = self.compile(bytes)?;
        let engine = &self.inner.engine;
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
        let info = self.inspect(bytes).map_err(rejected)?;
        for import in &info.imports {
            validate::check_import(import, &policy).map_err(rejected)?;
        }
        let component = self.compile(bytes).map_err(rejected)?;
        let pre = self.inner.linker.instantiate_pre(&component).map_err(|e| {
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
                runtime: self.inner.clone(),
            }),
        })
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, ValidationError> {
        validate::check_binary(bytes)?;
        let key = hash(bytes);
        if let Some(hit) = self.cache().get(&key) {
            return Ok(hit.clone());
        }
        let component =
            Component::new(&self.inner.engine, bytes).map_err(|e| ValidationError::Invalid {
                message: format!("{e:#}"),
            })?;
        self.cache().insert(key, component.clone());
        Ok(component)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Component>> {
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
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
