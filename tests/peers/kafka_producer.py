"""An independent Kafka producer for tests/kafka_source.rs: kafka-python (pure Python, its own
implementation of the protocol, not librdkafka).

    kafka_producer.py BROKERS TOPIC FIRST COUNT DELAY_MS

Produces records FIRST..FIRST+COUNT-1 (NDJSON-able JSON objects with the columns of the tests'
small mapping, keyed by id; every 97th, at i % 97 == 13, is not JSON), acks=all, and prints one
JSON line per record once the broker acknowledged it: {"id", "partition", "offset", "valid"}.
"""
import json
import sys
import time

from kafka import KafkaProducer


def main():
    brokers, topic, first, count, delay_ms = sys.argv[1:6]
    first, count, delay = int(first), int(count), int(delay_ms) / 1000.0
    # api_version pinned: librdkafka's mock cluster takes ApiVersions up to v2 and answers a v3
    # probe with UNSUPPORTED_VERSION, a reply kafka-python 3.0.12 cannot decode; (2, 3) probes
    # with v2 and then negotiates each request's version from the broker's list as usual.
    p = KafkaProducer(bootstrap_servers=brokers.split(","), api_version=(2, 3), acks="all",
                      linger_ms=0, retries=5)
    for i in range(first, first + count):
        rid = "K-%06d" % i
        valid = i % 97 != 13
        if valid:
            value = json.dumps(
                {"id": rid, "when": "2026-11-01 10:%02d:00" % (i % 60), "code": "OD",
                 "name": "DOE, JANE", "note": "line one\nline two"},
                # Pretty-printed: the value has line breaks of its own.
                indent=1 if i % 5 == 0 else None,
            ).encode()
        else:
            value = b'{"id": "' + rid.encode() + b'", "when": '
        md = p.send(topic, key=rid.encode(), value=value).get(timeout=30)
        print(json.dumps({"id": rid, "partition": md.partition, "offset": md.offset, "valid": valid}), flush=True)
        if delay:
            time.sleep(delay)
    p.flush()
    p.close()


if __name__ == "__main__":
    main()
