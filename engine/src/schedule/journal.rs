//! The scheduler's record of every fire: a Delta table `fires` under the jobs folder's
//! `.ferry/schedule`, one row per fire when it ends (or is skipped), and a `Running` row when a run
//! starts: a `Running` row without its ending row is a run the scheduler died during. The runs themselves keep their
//! own bookkeeping under their pipelines' state dirs, as a run by hand does.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use ferry_connectors::ConnectorError;

use crate::book::Book;

pub const FIRES: &str = "fires";
/// The status of the row written when a run starts.
pub const RUNNING: &str = "Running";

/// One fire of a job, as it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    pub job: String,
    /// schedule | retry | catch-up | manual
    pub trigger: String,
    /// The fire time the run was for.
    pub scheduled: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub ended: DateTime<Utc>,
    /// Completed | Partial Success | Failed | Stopped | Timed Out | Skipped
    pub status: String,
    /// Why it was skipped, or the end of the run's error output.
    pub reason: Option<String>,
    /// 1 for the fire's first run, then one more per retry.
    pub attempt: i32,
    pub exit_code: Option<i32>,
    /// The run's output.
    pub log: Option<String>,
    /// What the run did, from its pipeline's history; `None` for a fire that never ran.
    pub figures: Option<Figures>,
}

impl Fire {
    /// How long its run took; `None` for a fire that never ran.
    pub fn took(&self) -> Option<std::time::Duration> {
        (self.ended - self.started?).to_std().ok()
    }
}

/// A run's id and numbers, as its pipeline's history records them.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub run_id: String,
    pub rows_read: i64,
    pub rows_written: i64,
    pub rows_rejected: i64,
    pub rows_per_second: Option<f64>,
}

fn schema() -> SchemaRef {
    let time = |name: &str, nullable| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            nullable,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("trigger", DataType::Utf8, false),
        time("scheduled", false),
        time("started", true),
        time("ended", false),
        Field::new("status", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, true),
        Field::new("attempt", DataType::Int32, false),
        Field::new("exit_code", DataType::Int32, true),
        Field::new("log", DataType::Utf8, true),
        Field::new("run_id", DataType::Utf8, true),
        Field::new("rows_read", DataType::Int64, true),
        Field::new("rows_written", DataType::Int64, true),
        Field::new("rows_rejected", DataType::Int64, true),
        Field::new("rows_per_second", DataType::Float64, true),
    ]))
}

/// The jobs folder's journal.
#[derive(Debug, Clone)]
pub struct Journal {
    book: Book,
}

impl Journal {
    pub fn new(folder: &std::path::Path) -> Self {
        let root = folder.join(".ferry").join("schedule");
        Self {
            book: Book::reader(&root.to_string_lossy()),
        }
    }

    pub fn root(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(self.book.root())
    }

    pub async fn record(&self, fire: &Fire) -> Result<(), ConnectorError> {
        let micros = |t: &DateTime<Utc>| t.timestamp_micros();
        let stamp = |v: Option<i64>| {
            Arc::new(TimestampMicrosecondArray::from(vec![v]).with_timezone("UTC")) as _
        };
        let count = |take: fn(&Figures) -> i64| fire.figures.as_ref().map(take);
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(vec![fire.job.clone()])),
                Arc::new(StringArray::from(vec![fire.trigger.clone()])),
                stamp(Some(micros(&fire.scheduled))),
                stamp(fire.started.as_ref().map(micros)),
                stamp(Some(micros(&fire.ended))),
                Arc::new(StringArray::from(vec![fire.status.clone()])),
                Arc::new(StringArray::from(vec![fire.reason.clone()])),
                Arc::new(Int32Array::from(vec![fire.attempt])),
                Arc::new(Int32Array::from(vec![fire.exit_code])),
                Arc::new(StringArray::from(vec![fire.log.clone()])),
                Arc::new(StringArray::from(vec![
                    fire.figures.as_ref().map(|f| f.run_id.clone()),
                ])),
                Arc::new(Int64Array::from(vec![count(|f| f.rows_read)])),
                Arc::new(Int64Array::from(vec![count(|f| f.rows_written)])),
                Arc::new(Int64Array::from(vec![count(|f| f.rows_rejected)])),
                Arc::new(Float64Array::from(vec![
                    fire.figures.as_ref().and_then(|f| f.rows_per_second),
                ])),
            ],
        )?;
        self.book.append(FIRES, vec![batch]).await
    }

    /// Merges the journal's small files (one per fire) so that recording stays fast over months
    /// of fires; never fails the scheduler (it is tried again later).
    pub async fn compact(&self) {
        if let Err(e) = self.book.compact(FIRES).await {
            tracing::info!(error = %e, "the journal's compaction is left for later");
        }
    }

    /// Every fire that ended or was skipped, oldest first.
    pub async fn fires(&self) -> Result<Vec<Fire>, ConnectorError> {
        Ok(ended(&self.rows().await?))
    }

    /// Every row, `Running` ones too, oldest first.
    pub async fn rows(&self) -> Result<Vec<Fire>, ConnectorError> {
        let Some(frame) = self.book.frame(FIRES, "job").await? else {
            return Ok(Vec::new());
        };
        let batches = frame.collect().await?;
        let mut out = Vec::new();
        for b in &batches {
            // Delta reads text as string views; cast to plain strings to read them one way.
            let text = |name: &str| crate::book::strings(b, name);
            let time = |name: &str| {
                b.column_by_name(name)
                    .expect("a journal column")
                    .as_primitive::<TimestampMicrosecondType>()
                    .clone()
            };
            let (job, trigger, status, reason, log) = (
                text("job"),
                text("trigger"),
                text("status"),
                text("reason"),
                text("log"),
            );
            let (scheduled, started, ended) = (time("scheduled"), time("started"), time("ended"));
            let attempt = b
                .column_by_name("attempt")
                .expect("attempt")
                .as_primitive::<arrow::datatypes::Int32Type>()
                .clone();
            let exit = b
                .column_by_name("exit_code")
                .expect("exit_code")
                .as_primitive::<arrow::datatypes::Int32Type>()
                .clone();
            // Journals written before runs' figures were kept lack their columns.
            let long = |name: &str| {
                b.column_by_name(name)
                    .map(|c| c.as_primitive::<arrow::datatypes::Int64Type>().clone())
            };
            let run_ids = b.column_by_name("run_id").map(|_| text("run_id"));
            let (read, written, rejected) = (
                long("rows_read"),
                long("rows_written"),
                long("rows_rejected"),
            );
            let speed = b
                .column_by_name("rows_per_second")
                .map(|c| c.as_primitive::<arrow::datatypes::Float64Type>().clone());
            let figures = |i: usize| {
                let run_id = run_ids
                    .as_ref()
                    .filter(|c| c.is_valid(i))?
                    .value(i)
                    .to_string();
                let n = |c: &Option<arrow::array::Int64Array>| {
                    c.as_ref()
                        .filter(|c| c.is_valid(i))
                        .map_or(0, |c| c.value(i))
                };
                Some(Figures {
                    run_id,
                    rows_read: n(&read),
                    rows_written: n(&written),
                    rows_rejected: n(&rejected),
                    rows_per_second: speed.as_ref().filter(|c| c.is_valid(i)).map(|c| c.value(i)),
                })
            };
            let at = |a: &TimestampMicrosecondArray, i: usize| {
                (!a.is_null(i))
                    .then(|| DateTime::from_timestamp_micros(a.value(i)).expect("a time"))
            };
            for i in 0..b.num_rows() {
                out.push(Fire {
                    job: job.value(i).to_string(),
                    trigger: trigger.value(i).to_string(),
                    scheduled: at(&scheduled, i).expect("scheduled"),
                    started: at(&started, i),
                    ended: at(&ended, i).expect("ended"),
                    status: status.value(i).to_string(),
                    reason: (!reason.is_null(i)).then(|| reason.value(i).to_string()),
                    attempt: attempt.value(i),
                    exit_code: (!exit.is_null(i)).then(|| exit.value(i)),
                    log: (!log.is_null(i)).then(|| log.value(i).to_string()),
                    figures: figures(i),
                });
            }
        }
        out.sort_by_key(|f| (f.ended, f.scheduled));
        Ok(out)
    }
}

/// The fires that ended or were skipped, of the journal's `rows`.
pub fn ended(rows: &[Fire]) -> Vec<Fire> {
    rows.iter()
        .filter(|f| f.status != RUNNING)
        .cloned()
        .collect()
}

/// Runs that started and never ended, of the journal's `rows`: the scheduler died while they ran.
pub fn interrupted(rows: &[Fire]) -> Vec<Fire> {
    let same =
        |a: &Fire, b: &Fire| a.job == b.job && a.scheduled == b.scheduled && a.attempt == b.attempt;
    rows.iter()
        .filter(|r| r.status == RUNNING)
        .filter(|r| !rows.iter().any(|e| e.status != RUNNING && same(e, r)))
        .cloned()
        .collect()
}

/// The latest fire time each job ran, started or skipped (retries included), for catching up.
pub fn last_fires(rows: &[Fire]) -> HashMap<String, DateTime<Utc>> {
    let mut last: HashMap<String, DateTime<Utc>> = HashMap::new();
    for fire in rows.iter().filter(|f| f.trigger != "manual") {
        let entry = last.entry(fire.job.clone()).or_insert(fire.scheduled);
        *entry = (*entry).max(fire.scheduled);
    }
    last
}
