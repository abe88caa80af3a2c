//! Micro-benchmarks of the per-row hot paths, on 10,000 rows of the generated orders table:
//! Arrow to PostgreSQL's binary COPY, to MySQL's INSERT text and LOAD DATA file, to OData JSON and a
//! `$batch` body; and the splitting that isolates bad rows in a batch of 10,000 against an in-memory
//! target, with the target naming the bad row (PostgreSQL, MySQL) or not. `cargo bench -p
//! ferry-bench --profile release` runs them.

use std::cell::Cell;
use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferry::run::isolate::isolate;
use ferry_bench::data::orders_batch;
use ferry_connectors::http::multipart;
use ferry_connectors::odata::encode;
use ferry_connectors::sql::mysql::values::Literals;
use ferry_connectors::sql::postgres::copy;
use ferry_connectors::sql::postgres::types::PgType;
use ferry_connectors::{BatchWritten, ConnectorError};

const ROWS: usize = 10_000;

fn hot_paths(c: &mut Criterion) {
    let batch = orders_batch(0, ROWS, 500, 42).expect("orders");
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(ROWS as u64));

    // The orders table's PostgreSQL types, in column order.
    let pg_types = [
        PgType::Int8,
        PgType::Int4,
        PgType::Text,
        PgType::Text,
        PgType::Numeric,
        PgType::Float8,
        PgType::Bool,
        PgType::Date,
        PgType::Timestamp,
        PgType::Text,
    ];
    group.bench_function("postgres_binary_copy", |b| {
        b.iter(|| copy::encode(black_box(&batch), &pg_types).expect("encode"))
    });

    group.bench_function("mysql_insert_values", |b| {
        b.iter(|| {
            let rows = Literals::new(black_box(&batch)).expect("literals");
            let mut sql = String::with_capacity(2 << 20);
            for row in 0..rows.num_rows() {
                rows.row(row, None, &mut sql).expect("row");
                sql.push(',');
            }
            sql
        })
    });
    group.bench_function("mysql_load_data_file", |b| {
        b.iter(|| {
            Literals::new(black_box(&batch))
                .expect("literals")
                .load_data()
                .expect("file")
        })
    });

    group.bench_function("odata_json_rows", |b| {
        b.iter(|| encode::rows(black_box(&batch), &[]).expect("json"))
    });
    let json: Vec<String> = encode::rows(&batch, &[])
        .expect("json")
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("finite numbers");
    group.bench_function("odata_batch_body", |b| {
        b.iter(|| {
            let mut body = String::with_capacity(json.iter().map(|j| j.len() + 200).sum());
            for (i, row) in black_box(&json).iter().enumerate() {
                multipart::write_request(
                    &mut body,
                    "batch_ferry",
                    Some(i + 1),
                    &format!("PATCH orders(order_id={i})"),
                    "Content-Type: application/json\r\n",
                    row,
                );
            }
            body
        })
    });
    group.finish();
}

/// A target in memory that refuses any write holding a bad id, the way a database refuses a batch.
async fn refusing_target(
    slice: RecordBatch,
    bad: &HashSet<i64>,
    names_row: bool,
    writes: &Cell<u64>,
) -> Result<BatchWritten, ConnectorError> {
    writes.set(writes.get() + 1);
    let ids = slice.column(0).as_primitive::<Int64Type>();
    match ids.values().iter().position(|id| bad.contains(id)) {
        None => Ok(BatchWritten {
            written: slice.num_rows() as u64,
            ..Default::default()
        }),
        Some(r) => Err(ConnectorError::data("refused", names_row.then_some(r))),
    }
}

fn batch_splitting(c: &mut Criterion) {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let ids = Int64Array::from_iter_values(0..ROWS as i64);
    let batch = RecordBatch::try_new(schema, vec![Arc::new(ids)]).expect("batch");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("isolate");
    group.throughput(Throughput::Elements(ROWS as u64));
    for bad_rows in [1usize, 10, 100] {
        // Spread evenly, as bad rows in real data usually are.
        let bad: HashSet<i64> = (0..bad_rows)
            .map(|i| (i * ROWS / bad_rows + 7) as i64)
            .collect();
        for names_row in [true, false] {
            let writes = Cell::new(0);
            let isolate_once = || {
                runtime.block_on(isolate(
                    black_box(&batch),
                    |slice| refusing_target(slice, &bad, names_row, &writes),
                    |_| Ok(()),
                    |e| e,
                ))
            };
            let (_, rejected) = isolate_once().expect("isolate");
            assert_eq!(rejected.len(), bad_rows);
            let name = if names_row { "names_row" } else { "bisects" };
            println!(
                "isolate/{name}/{bad_rows}_bad: {} writes for {ROWS} rows",
                writes.get()
            );
            group.bench_function(format!("{name}/{bad_rows}_bad"), |b| {
                b.iter(|| isolate_once().expect("isolate"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, hot_paths, batch_splitting);
criterion_main!(benches);
