//! How much of the service protection ceiling the OData target achieves: the emulator with
//! Dataverse's limits scaled down thirty times (the same ratios of window, requests, execution time and
//! concurrency, so that a measurement takes seconds), a pipeline upserting accounts through it with
//! one or more application users, and the records per second landed against the ceiling: over the
//! whole run, and sustained (from the end of the first window, in which each user finds the ceiling,
//! to the end of the run; read off the emulator's counters every half second).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use ferry::run::{RunSettings, Status};
use ferry::spec::Pipeline;
use ferry_emulator::limits::Limits;
use ferry_emulator::{self as emulator, Config, Latency};

pub struct Share {
    pub users: usize,
    pub records: usize,
    pub seconds: f64,
    pub achieved: f64,
    /// Records per second from the end of the first window to the end of the run.
    pub sustained: f64,
    pub ceiling: f64,
    pub throttled: u64,
    /// Requests the emulator served (429s not counted).
    pub requests: u64,
    /// When the last 429 came, after the user's first request (the latest over the users).
    pub last_throttled: Duration,
}

/// Dataverse: 6000 requests and 1200 s of execution per 300 s, 52 at once; scaled by 1/30 in time.
pub fn scaled_limits() -> Limits {
    Limits {
        enabled: true,
        window: Duration::from_secs(10),
        retry_after_fractions: true,
        requests: 200,
        execution: Duration::from_secs(40),
        concurrency: 52,
        dop_hint: 8,
    }
}

/// `batch_mode`: "batch" ($batch) or "multiple" (UpsertMultiple). `update`: measure a second run
/// that changes every record already loaded, rather than the load of new records.
pub async fn measure(
    users: usize,
    records: usize,
    batch_size: usize,
    batch_mode: &str,
    update: bool,
) -> Result<Share> {
    let limits = scaled_limits();
    let latency = Latency {
        base: Duration::from_millis(5),
        per_record: Duration::from_millis(2),
        jitter: 0.1,
        ..Latency::none()
    };
    let window = limits.window.as_secs_f64();
    let config = Config {
        limits,
        latency,
        ..Config::default()
    };
    let emu = emulator::start(config, "127.0.0.1:0".parse()?).await?;
    let dir = tempfile::tempdir()?;
    let write_csv = |name: &str| {
        let mut csv = String::from("accountnumber,name\n");
        for i in 0..records {
            csv.push_str(&format!("C-{i:07},{name} {i}\n"));
        }
        std::fs::write(dir.path().join("accounts.csv"), csv)
    };
    write_csv("Account")?;
    let mut toml = format!("name = \"ceiling\"\n{}", connection(&emu, users, PAGE));
    toml.push_str(&format!(
        "[sources.src]\npath = \"accounts.csv\"\n[target]\nconnection = \"crm\"\ntable = \"accounts\"\nmode = \"upsert\"\nkey = [\"accountnumber\"]\nbatch_size = {batch_size}\nworkers = {}\nbatch_mode = \"{batch_mode}\"\n[run]\nmax_retries = 20\n",
        16 * users
    ));
    let stats_url = format!("http://{}/_emulator/stats", emu.addr);
    let mut before = serde_json::Value::Null;
    if update {
        // Load, let the window empty, then measure a run that changes every record.
        run_text(dir.path(), "ceiling.toml", &toml, "the load").await?;
        tokio::time::sleep(Duration::from_secs_f64(window * 1.5)).await;
        write_csv("Renamed")?;
        before = reqwest::get(&stats_url).await?.json().await?;
    }
    let (report, samples, stats) = sampled_run(
        dir.path(),
        "ceiling.toml",
        &toml,
        &stats_url,
        "records_written",
    )
    .await?;
    emu.stop().await;
    let landed = stats["records"]["accounts"].as_u64().unwrap_or(0) as usize;
    if landed != records {
        bail!("{landed} records landed, not {records}");
    }
    let seconds = report.duration.as_secs_f64();
    let delta = |name: &str| {
        stats["total"][name].as_f64().unwrap_or(0.0) - before["total"][name].as_f64().unwrap_or(0.0)
    };
    let ceiling = ceiling_of(users, records, batch_size as f64, delta("execution_ms"));
    Ok(share_of(
        users, records, seconds, &samples, window, ceiling, delta, &stats,
    ))
}

/// The records a read asks for in a page unless told (`Prefer: odata.maxpagesize`).
pub const PAGE: usize = 5000;

/// Reads `records` accounts into a parquet file with `partitions` key ranges spread over `users`
/// application users, `page_size` records a page, under the scaled limits and the emulator's read
/// cost model at 10 ms a written record (a record read costs a twentieth: 0.5 ms), so that the
/// execution-time budget binds at ~8,000 records/s per user and a few hundred thousand records
/// span several windows. With pages of 5,000 (2.5 s each) one page is 6% of a scaled window's
/// budget, a granularity a real window (30 times longer) does not have: pages of 1,000 keep it
/// near the bulk messages' (0.5 s). The records are loaded first by an emulator without limits
/// into a SQLite file the measured one starts from.
pub async fn measure_read(
    users: usize,
    records: usize,
    partitions: usize,
    page_size: usize,
) -> Result<Share> {
    let dir = tempfile::tempdir()?;
    let data_file = dir.path().join("records.sqlite");
    let mut csv = String::from("accountnumber,name\n");
    for i in 0..records {
        csv.push_str(&format!("C-{i:07},Account {i}\n"));
    }
    std::fs::write(dir.path().join("accounts.csv"), csv)?;
    let loader = emulator::start(
        Config {
            limits: Limits::default(),
            latency: Latency::none(),
            data_file: Some(data_file.clone()),
            ..Config::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let load = format!(
        "name = \"load\"\n{}[sources.src]\npath = \"accounts.csv\"\n[target]\nconnection = \"crm\"\ntable = \"accounts\"\nmode = \"insert\"\nbatch_size = 1000\nworkers = 4\n",
        connection(&loader, 1, PAGE)
    );
    run_text(dir.path(), "load.toml", &load, "the load").await?;
    loader.stop().await;

    let limits = scaled_limits();
    let window = limits.window.as_secs_f64();
    let emu = emulator::start(
        Config {
            limits,
            latency: Latency {
                base: Duration::from_millis(5),
                per_record: Duration::from_millis(10),
                jitter: 0.1,
                ..Latency::none()
            },
            data_file: Some(data_file),
            ..Config::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let stats_url = format!("http://{}/_emulator/stats", emu.addr);
    let read = format!(
        "name = \"read-ceiling\"\n{}[sources.accounts]\nconnection = \"crm\"\ntable = \"accounts\"\npartitions = {partitions}\npartition_column = \"accountid\"\n[target]\npath = \"out.parquet\"\nmode = \"truncate\"\n[run]\nmax_retries = 20\n",
        connection(&emu, users, page_size)
    );
    let (report, samples, stats) =
        sampled_run(dir.path(), "read.toml", &read, &stats_url, "records_read").await?;
    emu.stop().await;
    let read = stats["total"]["records_read"].as_u64().unwrap_or(0) as usize;
    if read != records {
        bail!("{read} records read, not {records}");
    }
    let total = |name: &str| stats["total"][name].as_f64().unwrap_or(0.0);
    let seconds = report.duration.as_secs_f64();
    let ceiling = ceiling_of(users, records, page_size as f64, total("execution_ms"));
    Ok(share_of(
        users, records, seconds, &samples, window, ceiling, total, &stats,
    ))
}

/// A measured run's share of its ceiling; `count` gives the emulator's totals for this run.
#[allow(clippy::too_many_arguments)]
fn share_of(
    users: usize,
    records: usize,
    seconds: f64,
    samples: &[(f64, u64)],
    window: f64,
    ceiling: f64,
    count: impl Fn(&str) -> f64,
    stats: &serde_json::Value,
) -> Share {
    Share {
        users,
        records,
        seconds,
        achieved: records as f64 / seconds,
        sustained: sustained_rate(samples, window),
        ceiling,
        throttled: count("throttled") as u64,
        requests: count("requests") as u64,
        last_throttled: Duration::from_millis(
            stats["total"]["last_throttled_ms"].as_u64().unwrap_or(0),
        ),
    }
}

/// Runs the pipeline `text`, written to `dir/name` (relative paths in it are under `dir`); `what`
/// names it when it does not complete.
async fn run_text(
    dir: &std::path::Path,
    name: &str,
    text: &str,
    what: &str,
) -> Result<ferry::run::RunReport> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    let pipeline = Pipeline::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let settings = RunSettings {
        progress: false,
        fresh: true,
        confirmed: true,
    };
    let report = ferry::run::run(&pipeline, &settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if report.status != Status::Completed {
        bail!("{what} did not complete:\n{report}");
    }
    Ok(report)
}

/// The measured run: `run_text` while the emulator's `counter` is sampled every half second.
/// Returns the report, the samples and the emulator's stats at the end.
async fn sampled_run(
    dir: &std::path::Path,
    name: &str,
    text: &str,
    stats_url: &str,
    counter: &'static str,
) -> Result<(ferry::run::RunReport, Vec<(f64, u64)>, serde_json::Value)> {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = tokio::spawn(sample(stats_url.to_string(), counter, samples.clone()));
    let report = run_text(dir, name, text, "the measured run").await;
    sampler.abort();
    let report = report?;
    let samples = samples.lock().expect("samples").clone();
    let stats = reqwest::get(stats_url).await?.json().await?;
    Ok((report, samples, stats))
}

/// The application users' connection block: user-0 as the connection's own, the others as
/// `[[connections.crm.users]]`.
fn connection(emu: &emulator::Running, users: usize, page_size: usize) -> String {
    let names: Vec<String> = (0..users).map(|u| format!("user-{u}")).collect();
    connection_with(emu, &names, page_size)
}

/// The connection block with these client ids (the first as the connection's own).
pub(crate) fn connection_with(
    emu: &emulator::Running,
    users: &[String],
    page_size: usize,
) -> String {
    let mut toml = format!(
        r#"[connections.crm]
url = "{}"
kind = "dataverse"
auth = "client_credentials"
token_url = "{}"
client_id = "{}"
client_secret = "s"
page_size = {page_size}
"#,
        emu.url(),
        emu.token_url(),
        users[0]
    );
    for u in &users[1..] {
        toml.push_str(&format!(
            "[[connections.crm.users]]\nclient_id = \"{u}\"\nclient_secret = \"s\"\n"
        ));
    }
    toml
}

/// What the scaled limits let `users` sustain, in records per second, given what a run of
/// `records` cost: the request count per window times the records a request carries, or the
/// execution-time budget at the execution time per record the emulator counted (every request's,
/// the metadata and the key ranges' included: they spend the same budget), whichever is smaller.
fn ceiling_of(users: usize, records: usize, records_per_request: f64, execution_ms: f64) -> f64 {
    let limits = scaled_limits();
    let window = limits.window.as_secs_f64();
    let by_requests = limits.requests as f64 * records_per_request;
    let per_record = (execution_ms / 1000.0 / records.max(1) as f64).max(1e-9);
    let by_execution = limits.execution.as_secs_f64() / per_record;
    by_requests.min(by_execution) * users as f64 / window
}

/// Appends (seconds since the start, the emulator's total `counter` so far) every half second,
/// until aborted.
async fn sample(url: String, counter: &'static str, samples: Arc<Mutex<Vec<(f64, u64)>>>) {
    let started = std::time::Instant::now();
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let written = async {
            let stats: serde_json::Value = client.get(&url).send().await.ok()?.json().await.ok()?;
            stats["total"][counter].as_u64()
        };
        if let Some(n) = written.await {
            samples
                .lock()
                .expect("samples")
                .push((started.elapsed().as_secs_f64(), n));
        }
    }
}

/// Records per second between the first sample a window after the first records landed and the last
/// sample that still saw records arrive (the run's tail, when workers run out of batches, is not the
/// service's).
fn sustained_rate(samples: &[(f64, u64)], window: f64) -> f64 {
    // Counted from the first sample (an update run starts from the load's records).
    let base = samples.first().map_or(0, |s| s.1);
    let Some(&(first, _)) = samples.iter().find(|(_, n)| *n > base) else {
        return 0.0;
    };
    let Some(from) = samples.iter().find(|(t, _)| *t >= first + window) else {
        return 0.0;
    };
    let total = samples.last().map_or(0, |s| s.1);
    let Some(to) = samples.iter().rev().find(|(_, n)| *n < total) else {
        return 0.0;
    };
    if to.0 <= from.0 {
        return 0.0;
    }
    (to.1 - from.1) as f64 / (to.0 - from.0)
}
