//! The contract every target implements, whatever it is: a SQL database, a file, a REST service.
//!
//! ```text
//!   check(schema)            validate: what would go wrong, nothing written
//!   begin(schema, resume)    create the table, prepare staging (kept when resuming); once per run
//!   write(batch)  x N        concurrently from every worker; each call commits its batch or nothing
//!   finish()                 after every batch succeeded: swap (truncate), delete (sync), commit (files)
//!   abort()                  after a failure: leave the target as it was before the run
//! ```
//!
//! The four write modes mean the same for every sink (see docs/ARCHITECTURE.md).

use std::fmt;
use std::str::FromStr;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::error::{ConnectorError, Result};

/// How rows reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteMode {
    /// Insert new rows; rows whose key already exists are skipped, not failed.
    Insert,
    /// Insert or update by key.
    Upsert,
    /// Replace the whole table atomically: readers see the old rows or the new ones, never an empty table.
    Truncate,
    /// Upsert, then delete the rows whose key the source no longer has (only after everything succeeded).
    Sync,
}

impl WriteMode {
    pub const ALL: [&'static str; 4] = ["insert", "upsert", "truncate", "sync"];

    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Insert => "insert",
            WriteMode::Upsert => "upsert",
            WriteMode::Truncate => "truncate",
            WriteMode::Sync => "sync",
        }
    }

    /// Upsert and sync cannot work without a key.
    pub fn needs_key(self) -> bool {
        matches!(self, WriteMode::Upsert | WriteMode::Sync)
    }
}

impl fmt::Display for WriteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WriteMode {
    type Err = ConnectorError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "insert" => Ok(WriteMode::Insert),
            "upsert" => Ok(WriteMode::Upsert),
            "truncate" => Ok(WriteMode::Truncate),
            "sync" => Ok(WriteMode::Sync),
            other => Err(
                ConnectorError::fatal(format!("unknown write mode \"{other}\""))
                    .with_hint(format!("write one of: {}", WriteMode::ALL.join(", "))),
            ),
        }
    }
}

/// What the user asked of the target table, independent of where it lives.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    pub table: String,
    pub mode: WriteMode,
    pub key: Vec<String>,
    /// Create the table from the result's schema when it is missing.
    pub create: bool,
}

/// What one `write` call did.
#[derive(Debug, Clone, Default)]
pub struct BatchWritten {
    /// Rows inserted or updated.
    pub written: u64,
    /// Rows not written because their key already existed (insert mode).
    pub skipped: u64,
    /// Rows the target refused one by one while the others landed (a service answering each record
    /// of a batch on its own), by index in the batch, with the target's error.
    pub rejected: Vec<(usize, ConnectorError)>,
    /// Requests or parts of requests the target throttled (HTTP 429) and that were sent again.
    pub throttled: u64,
}

impl std::ops::AddAssign for BatchWritten {
    fn add_assign(&mut self, other: Self) {
        self.written += other.written;
        self.skipped += other.skipped;
        self.rejected.extend(other.rejected);
        self.throttled += other.throttled;
    }
}

/// What `finish` did beyond the batches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finished {
    /// Rows deleted by sync because the source no longer had their key.
    pub deleted: u64,
}

/// Whether a resumed run can skip the batches its log records as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// What the earlier attempt wrote is still there: logged batches can be skipped.
    Intact,
    /// The earlier attempt's work is gone (or already finished, or files start over): write every batch.
    Lost,
}

/// Which run a `begin` starts or resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The run's id: the same for every attempt of one run.
    pub run_id: String,
    /// An earlier attempt of this run died: what it left may be kept.
    pub resume: bool,
}

/// A place rows are written to.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Where the rows go, for people: "sqlite out/warehouse.db, table order_summary".
    fn describe(&self) -> String;

    /// Every reason the run would fail against this target, found without writing anything.
    async fn check(&self, schema: &SchemaRef) -> Result<Vec<ConnectorError>>;

    /// Creates the table when asked to and prepares staging; called once before any `write`.
    /// When the attempt resumes a run, staging left by an earlier attempt of it is kept, not dropped.
    async fn begin(&self, schema: SchemaRef, attempt: &Attempt) -> Result<Resume>;

    /// Whether writing the same batch twice leaves the target as writing it once (keyed writes, or
    /// files that are replaced whole). When false, a run that dies may write some rows twice.
    fn exactly_once(&self) -> bool;

    /// Writes one batch, all of it or none of it. Called concurrently by the workers.
    async fn write(&self, batch: RecordBatch) -> Result<BatchWritten>;

    /// Sync only: remembers the keys of source rows that did not land (refused by the target, or
    /// still failing after every retry), so that `finish` deletes exactly the keys absent from the
    /// source and never the existing row of a key whose update was refused. A key the target could
    /// not hold at all (too long for its column) is a data error for its row: it cannot be in the
    /// table either. Called before the batch is logged; other modes ignore it.
    async fn keep_keys(&self, rows: RecordBatch) -> Result<()> {
        let _ = rows;
        Ok(())
    }

    /// Completes the run once every batch has been written.
    async fn finish(&self) -> Result<Finished>;

    /// Undoes what `begin` prepared after a failed run; the target keeps the rows it had.
    async fn abort(&self);

    /// The tables (entity sets) the target's rows point to: lookups, foreign keys. A load of
    /// several tables writes these first. Empty when the target does not say.
    async fn references(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// What the run's summary should say about how the rows went in: a slower path the target
    /// forced, and how to lift it. Read once the run is over.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// With `create = true`: the statement that creates the table when it is missing, for
    /// `ferry validate` to show; `None` for targets that create nothing from a statement.
    fn planned_ddl(&self, _schema: &SchemaRef) -> Option<Result<String>> {
        None
    }
}
