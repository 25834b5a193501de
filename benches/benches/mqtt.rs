//! Sluice end to end over a real MQTT broker, against the bare broker round trip, in one run.
//!
//! `cargo bench -p sluice-benches --bench mqtt` starts mosquitto and, in this process, the
//! service as `sluice serve` wires it (store, runtime, pipeline, the binding's MQTT
//! subscriber and the MQTT sink publisher, guest calls in a worker process: this executable
//! started with `worker`) with one binding: Cayenne LPP from `bench/devices/+/up` to `bench/out/{device}`.
//! A load generator publishes QoS 1 messages at a fixed offered rate (open loop: message `i`
//! is due at `t0 + i / rate` and its latency runs from that due time, so a stall delays the
//! clock of every message behind it) and a subscriber timestamps each arrival. Each rate is
//! run twice, back to back: first the bare broker (publisher → mosquitto → subscriber), then
//! through Sluice (publisher → mosquitto → Sluice → mosquitto → subscriber).
//!
//! Prints Markdown tables: offered and achieved rates, counts and latency percentiles per
//! path, how late the load generator itself sent (the machine's scheduling delay, which the
//! latency includes), how the messages over the target spread over the run (a few stalls or
//! a standing queue), then Sluice's added latency (difference and ratio) per rate.
//! `SLUICE_BENCH_RATES` sets the offered rates in msgs/s (default `5000,10000`);
//! `SLUICE_BENCH_SECS` the measured seconds per rate and path (default 10), after a 2 s
//! warm-up at the same rate; `SLUICE_BENCH_MQTT_INFLIGHT` the service's `mqtt.inflight`
//! (unacknowledged publishes of the MQTT sink, default 256); `SLUICE_BENCH_IO_THREADS` the
//! service's async runtime threads (default: one per core, as `sluice serve`);
//! `SLUICE_BENCH_ISOLATION` where guest calls run: `process` (default, as `sluice serve`) or
//! `in-process`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, ClientError, Event, EventLoop, MqttOptions, Packet, QoS};
use sluice_brokers::Mosquitto;
use sluice_connectors::SinkContext;
use sluice_connectors::mqtt::{MqttPublisher, MqttSettings};
use sluice_pipeline::{Isolation, Metrics, Pipeline, PipelineConfig, SpawnOptions, WorkerOptions};
use sluice_runtime::{Runtime, RuntimeConfig};
use sluice_store::{BindingSpec, NewVersion, Store};
use sluice_types::{ModulePolicy, World};
use tokio::sync::mpsc;

/// The Cayenne LPP frame every message carries: two temperatures (27.2 °C and 25.5 °C).
const PAYLOAD: [u8; 8] = [0x03, 0x67, 0x01, 0x10, 0x05, 0x67, 0x00, 0xFF];
/// The tenant, and the first level of every topic.
const TENANT: &str = "bench";
/// The binding's source filter.
const SLUICE_IN_FILTER: &str = "bench/devices/+/up";
/// The binding's sink topic template.
const SLUICE_OUT_TEMPLATE: &str = "bench/out/{device}";
/// What the measuring subscriber listens to for the Sluice path.
const SLUICE_OUT_FILTER: &str = "bench/out/+";
/// What the measuring subscriber listens to for the bare broker path (no binding reads it).
const BASELINE_FILTER: &str = "bench/base/+/up";
/// Seconds sent at the offered rate before measuring starts.
const WARMUP_SECS: f64 = 2.0;
/// How long after the last message is due the run still waits for arrivals; what has not
/// arrived by then counts as missing.
const DRAIN: Duration = Duration::from_secs(5);
/// Silence that marks the end of a run's stragglers before the next run starts.
const QUIET: Duration = Duration::from_millis(500);
/// Unacknowledged QoS 1 publishes the load generator keeps on the wire.
const LOAD_INFLIGHT: u16 = 1000;
/// Requests queued between the pacing thread and the publisher's event loop.
const LOAD_QUEUE: usize = 100_000;
/// The latency target at [`TARGET_RATE`].
const TARGET_P99_MS: f64 = 5.0;
/// The rate the target applies to, in msgs/s.
const TARGET_RATE: f64 = 10_000.0;
/// The slices of due time in which late messages are counted.
const WINDOW: Duration = Duration::from_millis(100);
/// How often the pipeline's gauges are sampled during a run.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// The two ways a message goes from the load generator to the measuring subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Publisher → mosquitto → subscriber.
    Baseline,
    /// Publisher → mosquitto → Sluice → mosquitto → subscriber.
    Sluice,
}

impl Path {
    /// The row label.
    fn label(self) -> &'static str {
        match self {
            Path::Baseline => "broker only (baseline)",
            Path::Sluice => "through Sluice",
        }
    }

    /// The topic message `seq` is published on; the device id `b{seq}` identifies it at the
    /// other end.
    fn topic(self, seq: u64) -> String {
        match self {
            Path::Baseline => format!("bench/base/b{seq}/up"),
            Path::Sluice => format!("bench/devices/b{seq}/up"),
        }
    }
}

/// One run's figures: one path at one offered rate.
#[derive(Debug)]
struct RunResult {
    /// Which path.
    path: Path,
    /// Offered rate, msgs/s.
    offered: f64,
    /// Measured messages received, per second from the first one's due time to the last
    /// arrival.
    achieved: f64,
    /// Measured messages handed to the publishing client.
    sent: u64,
    /// Measured messages received (each once).
    received: u64,
    /// Measured messages received more than once (QoS 1 may redeliver).
    duplicates: u64,
    /// Latency from due time to arrival, in microseconds.
    latency_us: Histogram<u64>,
    /// How late the load generator handed each message to its client, in microseconds: the
    /// machine's own scheduling delay, included in the latency.
    generator_late_us: Histogram<u64>,
    /// Sluice's own metrics over the run (Sluice path only).
    pipeline: Option<PipelineFigures>,
    /// The binding's queue and in-flight deliveries over the run (Sluice path only).
    occupancy: Option<Occupancy>,
    /// Where the machine's CPU went during the run, if `/proc` could be read.
    cpu: Option<CpuShares>,
    /// Messages that arrived later than [`TARGET_P99_MS`], counted per [`WINDOW`] of due
    /// time: whether the tail is spread over the run or comes from a few stalls.
    late_windows: BTreeMap<u64, u64>,
    /// How many [`WINDOW`]s the measured messages were due in.
    windows: u64,
}

impl RunResult {
    /// Measured messages that did not arrive within [`DRAIN`] of the last due time.
    fn missing(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }

    /// A latency percentile in milliseconds.
    fn ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The worst latency in milliseconds.
    fn max_ms(&self) -> f64 {
        self.latency_us.max() as f64 / 1000.0
    }
}

/// Means taken from the pipeline's Prometheus metrics over one run.
#[derive(Debug, Clone, Copy, Default)]
struct PipelineFigures {
    /// Guest calls measured.
    calls: f64,
    /// Total guest call time, seconds.
    call_seconds: f64,
    /// Messages settled.
    settled: f64,
    /// Total intake → settled time, seconds.
    settle_seconds: f64,
}

impl PipelineFigures {
    /// Reads the histogram counts and sums from the pipeline's metrics text.
    fn read(metrics: &Metrics) -> Self {
        let text = metrics.encode();
        let sum_of = |name: &str| metric_sum(&text, name);
        Self {
            calls: sum_of("sluice_guest_call_seconds_count"),
            call_seconds: sum_of("sluice_guest_call_seconds_sum"),
            settled: sum_of("sluice_message_latency_seconds_count"),
            settle_seconds: sum_of("sluice_message_latency_seconds_sum"),
        }
    }

    /// What happened between `before` and `self`.
    fn since(self, before: Self) -> Self {
        Self {
            calls: self.calls - before.calls,
            call_seconds: self.call_seconds - before.call_seconds,
            settled: self.settled - before.settled,
            settle_seconds: self.settle_seconds - before.settle_seconds,
        }
    }

    /// Mean guest call, microseconds.
    fn mean_call_us(&self) -> f64 {
        if self.calls > 0.0 {
            self.call_seconds / self.calls * 1e6
        } else {
            0.0
        }
    }

    /// Mean intake → settled, milliseconds.
    fn mean_settle_ms(&self) -> f64 {
        if self.settled > 0.0 {
            self.settle_seconds / self.settled * 1e3
        } else {
            0.0
        }
    }
}

/// The sum of every series named `name` in Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The binding's queue depth and in-flight deliveries, sampled during a run.
#[derive(Debug, Clone, Copy, Default)]
struct Occupancy {
    /// Samples taken.
    samples: u64,
    /// Sum of the queue depths seen.
    queue_sum: f64,
    /// Largest queue depth seen.
    queue_max: f64,
    /// Sum of the in-flight counts seen.
    in_flight_sum: f64,
    /// Largest in-flight count seen.
    in_flight_max: f64,
}

impl Occupancy {
    /// Mean queue depth.
    fn queue_mean(&self) -> f64 {
        self.queue_sum / self.samples.max(1) as f64
    }

    /// Mean in-flight deliveries.
    fn in_flight_mean(&self) -> f64 {
        self.in_flight_sum / self.samples.max(1) as f64
    }
}

/// Reads the pipeline's `sluice_queue_depth` and `sluice_in_flight` gauges every
/// [`SAMPLE_EVERY`] until `stop` fires.
async fn sample_occupancy(
    metrics: Metrics,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Occupancy {
    let mut occupancy = Occupancy::default();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = &mut stop => return occupancy,
            _ = tick.tick() => {
                let text = metrics.encode();
                let queue = metric_sum(&text, "sluice_queue_depth");
                let in_flight = metric_sum(&text, "sluice_in_flight");
                occupancy.samples += 1;
                occupancy.queue_sum += queue;
                occupancy.queue_max = occupancy.queue_max.max(queue);
                occupancy.in_flight_sum += in_flight;
                occupancy.in_flight_max = occupancy.in_flight_max.max(in_flight);
            }
        }
    }
}

/// Clock ticks per second of `/proc` CPU times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time used so far, in clock ticks, by part.
#[derive(Debug, Clone)]
struct CpuSnapshot {
    /// When it was taken.
    at: Instant,
    /// Per thread of this process: `(thread id, name, ticks)`.
    threads: Vec<(u32, String, u64)>,
    /// The broker process (a child of this process).
    broker: u64,
    /// The tenant's worker process (the other child), where guest calls run with process
    /// isolation.
    guest_process: u64,
    /// The whole machine, busy (everything but idle, I/O wait and steal).
    machine_busy: u64,
    /// The whole machine, taken by the hypervisor (steal).
    machine_steal: u64,
}

/// Where the CPU went over a run, in cores (CPU seconds per second).
#[derive(Debug, Clone, Copy)]
struct CpuShares {
    /// Sluice's async runtime (`sluice-io`: MQTT in and out, dispatch, delivery) and its
    /// deadline ticker (`sluice-epoch`).
    sluice_io: f64,
    /// Sluice's binding worker (`sluice-<binding>`: the codec call, or its round trip to the
    /// worker process, and the output format).
    sluice_worker: f64,
    /// The tenant's worker process (guest calls, with process isolation).
    guest_process: f64,
    /// The load generator: the pacing thread and the clients' event loops.
    load: f64,
    /// mosquitto.
    broker: f64,
    /// Every other process on the machine.
    others: f64,
    /// Taken by the hypervisor.
    steal: f64,
    /// Cores on the machine.
    cores: f64,
}

impl CpuSnapshot {
    /// Reads `/proc`; `None` where it is not available.
    fn take() -> Option<Self> {
        let at = Instant::now();
        let mut threads = Vec::new();
        for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            if let Some((name, _, ticks)) = read_stat(&entry.path().join("stat")) {
                threads.push((tid, name, ticks));
            }
        }
        let me = std::process::id();
        let children: Vec<(String, u32, u64)> = std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|entry| read_stat(&entry.path().join("stat")))
            .filter(|(_, parent, _)| *parent == me)
            .collect();
        let broker = children
            .iter()
            .filter(|(name, _, _)| name == "mosquitto")
            .map(|(_, _, ticks)| ticks)
            .sum();
        let guest_process = children
            .iter()
            .filter(|(name, _, _)| name != "mosquitto")
            .map(|(_, _, ticks)| ticks)
            .sum();
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal guest guest_nice
        let idle = fields.get(3)? + fields.get(4)?;
        let steal = *fields.get(7)?;
        let total: u64 = fields.iter().take(8).sum();
        Some(Self {
            at,
            threads,
            broker,
            guest_process,
            machine_busy: total - idle - steal,
            machine_steal: steal,
        })
    }

    /// The shares between `before` and `self`.
    fn since(&self, before: &Self) -> CpuShares {
        let seconds = self.at.duration_since(before.at).as_secs_f64().max(1e-3);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds;
        let (mut io, mut worker, mut load) = (0, 0, 0);
        for (tid, name, ticks) in &self.threads {
            let earlier = before
                .threads
                .iter()
                .find(|(t, _, _)| t == tid)
                .map_or(0, |(_, _, t)| *t);
            let used = ticks.saturating_sub(earlier);
            if name == "sluice-io" || name == "sluice-epoch" {
                io += used;
            } else if name.starts_with("sluice-") {
                worker += used;
            } else {
                load += used;
            }
        }
        let broker = self.broker.saturating_sub(before.broker);
        let guest_process = self.guest_process.saturating_sub(before.guest_process);
        let busy = self.machine_busy.saturating_sub(before.machine_busy);
        let others = busy.saturating_sub(io + worker + load + broker + guest_process);
        CpuShares {
            sluice_io: cores(io),
            sluice_worker: cores(worker),
            guest_process: cores(guest_process),
            load: cores(load),
            broker: cores(broker),
            others: cores(others),
            steal: cores(self.machine_steal.saturating_sub(before.machine_steal)),
            cores: std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
        }
    }
}

/// A `/proc/.../stat` file's command name, parent pid and user + system ticks.
fn read_stat(path: &std::path::Path) -> Option<(String, u32, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    // `pid (comm) state ppid ...`: the name may hold spaces and parentheses.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12).
    let parent = rest.get(1)?.parse().ok()?;
    let ticks = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
    Some((name, parent, ticks))
}

/// The in-process service and what keeps it alive.
struct Service {
    /// The pipeline (its metrics are read per run).
    pipeline: Pipeline,
    /// The registry's directory.
    _dir: tempfile::TempDir,
}

/// The load generator's two connections and the arrivals they report.
struct Load {
    /// The publishing client (QoS 1, driven by its own event-loop task).
    publisher: AsyncClient,
    /// `(seq, arrival)` of every message the measuring subscriber receives.
    arrivals: mpsc::UnboundedReceiver<(u64, Instant)>,
    /// The next sequence number; every message of the whole run has its own.
    next_seq: u64,
}

/// The first argument that makes this executable a tenant's worker process, as `sluice worker`.
const WORKER_ARG: &str = "worker";

fn main() -> std::process::ExitCode {
    // A worker hardens itself before anything else starts.
    if std::env::args().nth(1).as_deref() == Some(WORKER_ARG) {
        return sluice_worker::worker_main();
    }
    run();
    std::process::ExitCode::SUCCESS
}

/// Whether guest calls run in a worker process (`SLUICE_BENCH_ISOLATION=process`, the
/// default) rather than in this one (`in-process`).
fn in_worker_process() -> bool {
    match std::env::var("SLUICE_BENCH_ISOLATION").as_deref() {
        Err(_) | Ok("process") => true,
        Ok("in-process") => false,
        Ok(other) => panic!("SLUICE_BENCH_ISOLATION: `process` or `in-process`, not `{other}`"),
    }
}

fn run() {
    let rates: Vec<f64> = std::env::var("SLUICE_BENCH_RATES")
        .unwrap_or_else(|_| "5000,10000".into())
        .split(',')
        .map(|r| {
            r.trim()
                .parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0)
                .expect("SLUICE_BENCH_RATES: a comma-separated list of positive msgs/s")
        })
        .collect();
    let secs: f64 = std::env::var("SLUICE_BENCH_SECS")
        .ok()
        .map(|s| {
            s.parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0)
                .expect("SLUICE_BENCH_SECS: a positive number of seconds")
        })
        .unwrap_or(10.0);

    let broker = Mosquitto::start().expect("mosquitto starts (apt-get install -y mosquitto)");
    let url = broker.url();
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );

    // The service, on its own runtime as in `sluice serve`.
    let mut service_rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = std::env::var("SLUICE_BENCH_IO_THREADS")
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
    {
        service_rt.worker_threads(threads.max(1));
    }
    let service_rt = service_rt
        .enable_all()
        .thread_name("sluice-io")
        .build()
        .expect("service runtime");
    let service = service_rt.block_on(start_service(&url, &run_id));

    // The load generator and the measuring subscriber, on a runtime of their own.
    let load_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("load runtime");
    let results = load_rt.block_on(async {
        let mut load = Load::connect(&url, &run_id).await;
        let mut results = Vec::new();
        for &rate in &rates {
            for path in [Path::Baseline, Path::Sluice] {
                let before = PipelineFigures::read(service.pipeline.metrics());
                let (stop, stopped) = tokio::sync::oneshot::channel();
                let sampler = tokio::spawn(sample_occupancy(
                    service.pipeline.metrics().clone(),
                    stopped,
                ));
                let cpu_before = CpuSnapshot::take();
                let mut result = load.run(path, rate, secs).await;
                result.cpu = cpu_before.and_then(|b| Some(CpuSnapshot::take()?.since(&b)));
                let _ = stop.send(());
                let occupancy = sampler.await.expect("gauge sampler");
                if path == Path::Sluice {
                    let after = PipelineFigures::read(service.pipeline.metrics());
                    result.pipeline = Some(after.since(before));
                    result.occupancy = Some(occupancy);
                }
                eprintln!(
                    "{} at {rate} msgs/s: p50 {:.2} ms, p99 {:.2} ms, {} missing",
                    path.label(),
                    result.ms(0.5),
                    result.ms(0.99),
                    result.missing()
                );
                results.push(result);
            }
        }
        results
    });

    print_report(&results, secs);
    service_rt.block_on(service.pipeline.shutdown(Duration::from_secs(5)));
    drop(broker);
}

/// Starts the service exactly as `sluice serve` wires it, with one tenant, the Cayenne LPP
/// codec and one MQTT → MQTT binding, and waits until its connections are up.
async fn start_service(url: &str, run_id: &str) -> Service {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("sluice.db")).expect("store opens");
    store.create_tenant(TENANT, "Benchmark").expect("tenant");
    let policy = ModulePolicy::default();
    store
        .deploy(
            TENANT,
            "lpp",
            World::Codec,
            NewVersion::new(sluice_test_programs::CAYENNE_LPP_BYTES, &policy),
        )
        .expect("codec deployed");
    store
        .create_binding(
            TENANT,
            &BindingSpec {
                name: "lpp".into(),
                codec: "lpp".into(),
                router: None,
                config: Default::default(),
                sources: serde_json::json!([{ "type": "mqtt", "topic": SLUICE_IN_FILTER }]),
                sinks: serde_json::json!([
                    { "type": "mqtt", "topic": SLUICE_OUT_TEMPLATE, "qos": 1 }
                ]),
                policy: serde_json::json!({}),
            },
        )
        .expect("binding");

    // The defaults of `sluice serve` (`[runtime]` and `[pipeline]` sections left out).
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: 256,
        epoch_tick: Duration::from_millis(2),
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeConfig::default()
    })
    .expect("wasm runtime");
    let mut settings = MqttSettings::new(url);
    settings.client_id = format!("sluice-bench-{run_id}");
    // `SLUICE_BENCH_MQTT_INFLIGHT`: the `[mqtt] inflight` setting of `sluice serve`.
    if let Some(inflight) = std::env::var("SLUICE_BENCH_MQTT_INFLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.inflight = inflight;
    }
    let mut sinks = SinkContext::new(dir.path().join("sinks"));
    sinks.mqtt = Some(MqttPublisher::start(&settings).expect("MQTT publisher"));
    let isolation = if in_worker_process() {
        let exe = std::env::current_exe().expect("this executable");
        let worker = WorkerOptions {
            cache_dir: Some(dir.path().join("worker-cache")),
            max_instances: 256,
            ..WorkerOptions::default()
        };
        Isolation::Process(Box::new(
            SpawnOptions::new(exe, worker).with_args([WORKER_ARG]),
        ))
    } else {
        Isolation::InProcess
    };
    let pipeline = Pipeline::new(
        store,
        runtime,
        sinks,
        Metrics::new(),
        PipelineConfig::default(),
    )
    .with_isolation(isolation);
    pipeline.refresh().await.expect("bindings start");
    pipeline.attach_mqtt(settings);
    pipeline.refresh().await.expect("sources subscribed");

    let deadline = Instant::now() + Duration::from_secs(10);
    while !pipeline.sources_connected() {
        assert!(
            Instant::now() < deadline,
            "Sluice did not connect to {url} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Service {
        pipeline,
        _dir: dir,
    }
}

/// MQTT options of a load-generator connection: a unique id, a clean session.
fn client_options(url: &str, id: String) -> MqttOptions {
    let address = url.strip_prefix("mqtt://").unwrap_or(url);
    let (host, port) = address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .expect("broker url is mqtt://host:port");
    let mut options = MqttOptions::new(id, host, port);
    options
        .set_clean_session(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(LOAD_INFLIGHT);
    options
}

/// Disables Nagle's algorithm on a load-generator connection, so the load generator does not
/// hold back small packets itself (the service keeps its own connection settings).
fn no_delay(eventloop: &mut EventLoop) {
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
}

impl Load {
    /// Connects the publisher and the measuring subscriber, and checks that both paths carry
    /// messages before anything is measured.
    async fn connect(url: &str, run_id: &str) -> Self {
        let (publisher, mut publisher_loop) = AsyncClient::new(
            client_options(url, format!("bench-load-{run_id}-pub")),
            LOAD_QUEUE,
        );
        no_delay(&mut publisher_loop);
        tokio::spawn(drive_publisher(publisher_loop));

        let (subscriber, mut subscriber_loop) =
            AsyncClient::new(client_options(url, format!("bench-load-{run_id}-sub")), 16);
        no_delay(&mut subscriber_loop);
        let (tx, arrivals) = mpsc::unbounded_channel();
        tokio::spawn(drive_subscriber(subscriber_loop, tx));
        for filter in [BASELINE_FILTER, SLUICE_OUT_FILTER] {
            subscriber
                .subscribe(filter, QoS::AtLeastOnce)
                .await
                .expect("subscription queued");
        }

        let mut load = Self {
            publisher,
            arrivals,
            next_seq: 0,
        };
        for path in [Path::Baseline, Path::Sluice] {
            load.wait_flowing(path).await;
        }
        load
    }

    /// Publishes a message on `path` every 100 ms until one arrives (the subscriptions and
    /// the service are ready), for at most 15 s.
    async fn wait_flowing(&mut self, path: Path) {
        let first = self.next_seq;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.publisher
                .publish(path.topic(seq), QoS::AtLeastOnce, false, PAYLOAD.to_vec())
                .await
                .expect("publisher is running");
            let wait = tokio::time::sleep(Duration::from_millis(100));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    arrival = self.arrivals.recv() => match arrival {
                        Some((seq, _)) if seq >= first => {
                            self.settle().await;
                            return;
                        }
                        Some(_) => {}
                        None => panic!("the measuring subscriber stopped"),
                    },
                    () = &mut wait => break,
                }
            }
        }
        panic!("no message came through {} within 15 s", path.label());
    }

    /// Reads arrivals until none came for [`QUIET`] (at most 30 s), so one run's stragglers
    /// do not load the next.
    async fn settle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match tokio::time::timeout(QUIET, self.arrivals.recv()).await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Offers `rate` msgs/s on `path`: [`WARMUP_SECS`] unmeasured, then `secs` measured.
    async fn run(&mut self, path: Path, rate: f64, secs: f64) -> RunResult {
        let warmup = (rate * WARMUP_SECS).round() as u64;
        let measured = (rate * secs).round().max(1.0) as u64;
        let total = warmup + measured;
        let first_seq = self.next_seq;
        self.next_seq += total;
        let due = move |seq: u64| Duration::from_secs_f64((seq - first_seq) as f64 / rate);

        let t0 = Instant::now() + Duration::from_millis(20);
        let publisher = self.publisher.clone();
        let pacer = std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || pace(&publisher, path, first_seq, total, warmup, rate, t0))
            .expect("pacing thread");

        let measured_from = first_seq + warmup;
        let mut seen = vec![false; measured as usize];
        let mut latency_us = latency_histogram();
        let mut received = 0u64;
        let mut duplicates = 0u64;
        let mut last_arrival = t0;
        let mut late_windows = BTreeMap::new();
        let end = t0 + due(first_seq + total) + DRAIN;
        while received < measured {
            let arrival =
                tokio::time::timeout_at(tokio::time::Instant::from_std(end), self.arrivals.recv())
                    .await;
            let Ok(Some((seq, at))) = arrival else { break };
            if seq < measured_from || seq >= first_seq + total {
                continue;
            }
            let slot = &mut seen[(seq - measured_from) as usize];
            if *slot {
                duplicates += 1;
                continue;
            }
            *slot = true;
            received += 1;
            last_arrival = last_arrival.max(at);
            let latency = at.saturating_duration_since(t0 + due(seq));
            latency_us.saturating_record((latency.as_micros() as u64).max(1));
            if latency.as_secs_f64() * 1000.0 > TARGET_P99_MS {
                let window = (due(seq) - due(measured_from)).as_millis() / WINDOW.as_millis();
                *late_windows.entry(window as u64).or_insert(0u64) += 1;
            }
        }
        let windows = (due(first_seq + total) - due(measured_from))
            .as_millis()
            .div_ceil(WINDOW.as_millis()) as u64;
        let paced = tokio::task::spawn_blocking(move || pacer.join())
            .await
            .expect("pacing thread joined")
            .expect("pacing thread did not panic");
        self.settle().await;

        let window = last_arrival
            .saturating_duration_since(t0 + due(measured_from))
            .as_secs_f64();
        RunResult {
            path,
            offered: rate,
            achieved: if window > 0.0 {
                received as f64 / window
            } else {
                0.0
            },
            sent: paced.sent,
            generator_late_us: paced.late_us,
            received,
            duplicates,
            latency_us,
            pipeline: None,
            occupancy: None,
            cpu: None,
            late_windows,
            windows,
        }
    }
}

/// Publishes messages `first_seq .. first_seq + total` on `path`, each at its due time
/// `t0 + i / rate` (late ones at once, never skipped), and returns how many of the measured
/// ones (after the first `warmup`) were handed to the client and how late.
fn pace(
    publisher: &AsyncClient,
    path: Path,
    first_seq: u64,
    total: u64,
    warmup: u64,
    rate: f64,
    t0: Instant,
) -> Paced {
    let mut paced = Paced {
        sent: 0,
        late_us: latency_histogram(),
    };
    for i in 0..total {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let topic = path.topic(first_seq + i);
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            match publisher.try_publish(topic.as_str(), QoS::AtLeastOnce, false, PAYLOAD.to_vec()) {
                Ok(()) => break,
                // The request queue is full: wait for room (the delay is part of the latency).
                Err(ClientError::TryRequest(_)) if Instant::now() < give_up => {
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err(e) => {
                    eprintln!("load generator: cannot publish: {e}");
                    return paced;
                }
            }
        }
        if i >= warmup {
            paced.sent += 1;
            let late = Instant::now().saturating_duration_since(due);
            paced.late_us.saturating_record(late.as_micros() as u64);
        }
    }
    paced
}

/// What the pacing thread did in one run.
struct Paced {
    /// Measured messages handed to the publishing client.
    sent: u64,
    /// How long after its due time each measured message was handed over, in microseconds.
    late_us: Histogram<u64>,
}

/// An empty histogram of durations in microseconds, 1 µs to 60 s, 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Drives the publishing connection: sends the queued publishes, takes the PUBACKs.
async fn drive_publisher(mut eventloop: EventLoop) {
    loop {
        if let Err(e) = eventloop.poll().await {
            eprintln!("load generator: publisher connection: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Drives the measuring connection: timestamps every message as it is read and reports its
/// sequence number.
async fn drive_subscriber(
    mut eventloop: EventLoop,
    arrivals: mpsc::UnboundedSender<(u64, Instant)>,
) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let at = Instant::now();
                if let Some(seq) = sequence_of(&publish.topic)
                    && arrivals.send((seq, at)).is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("load generator: subscriber connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The sequence number in a topic's `b{seq}` level.
fn sequence_of(topic: &str) -> Option<u64> {
    topic
        .split('/')
        .find_map(|level| level.strip_prefix('b')?.parse().ok())
}

/// Prints the run's tables in Markdown.
fn print_report(results: &[RunResult], secs: f64) {
    println!(
        "\nEnd to end over MQTT: QoS 1 in and out, {secs} s measured per row after a {WARMUP_SECS} s warm-up; latency from each message's due time to its arrival. Guest calls: {}.\n",
        if in_worker_process() {
            "in the tenant's worker process (`--isolation process`, the default)"
        } else {
            "in the service's process (`--isolation in-process`)"
        }
    );
    println!(
        "| path | offered msgs/s | output msgs/s | sent | received | missing | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | sender late p99 ms | over {TARGET_P99_MS} ms: msgs, in windows |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let late: u64 = r.late_windows.values().sum();
        // The fewest windows holding half of the late messages.
        let mut counts: Vec<u64> = r.late_windows.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let mut half = 0;
        let mut covered = 0;
        for count in counts {
            if covered * 2 >= late {
                break;
            }
            covered += count;
            half += 1;
        }
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} in {} of {} (half in {}) |",
            r.path.label(),
            thousands(r.offered),
            thousands(r.achieved),
            thousands(r.sent as f64),
            thousands(r.received as f64),
            thousands(r.missing() as f64),
            r.ms(0.5),
            r.ms(0.9),
            r.ms(0.99),
            r.ms(0.999),
            r.max_ms(),
            r.generator_late_us.value_at_quantile(0.99) as f64 / 1000.0,
            thousands(late as f64),
            r.late_windows.len(),
            r.windows,
            half,
        );
    }
    println!(
        "\nSender late: how long after its due time the load generator handed a message to its MQTT client (scheduling delay on this machine; part of the latency). Over {TARGET_P99_MS} ms: the messages later than the target, the {} ms windows of due time they fall in (of all windows), and the fewest windows holding half of them: a tail from a few stalls shows as few windows.",
        WINDOW.as_millis()
    );
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        println!(
            "Load average at the end (1, 5, 15 min): {}.",
            load.join(", ")
        );
    }
    let duplicates: u64 = results.iter().map(|r| r.duplicates).sum();
    if duplicates > 0 {
        println!("\n{duplicates} measured message(s) arrived more than once (not counted twice).");
    }

    let mut by_rate: BTreeMap<u64, (Option<&RunResult>, Option<&RunResult>)> = BTreeMap::new();
    for r in results {
        let entry = by_rate.entry(r.offered.to_bits()).or_default();
        match r.path {
            Path::Baseline => entry.0 = Some(r),
            Path::Sluice => entry.1 = Some(r),
        }
    }
    println!("\nSluice's added latency (Sluice − broker only, and Sluice ÷ broker only):\n");
    println!(
        "| offered msgs/s | p50 added ms | p50 × | p99 added ms | p99 × | p99.9 added ms | mean guest call µs | mean intake → settled ms | queue mean / max | in flight mean / max |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (base, sluice) in by_rate.values() {
        let (Some(base), Some(sluice)) = (base, sluice) else {
            continue;
        };
        let figures = sluice.pipeline.unwrap_or_default();
        let occupancy = sluice.occupancy.unwrap_or_default();
        println!(
            "| {} | {:.2} | {:.1} | {:.2} | {:.1} | {:.2} | {:.1} | {:.2} | {:.0} / {:.0} | {:.0} / {:.0} |",
            thousands(base.offered),
            sluice.ms(0.5) - base.ms(0.5),
            sluice.ms(0.5) / base.ms(0.5),
            sluice.ms(0.99) - base.ms(0.99),
            sluice.ms(0.99) / base.ms(0.99),
            sluice.ms(0.999) - base.ms(0.999),
            figures.mean_call_us(),
            figures.mean_settle_ms(),
            occupancy.queue_mean(),
            occupancy.queue_max,
            occupancy.in_flight_mean(),
            occupancy.in_flight_max,
        );
    }

    println!(
        "\nGuest call and intake → settled (the sink's PUBACK) are means from Sluice's metrics; queue (messages waiting for the binding's worker) and in flight (decoded, being delivered) are its gauges sampled every {} ms.",
        SAMPLE_EVERY.as_millis()
    );

    if results.iter().any(|r| r.cpu.is_some()) {
        println!(
            "\nWhere the CPU went during each row (cores busy, warm-up and drain included):\n"
        );
        println!(
            "| path | offered msgs/s | Sluice async I/O | Sluice binding worker | Sluice guest process | load generator | mosquitto | other processes | steal | machine cores |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in results {
            if let Some(cpu) = r.cpu {
                println!(
                    "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
                    r.path.label(),
                    thousands(r.offered),
                    cpu.sluice_io,
                    cpu.sluice_worker,
                    cpu.guest_process,
                    cpu.load,
                    cpu.broker,
                    cpu.others,
                    cpu.steal,
                    cpu.cores,
                );
            }
        }
    }

    if let Some(at_target) = results
        .iter()
        .find(|r| r.path == Path::Sluice && r.offered == TARGET_RATE)
    {
        let p99 = at_target.ms(0.99);
        let verdict = if p99 < TARGET_P99_MS && at_target.missing() == 0 {
            "met"
        } else {
            "not met"
        };
        println!(
            "\nTarget p99 < {TARGET_P99_MS} ms at {} msgs/s through Sluice: {verdict} (p99 {p99:.2} ms, {} missing).",
            thousands(TARGET_RATE),
            at_target.missing()
        );
    }
}

/// `12345.6` as `12,346`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
