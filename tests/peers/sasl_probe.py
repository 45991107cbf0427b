"""A Kafka endpoint that authenticates clients with SASL, for tests/kafka_tls.rs: it shows
that the gateway's Kafka clients (the source's consumer, the destination's producer) carry out
the SASL exchange with the credentials they were configured with. It is not a broker: it
answers ApiVersions, SaslHandshake and SaslAuthenticate, records the outcome, and closes the
connection at the first request after the exchange (the client then connects again).

Both halves of the exchange are independent of the gateway and of librdkafka: the Kafka
requests and responses are decoded and encoded by kafka-python's protocol classes (generated
from Kafka's own message definitions), and SCRAM (RFC 5802/7677) is checked by `scramp`.

    sasl_probe.py USER PASSWORD LOG [CERT KEY]

With CERT and KEY the endpoint speaks TLS first (security.protocol = sasl_ssl). Prints
`PORT n` once listening; appends one JSON line per exchange to LOG:
{"mechanism": ..., "user": ..., "auth": "ok" | "failed" | "unsupported"}. The password a
client sent is never written.
"""
import ssl
import struct
import sys

from kafka.protocol.metadata.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)
from scramp import ScramException, ScramMechanism

from probe_common import recorder, serve_forever

MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
# Kafka's error codes (org.apache.kafka.common.protocol.Errors).
UNSUPPORTED_VERSION = 35
UNSUPPORTED_SASL_MECHANISM = 33
SASL_AUTHENTICATION_FAILED = 58
# What this endpoint answers: ApiVersions, SaslHandshake, SaslAuthenticate. A client that asks
# for a later version of ApiVersions gets UNSUPPORTED_VERSION and asks again, as with a broker.
# Metadata (3) is listed too, not answered: a client sends no request its broker does not list,
# and the first one after the exchange is what shows that the client took it as done.
API_VERSIONS = {18: (0, 3), 17: (0, 1), 36: (0, 2), 3: (0, 12)}


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def send(sock, response, correlation_id):
    """`response` was made with the version it answers in (`version=`)."""
    response.with_header(correlation_id=correlation_id)
    sock.sendall(bytes(response.encode(header=True, framed=True)))


class Exchange:
    """One connection's SASL exchange, checked against the one user this endpoint knows."""

    def __init__(self, user, password):
        self.user, self.password = user, password
        self.mechanism = None
        self.server = None
        self.step = 0
        self.client_user = None
        # Set only once the client's proof (or PLAIN password) is checked and right.
        self.authenticated = False

    def handshake(self, mechanism):
        if mechanism not in MECHANISMS:
            return False
        self.mechanism = mechanism
        if mechanism.startswith("SCRAM-"):
            m = ScramMechanism(mechanism)
            info = m.make_auth_info(self.password, iteration_count=4096)

            def auth_fn(username):
                self.client_user = username
                if username != self.user:
                    raise ScramException("unknown user")
                return info

            self.server = m.make_server(auth_fn)
        return True

    def authenticate(self, data):
        """(error code, bytes to send, outcome or None while the exchange goes on)."""
        if self.mechanism == "PLAIN":
            parts = data.split(b"\0")
            ok = len(parts) == 3 and parts[1].decode() == self.user and parts[2].decode() == self.password
            self.client_user = parts[1].decode() if len(parts) == 3 else None
            return (0 if ok else SASL_AUTHENTICATION_FAILED), b"", ("ok" if ok else "failed")
        try:
            if self.step == 0:
                self.step = 1
                self.server.set_client_first(data.decode())
                return 0, self.server.get_server_first().encode(), None
            self.server.set_client_final(data.decode())
            return 0, self.server.get_server_final().encode(), "ok"
        except ScramException:
            return SASL_AUTHENTICATION_FAILED, b"", "failed"


def main():
    user, password, log = sys.argv[1:4]
    ctx = None
    if len(sys.argv) > 5:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    record = recorder(log)

    def serve(conn):
        conn.settimeout(10)
        sock = conn
        try:
            if ctx is not None:
                sock = ctx.wrap_socket(conn, server_side=True)
            ex = Exchange(user, password)
            while True:
                head = read_exact(sock, 4)
                if head is None:
                    return
                frame = read_exact(sock, struct.unpack(">i", head)[0])
                if frame is None:
                    return
                api_key, version, correlation_id = struct.unpack(">hhi", frame[:8])
                if api_key == 18:
                    low, high = API_VERSIONS[18]
                    keys = [
                        ApiVersionsResponse.ApiVersion(api_key=k, min_version=lo, max_version=hi)
                        for k, (lo, hi) in sorted(API_VERSIONS.items())
                    ]
                    if version > high:
                        r = ApiVersionsResponse(version=0, error_code=UNSUPPORTED_VERSION, api_keys=keys)
                        send(sock, r, correlation_id)
                        continue
                    ApiVersionsRequest.decode(frame, version=version, header=True)
                    r = ApiVersionsResponse(
                        version=version, error_code=0, api_keys=keys, throttle_time_ms=0
                    )
                    send(sock, r, correlation_id)
                elif api_key == 17:
                    req = SaslHandshakeRequest.decode(frame, version=version, header=True)
                    ok = ex.handshake(req.mechanism)
                    if not ok:
                        record({"mechanism": req.mechanism, "user": None, "auth": "unsupported"})
                    r = SaslHandshakeResponse(
                        version=version,
                        error_code=0 if ok else UNSUPPORTED_SASL_MECHANISM,
                        mechanisms=MECHANISMS,
                    )
                    send(sock, r, correlation_id)
                    if not ok:
                        return
                elif api_key == 36:
                    req = SaslAuthenticateRequest.decode(frame, version=version, header=True)
                    code, data, outcome = ex.authenticate(bytes(req.auth_bytes))
                    r = SaslAuthenticateResponse(
                        version=version,
                        error_code=code,
                        error_message=None if code == 0 else "Authentication failed",
                        auth_bytes=data,
                        session_lifetime_ms=0,
                    )
                    send(sock, r, correlation_id)
                    if outcome is not None:
                        ex.authenticated = outcome == "ok"
                        record({"mechanism": ex.mechanism, "user": ex.client_user, "auth": outcome})
                        if outcome != "ok":
                            return
                else:
                    # The first request after the exchange (Metadata): not a broker, so done.
                    record({"after": api_key, "authenticated": ex.authenticated})
                    return
        except Exception as e:  # a test peer: whatever went wrong goes to the log
            record({"error": type(e).__name__})
        finally:
            sock.close()

    serve_forever(serve)


if __name__ == "__main__":
    main()
