//! A binding's protective policies: a throttle (message and fuel rates), a quarantine
//! (circuit breaker) for a codec that keeps failing, and backoff between instance restarts.
//!
//! Everything here is pure and deterministic: no I/O, no threads, no clock. Time comes in as
//! [`Instant`] arguments, so the worker decides when to ask and tests decide what time it is.
//! An `Instant` earlier than one seen before is treated as the latest one seen (time does
//! not run backwards here). Durations saturate rather than overflow: a value too large to
//! represent becomes [`Duration::MAX`] (or, as an `Instant`, a century from now).
//!
//! The configuration goes raw → validated → built: [`BindingPolicy`] deserializes from the
//! binding's `policy` object, [`BindingPolicy::validate`] checks it, and the constructors
//! ([`Throttle::new`], [`CircuitBreaker::new`], [`RestartBackoff::new`]) validate again so a
//! built policy is always a valid one.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The longest [`ThrottleConfig::burst_seconds`].
pub const MAX_BURST_SECONDS: f64 = 60.0;

/// The largest [`QuarantineConfig::failures`]: the breaker remembers that many failure times.
pub const MAX_QUARANTINE_FAILURES: u32 = 1_000;

/// How many transitions [`CircuitBreaker::history`] keeps.
pub const BREAKER_HISTORY_LEN: usize = 20;

/// How many times the base cool-down a breaker waits at most after repeated failed probes.
pub const MAX_COOLDOWN_FACTOR: u32 = 10;

/// A policy setting is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    /// The setting, as a path from the policy object (`throttle.messages_per_second`).
    pub field: String,
    /// What is wrong with it and what is allowed.
    pub message: String,
}

impl PolicyError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The same error, its field path prefixed with `section`.
    fn within(mut self, section: &str) -> Self {
        self.field = format!("{section}.{}", self.field);
        self
    }
}

/// A binding's limit policies, as stored in the binding's `policy` object. Every part is
/// optional: an empty object means no throttle, no quarantine and the default restart
/// backoff.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingPolicy {
    /// Rate limits on messages and fuel (none: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleConfig>,
    /// When to quarantine a failing codec (none: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<QuarantineConfig>,
    /// How long to wait between restarts of the binding's instances.
    #[serde(default)]
    pub restart: RestartConfig,
}

impl BindingPolicy {
    /// Checks every part; the error's field path starts with the part's name
    /// (`throttle.`, `quarantine.`, `restart.`).
    pub fn validate(&self) -> Result<(), PolicyError> {
        if let Some(throttle) = &self.throttle {
            throttle.validate().map_err(|e| e.within("throttle"))?;
        }
        if let Some(quarantine) = &self.quarantine {
            quarantine.validate().map_err(|e| e.within("quarantine"))?;
        }
        self.restart.validate().map_err(|e| e.within("restart"))
    }
}

/// Rate limits for a binding. A limit left out is not enforced; with neither rate set the
/// throttle admits everything.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Messages admitted per second, on average (may be below 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_second: Option<f64>,
    /// Guest fuel spent per second, on average. A binding over budget waits until the
    /// excess has been paid back at this rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_per_second: Option<u64>,
    /// How many seconds' worth of each rate may be spent at once after a quiet period.
    #[serde(default = "default_burst_seconds")]
    pub burst_seconds: f64,
}

fn default_burst_seconds() -> f64 {
    1.0
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            messages_per_second: None,
            fuel_per_second: None,
            burst_seconds: default_burst_seconds(),
        }
    }
}

impl ThrottleConfig {
    /// Checks that the rates are positive and finite and the burst is in (0, 60] seconds.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if let Some(rate) = self.messages_per_second
            && !(rate > 0.0 && rate.is_finite())
        {
            return Err(PolicyError::new(
                "messages_per_second",
                format!("must be a positive number, got {rate} (leave it out for no limit)"),
            ));
        }
        if self.fuel_per_second == Some(0) {
            return Err(PolicyError::new(
                "fuel_per_second",
                "must be at least 1, got 0 (leave it out for no limit)",
            ));
        }
        if !(self.burst_seconds > 0.0 && self.burst_seconds <= MAX_BURST_SECONDS) {
            return Err(PolicyError::new(
                "burst_seconds",
                format!(
                    "must be more than 0 and at most {MAX_BURST_SECONDS}, got {}",
                    self.burst_seconds
                ),
            ));
        }
        Ok(())
    }
}

/// When a binding's codec is quarantined: `failures` failed messages within `window_s`
/// seconds stop its messages for `cooldown_s` seconds, then one trial message decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineConfig {
    /// Failures within the window that open the breaker (1 to 1000).
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// The sliding window failures are counted in, in seconds.
    #[serde(default = "default_window_s")]
    pub window_s: u64,
    /// How long the breaker stays open before a trial message, in seconds.
    #[serde(default = "default_cooldown_s")]
    pub cooldown_s: u64,
    /// What happens to messages while quarantined: `false` sends them to the dead-letter
    /// queue, `true` keeps them queued until the breaker closes.
    #[serde(default)]
    pub hold: bool,
}

fn default_failures() -> u32 {
    5
}
fn default_window_s() -> u64 {
    60
}
fn default_cooldown_s() -> u64 {
    30
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        Self {
            failures: default_failures(),
            window_s: default_window_s(),
            cooldown_s: default_cooldown_s(),
            hold: false,
        }
    }
}

impl QuarantineConfig {
    /// Checks that failures is 1 to 1000 and the window and cool-down are at least 1 s.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if !(1..=MAX_QUARANTINE_FAILURES).contains(&self.failures) {
            return Err(PolicyError::new(
                "failures",
                format!(
                    "must be 1 to {MAX_QUARANTINE_FAILURES}, got {}",
                    self.failures
                ),
            ));
        }
        if self.window_s == 0 {
            return Err(PolicyError::new("window_s", "must be at least 1, got 0"));
        }
        if self.cooldown_s == 0 {
            return Err(PolicyError::new("cooldown_s", "must be at least 1, got 0"));
        }
        Ok(())
    }
}

/// Backoff between restarts of a binding's instances (after a trap, a crash or an upgrade
/// that failed to start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartConfig {
    /// The delay of the second restart in a row, in milliseconds; doubled for each next one.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// The longest delay, in milliseconds.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Seconds an instance must run without a restart for the backoff to start over.
    #[serde(default = "default_reset_after_s")]
    pub reset_after_s: u64,
}

fn default_backoff_initial_ms() -> u64 {
    100
}
fn default_backoff_max_ms() -> u64 {
    30_000
}
fn default_reset_after_s() -> u64 {
    60
}

impl Default for RestartConfig {
    fn default() -> Self {
        Self {
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            reset_after_s: default_reset_after_s(),
        }
    }
}

impl RestartConfig {
    /// Checks that the initial delay is at least 1 ms, the maximum at least the initial
    /// delay, and the reset period at least 1 s (0 would never back off).
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.backoff_initial_ms == 0 {
            return Err(PolicyError::new(
                "backoff_initial_ms",
                "must be at least 1, got 0",
            ));
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(PolicyError::new(
                "backoff_max_ms",
                format!(
                    "must be at least backoff_initial_ms ({}), got {}",
                    self.backoff_initial_ms, self.backoff_max_ms
                ),
            ));
        }
        if self.reset_after_s == 0 {
            return Err(PolicyError::new(
                "reset_after_s",
                "must be at least 1, got 0 (with 0, restarts would never back off)",
            ));
        }
        Ok(())
    }
}

/// `secs` as a duration, rounded to the nearest nanosecond; too large becomes
/// [`Duration::MAX`], not a number or negative becomes zero.
fn duration_nearest(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// `secs` as a duration, rounded down to the nanosecond; saturating like
/// [`duration_nearest`].
fn duration_floor(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    let nanos = (secs * 1e9).floor();
    if nanos < u64::MAX as f64 {
        Duration::from_nanos(nanos as u64)
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

/// `at + delay`, or a century later if that is not representable.
fn later(at: Instant, delay: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(delay)
        .or_else(|| at.checked_add(CENTURY))
        .unwrap_or(at)
}

/// Whole milliseconds of `d`, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A token bucket: it holds up to `burst` tokens and refills at `rate_per_second`. It
/// starts full.
///
/// The level may go negative: [`TokenBucket::take_debt`] charges after the fact (fuel
/// actually consumed), and an amount larger than the whole burst is let through once when
/// the bucket is full (otherwise it could never pass), leaving the bucket in debt. Debt
/// delays the following takes until it is paid back at the refill rate.
///
/// Internally the bucket counts the missing tokens as refill time, in nanoseconds, so a
/// caller that waits exactly the reported time is then admitted. A take's cost is rounded
/// down to the nanosecond (in the caller's favour, by at most a nanosecond per take).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_second: f64,
    burst: f64,
    /// The refill time of a full bucket.
    burst_time: Duration,
    /// The refill time of the tokens missing as of `as_of`; beyond `burst_time` is debt.
    missing: Duration,
    as_of: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilling at `rate_per_second`. The rate must be
    /// positive and finite, the burst finite and not negative (a burst of 0 paces strictly:
    /// each take waits until the previous one is paid back).
    pub fn new(rate_per_second: f64, burst: f64, now: Instant) -> Result<Self, PolicyError> {
        if !(rate_per_second > 0.0 && rate_per_second.is_finite()) {
            return Err(PolicyError::new(
                "rate_per_second",
                format!("must be a positive number, got {rate_per_second}"),
            ));
        }
        if !(burst >= 0.0 && burst.is_finite()) {
            return Err(PolicyError::new(
                "burst",
                format!("must be a finite number, 0 or more, got {burst}"),
            ));
        }
        Ok(Self {
            rate_per_second,
            burst,
            burst_time: duration_nearest(burst / rate_per_second),
            missing: Duration::ZERO,
            as_of: now,
        })
    }

    /// The refill rate, in tokens per second.
    pub fn rate_per_second(&self) -> f64 {
        self.rate_per_second
    }

    /// The capacity, in tokens.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// Takes `amount` tokens if the bucket holds them (or, for an amount larger than the
    /// burst, if the bucket is full). Otherwise takes nothing and returns how long until it
    /// would: the caller waits that long and asks again.
    pub fn try_take(&mut self, amount: u64, now: Instant) -> Result<(), Duration> {
        self.settle(now);
        let wait = self.wait_for(amount, now);
        if wait.is_zero() {
            self.missing = self.missing.saturating_add(self.cost(amount));
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Takes `amount` tokens unconditionally, going into debt if the bucket holds fewer:
    /// for charging what was spent after the fact.
    pub fn take_debt(&mut self, amount: u64, now: Instant) {
        self.settle(now);
        self.missing = self.missing.saturating_add(self.cost(amount));
    }

    /// How long until the bucket is out of debt (its level is 0 or more); zero if it is.
    pub fn wait_time(&self, now: Instant) -> Duration {
        self.wait_for(0, now)
    }

    /// The tokens in the bucket at `now`: at most the burst, negative while in debt.
    pub fn available(&self, now: Instant) -> f64 {
        self.burst - self.missing_at(now).as_secs_f64() * self.rate_per_second
    }

    /// How long until `amount` can be taken; zero if it can now.
    fn wait_for(&self, amount: u64, now: Instant) -> Duration {
        let may_be_missing = self.burst_time.saturating_sub(self.cost(amount));
        self.missing_at(now).saturating_sub(may_be_missing)
    }

    fn cost(&self, amount: u64) -> Duration {
        duration_floor(amount as f64 / self.rate_per_second)
    }

    fn missing_at(&self, now: Instant) -> Duration {
        self.missing
            .saturating_sub(now.saturating_duration_since(self.as_of))
    }

    fn settle(&mut self, now: Instant) {
        if now > self.as_of {
            self.missing = self.missing_at(now);
            self.as_of = now;
        }
    }
}

/// A binding's throttle: an optional message bucket and an optional fuel bucket, each with
/// [`ThrottleConfig::burst_seconds`] worth of its rate as capacity.
///
/// Before each message the worker calls [`Throttle::admit`]; after the call it charges the
/// fuel the guest actually consumed with [`Throttle::charge_fuel`]. A binding over its fuel
/// budget is thus delayed for as long as its excess takes to pay back.
#[derive(Debug, Clone)]
pub struct Throttle {
    messages: Option<TokenBucket>,
    fuel: Option<TokenBucket>,
}

impl Throttle {
    /// A throttle with full buckets, from a config that must be valid.
    pub fn new(config: &ThrottleConfig, now: Instant) -> Result<Self, PolicyError> {
        config.validate()?;
        let bucket = |rate: f64, field: &str| {
            TokenBucket::new(rate, rate * config.burst_seconds, now).map_err(|e| e.within(field))
        };
        Ok(Self {
            messages: config
                .messages_per_second
                .map(|rate| bucket(rate, "messages_per_second"))
                .transpose()?,
            fuel: config
                .fuel_per_second
                .map(|rate| bucket(rate as f64, "fuel_per_second"))
                .transpose()?,
        })
    }

    /// Admits one message if the message bucket holds a token and the fuel bucket is not in
    /// debt, taking the token. Otherwise takes nothing and returns how long until both
    /// would allow it.
    pub fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        let fuel_wait = self
            .fuel
            .as_ref()
            .map_or(Duration::ZERO, |fuel| fuel.wait_time(now));
        let message_wait = self
            .messages
            .as_ref()
            .map_or(Duration::ZERO, |messages| messages.wait_for(1, now));
        let wait = fuel_wait.max(message_wait);
        if !wait.is_zero() {
            return Err(wait);
        }
        if let Some(messages) = &mut self.messages {
            messages.take_debt(1, now);
        }
        Ok(())
    }

    /// Charges the fuel a call consumed (no-op without a fuel limit).
    pub fn charge_fuel(&mut self, fuel: u64, now: Instant) {
        if let Some(bucket) = &mut self.fuel {
            bucket.take_debt(fuel, now);
        }
    }

    /// The message bucket, if messages are limited.
    pub fn messages(&self) -> Option<&TokenBucket> {
        self.messages.as_ref()
    }

    /// The fuel bucket, if fuel is limited.
    pub fn fuel(&self) -> Option<&TokenBucket> {
        self.fuel.as_ref()
    }
}

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Messages pass; failures are counted.
    Closed,
    /// The codec is quarantined: messages are rejected.
    Open {
        /// When the cool-down ends; the next [`CircuitBreaker::allow`] from then on is a
        /// probe.
        until: Instant,
    },
    /// A probe (trial message) is outstanding; its outcome closes or reopens the breaker.
    HalfOpen,
}

impl CircuitState {
    /// The state's name.
    pub fn kind(&self) -> CircuitKind {
        match self {
            CircuitState::Closed => CircuitKind::Closed,
            CircuitState::Open { .. } => CircuitKind::Open,
            CircuitState::HalfOpen => CircuitKind::HalfOpen,
        }
    }
}

/// A circuit breaker state's name: `closed`, `open` or `half-open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CircuitKind {
    /// See [`CircuitState::Closed`].
    Closed,
    /// See [`CircuitState::Open`].
    Open,
    /// See [`CircuitState::HalfOpen`].
    HalfOpen,
}

impl CircuitKind {
    /// `closed`, `open` or `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitKind::Closed => "closed",
            CircuitKind::Open => "open",
            CircuitKind::HalfOpen => "half-open",
        }
    }
}

impl fmt::Display for CircuitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`CircuitBreaker::allow`] decided for the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Run it.
    Pass,
    /// Run it as the trial after the cool-down, and record its outcome: it decides whether
    /// the breaker closes.
    Probe,
    /// Do not run it (dead-letter it or keep it queued, per [`QuarantineConfig::hold`]).
    Reject {
        /// When to ask again.
        retry_in: Duration,
    },
}

/// A change of a breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// When it happened.
    pub at: Instant,
    /// The state before.
    pub from: CircuitKind,
    /// The state after.
    pub to: CircuitKind,
}

/// A breaker's state for the API, with times relative to the moment it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    /// The state.
    pub state: CircuitKind,
    /// Failures counted in the sliding window.
    pub failures_in_window: u32,
    /// Milliseconds since the breaker opened (absent while closed). Repeated failed probes
    /// do not restart this clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_ms_ago: Option<u64>,
    /// Milliseconds until a message may be tried again (absent while closed): the end of
    /// the cool-down when open, the time after which an unanswered probe counts as lost
    /// when half-open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_at: Instant },
}

impl Phase {
    fn kind(self) -> CircuitKind {
        match self {
            Phase::Closed => CircuitKind::Closed,
            Phase::Open { .. } => CircuitKind::Open,
            Phase::HalfOpen { .. } => CircuitKind::HalfOpen,
        }
    }
}

/// The quarantine of a binding's codec.
///
/// Closed, it counts failures in a sliding window of [`QuarantineConfig::window_s`];
/// [`QuarantineConfig::failures`] of them within the window open it for
/// [`QuarantineConfig::cooldown_s`]. After the cool-down the next [`CircuitBreaker::allow`]
/// is a [`Admission::Probe`], and every other message is rejected until the probe's outcome
/// is recorded: a success closes the breaker and clears its counters, a failure reopens it
/// with the cool-down doubled (at most [`MAX_COOLDOWN_FACTOR`] times the configured one; it
/// starts over once the breaker closes). A probe whose outcome is not recorded within one
/// (configured) cool-down counts as lost, and the next `allow` is a probe again.
///
/// Successes do not clear failures while closed: only the window ages them out. Outcomes
/// are not matched to messages: while open, outcomes (of messages admitted before it opened)
/// are ignored; while half-open, the first outcome recorded settles the probe.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    window: Duration,
    cooldown: Duration,
    hold: bool,
    phase: Phase,
    /// Failure times within the window, oldest first.
    failure_times: VecDeque<Instant>,
    /// The cool-down of the latest opening.
    current_cooldown: Duration,
    /// When the breaker last opened from closed.
    opened_at: Option<Instant>,
    history: VecDeque<Transition>,
    /// The latest time seen, so time never runs backwards.
    latest: Option<Instant>,
}

impl CircuitBreaker {
    /// A closed breaker, from a config that must be valid.
    pub fn new(config: &QuarantineConfig) -> Result<Self, PolicyError> {
        config.validate()?;
        let cooldown = Duration::from_secs(config.cooldown_s);
        Ok(Self {
            threshold: config.failures,
            window: Duration::from_secs(config.window_s),
            cooldown,
            hold: config.hold,
            phase: Phase::Closed,
            failure_times: VecDeque::new(),
            current_cooldown: cooldown,
            opened_at: None,
            history: VecDeque::with_capacity(BREAKER_HISTORY_LEN),
            latest: None,
        })
    }

    /// Whether rejected messages stay queued (`true`) or go to the dead-letter queue.
    pub fn hold(&self) -> bool {
        self.hold
    }

    /// The current state. An open breaker whose cool-down has ended stays open until the
    /// next [`CircuitBreaker::allow`].
    pub fn state(&self) -> CircuitState {
        match self.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { until } => CircuitState::Open { until },
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Whether the next message may run.
    pub fn allow(&mut self, now: Instant) -> Admission {
        let now = self.clock(now);
        match self.phase {
            Phase::Closed => Admission::Pass,
            Phase::Open { until } if now >= until => {
                self.enter(Phase::HalfOpen { probe_at: now }, now);
                Admission::Probe
            }
            Phase::Open { until } => Admission::Reject {
                retry_in: until - now,
            },
            Phase::HalfOpen { probe_at } => {
                let lost_at = later(probe_at, self.cooldown);
                if now >= lost_at {
                    self.phase = Phase::HalfOpen { probe_at: now };
                    Admission::Probe
                } else {
                    Admission::Reject {
                        retry_in: lost_at - now,
                    }
                }
            }
        }
    }

    /// Records a message that ran successfully.
    pub fn record_success(&mut self, now: Instant) {
        let now = self.clock(now);
        if let Phase::HalfOpen { .. } = self.phase {
            self.failure_times.clear();
            self.current_cooldown = self.cooldown;
            self.opened_at = None;
            self.enter(Phase::Closed, now);
        }
    }

    /// Records a message that failed (trap, fuel or deadline exhausted, invalid output).
    pub fn record_failure(&mut self, now: Instant) {
        let now = self.clock(now);
        match self.phase {
            Phase::Closed => {
                self.forget_old_failures(now);
                self.failure_times.push_back(now);
                if self.failure_times.len() >= self.threshold as usize {
                    self.current_cooldown = self.cooldown;
                    self.opened_at = Some(now);
                    self.enter(
                        Phase::Open {
                            until: later(now, self.cooldown),
                        },
                        now,
                    );
                }
            }
            Phase::HalfOpen { .. } => {
                self.current_cooldown = self
                    .current_cooldown
                    .saturating_mul(2)
                    .min(self.cooldown.saturating_mul(MAX_COOLDOWN_FACTOR));
                self.enter(
                    Phase::Open {
                        until: later(now, self.current_cooldown),
                    },
                    now,
                );
            }
            Phase::Open { .. } => {}
        }
    }

    /// Failures within the window ending at `now`.
    pub fn failures_in_window(&self, now: Instant) -> u32 {
        let counted = self
            .failure_times
            .iter()
            .filter(|&&at| now.saturating_duration_since(at) < self.window)
            .count();
        u32::try_from(counted).unwrap_or(u32::MAX)
    }

    /// The state for the API, with times relative to `now`.
    pub fn snapshot(&self, now: Instant) -> BreakerState {
        let retry_at = match self.phase {
            Phase::Closed => None,
            Phase::Open { until } => Some(until),
            Phase::HalfOpen { probe_at } => Some(later(probe_at, self.cooldown)),
        };
        BreakerState {
            state: self.phase.kind(),
            failures_in_window: self.failures_in_window(now),
            opened_ms_ago: self
                .opened_at
                .map(|at| millis(now.saturating_duration_since(at))),
            retry_in_ms: retry_at.map(|at| millis(at.saturating_duration_since(now))),
        }
    }

    /// The latest state changes, oldest first (at most [`BREAKER_HISTORY_LEN`]).
    pub fn history(&self) -> impl ExactSizeIterator<Item = &Transition> + DoubleEndedIterator {
        self.history.iter()
    }

    fn clock(&mut self, now: Instant) -> Instant {
        let now = self.latest.map_or(now, |latest| latest.max(now));
        self.latest = Some(now);
        now
    }

    fn forget_old_failures(&mut self, now: Instant) {
        while let Some(&oldest) = self.failure_times.front()
            && now.saturating_duration_since(oldest) >= self.window
        {
            self.failure_times.pop_front();
        }
    }

    fn enter(&mut self, phase: Phase, now: Instant) {
        if self.history.len() == BREAKER_HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(Transition {
            at: now,
            from: self.phase.kind(),
            to: phase.kind(),
        });
        self.phase = phase;
    }
}

/// Backoff between restarts of a binding's instances: the first restart is immediate, the
/// next ones in a row wait [`RestartConfig::backoff_initial_ms`], doubling up to
/// [`RestartConfig::backoff_max_ms`]. An instance that ran [`RestartConfig::reset_after_s`]
/// without a restart (counted from when its delayed start was due, so a long backoff is
/// not mistaken for a healthy run) starts the sequence over.
#[derive(Debug, Clone)]
pub struct RestartBackoff {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    restarts: u64,
    current: Duration,
    /// When the latest restart's instance was due to start.
    started_at: Option<Instant>,
}

impl RestartBackoff {
    /// A backoff with no restart yet, from a config that must be valid.
    pub fn new(config: &RestartConfig) -> Result<Self, PolicyError> {
        config.validate()?;
        Ok(Self {
            initial: Duration::from_millis(config.backoff_initial_ms),
            max: Duration::from_millis(config.backoff_max_ms),
            reset_after: Duration::from_secs(config.reset_after_s),
            restarts: 0,
            current: Duration::ZERO,
            started_at: None,
        })
    }

    /// Records a restart at `now` and returns how long to wait before starting the new
    /// instance.
    pub fn on_restart(&mut self, now: Instant) -> Duration {
        let ran_long_enough = self
            .started_at
            .is_none_or(|at| now.saturating_duration_since(at) >= self.reset_after);
        self.current = if ran_long_enough {
            Duration::ZERO
        } else if self.current.is_zero() {
            self.initial
        } else {
            self.current.saturating_mul(2).min(self.max)
        };
        self.restarts = self.restarts.saturating_add(1);
        self.started_at = Some(later(now, self.current));
        self.current
    }

    /// Restarts recorded since the backoff was created.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// The delay the latest restart got (zero before any restart).
    pub fn current_backoff(&self) -> Duration {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn bucket(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket::new(rate, burst, now).expect("valid bucket")
    }

    fn parse(json: &str) -> Result<BindingPolicy, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn breaker(failures: u32, window_s: u64, cooldown_s: u64) -> CircuitBreaker {
        CircuitBreaker::new(&QuarantineConfig {
            failures,
            window_s,
            cooldown_s,
            hold: false,
        })
        .expect("valid quarantine")
    }

    /// A breaker (3 failures in 60 s, 30 s cool-down) opened at `t0`.
    fn opened_breaker(t0: Instant) -> CircuitBreaker {
        let mut b = breaker(3, 60, 30);
        for _ in 0..3 {
            b.record_failure(t0);
        }
        assert_eq!(
            b.state(),
            CircuitState::Open {
                until: t0 + secs(30)
            }
        );
        b
    }

    fn backoff(initial_ms: u64, max_ms: u64, reset_after_s: u64) -> RestartBackoff {
        RestartBackoff::new(&RestartConfig {
            backoff_initial_ms: initial_ms,
            backoff_max_ms: max_ms,
            reset_after_s,
        })
        .expect("valid restart config")
    }

    fn field_of(result: Result<(), PolicyError>) -> String {
        result.expect_err("invalid").field
    }

    // --- configuration -------------------------------------------------------------------

    #[test]
    fn an_empty_policy_has_no_throttle_no_quarantine_and_default_restarts() {
        let policy = parse("{}").expect("valid");
        assert_eq!(policy, BindingPolicy::default());
        assert_eq!(policy.throttle, None);
        assert_eq!(policy.quarantine, None);
        assert_eq!(policy.restart.backoff_initial_ms, 100);
        assert_eq!(policy.restart.backoff_max_ms, 30_000);
        assert_eq!(policy.restart.reset_after_s, 60);
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn sections_given_in_part_take_defaults_for_the_rest() {
        let policy = parse(
            r#"{"throttle": {"messages_per_second": 10}, "quarantine": {"hold": true},
                "restart": {"backoff_max_ms": 5000}}"#,
        )
        .expect("valid");
        assert_eq!(
            policy.throttle,
            Some(ThrottleConfig {
                messages_per_second: Some(10.0),
                fuel_per_second: None,
                burst_seconds: 1.0,
            })
        );
        assert_eq!(
            policy.quarantine,
            Some(QuarantineConfig {
                failures: 5,
                window_s: 60,
                cooldown_s: 30,
                hold: true,
            })
        );
        assert_eq!(
            policy.restart,
            RestartConfig {
                backoff_initial_ms: 100,
                backoff_max_ms: 5000,
                reset_after_s: 60,
            }
        );
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn unknown_fields_are_rejected_at_every_level() {
        for json in [
            r#"{"throttel": {}}"#,
            r#"{"throttle": {"messages_per_sec": 1}}"#,
            r#"{"quarantine": {"failure": 3}}"#,
            r#"{"restart": {"backoff_initial": 10}}"#,
        ] {
            let error = parse(json).expect_err(json).to_string();
            assert!(error.contains("unknown field"), "{json}: {error}");
        }
    }

    #[test]
    fn a_policy_round_trips_through_json_leaving_out_absent_parts() -> Result<(), serde_json::Error>
    {
        let policy = BindingPolicy {
            throttle: Some(ThrottleConfig {
                messages_per_second: Some(2.5),
                fuel_per_second: None,
                burst_seconds: 3.0,
            }),
            quarantine: None,
            restart: RestartConfig::default(),
        };
        let json = serde_json::to_value(&policy)?;
        assert_eq!(
            json,
            serde_json::json!({
                "throttle": {"messages_per_second": 2.5, "burst_seconds": 3.0},
                "restart": {"backoff_initial_ms": 100, "backoff_max_ms": 30000, "reset_after_s": 60},
            })
        );
        assert_eq!(serde_json::from_value::<BindingPolicy>(json)?, policy);
        Ok(())
    }

    #[test]
    fn throttle_rates_must_be_positive_and_finite() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let config = ThrottleConfig {
                messages_per_second: Some(rate),
                ..ThrottleConfig::default()
            };
            assert_eq!(field_of(config.validate()), "messages_per_second", "{rate}");
        }
        let config = ThrottleConfig {
            fuel_per_second: Some(0),
            ..ThrottleConfig::default()
        };
        assert_eq!(field_of(config.validate()), "fuel_per_second");
        let tiny = ThrottleConfig {
            messages_per_second: Some(0.001),
            fuel_per_second: Some(1),
            ..ThrottleConfig::default()
        };
        assert_eq!(tiny.validate(), Ok(()));
    }

    #[test]
    fn throttle_burst_must_be_above_0_and_at_most_60_seconds() {
        for burst in [0.0, -1.0, 60.001, f64::NAN, f64::INFINITY] {
            let config = ThrottleConfig {
                burst_seconds: burst,
                ..ThrottleConfig::default()
            };
            assert_eq!(field_of(config.validate()), "burst_seconds", "{burst}");
        }
        for burst in [0.001, 1.0, 60.0] {
            let config = ThrottleConfig {
                burst_seconds: burst,
                ..ThrottleConfig::default()
            };
            assert_eq!(config.validate(), Ok(()), "{burst}");
        }
    }

    #[test]
    fn a_throttle_without_rates_is_valid() {
        assert_eq!(ThrottleConfig::default().validate(), Ok(()));
    }

    #[test]
    fn quarantine_needs_failures_window_and_cooldown_of_at_least_one() {
        let base = QuarantineConfig::default();
        assert_eq!(base.validate(), Ok(()));
        let cases = [
            (
                QuarantineConfig {
                    failures: 0,
                    ..base
                },
                "failures",
            ),
            (
                QuarantineConfig {
                    failures: MAX_QUARANTINE_FAILURES + 1,
                    ..base
                },
                "failures",
            ),
            (
                QuarantineConfig {
                    window_s: 0,
                    ..base
                },
                "window_s",
            ),
            (
                QuarantineConfig {
                    cooldown_s: 0,
                    ..base
                },
                "cooldown_s",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(field_of(config.validate()), field, "{config:?}");
        }
        let smallest = QuarantineConfig {
            failures: 1,
            window_s: 1,
            cooldown_s: 1,
            hold: true,
        };
        assert_eq!(smallest.validate(), Ok(()));
    }

    #[test]
    fn restart_needs_a_positive_initial_delay_and_a_max_not_below_it() {
        let base = RestartConfig::default();
        let cases = [
            (
                RestartConfig {
                    backoff_initial_ms: 0,
                    ..base
                },
                "backoff_initial_ms",
            ),
            (
                RestartConfig {
                    backoff_initial_ms: 200,
                    backoff_max_ms: 199,
                    ..base
                },
                "backoff_max_ms",
            ),
            (
                RestartConfig {
                    reset_after_s: 0,
                    ..base
                },
                "reset_after_s",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(field_of(config.validate()), field, "{config:?}");
        }
        let equal = RestartConfig {
            backoff_initial_ms: 200,
            backoff_max_ms: 200,
            ..base
        };
        assert_eq!(equal.validate(), Ok(()));
    }

    #[test]
    fn binding_policy_errors_name_the_section_and_read_field_colon_message() {
        let policy = parse(r#"{"throttle": {"messages_per_second": -2}}"#).expect("parses");
        let error = policy.validate().expect_err("invalid");
        assert_eq!(error.field, "throttle.messages_per_second");
        assert_eq!(
            error.to_string(),
            "throttle.messages_per_second: must be a positive number, got -2 \
             (leave it out for no limit)"
        );

        let policy = parse(r#"{"quarantine": {"window_s": 0}}"#).expect("parses");
        assert_eq!(field_of(policy.validate()), "quarantine.window_s");

        let policy = parse(r#"{"restart": {"backoff_max_ms": 10}}"#).expect("parses");
        let error = policy.validate().expect_err("invalid");
        assert_eq!(
            error.to_string(),
            "restart.backoff_max_ms: must be at least backoff_initial_ms (100), got 10"
        );
    }

    // --- token bucket --------------------------------------------------------------------

    #[test]
    fn a_bucket_starts_full() {
        let t0 = Instant::now();
        let b = bucket(10.0, 5.0, t0);
        assert_eq!(b.available(t0), 5.0);
        assert_eq!(b.wait_time(t0), Duration::ZERO);
        assert_eq!(b.rate_per_second(), 10.0);
        assert_eq!(b.burst(), 5.0);
    }

    #[test]
    fn a_bucket_rejects_a_bad_rate_or_burst() {
        let t0 = Instant::now();
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let error = TokenBucket::new(rate, 1.0, t0).expect_err("invalid rate");
            assert_eq!(error.field, "rate_per_second");
        }
        for burst in [-0.1, f64::NAN, f64::INFINITY] {
            let error = TokenBucket::new(1.0, burst, t0).expect_err("invalid burst");
            assert_eq!(error.field, "burst");
        }
    }

    #[test]
    fn taking_spends_the_burst_then_says_how_long_to_wait() {
        let t0 = Instant::now();
        let mut b = bucket(10.0, 3.0, t0);
        for _ in 0..3 {
            assert_eq!(b.try_take(1, t0), Ok(()));
        }
        assert_eq!(b.try_take(1, t0), Err(ms(100)));
        assert_eq!(b.try_take(2, t0), Err(ms(200)));
        // A refused take takes nothing.
        assert_eq!(b.available(t0), 0.0);
        assert_eq!(b.try_take(1, t0 + ms(99)), Err(ms(1)));
        assert_eq!(b.try_take(1, t0 + ms(100)), Ok(()));
    }

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = bucket(4.0, 2.0, t0);
        b.take_debt(2, t0);
        assert_eq!(b.available(t0), 0.0);
        assert_eq!(b.available(t0 + ms(250)), 1.0);
        assert_eq!(b.available(t0 + ms(500)), 2.0);
        assert_eq!(b.available(t0 + secs(60)), 2.0);
        assert_eq!(b.try_take(2, t0 + secs(60)), Ok(()));
        assert_eq!(b.try_take(1, t0 + secs(60)), Err(ms(250)));
    }

    #[test]
    fn a_full_bucket_admits_exactly_its_burst_whatever_the_rate() {
        let t0 = Instant::now();
        for rate in [0.3, 1.0 / 3.0, 1.5, 3.0, 7.0, 10.0, 1234.5678, 9_999.9] {
            for burst_seconds in [1.0, 2.0, 2.5, 60.0] {
                let burst: f64 = rate * burst_seconds;
                let mut b = bucket(rate, burst, t0);
                let mut taken = 0u64;
                while b.try_take(1, t0).is_ok() {
                    taken += 1;
                    assert!(taken <= 60_000_000, "runaway at {rate}/s");
                }
                // A burst below one token still lets one through (the bucket is full).
                let expected = (burst + 1e-9).floor().max(1.0) as u64;
                assert_eq!(taken, expected, "rate {rate}/s, burst {burst_seconds} s");
            }
        }
    }

    #[test]
    fn waiting_the_reported_time_is_always_enough() {
        let t0 = Instant::now();
        for rate in [0.3, 1.0 / 3.0, 1.5, 7.0, 1234.5678] {
            let mut b = bucket(rate, rate * 2.0, t0);
            let mut now = t0;
            b.take_debt(5, now);
            for _ in 0..50 {
                match b.try_take(1, now) {
                    Ok(()) => {}
                    Err(wait) => {
                        assert!(!wait.is_zero());
                        now += wait;
                        assert_eq!(b.try_take(1, now), Ok(()), "rate {rate}/s");
                    }
                }
            }
        }
    }

    #[test]
    fn an_amount_above_the_burst_passes_only_when_full_and_the_debt_delays_the_next() {
        let t0 = Instant::now();
        let mut b = bucket(10.0, 5.0, t0);
        assert_eq!(b.try_take(1, t0), Ok(()));
        // Not full: an oversized take waits until the bucket is full again.
        assert_eq!(b.try_take(8, t0), Err(ms(100)));
        let full = t0 + ms(100);
        assert_eq!(b.try_take(8, full), Ok(()));
        assert_eq!(b.available(full), -3.0);
        assert_eq!(b.wait_time(full), ms(300));
        // The next single token waits for the debt plus itself.
        assert_eq!(b.try_take(1, full), Err(ms(400)));
        assert_eq!(b.try_take(1, full + ms(400)), Ok(()));
    }

    #[test]
    fn debt_charged_after_the_fact_is_paid_back_at_the_rate() {
        let t0 = Instant::now();
        let mut b = bucket(1000.0, 1000.0, t0);
        b.take_debt(3500, t0);
        assert_eq!(b.available(t0), -2500.0);
        assert_eq!(b.wait_time(t0), ms(2500));
        assert_eq!(b.wait_time(t0 + ms(2000)), ms(500));
        assert_eq!(b.wait_time(t0 + ms(2500)), Duration::ZERO);
        assert_eq!(b.available(t0 + ms(2500)), 0.0);
        assert_eq!(b.try_take(0, t0 + ms(2499)), Err(ms(1)));
        assert_eq!(b.try_take(0, t0 + ms(2500)), Ok(()));
    }

    #[test]
    fn a_bucket_with_no_burst_paces_one_take_at_a_time() {
        let t0 = Instant::now();
        let mut b = bucket(2.0, 0.0, t0);
        assert_eq!(b.try_take(1, t0), Ok(()));
        assert_eq!(b.try_take(1, t0), Err(ms(500)));
        assert_eq!(b.try_take(1, t0 + ms(500)), Ok(()));
    }

    #[test]
    fn a_bucket_ignores_time_running_backwards() {
        let t0 = Instant::now();
        let later_t = t0 + secs(10);
        let mut b = bucket(1.0, 1.0, t0);
        assert_eq!(b.try_take(1, later_t), Ok(()));
        // An earlier instant neither refills nor panics.
        assert_eq!(b.try_take(1, t0), Err(secs(1)));
        assert_eq!(b.available(t0), 0.0);
        assert_eq!(b.try_take(1, later_t + secs(1)), Ok(()));
    }

    #[test]
    fn an_enormous_debt_saturates_instead_of_overflowing() {
        let t0 = Instant::now();
        let mut b = bucket(1e-9, 1e-9, t0);
        b.take_debt(u64::MAX, t0);
        b.take_debt(u64::MAX, t0);
        // The debt saturates at Duration::MAX; the burst (1 s of refill) is not debt.
        assert_eq!(b.wait_time(t0), Duration::MAX - secs(1));
        assert_eq!(
            b.try_take(1, t0 + secs(3600)),
            Err(Duration::MAX - secs(3600))
        );
        assert!(b.available(t0) < 0.0);
    }

    // --- throttle ------------------------------------------------------------------------

    #[test]
    fn a_throttle_without_limits_admits_everything() {
        let t0 = Instant::now();
        let mut t = Throttle::new(&ThrottleConfig::default(), t0).expect("valid");
        for _ in 0..10_000 {
            assert_eq!(t.admit(t0), Ok(()));
        }
        t.charge_fuel(u64::MAX, t0);
        assert_eq!(t.admit(t0), Ok(()));
        assert!(t.messages().is_none() && t.fuel().is_none());
    }

    #[test]
    fn a_throttle_rejects_an_invalid_config() {
        let config = ThrottleConfig {
            burst_seconds: 0.0,
            ..ThrottleConfig::default()
        };
        let error = Throttle::new(&config, Instant::now()).expect_err("invalid");
        assert_eq!(error.field, "burst_seconds");
    }

    #[test]
    fn a_throttle_admits_the_burst_then_messages_at_the_rate() {
        let t0 = Instant::now();
        let config = ThrottleConfig {
            messages_per_second: Some(10.0),
            burst_seconds: 2.0,
            ..ThrottleConfig::default()
        };
        let mut t = Throttle::new(&config, t0).expect("valid");
        for _ in 0..20 {
            assert_eq!(t.admit(t0), Ok(()));
        }
        assert_eq!(t.admit(t0), Err(ms(100)));
        let mut now = t0;
        let mut admitted = 0;
        while now <= t0 + secs(1) {
            match t.admit(now) {
                Ok(()) => admitted += 1,
                Err(wait) => now += wait,
            }
        }
        assert_eq!(admitted, 10);
    }

    #[test]
    fn a_throttle_below_one_message_per_second_spaces_them_out() {
        let t0 = Instant::now();
        let config = ThrottleConfig {
            messages_per_second: Some(0.5),
            ..ThrottleConfig::default()
        };
        let mut t = Throttle::new(&config, t0).expect("valid");
        assert_eq!(t.admit(t0), Ok(()));
        assert_eq!(t.admit(t0), Err(secs(2)));
        assert_eq!(t.admit(t0 + secs(2)), Ok(()));
        assert_eq!(t.admit(t0 + secs(3)), Err(secs(1)));
    }

    #[test]
    fn fuel_over_budget_delays_the_next_message_in_proportion() {
        let t0 = Instant::now();
        let config = ThrottleConfig {
            fuel_per_second: Some(1_000_000),
            ..ThrottleConfig::default()
        };
        let mut t = Throttle::new(&config, t0).expect("valid");
        assert_eq!(t.admit(t0), Ok(()));
        t.charge_fuel(1_500_000, t0);
        assert_eq!(t.admit(t0), Err(ms(500)));
        assert_eq!(t.admit(t0 + ms(500)), Ok(()));
        t.charge_fuel(3_000_000, t0 + ms(500));
        assert_eq!(t.admit(t0 + ms(500)), Err(secs(3)));
        assert_eq!(
            t.fuel().map(|f| f.available(t0 + ms(500))),
            Some(-3_000_000.0)
        );
    }

    #[test]
    fn a_throttle_waits_for_the_slower_bucket_and_spends_no_token_while_waiting() {
        let t0 = Instant::now();
        let config = ThrottleConfig {
            messages_per_second: Some(1.0),
            fuel_per_second: Some(100),
            burst_seconds: 1.0,
        };
        let mut t = Throttle::new(&config, t0).expect("valid");
        assert_eq!(t.admit(t0), Ok(()));
        t.charge_fuel(400, t0);
        // Messages would allow one in 1 s, fuel only in 3 s.
        assert_eq!(t.admit(t0), Err(secs(3)));
        // Refused admissions took no message token: the bucket is full again by then.
        assert_eq!(t.messages().map(|m| m.available(t0 + secs(3))), Some(1.0));
        assert_eq!(t.admit(t0 + secs(3)), Ok(()));
        // Now the message bucket is the slower one.
        assert_eq!(t.admit(t0 + secs(3)), Err(secs(1)));
    }

    // --- circuit breaker -----------------------------------------------------------------

    #[test]
    fn a_closed_breaker_lets_messages_pass_and_counts_failures() {
        let t0 = Instant::now();
        let mut b = breaker(3, 60, 30);
        assert_eq!(b.allow(t0), Admission::Pass);
        b.record_failure(t0);
        b.record_failure(t0 + secs(1));
        b.record_success(t0 + secs(2));
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.failures_in_window(t0 + secs(2)), 2);
        assert_eq!(b.allow(t0 + secs(2)), Admission::Pass);
        assert_eq!(b.history().len(), 0);
    }

    #[test]
    fn failures_reaching_the_threshold_within_the_window_open_the_breaker() {
        let t0 = Instant::now();
        let mut b = breaker(3, 60, 30);
        b.record_failure(t0);
        b.record_failure(t0 + secs(10));
        // Successes in between do not clear failures.
        b.record_success(t0 + secs(20));
        b.record_failure(t0 + secs(59));
        let opened = t0 + secs(59);
        assert_eq!(
            b.state(),
            CircuitState::Open {
                until: opened + secs(30)
            }
        );
        assert_eq!(
            b.allow(opened + secs(10)),
            Admission::Reject { retry_in: secs(20) }
        );
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let t0 = Instant::now();
        let mut b = breaker(3, 60, 30);
        b.record_failure(t0);
        b.record_failure(t0 + secs(30));
        // Exactly one window after the first failure, it has aged out.
        b.record_failure(t0 + secs(60));
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.failures_in_window(t0 + secs(60)), 2);
        assert_eq!(b.failures_in_window(t0 + secs(120)), 0);
        b.record_failure(t0 + secs(61));
        assert_eq!(b.state().kind(), CircuitKind::Open);
    }

    #[test]
    fn a_threshold_of_one_opens_on_the_first_failure() {
        let t0 = Instant::now();
        let mut b = breaker(1, 1, 1);
        b.record_failure(t0);
        assert_eq!(
            b.state(),
            CircuitState::Open {
                until: t0 + secs(1)
            }
        );
    }

    #[test]
    fn after_the_cooldown_one_probe_runs_and_the_rest_wait() {
        let t0 = Instant::now();
        let mut b = opened_breaker(t0);
        assert_eq!(
            b.allow(t0 + secs(29)),
            Admission::Reject { retry_in: secs(1) }
        );
        assert_eq!(b.allow(t0 + secs(31)), Admission::Probe);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(
            b.allow(t0 + secs(31)),
            Admission::Reject { retry_in: secs(30) }
        );
        assert_eq!(
            b.allow(t0 + secs(40)),
            Admission::Reject { retry_in: secs(21) }
        );
    }

    #[test]
    fn a_successful_probe_closes_the_breaker_and_clears_the_failures() {
        let t0 = Instant::now();
        let mut b = opened_breaker(t0);
        assert_eq!(b.allow(t0 + secs(30)), Admission::Probe);
        b.record_success(t0 + secs(31));
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.failures_in_window(t0 + secs(31)), 0);
        assert_eq!(b.allow(t0 + secs(31)), Admission::Pass);
        // It takes the full threshold again to reopen.
        b.record_failure(t0 + secs(32));
        b.record_failure(t0 + secs(32));
        assert_eq!(b.state(), CircuitState::Closed);
        b.record_failure(t0 + secs(32));
        assert_eq!(
            b.state(),
            CircuitState::Open {
                until: t0 + secs(62)
            }
        );
    }

    #[test]
    fn a_failed_probe_reopens_with_the_cooldown_doubled_up_to_ten_times() {
        let t0 = Instant::now();
        let mut b = opened_breaker(t0);
        let mut now = t0 + secs(30);
        let mut cooldowns = Vec::new();
        for _ in 0..6 {
            assert_eq!(b.allow(now), Admission::Probe);
            b.record_failure(now);
            let CircuitState::Open { until } = b.state() else {
                panic!("a failed probe must reopen the breaker");
            };
            cooldowns.push((until - now).as_secs());
            now = until;
        }
        assert_eq!(cooldowns, [60, 120, 240, 300, 300, 300]);
        // Closing starts the cool-down over.
        assert_eq!(b.allow(now), Admission::Probe);
        b.record_success(now);
        for _ in 0..3 {
            b.record_failure(now);
        }
        assert_eq!(
            b.state(),
            CircuitState::Open {
                until: now + secs(30)
            }
        );
    }

    #[test]
    fn a_probe_without_an_outcome_is_replaced_after_one_cooldown() {
        let t0 = Instant::now();
        let mut b = opened_breaker(t0);
        assert_eq!(b.allow(t0 + secs(30)), Admission::Probe);
        assert_eq!(
            b.allow(t0 + secs(59)),
            Admission::Reject { retry_in: secs(1) }
        );
        assert_eq!(b.allow(t0 + secs(60)), Admission::Probe);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        b.record_success(t0 + secs(61));
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn outcomes_recorded_while_open_are_ignored() {
        let t0 = Instant::now();
        let mut b = opened_breaker(t0);
        b.record_failure(t0 + secs(5));
        b.record_success(t0 + secs(6));
        assert_eq!(
            b.state(),
            CircuitState::Open {
                until: t0 + secs(30)
            }
        );
        assert_eq!(b.history().len(), 1);
    }

    #[test]
    fn a_breaker_ignores_time_running_backwards() {
        let t0 = Instant::now();
        let mut b = breaker(2, 60, 30);
        b.record_failure(t0 + secs(100));
        b.record_failure(t0);
        // The second failure counts as happening at the latest time seen.
        assert_eq!(
            b.state(),
            CircuitState::Open {
                until: t0 + secs(130)
            }
        );
        assert_eq!(b.allow(t0), Admission::Reject { retry_in: secs(30) });
    }

    #[test]
    fn history_keeps_the_last_twenty_transitions_oldest_first() {
        let t0 = Instant::now();
        let mut b = opened_breaker(t0);
        let first = *b.history().next().expect("one transition");
        assert_eq!(
            first,
            Transition {
                at: t0,
                from: CircuitKind::Closed,
                to: CircuitKind::Open,
            }
        );
        let mut now = t0;
        for _ in 0..15 {
            now += secs(300);
            assert_eq!(b.allow(now), Admission::Probe);
            b.record_failure(now);
        }
        // 1 + 15 × 2 = 31 transitions happened; the last 20 are kept.
        assert_eq!(b.history().len(), BREAKER_HISTORY_LEN);
        let last = *b.history().next_back().expect("transitions");
        assert_eq!(
            last,
            Transition {
                at: now,
                from: CircuitKind::HalfOpen,
                to: CircuitKind::Open,
            }
        );
        let oldest = *b.history().next().expect("transitions");
        assert_eq!(oldest.to, CircuitKind::HalfOpen);
        assert_eq!(oldest.at, t0 + secs(300 * 6));
    }

    #[test]
    fn the_snapshot_reports_state_failures_and_times_for_the_api() -> Result<(), serde_json::Error>
    {
        let t0 = Instant::now();
        let mut b = breaker(3, 60, 30);
        b.record_failure(t0);
        assert_eq!(
            b.snapshot(t0 + secs(1)),
            BreakerState {
                state: CircuitKind::Closed,
                failures_in_window: 1,
                opened_ms_ago: None,
                retry_in_ms: None,
            }
        );
        assert_eq!(
            serde_json::to_value(b.snapshot(t0))?,
            serde_json::json!({"state": "closed", "failures_in_window": 1})
        );
        b.record_failure(t0 + secs(1));
        b.record_failure(t0 + secs(2));
        let open = b.snapshot(t0 + ms(12_500));
        assert_eq!(
            open,
            BreakerState {
                state: CircuitKind::Open,
                failures_in_window: 3,
                opened_ms_ago: Some(10_500),
                retry_in_ms: Some(19_500),
            }
        );
        assert_eq!(
            serde_json::to_value(open)?,
            serde_json::json!({
                "state": "open",
                "failures_in_window": 3,
                "opened_ms_ago": 10_500,
                "retry_in_ms": 19_500,
            })
        );
        assert_eq!(b.allow(t0 + secs(32)), Admission::Probe);
        let probing = b.snapshot(t0 + secs(40));
        assert_eq!(probing.state, CircuitKind::HalfOpen);
        assert_eq!(probing.opened_ms_ago, Some(38_000));
        assert_eq!(probing.retry_in_ms, Some(22_000));
        assert_eq!(
            serde_json::to_value(probing.state)?,
            serde_json::json!("half-open")
        );
        Ok(())
    }

    #[test]
    fn the_breaker_exposes_its_hold_setting() {
        let config = QuarantineConfig {
            hold: true,
            ..QuarantineConfig::default()
        };
        assert!(CircuitBreaker::new(&config).expect("valid").hold());
        assert!(!breaker(5, 60, 30).hold());
    }

    #[test]
    fn a_breaker_rejects_an_invalid_config() {
        let config = QuarantineConfig {
            cooldown_s: 0,
            ..QuarantineConfig::default()
        };
        let error = CircuitBreaker::new(&config).expect_err("invalid");
        assert_eq!(error.field, "cooldown_s");
    }

    #[test]
    fn a_huge_cooldown_saturates_instead_of_overflowing() {
        let t0 = Instant::now();
        let mut b = breaker(1, 1, u64::MAX);
        b.record_failure(t0);
        assert_eq!(b.state().kind(), CircuitKind::Open);
        let Admission::Reject { retry_in } = b.allow(t0) else {
            panic!("must stay open");
        };
        assert!(retry_in >= secs(99 * 365 * 24 * 3600));
    }

    #[test]
    fn circuit_kinds_have_kebab_case_names() {
        assert_eq!(CircuitKind::Closed.to_string(), "closed");
        assert_eq!(CircuitKind::Open.as_str(), "open");
        assert_eq!(CircuitKind::HalfOpen.to_string(), "half-open");
    }

    // --- restart backoff -----------------------------------------------------------------

    #[test]
    fn the_first_restart_is_immediate_then_the_delay_doubles_up_to_the_max() {
        let t0 = Instant::now();
        let mut r = backoff(100, 1_000, 60);
        assert_eq!(r.restarts(), 0);
        assert_eq!(r.current_backoff(), Duration::ZERO);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..7 {
            let delay = r.on_restart(now);
            delays.push(delay.as_millis());
            now += delay + ms(10);
        }
        assert_eq!(delays, [0, 100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(r.restarts(), 7);
        assert_eq!(r.current_backoff(), ms(1_000));
    }

    #[test]
    fn a_max_that_is_not_a_doubling_of_the_initial_delay_caps_it() {
        let t0 = Instant::now();
        let mut r = backoff(100, 150, 60);
        let delays: Vec<_> = (0..4).map(|_| r.on_restart(t0).as_millis()).collect();
        assert_eq!(delays, [0, 100, 150, 150]);
    }

    #[test]
    fn running_for_the_reset_period_starts_the_backoff_over() {
        let t0 = Instant::now();
        let mut r = backoff(100, 30_000, 60);
        r.on_restart(t0);
        assert_eq!(r.on_restart(t0 + secs(1)), ms(100));
        assert_eq!(r.on_restart(t0 + secs(2)), ms(200));
        // The last instance was due to start at 2.2 s; it ran 59.9 s: not long enough.
        assert_eq!(r.on_restart(t0 + ms(62_100)), ms(400));
        // Due at 62.5 s, ran exactly 60 s.
        assert_eq!(r.on_restart(t0 + ms(122_500)), Duration::ZERO);
        assert_eq!(r.current_backoff(), Duration::ZERO);
        assert_eq!(r.on_restart(t0 + ms(122_600)), ms(100));
        assert_eq!(r.restarts(), 6);
    }

    #[test]
    fn a_backoff_longer_than_the_reset_period_is_not_mistaken_for_a_healthy_run() {
        let t0 = Instant::now();
        let mut r = backoff(120_000, 120_000, 60);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..4 {
            let delay = r.on_restart(now);
            delays.push(delay.as_secs());
            // Each instance fails one second after it starts.
            now += delay + secs(1);
        }
        assert_eq!(delays, [0, 120, 120, 120]);
    }

    #[test]
    fn a_restart_before_the_delayed_start_keeps_backing_off() {
        let t0 = Instant::now();
        let mut r = backoff(1_000, 10_000, 60);
        r.on_restart(t0);
        assert_eq!(r.on_restart(t0), secs(1));
        // Restarted again while still waiting for the delayed start.
        assert_eq!(r.on_restart(t0 + ms(500)), secs(2));
    }

    #[test]
    fn a_huge_max_backoff_saturates_instead_of_overflowing() {
        let t0 = Instant::now();
        let mut r = backoff(u64::MAX / 2 + 1, u64::MAX, 1);
        r.on_restart(t0);
        assert_eq!(r.on_restart(t0), ms(u64::MAX / 2 + 1));
        assert_eq!(r.on_restart(t0), ms(u64::MAX));
        assert_eq!(r.on_restart(t0), ms(u64::MAX));
    }

    #[test]
    fn restart_backoff_rejects_an_invalid_config() {
        let config = RestartConfig {
            backoff_initial_ms: 0,
            ..RestartConfig::default()
        };
        let error = RestartBackoff::new(&config).expect_err("invalid");
        assert_eq!(error.field, "backoff_initial_ms");
    }
}
