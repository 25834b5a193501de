//! One binding's worker: a thread that owns the binding's instances and runs its messages in
//! order (codec → router → format), then hands each result to an async delivery task.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;
use sluice_connectors::topic::TemplateVars;
use sluice_connectors::{BindingIo, Sink, parse_binding_io};
use sluice_formats::{Envelope as FormatEnvelope, encode};
use sluice_runtime::{CallReport, LogLevel};
use sluice_store::{Binding, NewDeadLetter};
use sluice_types::{Decision, Document, GuestFailure, ModuleRef};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::control::Control;
use crate::envelope::{Envelope, Outcome};
use crate::isolation::Exec;
use crate::metrics::{BindingSeries, CallSeries, FailureLabels};
use crate::policy::{
    Admission, BindingPolicy, CircuitBreaker, RestartBackoff, RestartConfig, Throttle,
};
use crate::{BindingHandles, Inner};

/// A module loaded for this binding.
struct Loaded {
    name: String,
    version: u32,
    exec: Exec,
    /// The module's guest-call series in this binding.
    calls: CallSeries,
}

/// Everything the worker has resolved from the registry, as of `generation`.
struct Resolved {
    generation: u64,
    binding_stamp: Option<u64>,
    codec: Result<Loaded, GuestFailure>,
    router: Option<Result<Loaded, GuestFailure>>,
    sinks: Result<Vec<Arc<Sink>>, String>,
    io: BindingIo,
    codec_name: String,
    policy: serde_json::Value,
}

pub(crate) struct Worker {
    inner: Arc<Inner>,
    tenant: String,
    binding: String,
    resolved: Option<Resolved>,
    /// The binding's metric series and live-view ring, shared with its deliveries.
    handles: Arc<BindingHandles>,
    in_flight: Arc<Semaphore>,
    /// Hands decoded messages to the binding's delivery task.
    deliveries: mpsc::UnboundedSender<Delivery>,
    control: Arc<Control>,
    policy: Policies,
    /// The failure of the message being handled, if the guest (or the host for it) failed.
    last_failure: std::cell::RefCell<Option<GuestFailure>>,
    /// Fuel the message being handled consumed.
    last_fuel: std::cell::Cell<u64>,
}

/// The binding's limit policies, built from its `policy` member.
struct Policies {
    source: serde_json::Value,
    throttle: Option<Throttle>,
    breaker: Option<CircuitBreaker>,
    restart: RestartBackoff,
    throttled: Duration,
    /// The tenant-wide budget this binding shares with the tenant's other bindings.
    tenant: Option<Arc<std::sync::Mutex<Throttle>>>,
    tenant_throttled: Duration,
}

impl Policies {
    fn new(source: &serde_json::Value, now: Instant) -> Result<Self, String> {
        let policy: BindingPolicy =
            serde_json::from_value(source.clone()).map_err(|e| e.to_string())?;
        policy.validate().map_err(|e| e.to_string())?;
        Ok(Self {
            source: source.clone(),
            throttle: policy
                .throttle
                .as_ref()
                .map(|t| Throttle::new(t, now))
                .transpose()
                .map_err(|e| e.to_string())?,
            breaker: policy
                .quarantine
                .as_ref()
                .map(CircuitBreaker::new)
                .transpose()
                .map_err(|e| e.to_string())?,
            restart: RestartBackoff::new(&policy.restart).map_err(|e| e.to_string())?,
            throttled: Duration::ZERO,
            tenant: None,
            tenant_throttled: Duration::ZERO,
        })
    }

    fn default_now() -> Self {
        Self::new(&serde_json::json!({}), Instant::now()).unwrap_or_else(|_| Self {
            source: serde_json::json!({}),
            throttle: None,
            breaker: None,
            restart: RestartBackoff::new(&RestartConfig::default())
                .unwrap_or_else(|_| unreachable_default_backoff()),
            throttled: Duration::ZERO,
            tenant: None,
            tenant_throttled: Duration::ZERO,
        })
    }
}

/// The default restart configuration always validates.
fn unreachable_default_backoff() -> RestartBackoff {
    let config = RestartConfig {
        backoff_initial_ms: 100,
        backoff_max_ms: 30_000,
        reset_after_s: 60,
    };
    match RestartBackoff::new(&config) {
        Ok(b) => b,
        Err(e) => panic!("the built-in restart policy is invalid: {e}"),
    }
}

/// Whether a failure counts against the binding's code (quarantine) rather than the host's
/// or a sink's.
fn counts_for_quarantine(failure: &GuestFailure) -> bool {
    !matches!(
        failure,
        GuestFailure::Host { .. }
            | GuestFailure::SinkFailed { .. }
            | GuestFailure::Quarantined { .. }
    )
}

/// Waits until `admit` lets the message through, or the worker is closing; returns how long
/// it waited. Each wait is counted in `sluice_throttled_seconds_total` of the binding.
fn wait_for_budget(
    control: &Control,
    series: &BindingSeries,
    mut admit: impl FnMut(Instant) -> Result<(), Duration>,
) -> Duration {
    let mut waited = Duration::ZERO;
    loop {
        match admit(Instant::now()) {
            Ok(()) => return waited,
            Err(wait) => {
                waited += wait;
                series.throttled_seconds.inc_by(wait.as_secs_f64());
                if !control.sleep(wait) {
                    return waited;
                }
            }
        }
    }
}

/// A sink delivery prepared by the worker: the sink and the encoded bytes.
type Job = (Arc<Sink>, Vec<u8>);

impl Worker {
    pub(crate) fn new(
        inner: Arc<Inner>,
        tenant: String,
        binding: String,
        in_flight: Arc<Semaphore>,
        deliveries: mpsc::UnboundedSender<Delivery>,
        control: Arc<Control>,
        handles: Arc<BindingHandles>,
    ) -> Self {
        Self {
            inner,
            tenant,
            binding,
            resolved: None,
            handles,
            in_flight,
            deliveries,
            control,
            policy: Policies::default_now(),
            last_failure: std::cell::RefCell::new(None),
            last_fuel: std::cell::Cell::new(0),
        }
    }

    /// Runs until the queue is closed and drained.
    pub(crate) fn run(mut self, mut queue: mpsc::Receiver<Envelope>) {
        while let Some(envelope) = queue.blocking_recv() {
            // A pause holds this message (unacknowledged) and the queue behind it.
            if !self.control.wait_while_paused() {
                return;
            }
            self.handles.series.queue_depth.set(queue.len() as i64);
            self.handle(envelope);
        }
        self.handles.series.queue_depth.set(0);
    }

    fn module_ref(&self, name: &str, version: Option<u32>) -> ModuleRef {
        ModuleRef::new(
            format!("{}/{}", self.tenant, name),
            version.map_or_else(|| "none".to_string(), |v| v.to_string()),
        )
    }

    fn load(
        &self,
        name: &str,
        previous: Option<Loaded>,
        binding: &Binding,
    ) -> Result<Loaded, GuestFailure> {
        let not_active = || GuestFailure::Host {
            module: self.module_ref(name, None),
            message: format!("module `{name}` has no active version; activate one"),
        };
        let stored = self
            .inner
            .store
            .get_active_version(&self.tenant, name)
            .map_err(|e| GuestFailure::Host {
                module: self.module_ref(name, None),
                message: format!("reading the registry: {e}"),
            })?
            .ok_or_else(not_active)?;
        if let Some(previous) = previous
            && previous.name == name
            && previous.version == stored.info.version
        {
            return Ok(previous);
        }
        let state = self
            .inner
            .store
            .state_store(&self.tenant, &self.binding)
            .map_err(|e| GuestFailure::Host {
                module: self.module_ref(name, Some(stored.info.version)),
                message: format!("opening device state: {e}"),
            })?;
        let exec = Exec::load(
            &self.inner.runtime,
            self.inner.tenant_process(&self.tenant),
            self.inner.next_slot(),
            self.module_ref(name, Some(stored.info.version)),
            &stored.component,
            stored.info.policy.clone(),
            binding.config.clone(),
            Arc::new(state),
        )?;
        tracing::info!(tenant = %self.tenant, binding = %self.binding, module = name, version = stored.info.version, "module loaded");
        Ok(Loaded {
            name: name.to_string(),
            version: stored.info.version,
            exec,
            calls: self.inner.metrics.calls(&self.tenant, &self.binding, name),
        })
    }

    /// Brings `resolved` up to the registry's current generation.
    fn refresh(&mut self) {
        let generation = self.inner.generation.load(Ordering::Acquire);
        if self
            .resolved
            .as_ref()
            .is_some_and(|r| r.generation == generation)
        {
            return;
        }
        self.policy.tenant = self.inner.tenant_throttle(&self.tenant);
        let previous = self.resolved.take();
        let binding = self.inner.store.get_binding(&self.tenant, &self.binding);
        let binding = match binding {
            Ok(Some(b)) => b,
            Ok(None) | Err(_) => {
                let reason = match binding {
                    Err(e) => format!("reading the registry: {e}"),
                    _ => format!("binding `{}` no longer exists", self.binding),
                };
                let module = self.module_ref("-", None);
                self.resolved = Some(Resolved {
                    generation,
                    binding_stamp: None,
                    codec: Err(GuestFailure::Host {
                        module,
                        message: reason.clone(),
                    }),
                    router: None,
                    sinks: Err(reason),
                    io: BindingIo::default(),
                    codec_name: "-".into(),
                    policy: serde_json::json!({}),
                });
                return;
            }
        };
        // Keep instances when neither the binding nor the active version changed.
        let same_binding = previous
            .as_ref()
            .is_some_and(|p| p.binding_stamp == Some(binding.updated_at_ms));
        let (prev_codec, prev_router, prev_sinks) = match previous {
            Some(p) if same_binding => (p.codec.ok(), p.router.and_then(Result::ok), p.sinks.ok()),
            _ => (None, None, None),
        };
        let codec = self.load(&binding.codec, prev_codec, &binding);
        let router = binding
            .router
            .as_ref()
            .map(|name| self.load(name, prev_router, &binding));
        let (io, sinks) = match parse_binding_io(
            &self.tenant,
            &self.binding,
            &binding.sources,
            &binding.sinks,
        ) {
            Ok(io) => {
                let sinks = match prev_sinks {
                    Some(sinks) => Ok(sinks),
                    None => io
                        .sinks
                        .iter()
                        .map(|spec| Sink::open(spec, &self.tenant, &self.inner.sinks))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string()),
                };
                (io, sinks)
            }
            Err(e) => (BindingIo::default(), Err(e.to_string())),
        };
        self.resolved = Some(Resolved {
            generation,
            binding_stamp: Some(binding.updated_at_ms),
            codec,
            router,
            sinks,
            io,
            codec_name: binding.codec.clone(),
            policy: binding.policy.clone(),
        });
    }

    /// Applies the binding's policies around [`Self::process`]: throttle and quarantine
    /// before, failure accounting and restart backoff after.
    fn handle(&mut self, envelope: Envelope) {
        self.refresh();
        self.refresh_policies();
        // Throttle: over budget, the message waits (and the queue behind it). First the
        // binding's own budget, then the tenant's, shared with its other bindings.
        let (control, series) = (&self.control, &self.handles.series);
        if let Some(throttle) = self.policy.throttle.as_mut() {
            self.policy.throttled += wait_for_budget(control, series, |now| throttle.admit(now));
        }
        if let Some(shared) = &self.policy.tenant {
            self.policy.tenant_throttled += wait_for_budget(control, series, |now| {
                shared.lock().map_or(Ok(()), |mut t| t.admit(now))
            });
        }
        // Quarantine: an open breaker dead-letters (or holds) messages until its probe passes.
        while let Some(breaker) = self.policy.breaker.as_mut() {
            let (admission, hold) = (breaker.allow(Instant::now()), breaker.hold());
            match admission {
                Admission::Pass | Admission::Probe => break,
                Admission::Reject { retry_in } if hold => {
                    self.publish_status();
                    if !self.control.sleep(retry_in) {
                        break;
                    }
                }
                Admission::Reject { retry_in } => {
                    let module =
                        ModuleRef::new(format!("{}/{}", self.tenant, self.binding), "quarantine");
                    let failure = GuestFailure::Quarantined {
                        module,
                        retry_in_ms: retry_in.as_millis() as u64,
                    };
                    let started = envelope.accepted_at;
                    self.dead_letter(envelope, failure, started);
                    self.publish_status();
                    return;
                }
            }
        }
        self.last_failure.replace(None);
        self.last_fuel.set(0);
        self.process(envelope);
        let now = Instant::now();
        if let Some(throttle) = self.policy.throttle.as_mut() {
            throttle.charge_fuel(self.last_fuel.get(), now);
        }
        if let Some(shared) = &self.policy.tenant
            && let Ok(mut tenant) = shared.lock()
        {
            tenant.charge_fuel(self.last_fuel.get(), now);
        }
        let failure = self.last_failure.take();
        if let Some(breaker) = self.policy.breaker.as_mut() {
            match &failure {
                Some(f) if counts_for_quarantine(f) => breaker.record_failure(now),
                Some(_) => {}
                None => breaker.record_success(now),
            }
        }
        // Restart: a trap or a limit discarded the instance; the next one starts after the
        // backoff, which grows while it keeps failing.
        if failure.as_ref().is_some_and(GuestFailure::poisons_instance) {
            let delay = self.policy.restart.on_restart(now);
            self.handles.series.restarts.inc();
            self.publish_status();
            if !delay.is_zero() {
                self.control.sleep(delay);
            }
        }
        self.publish_status();
    }

    /// Rebuilds the policies when the binding's `policy` changed.
    fn refresh_policies(&mut self) {
        let Some(source) = self.resolved.as_ref().map(|r| &r.policy) else {
            return;
        };
        if *source == self.policy.source {
            return;
        }
        let source = source.clone();
        match Policies::new(&source, Instant::now()) {
            Ok(policies) => {
                // The tenant's budget is not the binding's to reset.
                let tenant = self.policy.tenant.take();
                let waited = self.policy.tenant_throttled;
                self.policy = policies;
                self.policy.tenant = tenant;
                self.policy.tenant_throttled = waited;
            }
            Err(e) => {
                tracing::warn!(tenant = %self.tenant, binding = %self.binding, error = %e, "ignoring an invalid binding policy");
                self.policy.source = source;
            }
        }
    }

    fn publish_status(&self) {
        let now = Instant::now();
        let quarantine = self
            .policy
            .breaker
            .as_ref()
            .and_then(|b| serde_json::to_value(b.snapshot(now)).ok());
        let restarts = self.policy.restart.restarts();
        let backoff = self.policy.restart.current_backoff();
        let throttled = self.policy.throttled;
        let tenant_throttled = self.policy.tenant_throttled;
        if let Some(breaker) = &self.policy.breaker {
            let open = !matches!(breaker.state(), crate::policy::CircuitState::Closed);
            self.handles.series.quarantined.set(i64::from(open));
        }
        self.control.update(|s| {
            s.quarantine = quarantine;
            s.restarts = restarts;
            s.restart_backoff_ms = backoff.as_millis() as u64;
            s.throttled_ms = throttled.as_millis() as u64;
            s.tenant_throttled_ms = tenant_throttled.as_millis() as u64;
        });
    }

    fn process(&mut self, envelope: Envelope) {
        let started = envelope.accepted_at;
        let Some(resolved) = self.resolved.as_mut() else {
            return;
        };
        if let Some(reason) = envelope.refused.clone() {
            let module =
                ModuleRef::new(format!("{}/{}", self.tenant, resolved.codec_name), "source");
            let failure = GuestFailure::Host {
                module,
                message: reason,
            };
            self.dead_letter(envelope, failure, started);
            return;
        }
        // Decode.
        let codec = match resolved.codec.as_mut() {
            Ok(codec) => codec,
            Err(failure) => {
                let failure = failure.clone();
                self.dead_letter(envelope, failure, started);
                return;
            }
        };
        let outcome = codec.exec.decode(&envelope.uplink);
        let codec_ref = codec.exec.module_ref();
        report(&self.tenant, &self.binding, codec, &outcome.report);
        let document = match outcome.result {
            Ok(document) => document,
            Err(failure) => {
                self.dead_letter(envelope, failure, started);
                return;
            }
        };
        // Route.
        let Some(resolved) = self.resolved.as_mut() else {
            return;
        };
        let (decisions, doc_module) = match resolved.router.as_mut() {
            None => (None, codec_ref),
            Some(Err(failure)) => {
                let failure = failure.clone();
                self.dead_letter(envelope, failure, started);
                return;
            }
            Some(Ok(router)) => {
                let outcome = router.exec.route(&envelope.uplink, &document);
                let router_ref = router.exec.module_ref();
                report(&self.tenant, &self.binding, router, &outcome.report);
                match outcome.result {
                    Ok(decisions) => (Some(decisions), router_ref),
                    Err(failure) => {
                        self.dead_letter(envelope, failure, started);
                        return;
                    }
                }
            }
        };
        let prepared = self.prepare_jobs(&envelope, &document, decisions, &doc_module);
        let mut envelope = envelope;
        envelope.decoded = Some(Arc::new(document));
        match prepared {
            Err(failure) => self.dead_letter(envelope, failure, started),
            Ok((jobs, reasons)) if jobs.is_empty() => {
                self.settle(envelope, Outcome::Dropped { reasons }, started);
            }
            Ok((jobs, _)) => self.spawn_delivery(envelope, jobs, doc_module, started),
        }
    }

    /// Formats the document for each output it goes to.
    fn prepare_jobs(
        &self,
        envelope: &Envelope,
        document: &Document,
        decisions: Option<Vec<Decision>>,
        module: &ModuleRef,
    ) -> Result<(Vec<Job>, Vec<String>), GuestFailure> {
        let Some(resolved) = self.resolved.as_ref() else {
            return Ok((Vec::new(), Vec::new()));
        };
        let sinks = resolved
            .sinks
            .as_ref()
            .map_err(|reason| GuestFailure::Host {
                module: module.clone(),
                message: format!("the binding's sinks cannot be opened: {reason}"),
            })?;
        let mut jobs = Vec::new();
        let mut reasons = Vec::new();
        let mut encode_for = |sink: &Arc<Sink>, document: &Document| -> Result<(), GuestFailure> {
            let bytes = encode(
                sink.format(),
                &FormatEnvelope {
                    uplink: &envelope.uplink,
                    document,
                    tenant: &self.tenant,
                    binding: &self.binding,
                },
            )
            .map_err(|e| GuestFailure::SinkFailed {
                module: module.clone(),
                sink: sink.name().to_string(),
                attempts: 0,
                message: e.to_string(),
            })?;
            jobs.push((sink.clone(), bytes));
            Ok(())
        };
        match decisions {
            None => {
                if sinks.is_empty() {
                    reasons.push("the binding has no sinks".to_string());
                }
                for sink in sinks {
                    encode_for(sink, document)?;
                }
            }
            Some(decisions) => {
                if decisions.is_empty() {
                    reasons.push("the router returned no decision".to_string());
                }
                for decision in decisions {
                    if let Some(reason) = decision.drop_reason {
                        reasons.push(format!("{}: {reason}", decision.output));
                        continue;
                    }
                    let index = resolved.io.sink_index(&decision.output).ok_or_else(|| {
                        GuestFailure::InvalidOutput {
                            module: module.clone(),
                            reason: format!(
                                "the router chose output `{}`, and the binding has no sink of that name (it has: {})",
                                decision.output,
                                resolved.io.sinks.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
                            ),
                        }
                    })?;
                    let doc = decision.document.as_ref().unwrap_or(document);
                    encode_for(&sinks[index], doc)?;
                }
            }
        }
        Ok((jobs, reasons))
    }

    fn dead_letter(&self, envelope: Envelope, failure: GuestFailure, started: Instant) {
        self.last_failure.replace(Some(failure.clone()));
        if let Some(outcome) = write_dead_letter(&self.inner, &envelope, failure) {
            self.settle(envelope, outcome, started);
        }
    }

    fn settle(&self, envelope: Envelope, outcome: Outcome, started: Instant) {
        settle(&self.handles, envelope, outcome, started);
    }

    fn spawn_delivery(
        &self,
        envelope: Envelope,
        jobs: Vec<Job>,
        module: ModuleRef,
        started: Instant,
    ) {
        let inner = self.inner.clone();
        let handles = self.handles.clone();
        let semaphore = self.in_flight.clone();
        // Waits here when too many deliveries are in flight: the queue fills and the
        // source slows down.
        let Ok(permit) = self.inner.handle.block_on(semaphore.acquire_owned()) else {
            return;
        };
        self.handles.series.in_flight.inc();
        let delivery = Box::pin(deliver(
            inner, handles, envelope, jobs, module, started, permit,
        ));
        if let Err(mpsc::error::SendError(delivery)) = self.deliveries.send(delivery) {
            // The delivery task is gone (the runtime is stopping): deliver on its own.
            self.inner.handle.spawn(delivery);
        }
    }
}

/// One message's delivery to its sinks, settling it at the end.
pub(crate) type Delivery = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The binding's delivery task: runs every delivery the worker hands over, concurrently (as
/// many as the binding's in-flight permits allow), in one task. One task instead of one per
/// message means a busy binding wakes the async runtime once per batch, not per message.
pub(crate) async fn delivery_loop(mut deliveries: mpsc::UnboundedReceiver<Delivery>) {
    let mut running = FuturesUnordered::new();
    let mut open = true;
    while open || !running.is_empty() {
        tokio::select! {
            biased;
            delivery = deliveries.recv(), if open => match delivery {
                Some(delivery) => {
                    running.push(delivery);
                    while let Ok(delivery) = deliveries.try_recv() {
                        running.push(delivery);
                    }
                }
                None => open = false,
            },
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
}

async fn deliver(
    inner: Arc<Inner>,
    handles: Arc<BindingHandles>,
    envelope: Envelope,
    jobs: Vec<Job>,
    module: ModuleRef,
    started: Instant,
    permit: OwnedSemaphorePermit,
) {
    let series = &handles.series;
    let results = join_all(jobs.iter().map(|(sink, bytes)| {
        let vars = TemplateVars {
            tenant: &envelope.tenant,
            binding: &envelope.binding,
            device: &envelope.uplink.device_id,
            port: envelope.uplink.port,
            output: sink.name(),
        };
        async move { sink.deliver(&vars, bytes).await }
    }))
    .await;
    let mut outputs = Vec::new();
    let mut failed = None;
    for (result, (sink, _)) in results.into_iter().zip(&jobs) {
        match result {
            Ok(attempts) => {
                if attempts > 1 {
                    series.sink_retries.inc_by(u64::from(attempts - 1));
                }
                outputs.push(sink.name().to_string());
            }
            Err(e) => {
                series
                    .sink_retries
                    .inc_by(u64::from(e.attempts.saturating_sub(1)));
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        None => settle(&handles, envelope, Outcome::Delivered { outputs }, started),
        Some(e) => {
            let failure = GuestFailure::SinkFailed {
                module,
                sink: e.sink,
                attempts: e.attempts,
                message: e.error.to_string(),
            };
            let blocking = inner.clone();
            let written = tokio::task::spawn_blocking(move || {
                let outcome = write_dead_letter(&blocking, &envelope, failure);
                (envelope, outcome)
            })
            .await;
            if let Ok((envelope, Some(outcome))) = written {
                settle(&handles, envelope, outcome, started);
            }
        }
    }
    handles.series.in_flight.dec();
    drop(permit);
}

/// Writes the dead letter; `None` when even that failed (the message stays unsettled and the
/// source delivers it again).
fn write_dead_letter(inner: &Inner, envelope: &Envelope, failure: GuestFailure) -> Option<Outcome> {
    let entry = NewDeadLetter {
        tenant_id: envelope.tenant.clone(),
        binding: envelope.binding.clone(),
        uplink: envelope.uplink.clone(),
        module: failure.module().clone(),
        failure: failure.clone(),
        attempts: envelope.attempts + 1,
    };
    match inner.store.dlq_put(&entry) {
        Ok(id) => {
            inner
                .metrics
                .dead_letters
                .get_or_create(&FailureLabels {
                    tenant: envelope.tenant.clone(),
                    binding: envelope.binding.clone(),
                    kind: failure.kind().to_string(),
                })
                .inc();
            tracing::warn!(tenant = %envelope.tenant, binding = %envelope.binding, device = %envelope.uplink.device_id, dead_letter = id, kind = failure.kind(), "{failure}");
            Some(Outcome::DeadLettered {
                id,
                kind: failure.kind().to_string(),
                reason: failure.to_string(),
            })
        }
        Err(e) => {
            tracing::error!(tenant = %envelope.tenant, binding = %envelope.binding, error = %e, "could not write a dead letter; the message stays unacknowledged");
            None
        }
    }
}

/// Counts the message's outcome and latency, shows it in the live view, and acknowledges it.
fn settle(handles: &BindingHandles, envelope: Envelope, outcome: Outcome, started: Instant) {
    let series = &handles.series;
    series.settled(&outcome).inc();
    series.latency.observe(started.elapsed().as_secs_f64());
    handles.tap(&envelope, &outcome);
    envelope.ack.settle(&outcome);
}

/// Records one guest call: its duration, fuel and dropped log lines in the module's series,
/// and its log lines as tracing events.
fn report(tenant: &str, binding: &str, module: &mut Loaded, report: &CallReport) {
    let calls = &mut module.calls;
    calls.seconds.observe(report.duration.as_secs_f64());
    calls.fuel.inc_by(report.fuel_consumed);
    if report.logs_dropped > 0 {
        calls.logs_dropped.inc_by(report.logs_dropped);
    }
    let dropped = report.metrics_dropped + calls.guest.apply(&report.metrics);
    if dropped > 0 {
        calls.guest_dropped.inc_by(dropped);
    }
    let module = module.name.as_str();
    for line in &report.logs {
        let text = &line.message;
        match line.level {
            LogLevel::Error => {
                tracing::error!(target: "sluice::guest", %tenant, %binding, module, "{text}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "sluice::guest", %tenant, %binding, module, "{text}")
            }
            LogLevel::Info => {
                tracing::info!(target: "sluice::guest", %tenant, %binding, module, "{text}")
            }
            _ => tracing::debug!(target: "sluice::guest", %tenant, %binding, module, "{text}"),
        }
    }
}
