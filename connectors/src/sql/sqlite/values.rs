//! Arrow columns to SQLite values and column types.
//!
//! Each batch is first cast, column by column and vectorised, to one of five storage shapes (integer,
//! real, boolean, text, blob); binding a row is then a plain array read. Dates, timestamps and decimals
//! travel as ISO 8601 / decimal text, which SQLite's date functions and numeric affinity understand.

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use rusqlite::types::ValueRef;

use crate::error::{ConnectorError, Result};
use crate::sql::columns::Columns;

/// The declared SQLite column type for an Arrow field, or why it has none.
pub fn column_type(field: &Field) -> Result<String> {
    let t = match field.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "INTEGER".to_string(),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "REAL".to_string(),
        DataType::Boolean => "BOOLEAN".to_string(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "TEXT".to_string(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "BLOB".to_string(),
        DataType::Date32 | DataType::Date64 => "DATE".to_string(),
        DataType::Timestamp(_, _) => "TIMESTAMP".to_string(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".to_string(),
        // A DECIMAL column has NUMERIC affinity: SQLite turns the text of a number into a double,
        // which keeps 15 digits. Longer decimals are kept as their exact text.
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s)
            if *p <= 15 =>
        {
            format!("DECIMAL({p},{s})")
        }
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "TEXT".to_string(),
        DataType::Dictionary(_, value) => {
            return column_type(&Field::new(field.name(), (**value).clone(), true));
        }
        other => {
            return Err(ConnectorError::fatal(format!(
                "column \"{}\" has type {other}, which SQLite cannot store",
                field.name()
            ))
            .with_hint("cast it in a step, for example CAST(col AS VARCHAR)"));
        }
    };
    Ok(t)
}

/// A batch cast to SQLite's storage shapes, ready to bind row by row.
pub type BindableBatch = Columns<Bindable>;

pub enum Bindable {
    Integer(Int64Array),
    Real(Float64Array),
    Boolean(BooleanArray),
    Text(StringArray),
    Blob(BinaryArray),
}

impl BindableBatch {
    pub fn new(batch: &RecordBatch) -> Result<Self> {
        Columns::convert(batch, bindable)
    }

    /// The value of column `col` in row `row`, borrowed for binding.
    pub fn value(&self, col: usize, row: usize) -> ValueRef<'_> {
        let column = &self.columns[col];
        let is_null = match column {
            Bindable::Integer(a) => a.is_null(row),
            Bindable::Real(a) => a.is_null(row),
            Bindable::Boolean(a) => a.is_null(row),
            Bindable::Text(a) => a.is_null(row),
            Bindable::Blob(a) => a.is_null(row),
        };
        if is_null {
            return ValueRef::Null;
        }
        match column {
            Bindable::Integer(a) => ValueRef::Integer(a.value(row)),
            Bindable::Real(a) => ValueRef::Real(a.value(row)),
            Bindable::Boolean(a) => ValueRef::Integer(a.value(row) as i64),
            Bindable::Text(a) => ValueRef::Text(a.value(row).as_bytes()),
            Bindable::Blob(a) => ValueRef::Blob(a.value(row)),
        }
    }
}

fn bindable(field: &Field, column: &ArrayRef) -> Result<Bindable> {
    let strict = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    let cast_to = |to: &DataType| {
        cast_with_options(column, to, &strict).map_err(|e| {
            ConnectorError::data(
                format!(
                    "column \"{}\" cannot be stored in SQLite: {e}",
                    field.name()
                ),
                None,
            )
        })
    };
    let out = match field.data_type() {
        DataType::Dictionary(_, value) => {
            let plain = cast_to(value)?;
            return bindable(&Field::new(field.name(), (**value).clone(), true), &plain);
        }
        DataType::Boolean => Bindable::Boolean(downcast::<BooleanArray>(column.clone())),
        t if t.is_integer() => Bindable::Integer(downcast(cast_to(&DataType::Int64)?)),
        t if t.is_floating() => Bindable::Real(downcast(cast_to(&DataType::Float64)?)),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => Bindable::Blob(downcast(cast_to(&DataType::Binary)?)),
        DataType::Timestamp(_, _) => Bindable::Text(iso_timestamps(column)?),
        _ => {
            column_type(field)?;
            Bindable::Text(downcast(cast_to(&DataType::Utf8)?))
        }
    };
    Ok(out)
}

/// Timestamps as `YYYY-MM-DD HH:MM:SS[.fff][+00:00]`, the form SQLite's date functions read.
fn iso_timestamps(column: &ArrayRef) -> Result<StringArray> {
    let text = cast_with_options(column, &DataType::Utf8, &CastOptions::default())?;
    let text = downcast::<StringArray>(text);
    Ok(text
        .iter()
        .map(|v| v.map(|s| s.replacen('T', " ", 1)))
        .collect())
}

fn downcast<T: Array + Clone + 'static>(array: ArrayRef) -> T {
    array
        .as_any()
        .downcast_ref::<T>()
        .expect("cast produced the requested type")
        .clone()
}
