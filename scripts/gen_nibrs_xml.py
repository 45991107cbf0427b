#!/usr/bin/env python3
"""Writes a NIBRS XML submission of N Group A reports, from the official IEPD sample's report
(tests/data/nibrs/iepd2019_nibrs_GroupAIncident_Sample.xml), each with its own incident number.

Usage: gen_nibrs_xml.py REPORTS OUT.xml
"""
import re
import sys

src = open(sys.argv[3] if len(sys.argv) > 3 else "tests/data/nibrs/iepd2019_nibrs_GroupAIncident_Sample.xml").read()
head = src[: src.index("<nibrs:Report>")]
report = src[src.index("<nibrs:Report>") : src.index("</nibrs:Report>") + len("</nibrs:Report>")]
tail = src[src.index("</nibrs:Report>") + len("</nibrs:Report>") :]
number = re.search(r"<nc:IdentificationID>(000054236732)</nc:IdentificationID>", report).group(1)
n = int(sys.argv[1])
with open(sys.argv[2], "w") as out:
    out.write(head)
    for i in range(n):
        out.write(report.replace(number, f"{i:012d}"))
        out.write("\n")
    out.write(tail)
