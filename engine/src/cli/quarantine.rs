//! `ferry quarantine list | show | export | retry`: the rejected rows, their Excel round trip and
//! their second chance.

use std::path::Path;
use std::process::ExitCode;

use arrow::array::RecordBatch;
use datafusion::prelude::{col, lit};

use super::show;
use crate::book::Book;
use crate::book::quarantine::export_xlsx;
use crate::run::target_name;
use crate::spec::Pipeline;

async fn setup(file: &Path) -> Result<(Pipeline, Book), ExitCode> {
    let pipeline = super::load(file)?;
    let book = super::open_book(&pipeline).await?;
    Ok((pipeline, book))
}

/// `list`: each quarantine table with its unresolved and resolved row counts.
pub async fn list(file: &Path, json: bool) -> ExitCode {
    let (_, book) = match setup(file).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut names = Vec::new();
    let mut open = Vec::new();
    let mut resolved = Vec::new();
    for table in book.quarantine_tables() {
        let counts = async {
            let Some(df) = book
                .frame(&format!("quarantine/{table}"), "_ferry_pipeline")
                .await?
            else {
                return Ok((0, 0));
            };
            let total = df.clone().count().await?;
            let unresolved = df
                .filter(col("_ferry_resolved").eq(lit(false)))?
                .count()
                .await?;
            Ok::<_, ferry_connectors::ConnectorError>((
                unresolved as i64,
                (total - unresolved) as i64,
            ))
        }
        .await;
        match counts {
            Ok((u, r)) => {
                names.push(table);
                open.push(u);
                resolved.push(r);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let batch = RecordBatch::try_from_iter(vec![
        (
            "table",
            std::sync::Arc::new(arrow::array::StringArray::from(names)) as _,
        ),
        (
            "unresolved",
            std::sync::Arc::new(arrow::array::Int64Array::from(open)) as _,
        ),
        (
            "resolved",
            std::sync::Arc::new(arrow::array::Int64Array::from(resolved)) as _,
        ),
    ])
    .expect("columns of equal length");
    show::print(&[batch], json);
    ExitCode::SUCCESS
}

/// `show`: the unresolved rows of a table (the pipeline's target by default).
pub async fn show_rows(file: &Path, table: Option<String>, all: bool, json: bool) -> ExitCode {
    let (pipeline, book) = match setup(file).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let table = table.unwrap_or_else(|| target_name(&pipeline));
    match book.quarantine_rows(&table, !all).await {
        Ok(batches) => {
            let wanted: Vec<RecordBatch> = batches.iter().map(reorder).collect();
            show::print(&wanted, json);
            if !json {
                let n: usize = batches.iter().map(|b| b.num_rows()).sum();
                say!(
                    "{n} {} rows in quarantine/{table}; `ferry quarantine export` writes them to Excel for correction",
                    if all { "" } else { "unresolved" }
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Error and cause first, then the data, then Ferry's other columns.
fn reorder(batch: &RecordBatch) -> RecordBatch {
    let schema = batch.schema();
    let mut order: Vec<usize> = Vec::new();
    for name in ["_ferry_error", "_ferry_cause"] {
        order.extend(schema.index_of(name).ok());
    }
    order.extend(
        (0..schema.fields().len())
            .filter(|&i| !crate::book::tables::is_quarantine_field(schema.field(i).name())),
    );
    for name in ["_ferry_row", "_ferry_run_id", "_ferry_resolved"] {
        order.extend(schema.index_of(name).ok());
    }
    batch.project(&order).expect("columns exist")
}

/// `export`: the unresolved rows into a workbook a business user can correct.
pub async fn export(file: &Path, table: &str, out: &Path) -> ExitCode {
    let (_, book) = match setup(file).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let result = async {
        let rejected = book.rejected(table).await?;
        export_xlsx(&rejected, out)?;
        Ok::<_, ferry_connectors::ConnectorError>(rejected.rows.num_rows())
    }
    .await;
    match result {
        Ok(n) => {
            say!(
                "{n} rows written to {}; correct them there, then: ferry quarantine retry {} {table} --from {}",
                out.display(),
                file.display(),
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `retry`: the rows written again; exit 0 when all landed, 3 when some failed again.
pub async fn retry(file: &Path, table: &str, from: Option<&Path>) -> ExitCode {
    let pipeline = match super::load(file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match crate::run::retry::retry(&pipeline, table, from).await {
        Ok(r) => {
            say!(
                "{} rows landed and are resolved; {} failed again",
                r.landed.len(),
                r.failed.len()
            );
            for (id, error) in &r.failed {
                say!("  {id}: {error}");
            }
            if r.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
