//! `ferry quarantine retry`: the rejected rows (as they are, or corrected in a workbook) written again
//! through the pipeline's target. Rows that land are marked resolved; rows that fail again keep their
//! place with the new error.
//!
//! Truncate and sync would replace or prune the whole table, so a retry upserts (or inserts, for a
//! target without a key) instead.

use std::path::Path;

use ferry_connectors::{ConnectorError, ErrorClass, TargetOptions, WriteMode};

use super::target_name;
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

pub async fn retry(
    pipeline: &Pipeline,
    table: &str,
    from: Option<&Path>,
) -> Result<Retried, ConnectorError> {
    let _lock = RunLock::acquire(&pipeline.state_dir, &pipeline.name)?;
    let book = Book::open(&pipeline.state_dir, &pipeline.name).await?;
    if table != target_name(pipeline) {
        return Err(ConnectorError::fatal(format!(
            "the pipeline writes to \"{}\", not \"{table}\"",
            target_name(pipeline)
        ))
        .with_hint("retry a quarantine table with the pipeline that filled it"));
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
    let sink = ferry_connectors::registry::sink(&pipeline.target.location, options)?;
    if matches!(
        pipeline.target.location,
        ferry_connectors::registry::TargetLocation::File { .. }
    ) {
        return Err(ConnectorError::fatal(
            "a file target is rewritten whole: run the pipeline again instead",
        ));
    }
    sink.begin(rows.schema(), false).await?;
    let mut retried = Retried::default();
    let mut failed_rows = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let mut attempt = 0;
        loop {
            // A service that answers each record on its own (OData) refuses a record inside an
            // answer that is Ok: that record failed again, it did not land.
            let outcome =
                sink.write(rows.slice(i, 1))
                    .await
                    .and_then(|mut done| match done.rejected.pop() {
                        Some((_, refused)) => Err(refused),
                        None => Ok(done),
                    });
            match outcome {
                Ok(_) => {
                    retried.landed.push(id.clone());
                    break;
                }
                Err(e)
                    if e.class == ErrorClass::Retryable && attempt < pipeline.run.max_retries =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                }
                Err(e) if e.class == ErrorClass::Data => {
                    failed_rows.push((id.clone(), e.message.clone(), e.cause_text()));
                    retried.failed.push((id.clone(), e.message));
                    break;
                }
                Err(e) => {
                    sink.abort().await;
                    return Err(e);
                }
            }
        }
    }
    sink.finish().await?;
    book.settle(table, &retried.landed, &failed_rows).await?;
    Ok(retried)
}
