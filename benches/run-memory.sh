#!/usr/bin/env bash
# The memory table of BENCHMARKS.md: the SQL pipelines at 1M and 10M rows, three runs each, into fresh
# keyed tables (PostgreSQL and MariaDB), and PostgreSQL read back into parquet; prints one `bench:`
# line per run (rows/s and peak memory, VmHWM). Needs the machine's PostgreSQL (5432) and MariaDB
# (3306); creates and drops the database ferry_bench on both. About ten minutes in the release profile.
# Usage: benches/run-memory.sh [DATA_DIR]        (default /tmp/ferry-bench)
#        SIZES="1000000" REPEAT=1 benches/run-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-/tmp/ferry-bench}"
sizes="${SIZES:-1000000 10000000}"
repeat="${REPEAT:-3}"
source benches/build.sh
build_bins release ferry-bench
bench="$bin/ferry-bench"

psql_() { psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"; }
mysql_() { mysql -h127.0.0.1 -uroot "$@"; }
trap 'psql_ -d postgres -c "DROP DATABASE IF EXISTS ferry_bench" >/dev/null 2>&1 || true;
      mysql_ -e "DROP DATABASE IF EXISTS ferry_bench" || true' EXIT
fresh() {
  psql_ -d postgres -c "DROP DATABASE IF EXISTS ferry_bench" -c "CREATE DATABASE ferry_bench"
  mysql_ -e "DROP DATABASE IF EXISTS ferry_bench; CREATE DATABASE ferry_bench CHARACTER SET utf8mb4"
}
# The pipelines create their tables (`create = true` is not set in them): the tables come first.
tables() {
  psql_ -d ferry_bench -c "CREATE TABLE orders (order_id bigint PRIMARY KEY, customer_id int NOT NULL,
    status text NOT NULL, description text NOT NULL, amount numeric(12,2) NOT NULL,
    discount double precision NOT NULL, paid boolean NOT NULL, order_date date NOT NULL,
    created_at timestamp NOT NULL, coupon text)"
  mysql_ ferry_bench -e "CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id INT NOT NULL,
    status VARCHAR(16) NOT NULL, description TEXT NOT NULL, amount DECIMAL(12,2) NOT NULL,
    discount DOUBLE NOT NULL, paid BOOLEAN NOT NULL, order_date DATE NOT NULL,
    created_at DATETIME(6) NOT NULL, coupon VARCHAR(16))"
}

for rows in $sizes; do
  data="$root/$rows"
  [ -d "$data/orders" ] || "$bench" data --rows "$rows" --out "$data"
  export FERRY_BENCH_DATA="$data"
  for round in $(seq 1 "$repeat"); do
    fresh >/dev/null
    tables
    rm -rf benches/pipelines/.ferry
    "$bench" run benches/pipelines/orders-to-postgres.toml | grep '^bench:'
    "$bench" run benches/pipelines/orders-to-mysql.toml | grep '^bench:'
    "$bench" run benches/pipelines/postgres-to-parquet.toml | grep '^bench:'
  done
done
