#!/usr/bin/env python3
"""An independent client for the reference receiver (standard library only): signs a body the
way docs/delivery.md says (`v2=` + hex HMAC-SHA256(secret, f"{timestamp}.{idempotency_key}.{body}"),
the secret trimmed of surrounding whitespace, the timestamp in Unix seconds) and POSTs it over
TLS, trusting only the given CA. Prints the status and the JSON answer on one line.

TAMPER makes a request a receiver must refuse: `bad` (a wrong signature), `key=NEW` (signed for
IDEMPOTENCY_KEY, sent under NEW: a replay under a new key), `v1` (the old scheme, over
f"{timestamp}.{body}" only).

Usage: signed_post.py URL CA SECRET IDEMPOTENCY_KEY BODY [SKEW_SECONDS] [TAMPER]
"""
import hashlib
import hmac
import json
import ssl
import sys
import time
import urllib.error
import urllib.request

url, ca, secret, key, body = sys.argv[1:6]
skew = int(sys.argv[6]) if len(sys.argv) > 6 else 0
tamper = sys.argv[7] if len(sys.argv) > 7 else ""
secret = secret.strip().encode()
ts = str(int(time.time()) + skew)
if tamper == "v1":
    sig = "v1=" + hmac.new(secret, f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
else:
    sig = "v2=" + hmac.new(secret, f"{ts}.{key}.{body}".encode(), hashlib.sha256).hexdigest()
if tamper == "bad":
    sig = sig[:-2] + ("00" if not sig.endswith("00") else "11")
if tamper.startswith("key="):
    key = tamper[len("key="):]
req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
    "Content-Type": "application/json",
    "Idempotency-Key": key,
    "X-PNP-Timestamp": ts,
    "X-PNP-Signature": sig,
})
ctx = ssl.create_default_context(cafile=ca)
try:
    with urllib.request.urlopen(req, context=ctx) as r:
        print(r.status, json.dumps(json.load(r)))
except urllib.error.HTTPError as e:
    print(e.code, json.dumps(json.load(e)))
