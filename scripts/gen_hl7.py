#!/usr/bin/env python3
"""Writes N HL7 v2.5.1 ADT^A04 messages (CR segment ends) with a patient, next of kin and an
overdose diagnosis; every name and number is invented. Usage: gen_hl7.py MESSAGES OUT.hl7"""
import sys

n = int(sys.argv[1])
with open(sys.argv[2], "w", newline="") as out:
    for i in range(n):
        out.write(
            f"MSH|^~\\&|EDIS|CAMC|PNP|WV|20260301{i % 24:02d}1500||ADT^A04^ADT_A01|MSG{i:08d}|P|2.5.1\r"
            f"EVN|A04|20260301{i % 24:02d}1500\r"
            f"PID|1||{100000 + i}^^^CAMC^MR~{i % 900 + 100:03d}-{i % 90 + 10:02d}-{i % 9000 + 1000:04d}^^^SSA^SS||DOE^JANE^Q^^^^L||19900704|F||W|12 EXAMPLE AVE^^CHARLESTON^WV^25301||(304)555-{i % 10000:04d}|||||||||N\r"
            f"NK1|1|DOE^JOHN|SPO|12 EXAMPLE AVE^^CHARLESTON^WV^25301|(304)555-0199\r"
            f"PV1|1|E|ED^01^01||||1234^WELBY^MARCUS|||||||||||V{i:08d}|||||||||||||||||||||||||20260301{i % 24:02d}1500\r"
            f"DG1|1||T40.1X1A^Poisoning by heroin, accidental^I10|||A\r"
            f"NTE|1||Brought in by EMS after naloxone \\T\\ peer contacted\r"
        )
