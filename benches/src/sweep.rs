//! `ferry-bench sweep`: one pipeline run over a grid of workers × batch sizes (× rates) against its
//! real target, after a warm-up; per point rows/s, batch latency p50/p95/p99 (from the run's own log
//! table), retries, CPU time and peak memory. Results go to a CSV, a Delta table and an SVG chart, and
//! the tuner names the fastest point within the error budget.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use ferry::run::{RunSettings, Status};
use ferry::spec::Pipeline;

/// The grid and the budget.
pub struct Grid {
    pub workers: Vec<usize>,
    pub batch_sizes: Vec<usize>,
    /// OData targets: fixed ceilings per user to try ("6000/300s"); empty = as the pipeline says.
    pub rates: Vec<String>,
    pub repeat: usize,
    /// The tuner's budget: no retries beyond this many per run, and p99 batch latency under this.
    pub max_retries: u64,
    pub max_p99_ms: Option<f64>,
}

/// One run at one point of the grid.
#[derive(Debug, Clone)]
pub struct Measured {
    pub workers: usize,
    pub batch_size: usize,
    pub rate: String,
    pub repeat: usize,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub retries: u64,
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
}

pub fn sweep(file: &Path, grid: &Grid, out: &Path) -> Result<Vec<Measured>> {
    let base = Pipeline::load(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(out)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let rates: Vec<String> = if grid.rates.is_empty() {
        vec![String::new()]
    } else {
        grid.rates.clone()
    };
    // Warm-up: caches, connections, the server's buffers; not recorded.
    let (first_w, first_b) = (grid.workers[0], grid.batch_sizes[0]);
    runtime.block_on(measure(&base, first_w, first_b, &rates[0], 0, out))?;
    let mut results = Vec::new();
    for rate in &rates {
        for &batch_size in &grid.batch_sizes {
            for &workers in &grid.workers {
                for repeat in 1..=grid.repeat {
                    let m =
                        runtime.block_on(measure(&base, workers, batch_size, rate, repeat, out))?;
                    eprintln!(
                        "sweep: workers={workers} batch_size={batch_size}{} run {repeat}: {:.0} rows/s, p99 {:.0} ms, {} retries",
                        if rate.is_empty() {
                            String::new()
                        } else {
                            format!(" rate={rate}")
                        },
                        m.rows_per_s,
                        m.p99_ms,
                        m.retries
                    );
                    results.push(m);
                }
            }
        }
    }
    write_csv(&out.join("sweep.csv"), &results)?;
    runtime.block_on(write_delta(&out.join("sweep"), &results))?;
    std::fs::write(out.join("sweep.svg"), chart(&base.name, &results))?;
    Ok(results)
}

/// The pipeline read again with `rate_limit = rate` under its `[target]` (a key of OData targets,
/// which the target's connector reads and checks).
fn with_rate_limit(base: &Pipeline, rate: &str) -> Result<Pipeline> {
    let text = std::fs::read_to_string(&base.file)?;
    let mut file: toml::Table = toml::from_str(&text)?;
    let target = file
        .get_mut("target")
        .and_then(toml::Value::as_table_mut)
        .ok_or_else(|| anyhow::anyhow!("{} has no [target]", base.file.display()))?;
    target.insert("rate_limit".into(), toml::Value::String(rate.to_string()));
    Ok(Pipeline::parse(&base.file, &toml::to_string(&file)?)?)
}

async fn measure(
    base: &Pipeline,
    workers: usize,
    batch_size: usize,
    rate: &str,
    repeat: usize,
    out: &Path,
) -> Result<Measured> {
    let mut pipeline = if rate.is_empty() {
        base.clone()
    } else {
        with_rate_limit(base, rate)?
    };
    pipeline.target.workers = workers;
    pipeline.target.batch_size = batch_size;
    // A bookkeeping folder of its own, so that no run resumes another.
    let state = out.join(format!("state/w{workers}-b{batch_size}-{repeat}"));
    let _ = std::fs::remove_dir_all(&state);
    pipeline.state_dir = state.display().to_string();
    reset_peak_rss();
    let cpu_before = cpu_seconds()?;
    let started = Instant::now();
    let report = ferry::run::run(
        &pipeline,
        &RunSettings {
            progress: false,
            fresh: true,
            confirmed: true,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if report.status != Status::Completed {
        bail!("the run at workers={workers} batch_size={batch_size} did not complete:\n{report}");
    }
    let (p50_ms, p95_ms, p99_ms) = latencies(&state, &pipeline.name).await?;
    Ok(Measured {
        workers,
        batch_size,
        rate: rate.to_string(),
        repeat,
        rows: report.rows_written,
        seconds,
        rows_per_s: report.rows_written as f64 / seconds,
        p50_ms,
        p95_ms,
        p99_ms,
        retries: report.retries,
        cpu_seconds: cpu_seconds()? - cpu_before,
        peak_rss_mib: super::peak_rss_kib()? as f64 / 1024.0,
    })
}

/// Batch write-time percentiles of the run, from its log table.
async fn latencies(state: &Path, pipeline: &str) -> Result<(f64, f64, f64)> {
    let location = state.join(pipeline).join("log");
    let location = if location.exists() {
        location
    } else {
        state.join("log")
    };
    let table = deltalake::open_table(deltalake::ensure_table_uri(
        location.to_str().context("utf-8 path")?,
    )?)
    .await
    .with_context(|| format!("reading the log table at {}", location.display()))?;
    let ctx = datafusion::prelude::SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    ctx.register_table("log", table.table_provider().await?)?;
    let batches = ctx
        .sql("SELECT CAST(write_time AS DOUBLE) FROM log WHERE error IS NULL")
        .await?
        .collect()
        .await?;
    let mut times: Vec<f64> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Float64Array>()
                .map(|a| a.values().to_vec())
                .unwrap_or_default()
        })
        .map(|s| s * 1000.0)
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if times.is_empty() {
            0.0
        } else {
            times[((times.len() - 1) as f64 * q).round() as usize]
        }
    };
    Ok((at(0.5), at(0.95), at(0.99)))
}

/// The point to use: within the budget, the fewest workers (then the smallest batches) whose median
/// rows/s is within 3% of the fastest point's.
pub fn best<'a>(results: &'a [Measured], grid: &Grid) -> Option<(&'a Measured, f64)> {
    let mut points: Vec<(&Measured, f64)> = Vec::new();
    for m in results {
        if points.iter().any(|(p, _)| {
            p.workers == m.workers && p.batch_size == m.batch_size && p.rate == m.rate
        }) {
            continue;
        }
        let runs: Vec<&Measured> = results
            .iter()
            .filter(|r| r.workers == m.workers && r.batch_size == m.batch_size && r.rate == m.rate)
            .collect();
        let within = runs.iter().all(|r| {
            r.retries <= grid.max_retries && grid.max_p99_ms.is_none_or(|max| r.p99_ms <= max)
        });
        if within {
            points.push((m, median(runs.iter().map(|r| r.rows_per_s).collect())));
        }
    }
    // The cheapest point within 3% of the fastest: more workers or bigger batches that gain nothing
    // measurable only press harder on the target.
    let fastest = points.iter().map(|p| p.1).fold(0.0, f64::max);
    points
        .into_iter()
        .filter(|p| p.1 >= 0.97 * fastest)
        .min_by_key(|p| (p.0.workers, p.0.batch_size))
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

const COLUMNS: [&str; 13] = [
    "workers",
    "batch_size",
    "rate",
    "repeat",
    "rows",
    "seconds",
    "rows_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "retries",
    "cpu_seconds",
    "peak_rss_mib",
];

fn write_csv(path: &PathBuf, results: &[Measured]) -> Result<()> {
    let mut text = COLUMNS.join(",") + "\n";
    for m in results {
        writeln!(
            text,
            "{},{},{},{},{},{:.3},{:.0},{:.1},{:.1},{:.1},{},{:.2},{:.0}",
            m.workers,
            m.batch_size,
            m.rate,
            m.repeat,
            m.rows,
            m.seconds,
            m.rows_per_s,
            m.p50_ms,
            m.p95_ms,
            m.p99_ms,
            m.retries,
            m.cpu_seconds,
            m.peak_rss_mib
        )?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

async fn write_delta(path: &Path, results: &[Measured]) -> Result<()> {
    let int = |f: fn(&Measured) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(results.iter().map(f)))
    };
    let float = |f: fn(&Measured) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(results.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        int(|m| m.workers as i64),
        int(|m| m.batch_size as i64),
        Arc::new(StringArray::from_iter_values(
            results.iter().map(|m| m.rate.as_str()),
        )),
        int(|m| m.repeat as i64),
        int(|m| m.rows as i64),
        float(|m| m.seconds),
        float(|m| m.rows_per_s),
        float(|m| m.p50_ms),
        float(|m| m.p95_ms),
        float(|m| m.p99_ms),
        int(|m| m.retries as i64),
        float(|m| m.cpu_seconds),
        float(|m| m.peak_rss_mib),
    ];
    let schema = Arc::new(Schema::new(
        COLUMNS
            .iter()
            .zip(&columns)
            .map(|(name, c)| Field::new(*name, c.data_type().clone(), false))
            .collect::<Vec<_>>(),
    ));
    debug_assert!(
        schema
            .fields()
            .iter()
            .any(|f| f.data_type() == &DataType::Utf8)
    );
    let batch = RecordBatch::try_new(schema, columns)?;
    let _ = std::fs::remove_dir_all(path);
    std::fs::create_dir_all(path)?;
    let uri = deltalake::ensure_table_uri(path.to_str().context("utf-8 path")?)?;
    deltalake::DeltaTable::try_from_url(uri)
        .await?
        .write(vec![batch])
        .await?;
    Ok(())
}

/// Reads a `sweep.csv` back (to draw its chart again).
pub fn read_csv(path: &Path) -> Result<Vec<Measured>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != COLUMNS.len() {
                bail!(
                    "{}: \"{line}\" does not have the {} columns of a sweep",
                    path.display(),
                    COLUMNS.len()
                );
            }
            let n = |i: usize| {
                f[i].parse::<f64>()
                    .with_context(|| format!("{}: \"{}\" is not a number", path.display(), f[i]))
            };
            Ok(Measured {
                workers: n(0)? as usize,
                batch_size: n(1)? as usize,
                rate: f[2].to_string(),
                repeat: n(3)? as usize,
                rows: n(4)? as u64,
                seconds: n(5)?,
                rows_per_s: n(6)?,
                p50_ms: n(7)?,
                p95_ms: n(8)?,
                p99_ms: n(9)?,
                retries: n(10)? as u64,
                cpu_seconds: n(11)?,
                peak_rss_mib: n(12)?,
            })
        })
        .collect()
}

/// Throughput against workers, one line per batch size (and rate), medians of the repeats, as SVG.
pub fn chart(title: &str, results: &[Measured]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 80.0, 170.0, 56.0, 50.0);
    let mut workers: Vec<usize> = results.iter().map(|m| m.workers).collect();
    workers.sort();
    workers.dedup();
    let mut series: Vec<(usize, String)> = results
        .iter()
        .map(|m| (m.batch_size, m.rate.clone()))
        .collect();
    series.sort();
    series.dedup();
    let point = |wk: usize, s: &(usize, String)| {
        median(
            results
                .iter()
                .filter(|m| m.workers == wk && m.batch_size == s.0 && m.rate == s.1)
                .map(|m| m.rows_per_s)
                .collect(),
        )
    };
    // Round ticks (1, 2 or 5 times a power of ten) up to just above the fastest point.
    let top_value = results.iter().map(|m| m.rows_per_s).fold(1.0, f64::max);
    let raw_step = top_value / 5.0;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw_step)
        .unwrap_or(10.0 * magnitude);
    let ticks = (top_value / step).ceil() as usize;
    let max_y = step * ticks as f64;
    let x = |i: usize| left + (w - left - right) * (i as f64 + 0.5) / workers.len() as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / max_y);
    let colours = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"20\" font-size=\"15\">{}</text>\n\
         <text x=\"{left}\" y=\"36\" fill=\"#555\">rows/s by workers, median of the repeats</text>\n",
        escape(title)
    );
    for tick in 0..=ticks {
        let v = step * tick as f64;
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 8.0,
            y(v) + 4.0,
            human(v),
            y = y(v)
        );
    }
    for (i, wk) in workers.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{wk}</text>",
            x(i),
            h - bottom + 18.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">workers</text>",
        (left + w - right) / 2.0,
        h - 10.0
    );
    for (n, s) in series.iter().enumerate() {
        let colour = colours[n % colours.len()];
        let points: Vec<String> = workers
            .iter()
            .enumerate()
            .map(|(i, &wk)| format!("{:.1},{:.1}", x(i), y(point(wk, s))))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').expect("x,y");
            let _ = writeln!(
                svg,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
        let label = if s.1.is_empty() {
            format!("batch {}", s.0)
        } else {
            format!("batch {}, {}", s.0, s.1)
        };
        let ly = top + 20.0 * n as f64 + 10.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\">{}</text>",
            w - right + 12.0,
            w - right + 36.0,
            w - right + 42.0,
            ly + 4.0,
            escape(&label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        let k = format!("{:.1}", v / 1e3);
        format!("{}k", k.trim_end_matches(".0"))
    } else {
        format!("{v:.0}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Resets this process's peak resident memory (VmHWM), so that each run reports its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or(&stat);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the command name.
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    Ok(ticks / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(workers: usize, rows_per_s: f64) -> Measured {
        Measured {
            workers,
            batch_size: 100,
            rate: String::new(),
            repeat: 1,
            rows: 1000,
            seconds: 1.0,
            rows_per_s,
            p50_ms: 1.0,
            p95_ms: 1.0,
            p99_ms: 1.0,
            retries: 0,
            cpu_seconds: 0.1,
            peak_rss_mib: 10.0,
        }
    }

    #[test]
    fn the_axis_has_round_ticks_above_the_fastest_point() {
        let svg = chart("t", &[point(1, 870.0), point(4, 3365.0)]);
        for label in [">0<", ">1k<", ">2k<", ">3k<", ">4k<"] {
            assert!(svg.contains(label), "{label} in {svg}");
        }
        assert!(!svg.contains(">5k<"));
    }

    #[test]
    fn the_tuner_takes_the_cheapest_point_near_the_top() {
        let grid = Grid {
            workers: vec![],
            batch_sizes: vec![],
            rates: vec![],
            repeat: 1,
            max_retries: 0,
            max_p99_ms: None,
        };
        let mut throttled = point(16, 5000.0);
        throttled.retries = 9;
        let results = [
            point(2, 1700.0),
            point(4, 3300.0),
            point(8, 3350.0),
            throttled,
        ];
        let (best, _) = best(&results, &grid).unwrap();
        assert_eq!(best.workers, 4);
    }
}
