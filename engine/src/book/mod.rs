//! Bookkeeping: every run and every batch recorded in Delta tables under the pipeline's `state_dir`,
//! readable by any Delta reader, so that a run that dies is simply run again.
//!
//! ```text
//! <state_dir>/log                 one row per batch (DDU's columns + run, attempt, rows, fingerprint)
//! <state_dir>/state               one row per pipeline and target table
//! <state_dir>/history             one row per run: Running, then Completed | Partial Success | Failed | Stopped
//! <state_dir>/checkpoints         input files consumed by incremental sources
//! <state_dir>/quarantine/<table>  rejected rows with their error; append-only, retried rows marked resolved
//! <state_dir>/locks/<pipeline>.lock   held while a run of the pipeline is under way
//!                                     (on object storage: <pipeline>.lease, see `lease`)
//! ```
//!
//! `state_dir` may be a folder or an object-store URL (s3://, az://, gs://): Delta's commits there
//! are conditional puts, so processes that share it (two pipelines, or a run and `ferry history`)
//! never overwrite each other's commits.
//!
//! A table that exists but cannot be read stops the run: it is never taken for "nothing done yet".

pub mod lease;
pub mod lock;
pub mod quarantine;
pub mod recorder;
pub mod tables;

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, Int64Type};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use datafusion::prelude::{DataFrame, SessionContext, col, lit};
use deltalake::DeltaTable;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use ferry_connectors::ConnectorError;
use url::Url;

use self::tables::*;

type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// The names of the bookkeeping tables.
pub const LOG: &str = "log";
pub const STATE: &str = "state";
pub const HISTORY: &str = "history";
pub const CHECKPOINTS: &str = "checkpoints";

/// A pipeline's bookkeeping tables.
#[derive(Debug, Clone)]
pub struct Book {
    root: String,
    pipeline: String,
}

/// A batch a run has already written: (partition, batch, fingerprint).
pub type BatchKey = (i32, i32, i64);

impl Book {
    /// Opens (creating when missing) the bookkeeping tables under `state_dir`.
    pub async fn open(state_dir: &str, pipeline: &str) -> Result<Book> {
        let book = Book {
            root: state_dir.trim_end_matches('/').to_string(),
            pipeline: pipeline.to_string(),
        };
        for (name, schema) in [
            (LOG, log_schema()),
            (STATE, state_schema()),
            (HISTORY, history_schema()),
            (CHECKPOINTS, checkpoints_schema()),
        ] {
            book.open_or_create(name, schema).await?;
        }
        Ok(book)
    }

    /// Reads the tables under `state_dir` for every pipeline (for `ferry history` without a pipeline);
    /// creates nothing.
    pub fn reader(state_dir: &str) -> Book {
        Book {
            root: state_dir.trim_end_matches('/').to_string(),
            pipeline: String::new(),
        }
    }

    /// One pipeline's tables under `state_dir`, for reading only: creates nothing.
    pub fn reader_for(state_dir: &str, pipeline: &str) -> Book {
        Book {
            pipeline: pipeline.to_string(),
            ..Book::reader(state_dir)
        }
    }

    /// When this pipeline's latest run that completed (Completed or Partial Success) started.
    pub async fn last_success_start(&self) -> Result<Option<DateTime<Utc>>> {
        let Some(df) = self.frame(HISTORY, "pipeline").await? else {
            return Ok(None);
        };
        let completed = col("status")
            .eq(lit("Completed"))
            .or(col("status").eq(lit("Partial Success")));
        let batches = df
            .filter(completed)
            .and_then(|df| {
                df.aggregate(
                    vec![],
                    vec![
                        datafusion::functions_aggregate::expr_fn::max(col("start")).alias("start"),
                    ],
                )
            })
            .map_err(|e| self.damaged(HISTORY, e))?
            .collect()
            .await
            .map_err(|e| self.damaged(HISTORY, e))?;
        Ok(batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| {
                b.column(0)
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            })
            .filter(|c| c.is_valid(0))
            .and_then(|c| DateTime::from_timestamp_micros(c.value(0))))
    }

    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// The location of a bookkeeping table (`quarantine/<t>` for quarantine tables).
    pub fn location(&self, name: &str) -> String {
        format!("{}/{}", self.root, name)
    }

    fn url(&self, name: &str) -> Result<Url> {
        let location = self.location(name);
        if !ferry_connectors::files::is_url(&location) {
            std::fs::create_dir_all(&location).map_err(|e| {
                ConnectorError::fatal(format!("cannot create the state folder {location}: {e}"))
                    .with_hint("set state_dir in the pipeline file to a folder Ferry can write")
            })?;
        }
        ferry_connectors::files::stores::delta_url(&location).map_err(|e| self.damaged(name, e))
    }

    fn damaged(&self, name: &str, e: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::fatal(format!(
            "the bookkeeping table {} cannot be read: {e}",
            self.location(name)
        ))
        .with_hint(
            "Ferry will not guess what was already done. Restore the folder, or move it away to start \
             from nothing (the target keeps its rows; a keyed re-run is harmless)",
        )
    }

    async fn open_or_create(
        &self,
        name: &str,
        schema: arrow::datatypes::SchemaRef,
    ) -> Result<DeltaTable> {
        let table = DeltaTable::try_from_url(self.url(name)?)
            .await
            .map_err(|e| self.damaged(name, e))?;
        if table.version().is_some() {
            return Ok(table);
        }
        let created = table
            .write(vec![RecordBatch::new_empty(schema)])
            .with_save_mode(SaveMode::Append)
            .with_table_name(name)
            .await;
        match created {
            Ok(table) => Ok(table),
            // Another process created it at the same moment (the processes of a spread run, or
            // two pipelines sharing a state dir): theirs is the table.
            Err(e) => match DeltaTable::try_from_url(self.url(name)?).await {
                Ok(table) if table.version().is_some() => Ok(table),
                _ => Err(self.damaged(name, e)),
            },
        }
    }

    /// Opens an existing bookkeeping table at its latest version; `None` when it was never written.
    pub async fn table(&self, name: &str) -> Result<Option<DeltaTable>> {
        let location = self.location(name);
        if !ferry_connectors::files::is_url(&location)
            && !std::path::Path::new(&location).join("_delta_log").exists()
        {
            return Ok(None);
        }
        let table = DeltaTable::try_from_url(self.url(name)?)
            .await
            .map_err(|e| self.damaged(name, e))?;
        Ok(table.version().is_some().then_some(table))
    }

    /// The table as a DataFrame filtered to this pipeline (all pipelines for a `reader`); `None` when
    /// it was never written.
    pub async fn frame(&self, name: &str, pipeline_column: &str) -> Result<Option<DataFrame>> {
        let Some(table) = self.table(name).await? else {
            return Ok(None);
        };
        let ctx = SessionContext::new();
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| self.damaged(name, e))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| self.damaged(name, e))?;
        let df = ctx
            .read_table(provider)
            .map_err(|e| self.damaged(name, e))?;
        if self.pipeline.is_empty() {
            return Ok(Some(df));
        }
        let df = df
            .filter(col(pipeline_column).eq(lit(self.pipeline.clone())))
            .map_err(|e| self.damaged(name, e))?;
        Ok(Some(df))
    }

    /// Appends rows to a bookkeeping table in one commit, creating it when missing (quarantine tables
    /// are created on their first rejected row, with the rows' schema; later schemas are merged).
    pub async fn append(&self, name: &str, batches: Vec<RecordBatch>) -> Result<()> {
        if batches.is_empty() {
            return Ok(());
        }
        self.committing(name, || {
            let batches = batches.clone();
            async move {
                let table = DeltaTable::try_from_url(self.url(name)?)
                    .await
                    .map_err(|e| self.damaged(name, e))?;
                Ok(table
                    .write(batches)
                    .with_save_mode(SaveMode::Append)
                    .with_schema_mode(SchemaMode::Merge)
                    .await)
            }
        })
        .await
    }

    /// Replaces the rows matching `predicate` with `batch`, in one commit.
    async fn replace(
        &self,
        name: &str,
        predicate: datafusion::prelude::Expr,
        batch: RecordBatch,
    ) -> Result<()> {
        self.committing(name, || {
            let (batch, predicate) = (batch.clone(), predicate.clone());
            async move {
                let table = DeltaTable::try_from_url(self.url(name)?)
                    .await
                    .map_err(|e| self.damaged(name, e))?;
                Ok(table
                    .write(vec![batch])
                    .with_save_mode(SaveMode::Overwrite)
                    .with_replace_where(predicate)
                    // Tables written by an earlier Ferry gain the columns added since.
                    .with_schema_mode(SchemaMode::Merge)
                    .await)
            }
        })
        .await
    }

    /// Runs a commit to a bookkeeping table again when another writer's commit (another pipeline
    /// sharing the table, or its compaction) won the race: Delta's optimistic concurrency.
    async fn committing<F>(&self, name: &str, commit: impl Fn() -> F) -> Result<()>
    where
        F: std::future::Future<Output = Result<deltalake::DeltaResult<DeltaTable>>>,
    {
        let mut attempt = 0u32;
        loop {
            match commit().await? {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 8 && lost_a_race(&e) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(5)))
                        .await;
                }
                Err(e) => {
                    return Err(ConnectorError::fatal(format!(
                        "recording in {}: {e}",
                        self.location(name)
                    )));
                }
            }
        }
    }

    /// Records the run in `history` (a new row, or the same run's row replaced).
    pub async fn record_run(&self, row: &HistoryRow) -> Result<()> {
        let predicate = col("run_id").eq(lit(row.run_id.clone()));
        self.replace(HISTORY, predicate, history_batch(row)).await
    }

    /// The latest run of this pipeline that did not finish (Running, Failed or Stopped): the one a new
    /// `ferry run` resumes.
    pub async fn unfinished_run(&self) -> Result<Option<HistoryRow>> {
        Ok(self
            .latest_run()
            .await?
            .filter(|r| matches!(r.status.as_str(), "Running" | "Failed" | "Stopped")))
    }

    /// The run of this pipeline that started last, as its history row says.
    pub async fn latest_run(&self) -> Result<Option<HistoryRow>> {
        let Some(df) = self.frame(HISTORY, "pipeline").await? else {
            return Ok(None);
        };
        let batches = df
            .sort(vec![col("start").sort(false, false)])
            .and_then(|df| df.limit(0, Some(1)))
            .map_err(|e| self.damaged(HISTORY, e))?
            .collect()
            .await
            .map_err(|e| self.damaged(HISTORY, e))?;
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let text = |c: &str| strings(batch, c).value(0).to_string();
        let optional_text = |c: &str| {
            batch
                .column_by_name(c)
                .map(|_| strings(batch, c))
                .filter(|c| c.is_valid(0))
                .map(|c| c.value(0).to_string())
        };
        let time = |c: &str| {
            let column = batch
                .column_by_name(c)?
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            column
                .is_valid(0)
                .then(|| DateTime::from_timestamp_micros(column.value(0)))
                .flatten()
        };
        let long = |c: &str| {
            batch
                .column_by_name(c)
                .map(|a| a.as_primitive::<Int64Type>().value(0))
                .unwrap_or(0)
        };
        let float = |c: &str| {
            batch
                .column_by_name(c)
                .map(|a| a.as_primitive::<arrow::datatypes::Float64Type>())
                .filter(|a| a.is_valid(0))
                .map(|a| a.value(0))
        };
        Ok(Some(HistoryRow {
            run_id: text("run_id"),
            pipeline: text("pipeline"),
            start: time("start").unwrap_or_default(),
            end: time("end"),
            duration: float("duration"),
            status: text("status"),
            rows_read: long("rows_read"),
            rows_written: long("rows_written"),
            rows_rejected: long("rows_rejected"),
            rows_per_second: float("rows_per_second"),
            attempt: batch
                .column_by_name("attempt")
                .expect("attempt")
                .as_primitive::<Int32Type>()
                .value(0),
            error: optional_text("error"),
            // Written before runs had an identity: None, which matches no run of today.
            identity: optional_text("identity"),
        }))
    }

    /// The batches of `run_id` the log records as landed, each with the rows it accounted for.
    pub async fn written_batches(
        &self,
        run_id: &str,
        table: &str,
    ) -> Result<HashMap<BatchKey, Totals>> {
        let mut done = HashMap::new();
        let Some(df) = self.frame(LOG, "pipeline").await? else {
            return Ok(done);
        };
        let batches = df
            .filter(
                col("run_id")
                    .eq(lit(run_id.to_string()))
                    .and(col("table_name").eq(lit(table.to_string())))
                    .and(col("severity").lt(lit(severity::BATCH_FAILED))),
            )
            .map_err(|e| self.damaged(LOG, e))?
            .collect()
            .await
            .map_err(|e| self.damaged(LOG, e))?;
        for b in &batches {
            let int = |c: &str| {
                b.column_by_name(c)
                    .expect("log column")
                    .as_primitive::<Int32Type>()
                    .clone()
            };
            let long = |c: &str| {
                b.column_by_name(c)
                    .expect("log column")
                    .as_primitive::<Int64Type>()
                    .clone()
            };
            let (partition, batch, fingerprint) =
                (int("partition_id"), int("batch_id"), long("fingerprint"));
            let (written, skipped, rejected) = (
                long("rows_written"),
                long("rows_skipped"),
                long("rows_rejected"),
            );
            for i in 0..b.num_rows() {
                done.entry((partition.value(i), batch.value(i), fingerprint.value(i)))
                    .or_insert(Totals {
                        read: (written.value(i) + skipped.value(i) + rejected.value(i)) as u64,
                        written: written.value(i) as u64,
                        skipped: skipped.value(i) as u64,
                        rejected: rejected.value(i) as u64,
                    });
            }
        }
        Ok(done)
    }

    /// Records the target table's state after a run.
    pub async fn record_state(&self, mut row: StateRow) -> Result<()> {
        let existing = match self.frame(STATE, "pipeline").await? {
            None => Vec::new(),
            Some(df) => df.collect().await.map_err(|e| self.damaged(STATE, e))?,
        };
        let mut next_id = 1;
        for b in &existing {
            let ids = b
                .column_by_name("id")
                .expect("id")
                .as_primitive::<Int32Type>();
            let names = strings(b, "table_name");
            for i in 0..b.num_rows() {
                if names.value(i) == row.table_name {
                    row.id = ids.value(i);
                    next_id = 0;
                    break;
                }
                next_id = next_id.max(ids.value(i) + 1);
            }
            if next_id == 0 {
                break;
            }
        }
        if next_id > 0 {
            row.id = self.next_state_id().await?.max(next_id);
        }
        let predicate = col("pipeline")
            .eq(lit(self.pipeline.clone()))
            .and(col("table_name").eq(lit(row.table_name.clone())));
        self.replace(STATE, predicate, state_batch(&row)).await
    }

    /// State ids are global to the state folder: the order tables were first migrated in.
    async fn next_state_id(&self) -> Result<i32> {
        let Some(table) = self.table(STATE).await? else {
            return Ok(1);
        };
        let ctx = SessionContext::new();
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| self.damaged(STATE, e))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| self.damaged(STATE, e))?;
        let batches = ctx
            .read_table(provider)
            .and_then(|df| {
                df.aggregate(
                    vec![],
                    vec![datafusion::functions_aggregate::expr_fn::max(col("id"))],
                )
            })
            .map_err(|e| self.damaged(STATE, e))?
            .collect()
            .await
            .map_err(|e| self.damaged(STATE, e))?;
        let max = batches
            .first()
            .filter(|b| b.num_rows() > 0)
            .map(|b| b.column(0).as_primitive::<Int32Type>())
            .filter(|a| !a.is_null(0))
            .map(|a| a.value(0))
            .unwrap_or(0);
        Ok(max + 1)
    }

    /// Compacts a table's small files and removes the replaced ones, so that a pipeline run thousands
    /// of times still starts fast. Called with the run lock held.
    pub async fn compact(&self, name: &str) -> Result<()> {
        let Some(table) = self.table(name).await? else {
            return Ok(());
        };
        let files = table.get_file_uris().map(|f| f.count()).unwrap_or(0);
        if files < 64 {
            return Ok(());
        }
        // Maintenance, shared by every pipeline writing to these tables: it never fails a run
        // (a concurrent commit wins, and compaction waits for the next run), and vacuum keeps the
        // files of the last hour, which a pipeline committing right now may still be adding.
        let table = match table.optimize().await {
            Ok((table, _)) => table,
            Err(e) => {
                tracing::info!(table = name, error = %e, "compaction left for a later run");
                return Ok(());
            }
        };
        if let Err(e) = table
            .vacuum()
            .with_retention_period(chrono::Duration::hours(1))
            .with_enforce_retention_duration(false)
            .await
        {
            tracing::info!(table = name, error = %e, "vacuum left for a later run");
        }
        Ok(())
    }
}

/// Whether a Delta commit failed only because another writer committed first (by the error's
/// variant: delta-rs says "a concurrent transaction added new data", "deleted data", a version
/// already taken, without always saying "conflict"). Made again on top of it, it succeeds.
fn lost_a_race(e: &deltalake::DeltaTableError) -> bool {
    use deltalake::DeltaTableError as E;
    matches!(e, E::Transaction { .. } | E::VersionAlreadyExists(_))
        || e.to_string().to_lowercase().contains("conflict")
}

/// A text column of a bookkeeping table, whatever string layout the reader chose (Utf8 or Utf8View).
pub fn strings(batch: &RecordBatch, name: &str) -> arrow::array::StringArray {
    let column = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("bookkeeping column {name}"));
    let plain = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)
        .expect("text columns cast to Utf8");
    plain.as_string::<i32>().clone()
}

/// Row counts a resumed run inherits from its earlier attempts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub read: u64,
    pub written: u64,
    pub skipped: u64,
    pub rejected: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn one_row(id: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![id]))]).unwrap()
    }

    /// Two pipelines share the bookkeeping folder; one compacts a table while the other replaces rows
    /// in it. Every commit lands, none fails (a replace that lost the race to a compaction failed with
    /// "a concurrent transaction added new data", which was not retried), and no row is lost or
    /// doubled by the compaction.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compaction_never_fails_a_concurrent_pipelines_commit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let a = Book::open(root, "a").await.unwrap();
        let b = Book::open(root, "b").await.unwrap();
        for id in 0..70 {
            a.append("shared", vec![one_row(id)]).await.unwrap();
        }
        let writer = tokio::spawn({
            let b = b.clone();
            async move {
                // Replacing rows (as state and history do) reads the files compaction replaces.
                for id in (0..20).chain(70..110) {
                    b.replace("shared", col("id").eq(lit(id)), one_row(id))
                        .await?;
                }
                Ok::<_, ConnectorError>(())
            }
        });
        for _ in 0..3 {
            a.compact("shared").await.unwrap();
        }
        writer.await.unwrap().unwrap();
        a.compact("shared").await.unwrap();
        let files = a.table("shared").await.unwrap().unwrap();
        let files = files.get_file_uris().unwrap().count();
        // 130 commits' files without compaction; it compacts from 64 files on.
        assert!(files < 64, "compaction ran: {files} files left");
        let ctx = SessionContext::new();
        let table = a.table("shared").await.unwrap().unwrap();
        let ids = ctx
            .read_table(table.table_provider().await.unwrap())
            .unwrap()
            .sort(vec![col("id").sort(true, false)])
            .unwrap()
            .collect()
            .await
            .unwrap();
        let ids: Vec<i64> = ids
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, (0..110).collect::<Vec<_>>());
    }
}
