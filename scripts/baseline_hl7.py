#!/usr/bin/env python3
"""The Python baseline for HL7: python-hl7 (`hl7` on PyPI) parsing every message of a file."""
import sys

import hl7

text = open(sys.argv[1], newline="").read()
count = 0
for chunk in text.split("MSH|")[1:]:
    msg = hl7.parse("MSH|" + chunk)
    count += len(msg)
print(count, file=sys.stderr)
