#!/usr/bin/env python3
"""The API benchmark's client (not a test; scripts/bench-api.sh runs it against `demo --serve`).
Python's standard library only: http.client over ssl, keep-alive connections.

    bench_api.py push ENDPOINTS CSV [--clients N] [--per-body R] [--pid PID] [--then-one]
        splits the export CSV into bodies of R records (default 1,000), each with the header,
        and POSTs them to /v1/pipelines/generic-cad-csv/exports as the demo's `agency` client
        over N keep-alive connections at once (default 1), each body under its own
        Idempotency-Key. A 202 comes after the records are committed, so the wall time covers
        the commits. Prints records/s and requests/s, the per-request time, the gateway's CPU
        time over the run (with --pid) and then how long the receiver took to stop growing.
    bench_api.py latency ENDPOINTS [--samples N] [--pid PID]
        N times: POSTs a body of one eligible call (a unique incident number and key each) and
        polls the demo receiver's received.ndjson every 2 ms until a line is added; prints the
        p50, p90, p99 and max of the time from the POST to that line, and of the 202 itself.

ENDPOINTS is the demo's state/endpoints.json; received.ndjson is found beside it
(../deliveries/dhhr-research/received.ndjson).
"""
import argparse
import http.client
import json
import os
import random
import sqlite3
import ssl
import sys
import threading
import time
import urllib.parse

PATH = "/v1/pipelines/generic-cad-csv/exports"
TICK = os.sysconf("SC_CLK_TCK")


class Client:
    """One keep-alive HTTPS connection to the API as the demo's `agency` client."""

    def __init__(self, ep):
        u = urllib.parse.urlparse(ep["api"])
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=ep["ca"])
        with open(ep["tokens"]["agency"]) as f:
            self.token = f.read().strip()
        self.conn = None
        self.retries = {}

    def post(self, key, body):
        """POSTs until answered 202 (429 and 503 waited out as Retry-After says, and counted);
        returns the answer's JSON."""
        while True:
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=120)
            headers = {"Authorization": "Bearer " + self.token, "Idempotency-Key": key,
                       "Content-Type": "text/csv"}
            try:
                self.conn.request("POST", PATH, body=body, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
            except (OSError, http.client.HTTPException) as e:
                # A dropped keep-alive connection: count it and try again on a new one.
                self.retries[type(e).__name__] = self.retries.get(type(e).__name__, 0) + 1
                self.conn.close()
                self.conn = None
                continue
            if r.status == 202:
                return json.loads(raw)
            if r.status in (429, 503):
                self.retries[r.status] = self.retries.get(r.status, 0) + 1
                time.sleep(float(r.getheader("Retry-After") or 1))
                continue
            sys.exit(f"POST {key}: {r.status} {raw[:300]!r}")


def cpu_seconds(pid):
    """utime + stime of every thread of PID, in seconds (None without a pid)."""
    if not pid:
        return None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def received_file(endpoints):
    base = os.path.dirname(os.path.dirname(os.path.abspath(endpoints)))
    return os.path.join(base, "deliveries/dhhr-research/received.ndjson")


def lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def settle(path, quiet=2.0, limit=600.0):
    """Waits until `path` has not grown for `quiet` seconds; returns (lines, seconds waited until
    its last growth)."""
    start = time.perf_counter()
    n, last = lines(path), start
    while time.perf_counter() - last < quiet and time.perf_counter() - start < limit:
        time.sleep(0.05)
        m = lines(path)
        if m != n:
            n, last = m, time.perf_counter()
    return n, last - start


def drain(endpoints, limit=600.0):
    """Waits until the store has nothing staged undisclosed and nothing pending in the outbox;
    returns (what is left, seconds waited). Reads the service's SQLite store read-only."""
    db = os.path.join(os.path.dirname(os.path.abspath(endpoints)), "gateway.db")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    start = time.perf_counter()
    while True:
        left = conn.execute("SELECT (SELECT count(*) FROM undisclosed)"
                            " + (SELECT count(*) FROM outbox WHERE status = 'pending')").fetchone()[0]
        if left == 0 or time.perf_counter() - start > limit:
            return left, time.perf_counter() - start
        time.sleep(0.05)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000


def push(a):
    ep = json.load(open(a.endpoints))
    with open(a.csv, "rb") as f:
        header, *rows = f.read().rstrip(b"\n").split(b"\n")
    bodies = [header + b"\n" + b"\n".join(rows[i:i + a.per_body]) + b"\n"
              for i in range(0, len(rows), a.per_body)]
    rx = received_file(a.endpoints)
    # What the demo read from its own drop folder is delivered first.
    settle(rx, quiet=1.0, limit=30)
    drain(a.endpoints)
    rx_before = lines(rx)
    clients = [Client(ep) for _ in range(a.clients)]
    times, accepted, lock = [], [0], threading.Lock()
    work = iter(enumerate(bodies))

    def worker(c):
        while True:
            with lock:
                nxt = next(work, None)
            if nxt is None:
                return
            i, body = nxt
            t = time.perf_counter()
            ans = c.post(f"bench-{os.getpid()}-{i}", body)
            with lock:
                times.append(time.perf_counter() - t)
                accepted[0] += ans["accepted"] + len(ans["rejected"])

    cpu0 = cpu_seconds(a.pid)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu1 = cpu_seconds(a.pid)
    rx_during = lines(rx) - rx_before
    retries = {}
    for c in clients:
        for k, v in c.retries.items():
            retries[k] = retries.get(k, 0) + v
    n = len(rows)
    mb = sum(len(b) for b in bodies) / 1e6
    print(f"  push, {a.clients} client(s), {len(bodies)} bodies of {a.per_body} records ({mb:.0f} MB): "
          f"{n} records in {wall:.2f} s = {n / wall:,.0f} records/s, {len(bodies) / wall:.1f} requests/s"
          + (f"; retried {retries}" if retries else ""))
    print(f"    per request (POST to 202): p50 {pct(times, 0.5):.0f} ms, p99 {pct(times, 0.99):.0f} ms, "
          f"max {max(times) * 1000:.0f} ms; {accepted[0]} records answered (accepted + rejected)"
          + (f"; gateway CPU {cpu1 - cpu0:.1f} s over the {wall:.1f} s ({(cpu1 - cpu0) / wall:.2f} cores)"
             if cpu0 is not None else ""))
    if accepted[0] != n:
        sys.exit(f"answered {accepted[0]} records of {n}")
    if a.then_one:
        # One record more right after: its 202 waits for whatever disclosure pass is under way.
        time.sleep(0.5)
        one = Client(ep)
        t = time.perf_counter()
        ans = one.post(f"bench-{os.getpid()}-then-one", header + b"\n" + b"2029-" + rows[0].split(b"-", 1)[1] + b"\n")
        print(f"    one record pushed 0.5 s after the last 202: its 202 after {time.perf_counter() - t:.1f} s"
              + (" (a replay)" if ans.get("replayed") else "") + (f"; retried {one.retries}" if one.retries else ""))
    left, _ = drain(a.endpoints)
    after = time.perf_counter() - (t0 + wall)
    cpu2 = cpu_seconds(a.pid)
    print(f"    every pushed record disclosed and its payloads delivered {after:.1f} s after the last 202 "
          f"({wall + after:.1f} s after the first POST"
          + (f"; gateway CPU {(cpu2 - cpu1) / after:.2f} cores meanwhile" if cpu0 is not None and after > 0 else "")
          + f"); payloads at the receiver: {rx_during} when the last 202 came, {lines(rx) - rx_before} in the end"
          + (f"; {left} still staged or pending after 600 s" if left else ""))


def latency(a):
    ep = json.load(open(a.endpoints))
    with open(os.path.join(a.root, "examples/demo/exports/generic/cad_export_2026-03.csv"), "rb") as f:
        header, first = f.read().split(b"\n")[:2]
    rest = first.split(b",", 1)[1]  # everything after the incident number
    rx = received_file(a.endpoints)
    # What the demo read from its own drop folder is delivered first.
    settle(rx, quiet=1.0, limit=30)
    drain(a.endpoints)
    c = Client(ep)
    lat, answer = [], []
    tag = os.getpid() % 10000
    cpu0, t_all = cpu_seconds(a.pid), time.perf_counter()
    for i in range(a.samples):
        body = header + b"\n" + f"2027-{tag:04}{i:05}".encode() + b"," + rest + b"\n"
        before = os.stat(rx).st_size if os.path.exists(rx) else 0
        t0 = time.perf_counter()
        ans = c.post(f"lat-{tag}-{i}", body)
        answer.append(time.perf_counter() - t0)
        if ans["accepted"] != 1:
            sys.exit(f"sample {i}: not accepted: {ans}")
        while (os.stat(rx).st_size if os.path.exists(rx) else 0) == before:
            if time.perf_counter() - t0 > 30:
                sys.exit(f"sample {i}: nothing received after 30 s")
            time.sleep(0.002)
        lat.append(time.perf_counter() - t0)
        time.sleep(random.uniform(0, 0.1))
    wall, cpu1 = time.perf_counter() - t_all, cpu_seconds(a.pid)
    if c.retries:
        print(f"    retried {c.retries}")
    print(f"  one eligible record, POST to delivered at the receiver, {a.samples} samples: "
          f"p50 {pct(lat, 0.5):.0f} ms, p90 {pct(lat, 0.9):.0f} ms, p99 {pct(lat, 0.99):.0f} ms, "
          f"max {max(lat) * 1000:.0f} ms")
    print(f"    POST to 202: p50 {pct(answer, 0.5):.0f} ms, p99 {pct(answer, 0.99):.0f} ms, "
          f"max {max(answer) * 1000:.0f} ms"
          + (f"; gateway CPU {(cpu1 - cpu0) / wall:.2f} cores over the run" if cpu0 is not None else ""))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("push")
    p.add_argument("endpoints")
    p.add_argument("csv")
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--per-body", type=int, default=1000)
    p.add_argument("--pid", type=int)
    p.add_argument("--then-one", action="store_true")
    q = sub.add_parser("latency")
    q.add_argument("endpoints")
    q.add_argument("--samples", type=int, default=300)
    q.add_argument("--pid", type=int)
    a = ap.parse_args()
    a.root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    {"push": push, "latency": latency}[a.cmd](a)


if __name__ == "__main__":
    main()
