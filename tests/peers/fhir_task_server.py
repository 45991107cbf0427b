#!/usr/bin/env python3
"""A provider's FHIR server that keeps the Tasks it was sent, for the closed loop's poll test
(Python's standard library only), written from the FHIR R4 specification (http.html#transaction,
search.html#token), not from the gateway's code.

- POST of a `transaction` Bundle to the base URL: its signature is checked as docs/delivery.md
  tells a receiver to (401 if wrong); each Task in it is kept, by its identifiers, with the
  status it was sent with. The answer is a `transaction-response` Bundle.
- GET /Task?identifier=system|value: a `searchset` Bundle of the Tasks holding that identifier
  (token search: `system|value`, as percent-decoded from the query). Each search is counted
  per identifier value in DIR/counts.json.
- The test moves a Task through its statuses by writing DIR/control.json:
  {"<identifier value>": {"status": "accepted", "reason": "a-code"}, ...}; a Task named there is
  served with that status (and statusReason coding), and `lastModified` the time of the change.
  {"<identifier value>": {"answer": 404}} makes the search for that identifier answer that HTTP
  status with an OperationOutcome instead (a Task removed, a server failing for it).

Every request is one JSON line in DIR/requests.ndjson: method, path, identifier, status answered.

Usage: fhir_task_server.py DIR SECRET_FILE [CERT KEY]  (prints "PORT <n>" when listening)
"""
import datetime
import hashlib
import hmac
import http.server
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse

state_dir, secret_file = sys.argv[1:3]
tls = sys.argv[3:5]
secret = open(secret_file, "rb").read().strip()
lock = threading.Lock()
tasks = {}  # identifier value -> Task resource as received
changed = {}  # identifier value -> (status, time it was first served)
counts = {}


def path(name):
    return os.path.join(state_dir, name)


def write_json(name, value):
    tmp = path(name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path(name))


def control():
    try:
        return json.load(open(path("control.json")))
    except (OSError, ValueError):
        return {}


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body, identifier=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with open(path("requests.ndjson"), "a") as log:
            log.write(json.dumps({"method": self.command, "path": self.path.split("?")[0],
                                  "identifier": identifier, "status": status, "at": time.time()}) + "\n")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ts = self.headers.get("X-PNP-Timestamp", "")
        key = self.headers.get("Idempotency-Key", "")
        want = "v2=" + hmac.new(secret, f"{ts}.{key}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want.encode(), self.headers.get("X-PNP-Signature", "").encode()):
            return self.answer(401, {"resourceType": "OperationOutcome"})
        bundle = json.loads(body)
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            return self.answer(400, {"resourceType": "OperationOutcome"})
        entries = []
        with lock:
            for e in bundle.get("entry", []):
                r = e.get("resource", {})
                if r.get("resourceType") == "Task":
                    for i in r.get("identifier", []):
                        tasks.setdefault(i.get("value"), dict(r, id=str(len(tasks) + 1)))
                entries.append({"response": {"status": "201 Created"}})
        self.answer(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": entries})

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path.rstrip("/") != "/Task" or list(query) != ["identifier"]:
            return self.answer(400, {"resourceType": "OperationOutcome"})
        system, _, value = query["identifier"][0].partition("|")
        with lock:
            counts[value] = counts.get(value, 0) + 1
            write_json("counts.json", counts)
            failing = control().get(value, {}).get("answer")
            if failing:
                return self.answer(failing, {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "not-found" if failing == 404 else "exception"}]},
                    identifier=value)
            matches = []
            for v, task in tasks.items():
                if v != value or not any(i.get("system") == system and i.get("value") == value
                                         for i in task.get("identifier", [])):
                    continue
                t = dict(task)
                c = control().get(value)
                if c:
                    if changed.get(value, (None,))[0] != c["status"]:
                        changed[value] = (c["status"], now())
                    t["status"] = c["status"]
                    t["lastModified"] = changed[value][1]
                    if c.get("reason"):
                        t["statusReason"] = {"coding": [{"code": c["reason"]}], "text": "free text"}
                matches.append({"fullUrl": f"Task/{t['id']}", "resource": t, "search": {"mode": "match"}})
        self.answer(200, {"resourceType": "Bundle", "type": "searchset", "total": len(matches),
                          "entry": matches}, identifier=value)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls[0], tls[1])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("PORT", server.server_address[1], flush=True)
server.serve_forever()
