//! `sluice demo`: the embedded Cayenne LPP codec in the sandbox — load, throughput, latency,
//! and the sandbox holding against bad input and a tight fuel limit.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use hdrhistogram::Histogram;
use sluice_runtime::{Instance, InstanceEnv};
use sluice_types::{Document, Limits, ModulePolicy, Uplink};

use crate::output::{size_short, spaced_hex, thousands};
use crate::sandbox;

/// Examples and notes shown after `sluice demo --help`.
pub const AFTER_HELP: &str = "\
Examples:
  sluice demo                        200 000 frames, 5 samples
  sluice demo --frames 1000000       a longer run
  sluice demo --frames 2000 --show 1

Needs nothing but this binary: the codec (examples/cayenne-lpp) is embedded. The frames are
the Cayenne LPP documentation examples and deterministic multi-sensor frames; every call runs
under the production limits on one reused instance, timed one by one.";

/// The module name the demo loads the codec under.
const MODULE_NAME: &str = "cayenne-lpp";
/// Device id of the demo messages.
const DEVICE_ID: &str = "demo-sensor-1";
/// Reception time of the demo messages (fixed: the demo is deterministic).
const RECEIVED_AT_MS: u64 = 1_700_000_000_000;
/// Distinct frames the run cycles through.
const FRAME_POOL: usize = 64;
/// Fuel of the deliberately starved module.
const STARVED_FUEL: u64 = 1_000;

/// The frames of the public Cayenne LPP documentation.
const DOCUMENTATION_FRAMES: &[&[u8]] = &[
    &[0x03, 0x67, 0x01, 0x10, 0x05, 0x67, 0x00, 0xFF],
    &[0x01, 0x67, 0xFF, 0xD7],
    &[0x06, 0x71, 0x04, 0xD2, 0xFB, 0x2E, 0x00, 0x00],
    &[
        0x01, 0x88, 0x06, 0x76, 0x5F, 0xF2, 0x96, 0x0A, 0x00, 0x03, 0xE8,
    ],
    &[
        0x01, 0x67, 0xFF, 0xD7, 0x06, 0x71, 0x04, 0xD2, 0xFB, 0x2E, 0x00, 0x00,
    ],
];

/// A frame cut in the middle of a temperature.
const TRUNCATED_FRAME: &[u8] = &[0x03, 0x67, 0x01];

/// Arguments of `sluice demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Frames to decode in the timed run.
    #[arg(long, default_value_t = 200_000)]
    frames: u64,
    /// Sample frames to show decoded before the run.
    #[arg(long, default_value_t = 5)]
    show: usize,
}

/// Runs `sluice demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let bytes = sluice_test_programs::CAYENNE_LPP_BYTES;
    let sha = sandbox::sha256_hex(bytes);
    println!("Sluice demo: a Cayenne LPP codec in the WebAssembly sandbox");
    println!(
        "  component     examples/cayenne-lpp, embedded in this binary: {}, sha256 {}",
        size_short(bytes.len() as u64),
        sandbox::short_sha(&sha)
    );

    let started = Instant::now();
    let runtime = sandbox::runtime()?;
    let runtime_time = started.elapsed();
    let started = Instant::now();
    let module = sandbox::load(&runtime, MODULE_NAME, bytes, ModulePolicy::default())
        .map_err(anyhow::Error::new)
        .context("the embedded codec does not load")?;
    let load_time = started.elapsed();
    let limits = &module.policy().limits;
    println!("  world         {}", module.world());
    println!("  runtime       started in {}", millis(runtime_time));
    println!(
        "  load          validated, compiled and linked in {}",
        millis(load_time)
    );
    println!(
        "  limits        {} fuel, {} ms, {} memory per call",
        thousands(limits.fuel_per_call),
        limits.deadline_ms,
        size_short(limits.max_memory_bytes)
    );

    let mut instance = module.instantiate(InstanceEnv::default());
    let frames = frame_pool();
    let first = instance.decode(&uplink(&frames[0]));
    let second = instance.decode(&uplink(&frames[0]));
    first.result.map_err(anyhow::Error::new)?;
    second.result.map_err(anyhow::Error::new)?;
    println!(
        "  instantiate   first call {} (creates the instance), next call {}",
        micros(first.report.duration),
        micros(second.report.duration)
    );

    if args.show > 0 {
        println!();
        println!("Sample frames (hex → document)");
        for frame in samples(&frames, args.show) {
            let document = decode_ok(&mut instance, frame)?;
            println!("  {}", spaced_hex(frame));
            println!("    → {document}");
        }
    }

    println!();
    println!(
        "Throughput: {} frames ({} documentation + {} multi-sensor frames, cycled) on one \
         instance, each call timed",
        thousands(args.frames),
        DOCUMENTATION_FRAMES.len(),
        FRAME_POOL - DOCUMENTATION_FRAMES.len()
    );
    let run = timed_run(&mut instance, &frames, args.frames)?;
    let rate = run.decoded as f64 / run.elapsed.as_secs_f64().max(f64::EPSILON);
    println!(
        "  decoded       {} ok, {} failed in {:.2} s",
        thousands(run.decoded),
        thousands(run.failed),
        run.elapsed.as_secs_f64()
    );
    println!("  throughput    {} msgs/s", thousands(rate.round() as u64));
    let q = |quantile: f64| micros_f(run.latency_ns.value_at_quantile(quantile));
    println!(
        "  latency       p50 {}   p99 {}   p99.9 {}   max {}",
        q(0.50),
        q(0.99),
        q(0.999),
        micros_f(run.latency_ns.max())
    );
    println!(
        "  fuel          {} per frame on average",
        thousands(run.fuel / run.decoded.max(1))
    );

    println!();
    println!("The sandbox holds");
    println!("  a truncated frame: {}", spaced_hex(TRUNCATED_FRAME));
    let refused = instance.decode(&uplink(TRUNCATED_FRAME));
    match refused.result {
        Err(failure) => println!("    → refused with a typed error: {failure}"),
        Ok(document) => println!("    → unexpectedly decoded: {document}"),
    }
    let good = &frames[1];
    println!(
        "    → the same instance decodes the next frame: {}",
        decode_ok(&mut instance, good)?
    );

    let starved_policy = ModulePolicy {
        limits: Limits {
            fuel_per_call: STARVED_FUEL,
            ..Limits::default()
        },
        ..ModulePolicy::default()
    };
    println!(
        "  the same codec under fuel_per_call = {} (a decode needs ~{})",
        thousands(STARVED_FUEL),
        thousands(second.report.fuel_consumed)
    );
    let starved = sandbox::load(&runtime, MODULE_NAME, bytes, starved_policy)
        .map_err(anyhow::Error::new)
        .context("the embedded codec does not load with a small fuel limit")?;
    let mut starved = starved.instantiate(InstanceEnv::default());
    match starved.decode(&uplink(good)).result {
        Err(failure) => println!("    → stopped: {failure}"),
        Ok(document) => println!("    → unexpectedly decoded: {document}"),
    }
    println!(
        "    → the runtime is unharmed; default limits decode it: {}",
        decode_ok(&mut instance, good)?
    );
    Ok(ExitCode::SUCCESS)
}

/// Up to `count` frames to show, alternating documentation and multi-sensor frames.
fn samples(frames: &[Vec<u8>], count: usize) -> Vec<&[u8]> {
    let documentation = DOCUMENTATION_FRAMES.len().min(frames.len());
    let (documented, generated) = frames.split_at(documentation);
    let mut out = Vec::with_capacity(count);
    let (mut d, mut g) = (documented.iter(), generated.iter());
    while out.len() < count {
        let next = if out.len() % 2 == 0 {
            d.next().or_else(|| g.next())
        } else {
            g.next().or_else(|| d.next())
        };
        match next {
            Some(frame) => out.push(frame.as_slice()),
            None => break,
        }
    }
    out
}

/// What a timed run measured.
struct Run {
    decoded: u64,
    failed: u64,
    fuel: u64,
    elapsed: Duration,
    latency_ns: Histogram<u64>,
}

/// Decodes `count` frames, cycling through `frames`, timing each call.
fn timed_run(instance: &mut Instance, frames: &[Vec<u8>], count: u64) -> anyhow::Result<Run> {
    // 1 ns to 60 s at 3 significant digits.
    let mut latency_ns = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .context("cannot create the latency histogram")?;
    let uplinks: Vec<Uplink> = frames.iter().map(|f| uplink(f)).collect();
    let (mut decoded, mut failed, mut fuel) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    for message in uplinks.iter().cycle().take(count as usize) {
        let call_started = Instant::now();
        let outcome = instance.decode(message);
        let elapsed = call_started.elapsed();
        latency_ns.saturating_record(elapsed.as_nanos() as u64);
        fuel += outcome.report.fuel_consumed;
        match outcome.result {
            Ok(_) => decoded += 1,
            Err(failure) => {
                failed += 1;
                tracing::warn!("frame failed: {failure}");
            }
        }
    }
    Ok(Run {
        decoded,
        failed,
        fuel,
        elapsed: started.elapsed(),
        latency_ns,
    })
}

fn decode_ok(instance: &mut Instance, frame: &[u8]) -> anyhow::Result<Document> {
    instance
        .decode(&uplink(frame))
        .result
        .map_err(anyhow::Error::new)
        .context("the embedded codec failed on a good frame")
}

fn uplink(frame: &[u8]) -> Uplink {
    Uplink {
        device_id: DEVICE_ID.to_string(),
        port: 1,
        received_at_ms: RECEIVED_AT_MS,
        payload: frame.to_vec(),
        metadata: Vec::new(),
    }
}

/// The documentation frames, then deterministic multi-sensor frames, [`FRAME_POOL`] in all.
fn frame_pool() -> Vec<Vec<u8>> {
    let mut rng = XorShift(0x5EED_1DEA_F00D_CAFE);
    let mut frames: Vec<Vec<u8>> = DOCUMENTATION_FRAMES.iter().map(|f| f.to_vec()).collect();
    while frames.len() < FRAME_POOL {
        frames.push(multi_sensor_frame(&mut rng));
    }
    frames
}

/// One frame of 2 to 6 readings on channels 1.., each a plausible value of a common type.
fn multi_sensor_frame(rng: &mut XorShift) -> Vec<u8> {
    let readings = 2 + rng.below(5);
    let mut frame = Vec::new();
    for index in 0..readings {
        let channel = index as u8 + 1;
        frame.push(channel);
        match rng.below(7) {
            0 => {
                // Temperature, 0.1 °C signed: -20.0 to 45.0 °C.
                frame.push(0x67);
                frame.extend_from_slice(&(rng.below(651) as i16 - 200).to_be_bytes());
            }
            1 => {
                // Relative humidity, 0.5 % steps: 20 to 95 %.
                frame.push(0x68);
                frame.push(40 + rng.below(151) as u8);
            }
            2 => {
                // Barometer, 0.1 hPa: 980.0 to 1040.0 hPa.
                frame.push(0x73);
                frame.extend_from_slice(&(9_800 + rng.below(601) as u16).to_be_bytes());
            }
            3 => {
                // Illuminance, lux.
                frame.push(0x65);
                frame.extend_from_slice(&(rng.below(20_000) as u16).to_be_bytes());
            }
            4 => {
                // Digital input.
                frame.push(0x00);
                frame.push(rng.below(2) as u8);
            }
            5 => {
                // Accelerometer, 0.001 g per axis: -2 to 2 g.
                frame.push(0x71);
                for _ in 0..3 {
                    frame.extend_from_slice(&(rng.below(4_001) as i16 - 2_000).to_be_bytes());
                }
            }
            _ => {
                // GPS: latitude and longitude in 0.0001°, altitude in 0.01 m (24-bit each).
                frame.push(0x88);
                let latitude = rng.below(1_800_001) as i32 - 900_000;
                let longitude = rng.below(3_600_001) as i32 - 1_800_000;
                let altitude = rng.below(100_000) as i32;
                for value in [latitude, longitude, altitude] {
                    frame.extend_from_slice(&value.to_be_bytes()[1..]);
                }
            }
        }
    }
    frame
}

/// xorshift64*: deterministic frames without a dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn millis(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}

fn micros_f(nanos: u64) -> String {
    format!("{:.1} µs", nanos as f64 / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_pool_is_deterministic_and_starts_with_the_documentation() {
        let pool = frame_pool();
        assert_eq!(pool.len(), FRAME_POOL);
        assert_eq!(pool[0], DOCUMENTATION_FRAMES[0]);
        assert_eq!(pool, frame_pool());
    }

    #[test]
    fn samples_alternate_documentation_and_generated_frames() {
        let pool = frame_pool();
        let shown = samples(&pool, 4);
        assert_eq!(shown.len(), 4);
        assert_eq!(shown[0], DOCUMENTATION_FRAMES[0]);
        assert_eq!(shown[1], pool[DOCUMENTATION_FRAMES.len()].as_slice());
        assert_eq!(shown[2], DOCUMENTATION_FRAMES[1]);
        assert_eq!(samples(&pool, 1000).len(), FRAME_POOL);
    }

    #[test]
    fn generated_frames_have_unique_channels() {
        let mut rng = XorShift(1);
        for _ in 0..100 {
            let frame = multi_sensor_frame(&mut rng);
            assert_eq!(frame[0], 1);
            assert!(frame.len() >= 6, "{frame:?}");
        }
    }
}
