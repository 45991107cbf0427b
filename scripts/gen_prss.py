#!/usr/bin/env python3
"""Writes PRSS consents and engagements for a CAD CSV made by gen_cad_csv.py, for benchmarks.

Usage: gen_prss.py CAD.csv OUT_DIR EVERY. Every EVERY-th eligible call (overdose, mental health,
substance use, welfare check) gets a consent naming its subject (name and date of birth as in the
export, so that it matches) for `prestera` or `qrt-kanawha`, in turn, and an engagement by a
certified PRSS referring the call to that destination: OUT_DIR/consents.json and
OUT_DIR/engagements.csv. Every name is the generator's invention.
"""
import csv
import json
import os
import sys

ELIGIBLE = {"OD", "MH", "SUB", "WELF"}
PROVIDERS = ["prestera", "qrt-kanawha"]


def main():
    src, out, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    consents, engagements = [], []
    seen = 0
    with open(src, newline="") as f:
        for row in csv.DictReader(f):
            if row["CallType"] not in ELIGIBLE:
                continue
            seen += 1
            if seen % every:
                continue
            n = len(consents) + 1
            provider = PROVIDERS[n % 2]
            m, d, y = row["SubjectDOB"].split("/")
            cid = f"C-BENCH-{n:07d}"
            consents.append({
                "id": cid,
                "patient_name": row["SubjectName"],
                "patient_dob": f"{y}-{m}-{d}",
                "disclosing": "Kanawha County Police and Peers program",
                "information": ["identity", "contact", "referral"],
                "recipients": [provider],
                "purpose": "treatment_referral",
                "right_to_revoke_statement": "I may revoke this consent in writing at any time.",
                "expires_on": "2030-12-31",
                "signature": "signed",
                "signed_on": "2025-01-01",
            })
            engagements.append([f"E-BENCH-{n:07d}", row["IncidentNumber"], "generic-cad-csv",
                                "subject", "PRSS-01", cid, "sud_treatment", provider, "2025-01-02"])
    with open(os.path.join(out, "consents.json"), "w") as f:
        json.dump(consents, f, indent=1)
    with open(os.path.join(out, "engagements.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "incident_id", "adapter", "person_role", "prss_id", "consent_id",
                    "service", "provider", "engaged_on"])
        w.writerows(engagements)


if __name__ == "__main__":
    main()
