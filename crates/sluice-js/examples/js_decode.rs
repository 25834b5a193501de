//! Per-call cost of a JavaScript codec on the production runtime, next to the Rust Cayenne
//! LPP component on the same frames.
//!
//! ```sh
//! cargo run --release -p sluice-js --example js_decode            # 100k calls per contender
//! SLUICE_BENCH_CALLS=20000 cargo run --release -p sluice-js --example js_decode
//! ```
//!
//! Prints the build (pre-initialisation) time, the component size, the load (compile) time,
//! then msgs/s and p50/p99/p99.9 for: the Rust component; a JavaScript decoder that returns
//! `{}` (the fixed cost of a JavaScript call); the JavaScript LPP codec with one reused
//! instance, and with a fresh instance (from the snapshot) per message.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use sluice_runtime::{InstanceEnv, Module, Runtime, RuntimeConfig};
use sluice_types::{ModulePolicy, ModuleRef, Uplink};

fn uplinks() -> Vec<Uplink> {
    sluice_benches::cayenne_frames()
        .into_iter()
        .map(|payload| Uplink {
            device_id: "bench".into(),
            port: 1,
            received_at_ms: 1_700_000_000_000,
            payload,
            metadata: vec![],
        })
        .collect()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Decodes the frames round-robin `calls` times (after a warm-up), timing each call.
fn measure(name: &str, module: &Module, calls: u64) -> Result<()> {
    let uplinks = uplinks();
    let mut instance = module.instantiate(InstanceEnv::default());
    let mut fuel = vec![0u64; uplinks.len()];
    for (i, uplink) in uplinks.iter().cycle().take(1_000).enumerate() {
        let out = instance.decode(uplink);
        out.result
            .with_context(|| format!("{name}: frame {}", i % 5))?;
        fuel[i % uplinks.len()] = out.report.fuel_consumed;
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)?;
    let started = Instant::now();
    for i in 0..calls {
        let uplink = &uplinks[(i % uplinks.len() as u64) as usize];
        let t = Instant::now();
        let out = instance.decode(uplink);
        histogram.saturating_record((t.elapsed().as_nanos() as u64).max(1));
        out.result.with_context(|| format!("{name}: call {i}"))?;
    }
    let elapsed = started.elapsed();
    let at = |q: f64| Duration::from_nanos(histogram.value_at_quantile(q));
    println!(
        "| {name} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
        calls as f64 / elapsed.as_secs_f64(),
        us(at(0.5)),
        us(at(0.99)),
        us(at(0.999)),
        fuel.iter()
            .map(|f| format!("{}k", f / 1000))
            .collect::<Vec<_>>()
            .join(" / "),
    );
    Ok(())
}

fn main() -> Result<()> {
    let calls: u64 = std::env::var("SLUICE_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let script_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../js/fixtures/cayenne-lpp.js"
    );
    let script = std::fs::read_to_string(script_path).context(script_path)?;

    // The first build compiles the engine for the builder (once per process).
    let started = Instant::now();
    sluice_js::build_js_codec(&script)?;
    let first_build = started.elapsed();
    let started = Instant::now();
    let built = sluice_js::build_js_codec_report(&script, &Default::default())?;
    let build = started.elapsed();
    let component = built.component;

    let runtime = Runtime::new(RuntimeConfig::default())?;
    let started = Instant::now();
    let js = runtime.load(
        ModuleRef::new("cayenne-lpp-js", "1"),
        &component,
        ModulePolicy::default(),
    )?;
    let load = started.elapsed();
    let rust_bytes = std::fs::read(sluice_test_programs::CAYENNE_LPP)?;
    let rust = runtime.load(
        ModuleRef::new("cayenne-lpp", "1"),
        &rust_bytes,
        ModulePolicy::default(),
    )?;
    // The fixed cost of a JavaScript call: a decoder that reads nothing and returns `{}`.
    let empty_component =
        sluice_js::build_js_codec("function decodeUplink(input) { return { data: {} }; }")?;
    let empty = runtime.load(
        ModuleRef::new("empty-js", "1"),
        &empty_component,
        ModulePolicy::default(),
    )?;
    let fresh = runtime.load(
        ModuleRef::new("cayenne-lpp-js-fresh", "1"),
        &component,
        ModulePolicy {
            fresh_instance_per_call: true,
            ..ModulePolicy::default()
        },
    )?;

    println!(
        "build (pre-initialise + component): {:.0} ms (first build in the process, with the \
         engine's compile: {:.0} ms)",
        build.as_secs_f64() * 1e3,
        first_build.as_secs_f64() * 1e3
    );
    println!(
        "script evaluation at build time: {} fuel; instances start with {} KiB of memory",
        built.init_fuel_consumed,
        built.initial_memory_bytes / 1024
    );
    println!(
        "component: {} bytes; load (validate + compile): {:.0} ms",
        component.len(),
        load.as_secs_f64() * 1e3
    );
    println!("{calls} calls per contender, five LPP frames of 4-41 bytes round-robin\n");
    println!("| contender | msgs/s | p50 µs | p99 µs | p99.9 µs | fuel per frame |");
    println!("|---|---:|---:|---:|---:|---|");
    measure("Rust component, reused instance", &rust, calls)?;
    measure(
        "JavaScript, empty decoder (fixed cost), reused instance",
        &empty,
        calls,
    )?;
    measure("JavaScript component, reused instance", &js, calls)?;
    measure(
        "JavaScript component, fresh instance per message",
        &fresh,
        calls,
    )?;
    Ok(())
}
