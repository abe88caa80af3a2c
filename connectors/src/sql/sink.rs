//! One SQL sink: the algorithm every SQL target follows, written once over a [`Dialect`] that says
//! how its database does each step.
//!
//! ```text
//! check      the key's columns are in the result; dialect.problems: types it can store, the
//!            key's unique index, privileges; nothing written
//! begin      dialect.prepare: the table (create = true), the stage (truncate) or the keys table
//!            (sync), kept when the run resumes; the plan every batch uses
//! write      dialect.encode off the async threads, then dialect.load: one transaction, straight
//!            into the table or through the stage (keyed modes, truncate)
//! keep_keys  sync only: dialect.record_keys of the rows that did not land
//! finish     truncate: dialect.swap (the stage replaces the rows, one transaction);
//!            sync: dialect.delete_missing (one transaction); then dialect.release
//! abort      dialect.release, dialect.drop_helpers: the table keeps the rows it had
//! ```
//!
//! Helper tables are named by one rule for every dialect (`ident::helper_name`).

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::error::{ConnectorError, Result};
use crate::sink::{Attempt, BatchWritten, Finished, Resume, Sink, TargetOptions, WriteMode};
use crate::sql::check;

/// How one database does each step of [`SqlSink`]'s algorithm.
#[async_trait]
pub trait Dialect: Send + Sync + 'static {
    /// What `prepare` learned and every batch uses (statements, column types, the key's index).
    type Plan: Send + Sync + 'static;
    /// A batch encoded for the database's load path (binary COPY, SQL literals, bound values).
    type Rows: Send + 'static;

    fn options(&self) -> &TargetOptions;

    /// Where the rows go, for people: "postgres db.example.com/shop, table orders".
    fn describe(&self) -> String;

    /// Every reason the run would fail, found without writing.
    async fn problems(&self, schema: &SchemaRef) -> Result<Vec<ConnectorError>>;

    /// The CREATE TABLE that `create = true` runs when the table is missing.
    fn create_statement(&self, schema: &SchemaRef) -> Result<String>;

    /// Creates what the run needs; with `resume`, keeps what an earlier attempt of it staged.
    async fn prepare(&self, schema: &SchemaRef, resume: bool) -> Result<(Self::Plan, Resume)>;

    /// Encodes a batch for [`Dialect::load`] (CPU only: called off the async threads).
    fn encode(plan: &Self::Plan, batch: &RecordBatch) -> Result<Self::Rows>;

    /// Writes one encoded batch in one transaction.
    async fn load(&self, plan: &Arc<Self::Plan>, rows: Self::Rows) -> Result<BatchWritten>;

    /// Encodes the rows whose keys sync must keep (CPU only).
    fn encode_keys(plan: &Self::Plan, rows: &RecordBatch) -> Result<Self::Rows>;

    /// Sync: records the keys of rows that did not land, so that `delete_missing` keeps them.
    async fn record_keys(&self, plan: &Arc<Self::Plan>, keys: Self::Rows) -> Result<()>;

    /// Truncate: replaces the table's rows with the stage's, in one transaction.
    async fn swap(&self, plan: &Arc<Self::Plan>) -> Result<()>;

    /// Sync: deletes the rows whose key the run did not record, in one transaction.
    async fn delete_missing(&self, plan: &Arc<Self::Plan>) -> Result<u64>;

    /// Drops the stage and keys tables after a failed run.
    async fn drop_helpers(&self) -> Result<()>;

    /// The tables the target table's foreign keys point to (their names without a schema).
    async fn references(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Lets go of connections once the run is over.
    fn release(&self) {}

    /// What the run's summary should say about how the rows went in (a slower path taken).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A SQL table as a target, over its database's [`Dialect`].
pub struct SqlSink<D: Dialect> {
    dialect: Arc<D>,
    plan: Mutex<Option<Arc<D::Plan>>>,
}

impl<D: Dialect> SqlSink<D> {
    pub fn new(dialect: D) -> Self {
        Self {
            dialect: Arc::new(dialect),
            plan: Mutex::new(None),
        }
    }

    fn plan(&self) -> Result<Arc<D::Plan>> {
        self.plan
            .lock()
            .expect("plan lock")
            .clone()
            .ok_or_else(|| ConnectorError::fatal("write before begin"))
    }

    /// Runs an encoder off the async threads: encoding is the costly CPU part of a write.
    async fn encoded(
        plan: Arc<D::Plan>,
        rows: RecordBatch,
        encode: fn(&D::Plan, &RecordBatch) -> Result<D::Rows>,
    ) -> Result<D::Rows> {
        tokio::task::spawn_blocking(move || encode(&plan, &rows))
            .await
            .map_err(|e| ConnectorError::fatal(format!("encoding a batch stopped: {e}")))?
    }
}

#[async_trait]
impl<D: Dialect> Sink for SqlSink<D> {
    fn describe(&self) -> String {
        self.dialect.describe()
    }

    async fn check(&self, schema: &SchemaRef) -> Result<Vec<ConnectorError>> {
        let mut problems = check::missing_key_columns(schema, &self.dialect.options().key);
        problems.extend(self.dialect.problems(schema).await?);
        Ok(problems)
    }

    fn planned_ddl(&self, schema: &SchemaRef) -> Option<Result<String>> {
        self.dialect
            .options()
            .create
            .then(|| self.dialect.create_statement(schema))
    }

    fn exactly_once(&self) -> bool {
        !self.dialect.options().key.is_empty()
    }

    async fn begin(&self, schema: SchemaRef, attempt: &Attempt) -> Result<Resume> {
        let key = &self.dialect.options().key;
        if let Some(first) = check::missing_key_columns(&schema, key).into_iter().next() {
            return Err(first);
        }
        let (plan, resumed) = self.dialect.prepare(&schema, attempt.resume).await?;
        *self.plan.lock().expect("plan lock") = Some(Arc::new(plan));
        Ok(resumed)
    }

    async fn write(&self, batch: RecordBatch) -> Result<BatchWritten> {
        let plan = self.plan()?;
        let rows = Self::encoded(plan.clone(), batch, D::encode).await?;
        self.dialect.load(&plan, rows).await
    }

    async fn keep_keys(&self, rows: RecordBatch) -> Result<()> {
        if self.dialect.options().mode != WriteMode::Sync {
            return Ok(());
        }
        let plan = self.plan()?;
        let keys = Self::encoded(plan.clone(), rows, D::encode_keys).await?;
        self.dialect.record_keys(&plan, keys).await
    }

    async fn finish(&self) -> Result<Finished> {
        let mut finished = Finished::default();
        match self.dialect.options().mode {
            WriteMode::Truncate => self.dialect.swap(&self.plan()?).await?,
            WriteMode::Sync => {
                finished.deleted = self.dialect.delete_missing(&self.plan()?).await?
            }
            WriteMode::Insert | WriteMode::Upsert => {}
        }
        self.dialect.release();
        Ok(finished)
    }

    fn notes(&self) -> Vec<String> {
        self.dialect.notes()
    }

    async fn references(&self) -> Result<Vec<String>> {
        self.dialect.references().await
    }

    async fn abort(&self) {
        if let Err(e) = self.dialect.drop_helpers().await {
            tracing::warn!(error = %e, target = %self.dialect.describe(), "could not drop the staging tables");
        }
        self.dialect.release();
    }
}

/// Where the key's columns are in the result (matched without case, as SQL folds names).
pub fn key_positions(schema: &SchemaRef, key: &[String]) -> Result<Vec<usize>> {
    key.iter()
        .map(|k| {
            schema
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(k))
                .ok_or_else(|| ConnectorError::fatal(format!("key column \"{k}\" is missing")))
        })
        .collect()
}
