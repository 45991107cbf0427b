#!/usr/bin/env bash
# Idle cost of watch mode (not a test): `pnp-gateway run` watching drop folders with nothing new
# in them, its CPU time (utime + stime from /proc/PID/stat) over a window, as a share of a core.
# Two cases: an empty drop folder, and the demo after its run (exports already read still in their
# folders, a store with incidents, every payload delivered).
# Usage: scripts/bench-idle.sh [SECONDS]   (default 10; PNP_GATEWAY_BIN picks another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-idle.XXXXXX")
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
if [ -z "${PNP_GATEWAY_BIN:-}" ]; then
  cargo build --release --quiet
  PNP_GATEWAY_BIN=target/release/pnp-gateway
fi
bin=$(realpath "$PNP_GATEWAY_BIN")
tck=$(getconf CLK_TCK)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
echo "binary:  $bin"

cpu() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# Starts `run` on CONFIG, lets it settle for 2 s, prints its CPU share over the window.
measure() {
  local label=$1 cfg=$2
  "$bin" run --config "$cfg" 2>/dev/null >/dev/null &
  pid=$!
  sleep 2
  local a b
  a=$(cpu "$pid")
  sleep "$secs"
  b=$(cpu "$pid")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
  awk -v t=$((b - a)) -v hz="$tck" -v s="$secs" -v l="$label" \
    'BEGIN { printf "%-44s %5.2f%% of a core (%d ticks in %d s)\n", l, 100 * t / (hz * s), t, s }'
}

mkdir -p "$work/empty/drop"
cat >"$work/empty/gateway.toml" <<TOML
adapters_dir = "$PWD/adapters"
[store]
path = "state/g.db"
[[pipeline]]
adapter = "generic-cad-csv"
folder = "drop"
TOML
measure "empty drop folder" "$work/empty/gateway.toml"

"$bin" demo --out "$work/demo" >/dev/null 2>&1
measure "demo after its run (exports read, delivered)" "$work/demo/examples/demo/gateway.toml"
