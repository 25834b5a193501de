//! Shared pieces of the Sluice benchmarks: the frames every contender decodes, and latency
//! statistics.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Cayenne LPP frames of 4 to 41 bytes: the public documentation examples and a
/// multi-sensor frame. Every contender decodes these, round-robin.
pub fn cayenne_frames() -> Vec<Vec<u8>> {
    vec![
        // Two temperatures (documentation example).
        vec![0x03, 0x67, 0x01, 0x10, 0x05, 0x67, 0x00, 0xFF],
        // One negative temperature.
        vec![0x01, 0x67, 0xFF, 0xD7],
        // Accelerometer.
        vec![0x06, 0x71, 0x04, 0xD2, 0xFB, 0x2E, 0x00, 0x00],
        // GPS.
        vec![
            0x01, 0x88, 0x06, 0x76, 0x5F, 0xF2, 0x96, 0x0A, 0x00, 0x03, 0xE8,
        ],
        // Multi-sensor: temperature, humidity, barometer, illuminance, GPS, accelerometer,
        // digital input, analog input.
        vec![
            0x01, 0x67, 0x00, 0xE1, 0x02, 0x68, 0x64, 0x03, 0x73, 0x27, 0x7F, 0x04, 0x65, 0x01,
            0x2C, 0x05, 0x88, 0x06, 0x76, 0x5F, 0xF2, 0x96, 0x0A, 0x00, 0x03, 0xE8, 0x06, 0x71,
            0x04, 0xD2, 0xFB, 0x2E, 0x00, 0x00, 0x07, 0x00, 0x01, 0x08, 0x02, 0x01, 0x2C,
        ],
    ]
}

/// Latency and throughput of one contender.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Contender name.
    pub name: String,
    /// Calls measured.
    pub calls: u64,
    /// Calls per second over the measured run (timing included).
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// 99.9th percentile latency.
    pub p999: Duration,
    /// Worst latency.
    pub max: Duration,
}

/// Runs `call` `warmup` times unmeasured, then `calls` times, timing each call.
pub fn measure(name: &str, warmup: u64, calls: u64, mut call: impl FnMut(u64)) -> Measurement {
    for i in 0..warmup {
        call(i);
    }
    // 1 ns to 10 s, 3 significant digits.
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid histogram bounds");
    let started = Instant::now();
    for i in 0..calls {
        let t = Instant::now();
        call(i);
        let ns = t.elapsed().as_nanos() as u64;
        histogram.saturating_record(ns.max(1));
    }
    let elapsed = started.elapsed();
    let at = |q: f64| Duration::from_nanos(histogram.value_at_quantile(q));
    Measurement {
        name: name.to_string(),
        calls,
        per_second: calls as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        max: Duration::from_nanos(histogram.max()),
    }
}

fn us(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

/// A Markdown table of measurements; the first row is the baseline of the `× base` column.
pub fn table(rows: &[Measurement]) -> String {
    let base = rows.first().map(|r| r.per_second).unwrap_or(1.0);
    let mut out = String::from(
        "| contender | msgs/s | p50 µs | p99 µs | p99.9 µs | max µs | p99.9/p50 | × base time |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {} | {:.1} | {:.1} |\n",
            r.name,
            r.per_second,
            us(r.p50),
            us(r.p99),
            us(r.p999),
            us(r.max),
            r.p999.as_secs_f64() / r.p50.as_secs_f64().max(1e-12),
            base / r.per_second,
        ));
    }
    out
}
