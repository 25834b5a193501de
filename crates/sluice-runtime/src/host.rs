//! What the host projects into the sandbox: the `sluice:codec` interfaces, the virtual WASI
//! pieces (clock, random, stdout/stderr), and the resource limiter.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_types::{ClockMode, Limits};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{clock, config, log, metrics, state, types};

/// Longest state key a guest may use, in bytes.
pub const MAX_STATE_KEY_BYTES: usize = 256;
/// Distinct metric names a module may report per call; later names are dropped.
pub const MAX_METRIC_NAMES_PER_CALL: usize = 64;
/// Longest metric name, in bytes.
pub const MAX_METRIC_NAME_BYTES: usize = 64;

/// Per-device state kept between messages. Implemented in memory here and durably by the
/// storage crate.
pub trait StateStore: Send + Sync + 'static {
    /// The value of `key` for `device_id`.
    fn get(&self, device_id: &str, key: &str) -> Result<Option<Vec<u8>>, StateStoreError>;
    /// Stores `value` under `key` for `device_id` unless the device would then hold more than
    /// `max_device_bytes` (keys and values together); returns whether it was stored.
    fn set(
        &self,
        device_id: &str,
        key: &str,
        value: &[u8],
        max_device_bytes: u64,
    ) -> Result<bool, StateStoreError>;
    /// Removes `key` for `device_id`.
    fn delete(&self, device_id: &str, key: &str) -> Result<(), StateStoreError>;
}

/// A state store that failed for a reason of its own (I/O, corruption). The call that hit it
/// fails with [`sluice_types::GuestFailure::Host`]; the guest is not blamed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("state store failed: {0}")]
pub struct StateStoreError(pub String);

/// An in-memory [`StateStore`], for tests, the CLI and single-process use.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    devices: Mutex<BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes (keys and values) held for `device_id`.
    pub fn device_bytes(&self, device_id: &str) -> u64 {
        self.lock()
            .get(device_id)
            .map(|m| m.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum())
            .unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, Vec<u8>>>> {
        // A panic while holding this lock cannot leave the map half-written: every write is a
        // single insert or remove, so a poisoned lock is still consistent.
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StateStore for MemoryStateStore {
    fn get(&self, device_id: &str, key: &str) -> Result<Option<Vec<u8>>, StateStoreError> {
        Ok(self.lock().get(device_id).and_then(|m| m.get(key).cloned()))
    }

    fn set(
        &self,
        device_id: &str,
        key: &str,
        value: &[u8],
        max_device_bytes: u64,
    ) -> Result<bool, StateStoreError> {
        let mut devices = self.lock();
        let entries = devices.entry(device_id.to_string()).or_default();
        let current: u64 = entries
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        if current + (key.len() + value.len()) as u64 > max_device_bytes {
            return Ok(false);
        }
        entries.insert(key.to_string(), value.to_vec());
        Ok(true)
    }

    fn delete(&self, device_id: &str, key: &str) -> Result<(), StateStoreError> {
        if let Some(entries) = self.lock().get_mut(device_id) {
            entries.remove(key);
        }
        Ok(())
    }
}

/// What an instance is bound to: its binding's configuration and the state store.
#[derive(Clone)]
pub struct InstanceEnv {
    /// Key/values the guest reads through `sluice:codec/config`.
    pub config: Arc<BTreeMap<String, String>>,
    /// Where per-device state lives.
    pub state: Arc<dyn StateStore>,
}

impl Default for InstanceEnv {
    fn default() -> Self {
        Self::with_config(BTreeMap::new())
    }
}

impl InstanceEnv {
    /// `config` as the binding's configuration, and device state kept in memory, empty: how
    /// a module runs outside any binding (test vectors, a trial decode, the CLI).
    pub fn with_config(config: BTreeMap<String, String>) -> Self {
        Self {
            config: Arc::new(config),
            state: Arc::new(MemoryStateStore::new()),
        }
    }
}

impl std::fmt::Debug for InstanceEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceEnv")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Severity of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Finest detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (also the guest's stdout).
    Info,
    /// Something odd.
    Warn,
    /// Something failed (also the guest's stderr, where panics print).
    Error,
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        })
    }
}

/// One line a guest logged during a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// The text (truncated to the per-call byte cap).
    pub message: String,
}

/// The log of one call, with its caps.
#[derive(Debug, Default)]
pub(crate) struct CallLog {
    pub lines: Vec<LogLine>,
    pub bytes: u64,
    pub dropped_lines: u64,
    pub max_lines: u32,
    pub max_bytes: u64,
    stdout_partial: Vec<u8>,
    stderr_partial: Vec<u8>,
}

impl CallLog {
    pub fn reset(&mut self, limits: &Limits) {
        self.lines.clear();
        self.bytes = 0;
        self.dropped_lines = 0;
        self.max_lines = limits.max_log_lines_per_call;
        self.max_bytes = limits.max_log_bytes_per_call;
        self.stdout_partial.clear();
        self.stderr_partial.clear();
    }

    pub fn push(&mut self, level: LogLevel, message: &str) {
        let remaining = self.max_bytes.saturating_sub(self.bytes);
        if self.lines.len() as u64 >= u64::from(self.max_lines) || remaining == 0 {
            self.dropped_lines += 1;
            return;
        }
        let mut cut = message.len().min(remaining as usize);
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        // A truncated line fills the log: later lines are dropped, not cut to a few bytes.
        self.bytes = if cut < message.len() {
            self.max_bytes
        } else {
            self.bytes + cut as u64
        };
        self.lines.push(LogLine {
            level,
            message: message[..cut].to_string(),
        });
    }

    /// Appends raw stream bytes, emitting a line per newline.
    fn write_stream(&mut self, stream: GuestStream, bytes: &[u8]) {
        let level = stream.level();
        let mut partial = std::mem::take(match stream {
            GuestStream::Stdout => &mut self.stdout_partial,
            GuestStream::Stderr => &mut self.stderr_partial,
        });
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            if let Some(line) = chunk.strip_suffix(b"\n") {
                partial.extend_from_slice(line);
                let text = String::from_utf8_lossy(&partial).into_owned();
                // Blank lines (a Rust panic message starts with one) carry nothing.
                if !text.trim().is_empty() {
                    self.push(level, &text);
                }
                partial.clear();
            } else if partial.len() < self.max_bytes as usize {
                // Keep at most one cap's worth of an unterminated line.
                let room = self.max_bytes as usize - partial.len();
                partial.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
        }
        *match stream {
            GuestStream::Stdout => &mut self.stdout_partial,
            GuestStream::Stderr => &mut self.stderr_partial,
        } = partial;
    }

    /// Emits unterminated stream output at the end of a call.
    pub fn flush_streams(&mut self) {
        for stream in [GuestStream::Stdout, GuestStream::Stderr] {
            let partial = std::mem::take(match stream {
                GuestStream::Stdout => &mut self.stdout_partial,
                GuestStream::Stderr => &mut self.stderr_partial,
            });
            if !partial.is_empty() {
                let text = String::from_utf8_lossy(&partial).into_owned();
                self.push(stream.level(), &text);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum GuestStream {
    Stdout,
    Stderr,
}

impl GuestStream {
    fn level(self) -> LogLevel {
        match self {
            GuestStream::Stdout => LogLevel::Info,
            GuestStream::Stderr => LogLevel::Error,
        }
    }
}

/// The guest's stdout or stderr: every line becomes a log line of the call.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    log: Arc<Mutex<CallLog>>,
    stream: GuestStream,
}

impl GuestOutput {
    fn write(&self, bytes: &[u8]) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_stream(self.stream, bytes);
    }
}

impl wasmtime_wasi::cli::IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl wasmtime_wasi::p2::OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), wasmtime_wasi::p2::StreamError> {
        GuestOutput::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), wasmtime_wasi::p2::StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, wasmtime_wasi::p2::StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        GuestOutput::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The message's time, shared with the virtual WASI clocks.
#[derive(Clone, Default)]
pub(crate) struct FrozenClock(Arc<AtomicU64>);

impl FrozenClock {
    pub fn set_ms(&self, ms: u64) {
        self.0.store(ms, Ordering::Relaxed);
    }

    pub fn ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.ms())
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    fn now(&self) -> u64 {
        self.ms().saturating_mul(1_000_000)
    }
}

/// Randomness seeded per message (SplitMix64), so a replayed message sees the same bytes.
#[derive(Clone, Default)]
pub(crate) struct SeededRandom(Arc<AtomicU64>);

impl SeededRandom {
    pub fn seed(&self, seed: u64) {
        self.0.store(seed, Ordering::Relaxed);
    }

    fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl rand::TryRng for SeededRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.next() as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

/// A limit hit by the guest, raised from the resource limiter; the call traps with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LimitHit {
    #[error("linear memory limit reached")]
    Memory,
    #[error("table limit reached")]
    Table,
}

/// A failure of the host itself during a host call; the call traps with it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HostFailure(pub String);

/// Enforces memory and table limits on one store.
pub(crate) struct GuestLimiter {
    pub max_memory_bytes: usize,
    pub max_table_elements: usize,
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            return Err(wasmtime::Error::new(LimitHit::Memory));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            return Err(wasmtime::Error::new(LimitHit::Table));
        }
        Ok(true)
    }
}

/// One metric update reported by a guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MetricUpdate {
    /// A counter increment.
    Counter {
        /// Metric name.
        name: String,
        /// Increment.
        delta: u64,
    },
    /// A gauge value.
    Gauge {
        /// Metric name.
        name: String,
        /// Value.
        value: f64,
    },
}

impl MetricUpdate {
    fn name(&self) -> &str {
        match self {
            MetricUpdate::Counter { name, .. } | MetricUpdate::Gauge { name, .. } => name,
        }
    }
}

/// Everything a store carries: WASI context, limiter, and the current call's state.
pub(crate) struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: GuestLimiter,
    pub log: Arc<Mutex<CallLog>>,
    pub clock: FrozenClock,
    pub clock_mode: ClockMode,
    pub random: SeededRandom,
    pub env: InstanceEnv,
    pub device_id: String,
    pub max_state_bytes_per_device: u64,
    pub metrics: Vec<MetricUpdate>,
    pub metrics_dropped: u64,
}

impl HostState {
    pub fn new(env: InstanceEnv, limits: &Limits, clock_mode: ClockMode) -> Self {
        let log = Arc::new(Mutex::new(CallLog::default()));
        let clock = FrozenClock::default();
        let random = SeededRandom::default();
        let mut builder = WasiCtx::builder();
        builder
            .stdout(GuestOutput {
                log: log.clone(),
                stream: GuestStream::Stdout,
            })
            .stderr(GuestOutput {
                log: log.clone(),
                stream: GuestStream::Stderr,
            })
            .secure_random(random.clone())
            .insecure_random(random.clone())
            .insecure_random_seed(0x5_1u128)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if clock_mode == ClockMode::Virtual {
            builder
                .wall_clock(clock.clone())
                .monotonic_clock(clock.clone());
        }
        Self {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: GuestLimiter {
                max_memory_bytes: usize::try_from(limits.max_memory_bytes).unwrap_or(usize::MAX),
                max_table_elements: usize::try_from(limits.max_table_elements)
                    .unwrap_or(usize::MAX),
            },
            log,
            clock,
            clock_mode,
            random,
            env,
            device_id: String::new(),
            max_state_bytes_per_device: limits.max_state_bytes_per_device,
            metrics: Vec::new(),
            metrics_dropped: 0,
        }
    }

    fn push_metric(&mut self, update: MetricUpdate) {
        let name = update.name();
        let known = self.metrics.iter().any(|m| m.name() == name);
        if name.is_empty()
            || name.len() > MAX_METRIC_NAME_BYTES
            || (!known && self.metrics.len() >= MAX_METRIC_NAMES_PER_CALL)
        {
            self.metrics_dropped += 1;
            return;
        }
        self.metrics.push(update);
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(level, &message);
        Ok(())
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.env.config.get(&key).cloned())
    }

    fn keys(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.env.config.keys().cloned().collect())
    }
}

fn valid_state_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_STATE_KEY_BYTES
}

impl state::Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        if !valid_state_key(&key) {
            return Ok(None);
        }
        self.env
            .state
            .get(&self.device_id, &key)
            .map_err(|e| wasmtime::Error::new(HostFailure(e.to_string())))
    }

    fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), state::StateError>> {
        if !valid_state_key(&key) {
            return Ok(Err(state::StateError::InvalidKey));
        }
        let stored = self
            .env
            .state
            .set(
                &self.device_id,
                &key,
                &value,
                self.max_state_bytes_per_device,
            )
            .map_err(|e| wasmtime::Error::new(HostFailure(e.to_string())))?;
        Ok(if stored {
            Ok(())
        } else {
            Err(state::StateError::QuotaExceeded)
        })
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        if !valid_state_key(&key) {
            return Ok(());
        }
        self.env
            .state
            .delete(&self.device_id, &key)
            .map_err(|e| wasmtime::Error::new(HostFailure(e.to_string())))
    }
}

impl clock::Host for HostState {
    fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(match self.clock_mode {
            ClockMode::Real => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            // A denied clock is refused at load; a module that links has a virtual one.
            ClockMode::Virtual | ClockMode::Denied => self.clock.ms(),
        })
    }
}

impl metrics::Host for HostState {
    fn increment(&mut self, name: String, delta: u64) -> wasmtime::Result<()> {
        self.push_metric(MetricUpdate::Counter { name, delta });
        Ok(())
    }

    fn gauge(&mut self, name: String, value: f64) -> wasmtime::Result<()> {
        if value.is_finite() {
            self.push_metric(MetricUpdate::Gauge { name, value });
        } else {
            self.metrics_dropped += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(max_lines: u32, max_bytes: u64) -> CallLog {
        let mut log = CallLog::default();
        log.reset(&Limits {
            max_log_lines_per_call: max_lines,
            max_log_bytes_per_call: max_bytes,
            ..Limits::default()
        });
        log
    }

    #[test]
    fn call_log_drops_lines_over_the_line_cap() {
        let mut log = log_with(2, 1000);
        for i in 0..5 {
            log.push(LogLevel::Info, &format!("line {i}"));
        }
        assert_eq!(log.lines.len(), 2);
        assert_eq!(log.dropped_lines, 3);
    }

    #[test]
    fn call_log_truncates_at_the_byte_cap_on_a_char_boundary() {
        let mut log = log_with(10, 5);
        log.push(LogLevel::Info, "abcdé");
        assert_eq!(log.lines[0].message, "abcd");
        log.push(LogLevel::Info, "more");
        assert_eq!(log.dropped_lines, 1);
    }

    #[test]
    fn stream_output_is_split_into_lines() {
        let mut log = log_with(10, 1000);
        log.write_stream(GuestStream::Stderr, b"\npanicked at x\nmessage");
        log.write_stream(GuestStream::Stderr, b" continues\n");
        log.write_stream(GuestStream::Stdout, b"tail");
        log.flush_streams();
        let texts: Vec<_> = log.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(texts, ["panicked at x", "message continues", "tail"]);
        assert_eq!(log.lines[0].level, LogLevel::Error);
        assert_eq!(log.lines[2].level, LogLevel::Info);
    }

    #[test]
    fn memory_state_store_enforces_the_device_quota() {
        let store = MemoryStateStore::new();
        assert!(store.set("d1", "k", &[0; 10], 11).expect("store"));
        assert!(!store.set("d1", "k2", &[0; 10], 11).expect("store"));
        // Overwriting a key does not count its old value.
        assert!(store.set("d1", "k", &[1; 10], 11).expect("store"));
        // Other devices have their own quota.
        assert!(store.set("d2", "k", &[0; 10], 11).expect("store"));
        assert_eq!(store.device_bytes("d1"), 11);
    }

    #[test]
    fn seeded_random_repeats_for_the_same_seed() {
        use rand::TryRng;
        let mut a = SeededRandom::default();
        a.seed(42);
        let x = a.try_next_u64().expect("infallible");
        a.seed(42);
        assert_eq!(a.try_next_u64().expect("infallible"), x);
    }
}
