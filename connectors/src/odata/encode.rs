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

/// The JSON text of every row, without the `skip` columns; a row holding a number JSON cannot carry
/// (NaN, infinity) is an error for that row naming the column, never sent with the value turned
/// into null (which would wipe the attribute of an existing record).
pub fn rows(batch: &RecordBatch, skip: &[String]) -> Result<Vec<Result<String>>> {
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
    'rows: for row in 0..batch.num_rows() {
        let mut json = String::with_capacity(64 * columns.len());
        json.push('{');
        let mut first = true;
        for ((i, name), (array, fmt)) in columns.iter().zip(prepared.iter().zip(&formatters)) {
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
                        let column = schema.field(*i).name();
                        out.push(Err(ConnectorError::data(
                            format!("column \"{column}\" holds {text}, which an OData service cannot take (JSON has no NaN or infinity)"),
                            Some(row),
                        )
                        .with_cause(crate::error::Cause::OutOfRange)
                        .with_hint("replace it in a step, e.g. CASE WHEN isnan(x) THEN NULL ELSE x END, or correct the source")));
                        continue 'rows;
                    }
                }
                DataType::Boolean => json.push_str(&text),
                _ => json.push_str(&json_string(&text)),
            }
        }
        json.push('}');
        out.push(Ok(json));
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
                .with_cause(crate::error::Cause::KeyMissing));
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

/// Every row's key in the form sync compares keys in (see [`normal_key_part`]); `None` for a row
/// with an empty key part, which addresses no record.
pub fn key_identities(batch: &RecordBatch, key: &[String]) -> Result<Vec<Option<String>>> {
    let options = FormatOptions::default();
    let columns = key
        .iter()
        .map(|k| prepare(batch.column(batch.schema().index_of(k)?)))
        .collect::<Result<Vec<_>>>()?;
    let formatters = columns
        .iter()
        .map(|a| ArrayFormatter::try_new(a.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            let mut parts = Vec::with_capacity(columns.len());
            for (array, fmt) in columns.iter().zip(&formatters) {
                if array.is_null(row) {
                    return None;
                }
                let text = fmt.value(row).to_string();
                parts.push(normal_key_part(&text, array.data_type().is_numeric()));
            }
            Some(parts.join("\u{1f}"))
        })
        .collect())
}

/// A key read back from the service, in the form of [`key_identities`].
pub fn record_identity(record: &serde_json::Value, key: &[String]) -> Option<String> {
    let mut parts = Vec::with_capacity(key.len());
    for k in key {
        parts.push(match &record[k] {
            serde_json::Value::Null => return None,
            serde_json::Value::String(s) => normal_key_part(s, false),
            serde_json::Value::Number(n) => normal_key_part(&n.to_string(), true),
            other => other.to_string(),
        });
    }
    Some(parts.join("\u{1f}"))
}

/// One key part in the service's own normal form, so that a key written and the same key read back
/// compare equal: numbers by value (`5.00`, `5.0` and `5` are one key), text without case (Dataverse
/// compares alternate keys and GUIDs without case, F&O its `dataAreaId`). Folding case can only
/// make sync keep a record, never delete one the source has.
pub fn normal_key_part(text: &str, number: bool) -> String {
    if !number {
        return text.to_lowercase();
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::with_capacity(text.len());
    if negative && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Percent-encodes what may not stand in a URL path segment or a query value.
pub fn percent_encode(s: &str) -> String {
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

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn keys_written_and_read_back_compare_in_the_services_normal_form() {
        assert_eq!(normal_key_part("5.00", true), normal_key_part("5", true));
        assert_eq!(normal_key_part("-0.0", true), "0");
        assert_eq!(normal_key_part("007.50", true), "7.5");
        assert_ne!(normal_key_part("7.5", true), normal_key_part("75", true));
        assert_eq!(
            normal_key_part("9F2C1E3A-0B4D-4C5E-8F6A-7B8C9D0E1F2A", false),
            "9f2c1e3a-0b4d-4c5e-8f6a-7b8c9d0e1f2a"
        );
        assert_eq!(
            normal_key_part("USMF", false),
            normal_key_part("usmf", false)
        );
        let record = serde_json::json!({"dataAreaId": "usmf", "n": 5.0, "code": "A-1"});
        let key = [
            "dataAreaId".to_string(),
            "n".to_string(),
            "code".to_string(),
        ];
        let batch = RecordBatch::try_from_iter(vec![
            (
                "dataAreaId",
                std::sync::Arc::new(arrow::array::StringArray::from(vec!["USMF"])) as ArrayRef,
            ),
            (
                "n",
                std::sync::Arc::new(
                    arrow::array::Decimal128Array::from(vec![500])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ) as ArrayRef,
            ),
            (
                "code",
                std::sync::Arc::new(arrow::array::StringArray::from(vec!["a-1"])) as ArrayRef,
            ),
        ])
        .unwrap();
        assert_eq!(
            key_identities(&batch, &key).unwrap(),
            vec![record_identity(&record, &key)]
        );
    }
}
