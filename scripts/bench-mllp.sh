#!/usr/bin/env bash
# MLLP benchmark (not a test): `pnp-gateway demo --serve`'s MLLP listener for its HL7 pipeline,
# driven by scripts/bench_mllp.py (plain sockets): N REF^I12 messages, each ACKed after its
# commit, over one connection and over 4 at once; messages/s and the time from send to ACK. Each
# measurement gets a fresh demo (its own store), on tmpfs (/dev/shm) and on the disk.
# Usage: scripts/bench-mllp.sh [MESSAGES]   (default 2,000)
#   PNP_GATEWAY_BIN  the binary measured (default: a release build of this tree)
#   BENCH_WHERE      "shm disk" (default), or one of them
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
work=$(realpath "$work")
if [ -z "${PNP_GATEWAY_BIN:-}" ]; then
  cargo build --release --quiet
  PNP_GATEWAY_BIN=target/release/pnp-gateway
fi
bin=$(realpath "$PNP_GATEWAY_BIN")
shm=$(mktemp -d /dev/shm/pnp-bench-mllp.XXXXXX)
pid=
stop() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
  fi
}
trap 'stop; rm -rf "$shm" "$work/mllp"' EXIT
export PNP_GATEWAY_TODAY=2026-11-27

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"

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
  base=$work/mllp
  [ "$where" = shm ] && base=$shm
  echo "== $where: store in $base, $n messages"
  for c in 1 4; do
    start "$base/gw"
    python3 scripts/bench_mllp.py "$ep" --messages "$n" --connections "$c"
    stop
  done
  rm -rf "$base/gw"
done
