"""A real gRPC server (grpcio) for the HTTP/2 integration tests: service ``mesh.test.Echo``.

No protoc code generation: generic handlers with identity (bytes) serializers, so a message is
just its bytes. Control requests (Big, ServerStream, Fail, Slow) are small JSON documents.

    python tests/peers/grpc_echo/server.py [--port 0] [--workers 64]

prints ``READY <port>`` on stdout once it serves on 127.0.0.1:<port>, and runs until SIGTERM.

Methods (all under ``/mesh.test.Echo/``):

- ``Unary``: returns the request bytes; invocation metadata whose key starts with ``x-`` comes
  back as initial metadata; trailing metadata ``x-trailer: done`` and ``x-trailer-bin:
  TRAILER_BIN`` (plus ``x-request-size``).
- ``Big``: request ``{"size": N}`` -> N bytes, ``big_payload(N)`` (random, seeded by N).
- ``ServerStream``: ``{"count": k, "size": s}`` -> k messages, message i is
  ``stream_message(i, s)``.
- ``ClientStream``: -> ``{"count": messages received, "bytes": their total size,
  "sha256": of their concatenation}``.
- ``Bidi``: echoes each message as it arrives.
- ``Fail``: ``{"code": "NOT_FOUND", "message": "..."}`` -> aborts with that status and
  message, trailing metadata ``x-fail-code: <code>`` and ``x-fail-bin: FAIL_BIN``.
- ``Slow``: ``{"seconds": t}`` -> sleeps t seconds (waking early when the call is cancelled),
  then returns ``b"slept"``.
- ``Stats``: -> ``{"slow_started": n, "slow_completed": n, "slow_cancelled": n}``, counters of
  Slow calls since the server started (a cancelled one saw its call end before its time).

Any other method gets UNIMPLEMENTED from grpcio itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc

SERVICE = "mesh.test.Echo"
MAX_MESSAGE = 64 * 1024 * 1024
TRAILER_BIN = b"\x00\x01\x02\xfe\xff binary trailer"
FAIL_BIN = b"\xde\xad\xbe\xef\x00fail"
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.so_reuseport", 0),
]


def big_payload(size: int) -> bytes:
    """The deterministic response of Big(size): random bytes seeded by the size."""
    return random.Random(size).randbytes(size)


def stream_message(index: int, size: int) -> bytes:
    head = f"message {index:06d} ".encode()
    return (head + b"." * max(0, size - len(head)))[:max(size, len(head))]


_stats_lock = threading.Lock()
_stats = {"slow_started": 0, "slow_completed": 0, "slow_cancelled": 0}


def _count(key: str) -> None:
    with _stats_lock:
        _stats[key] += 1


def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-")]
    context.send_initial_metadata(echoed)
    context.set_trailing_metadata([
        ("x-trailer", "done"),
        ("x-trailer-bin", TRAILER_BIN),
        ("x-request-size", str(len(request))),
    ])
    return request


def big(request: bytes, context: grpc.ServicerContext) -> bytes:
    return big_payload(int(json.loads(request)["size"]))


def server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    spec = json.loads(request)
    for i in range(int(spec["count"])):
        yield stream_message(i, int(spec.get("size", 0)))


def client_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    count = total = 0
    digest = hashlib.sha256()
    for message in requests:
        count += 1
        total += len(message)
        digest.update(message)
    return json.dumps({"count": count, "bytes": total, "sha256": digest.hexdigest()}).encode()


def bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    yield from requests


def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
    spec = json.loads(request)
    code = grpc.StatusCode[spec["code"]]
    context.set_trailing_metadata([("x-fail-code", code.name.lower()), ("x-fail-bin", FAIL_BIN)])
    context.abort(code, spec["message"])
    raise AssertionError("unreachable: abort raises")


def slow(request: bytes, context: grpc.ServicerContext) -> bytes:
    seconds = float(json.loads(request)["seconds"])
    _count("slow_started")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not context.is_active():
            _count("slow_cancelled")
            return b""
        time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
    _count("slow_completed")
    return b"slept"


def stats(request: bytes, context: grpc.ServicerContext) -> bytes:
    with _stats_lock:
        return json.dumps(_stats).encode()


def handlers() -> grpc.GenericRpcHandler:
    u, ss = grpc.unary_unary_rpc_method_handler, grpc.unary_stream_rpc_method_handler
    su, bi = grpc.stream_unary_rpc_method_handler, grpc.stream_stream_rpc_method_handler
    table: dict[str, Any] = {
        "Unary": u(unary), "Big": u(big), "Fail": u(fail), "Slow": u(slow), "Stats": u(stats),
        "ServerStream": ss(server_stream), "ClientStream": su(client_stream), "Bidi": bi(bidi),
    }
    # No serializers given: grpcio hands the handlers the raw message bytes and sends bytes.
    return grpc.method_handlers_generic_handler(SERVICE, table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--workers", type=int, default=64)
    args = ap.parse_args(argv)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers),
                         options=SERVER_OPTIONS, maximum_concurrent_rpcs=None)
    server.add_generic_rpc_handlers((handlers(),))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    if port == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"READY {port}", flush=True)
    stop.wait()
    server.stop(grace=0.5).wait(timeout=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
