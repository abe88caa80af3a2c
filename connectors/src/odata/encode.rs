//! Arrow rows to OData: each row a JSON object with exact types (Edm.Decimal as a number written from
//! its digits, Edm.DateTimeOffset in ISO 8601 UTC, Edm.Date, Edm.Guid, booleans, nulls), columns named
//! `<nav>@odata.bind` passed through as references, and the key as a URL segment.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{ConnectorError, Result};

/// Whether an Arrow type can be sent; the error names the column.
pub fn check_type(name: &str, t: &DataType) -> Result<()> {
    match t {
        t if t.is_numeric() => Ok(()),
        DataType::Boolean
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Date32
        | DataType::Date64
        | DataType::Timestamp(_, _) => Ok(()),
        DataType::Dictionary(_, v) => check_type(name, v),
        other => Err(ConnectorError::fatal(format!(
            "column \"{name}\" has type {other}, which Ferry does not send to OData services"
        ))
        .with_hint("cast it in a step, for example CAST(col AS VARCHAR)")),
    }
}

/// The JSON text of every row, without the `skip` columns.
pub fn rows(batch: &RecordBatch, skip: &[String]) -> Result<Vec<String>> {
    let schema = batch.schema();
    let columns: Vec<(usize, String)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !skip.contains(f.name()))
        .map(|(i, f)| (i, json_string(f.name())))
        .collect();
    let prepared: Vec<ArrayRef> = columns
        .iter()
        .map(|(i, _)| prepare(batch.column(*i)))
        .collect::<Result<_>>()?;
    let options = FormatOptions::default();
    let formatters = prepared
        .iter()
        .map(|a| ArrayFormatter::try_new(a.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut json = String::with_capacity(64 * columns.len());
        json.push('{');
        let mut first = true;
        for ((_, name), (array, fmt)) in columns.iter().zip(prepared.iter().zip(&formatters)) {
            if !first {
                json.push(',');
            }
            first = false;
            json.push_str(name);
            json.push(':');
            if array.is_null(row) {
                json.push_str("null");
                continue;
            }
            let text = fmt.value(row).to_string();
            match array.data_type() {
                t if t.is_numeric() => {
                    if text.parse::<f64>().is_ok_and(f64::is_finite) {
                        json.push_str(&text);
                    } else {
                        json.push_str("null");
                    }
                }
                DataType::Boolean => json.push_str(&text),
                _ => json.push_str(&json_string(&text)),
            }
        }
        json.push('}');
        out.push(json);
    }
    Ok(out)
}

/// Puts a column in the shape its JSON text is made from: timestamps in UTC with a Z, text plain.
fn prepare(column: &ArrayRef) -> Result<ArrayRef> {
    let out = match column.data_type() {
        DataType::Timestamp(unit, _) => {
            let utc = DataType::Timestamp(*unit, Some("+00:00".into()));
            let as_utc = arrow::compute::cast(column, &utc)?;
            let text = arrow::compute::cast(&as_utc, &DataType::Utf8)?;
            let z: arrow::array::StringArray = text
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(|s| s.replace("+00:00", "Z")))
                .collect();
            std::sync::Arc::new(z) as ArrayRef
        }
        DataType::Date64 => arrow::compute::cast(column, &DataType::Date32)?,
        DataType::Dictionary(_, v) => arrow::compute::cast(column, v)?,
        DataType::LargeUtf8 | DataType::Utf8View => arrow::compute::cast(column, &DataType::Utf8)?,
        _ => column.clone(),
    };
    Ok(out)
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// The key of every row as a URL segment: `(<guid>)` for the primary key, `(accountnumber='A-1')` or
/// `(a='x',b=2)` for an alternate key.
pub fn key_segments(batch: &RecordBatch, key: &[String], primary: bool) -> Result<Vec<String>> {
    let options = FormatOptions::default();
    let columns = key
        .iter()
        .map(|k| {
            let i = batch.schema().index_of(k)?;
            Ok((k.clone(), prepare(batch.column(i))?))
        })
        .collect::<Result<Vec<_>>>()?;
    let formatters = columns
        .iter()
        .map(|(_, a)| ArrayFormatter::try_new(a.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let mut parts = Vec::with_capacity(columns.len());
        for ((name, array), fmt) in columns.iter().zip(&formatters) {
            if array.is_null(row) {
                return Err(ConnectorError::data(
                    format!("key column \"{name}\" is empty"),
                    Some(row),
                )
                .with_cause("a key value is missing"));
            }
            let text = fmt.value(row).to_string();
            parts.push((name.clone(), text, array.data_type().is_numeric()));
        }
        out.push(segment(&parts, primary));
    }
    Ok(out)
}

/// `(<guid>)` for a primary key, `(name='text',n=2)` for an alternate key, percent-encoded.
/// Each part is (name, value as text, whether the value is a number).
pub fn segment(parts: &[(String, String, bool)], primary: bool) -> String {
    let literals: Vec<String> = parts
        .iter()
        .map(|(name, text, number)| {
            let literal = if *number || primary {
                text.clone()
            } else {
                format!("'{}'", text.replace('\'', "''"))
            };
            if primary {
                literal
            } else {
                format!("{name}={literal}")
            }
        })
        .collect();
    format!("({})", percent_encode(&literals.join(",")))
}

/// Percent-encodes what may not stand in a URL path segment.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'\''
            | b'='
            | b','
            | b'('
            | b')'
            | b':' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
