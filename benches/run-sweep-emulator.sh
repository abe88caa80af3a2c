#!/usr/bin/env bash
# The sweep of BENCHMARKS.md: accounts upserted into the emulator, whose limits allow 4 requests at
# once per client (each 100-record $batch costs ~110 ms), over workers 1..16 and batch sizes 50/100.
# Throughput should rise with workers up to the limit and then stay flat; the tuner should pick the
# smallest setting at the top. Writes /tmp/ferry-sweep-emulator/{sweep.csv,sweep.svg,sweep/}.
# Usage: benches/run-sweep-emulator.sh            PROFILE=release benches/run-sweep-emulator.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/build.sh
build_bins dev ferry ferry-bench
out="${OUT:-/tmp/ferry-sweep-emulator}"
mkdir -p "$out"
export FERRY_BENCH_DATA="$out" FERRY_BENCH_PORT="${FERRY_BENCH_PORT:-18080}"
awk 'BEGIN { print "accountnumber,name,numberofemployees"; for (i = 0; i < 10000; i++) printf "A-%05d,Account %d,%d\n", i, i, i % 500 }' > "$out/accounts.csv"
"$bin/ferry" emulate dynamics --port "$FERRY_BENCH_PORT" --no-auth --concurrency 4 --requests 1000000 \
  --window 60s --execution 100000s --latency 10ms --per-record 1ms --jitter 0.1 >/dev/null 2>&1 &
emulator=$!
trap 'kill $emulator' EXIT
sleep 1
"$bin/ferry-bench" sweep benches/pipelines/accounts-to-emulator.toml --workers 1,2,4,8,16 \
  --batch-size 50,100 --repeat 3 --max-retries 0 --out "$out"
