//! Sluice's message path. A message enters through a source (HTTP, MQTT, NATS, or a replayed
//! dead letter) as an [`Envelope`], waits in its binding's bounded queue, runs through the
//! codec (and router) on the binding's worker thread, is formatted for each output, and is
//! delivered to the sinks with retries. It is then settled exactly once: delivered, dropped
//! by the router, or written to the dead-letter queue with its typed reason. Only then is it
//! acknowledged upstream.
//!
//! Queues are bounded: a full queue makes the source wait (MQTT stops reading the socket),
//! it never drops a message.

mod control;
mod envelope;
mod isolation;
mod metrics;
pub mod policy;
mod worker;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_connectors::mqtt::{MqttMessage, MqttSettings, MqttSubscriber};
use sluice_connectors::nats::{NatsMessage, NatsPublisher, subject_matches};
use sluice_connectors::spec::{MqttSourceSpec, NatsSourceSpec};
use sluice_connectors::topic::{check_device_id, filter_matches};
use sluice_connectors::{SinkContext, SourceSpec, parse_binding_io};
use sluice_runtime::Runtime;
use sluice_store::{Binding, Store, StoreError};
use sluice_types::{Document, Uplink};
use tokio::sync::{Semaphore, mpsc, oneshot};

pub use control::BindingStatus;
pub use envelope::{Ack, Envelope, Outcome};
pub use isolation::Isolation;
pub use metrics::Metrics;
pub use sluice_worker::{SpawnOptions, WorkerOptions, WorkerStderr};

/// How many settled messages per binding [`Pipeline::recent`] keeps.
pub const RECENT_PER_BINDING: usize = 100;

/// Sizes of the pipeline's bounded queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Messages waiting per binding before sources are made to wait.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// Messages being delivered to sinks at once per binding.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
}

fn default_queue() -> usize {
    1024
}
fn default_in_flight() -> usize {
    512
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: default_queue(),
            max_in_flight: default_in_flight(),
        }
    }
}

/// A pipeline operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The registry failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tenant has no binding of that name.
    #[error("tenant `{tenant}` has no binding `{binding}`")]
    UnknownBinding {
        /// The tenant.
        tenant: String,
        /// The binding.
        binding: String,
    },
    /// The pipeline is shutting down.
    #[error("the pipeline is shutting down")]
    Closed,
    /// A blocking task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A settled message, kept for the live view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentMessage {
    /// The device.
    pub device_id: String,
    /// The port.
    pub port: u16,
    /// When the source received it.
    pub received_at_ms: u64,
    /// How it was settled.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The codec's document, when the message was decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<serde_json::Value>,
}

/// A settled message as the live view's ring keeps it: the document is turned into JSON only
/// when someone reads it.
#[derive(Debug, Clone)]
struct Tapped {
    device_id: String,
    port: u16,
    received_at_ms: u64,
    outcome: Outcome,
    document: Option<Arc<Document>>,
}

impl Tapped {
    fn view(&self) -> RecentMessage {
        RecentMessage {
            device_id: self.device_id.clone(),
            port: self.port,
            received_at_ms: self.received_at_ms,
            outcome: self.outcome.clone(),
            document: self
                .document
                .as_ref()
                .and_then(|d| serde_json::to_value(d.as_ref()).ok()),
        }
    }
}

/// What replaying one dead letter did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayResult {
    /// The dead letter replayed.
    pub id: i64,
    /// How the message was settled this time (absent when it could not be replayed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Why it could not be replayed (the entry stays in the queue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
struct MqttRoute {
    tenant: String,
    binding: String,
    spec: MqttSourceSpec,
}

#[derive(Debug, Clone)]
struct NatsRoute {
    tenant: String,
    binding: String,
    spec: NatsSourceSpec,
}

#[derive(Debug, Default)]
struct Routes {
    mqtt: Vec<MqttRoute>,
    nats: Vec<NatsRoute>,
}

type BindingKey = (String, String);

/// A tenant's throttle budget: its configuration and the buckets all its bindings draw on.
struct TenantThrottle {
    source: serde_json::Value,
    buckets: Arc<Mutex<policy::Throttle>>,
}

struct Slot {
    queue: mpsc::Sender<Envelope>,
    in_flight: Arc<Semaphore>,
    control: Arc<control::Control>,
    worker: Option<std::thread::JoinHandle<()>>,
}

pub(crate) struct Inner {
    store: Store,
    runtime: Runtime,
    sinks: SinkContext,
    metrics: Metrics,
    config: PipelineConfig,
    generation: AtomicU64,
    slots: RwLock<BTreeMap<BindingKey, Slot>>,
    routes: RwLock<Routes>,
    mqtt: Mutex<Option<MqttSettings>>,
    subscribers: tokio::sync::Mutex<BTreeMap<BindingKey, MqttSubscriber>>,
    nats: Mutex<Option<(NatsPublisher, mpsc::Sender<NatsMessage>)>>,
    recent: Mutex<BTreeMap<BindingKey, Arc<Recent>>>,
    /// Tenant-wide throttle budgets, shared by the tenant's binding workers.
    tenant_throttles: Mutex<BTreeMap<String, TenantThrottle>>,
    handle: tokio::runtime::Handle,
    closing: AtomicBool,
    isolation: Isolation,
    processes: Mutex<BTreeMap<String, Arc<isolation::TenantProcess>>>,
    next_slot: AtomicU64,
}

impl Inner {
    /// The tenant's worker process, when guest code runs out of process.
    pub(crate) fn tenant_process(&self, tenant: &str) -> Option<Arc<isolation::TenantProcess>> {
        let Isolation::Process(template) = &self.isolation else {
            return None;
        };
        let mut processes = self.processes.lock().ok()?;
        Some(
            processes
                .entry(tenant.to_string())
                .or_insert_with(|| Arc::new(isolation::TenantProcess::new(tenant, template)))
                .clone(),
        )
    }

    /// The throttle budget `tenant`'s bindings share, if it has one.
    pub(crate) fn tenant_throttle(&self, tenant: &str) -> Option<Arc<Mutex<policy::Throttle>>> {
        self.tenant_throttles
            .lock()
            .ok()
            .and_then(|t| t.get(tenant).map(|t| t.buckets.clone()))
    }

    /// Brings the tenant budgets in line with `tenants`, keeping the buckets (and what they
    /// hold) of budgets that did not change.
    fn set_tenant_throttles(&self, tenants: &[sluice_store::Tenant]) {
        let Ok(mut throttles) = self.tenant_throttles.lock() else {
            return;
        };
        let mut next = BTreeMap::new();
        for tenant in tenants {
            let Some(source) = &tenant.throttle else {
                continue;
            };
            if let Some(kept) = throttles.remove(&tenant.id)
                && &kept.source == source
            {
                next.insert(tenant.id.clone(), kept);
                continue;
            }
            let built = serde_json::from_value::<policy::ThrottleConfig>(source.clone())
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    policy::Throttle::new(&config, std::time::Instant::now())
                        .map_err(|e| e.to_string())
                });
            match built {
                Ok(throttle) => {
                    next.insert(
                        tenant.id.clone(),
                        TenantThrottle {
                            source: source.clone(),
                            buckets: Arc::new(Mutex::new(throttle)),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(tenant = %tenant.id, error = %e, "the tenant's throttle budget is invalid; not applied");
                }
            }
        }
        *throttles = next;
    }

    pub(crate) fn next_slot(&self) -> u64 {
        self.next_slot.fetch_add(1, Ordering::Relaxed)
    }

    /// The live-view ring of a binding (kept across its workers).
    fn recent_ring(&self, key: &BindingKey) -> Arc<Recent> {
        match self.recent.lock() {
            Ok(mut recent) => recent.entry(key.clone()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }
}

/// A binding's last settled messages, oldest first.
type Recent = Mutex<VecDeque<Tapped>>;

/// What a binding's worker and its deliveries share: the binding's metric series and its
/// live-view ring, both resolved once when the worker starts.
pub(crate) struct BindingHandles {
    series: metrics::BindingSeries,
    recent: Arc<Recent>,
}

impl BindingHandles {
    /// Keeps the settled message for the live view.
    fn tap(&self, envelope: &Envelope, outcome: &Outcome) {
        let tapped = Tapped {
            device_id: envelope.uplink.device_id.clone(),
            port: envelope.uplink.port,
            received_at_ms: envelope.uplink.received_at_ms,
            outcome: outcome.clone(),
            document: envelope.decoded.clone(),
        };
        if let Ok(mut ring) = self.recent.lock() {
            if ring.len() == RECENT_PER_BINDING {
                ring.pop_front();
            }
            ring.push_back(tapped);
        }
    }
}

/// A tenant's module run outside any binding: an upload's test vectors, a trial decode. Its
/// instances run where the tenant's bindings run theirs: in the tenant's worker process when
/// guest code is isolated, otherwise in this process. Each instance starts with empty device
/// state (nothing is read from or written to the store).
pub struct Trial {
    inner: Arc<Inner>,
    tenant: String,
    module: sluice_runtime::Module,
    component: Arc<Vec<u8>>,
}

impl std::fmt::Debug for Trial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trial")
            .field("tenant", &self.tenant)
            .field("module", self.module.module_ref())
            .finish_non_exhaustive()
    }
}

impl Trial {
    /// A fresh instance with `config` as the binding config. Blocking (it may start the
    /// tenant's worker process).
    pub fn instance(
        &self,
        config: &BTreeMap<String, String>,
    ) -> Result<TrialInstance, sluice_types::GuestFailure> {
        let exec = match self.inner.tenant_process(&self.tenant) {
            None => isolation::Exec::Local(
                self.module
                    .instantiate(sluice_runtime::InstanceEnv::with_config(config.clone())),
            ),
            Some(process) => isolation::Exec::load(
                &self.inner.runtime,
                Some(process),
                self.inner.next_slot(),
                self.module.module_ref().clone(),
                &self.component,
                self.module.policy().clone(),
                config.clone(),
                Arc::new(sluice_runtime::MemoryStateStore::new()),
            )?,
        };
        Ok(TrialInstance(exec))
    }
}

/// One instance of a [`Trial`]; dropped, it is unloaded from the worker process.
pub struct TrialInstance(isolation::Exec);

impl std::fmt::Debug for TrialInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TrialInstance")
            .field(&self.0.module_ref())
            .finish()
    }
}

impl TrialInstance {
    /// Decodes an uplink.
    pub fn decode(&mut self, uplink: &Uplink) -> sluice_runtime::CallOutcome<Document> {
        self.0.decode(uplink)
    }

    /// Encodes a downlink.
    pub fn encode(
        &mut self,
        downlink: &sluice_types::Downlink,
    ) -> sluice_runtime::CallOutcome<sluice_types::EncodedDownlink> {
        self.0.encode(downlink)
    }

    /// Routes a decoded uplink.
    pub fn route(
        &mut self,
        uplink: &Uplink,
        document: &Document,
    ) -> sluice_runtime::CallOutcome<Vec<sluice_types::Decision>> {
        self.0.route(uplink, document)
    }
}

/// The running pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Pipeline {
    /// A pipeline over `store` and `runtime`, delivering through `sinks`. Call inside a
    /// tokio runtime, then [`Pipeline::refresh`] to start the bindings' workers.
    pub fn new(
        store: Store,
        runtime: Runtime,
        sinks: SinkContext,
        metrics: Metrics,
        config: PipelineConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                runtime,
                sinks,
                metrics,
                config,
                generation: AtomicU64::new(1),
                slots: RwLock::default(),
                routes: RwLock::default(),
                mqtt: Mutex::default(),
                subscribers: tokio::sync::Mutex::default(),
                nats: Mutex::default(),
                recent: Mutex::default(),
                tenant_throttles: Mutex::default(),
                handle: tokio::runtime::Handle::current(),
                closing: AtomicBool::new(false),
                isolation: Isolation::InProcess,
                processes: Mutex::default(),
                next_slot: AtomicU64::new(1),
            }),
        }
    }

    /// The same pipeline running guest code as `isolation` says. Call before
    /// [`Pipeline::refresh`].
    pub fn with_isolation(mut self, isolation: Isolation) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.isolation = isolation;
        }
        self
    }

    /// The pid of `tenant`'s worker process, when it runs (process isolation only).
    pub fn worker_pid(&self, tenant: &str) -> Option<u32> {
        self.inner
            .processes
            .lock()
            .ok()
            .and_then(|p| p.get(tenant).and_then(|t| t.pid()))
    }

    /// Runs `module` of `tenant` (loaded from `component`) outside any binding, where the
    /// tenant's code runs.
    pub fn trial(
        &self,
        tenant: &str,
        module: sluice_runtime::Module,
        component: Arc<Vec<u8>>,
    ) -> Trial {
        Trial {
            inner: self.inner.clone(),
            tenant: tenant.to_string(),
            module,
            component,
        }
    }

    /// The metrics the pipeline feeds.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The store the pipeline reads bindings from and writes dead letters to.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Re-reads the registry: starts workers for new bindings, stops those of deleted ones,
    /// makes every worker pick up changed bindings and activated versions before its next
    /// message, and brings the MQTT and NATS subscriptions in line with the bindings'
    /// sources. Call after any change to bindings or module versions.
    pub async fn refresh(&self) -> Result<(), PipelineError> {
        let store = self.inner.store.clone();
        let (tenants, bindings): (Vec<sluice_store::Tenant>, Vec<Binding>) =
            tokio::task::spawn_blocking(move || {
                let tenants = store.list_tenants()?;
                let mut all = Vec::new();
                for tenant in &tenants {
                    all.extend(store.list_bindings(&tenant.id)?);
                }
                Ok::<_, StoreError>((tenants, all))
            })
            .await
            .map_err(|e| PipelineError::Internal(e.to_string()))??;
        self.inner.set_tenant_throttles(&tenants);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);

        let mut routes = Routes::default();
        for b in &bindings {
            match parse_binding_io(&b.tenant_id, &b.name, &b.sources, &b.sinks) {
                Ok(io) => {
                    for source in io.sources {
                        match source {
                            SourceSpec::Mqtt(spec) => routes.mqtt.push(MqttRoute {
                                tenant: b.tenant_id.clone(),
                                binding: b.name.clone(),
                                spec,
                            }),
                            SourceSpec::Nats(spec) => routes.nats.push(NatsRoute {
                                tenant: b.tenant_id.clone(),
                                binding: b.name.clone(),
                                spec,
                            }),
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(tenant = %b.tenant_id, binding = %b.name, error = %e, "binding has bad sources or sinks");
                }
            }
        }
        let mut mqtt_filters: BTreeMap<BindingKey, BTreeSet<String>> = BTreeMap::new();
        for route in &routes.mqtt {
            mqtt_filters
                .entry((route.tenant.clone(), route.binding.clone()))
                .or_default()
                .insert(route.spec.topic.clone());
        }
        let nats_filters: BTreeSet<String> =
            routes.nats.iter().map(|r| r.spec.subject.clone()).collect();
        if let Ok(mut r) = self.inner.routes.write() {
            *r = routes;
        }

        if !self.inner.closing.load(Ordering::Acquire) {
            let wanted: BTreeSet<BindingKey> = bindings
                .iter()
                .map(|b| (b.tenant_id.clone(), b.name.clone()))
                .collect();
            let mut stopped = Vec::new();
            if let Ok(mut slots) = self.inner.slots.write() {
                let gone: Vec<BindingKey> = slots
                    .keys()
                    .filter(|k| !wanted.contains(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    if let Some(slot) = slots.remove(&key) {
                        stopped.push(slot);
                    }
                }
                for key in wanted {
                    if let std::collections::btree_map::Entry::Vacant(entry) = slots.entry(key) {
                        let slot = self.start_worker(entry.key())?;
                        entry.insert(slot);
                    }
                }
                for b in &bindings {
                    if let Some(slot) = slots.get(&(b.tenant_id.clone(), b.name.clone())) {
                        slot.control.set_paused(b.paused);
                    }
                }
            }
            // Dropping a slot closes its queue; its worker drains what is queued and ends (a
            // paused one ends at once, leaving its messages unacknowledged).
            for slot in &stopped {
                slot.control.close();
            }
            drop(stopped);
        }

        let settings = self.inner.mqtt.lock().ok().and_then(|m| m.clone());
        if let Some(settings) = settings
            && !self.inner.closing.load(Ordering::Acquire)
        {
            self.sync_subscribers(&settings, mqtt_filters).await;
        }
        let nats = self.inner.nats.lock().ok().and_then(|n| n.clone());
        if let Some((nats, tx)) = nats {
            for filter in &nats_filters {
                if let Err(e) = nats.subscribe(filter, tx.clone()).await {
                    tracing::warn!(subject = %filter, error = %e, "nats subscription failed");
                }
            }
        }
        Ok(())
    }

    fn start_worker(&self, key: &BindingKey) -> Result<Slot, PipelineError> {
        let (tx, rx) = mpsc::channel(self.inner.config.queue_capacity.max(1));
        let in_flight = Arc::new(Semaphore::new(self.inner.config.max_in_flight.max(1)));
        let control = Arc::new(control::Control::default());
        let (deliveries, delivery_queue) = mpsc::unbounded_channel();
        let handles = Arc::new(BindingHandles {
            series: self.inner.metrics.binding(&key.0, &key.1),
            recent: self.inner.recent_ring(key),
        });
        self.inner
            .handle
            .spawn(worker::delivery_loop(delivery_queue));
        let worker = worker::Worker::new(
            self.inner.clone(),
            key.0.clone(),
            key.1.clone(),
            in_flight.clone(),
            deliveries,
            control.clone(),
            handles,
        );
        let handle = std::thread::Builder::new()
            .name(format!("sluice-{}", key.1))
            .spawn(move || worker.run(rx))
            .map_err(|e| PipelineError::Internal(format!("starting a worker thread: {e}")))?;
        tracing::debug!(tenant = %key.0, binding = %key.1, "binding worker started");
        Ok(Slot {
            queue: tx,
            in_flight,
            control,
            worker: Some(handle),
        })
    }

    /// Queues `envelope` on its binding, waiting while the queue is full.
    pub async fn submit(&self, envelope: Envelope) -> Result<(), PipelineError> {
        let key = (envelope.tenant.clone(), envelope.binding.clone());
        let queue = self
            .inner
            .slots
            .read()
            .ok()
            .and_then(|slots| slots.get(&key).map(|s| s.queue.clone()));
        match queue {
            None => Err(PipelineError::UnknownBinding {
                tenant: key.0,
                binding: key.1,
            }),
            Some(queue) => queue
                .send(envelope)
                .await
                .map_err(|_| PipelineError::Closed),
        }
    }

    /// Queues `uplink` and waits until it is settled.
    pub async fn process(
        &self,
        tenant: &str,
        binding: &str,
        uplink: Uplink,
    ) -> Result<Outcome, PipelineError> {
        let (tx, rx) = oneshot::channel();
        let ack = Ack::new(move |outcome| {
            let _ = tx.send(outcome.clone());
        });
        self.submit(Envelope::new(tenant, binding, uplink, ack))
            .await?;
        rx.await.map_err(|_| PipelineError::Closed)
    }

    /// Replays the dead letters `ids` of `tenant` through their bindings (with the versions
    /// active now). An entry leaves the queue once its message is settled again; if it
    /// fails again, the new dead letter replaces it.
    pub async fn replay(&self, tenant: &str, ids: &[i64]) -> Vec<ReplayResult> {
        let mut waiting = Vec::new();
        let mut results = Vec::new();
        for &id in ids {
            let store = self.inner.store.clone();
            let owner = tenant.to_string();
            let entry = tokio::task::spawn_blocking(move || store.dlq_get(&owner, id)).await;
            let entry = match entry {
                Ok(Ok(Some(entry))) => entry,
                Ok(Ok(None)) => {
                    results.push(ReplayResult {
                        id,
                        outcome: None,
                        error: Some(format!("no dead letter {id}")),
                    });
                    continue;
                }
                Ok(Err(e)) => {
                    results.push(ReplayResult {
                        id,
                        outcome: None,
                        error: Some(e.to_string()),
                    });
                    continue;
                }
                Err(e) => {
                    results.push(ReplayResult {
                        id,
                        outcome: None,
                        error: Some(e.to_string()),
                    });
                    continue;
                }
            };
            let (tx, rx) = oneshot::channel();
            let mut envelope = Envelope::new(
                tenant,
                entry.binding.clone(),
                entry.uplink,
                Ack::new(move |outcome| {
                    let _ = tx.send(outcome.clone());
                }),
            );
            envelope.attempts = entry.attempts;
            match self.submit(envelope).await {
                Ok(()) => waiting.push((id, rx)),
                Err(e) => results.push(ReplayResult {
                    id,
                    outcome: None,
                    error: Some(e.to_string()),
                }),
            }
        }
        for (id, rx) in waiting {
            match rx.await {
                Ok(outcome) => {
                    let store = self.inner.store.clone();
                    let owner = tenant.to_string();
                    let deleted =
                        tokio::task::spawn_blocking(move || store.dlq_delete(&owner, id)).await;
                    let error = match deleted {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(format!("settled, but removing the entry failed: {e}")),
                        Err(e) => Some(e.to_string()),
                    };
                    results.push(ReplayResult {
                        id,
                        outcome: Some(outcome),
                        error,
                    });
                }
                Err(_) => results.push(ReplayResult {
                    id,
                    outcome: None,
                    error: Some("the message was not settled; the entry stays".into()),
                }),
            }
        }
        results.sort_by_key(|r| r.id);
        results
    }

    /// The state of a binding's worker: pause, queue, quarantine, restarts, throttling.
    pub fn status(&self, tenant: &str, binding: &str) -> Option<BindingStatus> {
        let slots = self.inner.slots.read().ok()?;
        let slot = slots.get(&(tenant.to_string(), binding.to_string()))?;
        let mut status = slot.control.status();
        status.paused = slot.control.is_paused();
        status.queue_depth = (slot.queue.max_capacity() - slot.queue.capacity()) as u64;
        status.in_flight =
            (self.inner.config.max_in_flight.max(1) - slot.in_flight.available_permits()) as u64;
        Some(status)
    }

    /// Whether the binding is paused.
    pub fn is_paused(&self, tenant: &str, binding: &str) -> bool {
        self.inner
            .slots
            .read()
            .ok()
            .and_then(|slots| {
                slots
                    .get(&(tenant.to_string(), binding.to_string()))
                    .map(|slot| slot.control.is_paused())
            })
            .unwrap_or(false)
    }

    /// The last settled messages of a binding, oldest first.
    pub fn recent(&self, tenant: &str, binding: &str) -> Vec<RecentMessage> {
        self.inner
            .recent
            .lock()
            .ok()
            .and_then(|r| r.get(&(tenant.to_string(), binding.to_string())).cloned())
            .and_then(|ring| {
                ring.lock()
                    .ok()
                    .map(|ring| ring.iter().map(Tapped::view).collect())
            })
            .unwrap_or_default()
    }

    /// Updates the gauges that are read rather than counted (queue depth, DLQ depth).
    pub fn refresh_gauges(&self) {
        if let Ok(slots) = self.inner.slots.read() {
            for ((tenant, binding), slot) in slots.iter() {
                let depth = slot.queue.max_capacity() - slot.queue.capacity();
                self.inner
                    .metrics
                    .queue_depth
                    .get_or_create(&metrics::BindingLabels {
                        tenant: tenant.clone(),
                        binding: binding.clone(),
                    })
                    .set(depth as i64);
            }
        }
        if let Ok(tenants) = self.inner.store.list_tenants() {
            for tenant in tenants {
                if let Ok(depth) = self.inner.store.dlq_depth(&tenant.id, None) {
                    self.inner
                        .metrics
                        .dlq_depth
                        .get_or_create(&metrics::TenantLabels { tenant: tenant.id })
                        .set(depth as i64);
                }
            }
        }
    }

    /// Whether every configured broker connection is up.
    pub fn sources_connected(&self) -> bool {
        let mqtt = self
            .inner
            .subscribers
            .try_lock()
            .map(|subs| subs.values().all(MqttSubscriber::is_connected))
            .unwrap_or(true)
            && self
                .inner
                .sinks
                .mqtt
                .as_ref()
                .is_none_or(|p| p.is_connected());
        let nats = self
            .inner
            .nats
            .lock()
            .ok()
            .and_then(|n| n.clone())
            .is_none_or(|(n, _)| n.is_connected());
        mqtt && nats
    }

    /// Takes MQTT sources from the broker of `settings`: each binding with MQTT sources gets
    /// its own subscriber connection (client id `<client_id>-<tenant>-<binding>-in`, a
    /// persistent session), so a slow, paused or quarantined binding holds back only its own
    /// messages. A QoS 1 message is acknowledged once the binding has settled it. Takes
    /// effect at the next [`Pipeline::refresh`].
    pub fn attach_mqtt(&self, settings: MqttSettings) {
        if let Ok(mut m) = self.inner.mqtt.lock() {
            *m = Some(settings);
        }
    }

    /// Starts, updates and stops the per-binding subscribers to match `wanted`.
    async fn sync_subscribers(
        &self,
        settings: &MqttSettings,
        wanted: BTreeMap<BindingKey, BTreeSet<String>>,
    ) {
        let mut subscribers = self.inner.subscribers.lock().await;
        let gone: Vec<BindingKey> = subscribers
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(subscriber) = subscribers.remove(&key) {
                // Unsubscribe first, so the broker stops keeping messages for the session.
                for filter in subscriber.filters() {
                    subscriber.unsubscribe(&filter).await;
                }
                subscriber.close().await;
            }
        }
        for (key, filters) in wanted {
            if !subscribers.contains_key(&key) {
                let queue = self
                    .inner
                    .slots
                    .read()
                    .ok()
                    .and_then(|slots| slots.get(&key).map(|slot| slot.queue.clone()));
                let Some(queue) = queue else {
                    tracing::error!(tenant = %key.0, binding = %key.1, "the binding has no worker; its MQTT sources are not read");
                    continue;
                };
                let mut per_binding = settings.clone();
                per_binding.client_id = format!("{}-{}-{}", settings.client_id, key.0, key.1);
                // Messages go from the subscriber's connection straight into the binding's
                // queue: a full queue stops the connection reading.
                let intake = mqtt_intake(self.inner.clone(), key.clone());
                match MqttSubscriber::start_with(&per_binding, queue, intake) {
                    Ok(subscriber) => {
                        subscribers.insert(key.clone(), subscriber);
                    }
                    Err(e) => {
                        tracing::error!(tenant = %key.0, binding = %key.1, error = %e, "cannot start the MQTT subscriber");
                        continue;
                    }
                }
            }
            if let Some(subscriber) = subscribers.get(&key) {
                for filter in subscriber.filters() {
                    if !filters.contains(&filter) {
                        subscriber.unsubscribe(&filter).await;
                    }
                }
                for filter in &filters {
                    subscriber.subscribe(filter).await;
                }
            }
        }
    }

    /// Feeds NATS messages on the bindings' subjects into the bindings.
    pub fn attach_nats(&self, nats: NatsPublisher) {
        let (tx, rx) = mpsc::channel(self.inner.config.queue_capacity.max(1));
        if let Ok(mut n) = self.inner.nats.lock() {
            *n = Some((nats, tx));
        }
        tokio::spawn(nats_dispatch(self.clone(), rx));
    }

    /// Stops intake, lets every queued and in-flight message be settled (up to `timeout`),
    /// then acknowledges what was settled and disconnects. Messages not settled by then stay
    /// unacknowledged and the broker delivers them again.
    pub async fn shutdown(&self, timeout: Duration) {
        self.inner.closing.store(true, Ordering::Release);
        let subscribers: Vec<MqttSubscriber> =
            std::mem::take(&mut *self.inner.subscribers.lock().await)
                .into_values()
                .collect();
        for subscriber in &subscribers {
            subscriber.pause_intake();
        }
        let nats = self.inner.nats.lock().ok().and_then(|mut n| n.take());
        if let Some((nats, _)) = &nats {
            nats.close().await;
        }
        let slots: Vec<Slot> = self
            .inner
            .slots
            .write()
            .map(|mut s| std::mem::take(&mut *s).into_values().collect())
            .unwrap_or_default();
        let max = self.inner.config.max_in_flight.max(1) as u32;
        let drain = async {
            for mut slot in slots {
                slot.control.close();
                let in_flight = slot.in_flight.clone();
                let worker = slot.worker.take();
                drop(slot);
                if let Some(worker) = worker {
                    let _ = tokio::task::spawn_blocking(move || worker.join()).await;
                }
                let _ = in_flight.acquire_many(max).await;
            }
        };
        if tokio::time::timeout(timeout, drain).await.is_err() {
            tracing::warn!(
                "shutdown: not every message was settled in time; the rest stays unacknowledged"
            );
        }
        for subscriber in subscribers {
            subscriber.close().await;
        }
        if let Some(mqtt) = &self.inner.sinks.mqtt {
            mqtt.close().await;
        }
        let processes: Vec<Arc<isolation::TenantProcess>> = self
            .inner
            .processes
            .lock()
            .map(|mut p| std::mem::take(&mut *p).into_values().collect())
            .unwrap_or_default();
        if !processes.is_empty() {
            let _ = tokio::task::spawn_blocking(move || {
                for process in processes {
                    process.shutdown();
                }
            })
            .await;
        }
    }
}

fn uplink_from(device_id: String, port: u16, payload: &[u8], meta: (&str, &str)) -> Uplink {
    Uplink {
        device_id,
        port,
        received_at_ms: now_ms(),
        payload: payload.to_vec(),
        metadata: vec![(meta.0.to_string(), meta.1.to_string())],
    }
}

fn identified(result: Result<(String, u16), String>) -> (String, u16, Option<String>) {
    match result {
        Ok((device, port)) => match check_device_id(&device) {
            Ok(()) => (device, port, None),
            Err(reason) => (String::new(), port, Some(reason)),
        },
        Err(reason) => (String::new(), 0, Some(reason)),
    }
}

/// Turns the MQTT messages of `key`'s subscriber into the binding's envelopes. A message on
/// a topic the binding no longer takes is acknowledged and left.
fn mqtt_intake(
    inner: Arc<Inner>,
    key: BindingKey,
) -> impl FnMut(MqttMessage) -> Option<Envelope> + Send + 'static {
    move |message| {
        let identified = inner.routes.read().ok().and_then(|routes| {
            routes
                .mqtt
                .iter()
                .find(|route| {
                    route.tenant == key.0
                        && route.binding == key.1
                        && filter_matches(&route.spec.topic, &message.topic)
                })
                .map(|route| identified(route.spec.identify(&message.topic)))
        });
        let Some((device, port, refused)) = identified else {
            tracing::debug!(topic = %message.topic, "the binding no longer takes this topic; acknowledged");
            if let Some(ack) = message.ack {
                ack.ack();
            }
            return None;
        };
        let uplink = uplink_from(
            device,
            port,
            &message.payload,
            ("mqtt.topic", &message.topic),
        );
        let ack = match message.ack {
            Some(mqtt) => Ack::new(move |_| mqtt.ack()),
            None => Ack::none(),
        };
        let mut envelope = Envelope::new(key.0.clone(), key.1.clone(), uplink, ack);
        envelope.refused = refused;
        Some(envelope)
    }
}

async fn nats_dispatch(pipeline: Pipeline, mut messages: mpsc::Receiver<NatsMessage>) {
    while let Some(message) = messages.recv().await {
        let targets: Vec<NatsRoute> = pipeline
            .inner
            .routes
            .read()
            .map(|r| {
                r.nats
                    .iter()
                    .filter(|route| {
                        route.spec.subject == message.filter
                            && subject_matches(&route.spec.subject, &message.subject)
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for route in targets {
            let (device, port, refused) = identified(route.spec.identify(&message.subject));
            let uplink = uplink_from(
                device,
                port,
                &message.payload,
                ("nats.subject", &message.subject),
            );
            let mut envelope = Envelope::new(route.tenant, route.binding, uplink, Ack::none());
            envelope.refused = refused;
            if let Err(e) = pipeline.submit(envelope).await {
                tracing::warn!(subject = %message.subject, error = %e, "message not queued");
            }
        }
    }
}
