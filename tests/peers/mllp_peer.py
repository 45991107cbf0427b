#!/usr/bin/env python3
"""An independent HL7 v2 MLLP receiver for the tests: python-hl7's asyncio MLLP server parses
each message, hl7apy validates it strictly as a v2.5.1 REF_I12, and the peer answers an ACK built
by python-hl7 with the code read from MODE ("AA", "AE", "AR"; "CA", "CE", "CR" for the commit
ACKs of enhanced mode). Each message is recorded in LOG. With CERT and KEY it listens over TLS.

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


async def handle(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            text = str(message)
            valid, why = validate(text)
            code = open(mode_path).read().strip() or "AA"
            with open(log_path, "a") as log:
                log.write(json.dumps({
                    "control_id": str(message.segment("MSH")[10]),
                    "type": str(message.segment("MSH")[9]),
                    "accept_ack": str(message.segment("MSH")[15]) if len(message.segment("MSH")) > 15 else "",
                    "app_ack": str(message.segment("MSH")[16]) if len(message.segment("MSH")) > 16 else "",
                    "tls": writer.get_extra_info("ssl_object") is not None,
                    "hl7apy_valid": valid,
                    "why": why,
                    "ack": code,
                    "pid_name": str(message.segment("PID")[5]),
                    "nte": [str(s[3]) for s in message.segments("NTE")],
                    "raw": text,
                }) + "\n")
            writer.writemessage(message.create_ack(ack_code=code))
            await writer.drain()
    except asyncio.IncompleteReadError:
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
