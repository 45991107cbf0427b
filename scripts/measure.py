#!/usr/bin/env python3
"""Runs a command, prints wall time, records/s, MB/s and the command's peak RSS.

Usage: measure.py LABEL ROWS BYTES -- CMD... (stdout of CMD goes to /dev/null)

Peak RSS is the kernel's high-water mark (VmHWM in /proc/PID/status), sampled every 5 ms while
the command runs: getrusage of a child would also count the Python pages it was forked from.
CPU time (user + system) is the command's own, from the kernel's accounting of the reaped child:
on a machine shared with other work it moves far less than wall time. With MEASURE_RESULT=FILE
in the environment, also writes "SECONDS PEAK_RSS_KIB CPU_SECONDS" to FILE (for scripts that
derive more rates from the same run).
"""
import os
import resource
import subprocess
import sys
import tempfile
import time

label, rows, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cmd = sys.argv[sys.argv.index("--") + 1:]
def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


cpu0 = children_cpu()
start = time.perf_counter()
# stderr is kept (in a temporary file) to say why, should the command fail.
err = tempfile.TemporaryFile()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
hwm_kib = 0
while p.poll() is None:
    try:
        with open(f"/proc/{p.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm_kib = max(hwm_kib, int(line.split()[1]))
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    time.sleep(0.005)
secs = time.perf_counter() - start
cpu = children_cpu() - cpu0
if p.returncode != 0:
    err.seek(0)
    tail = err.read().decode("utf-8", "replace").splitlines()[-10:]
    sys.exit(f"{label}: exit {p.returncode}\n" + "\n".join(tail))
print(f"{label:<28} {secs:8.2f} s {rows / secs:12,.0f} records/s {size / secs / 1e6:8.1f} MB/s   peak RSS {hwm_kib / 1024:7.1f} MiB   cpu {cpu:7.2f} s")
if os.environ.get("MEASURE_RESULT"):
    with open(os.environ["MEASURE_RESULT"], "w") as f:
        f.write(f"{secs} {hwm_kib} {cpu}\n")
