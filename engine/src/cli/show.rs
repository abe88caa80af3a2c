//! Bookkeeping rows on a terminal (a table that fits: long text cut short) or for scripts (`--json`,
//! one JSON object per line).

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::pretty::pretty_format_batches;
use std::sync::Arc;

const CELL: usize = 48;

pub fn print(batches: &[RecordBatch], json: bool) {
    let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    if json {
        let mut out = Vec::new();
        {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
            for b in &batches {
                writer.write(b).expect("JSON of Arrow rows");
            }
            writer.finish().expect("JSON of Arrow rows");
        }
        {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(&out);
        }
        return;
    }
    if batches.is_empty() {
        say!("(no rows)");
        return;
    }
    let shortened: Vec<RecordBatch> = batches.iter().map(|b| shorten(b)).collect();
    match pretty_format_batches(&shortened) {
        Ok(table) => say!("{table}"),
        Err(e) => eprintln!("error: {e}"),
    }
}

/// Text columns cut to a screen-friendly width.
fn shorten(batch: &RecordBatch) -> RecordBatch {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(
            field.data_type(),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        ) {
            let text = cast(column, &DataType::Utf8).expect("text casts to Utf8");
            let text = text.as_any().downcast_ref::<StringArray>().expect("Utf8");
            let cut: StringArray = text
                .iter()
                .map(|v| {
                    v.map(|s| {
                        let one_line = s.replace('\n', " ");
                        if one_line.chars().count() > CELL {
                            format!("{}…", one_line.chars().take(CELL - 1).collect::<String>())
                        } else {
                            one_line
                        }
                    })
                })
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(cut));
        } else if field.data_type().is_floating() {
            // Three decimals are plenty on a screen (seconds, rows/s).
            let v = cast(column, &DataType::Float64).expect("floats cast to f64");
            let v = v
                .as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .expect("f64");
            let rounded: arrow::array::Float64Array = v
                .iter()
                .map(|x| x.map(|x| (x * 1000.0).round() / 1000.0))
                .collect();
            fields.push(Field::new(field.name(), DataType::Float64, true));
            columns.push(Arc::new(rounded));
        } else if matches!(field.data_type(), DataType::Timestamp(_, _)) {
            // To the second, in UTC: 2026-11-22 04:52:03
            let text = cast(column, &DataType::Utf8).expect("timestamps cast to text");
            let text = text.as_any().downcast_ref::<StringArray>().expect("Utf8");
            let short: StringArray = text
                .iter()
                .map(|v| v.map(|s| s.chars().take(19).collect::<String>().replacen('T', " ", 1)))
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(short));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("same rows")
}
