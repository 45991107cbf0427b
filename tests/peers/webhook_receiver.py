#!/usr/bin/env python3
"""An independent HTTPS receiver for the webhook tests (Python's standard library only).

It verifies each request the way docs/delivery.md tells a provider to: the `X-PNP-Signature`
header must be `v2=` + hex HMAC-SHA256(secret, f"{X-PNP-Timestamp}.{Idempotency-Key}.{body}")
(the secret read trimmed of surrounding whitespace; the timestamp Unix seconds, within five
minutes); any other scheme or a wrong signature is answered 401. Each request is recorded as one
JSON line in LOG, with its timestamp, signature and raw body (so a test can replay it). The
status it answers otherwise is read from MODE (a file the test rewrites: "200", "503",
"400"...; "503 120" also sends `Retry-After: 120`; "hold" records the request and answers
nothing until MODE says something else, so that a test can stop the sender mid-request).

Usage: webhook_receiver.py CERT KEY SECRET_FILE LOG MODE  (prints "PORT <n>" when listening)
"""
import hashlib
import hmac
import http.server
import json
import ssl
import sys
import time

cert, key, secret_file, log_path, mode_path = sys.argv[1:6]
secret = open(secret_file, "rb").read().strip()


def read_mode():
    return (open(mode_path).read().strip() or "200").split()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ts = self.headers.get("X-PNP-Timestamp", "")
        key = self.headers.get("Idempotency-Key", "")
        signed = f"{ts}.{key}.".encode() + body
        want = "v2=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()
        got = self.headers.get("X-PNP-Signature", "")
        fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
        ok = hmac.compare_digest(want.encode(), got.encode()) and fresh
        mode = read_mode()
        held = ok and mode[0] == "hold"
        status = 0 if held else int(mode[0]) if ok else 401
        with open(log_path, "a") as log:
            log.write(json.dumps({
                "path": self.path,
                "at": time.time(),
                "signature_ok": ok,
                "idempotency_key": key,
                "timestamp": ts,
                "signature": got,
                "raw": body.decode(),
                "content_type": self.headers.get("Content-Type"),
                "status": status,
                "body": json.loads(body),
            }) + "\n")
        while held and mode[0] == "hold":
            time.sleep(0.05)
            mode = read_mode()
        if held:
            status = int(mode[0])
        self.send_response(status)
        if ok and len(mode) > 1:
            self.send_header("Retry-After", mode[1])
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("PORT", server.server_address[1], flush=True)
server.serve_forever()
