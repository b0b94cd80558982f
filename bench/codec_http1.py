#!/usr/bin/env python3
"""HTTP/1.1 codec micro-benchmark: one proxied keep-alive exchange through both roles.

    python bench/codec_http1.py [--rounds 5] [--count 20000]

Per exchange, as the proxy does it: the SERVER role parses a wrk-style GET (the
proxy appends x-forwarded-for/proto), the CLIENT role encodes it and parses an
nginx-style 200 with a 13-byte body, and the SERVER role encodes that response.
Prints microseconds per exchange, best of the rounds. Single-threaded, a few
seconds, no sockets.
"""

from __future__ import annotations

import argparse
import time

from mesh.codecs.http1 import codec

from mesh.codec import NEED_DATA, ConnectionOptions, Role

REQ = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
RESP = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 06:32:12 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n"
    b"hello world!\n"
)


def exchange_loop(count: int) -> float:
    """Run ``count`` exchanges on one connection pair; return the elapsed seconds."""
    s = codec.connection(Role.SERVER, ConnectionOptions())
    c = codec.connection(Role.CLIENT, ConnectionOptions())

    def one() -> None:
        s.receive_data(REQ)
        req = s.next_event()  # the proxy also appends x-forwarded-for/proto here
        req.fields.append((b"x-forwarded-for", b"127.0.0.1"))
        req.fields.append((b"x-forwarded-proto", b"http"))
        c.send(req)
        c.receive_data(RESP)
        h = c.next_event()
        d = c.next_event()
        s.send(h)
        s.send(d)
        if not d.end_stream:
            s.send(c.next_event())
        assert s.next_event() is NEED_DATA and c.next_event() is NEED_DATA

    start = time.perf_counter()
    for _ in range(count):
        one()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    exchange_loop(1000)  # warm-up
    best = min(exchange_loop(args.count) for _ in range(args.rounds))
    print(f"http1 codec: {best / args.count * 1e6:.2f} us per exchange "
          f"(best of {args.rounds} rounds of {args.count})")


if __name__ == "__main__":
    main()
