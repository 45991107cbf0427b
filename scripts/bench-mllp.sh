#!/usr/bin/env bash
# MLLP benchmark (not a test): `pnp-gateway demo --serve`'s MLLP listener for its HL7 pipeline,
# driven by scripts/bench_mllp.py (plain sockets): N REF^I12 messages, each ACKed after its
# commit, over one connection and over 4 at once; messages/s and the time from send to ACK. Each
# measurement gets a fresh demo (its own store), on tmpfs (/dev/shm) and on the disk.
# Usage: scripts/bench-mllp.sh [MESSAGES]   (default 2,000)
#   PNP_GATEWAY_BIN  the binary measured (default: a release build of this tree; scripts/bench-demo.sh)
#   BENCH_WHERE      "shm disk" (default), or one of them
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
work=$(realpath "$work")
. scripts/bench-demo.sh
shm=$(mktemp -d /dev/shm/pnp-bench-mllp.XXXXXX)
trap 'stop; rm -rf "$shm" "$work/mllp"' EXIT

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
