#!/usr/bin/env python3
"""Writes a synthetic CAD CSV in the generic-cad-csv layout (persons, narratives) for benchmarks.

Usage: gen_cad_csv.py ROWS OUT.csv. Deterministic; every name, phone and SSN is invented.
"""
import csv
import random
import sys

HEADER = ["IncidentNumber", "ORI", "CallType", "CallTypeDesc", "Priority", "ReceivedTime",
          "DispatchedTime", "ArrivedTime", "ClearedTime", "Address", "City", "County", "State", "Zip",
          "Latitude", "Longitude", "Beat", "Disposition", "NaloxoneGiven", "WeaponInvolved",
          "SubjectName", "SubjectDOB", "SubjectSex", "SubjectRace", "SubjectPhone", "SubjectSSN",
          "SubjectAddress", "CallerName", "CallerPhone", "Narrative"]
CODES = [("OD", "OVERDOSE"), ("MH", "MENTAL HEALTH CRISIS"), ("WELF", "WELFARE CHECK"),
         ("SUB", "SUBSTANCE USE"), ("ASLT", "ASSAULT"), ("TRAF", "TRAFFIC"), ("THEFT", "THEFT")]
LAST = ["SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "MILLER", "DAVIS", "WILSON", "MOORE"]
FIRST = ["JAMES", "MARY", "ROBERT", "PATRICIA", "JOHN", "JENNIFER", "MICHAEL", "LINDA", "ALEX"]
CITIES = [("CHARLESTON", "KANAWHA", "25301"), ("HUNTINGTON", "CABELL", "25701"),
          ("MORGANTOWN", "MONONGALIA", "26505"), ("BECKLEY", "RALEIGH", "25801")]


def main():
    rows, out = int(sys.argv[1]), sys.argv[2]
    rnd = random.Random(42)
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(rows):
            code, desc = CODES[i % len(CODES)]
            city, county, zipc = CITIES[i % len(CITIES)]
            day = 1 + i % 28
            month = 1 + (i // 28) % 12
            # Hours 4 to 23 avoid the daylight-saving gap and overlap.
            h, m, s = 4 + i % 20, i % 60, (i * 7) % 60
            t = f"{month:02d}/{day:02d}/2025 {h:02d}:{m:02d}:{s:02d}"
            t2 = f"{month:02d}/{day:02d}/2025 {h:02d}:{m:02d}:{(s + 1) % 60:02d}"
            name = f"{rnd.choice(LAST)}, {rnd.choice(FIRST)} {chr(65 + i % 26)}"
            w.writerow([
                f"2025-{i:08d}", "WV0200100", code, desc, str(1 + i % 4), t, t2, t2, t2,
                f"{100 + i % 900} MAIN ST", city, county, "WV", zipc,
                f"{38 + rnd.random():.5f}", f"{-81 - rnd.random():.5f}", f"B{i % 9}",
                "REF", "Y" if code == "OD" else "N", "N", name,
                f"{1 + i % 12:02d}/{1 + i % 28:02d}/{1950 + i % 50}", "MF"[i % 2], "W",
                f"(304) 555-{i % 10000:04d}", f"{100 + i % 800:03d}-{i % 100:02d}-{i % 10000:04d}",
                f"{i % 999} OAK AVE", f"{rnd.choice(LAST)}, {rnd.choice(FIRST)}", f"304-555-{(i * 3) % 10000:04d}",
                f"Caller reports person in distress near {100 + i % 900} Main St; unit {i % 50} responded, "
                f"peer contacted, \"agreed to follow-up\" call {i}.",
            ])


if __name__ == "__main__":
    main()
