//! Delta tables as sources (delta-rs's table provider) and as targets.
//!
//! ```text
//! workers ──write(batch)──▶ channel ──▶ StreamingTable ──▶ delta-rs WriteBuilder (one task)
//!                                                             │ parquet files written as rows arrive
//! finish(): close channel ─────────────────────────────────▶ │ one commit: Append or Overwrite
//! abort():  drop channel with an error ────────────────────▶ no commit, the table is unchanged
//! ```
//!
//! Delta has no unsigned integers: UInt8, UInt16 and UInt32 columns are written as the next wider
//! signed type and UInt64 as decimal(20,0), so that every value keeps its number (delta-rs would
//! store a UInt32 as a 4-byte `integer` that 4294967295 does not fit).
//!
//! delta-rs creates the table when missing, and commits once, so a reader sees all of a run or none.
//! The commit carries a Delta transaction identifier (`txn`: app id `ferry/<run id>`, version 1): a
//! run killed after its commit but before its history row sees its own commit when it resumes, and
//! writes nothing again (an append would otherwise land twice).

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;
use deltalake::protocol::SaveMode;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{ConnectorError, Result};
use crate::sink::{Attempt, BatchWritten, Finished, Resume, Sink, WriteMode};

/// Registers the Delta table at `location` as the table `name`.
pub async fn register_source(ctx: &SessionContext, name: &str, location: &str) -> Result<()> {
    let url = super::stores::delta_url(location)?;
    let table = deltalake::open_table(url).await.map_err(|e| {
        ConnectorError::fatal(format!("{location} is not a readable Delta table: {e}"))
    })?;
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    ctx.register_table(name, provider)?;
    Ok(())
}

type BatchSender = mpsc::Sender<std::result::Result<RecordBatch, DataFusionError>>;

/// A Delta table target: `truncate` overwrites it, `insert` appends to it.
pub struct DeltaSink {
    location: String,
    mode: WriteMode,
    running: Mutex<Option<Running>>,
    /// An earlier attempt of this run already committed: batches are counted, not written again.
    committed: std::sync::atomic::AtomicBool,
}

/// The version a run's commit records under its app id.
const TXN_VERSION: i64 = 1;

/// The Delta transaction app id of a run.
fn txn_app_id(run_id: &str) -> String {
    format!("ferry/{run_id}")
}

struct Running {
    sender: BatchSender,
    writer: JoinHandle<Result<()>>,
}

impl DeltaSink {
    pub fn new(location: String, mode: WriteMode) -> Self {
        Self {
            location,
            mode,
            running: Mutex::new(None),
            committed: Default::default(),
        }
    }

    fn sender(&self) -> Result<BatchSender> {
        self.running
            .lock()
            .expect("delta sink lock")
            .as_ref()
            .map(|r| r.sender.clone())
            .ok_or_else(|| ConnectorError::fatal("write before begin"))
    }
}

#[async_trait]
impl Sink for DeltaSink {
    fn describe(&self) -> String {
        format!("delta table {}", self.location)
    }

    async fn check(&self, _schema: &SchemaRef) -> Result<Vec<ConnectorError>> {
        // The pipeline checker reports it at the mode line; this guards every other caller.
        Ok(
            crate::connector::mode_refused(&super::connector::Delta, self.mode)
                .into_iter()
                .collect(),
        )
    }

    fn exactly_once(&self) -> bool {
        true
    }

    /// Nothing is committed before `finish`, so every attempt writes everything.
    async fn begin(&self, schema: SchemaRef, attempt: &Attempt) -> Result<Resume> {
        if let Some(first) = self.check(&schema).await?.into_iter().next() {
            return Err(first);
        }
        let schema = widened_schema(&schema);
        let url = super::stores::delta_url(&self.location)?;
        let mut table = DeltaTable::try_from_url(url).await?;
        let app_id = txn_app_id(&attempt.run_id);
        if attempt.resume && table.load().await.is_ok() {
            let version = table
                .snapshot()?
                .transaction_version(table.log_store().as_ref(), &app_id)
                .await?;
            if version == Some(TXN_VERSION) {
                tracing::warn!(table = %self.location, run = %attempt.run_id, "this run's rows were already committed to the Delta table: nothing is written again");
                self.committed
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                return Ok(Resume::Lost);
            }
        }
        let (sender, receiver) = mpsc::channel(4);
        let input = Arc::new(ChannelStream {
            schema: schema.clone(),
            receiver: Mutex::new(Some(receiver)),
        });
        let provider = StreamingTable::try_new(schema, vec![input])?;
        let plan = LogicalPlanBuilder::scan(
            "ferry_input",
            datafusion::datasource::provider_as_source(Arc::new(provider)),
            None,
        )?
        .build()?;
        let save_mode = match self.mode {
            WriteMode::Truncate => SaveMode::Overwrite,
            _ => SaveMode::Append,
        };
        let location = self.location.clone();
        let writer = tokio::spawn(async move {
            let txn = deltalake::kernel::Transaction::new(app_id, TXN_VERSION);
            table
                .write(Vec::new())
                .with_input_plan(plan)
                .with_save_mode(save_mode)
                .with_commit_properties(
                    deltalake::kernel::transaction::CommitProperties::default()
                        .with_application_transaction(txn),
                )
                .await
                .map(|_| ())
                .map_err(|e| ConnectorError::fatal(format!("writing Delta table {location}: {e}")))
        });
        *self.running.lock().expect("delta sink lock") = Some(Running { sender, writer });
        Ok(Resume::Lost)
    }

    async fn write(&self, batch: RecordBatch) -> Result<BatchWritten> {
        let rows = batch.num_rows() as u64;
        if self.committed.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(BatchWritten {
                written: rows,
                ..Default::default()
            });
        }
        self.sender()?
            .send(Ok(widened(batch)?))
            .await
            .map_err(|_| {
                ConnectorError::fatal(format!(
                    "the Delta writer for {} stopped; see the error that follows",
                    self.location
                ))
            })?;
        Ok(BatchWritten {
            written: rows,
            ..Default::default()
        })
    }

    async fn finish(&self) -> Result<Finished> {
        if self.committed.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(Finished::default());
        }
        let running = self.running.lock().expect("delta sink lock").take();
        let Some(Running { sender, writer }) = running else {
            return Err(ConnectorError::fatal("finish before begin"));
        };
        drop(sender);
        writer
            .await
            .map_err(|e| ConnectorError::fatal(format!("Delta writer stopped: {e}")))??;
        Ok(Finished::default())
    }

    async fn abort(&self) {
        let running = self.running.lock().expect("delta sink lock").take();
        if let Some(Running { sender, writer }) = running {
            let _ = sender
                .send(Err(DataFusionError::Execution("run aborted".into())))
                .await;
            drop(sender);
            let _ = writer.await;
        }
    }
}

/// The type Delta stores an Arrow type as, when it is not the same (unsigned integers).
fn delta_type(t: &DataType) -> Option<DataType> {
    Some(match t {
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 => DataType::Int64,
        DataType::UInt64 => DataType::Decimal128(20, 0),
        _ => return None,
    })
}

fn widened_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match delta_type(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with its unsigned columns widened to the types Delta stores them as.
fn widened(batch: RecordBatch) -> Result<RecordBatch> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| delta_type(f.data_type()).is_some())
    {
        return Ok(batch);
    }
    let schema = widened_schema(&batch.schema());
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The receiving end of the workers' channel, as the one partition of a streaming table.
struct ChannelStream {
    schema: SchemaRef,
    receiver: Mutex<Option<mpsc::Receiver<std::result::Result<RecordBatch, DataFusionError>>>>,
}

impl fmt::Debug for ChannelStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChannelStream")
    }
}

impl PartitionStream for ChannelStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let receiver = self.receiver.lock().expect("channel lock").take();
        let stream = futures::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            let next = receiver.recv().await?;
            Some((next, Some(receiver)))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}
