#!/usr/bin/env bash
# Kafka source benchmark (not a test): records/s `pnp-gateway run` drains from a topic's backlog
# (librdkafka's mock cluster, 3 partitions), staged and with offsets committed after the store
# commit, beside `run --once` of the same records as one NDJSON file in the same run
# (benches/kafka_source.rs). On tmpfs (/dev/shm) and on the disk.
# Usage: scripts/bench-kafka.sh [RECORDS]   (default 20,000)
#   BENCH_WHERE  "shm disk" (default), or one of them
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
PNP_BENCH_RECORDS=${1:-20000} cargo bench --locked --quiet --bench kafka_source
