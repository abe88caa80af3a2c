//! MySQL/MariaDB as a source: the SELECT runs as a prepared statement (the binary protocol, so
//! numbers and times arrive as numbers, never as text to parse) and its rows fill Arrow builders.
//!
//! ```text
//! TINYINT SMALLINT MEDIUMINT/INT BIGINT   Int8 Int16 Int32 Int64 (UInt* when UNSIGNED)
//! YEAR                                    Int16
//! FLOAT DOUBLE                            Float32 Float64
//! DECIMAL(p,s)                            Decimal128(p, s), Decimal256(p, s) above 38 digits
//! DATE DATETIME(n)                        Date32 Timestamp(µs)
//! TIMESTAMP(n)                            Timestamp(µs, "UTC") (the session runs in UTC)
//! TIME(n)                                 Time64(µs); a value outside 00:00:00-23:59:59 stops the read
//! CHAR VARCHAR TEXT ENUM SET JSON         Utf8
//! BINARY VARBINARY BLOB GEOMETRY          Binary
//! BIT(n)                                  UInt64
//! ```

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Date32Builder, Decimal128Builder, Decimal256Builder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt8Builder, UInt16Builder,
    UInt32Builder, UInt64Builder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{DataType, Decimal128Type, Decimal256Type, Field, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Value};

use super::client::{classify, conn, pool};
use crate::error::{ConnectorError, Result};
use crate::sql::db::DbConfig;
use crate::sql::declared::Declared;
use crate::sql::ident::quote_mysql;
use crate::sql::scan::{BATCH_ROWS, ScanColumn, ScanSource, ScanTable, misfit};

/// The `binary` character set: the column holds bytes, not text.
const BINARY_CHARSET: u16 = 63;

/// A MySQL table or query (`from` is what follows FROM) as a DataFusion table.
pub async fn scan_table(db: &DbConfig, from: String) -> Result<ScanTable> {
    let pool = pool(db)?;
    let mut session = conn(&pool, db).await?;
    let statement = session
        .prep(format!("SELECT * FROM {from}"))
        .await
        .map_err(classify)?;
    let mut columns: Vec<ScanColumn> = Vec::new();
    for column in statement.columns().iter() {
        let name = column.name_str();
        if columns.iter().any(|c| c.field.name() == name.as_ref()) {
            return Err(ConnectorError::fatal(format!(
                "two columns are named \"{name}\", and a table's columns need distinct names"
            ))
            .with_hint("give one of them another name with AS in the query"));
        }
        let field = Field::new(name.as_ref(), arrow_type(column), true);
        let field = match column.column_type() {
            ColumnType::MYSQL_TYPE_JSON => Declared::Json.mark(field),
            _ => field,
        };
        columns.push(ScanColumn {
            field,
            select: quote_mysql(&name),
        });
    }
    session.close(statement).await.map_err(classify)?;
    drop(session);
    pool.disconnect().await.ok();
    let source = Arc::new(MysqlScan { db: db.clone() });
    Ok(ScanTable::new(source, from, columns))
}

/// The Arrow type a column described by the server is read as.
fn arrow_type(column: &Column) -> DataType {
    let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let bytes = column.character_set() == BINARY_CHARSET;
    let int = |signed: DataType, unsigned_type: DataType| {
        if unsigned { unsigned_type } else { signed }
    };
    match column.column_type() {
        ColumnType::MYSQL_TYPE_TINY => int(DataType::Int8, DataType::UInt8),
        ColumnType::MYSQL_TYPE_SHORT => int(DataType::Int16, DataType::UInt16),
        ColumnType::MYSQL_TYPE_INT24 | ColumnType::MYSQL_TYPE_LONG => {
            int(DataType::Int32, DataType::UInt32)
        }
        ColumnType::MYSQL_TYPE_LONGLONG => int(DataType::Int64, DataType::UInt64),
        ColumnType::MYSQL_TYPE_YEAR => DataType::Int16,
        ColumnType::MYSQL_TYPE_FLOAT => DataType::Float32,
        ColumnType::MYSQL_TYPE_DOUBLE => DataType::Float64,
        ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
            let scale = column.decimals();
            // The display length counts the sign and the decimal point.
            let precision =
                column.column_length() as i64 - i64::from(scale > 0) - i64::from(!unsigned);
            let precision = precision.clamp(1, 76) as u8;
            if precision <= 38 {
                DataType::Decimal128(precision, scale as i8)
            } else {
                DataType::Decimal256(precision, scale as i8)
            }
        }
        ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => DataType::Date32,
        ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_DATETIME2 => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2 => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        ColumnType::MYSQL_TYPE_TIME | ColumnType::MYSQL_TYPE_TIME2 => {
            DataType::Time64(TimeUnit::Microsecond)
        }
        ColumnType::MYSQL_TYPE_BIT => DataType::UInt64,
        ColumnType::MYSQL_TYPE_JSON => DataType::Utf8,
        ColumnType::MYSQL_TYPE_GEOMETRY => DataType::Binary,
        _ if bytes => DataType::Binary,
        _ => DataType::Utf8,
    }
}

/// Runs scans of one MySQL database.
#[derive(Debug)]
struct MysqlScan {
    db: DbConfig,
}

impl ScanSource for MysqlScan {
    fn stream(&self, sql: String, schema: SchemaRef) -> SendableRecordBatchStream {
        // The rows borrow the session they come from, so one task owns both and hands batches over.
        let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
        let db = self.db.clone();
        let task_schema = schema.clone();
        tokio::spawn(async move {
            if let Err(e) = read(&db, &sql, task_schema, &sender).await {
                sender.send(Err(e)).await.ok();
            }
        });
        let batches = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }

    fn quote(&self, name: &str) -> String {
        quote_mysql(name)
    }

    fn instant_literal(&self, wall: &str) -> String {
        format!("TIMESTAMP '{wall}'")
    }
}

type Sender = tokio::sync::mpsc::Sender<std::result::Result<RecordBatch, DataFusionError>>;

async fn read(db: &DbConfig, sql: &str, schema: SchemaRef, sender: &Sender) -> DfResult<()> {
    let external = |e: ConnectorError| DataFusionError::External(Box::new(e));
    let pool = pool(db).map_err(external)?;
    let mut session = conn(&pool, db).await.map_err(external)?;
    let mut result = session
        .exec_iter(sql, ())
        .await
        .map_err(|e| external(classify(e)))?;
    let mut columns: Vec<ColumnBuilder> = schema
        .fields()
        .iter()
        .map(|f| ColumnBuilder::new(f))
        .collect();
    let mut rows = 0;
    while let Some(row) = result.next().await.map_err(|e| external(classify(e)))? {
        for ((value, column), field) in row
            .unwrap()
            .into_iter()
            .zip(&mut columns)
            .zip(schema.fields())
        {
            column.append(value, field.name())?;
        }
        rows += 1;
        if rows == BATCH_ROWS {
            if sender
                .send(Ok(batch(&schema, &mut columns, rows)?))
                .await
                .is_err()
            {
                return Ok(()); // the reader stopped listening (a LIMIT was met)
            }
            rows = 0;
        }
    }
    if rows > 0 {
        sender
            .send(Ok(batch(&schema, &mut columns, rows)?))
            .await
            .ok();
    }
    drop(result);
    drop(session);
    pool.disconnect().await.ok();
    Ok(())
}

type DfResult<T> = std::result::Result<T, DataFusionError>;

fn batch(schema: &SchemaRef, columns: &mut [ColumnBuilder], rows: usize) -> DfResult<RecordBatch> {
    let arrays: Vec<ArrayRef> = columns.iter_mut().map(|c| c.finish()).collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &options,
    )?)
}

/// One column's Arrow builder, fed the values of the type `arrow_type` chose for it.
enum ColumnBuilder {
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal128(Decimal128Builder, u8, i8),
    Decimal256(Decimal256Builder, u8, i8),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Time(Time64MicrosecondBuilder),
    Text(StringBuilder),
    Binary(BinaryBuilder),
}

macro_rules! each {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Self::Int8($b) => $e,
            Self::Int16($b) => $e,
            Self::Int32($b) => $e,
            Self::Int64($b) => $e,
            Self::UInt8($b) => $e,
            Self::UInt16($b) => $e,
            Self::UInt32($b) => $e,
            Self::UInt64($b) => $e,
            Self::Float32($b) => $e,
            Self::Float64($b) => $e,
            Self::Decimal128($b, ..) => $e,
            Self::Decimal256($b, ..) => $e,
            Self::Date($b) => $e,
            Self::Timestamp($b, _) => $e,
            Self::Time($b) => $e,
            Self::Text($b) => $e,
            Self::Binary($b) => $e,
        }
    };
}

impl ColumnBuilder {
    fn new(field: &Field) -> Self {
        match field.data_type() {
            DataType::Int8 => Self::Int8(Int8Builder::new()),
            DataType::Int16 => Self::Int16(Int16Builder::new()),
            DataType::Int32 => Self::Int32(Int32Builder::new()),
            DataType::Int64 => Self::Int64(Int64Builder::new()),
            DataType::UInt8 => Self::UInt8(UInt8Builder::new()),
            DataType::UInt16 => Self::UInt16(UInt16Builder::new()),
            DataType::UInt32 => Self::UInt32(UInt32Builder::new()),
            DataType::UInt64 => Self::UInt64(UInt64Builder::new()),
            DataType::Float32 => Self::Float32(Float32Builder::new()),
            DataType::Float64 => Self::Float64(Float64Builder::new()),
            DataType::Decimal128(p, s) => Self::Decimal128(Decimal128Builder::new(), *p, *s),
            DataType::Decimal256(p, s) => Self::Decimal256(Decimal256Builder::new(), *p, *s),
            DataType::Date32 => Self::Date(Date32Builder::new()),
            DataType::Timestamp(_, tz) => {
                Self::Timestamp(TimestampMicrosecondBuilder::new(), tz.clone())
            }
            DataType::Time64(_) => Self::Time(Time64MicrosecondBuilder::new()),
            DataType::Binary => Self::Binary(BinaryBuilder::new()),
            _ => Self::Text(StringBuilder::new()),
        }
    }

    fn append(&mut self, value: Value, column: &str) -> DfResult<()> {
        if value == Value::NULL {
            each!(self, b => b.append_null());
            return Ok(());
        }
        let shown = || value.as_sql(true);
        let unexpected = || {
            DataFusionError::External(Box::new(ConnectorError::fatal(format!(
                "column \"{column}\" sent {}, which is not the type the server described",
                shown()
            ))))
        };
        let out_of_range = |ty: &str| {
            misfit(
                column,
                &shown(),
                &format!("does not fit {ty}"),
                "cast it in a query source to a type that holds it",
            )
        };
        match (self, &value) {
            (Self::Int8(b), Value::Int(v)) => {
                b.append_value(i8::try_from(*v).map_err(|_| out_of_range("Int8"))?)
            }
            (Self::Int16(b), Value::Int(v)) => {
                b.append_value(i16::try_from(*v).map_err(|_| out_of_range("Int16"))?)
            }
            (Self::Int32(b), Value::Int(v)) => {
                b.append_value(i32::try_from(*v).map_err(|_| out_of_range("Int32"))?)
            }
            (Self::Int64(b), Value::Int(v)) => b.append_value(*v),
            (Self::UInt8(b), _) => b.append_value(unsigned(&value, column, u8::MAX.into())? as u8),
            (Self::UInt16(b), _) => {
                b.append_value(unsigned(&value, column, u16::MAX.into())? as u16)
            }
            (Self::UInt32(b), _) => {
                b.append_value(unsigned(&value, column, u32::MAX.into())? as u32)
            }
            (Self::UInt64(b), _) => b.append_value(unsigned(&value, column, u64::MAX)?),
            (Self::Float32(b), Value::Float(v)) => b.append_value(*v),
            (Self::Float64(b), Value::Double(v)) => b.append_value(*v),
            (Self::Float64(b), Value::Float(v)) => b.append_value(f64::from(*v)),
            (Self::Decimal128(b, p, s), Value::Bytes(text)) => {
                let text = std::str::from_utf8(text).map_err(|_| unexpected())?;
                let v = parse_decimal::<Decimal128Type>(text, *p, *s)
                    .map_err(|_| out_of_range(&format!("decimal({p},{s})")))?;
                b.append_value(v)
            }
            (Self::Decimal256(b, p, s), Value::Bytes(text)) => {
                let text = std::str::from_utf8(text).map_err(|_| unexpected())?;
                let v = parse_decimal::<Decimal256Type>(text, *p, *s)
                    .map_err(|_| out_of_range(&format!("decimal({p},{s})")))?;
                b.append_value(v)
            }
            (Self::Date(b), Value::Date(y, m, d, ..)) => {
                let date = chrono::NaiveDate::from_ymd_opt(*y as i32, *m as u32, *d as u32)
                    .ok_or_else(|| zero_date(column, &shown()))?;
                b.append_value((date - unix_day()).num_days() as i32)
            }
            (Self::Timestamp(b, _), Value::Date(y, m, d, h, i, s, us)) => {
                let t = chrono::NaiveDate::from_ymd_opt(*y as i32, *m as u32, *d as u32)
                    .and_then(|d| d.and_hms_micro_opt(*h as u32, *i as u32, *s as u32, *us))
                    .ok_or_else(|| zero_date(column, &shown()))?;
                b.append_value(t.and_utc().timestamp_micros())
            }
            (Self::Time(b), Value::Time(negative, days, h, i, s, us)) => {
                if *negative || *days > 0 {
                    let hours = *days as u64 * 24 + *h as u64;
                    let sign = if *negative { "-" } else { "" };
                    return Err(misfit(
                        column,
                        &format!("'{sign}{hours:02}:{i:02}:{s:02}'"),
                        "is a duration, not a time of day",
                        "read it in a query source as TIME_TO_SEC(col) or CAST(col AS CHAR)",
                    ));
                }
                let micros =
                    ((*h as i64 * 60 + *i as i64) * 60 + *s as i64) * 1_000_000 + *us as i64;
                b.append_value(micros)
            }
            (Self::Text(b), Value::Bytes(bytes)) => {
                b.append_value(std::str::from_utf8(bytes).map_err(|_| {
                    misfit(
                        column,
                        "bytes that are not UTF-8",
                        "a text column cannot hold",
                        "read it as binary: CAST(col AS BINARY) in a query source",
                    )
                })?)
            }
            (Self::Text(b), _) => b.append_value(value.as_sql(true).trim_matches('\'')),
            (Self::Binary(b), Value::Bytes(bytes)) => b.append_value(bytes),
            _ => return Err(unexpected()),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Decimal128(b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .expect("a precision the server declared"),
            ),
            Self::Decimal256(b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .expect("a precision the server declared"),
            ),
            Self::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            other => each!(other, b => Arc::new(b.finish()) as ArrayRef),
        }
    }
}

/// An unsigned value: an integer, or a BIT(n) column's big-endian bytes.
fn unsigned(value: &Value, column: &str, max: u64) -> DfResult<u64> {
    let v = match value {
        Value::UInt(v) => Some(*v),
        Value::Int(v) => u64::try_from(*v).ok(),
        Value::Bytes(bytes) if bytes.len() <= 8 => {
            Some(bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
        }
        _ => None,
    };
    let Some(v) = v.filter(|v| *v <= max) else {
        return Err(misfit(
            column,
            &value.as_sql(true),
            "does not fit its unsigned column",
            "cast it in a query source to a type that holds it",
        ));
    };
    Ok(v)
}

fn unix_day() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")
}

fn zero_date(column: &str, shown: &str) -> DataFusionError {
    misfit(
        column,
        shown,
        "is not a date (MySQL's zero date)",
        "turn zero dates into NULL in a query source: NULLIF(col, '0000-00-00')",
    )
}
