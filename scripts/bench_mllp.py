#!/usr/bin/env python3
"""The MLLP listener's benchmark client (not a test; scripts/bench-mllp.sh runs it against
`demo --serve`'s HL7 pipeline). Python's standard library only: plain sockets and MLLP framing.

    bench_mllp.py ENDPOINTS --messages N [--connections C]
        sends N REF^I12 messages (tests/data/hl7v2/hl7v2ex_ref_i12_v251.hl7, each with its own
        control id MSH-10 and placer referral number), split over C connections at once, each
        connection sending its next message once the previous one is ACKed (an ACK comes after
        the commit). Prints messages/s, the ACK codes, and the time from send to ACK (p50, p99).
"""
import argparse
import json
import os
import socket
import sys
import threading
import time

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "hl7v2", "hl7v2ex_ref_i12_v251.hl7")


def messages(n, prefix):
    text = open(SAMPLE, "rb").read().decode("utf-8-sig").replace("\r\n", "\r").replace("\n", "\r")
    for i in range(n):
        yield text.replace("|MSG016|", f"|{prefix}{i}|", 1).replace("REF001", f"R{prefix}{i}")


def worker(addr, msgs, out):
    s = socket.create_connection(addr, timeout=60)
    codes, times = {}, []
    for m in msgs:
        t0 = time.monotonic()
        s.sendall(b"\x0b" + m.encode() + b"\x1c\r")
        data = b""
        while not data.endswith(b"\x1c\r"):
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit("the listener closed the connection")
            data += chunk
        times.append(time.monotonic() - t0)
        msa = [seg for seg in data.strip(b"\x0b\x1c\r").split(b"\r") if seg.startswith(b"MSA|")]
        code = msa[0].split(b"|")[1].decode() if msa else "none"
        codes[code] = codes.get(code, 0) + 1
    s.close()
    out.append((codes, times))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("endpoints")
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--connections", type=int, default=1)
    a = p.parse_args()
    ep = json.load(open(a.endpoints))
    host, port = ep["mllp"]["hl7v2"].rsplit(":", 1)
    addr = (host, int(port))
    per = a.messages // a.connections
    out, threads = [], []
    start = time.monotonic()
    for c in range(a.connections):
        msgs = list(messages(per, f"B{c}X"))
        t = threading.Thread(target=worker, args=(addr, msgs, out))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    codes, times = {}, []
    for c, ts in out:
        for k, v in c.items():
            codes[k] = codes.get(k, 0) + v
        times += ts
    times.sort()
    n = len(times)
    if n == 0:
        sys.exit("no message was answered")
    q = lambda f: times[min(n - 1, int(f * n))] * 1000
    print(f"  {a.connections} connection(s): {n} messages in {wall:.1f} s = {n / wall:,.0f} messages/s; "
          f"ACKs {codes}; send to ACK p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms")


if __name__ == "__main__":
    main()
