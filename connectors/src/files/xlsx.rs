//! Excel workbooks as tables: the first row names the columns, each column gets the narrowest type
//! that holds every cell (integer, float, boolean, date, timestamp, else text).
//!
//! A worksheet is read cell by cell (calamine's cell reader for xlsx), keeping only written cells:
//! memory follows what the sheet holds, never the extent a stray far cell or its `<dimension>`
//! claims, and a sheet beyond `MOST_CELLS` is refused with a hint to save it as CSV. The rows are
//! then handed to DataFusion in batches; errors name the cell as Excel shows it.

use std::collections::HashSet;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use calamine::{Data, DataType as _, Reader, Sheets, open_workbook_auto_from_rs};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;

use super::is_url;
use super::source::FileSource;
use crate::error::{ConnectorError, Result};

const BATCH_ROWS: usize = 8192;

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
///
/// The spreadsheet library can panic on a damaged workbook (fuzzing found an index past the end of
/// a list): that is caught here and becomes an error naming the file, so that one bad file a user
/// drops never crashes the run or `quarantine retry --from`.
pub fn read_sheet(
    label: &str,
    bytes: Vec<u8>,
    sheet: Option<&str>,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    quiet_panics::install();
    quiet_panics::QUIET.with(|q| q.set(true));
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_sheet_unguarded(label, bytes, sheet)
    }));
    quiet_panics::QUIET.with(|q| q.set(false));
    read.unwrap_or_else(|_| {
        Err(ConnectorError::fatal(format!(
            "{label} is damaged: the Excel reader could not make sense of it"
        ))
        .with_hint("open it in Excel and save it again (File > Save As > Excel Workbook), or export the sheet as CSV"))
    })
}

/// The library's panic on a damaged workbook is caught and reported as an error; its message must
/// not reach the terminal as well, where it would read as a crash. A panic hook, installed once,
/// stays quiet while this thread reads a sheet and hands every other panic to the hook before it.
mod quiet_panics {
    use std::cell::Cell;
    use std::sync::Once;

    thread_local! {
        pub static QUIET: Cell<bool> = const { Cell::new(false) };
    }

    pub fn install() {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let before = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !QUIET.with(Cell::get) {
                    before(info);
                }
            }));
        });
    }
}

fn read_sheet_unguarded(
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
    let (header_row, first_col, header, body) = sheet_rows(&mut book, label, &sheet_name)?;
    refuse_merged_header(&mut book, label, &sheet_name, header_row)?;
    let names = column_names(&header);
    let at = |row: usize, col: usize| {
        format!(
            "{label}, sheet {sheet_name}, cell {}{}",
            column_letter(first_col as usize + col),
            body.get(row).map_or(header_row, |(r, _)| *r) as usize + 1
        )
    };
    let mut fields = Vec::with_capacity(names.len());
    let mut kinds = Vec::with_capacity(names.len());
    for (col, name) in names.iter().enumerate() {
        let kind =
            infer(body.iter().map(|(_, r)| r.get(col).unwrap_or(&Data::Empty))).map_err(|row| {
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
            .map(|(col, kind)| build_column(kind, chunk.iter().map(|(_, r)| r.get(col))))
            .collect();
        batches.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok((schema, batches))
}

/// A header with merged cells ("Address" over Street and City) names one column for several:
/// refused with the cells named, before anything is read as data.
fn refuse_merged_header(
    book: &mut Sheets<Cursor<Vec<u8>>>,
    label: &str,
    sheet: &str,
    header_row: u32,
) -> Result<()> {
    let Sheets::Xlsx(xlsx) = book else {
        return Ok(());
    };
    let Some(Ok(regions)) = xlsx.worksheet_merge_cells(sheet) else {
        return Ok(());
    };
    let merged = regions
        .iter()
        .find(|d| d.start.0 <= header_row && header_row <= d.end.0 && (d.start != d.end));
    match merged {
        Some(d) => Err(ConnectorError::fatal(format!(
            "{label}, sheet {sheet}: the header cells {}{}:{}{} are merged",
            column_letter(d.start.1 as usize),
            d.start.0 + 1,
            column_letter(d.end.1 as usize),
            d.end.0 + 1
        ))
        .with_hint("unmerge them and give each column a header of its own, on one row")),
        None => Ok(()),
    }
}

/// The most cells a sheet may bring into memory (its rows with anything in them x the header's
/// columns): about a gigabyte. A larger sheet is better saved as CSV, which is read as a stream.
const MOST_CELLS: usize = 32_000_000;

/// A sheet's rows as its cells cover them: the first row with anything in it is the header (its
/// first and last cell give the columns), then each later row with a value in those columns, with
/// its 0-based row number in the sheet. Only written cells cost memory: a stray cell far away (or a
/// `<dimension>` claiming the whole sheet) sizes nothing.
#[allow(clippy::type_complexity)]
fn sheet_rows(
    book: &mut Sheets<Cursor<Vec<u8>>>,
    label: &str,
    sheet: &str,
) -> Result<(u32, u32, Vec<Data>, Vec<(u32, Vec<Data>)>)> {
    let unreadable =
        |e: &dyn std::fmt::Display| ConnectorError::fatal(format!("{label}, sheet {sheet}: {e}"));
    // (row, col, value) of every written cell, in the sheet's order.
    let mut cells: Vec<(u32, u32, Data)> = Vec::new();
    match book {
        Sheets::Xlsx(xlsx) => {
            let mut reader = xlsx
                .worksheet_cells_reader(sheet)
                .map_err(|e| unreadable(&e))?;
            while let Some(cell) = reader.next_cell().map_err(|e| unreadable(&e))? {
                let (row, col) = cell.get_position();
                let value = Data::from(cell.get_value().clone());
                if !matches!(value, Data::Empty) {
                    cells.push((row, col, value));
                }
            }
        }
        // The older formats are bounded by their own limits (xls: 65,536 x 256).
        other => {
            let range = other.worksheet_range(sheet).map_err(|e| unreadable(&e))?;
            let (r0, c0) = range.start().unwrap_or((0, 0));
            for (row, col, value) in range.used_cells() {
                cells.push((r0 + row as u32, c0 + col as u32, value.clone()));
            }
        }
    }
    cells.sort_by_key(|(row, col, _)| (*row, *col));
    let Some(&(header_row, _, _)) = cells.first() else {
        return Err(
            ConnectorError::fatal(format!("{label}, sheet {sheet} is empty"))
                .with_hint("the first row must name the columns"),
        );
    };
    // Every column that holds something, as before: a column whose header cell is empty is named
    // column_N, never dropped.
    let first_col = cells.iter().map(|c| c.1).min().unwrap_or(0);
    let last_col = cells.iter().map(|c| c.1).max().unwrap_or(0);
    let width = (last_col - first_col + 1) as usize;
    let mut header = vec![Data::Empty; width];
    let mut body: Vec<(u32, Vec<Data>)> = Vec::new();
    for (row, col, value) in cells {
        if row == header_row {
            header[(col - first_col) as usize] = value;
            continue;
        }
        if body.last().is_none_or(|(r, _)| *r != row) {
            if (body.len() + 2).saturating_mul(width) > MOST_CELLS {
                return Err(ConnectorError::fatal(format!(
                    "{label}, sheet {sheet} is too large to read at once: {} rows with values across {width} columns ({} to {}) make more than {MOST_CELLS} cells",
                    body.len() + 1,
                    column_letter(first_col as usize),
                    column_letter(last_col as usize)
                ))
                .with_hint("clear stray cells far from the table, or save the sheet as CSV, which Ferry reads as a stream"));
            }
            body.push((row, vec![Data::Empty; width]));
        }
        if let Some((_, cells)) = body.last_mut() {
            cells[(col - first_col) as usize] = value;
        }
    }
    Ok((header_row, first_col, header, body))
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
            cells.for_each(|c| {
                b.append_option(unix_millis(c).map(|ms| ms.div_euclid(86_400_000) as i32))
            });
            Arc::new(b.finish())
        }
        DataType::Timestamp(_, _) => {
            let mut b = TimestampMillisecondBuilder::new();
            cells.for_each(|c| b.append_option(unix_millis(c)));
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringBuilder::new();
            cells.for_each(|c| b.append_option(c.map(text)));
            Arc::new(b.finish())
        }
    }
}

/// A date or time cell as milliseconds from the Unix epoch, by calamine's reading of the serial:
/// the workbook's 1900 or 1904 date system, and Excel's fictitious 1900-02-29 (serials before 61
/// are a day off if read as days from 1899-12-30).
fn unix_millis(cell: Option<&Data>) -> Option<i64> {
    match cell? {
        Data::DateTime(d) => Some(d.as_datetime()?.and_utc().timestamp_millis()),
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

    fn workbook(cells: &[(u32, u16, &str)]) -> Vec<u8> {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        for (row, col, text) in cells {
            match text.parse::<f64>() {
                Ok(n) => sheet.write_number(*row, *col, n).unwrap(),
                Err(_) => sheet.write_string(*row, *col, *text).unwrap(),
            };
        }
        book.save_to_buffer().unwrap()
    }

    /// A tiny file whose only cells are near A1 and at XFD1048576 spans 17 billion cells: memory
    /// follows the rows that hold values (2 here, of 16,384 columns), not the span; the far cell is
    /// kept, as its own column, and too many such rows are refused with the columns' extent.
    #[test]
    fn a_stray_far_cell_does_not_size_the_sheet() {
        let bytes = workbook(&[(0, 0, "id"), (1, 0, "7"), (1_048_575, 16_383, "far")]);
        assert!(bytes.len() < 20_000);
        let (schema, batches) = read_sheet("stray.xlsx", bytes, None).unwrap();
        assert_eq!(schema.fields().len(), 16_384);
        assert_eq!(schema.field(16_383).name(), "column_16384");
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 2);
        let mut many: Vec<(u32, u16, &str)> = vec![(0, 0, "id"), (0, 16_383, "far")];
        many.extend((1..2_000).map(|r| (r, 0, "1")));
        let e = read_sheet("wide.xlsx", workbook(&many), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("too large to read at once") && e.contains("A to XFD"),
            "{e}"
        );
    }

    /// An error names the cell as Excel shows it, also below empty rows.
    #[test]
    fn errors_name_the_sheets_own_cell_below_empty_rows() {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "n").unwrap();
        sheet.write_number(1, 0, 1).unwrap();
        // Rows 3 to 5 empty; A6 holds an error.
        sheet
            .write_formula(
                5,
                0,
                rust_xlsxwriter::Formula::new("=1/0").set_result("#DIV/0!"),
            )
            .unwrap();
        let bytes = book.save_to_buffer().unwrap();
        let e = read_sheet("e.xlsx", bytes, None).unwrap_err().to_string();
        assert!(e.contains("cell A6"), "{e}");
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
