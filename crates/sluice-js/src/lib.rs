//! JavaScript codecs for Sluice.
//!
//! [`build_js_codec`] turns a TS013-style codec script (`decodeUplink(input)` /
//! `encodeDownlink(input)`, or the legacy `Decoder(bytes, port)` / `Encoder(object, port)`)
//! into an ordinary `sluice:codec` component, which the runtime validates, loads and runs
//! under every limit like any other module.
//!
//! The component is the QuickJS engine of `js/engine/` (a core module built by this crate's
//! build script) pre-initialised with the script: the builder instantiates the engine, lets it
//! evaluate the script once, snapshots its memory and globals with Wizer, and wraps the
//! snapshot into a component with `wit-component`. Every instance of the result starts with the
//! script already evaluated. A script that does not parse is refused here, with the line and
//! column of the error.
//!
//! ```ignore
//! let component = sluice_js::build_js_codec(r#"
//!     function decodeUplink(input) {
//!         return { data: { temperature: (input.bytes[0] << 8 | input.bytes[1]) / 10 } };
//!     }
//! "#)?;
//! let module = runtime.load(ModuleRef::new("thermo-js", "1"), &component, policy)?;
//! ```

use std::future::Future;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use wasmtime::{
    Caller, Config, Engine, Extern, Instance, Linker, Module, ResourceLimiter, Store, Trap,
};
use wasmtime_wizer::{InstanceState, SnapshotVal, ValType, Wizer};

/// The engine guest, built by `build.rs` from `js/engine/`.
static ENGINE_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sluice_js_engine.wasm"));

/// The engine's export that evaluates a script (removed from the snapshot).
const INIT_EXPORT: &str = "sluice_js_init";

/// Why a script could not become a codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsBuildError {
    /// The script is larger than [`JsBuildOptions::max_script_bytes`].
    #[error("the script is {size_bytes} bytes, over the limit of {limit_bytes} bytes")]
    ScriptTooLarge {
        /// Size of the script.
        size_bytes: u64,
        /// The limit.
        limit_bytes: u64,
    },
    /// The script does not parse.
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error (0 when QuickJS gave none).
        line: u32,
        /// 1-based column of the error (0 when QuickJS gave none).
        column: u32,
        /// QuickJS's message, e.g. `unexpected token in expression: '}'`.
        message: String,
    },
    /// The script's top-level code threw.
    #[error("the script threw while it was evaluated{}: {message}", position(*line, *column))]
    Exception {
        /// What was thrown.
        message: String,
        /// 1-based line where it was thrown, when known.
        line: Option<u32>,
        /// 1-based column where it was thrown, when known.
        column: Option<u32>,
    },
    /// The script defines neither `decodeUplink` nor `Decoder`.
    #[error(
        "the script defines no decodeUplink(input) or Decoder(bytes, port) function; a codec \
         needs one of them"
    )]
    NoDecoder,
    /// Evaluating the script's top-level code used all of its fuel (an endless loop?).
    #[error("evaluating the script used all of its fuel (limit {limit_fuel} units)")]
    InitFuelExhausted {
        /// The fuel given to the evaluation.
        limit_fuel: u64,
    },
    /// Evaluating the script's top-level code needed more memory than allowed.
    #[error("evaluating the script needed more than {limit_bytes} bytes of memory")]
    InitMemoryLimit {
        /// The memory limit of the evaluation.
        limit_bytes: u64,
    },
    /// The engine trapped while it evaluated the script (e.g. its stack overflowed).
    #[error("the JavaScript engine trapped while it evaluated the script: {message}")]
    InitTrap {
        /// The trap.
        message: String,
    },
    /// The builder itself failed: compiling the engine, snapshotting or encoding the
    /// component. Not the script's fault.
    #[error("cannot build the JavaScript codec: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
}

fn position(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" at line {line}, column {column}"),
        (Some(line), None) => format!(" at line {line}"),
        _ => String::new(),
    }
}

fn internal(what: &str) -> impl FnOnce(wasmtime::Error) -> JsBuildError + '_ {
    move |e| JsBuildError::Internal {
        message: format!("{what}: {e:#}"),
    }
}

/// Limits of the build itself: evaluating a script's top-level code is untrusted work too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsBuildOptions {
    /// Largest script accepted, in bytes.
    pub max_script_bytes: u64,
    /// Fuel for creating the JavaScript context and evaluating the script (about one unit per
    /// wasm instruction; an empty script takes about 3 million).
    pub init_fuel: u64,
    /// Largest linear memory while the script is evaluated. The snapshot starts with the
    /// memory the evaluation used, so the runtime's `max_memory_bytes` must also allow it.
    pub max_memory_bytes: u64,
}

impl Default for JsBuildOptions {
    fn default() -> Self {
        Self {
            max_script_bytes: 1024 * 1024,
            init_fuel: 500_000_000,
            max_memory_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Builds the `sluice:codec` component of a JavaScript codec, with the default
/// [`JsBuildOptions`].
///
/// The script is evaluated once, here; its top-level code must finish within the build's
/// fuel and memory and must define `decodeUplink(input)` or `Decoder(bytes, port)`.
pub fn build_js_codec(source: &str) -> Result<Vec<u8>, JsBuildError> {
    build_js_codec_with(source, &JsBuildOptions::default())
}

/// Builds the `sluice:codec` component of a JavaScript codec under `options`.
pub fn build_js_codec_with(
    source: &str,
    options: &JsBuildOptions,
) -> Result<Vec<u8>, JsBuildError> {
    build_js_codec_report(source, options).map(|build| build.component)
}

/// A built JavaScript codec and what its build measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsBuild {
    /// The `sluice:codec` component.
    pub component: Vec<u8>,
    /// Fuel used to create the JavaScript context and evaluate the script: what every
    /// instance would pay on its first call without the snapshot.
    pub init_fuel_consumed: u64,
    /// Linear memory of the evaluated engine: every instance starts with this much, so the
    /// module's `max_memory_bytes` must be above it.
    pub initial_memory_bytes: u64,
}

/// Builds the component like [`build_js_codec_with`], and reports the cost of evaluating the
/// script.
pub fn build_js_codec_report(
    source: &str,
    options: &JsBuildOptions,
) -> Result<JsBuild, JsBuildError> {
    let size_bytes = source.len() as u64;
    if size_bytes > options.max_script_bytes {
        return Err(JsBuildError::ScriptTooLarge {
            size_bytes,
            limit_bytes: options.max_script_bytes,
        });
    }
    let builder = Builder::shared()?;
    let wizer = {
        let mut wizer = Wizer::new();
        wizer.init_func(INIT_EXPORT);
        wizer
    };
    // Instrumenting is deterministic: the output is the module `Builder` compiled once.
    let (context, _instrumented) = wizer
        .instrument(ENGINE_WASM)
        .map_err(internal("instrument"))?;

    let mut store = Store::new(
        &builder.engine,
        InitState {
            max_memory_bytes: usize::try_from(options.max_memory_bytes).unwrap_or(usize::MAX),
            memory_limit_hit: false,
        },
    );
    store.limiter(|state| state);
    store
        .set_fuel(options.init_fuel)
        .map_err(internal("fuel"))?;
    let instance = builder
        .linker
        .instantiate(&mut store, &builder.module)
        .map_err(|e| init_failure(e, &store, options))?;
    evaluate(&mut store, &instance, source, options)?;
    let init_fuel_consumed = options
        .init_fuel
        .saturating_sub(store.get_fuel().unwrap_or(0));
    let initial_memory_bytes = instance
        .get_memory(&mut store, "memory")
        .map_or(0, |memory| memory.data_size(&store) as u64);

    let mut state = Snapshot {
        store: &mut store,
        instance,
        missing: None,
    };
    let snapshot = block_on(wizer.snapshot(&context, &mut state))?.map_err(internal("snapshot"))?;
    if let Some(missing) = state.missing {
        return Err(JsBuildError::Internal {
            message: format!("snapshot: the instrumented engine has no export `{missing}`"),
        });
    }
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&snapshot)
        .and_then(|mut encoder| encoder.encode())
        .map_err(|e| JsBuildError::Internal {
            message: format!("component: {e:#}"),
        })?;
    Ok(JsBuild {
        component,
        init_fuel_consumed,
        initial_memory_bytes,
    })
}

/// Writes the script into the instance and evaluates it; maps the engine's answer.
fn evaluate(
    store: &mut Store<InitState>,
    instance: &Instance,
    source: &str,
    options: &JsBuildOptions,
) -> Result<(), JsBuildError> {
    let realloc = instance
        .get_typed_func::<(i32, i32, i32, i32), i32>(&mut *store, "cabi_realloc")
        .map_err(internal("cabi_realloc"))?;
    let init = instance
        .get_typed_func::<(i32, i32), i64>(&mut *store, INIT_EXPORT)
        .map_err(internal(INIT_EXPORT))?;
    let memory =
        instance
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| JsBuildError::Internal {
                message: "the engine exports no memory".into(),
            })?;
    let len = i32::try_from(source.len()).map_err(|_| JsBuildError::ScriptTooLarge {
        size_bytes: source.len() as u64,
        limit_bytes: i32::MAX as u64,
    })?;
    let ptr = realloc
        .call(&mut *store, (0, 0, 1, len))
        .map_err(|e| init_failure(e, store, options))?;
    memory
        .write(&mut *store, ptr as u32 as usize, source.as_bytes())
        .map_err(|e| JsBuildError::Internal {
            message: format!("cannot write the script into the engine: {e}"),
        })?;
    let answer = init
        .call(&mut *store, (ptr, len))
        .map_err(|e| init_failure(e, store, options))? as u64;
    if answer == 0 {
        return Ok(());
    }
    let at = (answer >> 32) as usize;
    let len = (answer & 0xffff_ffff) as usize;
    let text = memory
        .data(&*store)
        .get(at..at.saturating_add(len))
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .ok_or_else(|| JsBuildError::Internal {
            message: "the engine's error report is outside its memory".into(),
        })?;
    Err(script_failure(&text))
}

/// Parses the engine's `kind\0line\0column\0message` report.
fn script_failure(report: &str) -> JsBuildError {
    let mut parts = report.splitn(4, '\0');
    let kind = parts.next().unwrap_or_default();
    let line = parts.next().and_then(|l| l.parse::<u32>().ok());
    let column = parts.next().and_then(|c| c.parse::<u32>().ok());
    let message = parts.next().unwrap_or_default().to_string();
    match kind {
        "syntax" => JsBuildError::Syntax {
            line: line.unwrap_or(0),
            column: column.unwrap_or(0),
            message,
        },
        "exception" => JsBuildError::Exception {
            message,
            line,
            column,
        },
        "no-decoder" => JsBuildError::NoDecoder,
        _ => JsBuildError::Internal {
            message: format!("the JavaScript engine failed: {message}"),
        },
    }
}

/// Maps a trap while the script was evaluated to the limit it hit.
fn init_failure(
    error: wasmtime::Error,
    store: &Store<InitState>,
    options: &JsBuildOptions,
) -> JsBuildError {
    if store.data().memory_limit_hit {
        return JsBuildError::InitMemoryLimit {
            limit_bytes: options.max_memory_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => JsBuildError::InitFuelExhausted {
            limit_fuel: options.init_fuel,
        },
        Some(trap) => JsBuildError::InitTrap {
            message: trap.to_string(),
        },
        None => JsBuildError::Internal {
            message: format!("{error:#}"),
        },
    }
}

/// The compiled, instrumented engine, shared by every build in the process: compiling it
/// takes about a second, instantiating it microseconds.
struct Builder {
    engine: Engine,
    module: Module,
    linker: Linker<InitState>,
}

impl Builder {
    fn shared() -> Result<&'static Builder, JsBuildError> {
        static BUILDER: OnceLock<Result<Builder, JsBuildError>> = OnceLock::new();
        BUILDER
            .get_or_init(Builder::new)
            .as_ref()
            .map_err(Clone::clone)
    }

    fn new() -> Result<Builder, JsBuildError> {
        let mut wizer = Wizer::new();
        wizer.init_func(INIT_EXPORT);
        let (_, instrumented) = wizer
            .instrument(ENGINE_WASM)
            .map_err(internal("instrument"))?;
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(internal("engine"))?;
        let module = Module::new(&engine, &instrumented).map_err(internal("compile"))?;
        let mut linker = Linker::new(&engine);
        // Calls the script's top level makes: `console.*` is dropped (there is no message to
        // log it with) and the clock reads 0, so the snapshot does not depend on build time.
        linker
            .func_wrap(
                "sluice:codec/log@0.1.0",
                "log",
                |_: Caller<'_, InitState>, _level: i32, _ptr: i32, _len: i32| {},
            )
            .map_err(internal("linker"))?;
        linker
            .func_wrap("sluice:codec/clock@0.1.0", "now-ms", || -> i64 { 0 })
            .map_err(internal("linker"))?;
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(internal("linker"))?;
        Ok(Builder {
            engine,
            module,
            linker,
        })
    }
}

/// The store of the evaluation: its memory limit, and whether the guest hit it.
struct InitState {
    max_memory_bytes: usize,
    memory_limit_hit: bool,
}

impl ResourceLimiter for InitState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_limit_hit = true;
            wasmtime::bail!("memory limit of {} bytes reached", self.max_memory_bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// What Wizer reads from the evaluated instance.
struct Snapshot<'a> {
    store: &'a mut Store<InitState>,
    instance: Instance,
    /// An export Wizer asked for and the instance lacks (a builder bug, reported after).
    missing: Option<String>,
}

impl InstanceState for Snapshot<'_> {
    fn global_get(
        &mut self,
        name: &str,
        _type_hint: ValType,
    ) -> impl Future<Output = SnapshotVal> + Send {
        let value = match self.instance.get_global(&mut *self.store, name) {
            Some(global) => match global.get(&mut *self.store) {
                wasmtime::Val::I32(x) => Some(SnapshotVal::I32(x)),
                wasmtime::Val::I64(x) => Some(SnapshotVal::I64(x)),
                wasmtime::Val::F32(x) => Some(SnapshotVal::F32(x)),
                wasmtime::Val::F64(x) => Some(SnapshotVal::F64(x)),
                wasmtime::Val::V128(x) => Some(SnapshotVal::V128(x.as_u128())),
                _ => None,
            },
            None => None,
        };
        let value = value.unwrap_or_else(|| {
            self.missing.get_or_insert_with(|| name.to_string());
            SnapshotVal::I32(0)
        });
        std::future::ready(value)
    }

    fn memory_contents(
        &mut self,
        name: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        match self.instance.get_export(&mut *self.store, name) {
            Some(Extern::Memory(memory)) => contents(memory.data(&*self.store)),
            _ => {
                self.missing.get_or_insert_with(|| name.to_string());
                contents(&[]);
            }
        }
        std::future::ready(())
    }
}

/// Drives a future that never waits (Wizer's snapshot over [`Snapshot`], whose futures are
/// all ready) to completion.
fn block_on<F: Future>(future: F) -> Result<F::Output, JsBuildError> {
    const MAX_POLLS: usize = 1_000_000;
    let mut future = std::pin::pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..MAX_POLLS {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return Ok(output);
        }
    }
    Err(JsBuildError::Internal {
        message: "the snapshot did not complete".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_reports_parse_into_typed_errors() {
        assert_eq!(
            script_failure("syntax\u{0}3\u{0}7\u{0}unexpected token"),
            JsBuildError::Syntax {
                line: 3,
                column: 7,
                message: "unexpected token".into()
            }
        );
        assert_eq!(
            script_failure("exception\u{0}\u{0}\u{0}boom"),
            JsBuildError::Exception {
                message: "boom".into(),
                line: None,
                column: None
            }
        );
        assert_eq!(script_failure("no-decoder\0\0\0x"), JsBuildError::NoDecoder);
        assert!(matches!(
            script_failure("garbage"),
            JsBuildError::Internal { .. }
        ));
    }
}
