//! The run's results as Markdown tables and an SVG bar chart.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use sluice_benches::Measurement;

/// One contender on one workload.
pub struct Row {
    /// The contender.
    pub contender: &'static str,
    /// The measurement; `None` when the contender cannot run the workload (n/a).
    pub measurement: Option<Measurement>,
}

/// Everything one workload gave.
pub struct WorkloadResult {
    /// Workload label.
    pub name: String,
    /// One row per contender, native first.
    pub rows: Vec<Row>,
}

impl WorkloadResult {
    /// The measurement of `contender`, if it ran this workload.
    pub fn measured(&self, contender: &str) -> Option<&Measurement> {
        self.rows
            .iter()
            .find(|r| r.contender == contender)
            .and_then(|r| r.measurement.as_ref())
    }

    /// p99.9 ÷ p50 of `contender`, if it ran this workload.
    pub fn tail(&self, contender: &str) -> Option<f64> {
        self.measured(contender)
            .map(|m| m.p999.as_secs_f64() / m.p50.as_secs_f64().max(1e-12))
    }
}

/// Start-up and memory figures of one contender.
pub struct StartupRow {
    /// The contender.
    pub contender: &'static str,
    /// Size of the loaded artifact (module, component or script) for the reference workload.
    pub artifact_bytes: Option<usize>,
    /// Load time (validation and compilation) of the reference workload's module.
    pub load: Option<Duration>,
    /// Cold start: a new instance and its first message, p50 and p99.
    pub cold_start: Option<(Duration, Duration)>,
    /// What the cold start column means for this contender when it is not a measurement.
    pub cold_start_note: &'static str,
    /// Resident memory per idle instance (or per worker process).
    pub rss_per_instance: Option<u64>,
    /// What the memory column means for this contender when it is not a measurement.
    pub rss_note: &'static str,
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A duration in µs, or in ms from 10 ms on.
fn duration(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} µs", us(d))
    }
}

/// Thousands separators: `1234567` → `1,234,567`.
pub fn grouped(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One Markdown table per workload.
pub fn throughput_tables(results: &[WorkloadResult]) -> String {
    let mut out = String::new();
    for result in results {
        let native = result
            .rows
            .first()
            .and_then(|r| r.measurement.as_ref())
            .map(|m| m.per_second);
        let _ = writeln!(out, "### {}\n", result.name);
        out.push_str(
            "| contender | msgs/s | p50 µs | p99 µs | p99.9 µs | p99.9/p50 | × native time | calls |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for row in &result.rows {
            let Some(m) = &row.measurement else {
                let _ = writeln!(
                    out,
                    "| {} | n/a | n/a | n/a | n/a | n/a | n/a | — |",
                    row.contender
                );
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {} |",
                row.contender,
                grouped(m.per_second),
                us(m.p50),
                us(m.p99),
                us(m.p999),
                us(m.p999) / us(m.p50).max(1e-9),
                native.map(|n| n / m.per_second).unwrap_or(f64::NAN),
                grouped(m.calls as f64),
            );
        }
        out.push('\n');
    }
    out
}

/// The start-up and memory table.
pub fn startup_table(rows: &[StartupRow], reference: &str) -> String {
    let mut out = format!(
        "Measured on the {reference} workload.\n\n\
         | contender | artifact KiB | load (validate + compile) ms | cold start p50 | cold start p99 | RSS per idle instance KiB |\n\
         |---|---:|---:|---:|---:|---:|\n"
    );
    for row in rows {
        let artifact = row
            .artifact_bytes
            .map(|b| format!("{:.0}", b as f64 / 1024.0))
            .unwrap_or_else(|| "—".into());
        let load = row
            .load
            .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
            .unwrap_or_else(|| "—".into());
        let (p50, p99) = match row.cold_start {
            Some((p50, p99)) => (duration(p50), duration(p99)),
            None => (row.cold_start_note.to_string(), "—".to_string()),
        };
        let rss = match row.rss_per_instance {
            Some(bytes) => format!("{:.0}{}", bytes as f64 / 1024.0, row.rss_note),
            None => row.rss_note.to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {artifact} | {load} | {p50} | {p99} | {rss} |",
            row.contender
        );
    }
    out
}

/// Colours of the contenders, in row order.
const COLOURS: [RGBColor; 10] = [
    RGBColor(90, 90, 90),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(240, 160, 160),
    RGBColor(23, 190, 207),
    RGBColor(158, 218, 229),
    RGBColor(44, 160, 44),
    RGBColor(152, 223, 138),
    RGBColor(148, 103, 189),
];

/// A horizontal bar chart of msgs/s (log scale), one group of bars per workload.
pub fn svg_chart(results: &[WorkloadResult]) -> Result<String> {
    let contenders: Vec<&'static str> = results
        .first()
        .map(|r| r.rows.iter().map(|row| row.contender).collect())
        .unwrap_or_default();
    let group = contenders.len() as f64 + 1.5;
    let total = group * results.len() as f64;
    let height = 120 + (total * 18.0) as u32 + 22 * contenders.len() as u32;
    let max = results
        .iter()
        .flat_map(|r| r.rows.iter().filter_map(|row| row.measurement.as_ref()))
        .map(|m| m.per_second)
        .fold(1.0f64, f64::max);
    let x_max = 10f64.powf(max.log10().ceil());
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
        let (chart_area, legend_area) =
            root.split_vertically(height - 22 * contenders.len() as u32 - 10);
        let mut chart = ChartBuilder::on(&chart_area)
            .caption(
                "Messages per second on one thread (log scale), same frames, one run",
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(8)
            .build_cartesian_2d((1_000f64..x_max).log_scale(), total..0f64)
            .map_err(|e| anyhow!("{e:?}"))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("msgs/s")
            .x_label_formatter(&|v| grouped(*v))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(|e| anyhow!("{e:?}"))?;
        for (g, result) in results.iter().enumerate() {
            let top = g as f64 * group;
            chart
                .draw_series(std::iter::once(Text::new(
                    result.name.clone(),
                    (1_050.0, top + 0.1),
                    ("sans-serif", 17).into_font().style(FontStyle::Bold),
                )))
                .map_err(|e| anyhow!("{e:?}"))?;
            for (i, row) in result.rows.iter().enumerate() {
                let y = top + 1.2 + i as f64;
                let colour = COLOURS[i % COLOURS.len()];
                let Some(measurement) = &row.measurement else {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            "n/a",
                            (1_050.0, y + 0.05),
                            ("sans-serif", 14),
                        )))
                        .map_err(|e| anyhow!("{e:?}"))?;
                    continue;
                };
                let value = measurement.per_second.max(1_000.0);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(1_000.0, y), (value, y + 0.8)],
                        colour.filled(),
                    )))
                    .map_err(|e| anyhow!("{e:?}"))?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        grouped(measurement.per_second),
                        (value * 1.05, y + 0.05),
                        ("sans-serif", 14),
                    )))
                    .map_err(|e| anyhow!("{e:?}"))?;
            }
        }
        for (i, name) in contenders.iter().enumerate() {
            let y = 4 + 22 * i as i32;
            let colour = COLOURS[i % COLOURS.len()];
            legend_area
                .draw(&Rectangle::new([(60, y), (80, y + 14)], colour.filled()))
                .map_err(|e| anyhow!("{e:?}"))?;
            legend_area
                .draw(&Text::new(
                    (*name).to_string(),
                    (90, y + 1),
                    ("sans-serif", 16),
                ))
                .map_err(|e| anyhow!("{e:?}"))?;
        }
        root.present().map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(svg)
}

/// The fixed part of `docs/peers.md`, before the run's tables.
pub const PREAMBLE: &str = include_str!("../peers-preamble.md");
