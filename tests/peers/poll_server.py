#!/usr/bin/env python3
"""An independent HTTP server the poll source reads (Python's standard library only).

GET /records?since=CURSOR&limit=N answers a JSON array of the records of DATA (a JSON array,
read again on every request so that a test can add records) whose field `when` is after CURSOR
(strictly), in order of `when`, at most N of them, with an ETag (a hash of the page) and
Last-Modified; a request whose If-None-Match is that ETag gets 304. With TOKEN set, a request
without the header `X-App-Token: TOKEN` gets 401. MODE holds the status to answer instead
("200" normally; "500" makes every request fail). Each request is recorded in LOG as a JSON line
(since, limit, status, whether the token and If-None-Match came).

Usage: poll_server.py DATA MODE LOG [TOKEN]   (prints "PORT <n>" when listening)
"""
import hashlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

data_path, mode_path, log_path = sys.argv[1:4]
token = sys.argv[4] if len(sys.argv) > 4 else None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        q = parse_qs(url.query, keep_blank_values=True)
        since = q.get("since", [""])[0]
        limit = int(q.get("limit", ["1000"])[0])
        entry = {
            "since": since,
            "limit": limit,
            "token": self.headers.get("X-App-Token") == token if token else None,
            "if_none_match": self.headers.get("If-None-Match"),
        }
        with open(mode_path) as f:
            mode = int(f.read().strip() or "200")
        if url.path != "/records":
            status, body, headers = 404, b"", ()
        elif token and self.headers.get("X-App-Token") != token:
            status, body, headers = 401, b"", ()
        elif mode != 200:
            status, body, headers = mode, b"{\"error\": \"unavailable\"}", ()
        else:
            with open(data_path) as f:
                records = json.load(f)
            page = sorted((r for r in records if r["when"] > since), key=lambda r: r["when"])[:limit]
            body = json.dumps(page).encode()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            headers = [
                ("Content-Type", "application/json"),
                ("ETag", etag),
                ("Last-Modified", "Wed, 02 Dec 2026 10:00:00 GMT"),
            ]
            if self.headers.get("If-None-Match") == etag:
                status, body = 304, b""
            else:
                status = 200
            entry["records"] = len(page)
        entry["status"] = status
        with open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.answer(status, body, headers)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"PORT {server.server_address[1]}", flush=True)
server.serve_forever()
