# Sourced by the benchmarks that drive `pnp-gateway demo --serve` (bench-api.sh, bench-mllp.sh):
# the binary measured, the machine line, and a fresh demo service per measurement.
#   PNP_GATEWAY_BIN  the binary measured (default: a release build of this tree)
if [ -z "${PNP_GATEWAY_BIN:-}" ]; then
  cargo build --release --quiet
  PNP_GATEWAY_BIN=target/release/pnp-gateway
fi
bin=$(realpath "$PNP_GATEWAY_BIN")
export PNP_GATEWAY_TODAY=2026-11-27 # the demo's consents' and PRSS roster's dates hold
pid=

# Stops the demo service started last (SIGTERM, then waits for it).
stop() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
  fi
}

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
