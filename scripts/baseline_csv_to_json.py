#!/usr/bin/env python3
"""The Python baseline for the ingest benchmark: CSV rows to JSON lines with csv + json only."""
import csv
import json
import sys

with open(sys.argv[1], newline="", encoding="utf-8") as f, open(sys.argv[2], "w") as out:
    for row in csv.DictReader(f):
        out.write(json.dumps(row))
        out.write("\n")
