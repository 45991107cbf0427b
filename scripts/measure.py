#!/usr/bin/env python3
"""Runs a command, prints wall time, records/s, MB/s and the child's peak RSS.

Usage: measure.py LABEL ROWS BYTES -- CMD... (stdout of CMD goes to /dev/null)
"""
import resource
import subprocess
import sys
import time

label, rows, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cmd = sys.argv[sys.argv.index("--") + 1:]
start = time.perf_counter()
subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
secs = time.perf_counter() - start
rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"{label:<28} {secs:8.2f} s {rows / secs:12,.0f} records/s {size / secs / 1e6:8.1f} MB/s   peak RSS {rss_mib:7.1f} MiB")
