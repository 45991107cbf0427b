"""What the probes standing where a Kafka broker would be share (tls_probe.py, sasl_probe.py):
a JSON-lines log written from many threads, and a loopback listener that prints its port and
serves each connection on a thread of its own."""
import json
import socket
import threading


def recorder(log):
    """A function appending one JSON line per entry to LOG, safe across threads."""
    lock = threading.Lock()

    def record(entry):
        with lock, open(log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    return record


def serve_forever(serve):
    """Listens on 127.0.0.1, prints `PORT n`, and runs SERVE(connection) on a thread each."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print("PORT %d" % srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
