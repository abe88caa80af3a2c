//! Micro-benchmarks of the per-row hot paths, on 10,000 rows of the generated orders table:
//! Arrow to PostgreSQL's binary COPY, to MySQL's INSERT text and LOAD DATA file, to OData JSON and a
//! `$batch` body. `cargo bench -p ferry-bench` runs them.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferry_bench::data::orders_batch;
use ferry_connectors::odata::{encode, multipart};
use ferry_connectors::sql::mysql::values::Literals;
use ferry_connectors::sql::postgres::copy;
use ferry_connectors::sql::postgres::types::PgType;

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
        b.iter(|| encode::rows(black_box(&batch), &[], &[]).expect("json"))
    });
    let json = encode::rows(&batch, &[], &[]).expect("json");
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

criterion_group!(benches, hot_paths);
criterion_main!(benches);
