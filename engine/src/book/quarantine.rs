//! Quarantine tables: reading the rejected rows, their Excel round trip (export for a business user to
//! correct, import of the corrected workbook), and marking rows resolved once a retry lands them.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::prelude::{col, lit};
use deltalake::DeltaTable;
use ferry_connectors::ConnectorError;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

use super::tables::is_quarantine_field;
use super::{Book, strings};

/// The column of the workbook that ties a row back to its quarantine row.
pub const ID_HEADER: &str = "ferry_id (do not edit)";
const ERROR_HEADER: &str = "error";
const CAUSE_HEADER: &str = "cause";

/// The unresolved rejected rows of one target table, with the data columns' original types.
pub struct Rejected {
    /// The data columns as the target received them.
    pub schema: SchemaRef,
    /// Data columns only.
    pub rows: RecordBatch,
    pub ids: Vec<String>,
    pub errors: Vec<String>,
    pub causes: Vec<String>,
}

impl Book {
    /// Names of the quarantine tables under the state folder.
    pub fn quarantine_tables(&self) -> Vec<String> {
        let dir = Path::new(&self.root).join("quarantine");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().join("_delta_log").exists())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Every quarantined row of `table` for this pipeline, all columns, oldest first.
    pub async fn quarantine_rows(
        &self,
        table: &str,
        unresolved_only: bool,
    ) -> Result<Vec<RecordBatch>, ConnectorError> {
        let name = format!("quarantine/{table}");
        let Some(df) = self.frame(&name, "_ferry_pipeline").await? else {
            return Err(
                ConnectorError::fatal(format!("there is no quarantine table \"{table}\""))
                    .with_hint(format!(
                        "quarantine tables here: {}",
                        self.quarantine_tables().join(", ")
                    )),
            );
        };
        let df = if unresolved_only {
            df.filter(col("_ferry_resolved").eq(lit(false)))
        } else {
            Ok(df)
        };
        df.and_then(|df| {
            df.sort(vec![
                col("_ferry_time").sort(true, false),
                col("_ferry_row").sort(true, false),
            ])
        })
        .map_err(|e| self.damaged(&name, e))?
        .collect()
        .await
        .map_err(|e| self.damaged(&name, e))
    }

    /// The unresolved rows of `table`, split into data and bookkeeping.
    pub async fn rejected(&self, table: &str) -> Result<Rejected, ConnectorError> {
        let batches = self.quarantine_rows(table, true).await?;
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => {
                let name = format!("quarantine/{table}");
                let df = self.frame(&name, "_ferry_pipeline").await?;
                let df = df.expect("quarantine_rows found the table");
                Arc::new(df.schema().as_arrow().clone())
            }
        };
        let all = concat_batches(&schema, &batches)?;
        let data_fields: Vec<(usize, Field)> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !is_quarantine_field(f.name()))
            .map(|(i, f)| (i, data_field(f)))
            .collect();
        let data_schema = Arc::new(Schema::new(
            data_fields
                .iter()
                .map(|(_, f)| f.clone())
                .collect::<Vec<_>>(),
        ));
        let columns = data_fields
            .iter()
            .map(|(i, f)| cast(all.column(*i), f.data_type()))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = RecordBatch::try_new_with_options(
            data_schema.clone(),
            columns,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(all.num_rows())),
        )?;
        let text = |name: &str| -> Vec<String> {
            if all.num_rows() == 0 {
                return Vec::new();
            }
            let a = strings(&all, name);
            (0..a.len()).map(|i| a.value(i).to_string()).collect()
        };
        Ok(Rejected {
            schema: data_schema,
            rows,
            ids: text("_ferry_id"),
            errors: text("_ferry_error"),
            causes: text("_ferry_cause"),
        })
    }

    /// Removes the rows earlier attempts of a run (before `attempt_start`) quarantined for batches
    /// the latest attempt did not skip: it wrote those rows again, and quarantined the bad ones again
    /// (a batch whose log row was never committed, or whose rows came in another order).
    pub async fn forget_superseded_rejections(
        &self,
        table: &str,
        run_id: &str,
        attempt_start: chrono::DateTime<chrono::Utc>,
        skipped: &HashSet<(i32, i32)>,
    ) -> Result<usize, ConnectorError> {
        let name = format!("quarantine/{table}");
        let Some(df) = self.frame(&name, "_ferry_pipeline").await? else {
            return Ok(0);
        };
        let before = datafusion::scalar::ScalarValue::TimestampMicrosecond(
            Some(attempt_start.timestamp_micros()),
            Some("UTC".into()),
        );
        let batches = df
            .filter(
                col("_ferry_run_id")
                    .eq(lit(run_id.to_string()))
                    .and(col("_ferry_time").lt(lit(before))),
            )
            .and_then(|df| df.select_columns(&["_ferry_id", "_ferry_partition", "_ferry_batch"]))
            .map_err(|e| self.damaged(&name, e))?
            .collect()
            .await
            .map_err(|e| self.damaged(&name, e))?;
        let mut orphans = Vec::new();
        for b in &batches {
            let ids = strings(b, "_ferry_id");
            let int = |c: &str| {
                b.column_by_name(c)
                    .expect("quarantine column")
                    .as_primitive::<arrow::datatypes::Int32Type>()
                    .clone()
            };
            let (partitions, numbers) = (int("_ferry_partition"), int("_ferry_batch"));
            for i in 0..b.num_rows() {
                if !skipped.contains(&(partitions.value(i), numbers.value(i))) {
                    orphans.push(lit(ids.value(i).to_string()));
                }
            }
        }
        if orphans.is_empty() {
            return Ok(0);
        }
        let count = orphans.len();
        DeltaTable::try_from_url(self.url(&name)?)
            .await
            .map_err(|e| self.damaged(&name, e))?
            .delete()
            .with_predicate(col("_ferry_id").in_list(orphans, false))
            .await
            .map_err(|e| ConnectorError::fatal(format!("updating {name}: {e}")))?;
        Ok(count)
    }

    /// Marks rows resolved (they landed), or records their new error (they failed again).
    pub async fn settle(
        &self,
        table: &str,
        resolved: &[String],
        failed: &[(String, String, String)],
    ) -> Result<(), ConnectorError> {
        let name = format!("quarantine/{table}");
        let open = || async {
            DeltaTable::try_from_url(self.url(&name)?)
                .await
                .map_err(|e| self.damaged(&name, e))
        };
        if !resolved.is_empty() {
            let ids: Vec<_> = resolved.iter().map(|id| lit(id.clone())).collect();
            open()
                .await?
                .update()
                .with_predicate(col("_ferry_id").in_list(ids, false))
                .with_update("_ferry_resolved", lit(true))
                .await
                .map_err(|e| ConnectorError::fatal(format!("updating {name}: {e}")))?;
        }
        for (id, error, cause) in failed {
            open()
                .await?
                .update()
                .with_predicate(col("_ferry_id").eq(lit(id.clone())))
                .with_update("_ferry_error", lit(error.clone()))
                .with_update("_ferry_cause", lit(cause.clone()))
                .with_update(
                    "_ferry_time",
                    lit(datafusion::scalar::ScalarValue::TimestampMicrosecond(
                        Some(chrono::Utc::now().timestamp_micros()),
                        Some("UTC".into()),
                    )),
                )
                .await
                .map_err(|e| ConnectorError::fatal(format!("updating {name}: {e}")))?;
        }
        Ok(())
    }
}

/// Delta stores text as string and timestamps in UTC; give the data columns back plain Arrow types.
fn data_field(f: &Field) -> Field {
    let t = match f.data_type() {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        other => other.clone(),
    };
    Field::new(f.name(), t, true)
}

/// Writes the rejected rows to a workbook: error and cause first, then the data, then the row's id;
/// the header row frozen and bold, columns sized to their content.
pub fn export_xlsx(rejected: &Rejected, file: &Path) -> Result<(), ConnectorError> {
    let xlsx = |e: rust_xlsxwriter::XlsxError| {
        ConnectorError::fatal(format!("writing {}: {e}", file.display()))
    };
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("quarantine").map_err(xlsx)?;
    let bold = Format::new().set_bold().set_background_color("#DDEBF7");
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let timestamp = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let wrap = Format::new().set_text_wrap();
    let data_names: Vec<String> = rejected
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let headers: Vec<&str> = [ERROR_HEADER, CAUSE_HEADER]
        .into_iter()
        .chain(data_names.iter().map(String::as_str))
        .chain([ID_HEADER])
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    let as_text: Vec<bool> = rejected.rows.columns().iter().map(needs_text).collect();
    for (c, h) in headers.iter().enumerate() {
        sheet
            .write_string_with_format(0, c as u16, *h, &bold)
            .map_err(xlsx)?;
    }
    for row in 0..rejected.rows.num_rows() {
        let r = row as u32 + 1;
        sheet
            .write_string_with_format(r, 0, &rejected.errors[row], &wrap)
            .map_err(xlsx)?;
        sheet
            .write_string(r, 1, &rejected.causes[row])
            .map_err(xlsx)?;
        widths[0] = widths[0].max(rejected.errors[row].len().min(60));
        widths[1] = widths[1].max(rejected.causes[row].len());
        for (c, column) in rejected.rows.columns().iter().enumerate() {
            let x = c as u16 + 2;
            if column.is_null(row) {
                continue;
            }
            let shown = if as_text[c] {
                let text = exact_text(column, row);
                sheet.write_string(r, x, &text).map_err(xlsx)?;
                text.len()
            } else {
                write_cell(sheet, r, x, column, row, &date, &timestamp).map_err(xlsx)?
            };
            widths[c + 2] = widths[c + 2].max(shown.min(50));
        }
        let id_col = headers.len() as u16 - 1;
        sheet
            .write_string(r, id_col, &rejected.ids[row])
            .map_err(xlsx)?;
        widths[id_col as usize] = widths[id_col as usize].max(rejected.ids[row].len());
    }
    for (c, w) in widths.iter().enumerate() {
        sheet
            .set_column_width(c as u16, (*w as f64 + 2.0).min(62.0))
            .map_err(xlsx)?;
    }
    sheet.set_freeze_panes(1, 0).map_err(xlsx)?;
    book.save(file).map_err(xlsx)?;
    Ok(())
}

/// Whether a column must go to the workbook as text cells to come back exactly: a number cell is a
/// double that Excel shows (and saves, once edited) with 15 significant digits, and a date cell holds
/// no microseconds. Decimals always; integers and floats with more than 15 significant digits;
/// timestamps with fractions of a second; dates and timestamps before 1900-03-01. The whole column, so that it reads back with one type.
fn needs_text(column: &ArrayRef) -> bool {
    match column.data_type() {
        DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => true,
        t if t.is_numeric() => (0..column.len())
            .filter(|&i| column.is_valid(i))
            .any(|i| significant_digits(&exact_text(column, i)) > 15),
        DataType::Timestamp(_, _) => {
            let micros = cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .expect("timestamps cast");
            let micros = micros.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            micros
                .iter()
                .flatten()
                .any(|m| m % 1_000_000 != 0 || !excel_holds_day(m.div_euclid(86_400_000_000)))
        }
        DataType::Date32 | DataType::Date64 => {
            let days = cast(column, &DataType::Date32).expect("dates cast");
            let days = days.as_primitive::<arrow::datatypes::Date32Type>();
            days.iter().flatten().any(|d| !excel_holds_day(d as i64))
        }
        _ => false,
    }
}

/// Whether a day (from 1970-01-01) is one an Excel date cell holds as itself: from 1900-03-01
/// (before it, Excel's calendar counts a 1900-02-29 that never was) to 9999-12-31.
fn excel_holds_day(day: i64) -> bool {
    const MARCH_1900: i64 = -25_508;
    const END_9999: i64 = 2_932_896;
    (MARCH_1900..=END_9999).contains(&day)
}

/// A value as Arrow writes it, which Arrow reads back to the same value.
fn exact_text(column: &ArrayRef, row: usize) -> String {
    cast(&column.slice(row, 1), &DataType::Utf8)
        .map(|a| a.as_string::<i32>().value(0).to_string())
        .unwrap_or_default()
}

/// Digits that matter in a number's text: `-0.00120` has 3, `1234567890123456789` has 19.
fn significant_digits(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let trimmed = digits.trim_start_matches('0');
    let trimmed = if mantissa.contains('.') {
        trimmed.trim_end_matches('0')
    } else {
        trimmed
    };
    trimmed.len()
}

/// Writes one value as its Excel kind (number, boolean, date, text); returns its shown width.
fn write_cell(
    sheet: &mut rust_xlsxwriter::Worksheet,
    r: u32,
    c: u16,
    column: &ArrayRef,
    row: usize,
    date: &Format,
    timestamp: &Format,
) -> Result<usize, rust_xlsxwriter::XlsxError> {
    match column.data_type() {
        t if t.is_numeric() => {
            // From the value's own shortest text, so a float32's 0.1 is Excel's 0.1 too.
            let v: f64 = exact_text(column, row).parse().unwrap_or(f64::NAN);
            sheet.write_number(r, c, v)?;
            Ok(format!("{v}").len())
        }
        DataType::Boolean => {
            sheet.write_boolean(r, c, column.as_boolean().value(row))?;
            Ok(5)
        }
        DataType::Date32 | DataType::Date64 => {
            let days = cast(column, &DataType::Date32).expect("dates cast");
            let days = days
                .as_primitive::<arrow::datatypes::Date32Type>()
                .value(row) as i64;
            sheet.write_datetime_with_format(
                r,
                c,
                ExcelDateTime::from_timestamp(days * 86_400)?,
                date,
            )?;
            Ok(10)
        }
        DataType::Timestamp(_, _) => {
            let micros = cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .expect("timestamps cast");
            let micros = micros
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                .value(row);
            sheet.write_datetime_with_format(
                r,
                c,
                ExcelDateTime::from_timestamp(micros.div_euclid(1_000_000))?,
                timestamp,
            )?;
            Ok(19)
        }
        _ => {
            let text =
                cast(column, &DataType::Utf8).map(|a| a.as_string::<i32>().value(row).to_string());
            let text = text.unwrap_or_default();
            sheet.write_string(r, c, &text)?;
            Ok(text.len())
        }
    }
}

/// Reads a corrected workbook back: the data columns cast to the quarantine's types, and the ids.
pub fn import_xlsx(
    file: &Path,
    schema: &SchemaRef,
) -> Result<(RecordBatch, Vec<String>), ConnectorError> {
    let bytes = std::fs::read(file)
        .map_err(|e| ConnectorError::fatal(format!("cannot read {}: {e}", file.display())))?;
    let label = file.display().to_string();
    let (sheet_schema, batches) = ferry_connectors::files::xlsx::read_sheet(&label, bytes, None)?;
    let all = concat_batches(&sheet_schema, &batches)?;
    let id_index = sheet_schema.index_of(ID_HEADER).map_err(|_| {
        ConnectorError::fatal(format!("{label} has no column \"{ID_HEADER}\""))
            .with_hint("export the rows with `ferry quarantine export`, correct them in that file, and keep its last column")
    })?;
    let ids_text = cast(all.column(id_index), &DataType::Utf8)?;
    let ids: Vec<String> = ids_text
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = match sheet_schema.index_of(field.name()) {
            Ok(i) => convert(all.column(i), field).map_err(|e| {
                ConnectorError::fatal(format!("{label}, column \"{}\": {e}", field.name()))
                    .with_hint(format!("the column holds {} values", field.data_type()))
            })?,
            Err(_) => {
                return Err(ConnectorError::fatal(format!(
                    "{label} has no column \"{}\"",
                    field.name()
                ))
                .with_hint("keep every column of the exported file; edit values only"));
            }
        };
        columns.push(column);
    }
    Ok((RecordBatch::try_new(schema.clone(), columns)?, ids))
}

/// An Excel column to the quarantine's type (whole-number floats to integers, text to dates, ...).
fn convert(column: &ArrayRef, field: &Field) -> Result<ArrayRef, arrow::error::ArrowError> {
    let strict = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    arrow::compute::cast_with_options(column, field.data_type(), &strict)
}
