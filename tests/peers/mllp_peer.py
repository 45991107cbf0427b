#!/usr/bin/env python3
"""An independent HL7 v2 MLLP receiver for the tests: python-hl7's asyncio MLLP server reads
each frame, the peer decodes it by its MSH-18 (empty or ASCII: ASCII; UNICODE UTF-8: UTF-8;
8859/1: Latin-1), python-hl7 parses it, hl7apy validates it strictly as a v2.5.1 REF_I12, and the
peer answers an ACK built by python-hl7 with the code read from MODE ("AA", "AE", "AR"; "CA",
"CE", "CR" for the commit ACKs of enhanced mode). MODE "CLOSE" closes the connection without an
ACK. MODE may list codes, comma-separated ("AA,CLOSE"): each message takes the first, the last
stays. A message that does not decode in the character set its MSH-18 names is recorded
(`decode_error`) and the connection closed without an ACK, as python-hl7's own server does. Each
message is recorded in LOG. With CERT and KEY it listens over TLS.

Usage: mllp_peer.py LOG MODE [CERT KEY]   (prints "PORT <n>" when listening)
"""
import asyncio
import json
import ssl
import sys

import hl7
from hl7.mllp import start_hl7_server
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

log_path, mode_path = sys.argv[1:3]
tls = None
if len(sys.argv) > 4:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(sys.argv[3], sys.argv[4])


def validate(text):
    try:
        msg = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        return bool(msg.validate()), ""
    except Exception as e:  # hl7apy raises on a structure it refuses
        return False, f"{type(e).__name__}: {e}"


CHARSETS = {"": "ascii", "ASCII": "ascii", "UNICODE UTF-8": "utf-8", "8859/1": "latin-1"}


def msh18(block):
    fields = block.split(b"\r", 1)[0].split(b"|")
    return fields[17].decode("ascii", "replace") if len(fields) > 17 else ""


def field(segment, n):
    return str(segment[n]) if len(segment) > n else ""


def text_of(message, value, charset):
    """A field's text with its escapes undone; without MSH-18, `\\X..\\` are UTF-8 bytes."""
    v = message.unescape(value)
    if charset == "":
        try:
            v = v.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return v


def next_code():
    """The code for this message: MODE's first (comma-separated); the rest are for the next."""
    codes = [c.strip() for c in open(mode_path).read().split(",") if c.strip()] or ["AA"]
    if len(codes) > 1:
        with open(mode_path, "w") as f:
            f.write(",".join(codes[1:]))
    return codes[0]


async def handle(reader, writer):
    try:
        while not writer.is_closing():
            block = await reader.readblock()
            charset = msh18(block)
            code = next_code()
            try:
                text = block.decode(CHARSETS[charset])
            except (KeyError, UnicodeDecodeError) as e:
                with open(log_path, "a") as log:
                    log.write(json.dumps({"decode_error": f"{type(e).__name__}", "charset": charset}) + "\n")
                break
            message = hl7.parse(text)
            if code == "CLOSE":
                with open(log_path, "a") as log:
                    log.write(json.dumps({"control_id": str(message.segment("MSH")[10]), "ack": code}) + "\n")
                break
            valid, why = validate(text)
            with open(log_path, "a") as log:
                log.write(json.dumps({
                    "charset": charset,
                    "control_id": str(message.segment("MSH")[10]),
                    "type": str(message.segment("MSH")[9]),
                    "accept_ack": str(message.segment("MSH")[15]) if len(message.segment("MSH")) > 15 else "",
                    "app_ack": str(message.segment("MSH")[16]) if len(message.segment("MSH")) > 16 else "",
                    "tls": writer.get_extra_info("ssl_object") is not None,
                    "hl7apy_valid": valid,
                    "why": why,
                    "ack": code,
                    "pid_name": str(message.segment("PID")[5]),
                    "pid_name_text": text_of(message, str(message.segment("PID")[5]), charset),
                    "rf1": [field(message.segment("RF1"), n) for n in range(11)],
                    "nte": [str(s[3]) for s in message.segments("NTE")],
                    "nte_text": [text_of(message, str(s[3]), charset) for s in message.segments("NTE")],
                    "nte_type": [field(s, 4) for s in message.segments("NTE")],
                    "raw": text,
                }) + "\n")
            writer.writemessage(message.create_ack(ack_code=code))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await start_hl7_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    print("PORT", port, flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
