#!/usr/bin/env bash
# The SQL benchmark of BENCHMARKS.md: the generated 10-column orders into PostgreSQL and MariaDB, by
# Ferry and by the reference tools, alternating in one run, three rounds; prints one `bench:` line
# per measurement. Needs the machine's PostgreSQL (5432) and MariaDB (3306); creates and drops the
# database ferry_bench on both.
# Usage: benches/run-sql.sh [DATA_DIR]          (default /tmp/ferry-bench)
#        ROWS=10000000 PROFILE=release benches/run-sql.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${ROWS:-1000000}"
root="${1:-/tmp/ferry-bench}"
data="$root/$rows"
update="$root/$rows-update"
source benches/build.sh
build_bins release ferry-bench
bench="$bin/ferry-bench"
[ -f "$data/orders.csv" ] || "$bench" data --rows "$rows" --out "$data" --csv
# The update set: keys from half-way, other values: half of them change existing rows, half are new.
[ -f "$update/orders.csv" ] || "$bench" data --rows "$rows" --start $((rows / 2)) --seed 7 --out "$update" --csv

psql_() { psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres "$@"; }
mysql_() { mysql -h127.0.0.1 -uroot --local-infile=1 "$@"; }
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
ferry_rate() { "$bench" run "$1" | sed -n 's/^bench:.* rows_per_s=\([0-9]*\).*/\1/p'; }

ddl_pg="CREATE TABLE orders (order_id bigint PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
  description text NOT NULL, amount numeric(12,2) NOT NULL, discount double precision NOT NULL,
  paid boolean NOT NULL, order_date date NOT NULL, created_at timestamp NOT NULL, coupon text)"
ddl_my="CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id INT NOT NULL, status VARCHAR(16) NOT NULL,
  description TEXT NOT NULL, amount DECIMAL(12,2) NOT NULL, discount DOUBLE NOT NULL,
  paid BOOLEAN NOT NULL, order_date DATE NOT NULL, created_at DATETIME(6) NOT NULL, coupon VARCHAR(16))"
cols="customer_id, status, description, amount, discount, paid, order_date, created_at, coupon"
sets=$(echo "$cols" | tr -d ' ' | tr ',' '\n' | sed 's/.*/& = EXCLUDED.&/' | paste -sd, -)

psql_ -d postgres -c "DROP DATABASE IF EXISTS ferry_bench" -c "CREATE DATABASE ferry_bench"
mysql_ -e "DROP DATABASE IF EXISTS ferry_bench; CREATE DATABASE ferry_bench CHARACTER SET utf8mb4"
pg_fresh() { psql_ -d ferry_bench -c "DROP TABLE IF EXISTS orders" -c "$ddl_pg" -c "CHECKPOINT"; }
my_fresh() { mysql_ ferry_bench -e "DROP TABLE IF EXISTS orders; $ddl_my"; }
mode_pipeline() {
  sed "s/^mode = \"insert\"/mode = \"$1\"/" benches/pipelines/orders-to-postgres.toml > "$root/orders-to-postgres-$1.toml"
  echo "$root/orders-to-postgres-$1.toml"
}
export FERRY_BENCH_DATA="$data"
mkdir -p "$data/out"

for round in 1 2 3; do
  # insert into an empty keyed table: psql \copy from CSV, then Ferry from parquet.
  pg_fresh; a=$(now); psql_ -d ferry_bench -c "\\copy orders FROM '$data/orders.csv' CSV HEADER"; b=$(now)
  echo "bench: round=$round rows=$rows pg_insert psql_copy_csv rows_per_s=$(rate "$rows" "$a" "$b")"
  pg_fresh
  echo "bench: round=$round rows=$rows pg_insert ferry rows_per_s=$(ferry_rate benches/pipelines/orders-to-postgres.toml)"

  # upsert of the update set into the loaded table: hand-written staging upsert, then Ferry.
  a=$(now)
  psql_ -d ferry_bench <<SQL
BEGIN;
CREATE TEMP TABLE s (LIKE orders) ON COMMIT DROP;
\\copy s FROM '$update/orders.csv' CSV HEADER
INSERT INTO orders SELECT * FROM s ON CONFLICT (order_id) DO UPDATE SET $sets;
COMMIT;
SQL
  b=$(now)
  echo "bench: round=$round rows=$rows pg_upsert hand_written rows_per_s=$(rate "$rows" "$a" "$b")"
  pg_fresh; FERRY_BENCH_DATA="$data" "$bench" run benches/pipelines/orders-to-postgres.toml >/dev/null
  echo "bench: round=$round rows=$rows pg_upsert ferry rows_per_s=$(FERRY_BENCH_DATA="$update" ferry_rate "$(mode_pipeline upsert)")"

  # sync of the update set: staging + upsert + anti-join DELETE by hand, then Ferry.
  pg_fresh; FERRY_BENCH_DATA="$data" "$bench" run benches/pipelines/orders-to-postgres.toml >/dev/null
  a=$(now)
  psql_ -d ferry_bench <<SQL
BEGIN;
CREATE TEMP TABLE s (LIKE orders) ON COMMIT DROP;
\\copy s FROM '$update/orders.csv' CSV HEADER
INSERT INTO orders SELECT * FROM s ON CONFLICT (order_id) DO UPDATE SET $sets;
DELETE FROM orders o WHERE NOT EXISTS (SELECT 1 FROM s WHERE s.order_id = o.order_id);
COMMIT;
SQL
  b=$(now)
  echo "bench: round=$round rows=$rows pg_sync hand_written rows_per_s=$(rate "$rows" "$a" "$b")"
  pg_fresh; FERRY_BENCH_DATA="$data" "$bench" run benches/pipelines/orders-to-postgres.toml >/dev/null
  echo "bench: round=$round rows=$rows pg_sync ferry rows_per_s=$(FERRY_BENCH_DATA="$update" ferry_rate "$(mode_pipeline sync)")"

  # PostgreSQL table to a file: psql \copy (SELECT ...) TO CSV, then Ferry to parquet on 2 connections.
  pg_fresh; FERRY_BENCH_DATA="$data" "$bench" run benches/pipelines/orders-to-postgres.toml >/dev/null
  a=$(now); psql_ -d ferry_bench -c "\\copy (SELECT * FROM orders) TO '$data/out/from-pg.csv' CSV HEADER"; b=$(now)
  echo "bench: round=$round rows=$rows pg_read psql_copy_to_csv rows_per_s=$(rate "$rows" "$a" "$b")"
  echo "bench: round=$round rows=$rows pg_read ferry_parquet_2_partitions rows_per_s=$(ferry_rate benches/pipelines/postgres-to-parquet.toml)"

  # MariaDB insert into an empty keyed table: LOAD DATA LOCAL INFILE from CSV, then Ferry from parquet.
  my_fresh; a=$(now)
  mysql_ ferry_bench -e "LOAD DATA LOCAL INFILE '$data/orders.csv' INTO TABLE orders FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' IGNORE 1 LINES (order_id, customer_id, status, description, amount, discount, @paid, order_date, created_at, @coupon) SET paid = (@paid = 'true'), coupon = NULLIF(@coupon, '')"
  b=$(now)
  echo "bench: round=$round rows=$rows my_insert load_data_local rows_per_s=$(rate "$rows" "$a" "$b")"
  my_fresh
  echo "bench: round=$round rows=$rows my_insert ferry rows_per_s=$(ferry_rate benches/pipelines/orders-to-mysql.toml)"
done
psql_ -d postgres -c "DROP DATABASE IF EXISTS ferry_bench"
mysql_ -e "DROP DATABASE IF EXISTS ferry_bench"
