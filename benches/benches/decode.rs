//! Native Rust decoding vs the Sluice sandbox, on the same Cayenne LPP frames, in one run.
//!
//! `cargo bench -p sluice-benches --bench decode` prints a Markdown table: throughput on one
//! core and per-call p50/p99/p99.9, plus compile and instantiation times.
//! `SLUICE_BENCH_CALLS` sets the measured calls per contender (default 300000);
//! `SLUICE_BENCH_ONLY=native|reused|fresh` runs one contender group (for profiling);
//! `SLUICE_EPOCH_TICK_MS` sets the deadline ticker period; `SLUICE_BENCH_MAX_INSTANCES`
//! shrinks the instance pool (to run under valgrind, whose address space is smaller).

use std::hint::black_box;
use std::time::Instant;

use sluice_benches::{Measurement, cayenne_frames, measure, table};
use sluice_runtime::{InstanceEnv, Runtime, RuntimeConfig};
use sluice_types::{ModulePolicy, ModuleRef, Uplink};

fn main() {
    let calls: u64 = std::env::var("SLUICE_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let only = std::env::var("SLUICE_BENCH_ONLY").unwrap_or_default();
    let wanted = |group: &str| only.is_empty() || only == group;
    let warmup = (calls / 10).max(1_000);
    let frames = cayenne_frames();
    let uplinks: Vec<Uplink> = frames
        .iter()
        .map(|f| Uplink {
            device_id: "bench-device".into(),
            port: 1,
            received_at_ms: 1_700_000_000_000,
            payload: f.clone(),
            metadata: vec![("gateway".into(), "gw-1".into())],
        })
        .collect();
    let n = frames.len() as u64;

    // `SLUICE_EPOCH_TICK_MS` changes the deadline ticker's period (default 2 ms).
    let mut config = RuntimeConfig::default();
    if let Some(ms) = std::env::var("SLUICE_EPOCH_TICK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.epoch_tick = std::time::Duration::from_millis(ms);
    }
    // `SLUICE_BENCH_MAX_INSTANCES` shrinks the instance pool (and its address-space
    // reservation), e.g. to run under valgrind.
    if let Some(n) = std::env::var("SLUICE_BENCH_MAX_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.max_instances = n;
    }
    let runtime = Runtime::new(config).expect("runtime");
    let bytes = std::fs::read(sluice_test_programs::CAYENNE_LPP).expect("component");
    let compile_started = Instant::now();
    let module = runtime
        .load(
            ModuleRef::new("cayenne-lpp", "bench"),
            &bytes,
            ModulePolicy::default(),
        )
        .expect("loads");
    let compile = compile_started.elapsed();

    // Every contender must produce the same documents.
    let mut check = module.instantiate(InstanceEnv::default());
    for (frame, uplink) in frames.iter().zip(&uplinks) {
        let native = cayenne_lpp::decode(frame).expect("native decodes");
        let sandboxed = check.decode(uplink).result.expect("sandbox decodes");
        assert_eq!(sandboxed.into_value(), native, "same document");
    }

    let mut native: Option<Measurement> = None;
    let mut reused: Option<Measurement> = None;
    let mut rows: Vec<Measurement> = Vec::new();
    if wanted("native") {
        let m = measure("native Rust (decode → value)", warmup, calls, |i| {
            black_box(cayenne_lpp::decode(black_box(&frames[(i % n) as usize])).ok());
        });
        native = Some(m.clone());
        rows.push(m);
        rows.push(measure(
            "native Rust (decode → JSON bytes)",
            warmup,
            calls,
            |i| {
                let v = cayenne_lpp::decode(black_box(&frames[(i % n) as usize]));
                black_box(v.ok().map(|v| serde_json::to_vec(&v).ok()));
            },
        ));
    }
    if wanted("reused") {
        let mut instance = module.instantiate(InstanceEnv::default());
        let m = measure(
            "Sluice sandbox, reused instance (default)",
            warmup,
            calls,
            |i| {
                let out = instance.decode(&uplinks[(i % n) as usize]);
                black_box(out.result.ok());
            },
        );
        reused = Some(m.clone());
        rows.push(m);
    }
    // The machine's own jitter at the sandbox's call duration: a pure-CPU loop that takes
    // as long as a sandboxed call. Whatever tail it shows is the machine (interrupts, the
    // hypervisor), not the sandbox.
    if wanted("reused") || wanted("calibration") {
        let target = reused
            .as_ref()
            .map(|m| m.p50)
            .unwrap_or(std::time::Duration::from_micros(3));
        let spins = calibrate_spins(target);
        rows.push(measure(
            &format!(
                "calibration: CPU loop of the sandbox's p50 ({:.1} µs)",
                target.as_secs_f64() * 1e6
            ),
            warmup,
            calls,
            |_| {
                black_box(spin(black_box(spins)));
            },
        ));
    }

    // Per frame: the mixed run above is multi-modal (a 4-byte frame decodes several times
    // faster than the 41-byte one), so jitter shows best with one frame at a time.
    let mut per_frame: Vec<(usize, Measurement, Measurement)> = Vec::new();
    if wanted("reused") {
        let mut instance = module.instantiate(InstanceEnv::default());
        let each = (calls / 5).max(1_000);
        for (frame, uplink) in frames.iter().zip(&uplinks) {
            let native = measure("native", each / 10, each, |_| {
                black_box(cayenne_lpp::decode(black_box(frame)).ok());
            });
            let sandboxed = measure("sandbox", each / 10, each, |_| {
                black_box(instance.decode(uplink).result.ok());
            });
            per_frame.push((frame.len(), native, sandboxed));
        }
    }
    let mut instantiation = None;
    if wanted("fresh") {
        let fresh_module = runtime
            .load(
                ModuleRef::new("cayenne-lpp", "bench-fresh"),
                &bytes,
                ModulePolicy {
                    fresh_instance_per_call: true,
                    ..ModulePolicy::default()
                },
            )
            .expect("loads");
        let mut fresh = fresh_module.instantiate(InstanceEnv::default());
        let fresh_calls = (calls / 5).max(1_000);
        rows.push(measure(
            "Sluice sandbox, fresh instance per message",
            fresh_calls / 10,
            fresh_calls,
            |i| {
                let out = fresh.decode(&uplinks[(i % n) as usize]);
                black_box(out.result.ok());
            },
        ));
        instantiation = Some(measure("instantiation only", 100, 5_000, |_| {
            let mut inst = module.instantiate(InstanceEnv::default());
            black_box(inst.prepare().ok());
        }));
    }

    println!(
        "\n## Cayenne LPP decode: native vs sandbox ({calls} calls per contender, 5 frames of 4–41 bytes, one thread)\n"
    );
    println!("{}", table(&rows));
    if !per_frame.is_empty() {
        println!("### Per frame, reused instance (µs)\n");
        println!(
            "| frame bytes | native p50 | native p99.9 | sandbox p50 | sandbox p99 | sandbox p99.9 | sandbox p99.9/p50 | × native (p50) |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (len, native, sandbox) in &per_frame {
            let us = |d: std::time::Duration| d.as_secs_f64() * 1e6;
            println!(
                "| {len} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
                us(native.p50),
                us(native.p999),
                us(sandbox.p50),
                us(sandbox.p99),
                us(sandbox.p999),
                us(sandbox.p999) / us(sandbox.p50),
                us(sandbox.p50) / us(native.p50)
            );
        }
        println!();
    }
    println!(
        "compile (validate + cranelift, cache miss): {:.1} ms",
        compile.as_secs_f64() * 1e3
    );
    if let Some(inst) = instantiation {
        println!(
            "instantiation (pooling allocator + InstancePre, then drop): p50 {:.1} µs, p99 {:.1} µs",
            inst.p50.as_secs_f64() * 1e6,
            inst.p99.as_secs_f64() * 1e6
        );
    }
    if let (Some(native), Some(reused)) = (native, reused) {
        println!(
            "\nsandboxed / native time: {:.1}× (target ≤ 10×); sandboxed msgs/s: {:.0} (target ≥ 100k); sandboxed p99.9/p50: {:.1} (target ≤ 3)",
            native.per_second / reused.per_second,
            reused.per_second,
            reused.p999.as_secs_f64() / reused.p50.as_secs_f64()
        );
    }
}

/// A pure-CPU loop: `n` rounds of an xorshift.
fn spin(n: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// How many [`spin`] rounds take `target` on this machine (median of a few tries).
fn calibrate_spins(target: std::time::Duration) -> u64 {
    let rounds = 1_000_000u64;
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            black_box(spin(black_box(rounds)));
            t.elapsed().as_secs_f64() / rounds as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let per_round = samples[samples.len() / 2].max(1e-12);
    (target.as_secs_f64() / per_round).max(1.0) as u64
}
