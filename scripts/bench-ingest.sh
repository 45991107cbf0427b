#!/usr/bin/env bash
# Ingest benchmark (not a test): normalize a generated CAD CSV with persons and narratives to
# /dev/null, beside two baselines that convert the same file to JSON lines with no mapping (the
# csv crate + serde_json: benches/csv_json_baseline.rs; Python's csv + json) and `cat` as the
# floor, in the same run. Prints normalize's speed as a fraction of the Rust baseline's.
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
# The bench target's executable has a hashed name: cargo says which.
baseline=$(cargo build --release --quiet --bench csv_json_baseline --message-format=json |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "csv_json_baseline" and m.get("executable"):
        print(m["executable"])')
result=$(mktemp)
trap 'rm -f "$result"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
echo "input:   $csv, $rows rows, $((bytes / 1000000)) MB"
# Each measure runs in its own python process, so peak RSS is that command's alone.
python3 scripts/measure.py "cat (floor)" "$rows" "$bytes" -- cat "$csv"
MEASURE_RESULT=$result python3 scripts/measure.py "pnp-gateway normalize" "$rows" "$bytes" -- \
  taskset -c 0 "$bin" normalize --adapter generic-cad-csv "$csv"
read -r norm _ norm_cpu <"$result"
MEASURE_RESULT=$result python3 scripts/measure.py "csv+serde_json (baseline)" "$rows" "$bytes" -- \
  taskset -c 0 "$baseline" "$csv" /dev/null
read -r base _ base_cpu <"$result"
python3 scripts/measure.py "python csv+json (baseline)" "$rows" "$bytes" -- \
  python3 scripts/baseline_csv_to_json.py "$csv" /dev/null
# Memory must not grow with the file: the same run on a tenth of it.
small="$work/cad_$((rows / 10)).csv"
[ -s "$small" ] || python3 scripts/gen_cad_csv.py "$((rows / 10))" "$small"
python3 scripts/measure.py "pnp-gateway, 1/10 the rows" "$((rows / 10))" "$(stat -c %s "$small")" -- \
  taskset -c 0 "$bin" normalize --adapter generic-cad-csv "$small"
# Speed as a fraction of the baseline's, by wall time and by CPU time (the steadier of the two
# on a machine shared with other work).
awk -v n="$norm" -v b="$base" -v nc="$norm_cpu" -v bc="$base_cpu" 'BEGIN {
  printf "normalize runs at %.2fx the csv+serde_json baseline'"'"'s speed by wall time (%.2f s against %.2f s), %.2fx by CPU time (%.2f s against %.2f s); target >= 0.5x\n",
    b / n, n, b, bc / nc, nc, bc }'
