#!/usr/bin/env bash
# Ingest benchmark (not a test): normalize a generated CAD CSV with persons and narratives to
# /dev/null, beside Python's csv+json as a baseline and `cat` as the floor, in the same run.
# Usage: scripts/bench-ingest.sh [ROWS]   (default 1,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
csv="$work/cad_${rows}.csv"
[ -s "$csv" ] || python3 scripts/gen_cad_csv.py "$rows" "$csv"
bytes=$(stat -c %s "$csv")
cargo build --release --quiet
bin=target/release/pnp-gateway
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
echo "input:   $csv, $rows rows, $((bytes / 1000000)) MB"
# Each measure runs in its own python process, so peak RSS is that command's alone.
python3 scripts/measure.py "cat (floor)" "$rows" "$bytes" -- cat "$csv"
python3 scripts/measure.py "pnp-gateway normalize" "$rows" "$bytes" -- \
  taskset -c 0 "$bin" normalize --adapter generic-cad-csv "$csv"
python3 scripts/measure.py "python csv+json (baseline)" "$rows" "$bytes" -- \
  python3 scripts/baseline_csv_to_json.py "$csv" /dev/null
# Memory must not grow with the file: the same run on a tenth of it.
small="$work/cad_$((rows / 10)).csv"
[ -s "$small" ] || python3 scripts/gen_cad_csv.py "$((rows / 10))" "$small"
python3 scripts/measure.py "pnp-gateway, 1/10 the rows" "$((rows / 10))" "$(stat -c %s "$small")" -- \
  taskset -c 0 "$bin" normalize --adapter generic-cad-csv "$small"
