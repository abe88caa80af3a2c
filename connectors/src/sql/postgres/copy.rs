//! Arrow batches to PostgreSQL's binary COPY format, encoded for the target's own column types.
//!
//! Binary COPY spares the server the text parsing that makes `COPY ... CSV` slow; the price is that
//! every value must already be in the column's exact binary form (an `integer` column takes 4 bytes,
//! never 8). So each Arrow column is first cast to the shape of its target column, vectorised, and a
//! value that does not fit (an overflow, a string that is not a UUID) is reported by row before a byte
//! is sent. Encoding is then a plain loop over rows.
//!
//! ```text
//! header   "PGCOPY\n\xff\r\n\0"  flags:i32=0  extension:i32=0
//! row      fields:i16  (len:i32 bytes | -1 for NULL) x fields
//! trailer  -1:i16
//! ```

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    FixedSizeBinaryArray, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;

use super::types::PgType;
use crate::error::{ConnectorError, Result};

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Days and microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// One column, cast to what its target column takes.
enum Column {
    Bool(BooleanArray),
    Int2(Int16Array),
    Int4(Int32Array),
    Int8(Int64Array),
    Float4(Float32Array),
    Float8(Float64Array),
    /// Decimals keep their scale; anything else goes through its decimal text.
    Decimal(Decimal128Array, u32),
    NumericText(StringArray),
    Text(StringArray),
    Jsonb(StringArray),
    Bytes(BinaryArray),
    Uuid(FixedSizeBinaryArray),
    Date(Date32Array),
    Time(Time64MicrosecondArray),
    Timestamp(TimestampMicrosecondArray),
}

/// Encodes `batch` (whose columns are in the target's order `types`) as one binary COPY stream.
pub fn encode(batch: &RecordBatch, types: &[PgType]) -> Result<Vec<u8>> {
    let schema = batch.schema();
    let columns = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .zip(types)
        .map(|((field, array), ty)| prepare(field, array, *ty))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(HEADER.len() + batch.get_array_memory_size() + 64);
    out.extend_from_slice(HEADER);
    let fields = columns.len() as i16;
    for row in 0..batch.num_rows() {
        out.extend_from_slice(&fields.to_be_bytes());
        for column in &columns {
            column.write(row, &mut out)?;
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(out)
}

fn prepare(field: &Field, array: &ArrayRef, ty: PgType) -> Result<Column> {
    let cast = |to: DataType| cast_checked(field, array, &to, ty);
    Ok(match ty {
        PgType::Bool => Column::Bool(cast(DataType::Boolean)?.as_boolean().clone()),
        PgType::Int2 => Column::Int2(cast(DataType::Int16)?.as_primitive().clone()),
        PgType::Int4 => Column::Int4(cast(DataType::Int32)?.as_primitive().clone()),
        PgType::Int8 => Column::Int8(cast(DataType::Int64)?.as_primitive().clone()),
        PgType::Float4 => Column::Float4(cast(DataType::Float32)?.as_primitive().clone()),
        PgType::Float8 => Column::Float8(cast(DataType::Float64)?.as_primitive().clone()),
        PgType::Numeric => match array.data_type() {
            DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s)
                if *s >= 0 =>
            {
                let wide = cast(DataType::Decimal128((*p).max(1), *s))?;
                Column::Decimal(wide.as_primitive().clone(), *s as u32)
            }
            t if t.is_integer() => {
                Column::Decimal(cast(DataType::Decimal128(38, 0))?.as_primitive().clone(), 0)
            }
            _ => Column::NumericText(cast(DataType::Utf8)?.as_string::<i32>().clone()),
        },
        PgType::Text | PgType::Json => Column::Text(text(field, array, ty)?),
        PgType::Jsonb => Column::Jsonb(text(field, array, ty)?),
        PgType::Bytea => Column::Bytes(cast(DataType::Binary)?.as_binary().clone()),
        PgType::Uuid => match array.data_type() {
            DataType::FixedSizeBinary(16) => Column::Uuid(array.as_fixed_size_binary().clone()),
            _ => Column::Uuid(uuids(field, &cast(DataType::Utf8)?)?),
        },
        PgType::Date => Column::Date(cast(DataType::Date32)?.as_primitive().clone()),
        PgType::Time => Column::Time(
            cast(DataType::Time64(TimeUnit::Microsecond))?
                .as_primitive()
                .clone(),
        ),
        PgType::Timestamp | PgType::Timestamptz => {
            // The instant in UTC: tz-aware sources are stored as UTC, naive ones taken as written.
            let tz = match array.data_type() {
                DataType::Timestamp(_, tz) => tz.clone(),
                _ => None,
            };
            let micros = cast(DataType::Timestamp(TimeUnit::Microsecond, tz))?;
            let values: &TimestampMicrosecondArray = micros.as_primitive();
            Column::Timestamp(values.clone().with_timezone_opt(None::<String>))
        }
    })
}

/// Text for text and JSON columns: strings as they are, other types in their display form.
fn text(field: &Field, array: &ArrayRef, ty: PgType) -> Result<StringArray> {
    let as_text = match array.data_type() {
        DataType::Timestamp(_, _) => {
            cast_with_options(array, &DataType::Utf8, &CastOptions::default())?
        }
        _ => cast_checked(field, array, &DataType::Utf8, ty)?,
    };
    Ok(as_text.as_string::<i32>().clone())
}

/// Casts a column, naming the first row whose value does not fit instead of failing the whole batch.
fn cast_checked(field: &Field, array: &ArrayRef, to: &DataType, ty: PgType) -> Result<ArrayRef> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    let safe = CastOptions {
        safe: true,
        format_options: FormatOptions::default(),
    };
    let cast = cast_with_options(array, to, &safe).map_err(|e| {
        ConnectorError::fatal(format!(
            "column \"{}\" ({}) cannot be written to a PostgreSQL {} column: {e}",
            field.name(),
            array.data_type(),
            ty.name()
        ))
    })?;
    if cast.null_count() != array.null_count() {
        let row = (0..array.len())
            .find(|&i| array.is_valid(i) && cast.is_null(i))
            .unwrap_or(0);
        return Err(misfit(field, array, row, ty));
    }
    Ok(cast)
}

fn misfit(field: &Field, array: &ArrayRef, row: usize, ty: PgType) -> ConnectorError {
    let value = arrow::util::display::array_value_to_string(array, row).unwrap_or_default();
    ConnectorError::data(
        format!(
            "column \"{}\": value {value:?} does not fit PostgreSQL type {}",
            field.name(),
            ty.name()
        ),
        Some(row),
    )
    .with_cause(crate::error::Cause::WrongType)
}

fn uuids(field: &Field, text: &ArrayRef) -> Result<FixedSizeBinaryArray> {
    let strings = text.as_string::<i32>();
    let mut parsed = Vec::with_capacity(strings.len());
    for (row, value) in strings.iter().enumerate() {
        parsed.push(match value {
            None => None,
            Some(s) => Some(
                *uuid::Uuid::parse_str(s)
                    .map_err(|_| misfit(field, text, row, PgType::Uuid))?
                    .as_bytes(),
            ),
        });
    }
    Ok(FixedSizeBinaryArray::try_from_sparse_iter_with_size(
        parsed.into_iter(),
        16,
    )?)
}

impl Column {
    fn is_null(&self, row: usize) -> bool {
        match self {
            Column::Bool(a) => a.is_null(row),
            Column::Int2(a) => a.is_null(row),
            Column::Int4(a) => a.is_null(row),
            Column::Int8(a) => a.is_null(row),
            Column::Float4(a) => a.is_null(row),
            Column::Float8(a) => a.is_null(row),
            Column::Decimal(a, _) => a.is_null(row),
            Column::NumericText(a) | Column::Text(a) | Column::Jsonb(a) => a.is_null(row),
            Column::Bytes(a) => a.is_null(row),
            Column::Uuid(a) => a.is_null(row),
            Column::Date(a) => a.is_null(row),
            Column::Time(a) => a.is_null(row),
            Column::Timestamp(a) => a.is_null(row),
        }
    }

    fn write(&self, row: usize, out: &mut Vec<u8>) -> Result<()> {
        if self.is_null(row) {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            return Ok(());
        }
        fn fixed(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        match self {
            Column::Bool(a) => fixed(out, &[a.value(row) as u8]),
            Column::Int2(a) => fixed(out, &a.value(row).to_be_bytes()),
            Column::Int4(a) => fixed(out, &a.value(row).to_be_bytes()),
            Column::Int8(a) => fixed(out, &a.value(row).to_be_bytes()),
            Column::Float4(a) => fixed(out, &a.value(row).to_be_bytes()),
            Column::Float8(a) => fixed(out, &a.value(row).to_be_bytes()),
            Column::Text(a) => fixed(out, a.value(row).as_bytes()),
            Column::Jsonb(a) => {
                let v = a.value(row).as_bytes();
                out.extend_from_slice(&(v.len() as i32 + 1).to_be_bytes());
                out.push(1);
                out.extend_from_slice(v);
            }
            Column::Bytes(a) => fixed(out, a.value(row)),
            Column::Uuid(a) => fixed(out, a.value(row)),
            Column::Date(a) => fixed(out, &(a.value(row) - PG_EPOCH_DAYS).to_be_bytes()),
            Column::Time(a) => fixed(out, &a.value(row).to_be_bytes()),
            Column::Timestamp(a) => fixed(out, &(a.value(row) - PG_EPOCH_MICROS).to_be_bytes()),
            Column::Decimal(a, scale) => {
                let value = a.value(row);
                let mut digits = [0u8; 40];
                let mut n = 0;
                let mut rest = value.unsigned_abs();
                while rest > 0 || n == 0 {
                    digits[n] = b'0' + (rest % 10) as u8;
                    rest /= 10;
                    n += 1;
                }
                let scale = *scale as usize;
                while n < scale + 1 {
                    digits[n] = b'0';
                    n += 1;
                }
                digits[..n].reverse();
                let (int, frac) = digits[..n].split_at(n - scale);
                numeric(value < 0, int, frac, out);
            }
            Column::NumericText(a) => {
                let text = a.value(row).trim();
                numeric_text(text, out).ok_or_else(|| {
                    ConnectorError::data(
                        format!(
                            "value {text:?} is not a number a PostgreSQL numeric column holds (at most 131,072 digits before the point and 16,383 after)"
                        ),
                        Some(row),
                    )
                    .with_cause(crate::error::Cause::WrongType)
                })?;
            }
        }
        Ok(())
    }
}

/// PostgreSQL's numeric holds up to 131,072 digits before the point (here 131,068: 32,767 groups of
/// four, so that the weight fits its i16) and 16,383 after.
const MOST_INTEGER_DIGITS: i64 = 131_068;
const MOST_FRACTION_DIGITS: i64 = 16_383;

/// A decimal written as text (`-12.5`, `1e-3`, `NaN`) in PostgreSQL's numeric binary form.
fn numeric_text(text: &str, out: &mut Vec<u8>) -> Option<()> {
    if text.eq_ignore_ascii_case("nan") {
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0xC0, 0, 0, 0]);
        return Some(());
    }
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i32>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // Move the decimal point by the exponent, within what a numeric holds (checked before any
    // digit is written: `1e999999999` must not allocate a gigabyte of zeros).
    let mut point = int.len() as i64 + exponent as i64;
    let frac_digits = (int.len() + frac.len()) as i64 - point;
    if point > MOST_INTEGER_DIGITS || frac_digits > MOST_FRACTION_DIGITS {
        return None;
    }
    let mut all: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    if point < 0 {
        let pad = (-point) as usize;
        all.splice(0..0, std::iter::repeat_n(b'0', pad));
        point = 0;
    }
    let point = point as usize;
    if point > all.len() {
        all.resize(point, b'0');
    }
    let (int, frac) = all.split_at(point);
    numeric(negative, int, frac, out);
    Some(())
}

/// PostgreSQL's numeric: base-10000 digits with a weight, a sign and the display scale.
fn numeric(negative: bool, int: &[u8], frac: &[u8], out: &mut Vec<u8>) {
    let group = |chunk: &[u8]| {
        chunk
            .iter()
            .fold(0i16, |acc, d| acc * 10 + (d - b'0') as i16)
    };
    let mut groups: Vec<i16> = Vec::with_capacity((int.len() + frac.len()) / 4 + 2);
    let lead = int.len() % 4;
    if lead > 0 {
        groups.push(group(&int[..lead]));
    }
    groups.extend(int[lead..].chunks(4).map(group));
    let int_groups = groups.len() as i16;
    for chunk in frac.chunks(4) {
        let mut g = group(chunk);
        for _ in chunk.len()..4 {
            g *= 10;
        }
        groups.push(g);
    }
    let mut weight = int_groups - 1;
    let leading_zeros = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading_zeros);
    weight -= leading_zeros as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    if groups.is_empty() {
        weight = 0;
    }
    out.extend_from_slice(&(8 + 2 * groups.len() as i32).to_be_bytes());
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(frac.len() as i16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_of(text: &str) -> Vec<i16> {
        let mut out = Vec::new();
        numeric_text(text, &mut out).unwrap();
        out[4..]
            .chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numerics_are_base_10000_with_weight_and_scale() {
        // ndigits, weight, sign, dscale, digits...
        assert_eq!(numeric_of("12345.678"), vec![3, 1, 0, 3, 1, 2345, 6780]);
        assert_eq!(numeric_of("-0.0001"), vec![1, -1, 0x4000, 4, 1]);
        assert_eq!(numeric_of("0.00"), vec![0, 0, 0, 2]);
        assert_eq!(numeric_of("1e4"), vec![1, 1, 0, 0, 1]);
        assert_eq!(numeric_of("2.5e-3"), vec![1, -1, 0, 4, 25]);
        assert!(numeric_text("12a", &mut Vec::new()).is_none());
    }

    #[test]
    fn numbers_beyond_what_a_numeric_holds_are_refused_without_allocating() {
        for huge in [
            "1e999999999",
            "-1e-999999999",
            "1e131069",
            "1e-16384",
            "1e2147483647",
        ] {
            assert!(numeric_text(huge, &mut Vec::new()).is_none(), "{huge}");
        }
        // The edges themselves are numbers.
        assert_eq!(numeric_of("1e131067")[..4], [1, 32766, 0, 0]);
        assert_eq!(numeric_of("1e-16383")[..4], [1, -4096, 0, 16383]);
    }

    #[test]
    fn decimals_encode_like_their_text() {
        let array = Decimal128Array::from(vec![Some(-1234567), Some(5), None])
            .with_precision_and_scale(12, 2)
            .unwrap();
        let column = Column::Decimal(array, 2);
        let mut from_decimal = Vec::new();
        column.write(0, &mut from_decimal).unwrap();
        column.write(1, &mut from_decimal).unwrap();
        let mut from_text = Vec::new();
        numeric_text("-12345.67", &mut from_text).unwrap();
        numeric_text("0.05", &mut from_text).unwrap();
        assert_eq!(from_decimal, from_text);
    }
}
