//! Staging: a dropped file read once (typed as its format reads it: workbook dates as dates, text
//! cells as text, so codes keep their leading zeros; empty rows skipped) and written to a Delta table
//! per entity under the work folder, so that the migration reads a stable copy and the file can be
//! archived at once. Each staging of an entity is a new version of its table.

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use ferry_connectors::files::FileFormat;
use ferry_connectors::files::source::{FileSource, register};

use super::config::FileOptions;

/// Where an entity's staged rows are.
pub fn staging_path(work: &Path, entity: &str) -> PathBuf {
    work.join("staging").join(entity)
}

/// Reads `file` and writes its rows (columns renamed by `options.rename`) as the new version of
/// `entity`'s staging table; returns the rows staged. The error says what is wrong with the file.
pub async fn stage(
    file: &Path,
    options: &FileOptions,
    work: &Path,
    entity: &str,
) -> Result<u64, String> {
    let format = FileFormat::from_extension(&file.to_string_lossy())
        .ok_or_else(|| format!("{}: not a file Ferry reads", file.display()))?;
    let source = FileSource {
        sheet: options.sheet.clone(),
        ..FileSource::new(file.display().to_string(), format)
    };
    let ctx = SessionContext::new();
    register(&ctx, "dropped", &source)
        .await
        .map_err(|e| e.to_string())?;
    let df = ctx.table("dropped").await.map_err(|e| e.to_string())?;
    let columns: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if let Some(missing) = options.rename.keys().find(|k| !columns.contains(k)) {
        return Err(format!(
            "rename names the column \"{missing}\", which the file does not have (its columns: {})",
            columns.join(", ")
        ));
    }
    let exprs: Vec<datafusion::prelude::Expr> = columns
        .iter()
        .map(|c| {
            let to = options.rename.get(c).unwrap_or(c);
            datafusion::prelude::col(datafusion::common::Column::from_name(c)).alias(to)
        })
        .collect();
    let selected = df.select(exprs).map_err(|e| e.to_string())?;
    // A file without rows is refused before the entity's staging table is touched.
    let first = selected
        .clone()
        .limit(0, Some(1))
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    if first.iter().all(|b| b.num_rows() == 0) {
        return Err(format!("{}: no rows", file.display()));
    }
    let location = staging_path(work, entity);
    std::fs::create_dir_all(&location)
        .map_err(|e| format!("cannot create {}: {e}", location.display()))?;
    let url =
        deltalake::ensure_table_uri(location.display().to_string()).map_err(|e| e.to_string())?;
    let table = DeltaTable::try_from_url(url)
        .await
        .map_err(|e| e.to_string())?;
    // Streamed: the file's batches go to the Delta writer as they are read, never all at once.
    let table = table
        .write(Vec::<RecordBatch>::new())
        .with_input_plan(selected.logical_plan().clone())
        .with_save_mode(SaveMode::Overwrite)
        .with_schema_mode(SchemaMode::Overwrite)
        .with_table_name(entity)
        .await
        .map_err(|e| format!("cannot stage into {}: {e}", location.display()))?;
    staged_rows(&table)
        .await
        .map_err(|e| format!("counting what was staged into {}: {e}", location.display()))
}

/// The rows of the staging table just written (from its files' statistics where they have them).
async fn staged_rows(table: &DeltaTable) -> Result<u64, datafusion::error::DataFusionError> {
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    let provider = table
        .table_provider()
        .await
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    ctx.read_table(provider)?.count().await.map(|n| n as u64)
}
