"""A TLS endpoint that stands where a Kafka broker would, for tests/kafka_tls.rs: it shows that
the gateway's Kafka client speaks TLS with the settings it was given (the CA it trusts, the
broker's host name) before any Kafka request. It is not a broker: after the handshake it reads
the first request's header (a Kafka request: 4-byte size, 2-byte API key, 2-byte version) and
closes.

    tls_probe.py CERT KEY LOG

Prints `PORT n` once listening; appends one JSON line per connection to LOG:
{"handshake": "ok", "sni": ..., "api_key": n} or {"handshake": "failed", "reason": ...}.
"""
import ssl
import struct
import sys
import threading

from probe_common import recorder, serve_forever


def main():
    cert, key, log = sys.argv[1:4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    # Each connection's handshake runs on its own thread: the name it asked for is that thread's.
    sni = threading.local()

    def remember(_sock, name, _ctx):
        sni.name = name

    ctx.sni_callback = remember
    record = recorder(log)

    def serve(conn):
        conn.settimeout(10)
        try:
            tls = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            record({"handshake": "failed", "reason": getattr(e, "reason", None) or type(e).__name__})
            conn.close()
            return
        entry = {"handshake": "ok", "sni": getattr(sni, "name", None)}
        try:
            head = b""
            while len(head) < 6:
                chunk = tls.recv(6 - len(head))
                if not chunk:
                    break
                head += chunk
            if len(head) == 6:
                _size, api_key = struct.unpack(">iH", head)
                entry["api_key"] = api_key
        except (ssl.SSLError, OSError) as e:
            entry["read_error"] = type(e).__name__
        record(entry)
        tls.close()

    serve_forever(serve)


if __name__ == "__main__":
    main()
