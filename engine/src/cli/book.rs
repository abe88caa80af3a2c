//! `ferry log`, `ferry history` and `ferry reset`: reading and resetting the bookkeeping tables.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use datafusion::prelude::{col, lit};
use deltalake::DeltaTable;

use super::{INVALID, show};
use crate::book::{Book, CHECKPOINTS, HISTORY, LOG, STATE};

/// `ferry log`: the batches of a run (the latest by default).
pub async fn log(file: &Path, run: Option<String>, errors: bool, json: bool) -> ExitCode {
    let pipeline = match super::load(file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let book = match super::open_book(&pipeline).await {
        Ok(b) => b,
        Err(code) => return code,
    };
    let run = match run {
        Some(r) => r,
        None => match latest_run(&book).await {
            Some(r) => r,
            None => {
                say!("{} has not run yet", pipeline.name);
                return ExitCode::SUCCESS;
            }
        },
    };
    let rows = async {
        let Some(df) = book.frame(LOG, "pipeline").await? else {
            return Ok(Vec::new());
        };
        let mut df = df
            .filter(col("run_id").eq(lit(run.clone())))
            .map_err(ferry_connectors::ConnectorError::from)?;
        if errors {
            df = df.filter(col("severity").gt(lit(0)))?;
        }
        let df = df
            .sort(vec![
                col("time").sort(true, false),
                col("partition_id").sort(true, false),
                col("batch_id").sort(true, false),
            ])?
            .select_columns(&[
                "time",
                "attempt",
                "partition_id",
                "batch_id",
                "batch_size",
                "rows_written",
                "rows_skipped",
                "rows_rejected",
                "write_time",
                "severity",
                "error",
                "cause",
                "quarantine_table",
            ])?;
        Ok::<_, ferry_connectors::ConnectorError>(df.collect().await?)
    }
    .await;
    match rows {
        Ok(batches) => {
            if !json {
                say!("run {run} of {}", pipeline.name);
            }
            show::print(&batches, json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn latest_run(book: &Book) -> Option<String> {
    let df = book.frame(HISTORY, "pipeline").await.ok()??;
    let batches = df
        .sort(vec![col("start").sort(false, false)])
        .ok()?
        .limit(0, Some(1))
        .ok()?
        .collect()
        .await
        .ok()?;
    let b = batches.iter().find(|b| b.num_rows() > 0)?;
    Some(crate::book::strings(b, "run_id").value(0).to_string())
}

/// `ferry history`: one row per run, newest first.
pub async fn history(
    file: Option<&Path>,
    state_dir: &Path,
    status: Option<String>,
    since: Option<String>,
    json: bool,
) -> ExitCode {
    let book = match file {
        Some(file) => {
            let pipeline = match super::load(file) {
                Ok(p) => p,
                Err(code) => return code,
            };
            match super::open_book(&pipeline).await {
                Ok(b) => b,
                Err(code) => return code,
            }
        }
        None => Book::reader(&state_dir.display().to_string()),
    };
    let since = match since.as_deref().map(parse_since) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(())) => {
            eprintln!(
                "error: --since takes a date (2026-11-01) or a date and time (2026-11-01T08:00:00Z)"
            );
            return ExitCode::from(INVALID);
        }
    };
    let rows = async {
        let Some(mut df) = book.frame(HISTORY, "pipeline").await? else {
            return Ok(Vec::new());
        };
        if let Some(s) = status {
            df = df.filter(col("status").eq(lit(s)))?;
        }
        if let Some(t) = since {
            df = df.filter(col("start").gt_eq(lit(
                datafusion::scalar::ScalarValue::TimestampMicrosecond(
                    Some(t.timestamp_micros()),
                    Some("UTC".into()),
                ),
            )))?;
        }
        let df = df
            .sort(vec![col("start").sort(false, false)])?
            .select_columns(&[
                "pipeline",
                "run_id",
                "status",
                "start",
                "duration",
                "rows_read",
                "rows_written",
                "rows_rejected",
                "rows_per_second",
                "attempt",
                "error",
            ])?;
        Ok::<_, ferry_connectors::ConnectorError>(df.collect().await?)
    }
    .await;
    match rows {
        Ok(batches) => {
            show::print(&batches, json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(super) fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, ()> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| ())
}

/// What `ferry reset` clears.
pub struct ResetWhat {
    pub checkpoints: bool,
    pub state: bool,
    pub all: bool,
}

/// `ferry reset`: deletes this pipeline's rows from the chosen bookkeeping tables.
pub async fn reset(file: &Path, what: ResetWhat, yes: bool) -> ExitCode {
    let pipeline = match super::load(file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut tables: Vec<(String, &str)> = Vec::new();
    if what.checkpoints || what.all {
        tables.push((CHECKPOINTS.to_string(), "pipeline"));
    }
    if what.state || what.all {
        tables.push((STATE.to_string(), "pipeline"));
        tables.push((LOG.to_string(), "pipeline"));
    }
    let book = match super::open_book(&pipeline).await {
        Ok(b) => b,
        Err(code) => return code,
    };
    if what.all {
        tables.push((HISTORY.to_string(), "pipeline"));
        for q in book.quarantine_tables() {
            tables.push((format!("quarantine/{q}"), "_ferry_pipeline"));
        }
    }
    if tables.is_empty() {
        eprintln!("error: say what to reset: --checkpoints, --state or --all");
        return ExitCode::from(INVALID);
    }
    let names: Vec<&str> = tables.iter().map(|(t, _)| t.as_str()).collect();
    let warning = format!(
        "This deletes the rows of pipeline \"{}\" from {} under {}.{}",
        pipeline.name,
        names.join(", "),
        book.root(),
        if what.checkpoints || what.all {
            " Incremental sources will read every file again."
        } else {
            ""
        }
    );
    if !yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("{warning}\nerror: not confirmed: add --yes to reset without a question");
            return ExitCode::from(INVALID);
        }
        eprint!("{warning}\nType the pipeline's name to confirm: ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if answer.trim() != pipeline.name {
            eprintln!("not reset");
            return ExitCode::FAILURE;
        }
    }
    let _lock = match crate::book::lock::RunLock::acquire(&pipeline.state_dir, &pipeline.name).await
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (table, column) in &tables {
        let location = book.location(table);
        let result = async {
            let Some(t) = book.table(table).await? else {
                return Ok(0);
            };
            let (_, metrics) = DeltaTable::delete(t)
                .with_predicate(col(*column).eq(lit(pipeline.name.clone())))
                .await
                .map_err(|e| ferry_connectors::ConnectorError::fatal(format!("{location}: {e}")))?;
            Ok::<_, ferry_connectors::ConnectorError>(metrics.num_deleted_rows.unwrap_or(0))
        }
        .await;
        match result {
            Ok(n) => say!("{table}: {n} rows deleted"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
