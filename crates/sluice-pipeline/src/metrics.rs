//! The pipeline's Prometheus metrics. Labels are bounded by what the registry holds:
//! tenant, binding, module and a fixed set of outcomes and failure kinds.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of per-binding series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BindingLabels {
    /// The tenant.
    pub tenant: String,
    /// The binding.
    pub binding: String,
}

/// Labels of message counts.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The tenant.
    pub tenant: String,
    /// The binding.
    pub binding: String,
    /// `delivered`, `dropped` or `dead-lettered`.
    pub outcome: String,
}

/// Labels of dead-letter counts.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The tenant.
    pub tenant: String,
    /// The binding.
    pub binding: String,
    /// [`sluice_types::GuestFailure::kind`].
    pub kind: String,
}

/// Labels of guest-call series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The tenant.
    pub tenant: String,
    /// The binding.
    pub binding: String,
    /// The module's name.
    pub module: String,
}

/// Labels of a guest's own metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuestMetricLabels {
    /// The tenant.
    pub tenant: String,
    /// The binding.
    pub binding: String,
    /// The module's name.
    pub module: String,
    /// The name the guest gave (at most [`MAX_GUEST_METRICS_PER_MODULE`] per module and
    /// binding).
    pub name: String,
}

/// Distinct metric names a module may create in one binding; updates of further names are
/// dropped and counted, so a guest cannot grow the service's series without bound.
pub const MAX_GUEST_METRICS_PER_MODULE: usize = 64;

/// Labels of per-tenant series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The tenant.
    pub tenant: String,
}

fn call_histogram() -> Histogram {
    // 5 µs .. ~1.3 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        5e-6, 2.0, 18,
    ))
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~6.5 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        5e-5, 2.0, 18,
    ))
}

/// One binding's series (handles that share their values with the registry's).
#[derive(Debug, Clone)]
pub(crate) struct BindingSeries {
    pub(crate) delivered: Counter,
    pub(crate) dropped: Counter,
    pub(crate) dead_lettered: Counter,
    pub(crate) latency: Histogram,
    pub(crate) sink_retries: Counter,
    pub(crate) queue_depth: Gauge,
    pub(crate) in_flight: Gauge,
    pub(crate) throttled_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    pub(crate) restarts: Counter,
    pub(crate) quarantined: Gauge,
}

impl BindingSeries {
    /// The message count of `outcome`.
    pub(crate) fn settled(&self, outcome: &crate::Outcome) -> &Counter {
        match outcome {
            crate::Outcome::Delivered { .. } => &self.delivered,
            crate::Outcome::Dropped { .. } => &self.dropped,
            crate::Outcome::DeadLettered { .. } => &self.dead_lettered,
        }
    }
}

/// The guest-call series of one module in one binding.
#[derive(Debug)]
pub(crate) struct CallSeries {
    pub(crate) seconds: Histogram,
    pub(crate) fuel: Counter,
    pub(crate) logs_dropped: Counter,
    pub(crate) guest_dropped: Counter,
    pub(crate) guest: GuestSeries,
}

/// A guest metric's series, once resolved.
#[derive(Debug, Clone)]
enum GuestMetric {
    Counter(Counter),
    Gauge(Gauge<f64, std::sync::atomic::AtomicU64>),
}

/// The guest metric names each module has created in each binding, and whether each is a
/// counter: the cap and the kind hold across the module's versions and the binding's workers.
type GuestNames = Arc<std::sync::Mutex<HashMap<CallLabels, HashMap<String, bool>>>>;

/// The metrics one module reports in one binding: each name resolved once per loaded
/// version, at most [`MAX_GUEST_METRICS_PER_MODULE`] names.
#[derive(Debug)]
pub(crate) struct GuestSeries {
    labels: CallLabels,
    counters: Family<GuestMetricLabels, Counter>,
    gauges: Family<GuestMetricLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    known: GuestNames,
    names: HashMap<String, GuestMetric>,
}

impl GuestSeries {
    /// Applies the updates of one call; returns how many were dropped (a name over the cap,
    /// or a name already used by the other kind of metric).
    pub(crate) fn apply(&mut self, updates: &[sluice_runtime::MetricUpdate]) -> u64 {
        use sluice_runtime::MetricUpdate;
        let mut dropped = 0;
        for update in updates {
            let (name, is_counter) = match update {
                MetricUpdate::Counter { name, .. } => (name, true),
                MetricUpdate::Gauge { name, .. } => (name, false),
            };
            if !self.names.contains_key(name) {
                // First use in this version: the kind a name was created with, or room for it.
                let kind = self.known.lock().ok().and_then(|mut known| {
                    let names = known.entry(self.labels.clone()).or_default();
                    match names.get(name) {
                        Some(&kind) => Some(kind),
                        None if names.len() < MAX_GUEST_METRICS_PER_MODULE => {
                            names.insert(name.clone(), is_counter);
                            Some(is_counter)
                        }
                        None => None,
                    }
                });
                let Some(counter) = kind else {
                    dropped += 1;
                    continue;
                };
                let labels = GuestMetricLabels {
                    tenant: self.labels.tenant.clone(),
                    binding: self.labels.binding.clone(),
                    module: self.labels.module.clone(),
                    name: name.clone(),
                };
                let metric = if counter {
                    GuestMetric::Counter(self.counters.get_or_create(&labels).clone())
                } else {
                    GuestMetric::Gauge(self.gauges.get_or_create(&labels).clone())
                };
                self.names.insert(name.clone(), metric);
            }
            match (self.names.get(name), update) {
                (Some(GuestMetric::Counter(c)), MetricUpdate::Counter { delta, .. }) => {
                    c.inc_by(*delta);
                }
                (Some(GuestMetric::Gauge(g)), MetricUpdate::Gauge { value, .. }) => {
                    g.set(*value);
                }
                _ => dropped += 1,
            }
        }
        dropped
    }
}

/// Every series the pipeline feeds. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    /// `sluice_messages_total{tenant,binding,outcome}`.
    pub messages: Family<OutcomeLabels, Counter>,
    /// `sluice_dead_letters_total{tenant,binding,kind}`.
    pub dead_letters: Family<FailureLabels, Counter>,
    /// `sluice_guest_call_seconds{tenant,binding,module}`.
    pub call_seconds: Family<CallLabels, Histogram, fn() -> Histogram>,
    /// `sluice_guest_fuel_total{tenant,binding,module}`.
    pub fuel: Family<CallLabels, Counter>,
    /// `sluice_guest_log_lines_dropped_total{tenant,binding,module}`.
    pub logs_dropped: Family<CallLabels, Counter>,
    /// `sluice_guest_counter_total{tenant,binding,module,name}`: the guests' own counters.
    pub guest_counters: Family<GuestMetricLabels, Counter>,
    /// `sluice_guest_gauge{tenant,binding,module,name}`: the guests' own gauges.
    pub guest_gauges: Family<GuestMetricLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// `sluice_guest_metric_updates_dropped_total{tenant,binding,module}`: updates over the
    /// per-call or per-module name caps.
    pub guest_metrics_dropped: Family<CallLabels, Counter>,
    /// The guest metric names created so far, per module and binding.
    guest_names: GuestNames,
    /// `sluice_message_latency_seconds{tenant,binding}`: from intake to settled.
    pub latency: Family<BindingLabels, Histogram, fn() -> Histogram>,
    /// `sluice_sink_retries_total{tenant,binding}`.
    pub sink_retries: Family<BindingLabels, Counter>,
    /// `sluice_queue_depth{tenant,binding}`.
    pub queue_depth: Family<BindingLabels, Gauge>,
    /// `sluice_in_flight{tenant,binding}`: messages decoded and being delivered.
    pub in_flight: Family<BindingLabels, Gauge>,
    /// `sluice_dlq_depth{tenant}`.
    pub dlq_depth: Family<TenantLabels, Gauge>,
    /// `sluice_throttled_seconds_total{tenant,binding}`: time messages waited for the
    /// throttle.
    pub throttled_seconds: Family<BindingLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    /// `sluice_instance_restarts_total{tenant,binding}`.
    pub restarts: Family<BindingLabels, Counter>,
    /// `sluice_quarantined{tenant,binding}`: 1 while the breaker is open or half-open.
    pub quarantined: Family<BindingLabels, Gauge>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of series, registered under the `sluice` prefix.
    pub fn new() -> Self {
        let messages = Family::<OutcomeLabels, Counter>::default();
        let dead_letters = Family::<FailureLabels, Counter>::default();
        let call_seconds = Family::<CallLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            call_histogram as fn() -> Histogram,
        );
        let fuel = Family::<CallLabels, Counter>::default();
        let logs_dropped = Family::<CallLabels, Counter>::default();
        let guest_counters = Family::<GuestMetricLabels, Counter>::default();
        let guest_gauges =
            Family::<GuestMetricLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let guest_metrics_dropped = Family::<CallLabels, Counter>::default();
        let latency = Family::<BindingLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let sink_retries = Family::<BindingLabels, Counter>::default();
        let queue_depth = Family::<BindingLabels, Gauge>::default();
        let in_flight = Family::<BindingLabels, Gauge>::default();
        let dlq_depth = Family::<TenantLabels, Gauge>::default();
        let throttled_seconds =
            Family::<BindingLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
        let restarts = Family::<BindingLabels, Counter>::default();
        let quarantined = Family::<BindingLabels, Gauge>::default();
        let mut registry = Registry::with_prefix("sluice");
        registry.register("messages", "Messages settled, by outcome", messages.clone());
        registry.register(
            "dead_letters",
            "Messages dead-lettered, by failure kind",
            dead_letters.clone(),
        );
        registry.register(
            "guest_call_seconds",
            "Wall-clock time of one guest call",
            call_seconds.clone(),
        );
        registry.register("guest_fuel", "Fuel consumed by guest calls", fuel.clone());
        registry.register(
            "guest_log_lines_dropped",
            "Guest log lines dropped by the per-call caps",
            logs_dropped.clone(),
        );
        registry.register(
            "guest_counter",
            "Counters guests increment through sluice:codec/metrics",
            guest_counters.clone(),
        );
        registry.register(
            "guest_gauge",
            "Gauges guests set through sluice:codec/metrics",
            guest_gauges.clone(),
        );
        registry.register(
            "guest_metric_updates_dropped",
            "Guest metric updates dropped by the name caps",
            guest_metrics_dropped.clone(),
        );
        registry.register(
            "message_latency_seconds",
            "Time from intake to settled (delivered, dropped or dead-lettered)",
            latency.clone(),
        );
        registry.register(
            "sink_retries",
            "Sink delivery attempts after the first",
            sink_retries.clone(),
        );
        registry.register(
            "queue_depth",
            "Messages waiting in a binding's queue",
            queue_depth.clone(),
        );
        registry.register(
            "in_flight",
            "Messages decoded and being delivered to sinks",
            in_flight.clone(),
        );
        registry.register("dlq_depth", "Dead letters held", dlq_depth.clone());
        registry.register(
            "throttled_seconds",
            "Time messages waited for the binding's throttle",
            throttled_seconds.clone(),
        );
        registry.register(
            "instance_restarts",
            "Guest instances discarded after a trap or a limit breach",
            restarts.clone(),
        );
        registry.register(
            "quarantined",
            "1 while the binding's quarantine breaker is open or half-open",
            quarantined.clone(),
        );
        Self {
            messages,
            dead_letters,
            call_seconds,
            fuel,
            logs_dropped,
            guest_counters,
            guest_gauges,
            guest_metrics_dropped,
            guest_names: GuestNames::default(),
            latency,
            sink_retries,
            queue_depth,
            in_flight,
            dlq_depth,
            throttled_seconds,
            restarts,
            quarantined,
            registry: Arc::new(registry),
        }
    }

    /// `binding`'s series, looked up once: the message path then updates them without a
    /// label lookup per message.
    pub(crate) fn binding(&self, tenant: &str, binding: &str) -> BindingSeries {
        let labels = BindingLabels {
            tenant: tenant.to_string(),
            binding: binding.to_string(),
        };
        let outcome = |outcome: &str| {
            self.messages
                .get_or_create(&OutcomeLabels {
                    tenant: tenant.to_string(),
                    binding: binding.to_string(),
                    outcome: outcome.to_string(),
                })
                .clone()
        };
        BindingSeries {
            delivered: outcome("delivered"),
            dropped: outcome("dropped"),
            dead_lettered: outcome("dead-lettered"),
            latency: self.latency.get_or_create(&labels).clone(),
            sink_retries: self.sink_retries.get_or_create(&labels).clone(),
            queue_depth: self.queue_depth.get_or_create(&labels).clone(),
            in_flight: self.in_flight.get_or_create(&labels).clone(),
            throttled_seconds: self.throttled_seconds.get_or_create(&labels).clone(),
            restarts: self.restarts.get_or_create(&labels).clone(),
            quarantined: self.quarantined.get_or_create(&labels).clone(),
        }
    }

    /// The guest-call series of `module` in `binding`, looked up once.
    pub(crate) fn calls(&self, tenant: &str, binding: &str, module: &str) -> CallSeries {
        let labels = CallLabels {
            tenant: tenant.to_string(),
            binding: binding.to_string(),
            module: module.to_string(),
        };
        CallSeries {
            seconds: self.call_seconds.get_or_create(&labels).clone(),
            fuel: self.fuel.get_or_create(&labels).clone(),
            logs_dropped: self.logs_dropped.get_or_create(&labels).clone(),
            guest_dropped: self.guest_metrics_dropped.get_or_create(&labels).clone(),
            guest: GuestSeries {
                labels,
                counters: self.guest_counters.clone(),
                gauges: self.guest_gauges.clone(),
                known: self.guest_names.clone(),
                names: HashMap::new(),
            },
        }
    }

    /// The series in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::MetricUpdate;

    fn counter(name: &str) -> MetricUpdate {
        MetricUpdate::Counter {
            name: name.into(),
            delta: 1,
        }
    }

    #[test]
    fn the_guest_name_cap_and_kinds_hold_across_versions_of_a_module() {
        let metrics = Metrics::new();
        let mut first = metrics.calls("acme", "b", "codec").guest;
        let names: Vec<MetricUpdate> = (0..MAX_GUEST_METRICS_PER_MODULE)
            .map(|i| counter(&format!("n{i}")))
            .collect();
        assert_eq!(first.apply(&names), 0);
        assert_eq!(first.apply(&[counter("one_more")]), 1);

        // A new version of the module in the same binding starts with no names resolved,
        // and still may not add any, nor turn a counter into a gauge.
        let mut second = metrics.calls("acme", "b", "codec").guest;
        assert_eq!(second.apply(&[counter("n0"), counter("another")]), 1);
        let gauge = MetricUpdate::Gauge {
            name: "n1".into(),
            value: 1.0,
        };
        assert_eq!(second.apply(&[gauge]), 1);
        let text = metrics.encode();
        assert!(
            text.contains(r#"sluice_guest_counter_total{tenant="acme",binding="b",module="codec",name="n0"} 2"#),
            "{text}"
        );
        assert!(!text.contains("sluice_guest_gauge{"), "{text}");

        // Another module (or binding) has its own names.
        let mut other = metrics.calls("acme", "b", "router").guest;
        assert_eq!(other.apply(&[counter("another")]), 0);
    }
}
