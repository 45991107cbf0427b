#!/usr/bin/env python3
"""An independent client of the gateway's HTTPS API: Python's http.client, ssl and socket.

    api_client.py request '{"url", "ca", "method", "path", "token"?, "cert"?, "key"?, "headers"?, "body"? | "body_file"?}'
        one request (with a client certificate when given); prints {"status", "headers", "body"}
        (body parsed as JSON when it is), or {"status": null, "error"} when TLS refused it
    api_client.py head_only '{"url", "ca", "path", "token", "length"}'
        a POST head announcing `length` bytes, no body; prints {"status"}
    api_client.py cut '{"url", "ca", "path", "token", "body_file"}'
        sends the head and half the body, then closes; prints {"sent"}
    api_client.py slow '{"url", "ca", "count", "token"}'
        opens `count` connections that stall (20 TLS ones that send one byte of a request head,
        the rest plain TCP that never starts TLS), then times a normal GET /healthz while they
        are open; prints {"opened", "status", "seconds"}
    api_client.py burst '{"url", "ca", "path", "token", "count"}'
        `count` GETs on one kept-alive connection as fast as they go; prints {"statuses": {code: n}}
    api_client.py pushes '{"url", "ca", "path", "token", "body_file", "count", "prefix"}'
        pushes the body `count` times under keys prefix-0.. one after another, printing one line
        per push as it ends: {"key", "status", "accepted"} or {"key", "error"}
"""
import http.client
import json
import socket
import ssl
import sys
import time
import urllib.parse


def parts(args):
    u = urllib.parse.urlparse(args["url"])
    return u.hostname, u.port


def context(args):
    ctx = ssl.create_default_context(cafile=args["ca"])
    if args.get("cert"):
        ctx.load_cert_chain(args["cert"], args["key"])
    return ctx


def request(args):
    host, port = parts(args)
    conn = http.client.HTTPSConnection(host, port, context=context(args), timeout=30)
    headers = dict(args.get("headers", {}))
    if args.get("token"):
        headers["Authorization"] = "Bearer " + args["token"]
    body = args.get("body")
    if "body_file" in args:
        with open(args["body_file"], "rb") as f:
            body = f.read()
    elif body is not None:
        body = body.encode()
    try:
        conn.request(args.get("method", "GET"), args["path"], body=body, headers=headers)
    except (ssl.SSLError, ConnectionError) as e:
        return {"status": None, "error": type(e).__name__}
    try:
        r = conn.getresponse()
    except (ssl.SSLError, ConnectionError) as e:
        return {"status": None, "error": type(e).__name__}
    raw = r.read().decode("utf-8", "replace")
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw
    return {"status": r.status, "headers": {k.lower(): v for k, v in r.getheaders()}, "body": parsed}


def tls_socket(args):
    host, port = parts(args)
    raw = socket.create_connection((host, port), timeout=30)
    return context(args).wrap_socket(raw, server_hostname=host)


def head(args, length):
    return (
        f"POST {args['path']} HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {args['token']}\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def status_of(s):
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\r\n", 1)[0].decode()
    return int(line.split()[1]) if line.startswith("HTTP/") else None


def head_only(args):
    s = tls_socket(args)
    s.sendall(head(args, args["length"]))
    return {"status": status_of(s)}


def cut(args):
    with open(args["body_file"], "rb") as f:
        body = f.read()
    s = tls_socket(args)
    s.sendall(head(args, len(body)))
    half = body[: len(body) // 2]
    s.sendall(half)
    s.close()
    return {"sent": len(half)}


def slow(args):
    host, port = parts(args)
    held = []
    for i in range(args["count"]):
        try:
            raw = socket.create_connection((host, port), timeout=2)
            if i < 20:
                # TLS, then a request head that will not come.
                s = context(args).wrap_socket(raw, server_hostname=host)
                s.sendall(b"G")
                held.append(s)
            else:
                held.append(raw)  # never starts TLS
        except OSError:
            pass
    opened = len(held)
    start = time.monotonic()
    try:
        status = request({**args, "method": "GET", "path": "/healthz"})["status"]
    except OSError as e:
        status = type(e).__name__
    seconds = time.monotonic() - start
    for s in held:
        try:
            s.close()
        except OSError:
            pass
    return {"opened": opened, "status": status, "seconds": seconds}


def burst(args):
    """`count` GETs of `path` on one kept-alive connection, as fast as they go: the statuses."""
    host, port = parts(args)
    conn = http.client.HTTPSConnection(host, port, context=context(args), timeout=30)
    statuses = {}
    for _ in range(args["count"]):
        conn.request("GET", args["path"], headers={"Authorization": "Bearer " + args["token"]})
        r = conn.getresponse()
        r.read()
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    return {"statuses": statuses}


def pushes(args):
    for i in range(args["count"]):
        key = f"{args['prefix']}-{i}"
        try:
            r = request({**args, "method": "POST", "headers": {"Idempotency-Key": key, "Content-Type": "text/csv"}})
            if r["status"] is None:
                out = {"key": key, "error": r["error"]}
            else:
                body = r["body"] if isinstance(r["body"], dict) else {}
                out = {"key": key, "status": r["status"], "accepted": body.get("accepted")}
        except (OSError, http.client.HTTPException) as e:
            out = {"key": key, "error": type(e).__name__}
        print(json.dumps(out), flush=True)
    return None


def main():
    cmd, args = sys.argv[1], json.loads(sys.argv[2])
    out = {"request": request, "head_only": head_only, "cut": cut, "slow": slow, "burst": burst, "pushes": pushes}[cmd](args)
    if out is not None:
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
