//! SQLite tables and queries as sources: the file opened read-only, rows streamed in batches from
//! a blocking thread, each column typed by its declared type (SQLite's own affinity rules, with
//! DECIMAL(p,s), DATE, TIMESTAMP, TIME and BOOLEAN read as what Ferry's SQLite target writes for
//! them). SQLite keeps any value in any column; a value its column's type cannot hold exactly (text
//! in an INTEGER column, a fraction in a DECIMAL(p,0)) stops the read naming the column, the row and
//! the value, never bent into a null or a rounded number.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::FormatOptions;
use async_trait::async_trait;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use rusqlite::types::ValueRef;
use tokio::sync::mpsc;

use crate::connector::{Read, Reader};
use crate::error::{ConnectorError, Result};

/// Rows a batch: SQLite reads are one stream, a batch at a time.
const BATCH_ROWS: usize = 8192;

/// Reads a SQLite file's tables and queries.
#[derive(Debug, Clone)]
pub struct SqliteReader {
    pub path: PathBuf,
}

#[async_trait]
impl Reader for SqliteReader {
    async fn register(&self, ctx: &SessionContext, name: &str, read: &Read) -> Result<()> {
        let sql = match read {
            Read::Table {
                partitions: Some(_),
                name,
            } => {
                return Err(ConnectorError::fatal(format!(
                    "table {name}: a SQLite file is read as one stream, not in partitions"
                ))
                .with_hint("remove partitions and partition_column"));
            }
            Read::Table { name, .. } => format!("SELECT * FROM {}", quoted(name)),
            Read::Query(sql) => sql.trim().trim_end_matches(';').to_string(),
        };
        let path = self.path.clone();
        let what = describe(read);
        let probe = (path.clone(), sql.clone(), what.clone());
        let schema = tokio::task::spawn_blocking(move || columns(&probe.0, &probe.1, &probe.2))
            .await
            .map_err(|e| ConnectorError::fatal(format!("reading {what}: {e}")))??;
        let partition = RowStream {
            schema: schema.clone(),
            path,
            sql,
            what,
        };
        let table = StreamingTable::try_new(schema, vec![Arc::new(partition)])?;
        ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }
}

fn describe(read: &Read) -> String {
    match read {
        Read::Table { name, .. } => format!("table {name}"),
        Read::Query(_) => "the query".to_string(),
    }
}

/// `schema.table` or `table`, each part quoted.
fn quoted(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.trim_matches('"').replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

fn open(path: &std::path::Path) -> Result<rusqlite::Connection> {
    if !path.is_file() {
        return Err(ConnectorError::fatal(format!(
            "the SQLite file {} does not exist",
            path.display()
        ))
        .with_hint("check the connection's url (sqlite://path, relative to the pipeline file)"));
    }
    super::open_read_only(path)
}

/// The columns of `sql`, typed by their declared types.
fn columns(path: &std::path::Path, sql: &str, what: &str) -> Result<SchemaRef> {
    let conn = open(path)?;
    let stmt = conn.prepare(sql).map_err(|e| {
        let tables = conn
            .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_default();
        ConnectorError::fatal(format!("cannot read {what} of {}: {e}", path.display())).with_hint(
            format!(
                "the file's tables and views: {}",
                if tables.is_empty() {
                    "none".to_string()
                } else {
                    tables.join(", ")
                }
            ),
        )
    })?;
    let fields: Vec<Field> = stmt
        .columns()
        .iter()
        .map(|c| Field::new(c.name(), arrow_type(c.decl_type()), true))
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// A declared SQLite type as an Arrow type: Ferry's own (what its SQLite target creates), then
/// SQLite's affinity rules; a column without a declared type (an expression) is read as text.
pub fn arrow_type(declared: Option<&str>) -> DataType {
    let Some(declared) = declared else {
        return DataType::Utf8;
    };
    let upper = declared.trim().to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    let precision_scale = || {
        let inside = upper.split_once('(')?.1.split_once(')')?.0.to_string();
        let mut parts = inside.split(',').map(|p| p.trim().parse::<u8>());
        let p = parts.next()?.ok()?;
        let s = parts.next().map(|s| s.ok()).unwrap_or(Some(0))?;
        ((1..=38).contains(&p) && s <= p).then_some((p, s as i8))
    };
    match base {
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "DATE" => DataType::Date32,
        "DATETIME" | "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "TIME" => DataType::Time64(TimeUnit::Microsecond),
        "DECIMAL" | "NUMERIC" => match precision_scale() {
            Some((p, s)) => DataType::Decimal128(p, s),
            None => DataType::Decimal128(38, 10),
        },
        _ if upper.contains("INT") => DataType::Int64,
        _ if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") => {
            DataType::Utf8
        }
        _ if upper.contains("BLOB") || upper.is_empty() => DataType::Binary,
        _ if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") => {
            DataType::Float64
        }
        // NUMERIC affinity: integers and reals, kept exact as decimals.
        _ => DataType::Decimal128(38, 10),
    }
}

/// The one partition of a SQLite read: rows streamed from a blocking thread.
struct RowStream {
    schema: SchemaRef,
    path: PathBuf,
    sql: String,
    what: String,
}

impl std::fmt::Debug for RowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SQLite {} of {}", self.what, self.path.display())
    }
}

type Sent = std::result::Result<RecordBatch, DataFusionError>;

impl PartitionStream for RowStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (sender, receiver) = mpsc::channel::<Sent>(2);
        let (path, sql, what, schema) = (
            self.path.clone(),
            self.sql.clone(),
            self.what.clone(),
            self.schema.clone(),
        );
        tokio::task::spawn_blocking(move || {
            if let Err(e) = stream_rows(&path, &sql, &what, &schema, &sender) {
                let _ = sender.blocking_send(Err(DataFusionError::External(Box::new(e))));
            }
        });
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            let next = receiver.recv().await?;
            Some((next, receiver))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

/// Reads every row of `sql`, a batch at a time, into `sender`; stops when the reader goes away.
fn stream_rows(
    path: &std::path::Path,
    sql: &str,
    what: &str,
    schema: &SchemaRef,
    sender: &mpsc::Sender<Sent>,
) -> Result<()> {
    let conn = open(path)?;
    let mut stmt = conn
        .prepare(sql)
        .map_err(|e| ConnectorError::fatal(format!("cannot read {what}: {e}")))?;
    let mut rows = stmt
        .query([])
        .map_err(|e| ConnectorError::fatal(format!("cannot read {what}: {e}")))?;
    let mut batch = Batch::new(schema, 1);
    let mut row_number = 0usize;
    loop {
        let row = rows
            .next()
            .map_err(|e| ConnectorError::fatal(format!("reading {what}: {e}")))?;
        let Some(row) = row else { break };
        row_number += 1;
        for (i, column) in batch.columns.iter_mut().enumerate() {
            let value = row
                .get_ref(i)
                .map_err(|e| ConnectorError::fatal(format!("reading {what}: {e}")))?;
            column.push(value).map_err(|held| {
                let field = schema.field(i);
                ConnectorError::fatal(format!(
                    "column \"{}\" ({}) of {what} holds {held} at row {row_number}: SQLite keeps any value in any column",
                    field.name(),
                    field.data_type()
                ))
                .with_hint(format!(
                    "read it as text with a query (SELECT CAST(\"{0}\" AS TEXT) AS \"{0}\" ...), or correct the row",
                    field.name()
                ))
            })?;
        }
        if batch.rows() == BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Batch::new(schema, row_number + 1));
            if sender.blocking_send(full.finish(schema, what)).is_err() {
                return Ok(());
            }
        }
    }
    if batch.rows() > 0 {
        let _ = sender.blocking_send(batch.finish(schema, what));
    }
    Ok(())
}

/// The columns of one batch being read.
struct Batch {
    columns: Vec<Column>,
    /// The read's row number of the batch's first row (from 1), for errors.
    first_row: usize,
}

/// A column's values as SQLite gives them, in the shape its Arrow type is built from: text for
/// decimals, dates and times (parsed exactly, all at once, when the batch is finished).
enum Column {
    Integer(Int64Builder),
    Real(Float64Builder),
    Boolean(BooleanBuilder),
    Text(StringBuilder),
    Blob(BinaryBuilder),
    /// Decimal, date, time and timestamp columns: their text, cast when the batch ends (a
    /// decimal's digits checked against its precision and scale first: never rounded).
    /// The `String` is scratch for a number's text, reused row after row.
    Parsed(StringBuilder, Option<(u8, i8)>, String),
}

impl Batch {
    fn new(schema: &SchemaRef, first_row: usize) -> Batch {
        let columns = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Int64 => Column::Integer(Int64Builder::new()),
                DataType::Float64 => Column::Real(Float64Builder::new()),
                DataType::Boolean => Column::Boolean(BooleanBuilder::new()),
                DataType::Utf8 => Column::Text(StringBuilder::new()),
                DataType::Binary => Column::Blob(BinaryBuilder::new()),
                DataType::Decimal128(p, s) => {
                    Column::Parsed(StringBuilder::new(), Some((*p, *s)), String::new())
                }
                _ => Column::Parsed(StringBuilder::new(), None, String::new()),
            })
            .collect();
        Batch { columns, first_row }
    }

    fn rows(&self) -> usize {
        use arrow::array::ArrayBuilder;
        match self.columns.first() {
            None => 0,
            Some(Column::Integer(b)) => b.len(),
            Some(Column::Real(b)) => b.len(),
            Some(Column::Boolean(b)) => b.len(),
            Some(Column::Text(b)) | Some(Column::Parsed(b, _, _)) => b.len(),
            Some(Column::Blob(b)) => b.len(),
        }
    }

    /// The batch as Arrow arrays of the schema's types; a text that does not parse as its column's
    /// type (a date that is not one) is an error naming the column and the value.
    fn finish(self, schema: &SchemaRef, what: &str) -> Sent {
        let first_row = self.first_row;
        let strict = CastOptions {
            safe: false,
            format_options: FormatOptions::default(),
        };
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (field, column) in schema.fields().iter().zip(self.columns) {
            let array: ArrayRef = match column {
                Column::Integer(mut b) => Arc::new(b.finish()),
                Column::Real(mut b) => Arc::new(b.finish()),
                Column::Boolean(mut b) => Arc::new(b.finish()),
                Column::Text(mut b) => Arc::new(b.finish()),
                Column::Blob(mut b) => Arc::new(b.finish()),
                Column::Parsed(mut b, _, _) => {
                    let text = b.finish();
                    let cast = |from: &arrow::array::StringArray| {
                        cast_with_options(from, field.data_type(), &strict)
                    };
                    match cast(&text) {
                        Ok(array) => array,
                        Err(_) => {
                            // The first value that is not one, by its row.
                            let bad = (0..text.len())
                                .find(|&i| cast(&text.slice(i, 1)).is_err())
                                .unwrap_or(0);
                            let value: String = text.value(bad).chars().take(40).collect();
                            return Err(DataFusionError::External(Box::new(
                                ConnectorError::fatal(format!(
                                    "column \"{}\" ({}) of {what} holds the text '{value}' at row {}: SQLite keeps any value in any column",
                                    field.name(),
                                    field.data_type(),
                                    first_row + bad
                                ))
                                .with_hint("read it as text with a query (CAST(col AS TEXT)), or correct the row"),
                            )));
                        }
                    }
                }
            };
            arrays.push(array);
        }
        Ok(RecordBatch::try_new(schema.clone(), arrays)?)
    }
}

impl Column {
    /// Appends a value, or says what the column held that its type cannot (for the error).
    fn push(&mut self, value: ValueRef<'_>) -> std::result::Result<(), String> {
        let shown = |value: &ValueRef<'_>| match value {
            ValueRef::Text(t) => {
                let t = String::from_utf8_lossy(t);
                let cut: String = t.chars().take(40).collect();
                format!("the text '{cut}'")
            }
            ValueRef::Real(r) => format!("the real {r}"),
            ValueRef::Integer(i) => format!("the integer {i}"),
            ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
            ValueRef::Null => "null".into(),
        };
        match (self, value) {
            (Column::Integer(b), ValueRef::Null) => b.append_null(),
            (Column::Real(b), ValueRef::Null) => b.append_null(),
            (Column::Boolean(b), ValueRef::Null) => b.append_null(),
            (Column::Text(b) | Column::Parsed(b, _, _), ValueRef::Null) => b.append_null(),
            (Column::Blob(b), ValueRef::Null) => b.append_null(),
            (Column::Integer(b), ValueRef::Integer(i)) => b.append_value(i),
            (Column::Integer(b), ValueRef::Real(r))
                if r.fract() == 0.0
                    && (-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&r) =>
            {
                b.append_value(r as i64)
            }
            (Column::Real(b), ValueRef::Real(r)) => b.append_value(r),
            // Every integer a REAL column holds is one a double keeps exactly, up to 2^53.
            (Column::Real(b), ValueRef::Integer(i)) if i.unsigned_abs() <= 1 << 53 => {
                b.append_value(i as f64)
            }
            (Column::Boolean(b), ValueRef::Integer(i @ (0 | 1))) => b.append_value(i == 1),
            (Column::Boolean(b), ValueRef::Text(t))
                if t.eq_ignore_ascii_case(b"true") || t.eq_ignore_ascii_case(b"false") =>
            {
                b.append_value(t.eq_ignore_ascii_case(b"true"))
            }
            (Column::Text(b), ValueRef::Text(t)) => match std::str::from_utf8(t) {
                Ok(t) => b.append_value(t),
                Err(_) => return Err("text that is not UTF-8".into()),
            },
            // TEXT affinity stores numbers as text already; one that is not was kept by a
            // column without affinity, and its text form is what the column means.
            (Column::Text(b), ValueRef::Integer(i)) => b.append_value(i.to_string()),
            (Column::Text(b), ValueRef::Real(r)) => b.append_value(format!("{r:?}")),
            (Column::Blob(b), ValueRef::Blob(v)) => b.append_value(v),
            (Column::Blob(b), ValueRef::Text(v)) => b.append_value(v),
            (
                Column::Parsed(b, decimal, scratch),
                v @ (ValueRef::Text(_) | ValueRef::Integer(_) | ValueRef::Real(_)),
            ) => {
                use std::fmt::Write as _;
                scratch.clear();
                let text: &str = match v {
                    ValueRef::Text(t) => {
                        std::str::from_utf8(t).map_err(|_| "text that is not UTF-8".to_string())?
                    }
                    ValueRef::Integer(i) => {
                        let _ = write!(scratch, "{i}");
                        scratch
                    }
                    // The shortest text that reads back as the same double: the digits SQLite kept.
                    ValueRef::Real(r) => {
                        let _ = write!(scratch, "{r}");
                        scratch
                    }
                    _ => unreachable!("matched above"),
                };
                if let Some((p, s)) = *decimal
                    && !decimal_fits(text, p, s)
                {
                    return Err(match text.parse::<f64>() {
                        Ok(_) => format!("{}, more digits than its precision and scale", shown(&v)),
                        Err(_) => shown(&v),
                    });
                }
                b.append_value(text)
            }
            (_, other) => return Err(shown(&other)),
        }
        Ok(())
    }
}

/// Whether decimal text (`-12.50`) fits precision `p` and scale `s` without rounding; text that is
/// not a plain decimal is left to the cast, which refuses it.
fn decimal_fits(text: &str, p: u8, s: i8) -> bool {
    let digits = text.trim().trim_start_matches(['-', '+']);
    if digits.contains(['e', 'E']) {
        // A real's exponent form: the cast reads it, and refuses what does not fit.
        return digits.parse::<f64>().is_ok();
    }
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return false;
    }
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let whole = whole.trim_start_matches('0').len();
    let fraction = fraction.trim_end_matches('0').len();
    fraction <= s.max(0) as usize && whole <= (p as i64 - s as i64).max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_read_as_ferry_writes_them_then_by_affinity() {
        assert_eq!(arrow_type(Some("INTEGER")), DataType::Int64);
        assert_eq!(arrow_type(Some("unsigned big int")), DataType::Int64);
        assert_eq!(arrow_type(Some("VARCHAR(40)")), DataType::Utf8);
        assert_eq!(
            arrow_type(Some("DECIMAL(12,2)")),
            DataType::Decimal128(12, 2)
        );
        assert_eq!(arrow_type(Some("NUMERIC")), DataType::Decimal128(38, 10));
        assert_eq!(arrow_type(Some("DOUBLE PRECISION")), DataType::Float64);
        assert_eq!(arrow_type(Some("BLOB")), DataType::Binary);
        assert_eq!(arrow_type(Some("")), DataType::Binary);
        assert_eq!(arrow_type(None), DataType::Utf8);
        assert_eq!(
            arrow_type(Some("TIMESTAMP")),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(arrow_type(Some("BOOLEAN")), DataType::Boolean);
    }

    #[test]
    fn a_value_the_column_cannot_hold_is_named() {
        let mut ints = Column::Integer(Int64Builder::new());
        assert!(ints.push(ValueRef::Integer(5)).is_ok());
        assert!(ints.push(ValueRef::Real(6.0)).is_ok());
        assert_eq!(ints.push(ValueRef::Real(6.5)).unwrap_err(), "the real 6.5");
        assert_eq!(
            ints.push(ValueRef::Text(b"abc")).unwrap_err(),
            "the text 'abc'"
        );
        let mut money = Column::Parsed(StringBuilder::new(), Some((12, 2)), String::new());
        assert!(money.push(ValueRef::Real(-9_999_999_999.99)).is_ok());
        assert!(money.push(ValueRef::Text(b"0.10")).is_ok());
        assert!(
            money
                .push(ValueRef::Text(b"0.125"))
                .unwrap_err()
                .contains("more digits than its precision")
        );
        assert!(money.push(ValueRef::Integer(10_000_000_000)).is_err());
        let mut flags = Column::Boolean(BooleanBuilder::new());
        assert_eq!(
            flags.push(ValueRef::Integer(2)).unwrap_err(),
            "the integer 2"
        );
    }
}
