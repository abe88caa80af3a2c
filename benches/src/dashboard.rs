//! `ferry-bench dashboard`: how long `ferry serve` takes to answer each page over a big state dir.
//! It writes the bookkeeping of RUNS runs of PIPELINES pipelines with LOG_ROWS batches in all (one
//! history commit per run start and end (the run's row replaced, as runs record themselves), one log commit per run, compacted as runs end), then serves
//! it on loopback and times each page, the first request and the median and worst of the next ones.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use ferry::book::Book;
use ferry::book::tables::{HistoryRow, LogRow, log_batch, severity};

/// The figures of one page.
pub struct PageTime {
    pub page: String,
    pub first: Duration,
    pub median: Duration,
    pub worst: Duration,
}

/// Writes the state dir (unless it holds a history already).
pub async fn make_state(
    dir: &Path,
    pipelines: usize,
    runs: usize,
    log_rows: usize,
) -> anyhow::Result<()> {
    let state = dir.display().to_string();
    if dir.join("history").exists() {
        println!("{state} already holds bookkeeping: kept (compacted as the next run's end would)");
        return compact(&state, "pipeline_00").await;
    }
    let per_run = log_rows / runs;
    let started = Instant::now();
    for run in 0..runs {
        let pipeline = format!("pipeline_{:02}", run % pipelines);
        let book = Book::open(&state, &pipeline).await?;
        let start = Utc
            .timestamp_opt(1_790_000_000 + run as i64 * 600, 0)
            .unwrap();
        let run_id = format!("run-{run:05}");
        let failed = run % 17 == 0;
        let mut row = HistoryRow {
            run_id: run_id.clone(),
            pipeline: pipeline.clone(),
            start,
            end: None,
            duration: None,
            status: "Running".into(),
            rows_read: 0,
            rows_written: 0,
            rows_rejected: 0,
            rows_per_second: None,
            attempt: 1,
            error: None,
            identity: Some("bench".into()),
        };
        book.record_run(&row).await?;
        let log: Vec<LogRow> = (0..per_run)
            .map(|b| LogRow {
                table_name: "orders".into(),
                partition_id: (b % 4) as i32,
                batch_id: (b / 4) as i32,
                batch_size: 1000,
                write_time: 0.05 + (b % 7) as f32 * 0.01,
                time: start + chrono::Duration::milliseconds(b as i64 * 50),
                error: (failed && b % 50 == 0)
                    .then(|| "value too long for type character varying(20)".into()),
                severity: if failed && b % 50 == 0 {
                    severity::ROWS_REJECTED
                } else {
                    severity::OK
                },
                cause: (failed && b % 50 == 0).then(|| "a value is too long for its column".into()),
                quarantine_table: (failed && b % 50 == 0).then(|| "quarantine/orders".into()),
                pipeline: pipeline.clone(),
                run_id: run_id.clone(),
                attempt: 1,
                rows_written: 1000,
                rows_skipped: 0,
                rows_rejected: 0,
                fingerprint: b as i64,
                retries: (b % 31 == 0) as i32,
                throttled: (b % 53 == 0) as i32,
            })
            .collect();
        book.append(ferry::book::LOG, vec![log_batch(&log)]).await?;
        row.end = Some(start + chrono::Duration::seconds(per_run as i64 / 20));
        row.duration = Some(per_run as f64 / 20.0);
        row.status = if failed {
            "Partial Success"
        } else {
            "Completed"
        }
        .into();
        row.rows_read = per_run as i64 * 1000;
        row.rows_written = per_run as i64 * 1000;
        row.rows_per_second = Some(20_000.0);
        book.record_run(&row).await?;
        // As every run ends: the tables' small files compacted once there are 64 of them.
        compact(&state, &pipeline).await?;
        if run % 100 == 99 {
            println!(
                "{} runs written ({:.0} s)",
                run + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// What a run does to the tables as it ends (`Book::compact`: a no-op under 64 files).
async fn compact(state: &str, pipeline: &str) -> anyhow::Result<()> {
    let book = Book::open(state, pipeline).await?;
    for table in [ferry::book::LOG, ferry::book::HISTORY] {
        book.compact(table).await?;
    }
    Ok(())
}

/// Serves `dir` on loopback and times `pages` (paths), `repeat` requests each after a first.
pub async fn time_pages(
    dir: &Path,
    pages: &[String],
    repeat: usize,
) -> anyhow::Result<Vec<PageTime>> {
    let app = ferry::serve::App {
        state_dir: dir.display().to_string(),
        token: None,
        project: None,
        jobs: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, ferry::serve::router(app)).await });
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for page in pages {
        let mut times = Vec::new();
        for _ in 0..=repeat {
            let started = Instant::now();
            let response = client.get(format!("http://{addr}{page}")).send().await?;
            let status = response.status();
            let body = response.text().await?;
            times.push(started.elapsed());
            anyhow::ensure!(
                status.is_success(),
                "{page}: {status}: {}",
                &body[..body.len().min(300)]
            );
        }
        let first = times.remove(0);
        times.sort();
        out.push(PageTime {
            page: page.clone(),
            first,
            median: times[times.len() / 2],
            worst: *times.last().unwrap(),
        });
    }
    Ok(out)
}
