#!/usr/bin/env bash
# Standard-format benchmark (not a test): NIBRS XML MB/s and peak RSS on a generated submission
# of a few hundred MB (and a tenth of it: RSS must not grow), and HL7 v2 messages/s against
# Python's `hl7` package parsing the same messages, in the same run.
# Usage: scripts/bench-standards.sh [NIBRS_REPORTS] [HL7_MESSAGES]   (defaults 200000, 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
reports=${1:-200000}
messages=${2:-200000}
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
cargo build --release --quiet
bin=target/release/pnp-gateway
python3 -c 'import hl7' 2>/dev/null || python3 -m pip install --quiet 'hl7==0.4.5'
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
xml="$work/nibrs_${reports}.xml"
[ -s "$xml" ] || python3 scripts/gen_nibrs_xml.py "$reports" "$xml"
small="$work/nibrs_$((reports / 10)).xml"
[ -s "$small" ] || python3 scripts/gen_nibrs_xml.py "$((reports / 10))" "$small"
echo "NIBRS XML: $xml, $reports reports, $(( $(stat -c %s "$xml") / 1000000 )) MB"
python3 scripts/measure.py "cat (floor)" "$reports" "$(stat -c %s "$xml")" -- cat "$xml"
python3 scripts/measure.py "pnp-gateway nibrs-xml" "$reports" "$(stat -c %s "$xml")" -- \
  taskset -c 0 "$bin" normalize --adapter nibrs-xml "$xml"
python3 scripts/measure.py "pnp-gateway, 1/10 of it" "$((reports / 10))" "$(stat -c %s "$small")" -- \
  taskset -c 0 "$bin" normalize --adapter nibrs-xml "$small"
h="$work/adt_${messages}.hl7"
[ -s "$h" ] || python3 scripts/gen_hl7.py "$messages" "$h"
echo "HL7 v2: $h, $messages messages, $(( $(stat -c %s "$h") / 1000000 )) MB (records/s = messages/s)"
python3 scripts/measure.py "pnp-gateway hl7v2 normalize" "$messages" "$(stat -c %s "$h")" -- \
  taskset -c 0 "$bin" normalize --adapter hl7v2 "$h"
python3 scripts/measure.py "python hl7.parse (baseline)" "$messages" "$(stat -c %s "$h")" -- \
  taskset -c 0 python3 scripts/baseline_hl7.py "$h"
