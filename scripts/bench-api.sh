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
#   PNP_GATEWAY_BIN  the binary measured (default: a release build of this tree)
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
if [ -z "${PNP_GATEWAY_BIN:-}" ]; then
  cargo build --release --quiet
  PNP_GATEWAY_BIN=target/release/pnp-gateway
fi
bin=$(realpath "$PNP_GATEWAY_BIN")
shm=$(mktemp -d /dev/shm/pnp-bench-api.XXXXXX)
pid=
stop() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
  fi
}
trap 'stop; rm -rf "$shm" "$work/api"' EXIT
export PNP_GATEWAY_TODAY=2026-11-27 # the demo's consents' and PRSS roster's dates hold

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"

# A fresh demo service in DIR; sets $pid and $ep (its endpoints.json).
start() {
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir"
  "$bin" demo --serve --out "$dir/demo" --listen 127.0.0.1:0 >"$dir/log" 2>&1 &
  pid=$!
  ep=$dir/demo/examples/demo/state/endpoints.json
  for _ in $(seq 300); do
    [ -s "$ep" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/log" >&2
  echo "demo --serve did not start" >&2
  exit 1
}

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
