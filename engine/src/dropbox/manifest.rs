//! The manifest: a Delta table of every file the dropbox has seen, one row each time a file's
//! status changes (staged, migrating, done, partial, rejected, superseded, duplicate), so that the
//! latest row per file and content says where it is and the earlier rows say when each step happened.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use chrono::{DateTime, Utc};
use ferry_connectors::ConnectorError;

use crate::book::Book;

const MANIFEST: &str = "manifest";

/// One status of one file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Entry {
    /// The file's name as dropped.
    pub file: String,
    /// SHA-256 of its content.
    pub hash: String,
    pub size: i64,
    pub entity: String,
    /// staged | migrating | done | partial | failed | rejected | superseded | duplicate | waiting
    pub status: String,
    pub at: DateTime<Utc>,
    pub rows_staged: Option<i64>,
    pub rows_written: Option<i64>,
    pub rows_quarantined: Option<i64>,
    pub run_id: Option<String>,
    /// The first error, with its cell or row when known.
    pub error: Option<String>,
    pub archived_to: Option<String>,
    /// The file's options from its delivery's JSON (as JSON), kept for a migration resumed later.
    pub options: Option<String>,
}

fn schema() -> SchemaRef {
    let text = |n: &str, null| Field::new(n, DataType::Utf8, null);
    let long = |n: &str| Field::new(n, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        text("file", false),
        text("hash", false),
        Field::new("size", DataType::Int64, false),
        text("entity", false),
        text("status", false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        long("rows_staged"),
        long("rows_written"),
        long("rows_quarantined"),
        text("run_id", true),
        text("error", true),
        text("archived_to", true),
        text("options", true),
    ]))
}

/// The manifest of a dropbox's work folder.
pub struct Manifest {
    book: Book,
}

impl Manifest {
    pub fn new(work: &std::path::Path) -> Self {
        Self {
            book: Book::reader(&work.to_string_lossy()),
        }
    }

    pub async fn record(&self, e: &Entry) -> Result<(), ConnectorError> {
        let text = |v: &str| Arc::new(StringArray::from(vec![v.to_string()])) as _;
        let maybe = |v: &Option<String>| Arc::new(StringArray::from(vec![v.clone()])) as _;
        let long = |v: Option<i64>| Arc::new(Int64Array::from(vec![v])) as _;
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                text(&e.file),
                text(&e.hash),
                Arc::new(Int64Array::from(vec![e.size])),
                text(&e.entity),
                text(&e.status),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![e.at.timestamp_micros()])
                        .with_timezone("UTC"),
                ),
                long(e.rows_staged),
                long(e.rows_written),
                long(e.rows_quarantined),
                maybe(&e.run_id),
                maybe(&e.error),
                maybe(&e.archived_to),
                maybe(&e.options),
            ],
        )?;
        self.book.append(MANIFEST, vec![batch]).await
    }

    /// Every row, oldest first.
    pub async fn entries(&self) -> Result<Vec<Entry>, ConnectorError> {
        let Some(frame) = self.book.frame(MANIFEST, "file").await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for b in frame.collect().await? {
            let text = |name: &str| crate::book::strings(&b, name);
            let long = |name: &str| {
                b.column_by_name(name)
                    .expect("a manifest column")
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .clone()
            };
            let (file, hash, entity, status) =
                (text("file"), text("hash"), text("entity"), text("status"));
            let (run_id, error, archived, options) = (
                text("run_id"),
                text("error"),
                text("archived_to"),
                text("options"),
            );
            let (size, staged, written, quarantined) = (
                long("size"),
                long("rows_staged"),
                long("rows_written"),
                long("rows_quarantined"),
            );
            let at = b
                .column_by_name("at")
                .expect("at")
                .as_primitive::<TimestampMicrosecondType>()
                .clone();
            let opt_text = |a: &arrow::array::StringArray, i: usize| {
                a.is_valid(i).then(|| a.value(i).to_string())
            };
            let opt_long = |a: &Int64Array, i: usize| a.is_valid(i).then(|| a.value(i));
            for i in 0..b.num_rows() {
                out.push(Entry {
                    file: file.value(i).to_string(),
                    hash: hash.value(i).to_string(),
                    size: size.value(i),
                    entity: entity.value(i).to_string(),
                    status: status.value(i).to_string(),
                    at: DateTime::from_timestamp_micros(at.value(i)).unwrap_or_default(),
                    rows_staged: opt_long(&staged, i),
                    rows_written: opt_long(&written, i),
                    rows_quarantined: opt_long(&quarantined, i),
                    run_id: opt_text(&run_id, i),
                    error: opt_text(&error, i),
                    archived_to: opt_text(&archived, i),
                    options: opt_text(&options, i),
                });
            }
        }
        out.sort_by_key(|e| e.at);
        Ok(out)
    }
}

/// The latest row of each file's content, in the order they were first seen.
pub fn latest(entries: &[Entry]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for e in entries {
        match out
            .iter_mut()
            .find(|o| o.file == e.file && o.hash == e.hash)
        {
            Some(o) => {
                // Figures recorded at an earlier status carry on when a later row leaves them out.
                let keep = o.clone();
                *o = e.clone();
                o.rows_staged = o.rows_staged.or(keep.rows_staged);
                o.archived_to = o.archived_to.clone().or(keep.archived_to);
                o.options = o.options.clone().or(keep.options);
            }
            None => out.push(e.clone()),
        }
    }
    out
}
