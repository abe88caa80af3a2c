//! Excel workbooks as tables: the first row names the columns, each column gets the narrowest type
//! that holds every cell (integer, float, boolean, date, timestamp, else text).
//!
//! A worksheet is read whole by calamine (the format allows nothing else), then handed to DataFusion
//! in batches. Business users' workbooks are small next to the rest of a migration.

use std::collections::HashSet;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use calamine::{Data, DataType as _, Reader, open_workbook_auto_from_rs};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;

use super::is_url;
use super::source::FileSource;
use crate::error::{ConnectorError, Result};

const BATCH_ROWS: usize = 8192;
/// Days from Excel's epoch (1899-12-30) to the Unix epoch.
const EXCEL_UNIX_DAYS: f64 = 25569.0;

/// Registers the worksheet(s) of `source` as the table `name`.
pub async fn register(ctx: &SessionContext, name: &str, source: &FileSource) -> Result<()> {
    let files = read_files(ctx, &source.location).await?;
    register_workbooks(ctx, name, files, source.sheet.as_deref())
}

/// Registers the worksheets of exactly these local files as the table `name`.
pub async fn register_paths(
    ctx: &SessionContext,
    name: &str,
    paths: &[String],
    sheet: Option<&str>,
) -> Result<()> {
    let files = paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p)
                .map_err(|e| ConnectorError::fatal(format!("cannot read {p}: {e}")))?;
            Ok((p.clone(), bytes))
        })
        .collect::<Result<Vec<_>>>()?;
    register_workbooks(ctx, name, files, sheet)
}

fn register_workbooks(
    ctx: &SessionContext,
    name: &str,
    files: Vec<(String, Vec<u8>)>,
    sheet: Option<&str>,
) -> Result<()> {
    let mut schema: Option<SchemaRef> = None;
    let mut batches = Vec::new();
    for (label, bytes) in files {
        let (file_schema, file_batches) = read_sheet(&label, bytes, sheet)?;
        match &schema {
            None => schema = Some(file_schema),
            Some(s) if s.fields() == file_schema.fields() => {}
            Some(s) => {
                return Err(ConnectorError::fatal(format!(
                    "{label} has other columns than the files before it: {} instead of {}",
                    describe(&file_schema),
                    describe(s)
                ))
                .with_hint(
                    "give every workbook of one source the same header row and cell types",
                ));
            }
        }
        batches.extend(file_batches);
    }
    let schema = schema.expect("read_files returns at least one file");
    let table = MemTable::try_new(schema, vec![batches])?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

/// Reads a worksheet into batches. `label` names the file in errors.
pub fn read_sheet(
    label: &str,
    bytes: Vec<u8>,
    sheet: Option<&str>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut book = open_workbook_auto_from_rs(Cursor::new(bytes))
        .map_err(|e| ConnectorError::fatal(format!("{label} is not a readable workbook: {e}")))?;
    let names = book.sheet_names();
    let sheet_name = match sheet {
        Some(s) if names.iter().any(|n| n == s) => s.to_string(),
        Some(s) => {
            return Err(
                ConnectorError::fatal(format!("{label} has no sheet \"{s}\"")).with_hint(format!(
                    "its sheets are: {}; set sheet = \"...\" to one of them",
                    names.join(", ")
                )),
            );
        }
        None => names
            .first()
            .cloned()
            .ok_or_else(|| ConnectorError::fatal(format!("{label} has no worksheet")))?,
    };
    let range = book
        .worksheet_range(&sheet_name)
        .map_err(|e| ConnectorError::fatal(format!("{label}, sheet {sheet_name}: {e}")))?;
    let (first_row, first_col) = range.start().unwrap_or((0, 0));
    let mut rows = range.rows();
    let header = rows.next().ok_or_else(|| {
        ConnectorError::fatal(format!("{label}, sheet {sheet_name} is empty"))
            .with_hint("the first row must name the columns")
    })?;
    let names = column_names(header);
    let body: Vec<&[Data]> = rows
        .filter(|r| r.iter().any(|c| !matches!(c, Data::Empty)))
        .collect();
    let at = |row: usize, col: usize| {
        format!(
            "{label}, sheet {sheet_name}, cell {}{}",
            column_letter(first_col as usize + col),
            first_row as usize + row + 2
        )
    };
    let mut fields = Vec::with_capacity(names.len());
    let mut kinds = Vec::with_capacity(names.len());
    for (col, name) in names.iter().enumerate() {
        let kind =
            infer(body.iter().map(|r| r.get(col).unwrap_or(&Data::Empty))).map_err(|row| {
                ConnectorError::fatal(format!("{}: the cell holds an Excel error", at(row, col)))
                    .with_hint("correct the formula or clear the cell")
            })?;
        fields.push(Field::new(name, kind.clone(), true));
        kinds.push(kind);
    }
    let schema = Arc::new(Schema::new(fields));
    let mut batches = Vec::new();
    for chunk in body.chunks(BATCH_ROWS) {
        let columns: Vec<ArrayRef> = kinds
            .iter()
            .enumerate()
            .map(|(col, kind)| build_column(kind, chunk.iter().map(|r| r.get(col))))
            .collect();
        batches.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok((schema, batches))
}

async fn read_files(ctx: &SessionContext, location: &str) -> Result<Vec<(String, Vec<u8>)>> {
    if is_url(location) {
        let url = url::Url::parse(location).map_err(|e| ConnectorError::fatal(e.to_string()))?;
        let store = ctx.runtime_env().object_store(
            datafusion::datasource::object_store::ObjectStoreUrl::parse(format!(
                "{}://{}",
                url.scheme(),
                url.authority()
            ))?,
        )?;
        let path = object_store::path::Path::from_url_path(url.path())
            .map_err(|e| ConnectorError::fatal(e.to_string()))?;
        let bytes = store
            .get(&path)
            .await
            .map_err(|e| ConnectorError::fatal(format!("cannot read {location}: {e}")))?
            .bytes()
            .await
            .map_err(|e| ConnectorError::fatal(format!("cannot read {location}: {e}")))?;
        return Ok(vec![(location.to_string(), bytes.to_vec())]);
    }
    let paths: Vec<std::path::PathBuf> = if location.contains(['*', '?', '[']) {
        let mut found: Vec<_> = glob::glob(location)
            .map_err(|e| {
                ConnectorError::fatal(format!("\"{location}\" is not a valid pattern: {e}"))
            })?
            .filter_map(|p| p.ok())
            .collect();
        found.sort();
        found
    } else {
        vec![location.into()]
    };
    if paths.is_empty() {
        return Err(ConnectorError::fatal(format!("no file matches {location}")));
    }
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p)
                .map_err(|e| ConnectorError::fatal(format!("cannot read {}: {e}", p.display())))?;
            Ok((p.display().to_string(), bytes))
        })
        .collect()
}

fn column_names(header: &[Data]) -> Vec<String> {
    let mut seen = HashSet::new();
    header
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            let base = match cell {
                Data::Empty => format!("column_{}", i + 1),
                other => other.to_string().trim().to_string(),
            };
            let mut name = base.clone();
            let mut n = 2;
            while !seen.insert(name.clone()) {
                name = format!("{base}_{n}");
                n += 1;
            }
            name
        })
        .collect()
}

/// The narrowest type for a column's cells; `Err(row)` names a cell holding an Excel error.
fn infer<'a>(cells: impl Iterator<Item = &'a Data>) -> std::result::Result<DataType, usize> {
    let (mut ints, mut floats, mut bools, mut dates, mut times, mut texts) =
        (false, false, false, false, false, false);
    for (row, cell) in cells.enumerate() {
        match cell {
            Data::Empty => {}
            Data::Int(_) => ints = true,
            Data::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => ints = true,
            Data::Float(_) => floats = true,
            Data::Bool(_) => bools = true,
            Data::DateTime(d) if d.as_f64().fract() == 0.0 => dates = true,
            Data::DateTime(_) => times = true,
            Data::String(_) | Data::DateTimeIso(_) | Data::DurationIso(_) => texts = true,
            Data::Error(_) => return Err(row),
        }
    }
    let numeric = ints || floats;
    let temporal = dates || times;
    Ok(match (texts, numeric, bools, temporal) {
        (false, true, false, false) if floats => DataType::Float64,
        (false, true, false, false) => DataType::Int64,
        (false, false, true, false) => DataType::Boolean,
        (false, false, false, true) if times => DataType::Timestamp(TimeUnit::Millisecond, None),
        (false, false, false, true) => DataType::Date32,
        _ => DataType::Utf8,
    })
}

fn build_column<'a>(kind: &DataType, cells: impl Iterator<Item = Option<&'a Data>>) -> ArrayRef {
    let cells = cells.map(|c| c.filter(|c| !matches!(c, Data::Empty)));
    match kind {
        DataType::Int64 => {
            let mut b = Int64Builder::new();
            cells.for_each(|c| b.append_option(c.and_then(|c| c.as_i64())));
            Arc::new(b.finish())
        }
        DataType::Float64 => {
            let mut b = Float64Builder::new();
            cells.for_each(|c| b.append_option(c.and_then(|c| c.as_f64())));
            Arc::new(b.finish())
        }
        DataType::Boolean => {
            let mut b = BooleanBuilder::new();
            cells.for_each(|c| b.append_option(c.and_then(|c| c.get_bool())));
            Arc::new(b.finish())
        }
        DataType::Date32 => {
            let mut b = Date32Builder::new();
            cells.for_each(|c| b.append_option(serial(c).map(|d| (d - EXCEL_UNIX_DAYS) as i32)));
            Arc::new(b.finish())
        }
        DataType::Timestamp(_, _) => {
            let mut b = TimestampMillisecondBuilder::new();
            cells.for_each(|c| {
                b.append_option(
                    serial(c).map(|d| ((d - EXCEL_UNIX_DAYS) * 86_400_000.0).round() as i64),
                )
            });
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringBuilder::new();
            cells.for_each(|c| b.append_option(c.map(text)));
            Arc::new(b.finish())
        }
    }
}

fn serial(cell: Option<&Data>) -> Option<f64> {
    match cell? {
        Data::DateTime(d) => Some(d.as_f64()),
        _ => None,
    }
}

/// A cell as text, as a person reading the sheet would write it (no trailing ".0" on whole numbers).
fn text(cell: &Data) -> String {
    match cell {
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", *f as i64),
        other => other.to_string(),
    }
}

fn column_letter(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).expect("ASCII letters")
}

fn describe(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_follow_excel() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27), "AB");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
    }

    #[test]
    fn whole_floats_are_integers_and_mixed_cells_are_text() {
        let ints = [Data::Float(1.0), Data::Int(2), Data::Empty];
        assert_eq!(infer(ints.iter()), Ok(DataType::Int64));
        let floats = [Data::Float(1.5), Data::Int(2)];
        assert_eq!(infer(floats.iter()), Ok(DataType::Float64));
        let mixed = [Data::Float(1.0), Data::String("x".into())];
        assert_eq!(infer(mixed.iter()), Ok(DataType::Utf8));
        let bad = [Data::Int(1), Data::Error(calamine::CellErrorType::Div0)];
        assert_eq!(infer(bad.iter()), Err(1));
    }
}
