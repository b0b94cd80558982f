"""Record redis conformance vectors from real peers: redis-cli against Debian redis-server.

    python scripts/capture_redis_vectors.py [--out codecs/redis/vectors/redis-cli]

Starts redis-server on a free 127.0.0.1 port, runs one redis-cli per scenario
through mesh.conformance.capture.Recorder and writes OUT.msgpack and OUT.json.
The expected events come from the command line we gave redis-cli, not from
the codec: one request head ``:command`` = the command name upper-cased.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import tempfile
import time

from mesh.conformance.capture import Recorder, exchange_vectors
from mesh.conformance.vectors import Expect, Vector, dump

SCENARIOS: list[tuple[str, list[str], str | None]] = [
    ("set", ["SET", "greeting", "hello world"], "greeting"),
    ("get", ["GET", "greeting"], "greeting"),
    ("get-missing", ["GET", "nothing-here"], "nothing-here"),
    ("hset", ["HSET", "h", "a", "1", "b", "2"], "h"),
    ("hgetall", ["HGETALL", "h"], "h"),
    ("rpush", ["RPUSH", "l", "x", "y\r\nz"], "l"),
    ("lrange", ["LRANGE", "l", "0", "-1"], "l"),
    ("incr", ["INCR", "n"], "n"),
    ("wrongtype", ["LPUSH", "greeting", "v"], "greeting"),
    ("mget", ["MGET", "greeting", "nothing", "n"], "greeting"),
    ("zadd", ["ZADD", "z", "1.5", "m"], "z"),
    ("zrange-scores", ["ZRANGE", "z", "0", "-1", "WITHSCORES"], "z"),
    ("ping", ["PING"], None),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="codecs/redis/vectors/redis-cli")
    args = parser.parse_args()
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--dir", tmp], stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            vectors: list[Vector] = []
            for name, argv, key in SCENARIOS:
                with Recorder(upstream_port=port) as rec:
                    subprocess.run(["redis-cli", "-p", str(rec.port), *argv], check=True,
                                   stdout=subprocess.DEVNULL, timeout=10)
                    (recording,) = rec.wait(1)
                head = {"type": "headers", "stream_id": 1, "fields": [[b":command", argv[0].encode()]],
                        "end_stream": True}
                vectors += exchange_vectors(
                    name, recording,
                    request=Expect(events=[head], keys={"method": argv[0], "key": key}, stream_ids=[1]),
                    response=Expect(stream_ids=[1]),
                    note=f"redis-cli {' '.join(argv)!r} against redis-server")
        finally:
            server.terminate()
            server.wait()
    dump(vectors, args.out + ".msgpack")
    dump(vectors, args.out + ".json")


if __name__ == "__main__":
    main()
