#!/usr/bin/env bash
# The foundation benchmark of BENCHMARKS.md: the generated orders through two steps into parquet and
# into SQLite, at 1M and 10M rows, three runs each; prints one `bench:` line per run.
# Usage: benches/run-foundation.sh [DATA_DIR]   (default /tmp/ferry-bench)
#        PROFILE=release benches/run-foundation.sh  (the release build; default: dev, as tests use)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-/tmp/ferry-bench}"
source benches/build.sh
build_bins dev ferry-bench
bench="$bin/ferry-bench"
for rows in 1000000 10000000; do
  dir="$data/$rows"
  [ -d "$dir/orders" ] || "$bench" data --rows "$rows" --out "$dir"
  for run in 1 2 3; do
    for target in parquet sqlite; do
      rm -rf "$dir/out"
      FERRY_BENCH_DATA="$dir" "$bench" run "benches/pipelines/orders-to-$target.toml" | grep '^bench:' | sed "s/^bench:/bench: rows_in=$rows run=$run/"
    done
  done
done
