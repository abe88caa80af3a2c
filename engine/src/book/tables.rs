//! The bookkeeping tables' columns, in one place, so that every writer and reader agrees on them.
//! Column names and types follow the DDU log and state tables (see shared/seeds/001), plus Ferry's own.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Severity of a log row: what happened to the batch.
pub mod severity {
    /// Every row landed (or was skipped because its key exists).
    pub const OK: i32 = 0;
    /// Some rows were rejected and quarantined; the others landed.
    pub const ROWS_REJECTED: i32 = 2;
    /// The batch did not land at all.
    pub const BATCH_FAILED: i32 = 3;
}

/// One row of `log`: one batch.
#[derive(Debug, Clone)]
pub struct LogRow {
    pub table_name: String,
    pub partition_id: i32,
    pub batch_id: i32,
    pub batch_size: i32,
    /// Seconds spent writing the batch.
    pub write_time: f32,
    pub time: DateTime<Utc>,
    pub error: Option<String>,
    pub severity: i32,
    pub cause: Option<String>,
    pub quarantine_table: Option<String>,
    pub pipeline: String,
    pub run_id: String,
    pub attempt: i32,
    pub rows_written: i64,
    pub rows_skipped: i64,
    pub rows_rejected: i64,
    /// A hash of the batch's content: a resumed run skips a batch only if it is the same batch.
    pub fingerprint: i64,
    /// Writes of the batch sent again after a passing fault (empty in logs older than the column).
    pub retries: i32,
    /// Requests or parts the target throttled (HTTP 429) while the batch was written.
    pub throttled: i32,
}

pub fn log_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("partition_id", DataType::Int32, false),
        Field::new("batch_id", DataType::Int32, false),
        Field::new("batch_size", DataType::Int32, false),
        Field::new("write_time", DataType::Float32, false),
        Field::new("time", ts(), false),
        Field::new("error", DataType::Utf8, true),
        Field::new("severity", DataType::Int32, false),
        Field::new("cause", DataType::Utf8, true),
        Field::new("quarantine_table", DataType::Utf8, true),
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("attempt", DataType::Int32, false),
        Field::new("rows_written", DataType::Int64, false),
        Field::new("rows_skipped", DataType::Int64, false),
        Field::new("rows_rejected", DataType::Int64, false),
        Field::new("fingerprint", DataType::Int64, false),
        // Added after the first logs were written: nullable, so older tables merge.
        Field::new("retries", DataType::Int32, true),
        Field::new("throttled", DataType::Int32, true),
    ]))
}

pub fn log_batch(rows: &[LogRow]) -> RecordBatch {
    let col = |f: &dyn Fn(&LogRow) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let int = |f: &dyn Fn(&LogRow) -> i32| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Int32Array>())
    };
    let long = |f: &dyn Fn(&LogRow) -> i64| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<Int64Array>())
    };
    let columns: Vec<ArrayRef> = vec![
        col(&|r| Some(r.table_name.clone())),
        int(&|r| r.partition_id),
        int(&|r| r.batch_id),
        int(&|r| r.batch_size),
        Arc::new(rows.iter().map(|r| r.write_time).collect::<Float32Array>()),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| micros(&r.time)))
                .with_timezone("UTC"),
        ),
        col(&|r| r.error.clone()),
        int(&|r| r.severity),
        col(&|r| r.cause.clone()),
        col(&|r| r.quarantine_table.clone()),
        col(&|r| Some(r.pipeline.clone())),
        col(&|r| Some(r.run_id.clone())),
        int(&|r| r.attempt),
        long(&|r| r.rows_written),
        long(&|r| r.rows_skipped),
        long(&|r| r.rows_rejected),
        long(&|r| r.fingerprint),
        int(&|r| r.retries),
        int(&|r| r.throttled),
    ];
    RecordBatch::try_new(log_schema(), columns).expect("log columns match the schema")
}

/// One row of `history`: one run (rewritten as the run goes from Running to its end).
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub run_id: String,
    pub pipeline: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub status: String,
    pub rows_read: i64,
    pub rows_written: i64,
    pub rows_rejected: i64,
    pub rows_per_second: Option<f64>,
    pub attempt: i32,
    pub error: Option<String>,
    /// What the run writes: a hash of the pipeline file and of the target (URL without secrets,
    /// table). A run is resumed only by an attempt with the same identity.
    pub identity: Option<String>,
}

pub fn history_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("start", ts(), false),
        Field::new("end", ts(), true),
        Field::new("duration", DataType::Float64, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("rows_written", DataType::Int64, false),
        Field::new("rows_rejected", DataType::Int64, false),
        Field::new("rows_per_second", DataType::Float64, true),
        Field::new("attempt", DataType::Int32, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("identity", DataType::Utf8, true),
    ]))
}

pub fn history_batch(r: &HistoryRow) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![r.run_id.clone()])),
        Arc::new(StringArray::from(vec![r.pipeline.clone()])),
        Arc::new(TimestampMicrosecondArray::from(vec![micros(&r.start)]).with_timezone("UTC")),
        Arc::new(
            TimestampMicrosecondArray::from(vec![r.end.as_ref().map(micros)]).with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from(vec![r.duration])),
        Arc::new(StringArray::from(vec![r.status.clone()])),
        Arc::new(Int64Array::from(vec![r.rows_read])),
        Arc::new(Int64Array::from(vec![r.rows_written])),
        Arc::new(Int64Array::from(vec![r.rows_rejected])),
        Arc::new(Float64Array::from(vec![r.rows_per_second])),
        Arc::new(Int32Array::from(vec![r.attempt])),
        Arc::new(StringArray::from(vec![r.error.clone()])),
        Arc::new(StringArray::from(vec![r.identity.clone()])),
    ];
    RecordBatch::try_new(history_schema(), columns).expect("history columns match the schema")
}

/// One row of `state`: one target table of one pipeline.
#[derive(Debug, Clone)]
pub struct StateRow {
    /// The order tables are migrated in (first run of a table gets the next number).
    pub id: i32,
    pub table_name: String,
    /// Rows the last run had to migrate.
    pub records: i64,
    /// Whether the last run finished and passed every validation check: the target's checks before
    /// writing (`[run] validate`) and every row landed.
    pub validated: bool,
    pub workers: i32,
    pub status: String,
    pub rows_written: i64,
    pub rows_rejected: i64,
    pub updated_at: DateTime<Utc>,
    pub pipeline: String,
}

pub fn state_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("records", DataType::Int64, false),
        Field::new("validated", DataType::Boolean, false),
        Field::new("workers", DataType::Int32, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows_written", DataType::Int64, false),
        Field::new("rows_rejected", DataType::Int64, false),
        Field::new("updated_at", ts(), false),
        Field::new("pipeline", DataType::Utf8, false),
    ]))
}

pub fn state_batch(r: &StateRow) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![r.id])),
        Arc::new(StringArray::from(vec![r.table_name.clone()])),
        Arc::new(Int64Array::from(vec![r.records])),
        Arc::new(BooleanArray::from(vec![r.validated])),
        Arc::new(Int32Array::from(vec![r.workers])),
        Arc::new(StringArray::from(vec![r.status.clone()])),
        Arc::new(Int64Array::from(vec![r.rows_written])),
        Arc::new(Int64Array::from(vec![r.rows_rejected])),
        Arc::new(TimestampMicrosecondArray::from(vec![micros(&r.updated_at)]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![r.pipeline.clone()])),
    ];
    RecordBatch::try_new(state_schema(), columns).expect("state columns match the schema")
}

/// The columns Ferry adds to a rejected row in `quarantine/<table>`.
pub fn quarantine_fields() -> Vec<Field> {
    vec![
        Field::new("_ferry_id", DataType::Utf8, false),
        Field::new("_ferry_run_id", DataType::Utf8, false),
        Field::new("_ferry_partition", DataType::Int32, false),
        Field::new("_ferry_batch", DataType::Int32, false),
        Field::new("_ferry_row", DataType::Int64, false),
        Field::new("_ferry_error", DataType::Utf8, false),
        Field::new("_ferry_cause", DataType::Utf8, false),
        Field::new("_ferry_severity", DataType::Int32, false),
        Field::new("_ferry_time", ts(), false),
        Field::new("_ferry_resolved", DataType::Boolean, false),
        Field::new("_ferry_pipeline", DataType::Utf8, false),
    ]
}

/// Whether a quarantine column is one of Ferry's (a user's own column may start with `_ferry_` too).
pub fn is_quarantine_field(name: &str) -> bool {
    quarantine_fields().iter().any(|f| f.name() == name)
}

/// One rejected row's bookkeeping (its data columns travel beside it).
#[derive(Debug, Clone)]
pub struct Rejection {
    pub id: String,
    pub run_id: String,
    pub partition: i32,
    pub batch: i32,
    /// Position of the row in its partition's stream.
    pub row: i64,
    pub error: String,
    pub cause: String,
    pub severity: i32,
    pub time: DateTime<Utc>,
    pub pipeline: String,
}

/// The rejected rows' data (`rows`, the target's columns) with Ferry's columns appended.
pub fn quarantine_batch(rows: &RecordBatch, meta: &[Rejection]) -> RecordBatch {
    let mut fields: Vec<Field> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.extend(quarantine_fields());
    let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
    let s = |f: &dyn Fn(&Rejection) -> String| -> ArrayRef {
        Arc::new(meta.iter().map(|m| Some(f(m))).collect::<StringArray>())
    };
    columns.extend([
        s(&|m| m.id.clone()),
        s(&|m| m.run_id.clone()),
        Arc::new(meta.iter().map(|m| m.partition).collect::<Int32Array>()) as ArrayRef,
        Arc::new(meta.iter().map(|m| m.batch).collect::<Int32Array>()),
        Arc::new(meta.iter().map(|m| m.row).collect::<Int64Array>()),
        s(&|m| m.error.clone()),
        s(&|m| m.cause.clone()),
        Arc::new(meta.iter().map(|m| m.severity).collect::<Int32Array>()),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(meta.iter().map(|m| micros(&m.time)))
                .with_timezone("UTC"),
        ),
        Arc::new(BooleanArray::from(vec![false; meta.len()])),
        s(&|m| m.pipeline.clone()),
    ]);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .expect("quarantine columns match the schema")
}

/// One row of `checkpoints`: an input file an incremental source consumed.
#[derive(Debug, Clone)]
pub struct CheckpointRow {
    pub pipeline: String,
    pub source: String,
    pub path: String,
    pub size: i64,
    pub modified: DateTime<Utc>,
    pub run_id: String,
    /// False while the run that took the file is not finished.
    pub consumed: bool,
    pub time: DateTime<Utc>,
}

pub fn checkpoints_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
        Field::new("size", DataType::Int64, false),
        Field::new("modified", ts(), false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("consumed", DataType::Boolean, false),
        Field::new("time", ts(), false),
    ]))
}

pub fn checkpoints_batch(rows: &[CheckpointRow]) -> RecordBatch {
    let s = |f: &dyn Fn(&CheckpointRow) -> String| -> ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        s(&|r| r.pipeline.clone()),
        s(&|r| r.source.clone()),
        s(&|r| r.path.clone()),
        Arc::new(rows.iter().map(|r| r.size).collect::<Int64Array>()),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| micros(&r.modified)))
                .with_timezone("UTC"),
        ),
        s(&|r| r.run_id.clone()),
        Arc::new(
            rows.iter()
                .map(|r| Some(r.consumed))
                .collect::<BooleanArray>(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| micros(&r.time)))
                .with_timezone("UTC"),
        ),
    ];
    RecordBatch::try_new(checkpoints_schema(), columns)
        .expect("checkpoint columns match the schema")
}
