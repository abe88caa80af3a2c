//! `ferry quarantine retry`: the rejected rows (as they are, or corrected in a workbook) written again
//! through the pipeline's target. Rows that land are marked resolved; rows that fail again keep their
//! place with the new error.
//!
//! Truncate and sync would replace or prune the whole table, so a retry upserts (or inserts, for a
//! target without a key) instead. The rows go in the target's batches, and bad ones are isolated
//! as a run isolates them (`isolate.rs`), not one write per row.

use std::path::Path;

use arrow::record_batch::RecordBatch;
use ferry_connectors::{ConnectorError, ErrorClass, TargetOptions, WriteMode};

use super::isolate::isolate;
use super::target_name;
use super::workers::retrying;
use crate::book::Book;
use crate::book::lock::RunLock;
use crate::book::quarantine::import_xlsx;
use crate::spec::Pipeline;

/// What a retry did.
#[derive(Debug, Default)]
pub struct Retried {
    pub landed: Vec<String>,
    /// (row id, error) of the rows that failed again.
    pub failed: Vec<(String, String)>,
}

/// A corrected row must keep the key it was refused for: a key bent by the workbook (a long number
/// rounded by Excel) would upsert another row and mark the refused one resolved.
fn same_keys(
    file: &Path,
    key: &[String],
    rejected: &crate::book::quarantine::Rejected,
    rows: &RecordBatch,
    ids: &[String],
) -> Result<(), ConnectorError> {
    let text = |batch: &RecordBatch, column: &str, row: usize| -> Option<String> {
        let c = batch.column_by_name(column)?;
        let c = arrow::compute::cast(&c.slice(row, 1), &arrow::datatypes::DataType::Utf8).ok()?;
        use arrow::array::{Array, AsArray};
        let c = c.as_string::<i32>();
        Some(if c.is_null(0) {
            "(empty)".to_string()
        } else {
            c.value(0).to_string()
        })
    };
    for (i, id) in ids.iter().enumerate() {
        let Some(j) = rejected.ids.iter().position(|r| r == id) else {
            continue;
        };
        for k in key {
            let (now, was) = (text(rows, k, i), text(&rejected.rows, k, j));
            if now != was {
                return Err(ConnectorError::fatal(format!(
                    "{}, row {}: key column \"{k}\" reads {}, but the quarantined row {id} has {}",
                    file.display(),
                    i + 2,
                    now.unwrap_or_default(),
                    was.unwrap_or_default()
                ))
                .with_hint("a retry writes the row under the key it was refused for: correct the other columns, and put a row with another key into the source instead"));
            }
        }
    }
    Ok(())
}

pub async fn retry(
    pipeline: &Pipeline,
    table: &str,
    from: Option<&Path>,
) -> Result<Retried, ConnectorError> {
    let _lock = RunLock::acquire(&pipeline.state_dir, &pipeline.name).await?;
    let book = Book::open(&pipeline.state_dir, &pipeline.name).await?;
    if table != target_name(pipeline) {
        return Err(ConnectorError::fatal(format!(
            "the pipeline writes to \"{}\", not \"{table}\"",
            target_name(pipeline)
        ))
        .with_hint("retry a quarantine table with the pipeline that filled it"));
    }
    let destination = &pipeline.target.destination;
    if !destination.connector().capabilities().retries_rows {
        return Err(ConnectorError::fatal(format!(
            "{} target is rewritten whole: run the pipeline again instead",
            ferry_connectors::connector::article(destination.connector().name())
        )));
    }
    let rejected = book.rejected(table).await?;
    let (rows, ids) = match from {
        None => (rejected.rows.clone(), rejected.ids.clone()),
        Some(file) => {
            let (rows, ids) = import_xlsx(file, &rejected.schema)?;
            if let Some(unknown) = ids.iter().find(|id| !rejected.ids.contains(id)) {
                return Err(ConnectorError::fatal(format!(
                    "{} has a row whose id \"{unknown}\" is not an unresolved row of quarantine/{table}",
                    file.display()
                ))
                .with_hint("export again with `ferry quarantine export`: rows resolved since are no longer in it"));
            }
            same_keys(file, &pipeline.target.options.key, &rejected, &rows, &ids)?;
            (rows, ids)
        }
    };
    let mut options: TargetOptions = pipeline.target.options.clone();
    options.mode = match (options.mode, options.key.is_empty()) {
        (WriteMode::Truncate | WriteMode::Sync, false) => WriteMode::Upsert,
        (WriteMode::Truncate | WriteMode::Sync, true) => WriteMode::Insert,
        (mode, _) => mode,
    };
    options.create = false;
    let sink = pipeline.target.destination.sink(options)?;
    let attempt = ferry_connectors::Attempt {
        run_id: format!("retry-{}", uuid::Uuid::new_v4().simple()),
        resume: false,
    };
    sink.begin(rows.schema(), &attempt).await?;
    // In the target's batches, bad rows isolated as a run isolates them; a target still unavailable
    // after every retry stops the retry (nothing is marked resolved).
    let sink = &sink;
    let max_retries = pipeline.run.max_retries;
    let mut rejected = Vec::new();
    let mut offset = 0;
    while offset < rows.num_rows() {
        let len = pipeline.target.batch_size.min(rows.num_rows() - offset);
        let chunk = rows.slice(offset, len);
        let write = |slice: RecordBatch| async move {
            retrying("quarantine retry", max_retries, || {
                sink.write(slice.clone())
            })
            .await
            .map_err(|mut e| {
                if e.class == ErrorClass::Retryable {
                    e.class = ErrorClass::Fatal;
                }
                e
            })
        };
        match isolate(&chunk, write, |_| Ok(()), |e| e).await {
            Ok((_, bad)) => rejected.extend(bad.into_iter().map(|(row, e)| (offset + row, e))),
            Err(e) => {
                sink.abort().await;
                return Err(e);
            }
        }
        offset += len;
    }
    let mut retried = Retried::default();
    let mut failed_rows = Vec::new();
    let mut bad = rejected.into_iter().peekable();
    for (i, id) in ids.iter().enumerate() {
        match bad.next_if(|(row, _)| *row == i) {
            Some((_, e)) => {
                failed_rows.push((id.clone(), e.message.clone(), e.cause_text()));
                retried.failed.push((id.clone(), e.message));
            }
            None => retried.landed.push(id.clone()),
        }
    }
    sink.finish().await?;
    // Killed here, the rows landed but stay unresolved: a retry writes them again (an upsert).
    ferry_connectors::failpoint::pause_point("retry_written");
    book.settle(table, &retried.landed, &failed_rows).await?;
    Ok(retried)
}
