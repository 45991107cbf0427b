#!/usr/bin/env python3
"""An independent HL7 v2 MLLP sender for the tests: python-hl7's MLLPClient (plain TCP), or,
with a CA, the same framing over Python's ssl (python-hl7's client has no TLS). Each message's
ACK is parsed with python-hl7.

    mllp_client.py '{"host", "port", "files": [...]? , "messages": [...]?, "encoding"?, "ca"?, "cert"?, "key"?}'
The messages are sent in `encoding` (default utf-8; "latin-1" for a sender of ISO 8859-1).
Prints one JSON line per message: {"code": MSA-1, "control": MSA-2, "err": ERR-8 text or null},
or {"error": "..."} when the connection closed without an ACK or answered something else (then
it stops).
"""
import json
import socket
import ssl
import sys

import hl7
from hl7.client import MLLPClient

args = json.loads(sys.argv[1])
encoding = args.get("encoding", "utf-8")
messages = list(args.get("messages", []))
for f in args.get("files", []):
    with open(f, "rb") as fh:
        text = fh.read().decode("utf-8-sig")
    messages.append(text.replace("\r\n", "\r").replace("\n", "\r"))


class NotAnAck(Exception):
    pass


def parse_ack(raw):
    if not raw.startswith(b"\x0b"):
        raise NotAnAck("the answer is not an MLLP frame")
    text = raw.decode("utf-8").strip("\x0b\x1c\r")
    ack = hl7.parse(text)
    msa = ack.segment("MSA")
    try:
        err = str(ack.segment("ERR")[8])
    except KeyError:
        err = None
    return {"code": str(msa[1]), "control": str(msa[2]), "err": err}


if args.get("ca"):
    ctx = ssl.create_default_context(cafile=args["ca"])
    if args.get("cert"):
        ctx.load_cert_chain(args["cert"], args["key"])
    sock = ctx.wrap_socket(socket.create_connection((args["host"], args["port"]), timeout=30), server_hostname="localhost")

    def send(m):
        sock.sendall(b"\x0b" + m.encode(encoding) + b"\x1c\r")
        data = b""
        while not data.endswith(b"\x1c\r"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed without an ACK")
            data += chunk
        return data
else:
    client = MLLPClient(args["host"], args["port"])
    client.socket.settimeout(30)

    def send(m):
        data = client.send_message(m.encode(encoding))
        if not data:
            raise ConnectionError("closed without an ACK")
        return data

for m in messages:
    try:
        print(json.dumps(parse_ack(send(m))), flush=True)
    except (OSError, ConnectionError, NotAnAck) as e:
        print(json.dumps({"error": type(e).__name__}), flush=True)
        break
