#!/usr/bin/env python3
"""A small FHIR R4 server for the FHIR delivery tests (Python's standard library only), written
from the FHIR specification, not from our encoder: it takes `transaction` Bundles POSTed to its
base URL and implements what http.html#trules and http.html#ccreate say a server does.

- Each request's signature is checked as docs/delivery.md tells a receiver to (401 if wrong).
- A transaction is atomic: every entry is processed, then committed to STORE together, or nothing is.
- An entry's `request.ifNoneExist` (conditional create) is searched in the store (the search
  parameter `identifier=system|value`, the only one supported: any other is a 400): no match,
  the resource is created; one match, nothing is created and the entry answers `200 OK` with the
  existing resource's location; more than one, the whole transaction fails with 412.
- An entry without `ifNoneExist` is created, whatever the store already holds (as the
  specification says of a plain POST).
- References to an entry's `fullUrl` are rewritten to the resource the entry created or matched.

MODE (a file the test rewrites) says how to answer: "200"; "commit-then-500" commits the
transaction and then answers 500 (a server that fails after its commit, or whose answer is lost);
any other status answers that status without committing. Each request is recorded as one JSON
line in LOG (raw body, idempotency key, status). STORE holds
`{"Patient": [{"id": "1", "resource": {...}}], ...}`.

Usage: fhir_server.py CERT KEY SECRET_FILE LOG MODE STORE  (prints "PORT <n>" when listening)
"""
import copy
import hashlib
import hmac
import http.server
import json
import os
import ssl
import sys
import time
import urllib.parse

cert, key, secret_file, log_path, mode_path, store_path = sys.argv[1:7]
secret = open(secret_file, "rb").read().strip()


def load():
    if os.path.exists(store_path):
        return json.load(open(store_path))
    return {}


def save(store):
    tmp = store_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(store, f)
    os.replace(tmp, store_path)


class Failed(Exception):
    def __init__(self, status, why):
        super().__init__(why)
        self.status = status
        self.why = why


def search(store, kind, query):
    """The resources of `kind` matching `query` (only `identifier=[system]|value`)."""
    params = urllib.parse.parse_qsl(query, keep_blank_values=True)
    if not params or any(name != "identifier" for name, _ in params):
        raise Failed(400, f"unsupported search in ifNoneExist: {query}")
    found = store.get(kind, [])
    for _, token in params:
        system, bar, value = token.partition("|")
        if not bar:
            system, value = None, token
        found = [
            r for r in found
            if any((system is None or i.get("system") == system) and i.get("value") == value
                   for i in r["resource"].get("identifier", []))
        ]
    return found


def rewrite(node, urls):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str) and v in urls:
                node[k] = urls[v]
            else:
                rewrite(v, urls)
    elif isinstance(node, list):
        for v in node:
            rewrite(v, urls)


def transaction(store, bundle):
    """Processes a transaction on a copy of the store: (new store, response entries)."""
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        raise Failed(400, "not a transaction Bundle")
    store = copy.deepcopy(store)
    urls, responses, created = {}, [], []
    for entry in bundle.get("entry", []):
        req = entry.get("request", {})
        resource = copy.deepcopy(entry.get("resource", {}))
        kind = resource.get("resourceType")
        if req.get("method") != "POST" or req.get("url") != kind:
            raise Failed(400, f"unsupported request {req}")
        if "ifNoneExist" in req:
            matches = search(store, kind, req["ifNoneExist"])
            if len(matches) > 1:
                raise Failed(412, f"ifNoneExist {req['ifNoneExist']} matches {len(matches)} {kind}")
            if len(matches) == 1:
                location = f"{kind}/{matches[0]['id']}"
                urls[entry.get("fullUrl")] = location
                responses.append({"response": {"status": "200 OK", "location": location}})
                continue
        store.setdefault(kind, [])
        rid = str(sum(len(v) for v in store.values()) + 1)
        resource["id"] = rid
        record = {"id": rid, "resource": resource}
        store[kind].append(record)
        created.append(record)
        location = f"{kind}/{rid}"
        urls[entry.get("fullUrl")] = location
        responses.append({"response": {"status": "201 Created", "location": location}})
    for record in created:
        rewrite(record["resource"], urls)
    return store, responses


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ts = self.headers.get("X-PNP-Timestamp", "")
        idem = self.headers.get("Idempotency-Key", "")
        signed = f"{ts}.{idem}.".encode() + body
        want = "v2=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()
        got = self.headers.get("X-PNP-Signature", "")
        fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
        ok = hmac.compare_digest(want.encode(), got.encode()) and fresh
        mode = open(mode_path).read().strip() or "200"
        answer, why = None, None
        if not ok:
            status = 401
        elif mode not in ("200", "commit-then-500"):
            status = int(mode)
        else:
            try:
                store, responses = transaction(load(), json.loads(body))
                save(store)
                status = 200 if mode == "200" else 500
                answer = {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}
            except Failed as e:
                status, why = e.status, e.why
        with open(log_path, "a") as log:
            log.write(json.dumps({
                "path": self.path,
                "idempotency_key": idem,
                "signature_ok": ok,
                "raw": body.decode(),
                "content_type": self.headers.get("Content-Type"),
                "status": status,
                "why": why,
            }) + "\n")
        self.send_response(status)
        if status == 200 and answer is not None:
            out = json.dumps(answer).encode()
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        else:
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("PORT", server.server_address[1], flush=True)
server.serve_forever()
