#!/usr/bin/env python3
"""An independent provider answering the gateway's referrals (tests/closed_loop_hl7.rs).

    rri_peer.py hl7 '{"msg": {...}, "via": "mllp" | "https", ...}'
        Builds the answer with hl7apy 1.3.5 (validated strictly as v2.5.1): "msg" is
        {"type": "RRI" | "ACK", "control", "acked"?, "status"? (RF1-1), "ack_code"? (MSA-1),
        "rf1_6"?, "pid3"?}. Sends it over MLLP ("host", "port"; over TLS with "ca", and a client
        certificate with "cert", "key"), or POSTs it over HTTPS ("url", "ca", "token",
        "path", "content_type"?). The ACK is parsed with python-hl7 0.4.5. Prints
        {"code": MSA-1, "control": MSA-2, "err_location": ERR-2, "err_code": ERR-3.1,
         "err_kind": ERR-5.1, "err_text": ERR-8, "http"?, "content_type"?} or {"error"}.
    rri_peer.py signed '{"url", "ca", "token", "path", "secret", "key", "body", "tamper"?}'
        POSTs a JSON body signed as the gateway signs its webhooks (hmac and hashlib of the
        standard library): X-PNP-Timestamp, X-PNP-Signature "v2=" + hex HMAC-SHA256(secret,
        f"{timestamp}.{key}.{body}"), with the bearer token. "tamper": "bad" (a wrong signature),
        "stale" (ten minutes old). Prints {"status", "body"}; with "times": n, sends the very same
        request (timestamp, signature, body) n times, as a replay would, and prints
        {"answers": [{"status", "body"}, ...]}; with "respell": true, the third and later
        spell the signature's hex in capitals (the same signature, written otherwise).
"""
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import sys
import time
import urllib.parse

import hl7
from hl7.client import MLLPClient
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message


def build(spec):
    if spec["type"] == "RRI":
        m = Message("RRI_I12", version="2.5.1", validation_level=VALIDATION_LEVEL.STRICT)
        m.msh.msh_9 = "RRI^I12^RRI_I12"
    else:
        m = Message("ACK", version="2.5.1", validation_level=VALIDATION_LEVEL.STRICT)
        m.msh.msh_9 = "ACK^I12^ACK"
    m.msh.msh_3 = "INTAKE"
    m.msh.msh_4 = "PROVIDER"
    m.msh.msh_5 = "PNP-GATEWAY"
    m.msh.msh_6 = "WV-PNP"
    m.msh.msh_7 = time.strftime("%Y%m%d%H%M%S+0000", time.gmtime())
    m.msh.msh_10 = spec["control"]
    m.msh.msh_11 = "P"
    m.msh.msh_12 = "2.5.1"
    m.msa.msa_1 = spec.get("ack_code", "AA")
    if spec.get("acked"):
        m.msa.msa_2 = spec["acked"]
    if spec["type"] == "RRI":
        if spec.get("status"):
            names = {"A": "Accepted", "R": "Rejected", "P": "Pending", "E": "Expired"}
            code = spec["status"]
            m.rf1.rf1_1 = f"{code}^{names.get(code, code)}^HL70283"
        # RF1-6 is required in RF1: the originating referral identifier, echoed.
        m.rf1.rf1_6 = spec.get("rf1_6", "UNKNOWN") + "^PNP-GATEWAY"
        g = m.add_group("RRI_I12_PROVIDER_CONTACT")
        g.prd.prd_1 = "RT^Referred to Provider^HL70286"
        m.pid.pid_3 = spec.get("pid3", "REF^^^PNP-GATEWAY^RI")
        m.pid.pid_5 = "^^^^^^S"
    assert m.validate(), "hl7apy refused the answer"
    return m.to_er7()


def parse_ack(text):
    ack = hl7.parse(text.strip("\x0b\x1c\r"))
    msa = ack.segment("MSA")
    out = {"code": str(msa[1]), "control": str(msa[2])}
    try:
        err = ack.segment("ERR")
        out.update(
            err_location=str(err[2]),
            err_code=str(err[3]).split("^")[0],
            err_kind=str(err[5]).split("^")[0],
            err_text=str(err[8]),
        )
    except KeyError:
        out.update(err_location=None, err_code=None, err_kind=None, err_text=None)
    return out


def over_mllp(args, text):
    if args.get("ca"):
        ctx = ssl.create_default_context(cafile=args["ca"])
        if args.get("cert"):
            ctx.load_cert_chain(args["cert"], args["key"])
        raw = socket.create_connection((args["host"], args["port"]), timeout=30)
        sock = ctx.wrap_socket(raw, server_hostname="localhost")
        sock.sendall(b"\x0b" + text.encode() + b"\x1c\r")
        data = b""
        while not data.endswith(b"\x1c\r"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed without an ACK")
            data += chunk
        sock.close()
    else:
        client = MLLPClient(args["host"], args["port"])
        client.socket.settimeout(30)
        data = client.send_message(text.encode())
        client.close()
    return parse_ack(data.decode("utf-8"))


def https(args, method, body, headers):
    u = urllib.parse.urlparse(args["url"])
    ctx = ssl.create_default_context(cafile=args["ca"])
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)
    headers = dict(headers)
    headers["Authorization"] = "Bearer " + args["token"]
    conn.request(method, args["path"], body=body.encode(), headers=headers)
    r = conn.getresponse()
    return r.status, r.getheader("Content-Type"), r.read().decode("utf-8", "replace")


def main():
    cmd, args = sys.argv[1], json.loads(sys.argv[2])
    if cmd == "hl7":
        text = build(args["msg"])
        try:
            if args["via"] == "mllp":
                out = over_mllp(args, text)
            else:
                ct = args.get("content_type", "x-application/hl7-v2+er7")
                status, rct, body = https(args, "POST", text, {"Content-Type": ct})
                try:
                    out = parse_ack(body)
                except Exception:
                    out = {"body": body}
                out.update(http=status, content_type=rct)
        except (OSError, ConnectionError) as e:
            out = {"error": type(e).__name__}
        print(json.dumps(out))
    elif cmd == "signed":
        ts = int(time.time()) - (600 if args.get("tamper") == "stale" else 0)
        secret = args["secret"].strip().encode()
        msg = f"{ts}.{args['key']}.{args['body']}".encode()
        sig = "v2=" + hmac.new(secret, msg, hashlib.sha256).hexdigest()
        if args.get("tamper") == "bad":
            sig = sig[:-2] + ("00" if not sig.endswith("00") else "11")
        answers = []
        for i in range(args.get("times", 1)):
            spelled = "v2=" + sig[3:].upper() if args.get("respell") and i >= 2 else sig
            status, _, body = https(args, "POST", args["body"], {
                "Content-Type": "application/json",
                "X-PNP-Timestamp": str(ts),
                "X-PNP-Signature": spelled,
            })
            try:
                body = json.loads(body)
            except ValueError:
                pass
            answers.append({"status": status, "body": body})
        print(json.dumps(answers[0] if "times" not in args else {"answers": answers}))


main()
