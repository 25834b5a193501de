//! The JavaScript engine of Sluice JS codecs.
//!
//! QuickJS (through rquickjs) behind the `sluice:codec` world. The module is built once for
//! `wasm32-unknown-unknown`; the host (`crates/sluice-js`) then pre-initialises it per script:
//! it writes the script into guest memory, calls [`sluice_js_init`] (which creates the
//! JavaScript runtime, installs the bridge and evaluates the script) and snapshots the memory
//! into a new module. Every instance of that module starts with the script evaluated, so a
//! call only runs the codec function.
//!
//! The module has no WASI import: QuickJS's only system need, the clock, is the host's
//! `clock` import (see [`__rquickjs_host_now_us`]); `console` goes to the `log` import;
//! `Math.random` is a generator seeded from each message.

use std::cell::{Cell, RefCell};

use rquickjs::context::EvalOptions;
use rquickjs::{Context, Ctx, FromJs, Function, Object, Persistent, Runtime, Value, qjs};

#[allow(missing_docs, unsafe_code, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "codec",
        generate_all,
    });
}

use bindings::sluice::codec::types::{
    CodecError, CodecErrorKind, Document, DocumentFormat, Downlink, EncodedDownlink, Uplink,
};
use bindings::sluice::codec::{clock, config, log, metrics, state};

/// The file name scripts are evaluated under; error positions name it.
const SCRIPT_NAME: &str = "codec.js";
/// The bridge between the world and the TS013 functions (see `bridge.js`).
const BRIDGE: &str = include_str!("bridge.js");
/// QuickJS's own stack limit: deep JavaScript recursion becomes a `RangeError` long before
/// the 1 MiB shadow stack is used up.
const MAX_JS_STACK_BYTES: usize = 256 * 1024;

/// The evaluated script: the QuickJS runtime, its context and the bridge's two entry points
/// (looked up once, not per message).
struct Engine {
    // Keeps the runtime alive as long as the context.
    _runtime: Runtime,
    context: Context,
    decode: Persistent<Function<'static>>,
    encode: Persistent<Function<'static>>,
}

/// One of the bridge's entry points.
#[derive(Clone, Copy)]
enum Entry {
    Decode,
    Encode,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    /// Whether a message is being handled: `config`, `state` and `metrics` answer only then.
    static IN_CALL: Cell<bool> = const { Cell::new(false) };
    static RANDOM: Cell<u64> = const { Cell::new(0x853c_49e6_748f_ea9b) };
}

/// The clock QuickJS reads (`Date.now()`, `new Date()`): the host's `clock` import, in
/// microseconds. rquickjs-sys declares it as an import for `wasm32-unknown-unknown`; defining
/// it here resolves that import inside the module.
#[unsafe(no_mangle)]
pub extern "C" fn __rquickjs_host_now_us() -> f64 {
    clock::now_ms() as f64 * 1000.0
}

/// Evaluates the script of `len` bytes at `ptr` (allocated with `cabi_realloc`, freed here).
///
/// Returns 0 on success. On failure, returns `ptr << 32 | len` of a text in guest memory:
/// `kind`, `line`, `column` and `message` separated by NUL, where `kind` is `syntax`,
/// `exception`, `no-decoder` or `engine`, and `line`/`column` are empty when unknown.
///
/// # Safety
///
/// `ptr` must come from `cabi_realloc(0, 0, 1, len)` and hold `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_js_init(ptr: *mut u8, len: usize) -> u64 {
    // SAFETY: the caller allocated `len` bytes at `ptr` with alignment 1, as a Vec<u8> is.
    let bytes = unsafe { Vec::from_raw_parts(ptr, len, len) };
    let failure = match String::from_utf8(bytes) {
        Ok(source) => match init(&source) {
            Ok(()) => return 0,
            Err(failure) => failure,
        },
        Err(_) => InitFailure::engine("the script is not UTF-8"),
    };
    let text = format!(
        "{}\0{}\0{}\0{}",
        failure.kind,
        failure.line.map(|l| l.to_string()).unwrap_or_default(),
        failure.column.map(|c| c.to_string()).unwrap_or_default(),
        failure.message
    )
    .into_bytes()
    .into_boxed_slice();
    let len = text.len() as u64;
    let ptr = Box::leak(text).as_ptr() as usize as u64;
    (ptr << 32) | len
}

/// Why a script could not be evaluated.
struct InitFailure {
    kind: &'static str,
    line: Option<u32>,
    column: Option<u32>,
    message: String,
}

impl InitFailure {
    fn engine(message: impl Into<String>) -> Self {
        Self {
            kind: "engine",
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

fn init(source: &str) -> Result<(), InitFailure> {
    let engine_error = |e: rquickjs::Error| InitFailure::engine(e.to_string());
    let runtime = Runtime::new().map_err(engine_error)?;
    runtime.set_max_stack_size(MAX_JS_STACK_BYTES);
    let context = Context::full(&runtime).map_err(engine_error)?;
    let (decode, encode) = context.with(|ctx| -> Result<_, InitFailure> {
        let make_bridge: Function = ctx
            .eval(BRIDGE)
            .map_err(|e| InitFailure::engine(format!("bridge: {}", exception_text(&ctx, e))))?;
        let native_log = Function::new(ctx.clone(), |level: i32, line: String| {
            log::log(level_of(level), &line);
        })
        .map_err(engine_error)?;
        let native_random = Function::new(ctx.clone(), next_random).map_err(engine_error)?;
        let host = host_functions(&ctx).map_err(engine_error)?;
        let bridge: Object = make_bridge
            .call((native_log, native_random, host))
            .map_err(|e| InitFailure::engine(format!("bridge: {}", exception_text(&ctx, e))))?;

        let mut options = EvalOptions::default();
        options.global = true;
        options.strict = false;
        options.filename = Some(SCRIPT_NAME.to_string());
        if let Err(error) = ctx.eval_with_options::<Value, _>(source, options) {
            return Err(script_failure(&ctx, error));
        }
        let bind: Function = bridge.get("bind").map_err(engine_error)?;
        let decoder: String = bind.call(()).map_err(engine_error)?;
        if decoder.is_empty() {
            return Err(InitFailure {
                kind: "no-decoder",
                line: None,
                column: None,
                message: "the script defines no decodeUplink(input) or Decoder(bytes, port) \
                          function"
                    .into(),
            });
        }
        let decode: Function = bridge.get("decode").map_err(engine_error)?;
        let encode: Function = bridge.get("encode").map_err(engine_error)?;
        Ok((
            Persistent::save(&ctx, decode),
            Persistent::save(&ctx, encode),
        ))
    })?;
    ENGINE.with(|engine| {
        *engine.borrow_mut() = Some(Engine {
            _runtime: runtime,
            context,
            decode,
            encode,
        });
    });
    Ok(())
}

/// The failure of evaluating the customer's script: a syntax error with its position, or an
/// exception thrown by its top-level code.
fn script_failure(ctx: &Ctx<'_>, error: rquickjs::Error) -> InitFailure {
    if !matches!(error, rquickjs::Error::Exception) {
        return InitFailure::engine(error.to_string());
    }
    let thrown = ctx.catch();
    let (line, column) = thrown
        .as_exception()
        .and_then(|e| e.stack())
        .and_then(|stack| position(&stack))
        .map_or((None, None), |(l, c)| (Some(l), Some(c)));
    let is_syntax = thrown
        .as_object()
        .and_then(|o| o.get::<_, String>("name").ok())
        .is_some_and(|name| name == "SyntaxError");
    let message = match thrown.as_exception() {
        Some(exception) => exception.message().unwrap_or_default(),
        None => value_text(ctx, thrown.clone()),
    };
    InitFailure {
        kind: if is_syntax { "syntax" } else { "exception" },
        line,
        column,
        message,
    }
}

/// The first `codec.js:LINE:COLUMN` of a stack trace.
fn position(stack: &str) -> Option<(u32, u32)> {
    let prefix = format!("{SCRIPT_NAME}:");
    let at = stack.find(&prefix)? + prefix.len();
    let mut parts = stack[at..].splitn(3, |c: char| !c.is_ascii_digit());
    let line = parts.next()?.parse().ok()?;
    let column = parts.next()?.parse().ok()?;
    Some((line, column))
}

/// A thrown value as text, through the bridge's `describe` when it is available.
fn value_text<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> String {
    if let Some(string) = value.as_string() {
        return string.to_string().unwrap_or_default();
    }
    ctx.globals()
        .get::<_, Function>("String")
        .and_then(|f| f.call::<_, String>((value,)))
        .unwrap_or_else(|_| "(an exception that cannot be shown)".into())
}

/// The text of a failed rquickjs call: the exception's message, or the error itself.
fn exception_text(ctx: &Ctx<'_>, error: rquickjs::Error) -> String {
    if !matches!(error, rquickjs::Error::Exception) {
        return error.to_string();
    }
    let thrown = ctx.catch();
    match thrown.as_exception() {
        Some(exception) => {
            let mut text = exception.message().unwrap_or_default();
            if let Some((line, column)) = exception.stack().as_deref().and_then(position) {
                text.push_str(&format!(" at line {line}, column {column}"));
            }
            text
        }
        None => value_text(ctx, thrown),
    }
}

/// The native side of `sluice.config`, `sluice.state` and `sluice.metrics` (the bridge checks
/// arguments and turns failures into exceptions). State results are 0 (stored), 1 (over the
/// quota) or 2 (invalid key).
fn host_functions<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
    fn code(result: Result<(), state::StateError>) -> i32 {
        match result {
            Ok(()) => 0,
            Err(state::StateError::QuotaExceeded) => 1,
            Err(state::StateError::InvalidKey) => 2,
        }
    }
    let host = Object::new(ctx.clone())?;
    host.set(
        "inCall",
        Function::new(ctx.clone(), || IN_CALL.with(Cell::get))?,
    )?;
    host.set(
        "configGet",
        Function::new(ctx.clone(), |key: String| config::get(&key))?,
    )?;
    host.set("configKeys", Function::new(ctx.clone(), config::keys)?)?;
    host.set(
        "stateGet",
        Function::new(ctx.clone(), |key: String| state::get(&key))?,
    )?;
    host.set(
        "stateGetText",
        Function::new(ctx.clone(), |key: String| {
            state::get(&key).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        })?,
    )?;
    host.set(
        "stateSet",
        Function::new(ctx.clone(), |key: String, bytes: Vec<u8>| {
            code(state::set(&key, &bytes))
        })?,
    )?;
    host.set(
        "stateSetText",
        Function::new(ctx.clone(), |key: String, text: String| {
            code(state::set(&key, text.as_bytes()))
        })?,
    )?;
    host.set(
        "stateDelete",
        Function::new(ctx.clone(), |key: String| state::delete(&key))?,
    )?;
    host.set(
        "metricIncrement",
        Function::new(ctx.clone(), |name: String, delta: f64| {
            metrics::increment(&name, delta as u64)
        })?,
    )?;
    host.set(
        "metricGauge",
        Function::new(ctx.clone(), |name: String, value: f64| {
            metrics::gauge(&name, value)
        })?,
    )?;
    Ok(host)
}

/// Marks a message as being handled while it lives.
struct InCall;

impl InCall {
    fn enter() -> Self {
        IN_CALL.with(|c| c.set(true));
        Self
    }
}

impl Drop for InCall {
    fn drop(&mut self) {
        IN_CALL.with(|c| c.set(false));
    }
}

fn level_of(level: i32) -> log::Level {
    match level {
        0 => log::Level::Trace,
        1 => log::Level::Debug,
        2 => log::Level::Info,
        3 => log::Level::Warn,
        _ => log::Level::Error,
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Seeds `Math.random` for one message, so a replayed message sees the same numbers.
fn seed_random(seed: u64) {
    RANDOM.with(|state| state.set(seed | 1));
}

/// The next `Math.random()`: xorshift64*, 53 bits into [0, 1).
fn next_random() -> f64 {
    RANDOM.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn error(kind: CodecErrorKind, message: impl Into<String>) -> CodecError {
    CodecError {
        kind,
        message: message.into(),
    }
}

fn kind_of(kind: &str) -> CodecErrorKind {
    match kind {
        "invalid-input" => CodecErrorKind::InvalidInput,
        "unsupported" => CodecErrorKind::Unsupported,
        _ => CodecErrorKind::Internal,
    }
}

/// Runs `f` with the context and the bridge's `entry` function; an engine that was never
/// initialised, or an exception that escaped the bridge (out of memory, stack exhausted inside
/// it), is an internal codec error.
fn with_bridge<T>(
    entry: Entry,
    f: impl for<'js> FnOnce(&Ctx<'js>, Function<'js>) -> rquickjs::Result<Result<T, CodecError>>,
) -> Result<T, CodecError> {
    ENGINE.with(|engine| {
        let engine = engine.borrow();
        let Some(engine) = engine.as_ref() else {
            return Err(error(
                CodecErrorKind::Internal,
                "the JavaScript engine was not initialised with a script",
            ));
        };
        let function = match entry {
            Entry::Decode => &engine.decode,
            Entry::Encode => &engine.encode,
        };
        let _in_call = InCall::enter();
        engine.context.with(|ctx| {
            let function = function
                .clone()
                .restore(&ctx)
                .map_err(|e| error(CodecErrorKind::Internal, format!("JavaScript engine: {e}")))?;
            match f(&ctx, function) {
                Ok(result) => result,
                Err(e) => Err(error(
                    CodecErrorKind::Internal,
                    format!("JavaScript engine: {}", exception_text(&ctx, e)),
                )),
            }
        })
    })
}

/// `bytes` as a plain JavaScript array of numbers, created in one step (`JS_NewArrayFrom`)
/// instead of one property write per byte.
fn byte_array<'js>(ctx: &Ctx<'js>, bytes: &[u8]) -> rquickjs::Result<Value<'js>> {
    let values: Vec<qjs::JSValue> = bytes
        .iter()
        .map(|&byte| qjs::JS_MKVAL(qjs::JS_TAG_INT, i32::from(byte)))
        .collect();
    let count =
        i32::try_from(values.len()).map_err(|_| rquickjs::Error::new_into_js("bytes", "array"))?;
    // SAFETY: `ctx` is a live context and `values` holds `count` integer values, which own
    // nothing; JS_NewArrayFrom copies them into the new array (and frees them, a no-op for
    // integers, when it fails).
    let array = unsafe { qjs::JS_NewArrayFrom(ctx.as_raw().as_ptr(), count, values.as_ptr()) };
    // SAFETY: reads the value's tag only.
    if unsafe { qjs::JS_IsException(array) } {
        // Out of memory: the exception is pending in the context, where `exception_text`
        // finds it.
        return Err(rquickjs::Error::Exception);
    }
    // SAFETY: `array` is a new value of this context that nothing else owns; the `Value`
    // takes it over (and frees it when dropped).
    Ok(unsafe { Value::from_raw(ctx.clone(), array) })
}

/// A refusal the bridge returned (`{kind, message}`), if it is one.
fn refusal(result: &Object<'_>) -> rquickjs::Result<Option<CodecError>> {
    let Some(kind) = result.get::<_, Option<String>>("kind")? else {
        return Ok(None);
    };
    let message: String = result.get("message")?;
    Ok(Some(error(kind_of(&kind), message)))
}

struct JsCodec;

impl bindings::Guest for JsCodec {
    fn decode_uplink(message: Uplink) -> Result<Document, CodecError> {
        seed_random(
            fnv(message.device_id.as_bytes())
                ^ fnv(&message.payload).rotate_left(17)
                ^ message.received_at_ms,
        );
        let Uplink {
            payload,
            port,
            received_at_ms,
            ..
        } = message;
        with_bridge(Entry::Decode, move |ctx, decode| {
            let bytes = byte_array(ctx, &payload)?;
            let result: Value = decode.call((bytes, port, received_at_ms as f64))?;
            // The document's JSON, or an object: a refusal (or `{json}` when the JSON is not
            // a string).
            if let Some(json) = result.as_string() {
                return Ok(Ok(Document {
                    format: DocumentFormat::Json,
                    bytes: json.to_string()?.into_bytes(),
                }));
            }
            let result = Object::from_js(ctx, result)?;
            if let Some(refused) = refusal(&result)? {
                return Ok(Err(refused));
            }
            let json: String = result.get("json")?;
            Ok(Ok(Document {
                format: DocumentFormat::Json,
                bytes: json.into_bytes(),
            }))
        })
    }

    fn encode_downlink(message: Downlink) -> Result<EncodedDownlink, CodecError> {
        if !matches!(message.document.format, DocumentFormat::Json) {
            return Err(error(
                CodecErrorKind::Unsupported,
                "JavaScript codecs take downlink documents as JSON",
            ));
        }
        seed_random(fnv(&message.document.bytes));
        let Ok(json) = String::from_utf8(message.document.bytes) else {
            return Err(error(
                CodecErrorKind::InvalidInput,
                "the downlink document is not UTF-8",
            ));
        };
        let port = message.port;
        with_bridge(Entry::Encode, move |_ctx, encode| {
            let result: Object = encode.call((json, port))?;
            if let Some(refused) = refusal(&result)? {
                return Ok(Err(refused));
            }
            let port: u16 = result.get("port")?;
            let payload: Vec<u8> = result.get("bytes")?;
            Ok(Ok(EncodedDownlink { port, payload }))
        })
    }
}

bindings::export!(JsCodec with_types_in bindings);
