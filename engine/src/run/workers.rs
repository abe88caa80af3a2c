//! The workers: one tokio task per partition, each cutting its stream into batches of `batch_size` and
//! writing them through the sink, retrying what the sink calls retryable. The first failure stops all.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::compute::BatchCoalescer;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::physical_plan::SendableRecordBatchStream;
use ferry_connectors::{ConnectorError, ErrorClass, Sink};
use futures::StreamExt;
use tokio::task::JoinSet;

use super::progress::Progress;
use super::report::RunReport;

pub struct WorkerConfig {
    pub batch_size: usize,
    pub max_retries: u32,
    pub key: Vec<String>,
}

/// Totals shared by every worker.
#[derive(Default)]
pub struct Counters {
    read: AtomicU64,
    written: AtomicU64,
    skipped: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
}

impl Counters {
    pub fn fill(&self, report: &mut RunReport) {
        report.rows_read = self.read.load(Ordering::Relaxed);
        report.rows_written = self.written.load(Ordering::Relaxed);
        report.rows_skipped = self.skipped.load(Ordering::Relaxed);
        report.batches = self.batches.load(Ordering::Relaxed);
        report.retries = self.retries.load(Ordering::Relaxed);
    }
}

/// Runs one worker per stream until all are done or one fails.
pub async fn run_all(
    streams: Vec<SendableRecordBatchStream>,
    sink: Arc<dyn Sink>,
    config: WorkerConfig,
    counters: Arc<Counters>,
    progress: Progress,
) -> Result<(), ConnectorError> {
    let config = Arc::new(config);
    let mut tasks = JoinSet::new();
    for (partition, stream) in streams.into_iter().enumerate() {
        let worker = Worker {
            partition,
            sink: sink.clone(),
            config: config.clone(),
            counters: counters.clone(),
            progress: progress.clone(),
        };
        tasks.spawn(worker.run(stream));
    }
    while let Some(done) = tasks.join_next().await {
        let result = done.map_err(|e| ConnectorError::fatal(format!("a worker stopped: {e}")));
        if let Err(e) = result.and_then(|r| r) {
            tasks.abort_all();
            return Err(e);
        }
    }
    Ok(())
}

struct Worker {
    partition: usize,
    sink: Arc<dyn Sink>,
    config: Arc<WorkerConfig>,
    counters: Arc<Counters>,
    progress: Progress,
}

impl Worker {
    async fn run(self, mut stream: SendableRecordBatchStream) -> Result<(), ConnectorError> {
        let mut coalescer = BatchCoalescer::new(stream.schema(), self.config.batch_size);
        let mut batch_id = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            self.counters
                .read
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            coalescer.push_batch(batch)?;
            while let Some(ready) = coalescer.next_completed_batch() {
                self.write(batch_id, ready).await?;
                batch_id += 1;
            }
        }
        coalescer.finish_buffered_batch()?;
        while let Some(ready) = coalescer.next_completed_batch() {
            self.write(batch_id, ready).await?;
            batch_id += 1;
        }
        Ok(())
    }

    /// Writes one batch, retrying retryable errors with exponential backoff and jitter.
    async fn write(&self, batch_id: u64, batch: RecordBatch) -> Result<(), ConnectorError> {
        let mut attempt = 0;
        loop {
            match self.sink.write(batch.clone()).await {
                Ok(done) => {
                    self.counters
                        .written
                        .fetch_add(done.written, Ordering::Relaxed);
                    self.counters
                        .skipped
                        .fetch_add(done.skipped, Ordering::Relaxed);
                    self.counters.batches.fetch_add(1, Ordering::Relaxed);
                    self.progress.add(done.written + done.skipped);
                    tracing::debug!(
                        partition = self.partition,
                        batch = batch_id,
                        rows = batch.num_rows(),
                        written = done.written,
                        skipped = done.skipped,
                        "batch written"
                    );
                    return Ok(());
                }
                Err(e) if e.class == ErrorClass::Retryable && attempt < self.config.max_retries => {
                    attempt += 1;
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff(attempt);
                    tracing::warn!(
                        partition = self.partition,
                        batch = batch_id,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %e,
                        "batch retried"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(self.explain(batch_id, &batch, e)),
            }
        }
    }

    /// Names the batch, and for a data error the row and its key, in the error.
    fn explain(&self, batch_id: u64, batch: &RecordBatch, e: ConnectorError) -> ConnectorError {
        let place = format!("partition {}, batch {}", self.partition, batch_id);
        match (e.class, e.row) {
            (ErrorClass::Data, Some(row)) => {
                let shown = describe_row(batch, row, &self.config.key);
                e.context(format!("{place}, row {} ({shown})", row + 1))
                    .with_hint("correct the row in the source or in a step, then run again")
            }
            (ErrorClass::Retryable, _) => e.context(format!(
                "{place}: still failing after {} retries",
                self.config.max_retries
            )),
            _ => e.context(place),
        }
    }
}

/// "customer_id = 42" for a keyed target, otherwise the row's first columns.
fn describe_row(batch: &RecordBatch, row: usize, key: &[String]) -> String {
    let schema = batch.schema();
    let columns: Vec<usize> = if key.is_empty() {
        (0..batch.num_columns().min(3)).collect()
    } else {
        key.iter().filter_map(|k| schema.index_of(k).ok()).collect()
    };
    let options = FormatOptions::default().with_null("NULL");
    columns
        .into_iter()
        .map(|i| {
            let value = ArrayFormatter::try_new(batch.column(i).as_ref(), &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_default();
            format!("{} = {value}", schema.field(i).name())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// 200 ms, 400 ms, 800 ms ... up to 30 s, each with up to a quarter more at random.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(200u64.saturating_mul(1 << attempt.min(8)))
        .min(Duration::from_secs(30));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base + base.mul_f64(f64::from(nanos % 1000) / 4000.0)
}
