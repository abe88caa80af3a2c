//! `ferry-bench`: generates deterministic datasets and measures pipeline runs (rows/s, peak memory).
//! BENCHMARKS.md records its figures with the commands that produced them.

mod ceiling;
mod compare;
mod emulator;
mod quickstart;
mod spread;
mod sweep;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use ferry::run::{RunSettings, Status};
use ferry::spec::Pipeline;
use ferry_bench::data;

#[derive(Parser)]
#[command(name = "ferry-bench", about = "Ferry's throughput harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the 10-column `orders` dataset: parquet files in OUT/orders/ (and OUT/orders.csv with --csv).
    #[command(after_help = "Example:\n  ferry-bench data --rows 10000000 --out /tmp/ferry-bench")]
    Data {
        #[arg(long)]
        rows: u64,
        #[arg(long)]
        out: PathBuf,
        /// How many parquet files to split the rows over.
        #[arg(long, default_value_t = 8)]
        files: usize,
        /// Also write the rows as one CSV file.
        #[arg(long)]
        csv: bool,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The first order is number START+1: with another seed, `--start` half-way through an
        /// existing set gives an update set (half its keys changed rows, half new).
        #[arg(long, default_value_t = 0)]
        start: u64,
    },
    /// Regenerate the quickstart's input data.
    QuickstartData {
        #[arg(long, default_value = "pipelines/data")]
        out: PathBuf,
    },
    /// Measure the Dataverse-like emulator with its limits off: single-record requests/s and records/s
    /// in $batch (client and server share this machine).
    #[command(after_help = "Example:\n  ferry-bench emulator --seconds 10")]
    Emulator {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
    },
    /// The OData target against the emulator with Dataverse's limits scaled down (same ratios): records/s
    /// achieved against the ceiling the limits allow, for each number of application users.
    #[command(after_help = "Example:\n  ferry-bench odata-ceiling --users 1,4 --records 60000")]
    OdataCeiling {
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        users: Vec<usize>,
        /// Records per application user.
        #[arg(long, default_value_t = 60000)]
        records: usize,
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// batch ($batch) or multiple (UpsertMultiple, Dataverse's bulk message).
        #[arg(long, default_value = "batch")]
        batch_mode: String,
        /// Measure a second run that changes every record loaded by a first, not the load.
        #[arg(long)]
        update: bool,
    },
    /// Read accounts from the emulator into parquet under Dataverse's limits scaled 30x in time
    /// and its read cost model, and print the records/s against the ceiling the limits allow
    /// (`--partitions` key ranges, spread over the users).
    #[command(
        after_help = "Example:\n  ferry-bench odata-read-ceiling --users 1 --records 400000 --partitions 8 --page-size 1000"
    )]
    OdataReadCeiling {
        #[arg(long, value_delimiter = ',', default_value = "1")]
        users: Vec<usize>,
        /// Records per application user.
        #[arg(long, default_value_t = 400000)]
        records: usize,
        /// Key ranges per application user.
        #[arg(long, default_value_t = 8)]
        partitions: usize,
        /// Records a page (the connection's page_size).
        #[arg(long, default_value_t = 1000)]
        page_size: usize,
    },
    /// Run a pipeline over a grid of workers and batch sizes (and OData rates) against its real
    /// target, after a warm-up, and name the fastest setting within an error budget. Writes
    /// OUT/sweep.csv, the Delta table OUT/sweep and the chart OUT/sweep.svg. Use a mode that can be
    /// repeated (truncate, upsert, sync): every point writes the whole result again.
    #[command(
        after_help = "Example:\n  ferry-bench sweep benches/pipelines/orders-to-postgres-upsert.toml --workers 1,2,4 --batch-size 5000,20000 --repeat 3 --out /tmp/sweep"
    )]
    Sweep {
        pipeline: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
        workers: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
        batch_size: Vec<usize>,
        /// OData: fixed ceilings per application user to try, e.g. 3000/60s,6000/60s.
        #[arg(long, value_delimiter = ',')]
        rate: Vec<String>,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// The budget: at most this many retries (429s included) in a run.
        #[arg(long, default_value_t = 0)]
        max_retries: u64,
        /// The budget: batch latency p99 at most this many milliseconds.
        #[arg(long)]
        max_p99_ms: Option<f64>,
        #[arg(long, default_value = "/tmp/ferry-sweep")]
        out: PathBuf,
    },
    /// Draw a sweep's chart again from its CSV.
    #[command(
        after_help = "Example:\n  ferry-bench chart /tmp/ferry-sweep/sweep.csv --out /tmp/ferry-sweep/sweep.svg"
    )]
    Chart {
        csv: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "sweep")]
        title: String,
    },
    /// Ferry against each scenario's reference tool on the same rows, runs alternating; prints each
    /// side's rows/s and the ratio (min/median/max). The SQL scenarios use the machine's PostgreSQL
    /// and MariaDB; odata runs the emulator in-process.
    #[command(
        after_help = "Scenarios: pg-insert (psql \\copy), pg-upsert and pg-sync (hand-written staging SQL),\n\
                      pg-read (psql \\copy TO), mysql-insert (LOAD DATA LOCAL INFILE),\n\
                      mysql-read (mysql --batch), pg-arrow and mysql-arrow (the same references;\n\
                      Ferry reads every column into Arrow and writes a one-row summary),\n\
                      pg-arrow-blocks (pg-arrow over ranges of the table's blocks, ctid),\n\
                      odata (the emulator's scaled Dataverse ceiling; 60,000 records a run, --rows aside).\n\n\
                      Example:\n  ferry-bench compare pg-insert mysql-insert --rows 1000000 --repeat 3"
    )]
    Compare {
        #[arg(value_enum, required = true)]
        scenarios: Vec<compare::Scenario>,
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Where the datasets are generated once and kept.
        #[arg(long, default_value = "/tmp/ferry-bench")]
        data: PathBuf,
    },
    /// One load of ROWS orders into PostgreSQL written by 1, 2, 4... `ferry` processes (`ferry run
    /// --spread N` and N-1 `ferry worker --join`), sharing a state dir: rows/s for each count.
    #[command(
        after_help = "Examples:\n  ferry-bench spread --rows 10000000 --processes 1,2,4\n  ferry-bench spread --cluster --rows 10000000 --processes 1,2,4\n  ferry-bench spread --odata --records 240000 --users 8 --processes 1,2,4"
    )]
    Spread {
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        processes: Vec<usize>,
        /// The target's partitions, shared out among the processes.
        #[arg(long, default_value_t = 8)]
        partitions: usize,
        #[arg(long, default_value = "/tmp/ferry-bench")]
        data: PathBuf,
        /// Instead: RECORDS new accounts into the emulator by USERS application users in all,
        /// shared out among the processes (each signs in as its own).
        #[arg(long)]
        odata: bool,
        /// Instead of a spread run: `ferry run` with `[run] cluster` naming that many `ferry worker
        /// --listen`s, which read the files and write the target (a build with the distributed
        /// engine: `cargo build --workspace --bins`).
        #[arg(long, conflicts_with = "odata")]
        cluster: bool,
        #[arg(long, default_value_t = 240_000)]
        records: usize,
        #[arg(long, default_value_t = 8)]
        users: usize,
    },
    /// Run a pipeline in this process and report rows/s and peak memory (VmHWM).
    #[command(after_help = "Example:\n  ferry-bench run benches/pipelines/orders-to-sqlite.toml")]
    Run { pipeline: PathBuf },
    /// Time `ferry serve`'s pages over a state dir of RUNS runs and LOG_ROWS log rows (made first
    /// when DIR holds none): the first answer, then the median and worst of REPEAT more.
    #[command(
        after_help = "Example:\n  ferry-bench dashboard --state-dir /tmp/ferry-dash --runs 1000 --log-rows 1000000"
    )]
    Dashboard {
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        runs: usize,
        #[arg(long, default_value_t = 1_000_000)]
        log_rows: usize,
        #[arg(long, default_value_t = 20)]
        pipelines: usize,
        #[arg(long, default_value_t = 10)]
        repeat: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Ferry's own logs, when asked for: FERRY_LOG=ferry_connectors::odata=info shows the OData lanes'
    // lessons, for example.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.command {
        Command::Data {
            rows,
            out,
            files,
            csv,
            seed,
            start,
        } => {
            let started = Instant::now();
            data::write_orders_parquet(&out.join("orders"), start, rows, files, seed)?;
            if csv {
                data::write_orders_csv(&out.join("orders.csv"), start, rows, seed)?;
            }
            println!(
                "wrote {rows} orders to {} in {:.1}s",
                out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::QuickstartData { out } => {
            quickstart::write(&out)?;
            println!("wrote the quickstart data to {}", out.display());
        }
        Command::Emulator {
            seconds,
            concurrency,
            batch_size,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            let f = runtime.block_on(emulator::measure(seconds, concurrency, batch_size))?;
            println!(
                "bench: emulator single_requests_per_s={:.0} batch_records_per_s={:.0} (concurrency {concurrency}, batch {batch_size})",
                f.single_per_second, f.batch_records_per_second
            );
        }
        Command::OdataCeiling {
            users,
            records,
            batch_size,
            batch_mode,
            update,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            for u in users {
                let s = runtime.block_on(ceiling::measure(
                    u,
                    records * u,
                    batch_size,
                    &batch_mode,
                    update,
                ))?;
                print_share("odata", &s);
            }
        }
        Command::OdataReadCeiling {
            users,
            records,
            partitions,
            page_size,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            for u in users {
                let s = runtime.block_on(ceiling::measure_read(
                    u,
                    records * u,
                    partitions * u,
                    page_size,
                ))?;
                print_share("odata-read", &s);
            }
        }
        Command::Sweep {
            pipeline,
            workers,
            batch_size,
            rate,
            repeat,
            max_retries,
            max_p99_ms,
            out,
        } => {
            let grid = sweep::Grid {
                workers,
                batch_sizes: batch_size,
                rates: rate,
                repeat: repeat.max(1),
                max_retries,
                max_p99_ms,
            };
            let results = sweep::sweep(&pipeline, &grid, &out)?;
            println!("workers batch_size rate   median rows/s  p99 ms  retries  cpu s  peak MiB");
            let mut seen = Vec::new();
            for m in &results {
                let point = (m.workers, m.batch_size, m.rate.clone());
                if seen.contains(&point) {
                    continue;
                }
                let runs: Vec<&sweep::Measured> = results
                    .iter()
                    .filter(|r| (r.workers, r.batch_size, r.rate.clone()) == point)
                    .collect();
                println!(
                    "{:>7} {:>10} {:<6} {:>14.0} {:>7.0} {:>8} {:>6.1} {:>9.0}",
                    m.workers,
                    m.batch_size,
                    if m.rate.is_empty() { "-" } else { &m.rate },
                    sweep::median(runs.iter().map(|r| r.rows_per_s).collect()),
                    sweep::median(runs.iter().map(|r| r.p99_ms).collect()),
                    runs.iter().map(|r| r.retries).max().unwrap_or(0),
                    sweep::median(runs.iter().map(|r| r.cpu_seconds).collect()),
                    sweep::median(runs.iter().map(|r| r.peak_rss_mib).collect()),
                );
                seen.push(point);
            }
            match sweep::best(&results, &grid) {
                Some((m, rate)) => println!(
                    "best within budget: workers = {}, batch_size = {}{} ({rate:.0} rows/s)",
                    m.workers,
                    m.batch_size,
                    if m.rate.is_empty() {
                        String::new()
                    } else {
                        format!(", rate_limit = \"{}\"", m.rate)
                    }
                ),
                None => println!(
                    "no point stayed within the budget: raise --max-retries or --max-p99-ms"
                ),
            }
            println!(
                "wrote {0}/sweep.csv, the Delta table {0}/sweep and the chart {0}/sweep.svg",
                out.display()
            );
        }
        Command::Chart { csv, out, title } => {
            std::fs::write(&out, sweep::chart(&title, &sweep::read_csv(&csv)?))?;
            println!("wrote {}", out.display());
        }
        Command::Compare {
            scenarios,
            rows,
            repeat,
            data,
        } => {
            let results = compare::compare(&scenarios, rows, repeat.max(1), &data)?;
            println!(
                "{:<13} {:<36} {:>22} {:>22} {:>18}",
                "scenario", "reference", "reference rows/s", "Ferry rows/s", "ratio med (min-max)"
            );
            for c in &results {
                let spread = |v: &[f64]| {
                    let min = v.iter().copied().fold(f64::MAX, f64::min);
                    let max = v.iter().copied().fold(0.0, f64::max);
                    (sweep::median(v.to_vec()), min, max)
                };
                let (r, rmin, rmax) = spread(&c.reference);
                let (f, fmin, fmax) = spread(&c.ferry);
                let (q, qmin, qmax) = spread(&c.ratios());
                println!(
                    "{:<13} {:<36} {:>22} {:>22} {:>18}",
                    compare::name(c.scenario),
                    compare::reference_name(c.scenario),
                    format!("{} ({}-{})", per_s(r), per_s(rmin), per_s(rmax)),
                    format!("{} ({}-{})", per_s(f), per_s(fmin), per_s(fmax)),
                    format!("{q:.2} ({qmin:.2}-{qmax:.2})"),
                );
            }
        }
        Command::Dashboard {
            state_dir,
            runs,
            log_rows,
            pipelines,
            repeat,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(ferry_bench::dashboard::make_state(
                &state_dir, pipelines, runs, log_rows,
            ))?;
            // The newest run of the first pipeline, a failing run, and the quarantine-free pages.
            let last = runs - 1;
            let pages = [
                "/".to_string(),
                "/pipelines/pipeline_00".to_string(),
                format!("/runs/pipeline_{:02}/run-{last:05}", last % pipelines),
                "/runs/pipeline_00/run-00000".to_string(),
            ];
            let times = runtime.block_on(ferry_bench::dashboard::time_pages(
                &state_dir, &pages, repeat,
            ))?;
            println!(
                "{:<36} {:>10} {:>10} {:>10}",
                "page", "first ms", "median ms", "worst ms"
            );
            for t in times {
                let ms = |d: std::time::Duration| format!("{:.0}", d.as_secs_f64() * 1000.0);
                println!(
                    "{:<36} {:>10} {:>10} {:>10}",
                    t.page,
                    ms(t.first),
                    ms(t.median),
                    ms(t.worst)
                );
            }
        }
        Command::Spread {
            rows,
            processes,
            partitions,
            data,
            odata,
            cluster,
            records,
            users,
        } => {
            let sharing = match cluster {
                true => spread::Sharing::Cluster,
                false => spread::Sharing::Spread,
            };
            if odata {
                tokio::runtime::Runtime::new()?
                    .block_on(spread::spread_odata(records, &processes, users))?;
            } else {
                spread::spread(rows, &processes, &data, partitions, sharing)?;
            }
        }
        Command::Run { pipeline } => {
            let pipeline = Pipeline::load(&pipeline).map_err(|e| anyhow::anyhow!("{e}"))?;
            let runtime = tokio::runtime::Runtime::new()?;
            let report = runtime
                .block_on(ferry::run::run(&pipeline, &RunSettings::default()))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{report}");
            println!(
                "bench: pipeline={} rows={} seconds={:.2} rows_per_s={:.0} peak_rss_mib={:.0}",
                pipeline.name,
                // The rows moved to the target (its rate is rows_per_s); rows_read counts the sources.
                report.rows_out,
                report.duration.as_secs_f64(),
                report.rows_per_second(),
                peak_rss_kib()? as f64 / 1024.0
            );
            if report.status != Status::Completed {
                bail!("the run did not complete");
            }
        }
    }
    Ok(())
}

/// Rows per second for a table: thousands from 10k up, units below (OData's few thousand).
fn per_s(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// This process's peak resident memory, from /proc/self/status.
fn peak_rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/self/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// One line of a ceiling measurement.
fn print_share(what: &str, s: &ceiling::Share) {
    println!(
        "bench: {what} users={} records={} seconds={:.1} records_per_s={:.0} ceiling_per_s={:.0} share={:.1}% sustained_per_s={:.0} sustained_share={:.1}% throttled={} requests={} last_429_at_s={:.1}",
        s.users,
        s.records,
        s.seconds,
        s.achieved,
        s.ceiling,
        100.0 * s.achieved / s.ceiling,
        s.sustained,
        100.0 * s.sustained / s.ceiling,
        s.throttled,
        s.requests,
        s.last_throttled.as_secs_f64()
    );
}
