#!/usr/bin/env bash
# API benchmark (not a test): `pnp-gateway demo --serve` (the service, its HTTPS API on loopback,
# the demo's local HTTPS receiver as the `dhhr-research` destination), driven by
# scripts/bench_api.py (Python's http.client + ssl):
#   1. a generated CAD export of ROWS rows (scripts/gen_cad_csv.py) pushed to
#      POST /v1/pipelines/generic-cad-csv/exports in bodies of 1,000 records, each with the CSV
#      header, over one keep-alive connection, then over 4 at once: records/s and requests/s
#      (a 202 comes after the commit); after the 4, one record more, its 202 timed (it waits for
#      the disclosure pass over what the 4 pushed);
#   2. SAMPLES pushes of one eligible call each (unique incident number and key): the time from
#      the POST to the payload's line in the receiver's received.ndjson (p50, p90, p99, max).
# Each measurement gets a fresh demo (its own store), on tmpfs (/dev/shm) and on the disk.
# Usage: scripts/bench-api.sh [ROWS [SAMPLES]]   (default 100,000 and 300)
#   PNP_GATEWAY_BIN  the binary measured (default: a release build of this tree; scripts/bench-demo.sh)
#   BENCH_WHERE      "shm disk" (default), or one of them
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000}
samples=${2:-300}
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
work=$(realpath "$work")
csv=$work/cad_$rows.csv
[ -s "$csv" ] || python3 scripts/gen_cad_csv.py "$rows" "$csv"
. scripts/bench-demo.sh
shm=$(mktemp -d /dev/shm/pnp-bench-api.XXXXXX)
trap 'stop; rm -rf "$shm" "$work/api"' EXIT

for where in ${BENCH_WHERE:-shm disk}; do
  base=$work/api
  [ "$where" = shm ] && base=$shm
  echo
  echo "== $where: store in $base, $rows rows ($(($(stat -c %s "$csv") / 1000000)) MB)"
  for clients in 1 4; do
    start "$base/gw"
    more=()
    [ "$clients" = 4 ] && more=(--then-one)
    python3 scripts/bench_api.py push "$ep" "$csv" --clients "$clients" --pid "$pid" "${more[@]}"
    stop
  done
  start "$base/gw"
  python3 scripts/bench_api.py latency "$ep" --samples "$samples" --pid "$pid"
  stop
  rm -rf "$base/gw"
done
