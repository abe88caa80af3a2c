//! PostgreSQL as a source: `COPY (SELECT ...) TO STDOUT (FORMAT binary)` decoded straight into
//! Arrow builders, each column's type taken from the server's own description of the SELECT.
//!
//! ```text
//! bool int2 int4 int8 float4 float8   Boolean Int16 Int32 Int64 Float32 Float64
//! numeric(p,s), p <= 38               Decimal128(p, s)
//! numeric (no precision)              Decimal128(38, 10); a value with more digits stops the read
//! numeric(p,s), p > 38                Utf8, its exact text
//! money / oid                         Decimal128(38, 2) / Int64
//! text varchar char name json enums   Utf8
//! bytea                               Binary
//! date time                           Date32 Time64(µs)
//! timestamp / timestamptz             Timestamp(µs) / Timestamp(µs, "UTC"), years 1 to 9999 exact
//! interval                            Interval(MonthDayNano)
//! uuid jsonb, arrays, every other     Utf8: the server's text form of the value (`col::text`)
//! ```
//!
//! Binary COPY carries each value in its column's own binary form (no text formatting and parsing
//! on either side): a timestamp is 8 bytes of microseconds since 2000, a numeric its base-10000
//! digits, so values before 1970 or with 38 digits arrive exactly as stored.
//!
//! A partitioned read runs one COPY per range on its own connection, all at one point in time: a
//! [`Snapshot`] exported by the transaction that counted the table (as `pg_dump -j` does), which
//! every range imports before it reads. Rows changed while the ranges start are read as they were.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, IntervalMonthDayNano, IntervalUnit, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::{Buf, Bytes, BytesMut};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use tokio_postgres::Client;
use tokio_postgres::types::{Kind, Type};

use super::client::{classify, connect};
use crate::error::{ConnectorError, Result};
use crate::sql::db::DbConfig;
use crate::sql::declared::Declared;
use crate::sql::ident::quote_ansi;
use crate::sql::scan::{BATCH_ROWS, ScanColumn, ScanSource, ScanTable, misfit};

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROS: i64 = 946_684_800_000_000;
/// The scale a `numeric` without declared precision is read at.
const FREE_NUMERIC_SCALE: i8 = 10;

/// A PostgreSQL table or query (`from` is what follows FROM) as a DataFusion table, read at
/// `snapshot` when there is one.
pub async fn scan_table(
    db: &DbConfig,
    from: String,
    snapshot: Option<Arc<Snapshot>>,
) -> Result<ScanTable> {
    let client = connect(db).await?;
    let statement = client
        .prepare(&format!("SELECT * FROM {from}"))
        .await
        .map_err(classify)?;
    let mut columns = Vec::new();
    for column in statement.columns() {
        let name = column.name();
        if columns.iter().any(|c: &ScanColumn| c.field.name() == name) {
            return Err(ConnectorError::fatal(format!(
                "two columns are named \"{name}\", and a table's columns need distinct names"
            ))
            .with_hint("give one of them another name with AS in the query"));
        }
        let (data_type, cast) = arrow_type(column.type_(), column.type_modifier());
        let quoted = quote_ansi(name);
        let select = match cast {
            Some(to) => format!("{quoted}::{to} AS {quoted}"),
            None => quoted,
        };
        let field = Field::new(name, data_type, true);
        let field = match declared(column.type_(), column.type_modifier()) {
            Some(declared) => declared.mark(field),
            None => field,
        };
        columns.push(ScanColumn { field, select });
    }
    let source = Arc::new(PgScan {
        db: db.clone(),
        snapshot,
    });
    Ok(ScanTable::new(source, from, columns))
}

/// One point in time for every connection of a read: the snapshot of a read-only repeatable-read
/// transaction, exported with `pg_export_snapshot()` and kept open (its connection held here) for
/// as long as the table is registered, so that a range that starts late still imports it.
pub struct Snapshot {
    id: String,
    /// The exporting transaction: its snapshot can be imported while it is open.
    holder: Client,
    /// The name other processes of a spread run know it by, when this process exported it.
    shared_as: Option<String>,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Some(key) = &self.shared_as {
            super::shared::forget(key, &self.id);
        }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({})", self.id)
    }
}

impl Snapshot {
    /// Begins the exporting transaction on `client`; `None` (and no transaction) where the server
    /// cannot export one (a proxy or a PostgreSQL-compatible database without snapshots), whose
    /// ranges then read at their own points in time, as before.
    pub async fn export(client: Client) -> Result<(Client, Option<String>)> {
        // The transaction waits idle while the ranges start; a server's idle timeout would end it
        // (and the snapshot) under them. Servers before 9.6 have no such setting: nothing to lift.
        let _ = client
            .batch_execute("SET idle_in_transaction_session_timeout = 0")
            .await;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(classify)?;
        match client.query_one("SELECT pg_export_snapshot()", &[]).await {
            Ok(row) => Ok((client, Some(row.try_get(0).map_err(classify)?))),
            Err(e) if e.code().is_some() => {
                tracing::warn!(error = %e, "the server exports no snapshot: each range of the read sees the table at its own start");
                client.batch_execute("ROLLBACK").await.map_err(classify)?;
                Ok((client, None))
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// The snapshot `id` exported by the transaction open on `holder`, shared with the other
    /// processes of a spread run as `shared_as`.
    pub fn new(id: String, holder: Client, shared_as: Option<String>) -> Self {
        if let Some(key) = &shared_as {
            super::shared::note(key, &id);
        }
        Self {
            id,
            holder,
            shared_as,
        }
    }

    /// Begins a transaction on `client` at another process's snapshot `id` (a spread run's
    /// leader's); false, with the transaction ended, when it cannot be imported.
    pub async fn adopt(client: &Client, id: &str) -> Result<bool> {
        match client.batch_execute(&import_sql(id)).await {
            Ok(()) => Ok(true),
            Err(e) if e.code().is_some() => {
                tracing::warn!(error = %e, "the spread run's snapshot cannot be imported here: this process reads the table at its own point in time");
                client.batch_execute("ROLLBACK").await.map_err(classify)?;
                Ok(false)
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// Imports the snapshot into a new transaction on `client`.
    async fn import(&self, client: &Client) -> Result<()> {
        client
            .batch_execute(&import_sql(&self.id))
            .await
            .map_err(|e| {
                let gone = self.holder.is_closed();
                let e = classify(e).context("the read could not take the table's snapshot");
                match gone {
                    true => e.with_hint(
                        "the connection that held the snapshot was closed (the server restarted, \
                     or the connection was cut); run again",
                    ),
                    false => e,
                }
            })
    }
}

/// The statements that make a new transaction read at the snapshot `id`.
fn import_sql(id: &str) -> String {
    format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
        id.replace('\'', "''")
    )
}

/// The Arrow type a column of `ty` (with its type modifier) is read as, and the type the SELECT
/// casts it to first when its binary form is not one Ferry decodes.
fn arrow_type(ty: &Type, typmod: i32) -> (DataType, Option<&'static str>) {
    let text = (DataType::Utf8, Some("text"));
    match *ty {
        Type::BOOL => (DataType::Boolean, None),
        Type::INT2 => (DataType::Int16, None),
        Type::INT4 => (DataType::Int32, None),
        Type::INT8 => (DataType::Int64, None),
        Type::OID => (DataType::Int64, Some("int8")),
        Type::FLOAT4 => (DataType::Float32, None),
        Type::FLOAT8 => (DataType::Float64, None),
        Type::NUMERIC => match numeric_precision(typmod) {
            None => (DataType::Decimal128(38, FREE_NUMERIC_SCALE), None),
            Some((p, s)) if p <= 38 && s >= 0 => (DataType::Decimal128(p as u8, s as i8), None),
            Some(_) => text,
        },
        Type::MONEY => (DataType::Decimal128(38, 2), Some("numeric")),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON => {
            (DataType::Utf8, None)
        }
        Type::BYTEA => (DataType::Binary, None),
        Type::DATE => (DataType::Date32, None),
        Type::TIME => (DataType::Time64(TimeUnit::Microsecond), None),
        Type::TIMESTAMP => (DataType::Timestamp(TimeUnit::Microsecond, None), None),
        Type::TIMESTAMPTZ => (
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            None,
        ),
        Type::INTERVAL => (DataType::Interval(IntervalUnit::MonthDayNano), None),
        _ => match ty.kind() {
            // An enum's binary form is its label.
            Kind::Enum(_) => (DataType::Utf8, None),
            // A domain's values are its base type's.
            Kind::Domain(base) => arrow_type(base, typmod),
            _ if ty.name() == "citext" => (DataType::Utf8, None),
            _ => text,
        },
    }
}

/// The declared type a table `create = true` makes from this column keeps (`declared.rs`).
fn declared(ty: &Type, typmod: i32) -> Option<Declared> {
    let length = u32::try_from(typmod - 4).ok();
    match *ty {
        Type::UUID => Some(Declared::Uuid),
        Type::JSON => Some(Declared::Json),
        Type::JSONB => Some(Declared::Jsonb),
        Type::VARCHAR => length.map(Declared::Varchar),
        Type::BPCHAR => length.map(Declared::Char),
        _ => None,
    }
}

/// A numeric's declared (precision, scale), or `None` for a numeric without them.
fn numeric_precision(typmod: i32) -> Option<(i32, i32)> {
    if typmod < 4 {
        return None;
    }
    let packed = typmod - 4;
    // The scale is an 11-bit signed number since PostgreSQL 15 (numeric(2,-3) rounds to thousands).
    let scale = ((packed & 0x7ff) ^ 0x400) - 0x400;
    Some(((packed >> 16) & 0xffff, scale))
}

/// Runs scans of one PostgreSQL database.
#[derive(Debug)]
struct PgScan {
    db: DbConfig,
    /// The point in time every scan reads at, for a partitioned read.
    snapshot: Option<Arc<Snapshot>>,
}

impl ScanSource for PgScan {
    fn stream(&self, sql: String, schema: SchemaRef) -> SendableRecordBatchStream {
        let db = self.db.clone();
        let snapshot = self.snapshot.clone();
        let decoder_schema = schema.clone();
        let batches = futures::stream::once(async move {
            let client = connect(&db).await.map_err(external)?;
            if let Some(snapshot) = snapshot {
                snapshot.import(&client).await.map_err(external)?;
            }
            let copy = client
                .copy_out(&format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))
                .await
                .map_err(|e| external(classify(e)))?;
            let decoder = CopyDecoder::new(decoder_schema);
            let state = (client, Box::pin(copy), decoder, VecDeque::new(), false);
            Ok::<_, DataFusionError>(futures::stream::try_unfold(
                state,
                |(client, mut copy, mut decoder, mut ready, mut ended)| async move {
                    loop {
                        if let Some(batch) = ready.pop_front() {
                            return Ok(Some((batch, (client, copy, decoder, ready, ended))));
                        }
                        if ended {
                            return Ok(None);
                        }
                        match copy.next().await {
                            Some(chunk) => {
                                let chunk = chunk.map_err(|e| external(classify(e)))?;
                                decoder.feed(&chunk, &mut ready)?;
                            }
                            None => {
                                decoder.finish(&mut ready)?;
                                ended = true;
                            }
                        }
                    }
                },
            ))
        })
        .try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(schema, batches))
    }

    fn quote(&self, name: &str) -> String {
        quote_ansi(name)
    }
}

fn external(e: ConnectorError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Binary COPY bytes in, Arrow batches out; tuples may be split across the chunks it is fed.
struct CopyDecoder {
    schema: SchemaRef,
    pending: BytesMut,
    header_read: bool,
    trailer_read: bool,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyDecoder {
    fn new(schema: SchemaRef) -> Self {
        let columns = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f))
            .collect();
        Self {
            schema,
            pending: BytesMut::new(),
            header_read: false,
            trailer_read: false,
            columns,
            rows: 0,
        }
    }

    fn feed(&mut self, chunk: &Bytes, ready: &mut VecDeque<RecordBatch>) -> DfResult<()> {
        self.pending.extend_from_slice(chunk);
        if !self.header_read {
            // signature, flags, header extension length, extension
            if self.pending.len() < SIGNATURE.len() + 8 {
                return Ok(());
            }
            if &self.pending[..SIGNATURE.len()] != SIGNATURE {
                return Err(protocol(
                    "the COPY output does not start with its signature",
                ));
            }
            let extension =
                u32::from_be_bytes(self.pending[15..19].try_into().expect("4 bytes")) as usize;
            if self.pending.len() < 19 + extension {
                return Ok(());
            }
            self.pending.advance(19 + extension);
            self.header_read = true;
        }
        while let Some(size) = self.complete_tuple() {
            let tuple = self.pending.split_to(size).freeze();
            self.decode_tuple(tuple)?;
            if self.rows == BATCH_ROWS {
                ready.push_back(self.flush()?);
            }
        }
        Ok(())
    }

    /// The length of the tuple at the front of `pending`, once all of it has arrived.
    fn complete_tuple(&mut self) -> Option<usize> {
        if self.trailer_read || self.pending.len() < 2 {
            return None;
        }
        let fields = i16::from_be_bytes([self.pending[0], self.pending[1]]);
        if fields == -1 {
            self.trailer_read = true;
            self.pending.advance(2);
            return None;
        }
        let mut at = 2;
        for _ in 0..fields.max(0) {
            let len = self.pending.get(at..at + 4)?;
            let len = i32::from_be_bytes(len.try_into().expect("4 bytes"));
            at += 4 + len.max(0) as usize;
            if at > self.pending.len() {
                return None;
            }
        }
        Some(at)
    }

    fn decode_tuple(&mut self, mut tuple: Bytes) -> DfResult<()> {
        let fields = tuple.get_i16() as usize;
        if self.columns.is_empty() {
            // A scan that needs rows but no columns (COUNT(*)) selects the constant 1.
            self.rows += 1;
            return Ok(());
        }
        if fields != self.columns.len() {
            return Err(protocol(&format!(
                "a COPY row has {fields} fields where {} were asked for",
                self.columns.len()
            )));
        }
        for (column, field) in self.columns.iter_mut().zip(self.schema.fields()) {
            let len = tuple.get_i32();
            if len < 0 {
                column.append_null();
                continue;
            }
            let value = tuple.split_to(len as usize);
            column.append(&value, field.name())?;
        }
        self.rows += 1;
        Ok(())
    }

    fn flush(&mut self) -> DfResult<RecordBatch> {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(|c| c.finish()).collect();
        let options =
            arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &options,
        )?)
    }

    fn finish(&mut self, ready: &mut VecDeque<RecordBatch>) -> DfResult<()> {
        if !self.trailer_read {
            return Err(protocol("the COPY output ended before its trailer"));
        }
        if self.rows > 0 {
            ready.push_back(self.flush()?);
        }
        Ok(())
    }
}

type DfResult<T> = std::result::Result<T, DataFusionError>;

fn protocol(message: &str) -> DataFusionError {
    external(
        ConnectorError::retryable(format!("reading from PostgreSQL: {message}"))
            .with_hint("the connection was cut or the server answered out of turn; run again"),
    )
}

/// One column's Arrow builder, fed binary values of the type `arrow_type` chose for it.
enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Text(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Interval(IntervalMonthDayNanoBuilder),
}

impl ColumnBuilder {
    fn new(field: &Field) -> Self {
        match field.data_type() {
            DataType::Boolean => Self::Bool(BooleanBuilder::new()),
            DataType::Int16 => Self::Int16(Int16Builder::new()),
            DataType::Int32 => Self::Int32(Int32Builder::new()),
            DataType::Int64 => Self::Int64(Int64Builder::new()),
            DataType::Float32 => Self::Float32(Float32Builder::new()),
            DataType::Float64 => Self::Float64(Float64Builder::new()),
            DataType::Decimal128(p, s) => Self::Decimal(Decimal128Builder::new(), *p, *s),
            DataType::Binary => Self::Binary(BinaryBuilder::new()),
            DataType::Date32 => Self::Date(Date32Builder::new()),
            DataType::Time64(_) => Self::Time(Time64MicrosecondBuilder::new()),
            DataType::Timestamp(_, tz) => {
                Self::Timestamp(TimestampMicrosecondBuilder::new(), tz.clone())
            }
            DataType::Interval(_) => Self::Interval(IntervalMonthDayNanoBuilder::new()),
            _ => Self::Text(StringBuilder::new()),
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Decimal(b, ..) => b.append_null(),
            Self::Text(b) => b.append_null(),
            Self::Binary(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Time(b) => b.append_null(),
            Self::Timestamp(b, _) => b.append_null(),
            Self::Interval(b) => b.append_null(),
        }
    }

    fn append(&mut self, v: &[u8], column: &str) -> DfResult<()> {
        let wrong = || {
            protocol(&format!(
                "a value of column \"{column}\" has {} bytes, which its type never has",
                v.len()
            ))
        };
        let be8 = |v: &[u8]| -> DfResult<[u8; 8]> { v.try_into().map_err(|_| wrong()) };
        match self {
            Self::Bool(b) => b.append_value(*v.first().ok_or_else(wrong)? != 0),
            Self::Int16(b) => {
                b.append_value(i16::from_be_bytes(v.try_into().map_err(|_| wrong())?))
            }
            Self::Int32(b) => {
                b.append_value(i32::from_be_bytes(v.try_into().map_err(|_| wrong())?))
            }
            Self::Int64(b) => b.append_value(i64::from_be_bytes(be8(v)?)),
            Self::Float32(b) => {
                b.append_value(f32::from_be_bytes(v.try_into().map_err(|_| wrong())?))
            }
            Self::Float64(b) => b.append_value(f64::from_be_bytes(be8(v)?)),
            Self::Decimal(b, p, s) => b.append_value(numeric(v, *p, *s, column)?),
            Self::Text(b) => b.append_value(std::str::from_utf8(v).map_err(|_| {
                misfit(
                    column,
                    "text that is not UTF-8",
                    "Arrow cannot hold",
                    "set the database's client encoding to UTF8",
                )
            })?),
            Self::Binary(b) => b.append_value(v),
            Self::Date(b) => {
                let days = i32::from_be_bytes(v.try_into().map_err(|_| wrong())?);
                if days == i32::MAX || days == i32::MIN {
                    return Err(infinite(column, "date"));
                }
                b.append_value(days + EPOCH_DAYS)
            }
            Self::Time(b) => b.append_value(i64::from_be_bytes(be8(v)?)),
            Self::Timestamp(b, _) => {
                let micros = i64::from_be_bytes(be8(v)?);
                if micros == i64::MAX || micros == i64::MIN {
                    return Err(infinite(column, "timestamp"));
                }
                b.append_value(micros + EPOCH_MICROS)
            }
            Self::Interval(b) => {
                if v.len() != 16 {
                    return Err(wrong());
                }
                let micros = i64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
                let days = i32::from_be_bytes(v[8..12].try_into().expect("4 bytes"));
                let months = i32::from_be_bytes(v[12..].try_into().expect("4 bytes"));
                b.append_value(IntervalMonthDayNano::new(months, days, micros * 1_000))
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Decimal(b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .expect("precision and scale were checked"),
            ),
            Self::Text(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish()),
            Self::Timestamp(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            Self::Interval(b) => Arc::new(b.finish()),
        }
    }
}

fn infinite(column: &str, ty: &str) -> DataFusionError {
    misfit(
        column,
        &format!("an infinite {ty}"),
        "no other database or file format can hold",
        "filter it out or replace it in a query source (CASE WHEN isfinite(col) ...)",
    )
}

/// A binary numeric (base-10000 digits) as the unscaled i128 of a Decimal128(`precision`, `scale`).
fn numeric(v: &[u8], precision: u8, scale: i8, column: &str) -> DfResult<i128> {
    if v.len() < 8 {
        return Err(protocol(&format!(
            "a numeric of column \"{column}\" is cut short"
        )));
    }
    let ndigits = u16::from_be_bytes([v[0], v[1]]) as usize;
    let weight = i16::from_be_bytes([v[2], v[3]]) as i32;
    let sign = u16::from_be_bytes([v[4], v[5]]);
    let special = match sign {
        0xC000 => Some("NaN"),
        0xD000 => Some("Infinity"),
        0xF000 => Some("-Infinity"),
        _ => None,
    };
    if let Some(word) = special {
        return Err(misfit(
            column,
            word,
            "a decimal column cannot hold",
            "filter it out or replace it in a query source",
        ));
    }
    if v.len() < 8 + 2 * ndigits {
        return Err(protocol(&format!(
            "a numeric of column \"{column}\" is cut short"
        )));
    }
    let scale = scale as i32;
    let too_big = || {
        let text = numeric_text(v);
        misfit(
            column,
            &text,
            &format!("does not fit decimal({precision},{scale})"),
            "cast it in a query source to numeric(p,s) with room for it (p up to 38), or to text",
        )
    };
    let mut unscaled: i128 = 0;
    for i in 0..ndigits {
        let digit = u16::from_be_bytes([v[8 + 2 * i], v[9 + 2 * i]]) as i128;
        // This digit is worth digit * 10000^(weight - i); unscaled, times 10^scale.
        let power = 4 * (weight - i as i32) + scale;
        let part = if power >= 0 {
            10i128
                .checked_pow(power as u32)
                .and_then(|p| digit.checked_mul(p))
                .ok_or_else(too_big)?
        } else {
            let divisor = 10i128.checked_pow((-power) as u32).unwrap_or(i128::MAX);
            if digit % divisor != 0 {
                return Err(too_big());
            }
            digit / divisor
        };
        unscaled = unscaled.checked_add(part).ok_or_else(too_big)?;
    }
    if unscaled >= 10i128.pow(precision as u32) {
        return Err(too_big());
    }
    Ok(if sign == 0x4000 { -unscaled } else { unscaled })
}

/// A binary numeric as decimal text, for error messages.
fn numeric_text(v: &[u8]) -> String {
    let ndigits = u16::from_be_bytes([v[0], v[1]]) as usize;
    let weight = i16::from_be_bytes([v[2], v[3]]) as i32;
    let negative = u16::from_be_bytes([v[4], v[5]]) == 0x4000;
    let digits: Vec<u16> = (0..ndigits)
        .filter_map(|i| v.get(8 + 2 * i..10 + 2 * i))
        .map(|d| u16::from_be_bytes([d[0], d[1]]))
        .collect();
    let mut int = String::new();
    for e in (0..=weight.max(0)).rev() {
        let i = weight - e;
        let d = digits
            .get(i as usize)
            .copied()
            .filter(|_| i >= 0)
            .unwrap_or(0);
        if int.is_empty() {
            int = d.to_string();
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    let mut frac = String::new();
    for i in (weight + 1).max(0)..digits.len() as i32 {
        let skipped = if frac.is_empty() {
            (-(weight + 1)).max(0)
        } else {
            0
        };
        for _ in 0..skipped {
            frac.push_str("0000");
        }
        frac.push_str(&format!("{:04}", digits[i as usize]));
    }
    let frac = frac.trim_end_matches('0');
    let sign = if negative { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 12345678.9 as PostgreSQL sends it: digits 1234 5678 9000, weight 1, dscale 1.
    const BIG: [u8; 14] = [0, 3, 0, 1, 0, 0, 0, 1, 0x04, 0xD2, 0x16, 0x2E, 0x23, 0x28];

    #[test]
    fn numerics_become_unscaled_decimals_at_the_columns_scale() {
        assert_eq!(numeric(&BIG, 12, 2, "x").unwrap(), 1_234_567_890);
        let negative = [0, 1, 0xFF, 0xFF, 0x40, 0, 0, 4, 0x13, 0x88]; // -0.5
        assert_eq!(numeric(&negative, 5, 4, "x").unwrap(), -5_000);
        let zero = [0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(numeric(&zero, 5, 2, "x").unwrap(), 0);
    }

    #[test]
    fn a_numeric_that_does_not_fit_names_its_column_and_value() {
        let e = numeric(&BIG, 12, 0, "amount").unwrap_err().to_string();
        assert!(e.contains("\"amount\" holds 12345678.9"), "{e}");
        assert!(e.contains("decimal(12,0)"), "{e}");
        let e = numeric(&BIG, 9, 2, "amount").unwrap_err().to_string();
        assert!(e.contains("decimal(9,2)"), "{e}");
        let nan = [0, 0, 0, 0, 0xC0, 0, 0, 0];
        assert!(
            numeric(&nan, 9, 2, "amount")
                .unwrap_err()
                .to_string()
                .contains("NaN")
        );
    }

    #[test]
    fn declared_precision_and_scale_are_read_from_the_type_modifier() {
        assert_eq!(numeric_precision(((12 << 16) | 2) + 4), Some((12, 2)));
        assert_eq!(numeric_precision(-1), None);
        // numeric(2,-3), PostgreSQL 15's negative scale: 0x7fd is -3 in 11 bits.
        assert_eq!(numeric_precision(((2 << 16) | 0x7fd) + 4), Some((2, -3)));
    }

    #[test]
    fn tuples_split_across_chunks_are_decoded_whole() {
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend([0u8; 8]);
        // 1960-01-01 00:00:00 is 40 years before PostgreSQL's epoch.
        let before_1970: i64 = -1_262_304_000_000_000;
        bytes.extend(2i16.to_be_bytes());
        bytes.extend(8i32.to_be_bytes());
        bytes.extend(before_1970.to_be_bytes());
        bytes.extend(2i32.to_be_bytes());
        bytes.extend(b"ok");
        bytes.extend(2i16.to_be_bytes());
        bytes.extend((-1i32).to_be_bytes());
        bytes.extend((-1i32).to_be_bytes());
        bytes.extend((-1i16).to_be_bytes());
        let mut decoder = CopyDecoder::new(schema);
        let mut ready = VecDeque::new();
        for chunk in bytes.chunks(3) {
            decoder
                .feed(&Bytes::copy_from_slice(chunk), &mut ready)
                .unwrap();
        }
        decoder.finish(&mut ready).unwrap();
        let batch = ready.pop_front().unwrap();
        let at = arrow::util::display::array_value_to_string(batch.column(0), 0).unwrap();
        assert_eq!(at, "1960-01-01T00:00:00");
        assert_eq!(batch.num_rows(), 2);
        assert!(batch.column(1).is_null(1));
    }
}
