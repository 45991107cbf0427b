#!/usr/bin/env bash
# End-to-end benchmark (not a test): a generated CAD export with persons (scripts/gen_cad_csv.py)
# through a config like the demo's (two de-identified destinations, two consented-referral ones,
# all four delivering to folders; PRSS consents and engagements for every 50th eligible call, from
# scripts/gen_prss.py), `run --once` to completion (ingest, disclosure stage, delivery), beside
# `normalize` of the same file in the same run. Prints wall time, incidents/s, decisions/s,
# deliveries/s and peak RSS, with the store on the disk and on tmpfs (/dev/shm), on the file and
# on a tenth of it.
# Usage: scripts/bench-e2e.sh [ROWS]   (default 1,000,000)
#   PNP_GATEWAY_BIN       the binary measured (default: a release build of this tree)
#   PNP_GATEWAY_BASELINE  another binary measured the same way, beside it (before/after)
#   BENCH_WHERE           "disk shm" (default), or one of them
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
tenth=$((rows / 10))
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
work=$(realpath "$work")
for n in "$rows" "$tenth"; do
  [ -s "$work/cad_$n.csv" ] || python3 scripts/gen_cad_csv.py "$n" "$work/cad_$n.csv"
  [ -s "$work/prss_$n/consents.json" ] || python3 scripts/gen_prss.py "$work/cad_$n.csv" "$work/prss_$n" 50
done
if [ -z "${PNP_GATEWAY_BIN:-}" ]; then
  cargo build --release --quiet
  PNP_GATEWAY_BIN=target/release/pnp-gateway
fi
bins=("$(realpath "$PNP_GATEWAY_BIN")")
[ -n "${PNP_GATEWAY_BASELINE:-}" ] && bins+=("$(realpath "$PNP_GATEWAY_BASELINE")")
shm=$(mktemp -d /dev/shm/pnp-bench-e2e.XXXXXX)
trap 'rm -rf "$shm" "$work/e2e"' EXIT
result=$(mktemp)
export PNP_GATEWAY_TODAY=2026-11-27 # the consents' and the PRSS roster's dates hold

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"

# A gateway tree in DIR over the export of N rows: config, keys, PRSS records imported.
setup() {
  local bin=$1 dir=$2 n=$3
  rm -rf "$dir"
  mkdir -p "$dir/exports"
  # A copy, not a link: the drop-folder scan takes regular files only.
  cp "$work/cad_$n.csv" "$dir/exports/cad.csv"
  cat >"$dir/gateway.toml" <<TOML
adapters_dir = "$PWD/adapters"
[store]
path = "state/gateway.db"
[program]
include = ["overdose", "substance_use", "behavioral_health", "welfare_check", "domestic_nonviolent"]
exclude = ["violent"]
exclude_flags = ["weapon", "violence"]
[[pipeline]]
adapter = "generic-cad-csv"
folder = "exports"
[keys]
vault_key_file = "state/keys/vault.key"
audit_key_file = "state/keys/audit.key"
outbox_key_file = "state/keys/outbox.key"
[[prss]]
id = "PRSS-01"
certification = "WVCBAPP-PRSS-0101"
certified_until = "2027-06-30"
[[destination]]
id = "prestera"
name = "Prestera Center (SUD treatment)"
profile = "consented-referral"
purpose = "treatment_referral"
designations = ["sud_treatment_provider"]
require_certified_prss = true
deliver = { kind = "file", folder = "deliveries/prestera" }
[[destination]]
id = "qrt-kanawha"
name = "Kanawha County Quick Response Team"
profile = "consented-referral"
purpose = "treatment_referral"
designations = ["qrt"]
deliver = { kind = "file", folder = "deliveries/qrt-kanawha" }
[[destination]]
id = "dhhr-program"
name = "WV DHHR program reporting"
profile = "safe-harbor"
purpose = "program_evaluation"
deliver = { kind = "file", folder = "deliveries/dhhr-program" }
[[destination]]
id = "dhhr-research"
name = "WV DHHR evaluation (limited data set)"
profile = "limited-data-set"
purpose = "program_evaluation"
dua = "DHHR-DUA-2026-07"
deliver = { kind = "file", folder = "deliveries/dhhr-research" }
TOML
  "$bin" keys init --config "$dir/gateway.toml" >/dev/null
  "$bin" consent import --accept-incomplete --config "$dir/gateway.toml" "$work/prss_$n/consents.json" >/dev/null
  "$bin" engagement import --config "$dir/gateway.toml" "$work/prss_$n/engagements.csv" >/dev/null
}

q() { sqlite3 "$1/state/gateway.db" "$2"; }

for where in ${BENCH_WHERE:-disk shm}; do
  base=$work/e2e
  [ "$where" = shm ] && base=$shm
  for n in "$rows" "$tenth"; do
    csv="$work/cad_$n.csv"
    bytes=$(stat -c %s "$csv")
    echo
    echo "== $where: $n rows ($((bytes / 1000000)) MB), store in $base"
    for bin in "${bins[@]}"; do
      echo "-- $bin"
      MEASURE_RESULT=$result python3 scripts/measure.py "normalize" "$n" "$bytes" -- \
        "$bin" normalize --adapter generic-cad-csv "$csv"
      norm=$(cut -d' ' -f1 "$result")
      dir=$base/gw
      setup "$bin" "$dir" "$n"
      MEASURE_RESULT=$result python3 scripts/measure.py "run --once" "$n" "$bytes" -- \
        "$bin" run --once --config "$dir/gateway.toml"
      read -r secs _ <"$result"
      incidents=$(q "$dir" "SELECT count(*) FROM incidents")
      # A baseline binary may predate the audit's counts (migration 19) and the disclosure
      # queue (20).
      if [ "$(q "$dir" "SELECT count(*) FROM pragma_table_info('audit') WHERE name = 'count'")" = 1 ]; then
        decisions=$(q "$dir" "SELECT sum(count) FROM audit WHERE decision IN ('deliver', 'withhold')")
        undisclosed=$(q "$dir" "SELECT count(*) FROM undisclosed")
      else
        decisions=$(q "$dir" "SELECT count(*) FROM audit WHERE decision IN ('deliver', 'withhold')")
        undisclosed=$(q "$dir" "SELECT count(*) FROM incidents WHERE disclosed_at IS NULL")
      fi
      delivered=$(q "$dir" "SELECT count(*) FROM outbox WHERE status = 'delivered'")
      pending=$undisclosed+$(q "$dir" "SELECT count(*) FROM outbox WHERE status = 'pending'")
      awk -v s="$secs" -v ns="$norm" -v i="$incidents" -v d="$decisions" -v o="$delivered" -v p="$pending" 'BEGIN {
        printf "  %d incidents %10.0f/s, %d decisions %10.0f/s, %d deliveries %10.0f/s; %.1fx normalize; left undisclosed+pending: %s\n",
          i, i / s, d, d / s, o, o / s, s / ns, p }'
      echo "  store: $(du -sh "$dir/state" | cut -f1)"
      rm -rf "$dir"
    done
  done
done
rm -f "$result"
