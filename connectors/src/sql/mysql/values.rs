//! Arrow batches to MySQL/MariaDB multi-row `INSERT` text, and column types for new tables.
//!
//! Values are written as SQL literals (the session runs with `NO_BACKSLASH_ESCAPES`, so a quote is the
//! only character to double; bytes travel as `X'..'`), which the server converts to each column's type
//! under strict mode: a value that does not fit is an error for its row, never a silent truncation.

use std::fmt::Write;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Float64Array, Int64Array,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::error::{ConnectorError, Result};
use crate::sql::columns::Columns;
use crate::sql::declared::Declared;

/// One column, cast to the shape its literals are written from.
pub enum Column {
    Int(Int64Array),
    UInt(UInt64Array),
    Float(Float64Array),
    Bool(BooleanArray),
    /// Decimals and anything else written as quoted text.
    Text(StringArray),
    Bytes(BinaryArray),
    Date(Date32Array),
    Time(Time64MicrosecondArray),
    Timestamp(TimestampMicrosecondArray),
}

/// A batch ready to be written as literals, row by row: each column with its name.
pub type Literals = Columns<(String, Column)>;

impl Literals {
    pub fn new(batch: &RecordBatch) -> Result<Self> {
        Columns::convert(batch, |f, a| Ok((f.name().clone(), prepare(f, a)?)))
    }

    /// Appends `(v1, v2, ...)` for `row`, or for the columns at `only`.
    pub fn row(&self, row: usize, only: Option<&[usize]>, out: &mut String) -> Result<()> {
        out.push('(');
        let mut first = true;
        let mut one = |(name, column): &(String, Column)| -> Result<()> {
            if !first {
                out.push(',');
            }
            first = false;
            column.render(row, out).map_err(|message| {
                ConnectorError::data(format!("column \"{name}\": {message}"), Some(row))
                    .with_cause(crate::error::Cause::WrongType)
            })
        };
        match only {
            Some(indexes) => indexes.iter().try_for_each(|&i| one(&self.columns[i]))?,
            None => self.columns.iter().try_for_each(&mut one)?,
        }
        out.push(')');
        Ok(())
    }
}

impl Literals {
    /// Whether every column can travel in LOAD DATA's text form (bytes cannot: the file is utf8mb4).
    pub fn loadable(&self) -> bool {
        !self
            .columns
            .iter()
            .any(|(_, c)| matches!(c, Column::Bytes(_)))
    }

    /// The rows as a LOAD DATA file: tab-separated, `\N` for NULL, backslash escapes, one row a line.
    pub fn load_data(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.num_rows() * self.columns.len() * 12);
        let mut text = String::new();
        for row in 0..self.num_rows() {
            for (i, (name, column)) in self.columns.iter().enumerate() {
                if i > 0 {
                    out.push(b'\t');
                }
                text.clear();
                column.field(row, &mut text).map_err(|message| {
                    ConnectorError::data(format!("column \"{name}\": {message}"), Some(row))
                        .with_cause(crate::error::Cause::WrongType)
                })?;
                out.extend_from_slice(text.as_bytes());
            }
            out.push(b'\n');
        }
        Ok(out)
    }
}

fn prepare(field: &Field, array: &ArrayRef) -> Result<Column> {
    let strict = CastOptions::default();
    let cast = |to: DataType| {
        cast_with_options(array, &to, &strict).map_err(|e| {
            ConnectorError::fatal(format!(
                "column \"{}\" ({}) cannot be written to MySQL: {e}",
                field.name(),
                array.data_type()
            ))
        })
    };
    Ok(match array.data_type() {
        DataType::Dictionary(_, value) => {
            let plain = cast((**value).clone())?;
            return prepare(&Field::new(field.name(), (**value).clone(), true), &plain);
        }
        DataType::UInt64 => Column::UInt(array.as_primitive().clone()),
        t if t.is_integer() => Column::Int(cast(DataType::Int64)?.as_primitive().clone()),
        t if t.is_floating() => Column::Float(cast(DataType::Float64)?.as_primitive().clone()),
        DataType::Boolean => Column::Bool(array.as_boolean().clone()),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            Column::Bytes(cast(DataType::Binary)?.as_binary().clone())
        }
        DataType::Date32 | DataType::Date64 => {
            Column::Date(cast(DataType::Date32)?.as_primitive().clone())
        }
        DataType::Time32(_) | DataType::Time64(_) => Column::Time(
            cast(DataType::Time64(TimeUnit::Microsecond))?
                .as_primitive()
                .clone(),
        ),
        DataType::Timestamp(_, tz) => {
            let micros = cast(DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))?;
            let values: &TimestampMicrosecondArray = micros.as_primitive();
            Column::Timestamp(values.clone().with_timezone_opt(None::<String>))
        }
        _ => {
            column_type(field, false)?;
            Column::Text(cast(DataType::Utf8)?.as_string::<i32>().clone())
        }
    })
}

impl Column {
    fn render(&self, row: usize, out: &mut String) -> std::result::Result<(), String> {
        if self.is_null(row) {
            out.push_str("NULL");
            return Ok(());
        }
        match self {
            Column::Int(a) => write!(out, "{}", a.value(row)).expect("string write"),
            Column::UInt(a) => write!(out, "{}", a.value(row)).expect("string write"),
            Column::Float(a) => {
                let v = a.value(row);
                if !v.is_finite() {
                    return Err(format!(
                        "{v} cannot be stored: MySQL has no NaN or infinity"
                    ));
                }
                write!(out, "{v:e}").expect("string write")
            }
            Column::Bool(a) => out.push_str(if a.value(row) { "1" } else { "0" }),
            Column::Text(a) => quote(a.value(row), out),
            Column::Bytes(a) => {
                out.push_str("X'");
                for b in a.value(row) {
                    write!(out, "{b:02x}").expect("string write");
                }
                out.push('\'');
            }
            Column::Date(_) | Column::Time(_) | Column::Timestamp(_) => {
                out.push('\'');
                self.temporal(row, out)?;
                out.push('\'');
            }
        }
        Ok(())
    }
}

impl Column {
    /// One field of a LOAD DATA file.
    fn field(&self, row: usize, out: &mut String) -> std::result::Result<(), String> {
        match self {
            Column::Text(a) if a.is_valid(row) => {
                for c in a.value(row).chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\0' => out.push_str("\\0"),
                        c => out.push(c),
                    }
                }
                Ok(())
            }
            Column::Date(_) | Column::Time(_) | Column::Timestamp(_) if !self.is_null(row) => {
                self.temporal(row, out)
            }
            _ if self.is_null(row) => {
                out.push_str("\\N");
                Ok(())
            }
            _ => self.render(row, out),
        }
    }

    /// A date, time or timestamp as MySQL reads it, unquoted; nothing for other columns.
    fn temporal(&self, row: usize, out: &mut String) -> std::result::Result<(), String> {
        match self {
            Column::Date(a) => {
                let d = a.value_as_date(row).ok_or("date out of range")?;
                write!(out, "{}", d.format("%Y-%m-%d")).expect("string write")
            }
            Column::Time(a) => {
                let t = a.value_as_time(row).ok_or("time out of range")?;
                write!(out, "{}", t.format("%H:%M:%S%.6f")).expect("string write")
            }
            Column::Timestamp(a) => {
                let t = a.value_as_datetime(row).ok_or("timestamp out of range")?;
                write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S%.6f")).expect("string write")
            }
            _ => {}
        }
        Ok(())
    }

    fn is_null(&self, row: usize) -> bool {
        match self {
            Column::Int(a) => a.is_null(row),
            Column::UInt(a) => a.is_null(row),
            Column::Float(a) => a.is_null(row),
            Column::Bool(a) => a.is_null(row),
            Column::Text(a) => a.is_null(row),
            Column::Bytes(a) => a.is_null(row),
            Column::Date(a) => a.is_null(row),
            Column::Time(a) => a.is_null(row),
            Column::Timestamp(a) => a.is_null(row),
        }
    }
}

/// A string literal under `NO_BACKSLASH_ESCAPES`: quotes doubled; a NUL byte goes as hex.
pub(crate) fn quote(value: &str, out: &mut String) {
    if value.contains('\0') {
        out.push_str("_utf8mb4 X'");
        for b in value.as_bytes() {
            write!(out, "{b:02x}").expect("string write");
        }
        out.push('\'');
        return;
    }
    out.push('\'');
    for (i, part) in value.split('\'').enumerate() {
        if i > 0 {
            out.push_str("''");
        }
        out.push_str(part);
    }
    out.push('\'');
}

/// The column type `create = true` gives an Arrow field; key columns get indexable types.
pub fn column_type(field: &Field, is_key: bool) -> Result<String> {
    use DataType::*;
    let json = field
        .metadata()
        .get("ARROW:extension:name")
        .map(String::as_str)
        == Some("arrow.json");
    let declared = Declared::of(field);
    Ok(match field.data_type() {
        // A source's declared text types, where MySQL has them (longer ones are LONGTEXT: MySQL
        // counts every VARCHAR's most bytes against a row's 65,535).
        Utf8 | LargeUtf8 | Utf8View if declared == Some(Declared::Uuid) => "CHAR(36)".into(),
        Utf8 | LargeUtf8 | Utf8View if matches!(declared, Some(Declared::Varchar(n)) if n <= 255) => {
            declared.expect("checked").to_string().to_uppercase()
        }
        Utf8 | LargeUtf8 | Utf8View if matches!(declared, Some(Declared::Char(n)) if n <= 255) => {
            declared.expect("checked").to_string().to_uppercase()
        }
        Boolean => "BOOLEAN".into(),
        Int8 => "TINYINT".into(),
        Int16 => "SMALLINT".into(),
        Int32 => "INT".into(),
        Int64 => "BIGINT".into(),
        UInt8 => "TINYINT UNSIGNED".into(),
        UInt16 => "SMALLINT UNSIGNED".into(),
        UInt32 => "INT UNSIGNED".into(),
        UInt64 => "BIGINT UNSIGNED".into(),
        Float16 | Float32 => "FLOAT".into(),
        Float64 => "DOUBLE".into(),
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s)
            if *s >= 0 && *p <= 65 && *s <= 30 =>
        {
            format!("DECIMAL({p},{s})")
        }
        Utf8 | LargeUtf8 | Utf8View if is_key => "VARCHAR(255)".into(),
        Utf8 | LargeUtf8 | Utf8View if json => "JSON".into(),
        Utf8 | LargeUtf8 | Utf8View => "LONGTEXT".into(),
        FixedSizeBinary(n) if *n <= 255 => format!("BINARY({n})"),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) if is_key => "VARBINARY(255)".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "LONGBLOB".into(),
        Date32 | Date64 => "DATE".into(),
        Time32(_) | Time64(_) => "TIME(6)".into(),
        Timestamp(_, _) => "DATETIME(6)".into(),
        Dictionary(_, value) => {
            return column_type(&Field::new(field.name(), (**value).clone(), true), is_key);
        }
        other => {
            return Err(ConnectorError::fatal(format!(
                "column \"{}\" has type {other}, which has no MySQL column type",
                field.name()
            ))
            .with_hint("cast it in a step, for example CAST(col AS VARCHAR)"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_data_fields_escape_tabs_newlines_and_backslashes() {
        let batch = RecordBatch::try_from_iter(vec![
            (
                "t",
                std::sync::Arc::new(StringArray::from(vec![Some("a\tb\\c\nd"), None])) as ArrayRef,
            ),
            (
                "n",
                std::sync::Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
        ])
        .unwrap();
        let file = Literals::new(&batch).unwrap().load_data().unwrap();
        assert_eq!(
            String::from_utf8(file).unwrap(),
            "a\\tb\\\\c\\nd\t1\n\\N\t\\N\n"
        );
    }

    #[test]
    fn quotes_are_doubled_and_nul_goes_as_hex() {
        let mut out = String::new();
        quote("it's `x`; DROP", &mut out);
        assert_eq!(out, "'it''s `x`; DROP'");
        out.clear();
        quote("a\0b", &mut out);
        assert_eq!(out, "_utf8mb4 X'610062'");
    }
}
