//! Deterministic generated datasets: the same arguments give the same bytes, on any machine.
//!
//! `orders` is the 10-column mixed-type table the benchmarks use (bigint key, integer, short and long
//! text, numeric(12,2), double, boolean, date, timestamp, a nullable text column). It is written in
//! chunks, so generating 10 million rows takes as little memory as generating ten thousand.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

const CHUNK: usize = 64 * 1024;
const STATUSES: [&str; 5] = ["new", "paid", "shipped", "returned", "cancelled"];
const WORDS: [&str; 12] = [
    "blue", "steel", "widget", "large", "premium", "spare", "cable", "north", "office", "box",
    "kit", "green",
];

/// splitmix64: a fast, well-mixed, seedable sequence, so row n is the same wherever it is made.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("customer_id", DataType::Int32, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
        Field::new("amount", DataType::Decimal128(12, 2), false),
        Field::new("discount", DataType::Float64, false),
        Field::new("paid", DataType::Boolean, false),
        Field::new("order_date", DataType::Date32, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("coupon", DataType::Utf8, true),
    ]))
}

/// Rows `start..start+len` of the orders table; `customers` bounds customer_id.
pub fn orders_batch(start: u64, len: usize, customers: u64, seed: u64) -> Result<RecordBatch> {
    let ids: Vec<u64> = (start..start + len as u64).collect();
    let r = |id: u64, salt: u64| mix(id ^ seed.wrapping_mul(0x1000_0000_01B3) ^ (salt << 56));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            ids.iter().map(|&i| i as i64 + 1),
        )),
        Arc::new(Int32Array::from_iter_values(
            ids.iter().map(|&i| (r(i, 1) % customers) as i32 + 1),
        )),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|&i| STATUSES[(r(i, 2) % 5) as usize]),
        )),
        Arc::new(StringArray::from_iter_values(ids.iter().map(|&i| {
            let x = r(i, 3);
            (0..6)
                .map(|k| WORDS[((x >> (k * 5)) % 12) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        }))),
        Arc::new(
            Decimal128Array::from_iter_values(ids.iter().map(|&i| (r(i, 4) % 10_000_000) as i128))
                .with_precision_and_scale(12, 2)?,
        ),
        Arc::new(Float64Array::from_iter_values(
            ids.iter().map(|&i| (r(i, 5) % 5000) as f64 / 10_000.0),
        )),
        Arc::new(BooleanArray::from_iter(
            ids.iter().map(|&i| Some(r(i, 6) % 4 != 0)),
        )),
        Arc::new(Date32Array::from_iter_values(
            ids.iter().map(|&i| 19_000 + (r(i, 7) % 1500) as i32),
        )),
        Arc::new(TimestampMicrosecondArray::from_iter_values(ids.iter().map(
            |&i| 1_640_995_200_000_000 + (r(i, 8) % 126_000_000) as i64 * 1_000_000,
        ))),
        Arc::new(StringArray::from_iter(ids.iter().map(|&i| {
            let x = r(i, 9);
            (x % 5 == 0).then(|| format!("SAVE{}", x % 50))
        }))),
    ];
    Ok(RecordBatch::try_new(orders_schema(), columns)?)
}

/// Writes orders `first..first+rows` (ids from `first + 1`) as `files` parquet files of about equal
/// size into `dir`. Another `seed` over overlapping ids gives changed rows with the same keys.
pub fn write_orders_parquet(
    dir: &Path,
    first: u64,
    rows: u64,
    files: usize,
    seed: u64,
) -> Result<()> {
    write_orders_parquet_of(dir, first, rows, files, seed, customers(rows))
}

/// The customers `rows` orders are spread over.
pub fn customers(rows: u64) -> u64 {
    (rows / 20).max(10)
}

/// [`write_orders_parquet`] over `customers` customers: a part of a larger set, row for row the same.
pub fn write_orders_parquet_of(
    dir: &Path,
    first: u64,
    rows: u64,
    files: usize,
    seed: u64,
    customers: u64,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let per_file = rows.div_ceil(files as u64);
    for f in 0..files as u64 {
        let start = first + f * per_file;
        let end = (first + (f + 1) * per_file).min(first + rows);
        if start >= end {
            break;
        }
        let path = dir.join(format!("orders-{f:03}.parquet"));
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        // Row groups of a fixed size, so that readers hold the same amount at once whatever the total.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(128 * 1024))
            .build();
        let mut writer = ArrowWriter::try_new(file, orders_schema(), Some(props))?;
        let mut at = start;
        while at < end {
            let len = CHUNK.min((end - at) as usize);
            writer.write(&orders_batch(at, len, customers, seed)?)?;
            at += len as u64;
        }
        writer.close()?;
    }
    Ok(())
}

/// Writes orders `first..first+rows` as one CSV file (the reference tools' input).
pub fn write_orders_csv(path: &Path, first: u64, rows: u64, seed: u64) -> Result<()> {
    write_orders_csv_of(path, first, rows, seed, customers(rows))
}

/// [`write_orders_csv`] over `customers` customers.
pub fn write_orders_csv_of(
    path: &Path,
    first: u64,
    rows: u64,
    seed: u64,
    customers: u64,
) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(std::io::BufWriter::new(file));
    let mut at = first;
    while at < first + rows {
        let len = CHUNK.min((first + rows - at) as usize);
        writer.write(&orders_batch(at, len, customers, seed)?)?;
        at += len as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_rows_come_out_every_time() {
        let a = orders_batch(100, 50, 10, 7).unwrap();
        let b = orders_batch(100, 50, 10, 7).unwrap();
        assert_eq!(a, b);
        let c = orders_batch(100, 50, 10, 8).unwrap();
        assert_ne!(a, c);
        assert_eq!(a.num_columns(), 10);
    }
}
