//! The workers: one tokio task per partition, each cutting its stream into batches of `batch_size`.
//! For every batch a worker
//!
//! 1. skips it if a resumed run's log records the same batch (same place, same content) as written;
//! 2. writes it, retrying what the sink calls retryable with backoff;
//! 3. on a data error, splits it until the offending rows are isolated: the good rows land once, the
//!    bad ones go to quarantine with the target's message and a cause;
//! 4. hands the batch's log row to the recorder.
//!
//! The first fatal error, or `max_consecutive_failures` rejected rows in a row, stops every worker.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::compute::BatchCoalescer;
use arrow::record_batch::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use ferry_connectors::failpoint::pause_point;
use ferry_connectors::{BatchWritten, ConnectorError, ErrorClass, Sink};
use futures::StreamExt;
use tokio::task::JoinSet;

use super::isolate::isolate;
use super::progress::Progress;
use super::report::RunReport;
use crate::book::recorder::Recorder;
use crate::book::tables::{LogRow, Rejection, quarantine_batch, severity};
use crate::book::{BatchKey, Totals};

/// What every worker of one run shares.
pub struct WorkerConfig {
    pub batch_size: usize,
    pub max_retries: u32,
    pub max_consecutive_failures: u64,
    /// The target's name in the log and for `quarantine/<table_name>`.
    pub table_name: String,
    pub pipeline: String,
    pub run_id: String,
    pub attempt: i32,
    /// Batches an earlier attempt of this run wrote, with the rows each accounted for.
    pub done: HashMap<BatchKey, Totals>,
}

/// Totals shared by every worker.
#[derive(Default)]
pub struct Counters {
    read: AtomicU64,
    /// The rows the sources gave, when every source counts them (u64::MAX: not known).
    source_rows: AtomicU64,
    written: AtomicU64,
    skipped: AtomicU64,
    rejected: AtomicU64,
    resumed: AtomicU64,
    batches: AtomicU64,
    retries: AtomicU64,
    consecutive_rejects: AtomicU64,
    /// (partition, batch) of the batches skipped because an earlier attempt wrote them.
    skipped_batches: std::sync::Mutex<HashSet<(i32, i32)>>,
}

impl Counters {
    /// The rows this process wrote.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// The run's totals as every process that shared it logged them (a spread run).
    pub fn set_run_totals(&self, (totals, batches): &(Totals, u64)) {
        self.batches.store(*batches, Ordering::Relaxed);
        self.read.store(totals.read, Ordering::Relaxed);
        self.written.store(totals.written, Ordering::Relaxed);
        self.skipped.store(totals.skipped, Ordering::Relaxed);
        self.rejected.store(totals.rejected, Ordering::Relaxed);
        self.resumed.store(0, Ordering::Relaxed);
        self.source_rows.store(0, Ordering::Relaxed);
    }

    /// Counts what an earlier attempt did for a batch this attempt skips.
    fn inherit(&self, batch: (i32, i32), earlier: &Totals) {
        self.written.fetch_add(earlier.written, Ordering::Relaxed);
        self.skipped.fetch_add(earlier.skipped, Ordering::Relaxed);
        self.rejected.fetch_add(earlier.rejected, Ordering::Relaxed);
        self.skipped_batches
            .lock()
            .expect("skipped batches")
            .insert(batch);
    }

    /// (partition, batch) of every batch skipped because an earlier attempt wrote it.
    pub fn skipped_batches(&self) -> HashSet<(i32, i32)> {
        self.skipped_batches
            .lock()
            .expect("skipped batches")
            .clone()
    }

    /// The rows the sources gave, once the plan has run (`None`: a source does not count them).
    pub fn set_source_rows(&self, rows: Option<u64>) {
        self.source_rows
            .store(rows.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Adds the rows one more execution's sources gave (a spread run executes a plan per pass).
    pub fn add_source_rows(&self, rows: Option<u64>) {
        let _ = self
            .source_rows
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
                Some(match (sum, rows) {
                    (u64::MAX, _) | (_, None) => u64::MAX,
                    (sum, Some(rows)) => sum.saturating_add(rows).min(u64::MAX - 1),
                })
            });
    }

    /// The rows this process's sources gave, if every source counted them.
    pub fn source_rows(&self) -> Option<u64> {
        match self.source_rows.load(Ordering::Relaxed) {
            u64::MAX => None,
            rows => Some(rows),
        }
    }

    pub fn fill(&self, report: &mut RunReport) {
        report.rows_out = self.read.load(Ordering::Relaxed);
        report.rows_read = match self.source_rows.load(Ordering::Relaxed) {
            // Not counted (or the plan never ran): the rows the last step gave.
            0 | u64::MAX => report.rows_out,
            rows => rows,
        };
        report.rows_written = self.written.load(Ordering::Relaxed);
        report.rows_skipped = self.skipped.load(Ordering::Relaxed);
        report.rows_rejected = self.rejected.load(Ordering::Relaxed);
        report.rows_resumed = self.resumed.load(Ordering::Relaxed);
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
    recorder: Recorder,
) -> Result<(), ConnectorError> {
    let numbered = streams.into_iter().enumerate().collect();
    run_partitions(numbered, sink, config, counters, progress, recorder).await
}

/// Like [`run_all`], for some of the partitions only: (partition, its stream).
pub async fn run_partitions(
    streams: Vec<(usize, SendableRecordBatchStream)>,
    sink: Arc<dyn Sink>,
    config: WorkerConfig,
    counters: Arc<Counters>,
    progress: Progress,
    recorder: Recorder,
) -> Result<(), ConnectorError> {
    let config = Arc::new(config);
    let mut tasks = JoinSet::new();
    for (partition, stream) in streams {
        let worker = Worker {
            partition: partition as i32,
            sink: sink.clone(),
            config: config.clone(),
            counters: counters.clone(),
            progress: progress.clone(),
            recorder: recorder.clone(),
            batch_retries: AtomicU64::new(0),
            batch_throttled: AtomicU64::new(0),
        };
        tasks.spawn(worker.run(stream));
    }
    drop(recorder);
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
    partition: i32,
    sink: Arc<dyn Sink>,
    config: Arc<WorkerConfig>,
    counters: Arc<Counters>,
    progress: Progress,
    recorder: Recorder,
    /// The current batch's writes sent again, and those of them the target throttled (429), for
    /// its log row (the dashboard's retries and 429s over time).
    batch_retries: AtomicU64,
    batch_throttled: AtomicU64,
}

impl Worker {
    async fn run(self, mut stream: SendableRecordBatchStream) -> Result<(), ConnectorError> {
        let mut coalescer = BatchCoalescer::new(stream.schema(), self.config.batch_size);
        let mut batch_id = 0i32;
        let mut position = 0i64;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            self.counters
                .read
                .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            coalescer.push_batch(batch)?;
            while let Some(ready) = coalescer.next_completed_batch() {
                let rows = ready.num_rows() as i64;
                self.batch(batch_id, position, ready).await?;
                batch_id += 1;
                position += rows;
            }
        }
        coalescer.finish_buffered_batch()?;
        while let Some(ready) = coalescer.next_completed_batch() {
            let rows = ready.num_rows() as i64;
            self.batch(batch_id, position, ready).await?;
            batch_id += 1;
            position += rows;
        }
        Ok(())
    }

    /// One batch, start to end: skip or write, isolate bad rows, record.
    async fn batch(
        &self,
        batch_id: i32,
        position: i64,
        batch: RecordBatch,
    ) -> Result<(), ConnectorError> {
        let fingerprint = fingerprint(&batch)?;
        let rows = batch.num_rows() as u64;
        if let Some(earlier) = self
            .config
            .done
            .get(&(self.partition, batch_id, fingerprint))
        {
            self.counters.inherit((self.partition, batch_id), earlier);
            self.counters.resumed.fetch_add(rows, Ordering::Relaxed);
            self.progress.add(rows);
            return Ok(());
        }
        let started = Instant::now();
        self.batch_retries.store(0, Ordering::Relaxed);
        self.batch_throttled.store(0, Ordering::Relaxed);
        let mut outcome = self.write_isolating(&batch).await;
        if let Ok((_, rejected)) = &outcome
            && let Err(e) = self.keep_keys(&batch, rejected).await
        {
            outcome = Err(e);
        }
        if let Ok((written, _)) = &outcome {
            self.batch_throttled
                .fetch_add(written.throttled, Ordering::Relaxed);
        }
        let (written, rejected, failure): (BatchWritten, _, _) = match outcome {
            Ok((written, rejected)) => (written, rejected, None),
            Err(e) => (
                BatchWritten::default(),
                Vec::new(),
                Some(self.explain(batch_id, e)),
            ),
        };
        pause_point("batch_written");
        let mut log = LogRow {
            table_name: self.config.table_name.clone(),
            partition_id: self.partition,
            batch_id,
            batch_size: rows as i32,
            write_time: started.elapsed().as_secs_f32(),
            time: chrono::Utc::now(),
            error: None,
            severity: severity::OK,
            cause: None,
            quarantine_table: None,
            pipeline: self.config.pipeline.clone(),
            run_id: self.config.run_id.clone(),
            attempt: self.config.attempt,
            rows_written: written.written as i64,
            rows_skipped: written.skipped as i64,
            rows_rejected: rejected.len() as i64,
            fingerprint,
            retries: self.batch_retries.load(Ordering::Relaxed) as i32,
            throttled: self.batch_throttled.load(Ordering::Relaxed) as i32,
        };
        if let Some(e) = &failure {
            log.error = Some(e.message.clone());
            log.cause = Some(e.cause_text());
            log.severity = severity::BATCH_FAILED;
        } else if let Some((_, first)) = rejected.first() {
            log.error = Some(first.message.clone());
            log.cause = Some(first.cause_text());
            log.severity = severity::ROWS_REJECTED;
            log.quarantine_table = Some(format!("quarantine/{}", self.config.table_name));
            self.quarantine(batch_id, position, &batch, &rejected)
                .await?;
        }
        self.recorder.batch(log).await?;
        if let Some(e) = failure {
            return Err(e);
        }
        self.counters
            .written
            .fetch_add(written.written, Ordering::Relaxed);
        self.counters
            .skipped
            .fetch_add(written.skipped, Ordering::Relaxed);
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.progress.add(rows);
        tracing::debug!(
            partition = self.partition,
            batch = batch_id,
            rows,
            written = written.written,
            skipped = written.skipped,
            rejected = rejected.len(),
            "batch written"
        );
        Ok(())
    }

    /// Writes the batch; on a data error splits it until every bad row is alone, and returns the
    /// bad rows (by index in the batch) with their errors.
    async fn write_isolating(
        &self,
        batch: &RecordBatch,
    ) -> Result<(BatchWritten, Vec<(usize, ConnectorError)>), ConnectorError> {
        isolate(
            batch,
            |slice| async move {
                let done = self.write_retrying(slice).await;
                if done.as_ref().is_ok_and(|d| d.written > 0) {
                    self.counters
                        .consecutive_rejects
                        .store(0, Ordering::Relaxed);
                }
                done
            },
            |e| self.reject_one(e),
            |e| {
                e.context(format!(
                    "still failing after {} retries",
                    self.config.max_retries
                ))
                .with_cause(ferry_connectors::Cause::Unavailable)
            },
        )
        .await
    }

    /// Tells the sink the keys of the rows that did not land, before the batch is logged, so that a
    /// sync never deletes the existing row of a key the source still has. A key the target cannot
    /// hold (a data error for its row) cannot be in the table either and is let go; a target that
    /// cannot be reached stops the run, so that nothing is deleted on incomplete knowledge.
    async fn keep_keys(
        &self,
        batch: &RecordBatch,
        rejected: &[(usize, ConnectorError)],
    ) -> Result<(), ConnectorError> {
        if rejected.is_empty() {
            return Ok(());
        }
        let indices =
            arrow::array::UInt32Array::from_iter_values(rejected.iter().map(|(r, _)| *r as u32));
        let rows = arrow::compute::take_record_batch(batch, &indices)?;
        let (_, unkept) = isolate(
            &rows,
            |slice| self.keep_keys_retrying(slice),
            |_| Ok(()),
            |e| e,
        )
        .await?;
        if let Some((_, e)) = unkept.iter().find(|(_, e)| e.class != ErrorClass::Data) {
            return Err(e.clone().context(
                "the keys of refused rows could not be recorded, so sync cannot delete safely",
            ));
        }
        Ok(())
    }

    async fn keep_keys_retrying(&self, rows: RecordBatch) -> Result<BatchWritten, ConnectorError> {
        let mut attempt = 0;
        loop {
            match self.sink.keep_keys(rows.clone()).await {
                Ok(()) => {
                    return Ok(BatchWritten {
                        written: rows.num_rows() as u64,
                        ..Default::default()
                    });
                }
                Err(e) if e.class == ErrorClass::Retryable && attempt < self.config.max_retries => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Counts one rejected row; too many in a row means something is wrong with all of them.
    fn reject_one(&self, e: &ConnectorError) -> Result<(), ConnectorError> {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        let run = self
            .counters
            .consecutive_rejects
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if run >= self.config.max_consecutive_failures {
            return Err(ConnectorError::fatal(format!(
                "stopped after {run} rejected rows in a row; the last: {}",
                e.message
            ))
            .with_hint("the rows in quarantine show what is wrong; raise max_consecutive_failures under [run] to go on regardless"));
        }
        Ok(())
    }

    async fn write_retrying(&self, batch: RecordBatch) -> Result<BatchWritten, ConnectorError> {
        let mut attempt = 0;
        loop {
            match self.sink.write(batch.clone()).await {
                Ok(done) => return Ok(done),
                Err(e) if e.class == ErrorClass::Retryable && attempt < self.config.max_retries => {
                    attempt += 1;
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    self.batch_retries.fetch_add(1, Ordering::Relaxed);
                    if e.cause == Some(ferry_connectors::Cause::Throttled) {
                        self.batch_throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    let wait = backoff(attempt);
                    tracing::warn!(
                        partition = self.partition,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %e,
                        "batch retried"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn quarantine(
        &self,
        batch_id: i32,
        position: i64,
        batch: &RecordBatch,
        rejected: &[(usize, ConnectorError)],
    ) -> Result<(), ConnectorError> {
        let indices =
            arrow::array::UInt32Array::from_iter_values(rejected.iter().map(|(r, _)| *r as u32));
        let rows = arrow::compute::take_record_batch(batch, &indices)?;
        let now = chrono::Utc::now();
        let meta: Vec<Rejection> = rejected
            .iter()
            .map(|(row, e)| Rejection {
                id: uuid::Uuid::new_v4().to_string(),
                run_id: self.config.run_id.clone(),
                partition: self.partition,
                batch: batch_id,
                row: position + *row as i64,
                error: e.message.clone(),
                cause: e.cause_text(),
                severity: severity::ROWS_REJECTED,
                time: now,
                pipeline: self.config.pipeline.clone(),
            })
            .collect();
        self.recorder
            .rejected(&self.config.table_name, quarantine_batch(&rows, &meta))
            .await
    }

    /// Names the batch in the error. Only fatal errors get here: data errors are isolated and
    /// quarantined, and retryable ones quarantined once their retries are spent.
    fn explain(&self, batch_id: i32, e: ConnectorError) -> ConnectorError {
        e.context(format!("partition {}, batch {}", self.partition, batch_id))
    }
}

/// A hash of every value in the batch: the same rows in the same order give the same number in every
/// process, so a resumed run recognises a batch it already wrote.
fn fingerprint(batch: &RecordBatch) -> Result<i64, ConnectorError> {
    let state = datafusion::common::hash_utils::RandomState::with_seed(0x5EED_F3E7);
    let mut hashes = vec![0u64; batch.num_rows()];
    datafusion::common::hash_utils::create_hashes(batch.columns(), &state, &mut hashes)?;
    let mut acc = batch.num_rows() as u64;
    for (i, h) in hashes.iter().enumerate() {
        acc = acc.rotate_left(5) ^ h.wrapping_add(i as u64);
    }
    Ok(acc as i64)
}

/// Runs a step of the target's own (check, begin, finish) again while it fails for a passing reason
/// (a lost connection, a restarting server), with the same backoff as batches. `f` makes each
/// attempt's future (a closure returning one, not an `async` closure, whose future the compiler
/// cannot prove Send where a worker's task needs it).
pub async fn retrying<T, F>(
    what: &str,
    max_retries: u32,
    f: impl Fn() -> F,
) -> Result<T, ConnectorError>
where
    F: std::future::Future<Output = Result<T, ConnectorError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.class == ErrorClass::Retryable && attempt < max_retries => {
                attempt += 1;
                let wait = backoff(attempt);
                tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %e, "{what} retried");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
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
