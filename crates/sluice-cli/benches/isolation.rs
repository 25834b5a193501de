//! Tenant isolation, measured: tenant B's latency with and without a noisy tenant A, and what
//! running guest code in per-tenant worker processes costs against running it in process.
//!
//! `cargo bench -p sluice-cli --bench isolation` builds, in this process, the pipeline as
//! `sluice serve` wires it, once per isolation mode (`in-process`, then `process`: one
//! sandboxed `sluice worker` per tenant, this package's own binary). Two tenants:
//!
//! - **B** (`quiet`): the Cayenne LPP codec, a file sink. One message at a time (closed loop),
//!   each timed from submission until it is settled (decoded, written, acknowledged).
//! - **A** (`noisy`): `test-programs/tp-infinite-loop`, which burns its whole fuel/deadline
//!   budget on every message (each ends in the dead-letter queue), fed by two submitters that
//!   keep its queue full, with restart backoff off.
//!
//! Per mode: B alone, then B's throughput (a burst submitted at once and
//! settled as fast as the binding goes), then B next to A. Prints Markdown tables: B's p50/p99/p99.9 in each
//! phase, the ratio next to A ÷ alone, and process ÷ in-process for latency and throughput.
//! `SLUICE_BENCH_SECS` sets the seconds per latency phase (default 3), `SLUICE_BENCH_BURST`
//! the messages of the throughput phase (default 5000).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sluice_connectors::SinkContext;
use sluice_pipeline::{
    Ack, Envelope, Isolation, Metrics, Pipeline, PipelineConfig, SpawnOptions, WorkerOptions,
    WorkerStderr,
};
use sluice_runtime::{Runtime, RuntimeConfig};
use sluice_store::{BindingSpec, NewVersion, Store};
use sluice_types::{ModulePolicy, Uplink, World};

/// The frame B sends: two temperatures.
const FRAME: [u8; 8] = [0x03, 0x67, 0x01, 0x10, 0x05, 0x67, 0x00, 0xFF];

/// One phase's figures for tenant B.
struct Phase {
    hist: Histogram<u64>,
    /// Messages per second B achieved in this phase.
    rate: f64,
    /// Messages of tenant A settled during the phase.
    noisy_settled: u64,
}

impl Phase {
    fn us(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Everything measured for one isolation mode.
struct ModeResult {
    mode: &'static str,
    alone: Phase,
    noisy: Phase,
    throughput: f64,
}

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs = env_or("SLUICE_BENCH_SECS", 3.0);
    let burst = env_or("SLUICE_BENCH_BURST", 5000.0) as u64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice-io")
        .build()
        .expect("runtime");
    let mut results = Vec::new();
    for mode in ["in-process", "process"] {
        eprintln!("measuring {mode} ...");
        results.push(rt.block_on(measure(mode, secs, burst)));
    }
    print_report(&results, secs, burst);
}

/// A store with tenants `quiet` (LPP codec, binding `b` to a file) and `noisy` (the infinite
/// loop, binding `b`, restart backoff off).
fn registry(dir: &std::path::Path) -> Store {
    let store = Store::open(dir.join("sluice.db")).expect("store");
    let loop_bytes =
        std::fs::read(sluice_test_programs::TP_INFINITE_LOOP).expect("tp-infinite-loop");
    for (tenant, bytes, policy) in [
        (
            "quiet",
            sluice_test_programs::CAYENNE_LPP_BYTES.to_vec(),
            serde_json::json!({}),
        ),
        (
            "noisy",
            loop_bytes,
            serde_json::json!({ "restart": { "backoff_initial_ms": 1, "backoff_max_ms": 1 } }),
        ),
    ] {
        store.create_tenant(tenant, tenant).expect("tenant");
        let default_policy = ModulePolicy::default();
        store
            .deploy(
                tenant,
                "codec",
                World::Codec,
                NewVersion::new(&bytes, &default_policy),
            )
            .expect("codec deployed");
        store
            .create_binding(
                tenant,
                &BindingSpec {
                    name: "b".into(),
                    codec: "codec".into(),
                    router: None,
                    config: Default::default(),
                    sources: serde_json::json!([]),
                    sinks: serde_json::json!([{ "type": "file", "path": "out.jsonl" }]),
                    policy,
                },
            )
            .expect("binding");
    }
    store
}

fn uplink(device: &str, payload: &[u8]) -> Uplink {
    Uplink {
        device_id: device.to_string(),
        port: 1,
        received_at_ms: 1_700_000_000_000,
        payload: payload.to_vec(),
        metadata: Vec::new(),
    }
}

async fn measure(mode: &'static str, secs: f64, burst: u64) -> ModeResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = registry(dir.path());
    let runtime = Runtime::new(RuntimeConfig {
        max_instances: 256,
        epoch_tick: Duration::from_millis(2),
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let isolation = if mode == "process" {
        let worker = WorkerOptions {
            cache_dir: Some(dir.path().join("worker-cache")),
            max_instances: 256,
            ..WorkerOptions::default()
        };
        let mut spawn =
            SpawnOptions::new(env!("CARGO_BIN_EXE_sluice"), worker).with_args(["worker"]);
        spawn.stderr = WorkerStderr::Null;
        Isolation::Process(Box::new(spawn))
    } else {
        Isolation::InProcess
    };
    let pipeline = Pipeline::new(
        store,
        runtime,
        SinkContext::new(dir.path().join("sinks")),
        Metrics::new(),
        PipelineConfig::default(),
    )
    .with_isolation(isolation);
    pipeline.refresh().await.expect("bindings start");

    // Warm up B (load, compile, first instances) and A (its worker and first breach).
    for _ in 0..200 {
        settle_one(&pipeline).await;
    }
    let _ = pipeline
        .process("noisy", "b", uplink("a", &[0]))
        .await
        .expect("tenant A runs");

    let alone = closed_loop(&pipeline, secs, None).await;
    let throughput = burst_rate(&pipeline, burst).await;

    let stop = Arc::new(AtomicBool::new(false));
    let settled = Arc::new(AtomicU64::new(0));
    let floods: Vec<_> = (0..2)
        .map(|i| {
            let (pipeline, stop, settled) = (pipeline.clone(), stop.clone(), settled.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let settled = settled.clone();
                    let ack = Ack::new(move |_| {
                        settled.fetch_add(1, Ordering::Relaxed);
                    });
                    n += 1;
                    let envelope =
                        Envelope::new("noisy", "b", uplink(&format!("a{i}-{n}"), &[0]), ack);
                    if pipeline.submit(envelope).await.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let noisy = closed_loop(&pipeline, secs, Some(&settled)).await;
    stop.store(true, Ordering::Relaxed);
    for flood in floods {
        flood.abort();
    }
    // A's queue is still full of messages that each burn a whole budget: do not wait for it.
    pipeline.shutdown(Duration::from_secs(1)).await;
    ModeResult {
        mode,
        alone,
        noisy,
        throughput,
    }
}

/// Sends one message of B and waits until it is settled; returns how long that took.
async fn settle_one(pipeline: &Pipeline) -> Duration {
    let started = Instant::now();
    let outcome = pipeline
        .process("quiet", "b", uplink("d", &FRAME))
        .await
        .expect("tenant B's message is settled");
    assert_eq!(
        outcome.label(),
        "delivered",
        "tenant B's message was not delivered: {outcome:?}"
    );
    started.elapsed()
}

/// B, one message at a time for `secs` seconds.
async fn closed_loop(pipeline: &Pipeline, secs: f64, noisy: Option<&AtomicU64>) -> Phase {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    let noisy_before = noisy.map_or(0, |n| n.load(Ordering::Relaxed));
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let mut count = 0u64;
    while Instant::now() < until {
        let took = settle_one(pipeline).await;
        let _ = hist.record(took.as_nanos().max(1) as u64);
        count += 1;
    }
    Phase {
        hist,
        rate: count as f64 / started.elapsed().as_secs_f64(),
        noisy_settled: noisy.map_or(0, |n| n.load(Ordering::Relaxed)) - noisy_before,
    }
}

/// B's throughput: `n` messages submitted at once (the queue's backpressure paces the
/// submitter), timed until the last is settled.
async fn burst_rate(pipeline: &Pipeline, n: u64) -> f64 {
    let settled = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let done_tx = Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let started = Instant::now();
    for i in 0..n {
        let (settled, done_tx) = (settled.clone(), done_tx.clone());
        let ack = Ack::new(move |_| {
            if settled.fetch_add(1, Ordering::AcqRel) + 1 == n
                && let Ok(mut tx) = done_tx.lock()
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        });
        pipeline
            .submit(Envelope::new(
                "quiet",
                "b",
                uplink(&format!("t{i}"), &FRAME),
                ack,
            ))
            .await
            .expect("queued");
    }
    done_rx.await.expect("every message settled");
    n as f64 / started.elapsed().as_secs_f64()
}

fn print_report(results: &[ModeResult], secs: f64, burst: u64) {
    println!();
    println!(
        "Tenant isolation: tenant B (Cayenne LPP, file sink) one message at a time for {secs} s alone, then {secs} s next to tenant A (an infinite loop at full rate); latency from submission to settled."
    );
    println!();
    println!(
        "| isolation | phase | B msgs/s | B p50 µs | B p99 µs | B p99.9 µs | B max µs | A messages burnt |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in results {
        for (label, phase) in [("B alone", &r.alone), ("B next to A", &r.noisy)] {
            println!(
                "| {} | {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
                r.mode,
                phase.rate,
                phase.us(0.5),
                phase.us(0.99),
                phase.us(0.999),
                phase.hist.max() as f64 / 1000.0,
                phase.noisy_settled
            );
        }
    }
    println!();
    println!("Next to A ÷ alone, and B's throughput ({burst} messages submitted at once):");
    println!();
    println!("| isolation | p50 × | p99 × | p99.9 × | B throughput msgs/s |");
    println!("|---|---:|---:|---:|---:|");
    for r in results {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.0} |",
            r.mode,
            r.noisy.us(0.5) / r.alone.us(0.5),
            r.noisy.us(0.99) / r.alone.us(0.99),
            r.noisy.us(0.999) / r.alone.us(0.999),
            r.throughput
        );
    }
    if let [inproc, process] = results {
        println!();
        println!("Cost of process isolation (process ÷ in-process):");
        println!();
        println!("| | B alone p50 × | B alone p99 × | B next to A p99 × | throughput × |");
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| process ÷ in-process | {:.2} | {:.2} | {:.2} | {:.2} |",
            process.alone.us(0.5) / inproc.alone.us(0.5),
            process.alone.us(0.99) / inproc.alone.us(0.99),
            process.noisy.us(0.99) / inproc.noisy.us(0.99),
            process.throughput / inproc.throughput
        );
    }
}
