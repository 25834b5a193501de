//! Sluice against its peers, on the same work, in one run.
//!
//! `cargo run --release --manifest-path benches/peers/Cargo.toml` decodes the same Cayenne LPP
//! frames (three sizes) and bit-packed frames, and routes the same decoded readings, with:
//! native Rust (the example crates called directly), a bare wasmtime 48 host running the same
//! code as a core module, Extism running it as a plug-in, QuickJS (rquickjs) running the same
//! logic as a TTN / TS013 JavaScript codec (new runtime per message, and a reused context),
//! the same JavaScript built into a Sluice component by `sluice-js` (reused and fresh
//! instances; codecs only), and Sluice (in process, reused and fresh instances, and through
//! the tenant's worker process). Before measuring it checks that every contender gives the
//! same JSON for every input, and stops if one does not.
//!
//! It prints Markdown tables: msgs/s on one thread and p50/p99/p99.9 per message (HDR
//! histogram), load and cold-start times, resident memory per idle instance.
//!
//! - `SLUICE_BENCH_CALLS`: measured calls per contender and workload (default 100000; the
//!   per-message QuickJS runtime gets a tenth, the fresh-instance and worker rows a fifth).
//! - `SLUICE_BENCH_WRITE=1` (or `--write`): also write `docs/peers.md` and `docs/peers.svg`.

mod hosts;
mod report;
mod workloads;

use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use hdrhistogram::Histogram;

use hosts::{Extism, Host, Kind, Native, QuickJs, RawWasmtime, SluiceInProcess, SluiceWorker};
use report::{Row, StartupRow, WorkloadResult};
use workloads::{Workload, same_json};

/// Pool slots of the wasm hosts: the per-instance memory measurement keeps
/// [`MEMORY_INSTANCES`] alive next to the measured ones.
const MAX_INSTANCES: u32 = 300;
/// Instances kept alive to measure resident memory per instance.
const MEMORY_INSTANCES: usize = 100;
/// Cold starts timed per contender.
const COLD_STARTS: u64 = 200;
/// Cold starts of a worker process (spawn, harden, load and compile, first message).
const WORKER_COLD_STARTS: usize = 3;
/// The workload the start-up and memory figures use (index into the workload list).
const REFERENCE_WORKLOAD: usize = 1;

/// The argument that makes the benchmark binary measure one contender's memory per instance
/// (in a fresh process, so that no other contender's freed memory is reused).
const MEMORY_ARG: &str = "--peer-memory";

/// How many contenders run in the benchmark's own process (see [`in_process_host`]).
const IN_PROCESS_HOSTS: usize = 9;

/// The in-process contenders, in table order; the worker process comes after them.
fn in_process_host(index: usize) -> Result<Box<dyn Host>> {
    Ok(match index {
        0 => Box::new(Native),
        1 => Box::new(RawWasmtime::new(MAX_INSTANCES)?),
        2 => Box::new(Extism::default()),
        3 => Box::new(QuickJs { per_message: true }),
        4 => Box::new(QuickJs { per_message: false }),
        5 => Box::new(SluiceInProcess::javascript(false, MAX_INSTANCES)?),
        6 => Box::new(SluiceInProcess::javascript(true, MAX_INSTANCES)?),
        7 => Box::new(SluiceInProcess::new(false, MAX_INSTANCES)?),
        8 => Box::new(SluiceInProcess::new(true, MAX_INSTANCES)?),
        _ => bail!("no in-process contender {index}"),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(hosts::WORKER_ARG) {
        return sluice_worker::worker_main();
    }
    if args.get(1).map(String::as_str) == Some(MEMORY_ARG) {
        let measured = args
            .get(2)
            .and_then(|i| i.parse().ok())
            .context("usage: --peer-memory <contender index>")
            .and_then(memory_per_instance);
        return match measured {
            Ok(bytes) => {
                println!("{bytes}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_number(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .with_context(|| format!("{name}={text:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn run() -> Result<()> {
    let started = Instant::now();
    let calls = env_number("SLUICE_BENCH_CALLS", 100_000)?.max(1_000);
    let write = std::env::var("SLUICE_BENCH_WRITE").is_ok_and(|v| v == "1")
        || std::env::args().any(|a| a == "--write");
    let workloads = workloads::workloads()?;

    eprintln!("starting the contenders and loading every module…");
    let mut hosts = (0..IN_PROCESS_HOSTS)
        .map(in_process_host)
        .collect::<Result<Vec<_>>>()?;
    let worker = SluiceWorker::new().context("cannot start a Sluice worker process")?;
    let worker_pid = worker.pid();
    hosts.push(Box::new(worker));

    // Load every example's module once; the reference workload's load time goes in the
    // start-up table.
    let reference_example = workloads[REFERENCE_WORKLOAD].example;
    let mut load_times = Vec::new();
    for host in &mut hosts {
        let mut reference = None;
        let mut loaded = Vec::new();
        for workload in &workloads {
            if loaded.contains(&workload.example) || !host.supports(workload) {
                continue;
            }
            let t = Instant::now();
            host.load(workload)
                .with_context(|| format!("{}: loading {}", host.name(), workload.name))?;
            if workload.example == reference_example {
                reference = Some(t.elapsed());
            }
            loaded.push(workload.example);
        }
        load_times.push(reference);
    }

    check_outputs(&hosts, &workloads)?;
    eprintln!("every contender gives the same JSON for every input; measuring…");

    let mut results = Vec::new();
    for workload in &workloads {
        let mut rows = Vec::new();
        for host in &hosts {
            if !host.supports(workload) {
                rows.push(Row {
                    contender: host.name(),
                    measurement: None,
                });
                continue;
            }
            let n = match host.kind() {
                Kind::PerMessage if host.name().starts_with("QuickJS") => calls / 10,
                Kind::PerMessage | Kind::Process => calls / 5,
                Kind::Native | Kind::Kept => calls,
            };
            rows.push(measure(host.as_ref(), workload, n)?);
        }
        eprintln!("  {} done", workload.name);
        results.push(WorkloadResult {
            name: workload.name.clone(),
            rows,
        });
    }

    eprintln!("cold starts and memory…");
    let reference = &workloads[REFERENCE_WORKLOAD];
    let mut startup = Vec::new();
    for (index, (host, load)) in hosts.iter().zip(&load_times).enumerate() {
        startup.push(startup_row(
            index,
            host.as_ref(),
            reference,
            *load,
            worker_pid,
        )?);
    }

    let elapsed = started.elapsed();
    let markdown = render(&results, &startup, &reference.name, elapsed);
    println!("{markdown}");
    if write {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs");
        let svg = report::svg_chart(&results)?;
        std::fs::write(docs.join("peers.svg"), svg).context("cannot write docs/peers.svg")?;
        std::fs::write(
            docs.join("peers.md"),
            format!("{}{markdown}", report::PREAMBLE),
        )
        .context("cannot write docs/peers.md")?;
        eprintln!("wrote docs/peers.md and docs/peers.svg");
    }
    Ok(())
}

/// Runs every input of every workload through every contender and compares the JSON with
/// the native output; the first difference stops the run.
fn check_outputs(hosts: &[Box<dyn Host>], workloads: &[Workload]) -> Result<()> {
    for workload in workloads {
        let mut instances = hosts
            .iter()
            .filter(|h| h.supports(workload))
            .map(|h| h.instance(workload).map(|i| (h.name(), i)))
            .collect::<Result<Vec<_>>>()?;
        for input in &workload.inputs {
            let mut expected = None;
            for (name, instance) in &mut instances {
                let value = instance
                    .run(input)
                    .and_then(|o| o.to_value())
                    .with_context(|| format!("{name} failed on {}", workload.name))?;
                match &expected {
                    None => expected = Some(value),
                    Some(reference) => {
                        if !same_json(reference, &value) {
                            bail!(
                                "{name} gives a different result on {} (input {}):\n  native: \
                                 {reference}\n  {name}: {value}",
                                workload.name,
                                String::from_utf8_lossy(&input.wire)
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Measures `calls` messages of `workload` (round-robin over its inputs) on one instance.
fn measure(host: &dyn Host, workload: &Workload, calls: u64) -> Result<Row> {
    let mut instance = host.instance(workload)?;
    let inputs = &workload.inputs;
    let mut failures = 0u64;
    let measurement = sluice_benches::measure(host.name(), (calls / 10).max(100), calls, |i| {
        let input = &inputs[(i % inputs.len() as u64) as usize];
        if black_box(instance.run(input)).is_err() {
            failures += 1;
        }
    });
    if failures > 0 {
        bail!(
            "{}: {failures} calls failed on {}",
            host.name(),
            workload.name
        );
    }
    Ok(Row {
        contender: host.name(),
        measurement: Some(measurement),
    })
}

/// Cold start (new instance + first message) and resident memory per idle instance.
fn startup_row(
    index: usize,
    host: &dyn Host,
    workload: &Workload,
    load: Option<Duration>,
    worker_pid: u32,
) -> Result<StartupRow> {
    let input = workload.inputs.first().context("workload has no input")?;
    let mut row = StartupRow {
        contender: host.name(),
        artifact_bytes: host.artifact_bytes(workload),
        load,
        cold_start: None,
        cold_start_note: "—",
        rss_per_instance: None,
        rss_note: "",
    };
    if !host.compiles() {
        row.load = None;
    }
    if !host.supports(workload) {
        row.cold_start_note = "n/a";
        row.rss_note = "n/a";
        return Ok(row);
    }
    match host.kind() {
        Kind::Native => {
            row.cold_start_note = "none";
            row.rss_note = "none";
        }
        Kind::PerMessage => {
            row.cold_start_note = "every message";
            row.rss_note = "none kept";
        }
        Kind::Kept => {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
            for _ in 0..COLD_STARTS {
                let t = Instant::now();
                let mut instance = host.instance(workload)?;
                black_box(instance.run(input)?);
                histogram.saturating_record((t.elapsed().as_nanos() as u64).max(1));
            }
            row.cold_start = Some((
                Duration::from_nanos(histogram.value_at_quantile(0.5)),
                Duration::from_nanos(histogram.value_at_quantile(0.99)),
            ));
            row.rss_per_instance = Some(memory_in_child(index)?);
        }
        Kind::Process => {
            // A new worker process: spawn, harden, say ready, load (compile), first message.
            let mut times = Vec::new();
            for _ in 0..WORKER_COLD_STARTS {
                let t = Instant::now();
                let mut worker = hosts::spawn_worker("bench-cold")?;
                hosts::load_in_worker(&mut worker, 1, workload)?;
                let outcome = worker.decode(1, &input.uplink);
                outcome
                    .result
                    .map_err(|e| anyhow::anyhow!("worker cold start: {e}"))?;
                times.push(t.elapsed());
                worker.shutdown();
            }
            times.sort();
            row.cold_start = Some((times[times.len() / 2], times[times.len() - 1]));
            row.rss_per_instance = Some(hosts::rss_bytes(&worker_pid.to_string())?);
            row.rss_note = " (whole worker process, all modules loaded)";
        }
    }
    Ok(row)
}

/// Runs `--peer-memory <index>` in a new process and reads its answer.
fn memory_in_child(index: usize) -> Result<u64> {
    let exe = std::env::current_exe().context("cannot find the benchmark executable")?;
    let output = std::process::Command::new(exe)
        .args([MEMORY_ARG, &index.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start the memory measurement")?;
    if !output.status.success() {
        bail!(
            "the memory measurement of contender {index} failed ({})",
            output.status
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .with_context(|| format!("the memory measurement printed {text:?}"))
}

/// In a fresh process: the growth of resident memory while [`MEMORY_INSTANCES`] instances of
/// contender `index` are created and run one message each, per instance. One instance is made
/// and run first, so one-off set-up (engine state, first-use allocations) is not counted.
fn memory_per_instance(index: usize) -> Result<u64> {
    let workloads = workloads::workloads()?;
    let workload = &workloads[REFERENCE_WORKLOAD];
    let input = workload.inputs.first().context("workload has no input")?;
    let mut host = in_process_host(index)?;
    host.load(workload)?;
    let mut warm = host.instance(workload)?;
    black_box(warm.run(input)?);
    let before = hosts::rss_bytes("self")?;
    let mut kept = Vec::with_capacity(MEMORY_INSTANCES);
    for _ in 0..MEMORY_INSTANCES {
        let mut instance = host.instance(workload)?;
        black_box(instance.run(input)?);
        kept.push(instance);
    }
    let after = hosts::rss_bytes("self")?;
    drop(kept);
    Ok(after.saturating_sub(before) / MEMORY_INSTANCES as u64)
}

/// The report: tables, targets, run facts.
fn render(
    results: &[WorkloadResult],
    startup: &[StartupRow],
    reference: &str,
    elapsed: Duration,
) -> String {
    let mut out = String::from("## Throughput and latency per message (one thread)\n\n");
    out.push_str(&report::throughput_tables(results));
    out.push_str("## Load, cold start and memory\n\n");
    out.push_str(&report::startup_table(startup, reference));
    out.push_str("\n## Against the targets\n\n");
    out.push_str(&targets(results));
    out.push_str(
        "\nJavaScript codecs: the same script in the Sluice sandbox and in QuickJS on the host \
         (targets: Sluice JS ≥ 10× QuickJS per message, p99.9 ≤ 3× p50).\n\n",
    );
    out.push_str(&js_targets(results));
    out.push_str(&format!(
        "\nRun: {} on {} logical CPUs, {:.0} s wall time (build excluded).\n",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        elapsed.as_secs_f64()
    ));
    out
}

/// The Sluice targets, per workload.
fn targets(results: &[WorkloadResult]) -> String {
    let sluice = "Sluice in process, reused instance";
    let fresh = "Sluice in process, fresh instance per message";
    let mut out = String::from(
        "| workload | Sluice ÷ native time (≤ 10) | Sluice ÷ Extism msgs/s (≥ 1) | Sluice p99.9 ÷ p50 (≤ 3) | Sluice ÷ QuickJS per message msgs/s (≥ 2) | fresh-instance Sluice ÷ QuickJS per message (≥ 2) |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for result in results {
        let rate = |name: &str| result.measured(name).map(|m| m.per_second);
        let (Some(native), Some(s), Some(extism), Some(js), Some(f)) = (
            rate("native Rust"),
            rate(sluice),
            rate("Extism 1.30 plug-in"),
            rate("QuickJS (rquickjs), new runtime + context per message"),
            rate(fresh),
        ) else {
            continue;
        };
        let tail = result.tail(sluice).unwrap_or(f64::NAN);
        let mark = |ok: bool| if ok { "" } else { " ✗" };
        out.push_str(&format!(
            "| {} | {:.1}{} | {:.2}{} | {:.1}{} | {:.1}{} | {:.1}{} |\n",
            result.name,
            native / s,
            mark(native / s <= 10.0),
            s / extism,
            mark(s >= extism),
            tail,
            mark(tail <= 3.0),
            s / js,
            mark(s >= 2.0 * js),
            f / js,
            mark(f >= 2.0 * js),
        ));
    }
    out
}

/// The JavaScript targets, per codec workload: the Sluice JavaScript component on a reused
/// instance against QuickJS on the host with a new context per message (the usual platform
/// practice; target ≥ 10×) and with a reused context, and p99.9 ÷ p50 of each JavaScript
/// contender (target ≤ 3 for Sluice). Workloads without a JavaScript component are left out.
fn js_targets(results: &[WorkloadResult]) -> String {
    let sluice = "Sluice, JavaScript codec, reused instance";
    let fresh = "Sluice, JavaScript codec, fresh instance per message";
    let per_message = "QuickJS (rquickjs), new runtime + context per message";
    let reused = "QuickJS (rquickjs), reused context";
    let mut out = String::from(
        "| workload | Sluice JS ÷ QuickJS per message msgs/s (≥ 10) | Sluice JS ÷ QuickJS reused msgs/s | fresh-instance Sluice JS ÷ QuickJS per message | Sluice JS p99.9 ÷ p50 (≤ 3) | fresh Sluice JS p99.9 ÷ p50 | QuickJS per message p99.9 ÷ p50 | QuickJS reused p99.9 ÷ p50 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for result in results {
        let rate = |name: &str| result.measured(name).map(|m| m.per_second);
        let (Some(s), Some(f), Some(js), Some(js_reused)) =
            (rate(sluice), rate(fresh), rate(per_message), rate(reused))
        else {
            continue;
        };
        let tail = |name: &str| result.tail(name).unwrap_or(f64::NAN);
        let mark = |ok: bool| if ok { "" } else { " ✗" };
        out.push_str(&format!(
            "| {} | {:.1}{} | {:.2} | {:.1} | {:.1}{} | {:.1} | {:.1} | {:.1} |\n",
            result.name,
            s / js,
            mark(s >= 10.0 * js),
            s / js_reused,
            f / js,
            tail(sluice),
            mark(tail(sluice) <= 3.0),
            tail(fresh),
            tail(per_message),
            tail(reused),
        ));
    }
    out
}
