#!/usr/bin/env python3
"""Latency benchmark (not a test): the time from a CAD export landing in a drop folder to its
payload accepted by an HTTPS receiver, through `pnp-gateway run` (watching) and the reference
receiver `pnp-gateway receive`, both release builds on this machine.

Each of DROPS exports holds one eligible overdose call; it is written under a temporary name and
renamed into the drop folder (as an agency's export job should), then the receiver's output is
polled every 2 ms for its payload. The destination is DHHR's Safe Harbor feed over HTTPS: the
same pipeline as a referral (ingest, eligibility, disclosure decision, audit, encrypted outbox,
dispatch), without waiting for a PRSS's engagement, which for a referral comes later by nature.

Usage: scripts/bench-latency.py [DROPS]   (default 200; prints p50, p90, p99, max)
"""
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
drops = int(sys.argv[1]) if len(sys.argv) > 1 else 200
subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
exe = os.path.join(root, "target/release/pnp-gateway")

with open(os.path.join(root, "examples/demo/exports/generic/cad_export_2026-03.csv"), "rb") as f:
    header, first = f.read().split(b"\n")[:2]
first = first.decode("ascii")
rest = first[len("2026-000101,WV0200100,OD,OVERDOSE,"):]

work = tempfile.mkdtemp(prefix="pnp-latency-")
secret = os.path.join(work, "secret")
with open(secret, "w") as f:
    f.write(secrets.token_hex(32))
out = os.path.join(work, "received.ndjson")
open(out, "w").close()
rx = subprocess.Popen(
    [exe, "receive", "--listen", "127.0.0.1:0", "--tls-dir", os.path.join(work, "tls"),
     "--secret-file", secret, "--out", out],
    stderr=subprocess.PIPE, text=True)
port = None
while port is None:
    line = rx.stderr.readline()
    if not line:
        sys.exit("the receiver did not start")
    m = re.search(r"receiving on https://127\.0\.0\.1:(\d+)", line)
    port = m and m.group(1)

drop = os.path.join(work, "drop")
os.makedirs(drop)
cfg = os.path.join(work, "gateway.toml")
with open(cfg, "w") as f:
    f.write(f"""adapters_dir = "{root}/adapters"
[store]
path = "state/gateway.db"
[program]
include = ["overdose", "substance_use", "behavioral_health", "welfare_check"]
exclude = ["violent"]
exclude_flags = ["weapon", "violence"]
[[pipeline]]
adapter = "generic-cad-csv"
folder = "drop"
[[destination]]
id = "dhhr-program"
profile = "safe-harbor"
purpose = "program_evaluation"
deliver = {{ kind = "webhook", url = "https://localhost:{port}/program", secret_file = "secret", ca_file = "tls/ca.pem" }}
""")
env = dict(os.environ)
for k in ("VAULT", "AUDIT", "OUTBOX"):
    env[f"PNP_GATEWAY_{k}_KEY"] = secrets.token_hex(32)
gw = subprocess.Popen([exe, "run", "--config", cfg], env=env,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.0)  # the watcher is up


def received():
    with open(out, "rb") as f:
        return f.read().count(b"\n")


lat = []
try:
    for i in range(1, drops + 1):
        name = f"cad_{i:06}.csv"
        tmp = os.path.join(drop, f".{name}.part")
        with open(tmp, "wb") as f:
            f.write(header + b"\n" + f"2027-{i:06},WV0200100,OD,OVERDOSE,{rest}\n".encode())
        before = received()
        t0 = time.perf_counter()
        os.rename(tmp, os.path.join(drop, name))
        while received() == before:
            if time.perf_counter() - t0 > 30:
                sys.exit(f"drop {i}: nothing received after 30 s")
            time.sleep(0.002)
        lat.append(time.perf_counter() - t0)
        time.sleep(random.uniform(0, 0.2))
finally:
    gw.kill()
    rx.kill()

lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print(f"machine: {os.cpu_count()} cores; {drops} drops, each one eligible call")
print(f"drop -> delivered over HTTPS: p50 {q(0.5):.0f} ms, p90 {q(0.9):.0f} ms, "
      f"p99 {q(0.99):.0f} ms, max {lat[-1] * 1000:.0f} ms")
