"""An h2c upstream for the HTTP/2 integration tests: a tiny ASGI app served by hypercorn.

One plain-text port on 127.0.0.1 speaks HTTP/1.1, h2c with prior knowledge and the HTTP/1.1
``Upgrade: h2c`` (all hypercorn's own). One process (hypercorn's asyncio worker run here in
the main process, no worker children), so its PID is all there is to stop.

    python tests/peers/grpc_echo/h2c_server.py [--port 0] [--max-requests N]

prints ``READY <port>`` on stdout once it listens, runs until SIGTERM.

Routes (every response carries ``x-upstream-http-version``: the HTTP version hypercorn saw,
"1.1" or "2"):

- ``GET /hello`` -> 200 ``hello world!\\n``
- ``POST /echo`` -> 200, the request body (``x-request-sha256`` its sha256)
- ``GET /big?n=N`` -> 200, ``big_body(N)`` (N random bytes seeded by N), sent in 64 KiB chunks
- ``GET /status/404`` (any ``/status/<code>``) -> that status, body ``status <code>\\n``
- anything else -> 404
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

CHUNK = 64 * 1024


def big_body(size: int) -> bytes:
    return random.Random(size).randbytes(size)


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    version = [(b"x-upstream-http-version", scope["http_version"].encode())]
    extra: list[tuple[bytes, bytes]] = []
    status, body, chunked = 200, b"", False
    if path == "/hello":
        body = b"hello world!\n"
    elif path == "/echo" and method == "POST":
        body = await _read_body(receive)
        extra.append((b"x-request-sha256", hashlib.sha256(body).hexdigest().encode()))
    elif path == "/big":
        query = parse_qs(scope["query_string"].decode())
        body, chunked = big_body(int(query.get("n", ["1048576"])[0])), True
    elif path.startswith("/status/") and path[8:].isdigit():
        status = int(path[8:])
        body = f"status {status}\n".encode()
    else:
        status, body = 404, b"not found\n"
    if method != "POST":
        await _read_body(receive)
    headers = [(b"content-type", b"application/octet-stream"),
               (b"content-length", str(len(body)).encode()), *version, *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if not chunked:
        await send({"type": "http.response.body", "body": body})
        return
    view = memoryview(body)
    for start in range(0, len(body), CHUNK):
        last = start + CHUNK >= len(body)
        await send({"type": "http.response.body", "body": bytes(view[start:start + CHUNK]),
                    "more_body": not last})
    if not body:
        await send({"type": "http.response.body", "body": b""})


async def serve(port: int, max_requests: int) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.set_inheritable(True)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = "-"
    config.keep_alive_timeout = 60
    # hypercorn's default (1000) closes an HTTP/2 connection with GOAWAY after that many
    # requests; a proxy's one shared upstream connection reaches it fast. Tests about GOAWAY
    # ask for a small number, the others for none.
    config.keep_alive_max_requests = max_requests
    config.h2_max_concurrent_streams = 128
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {sock.getsockname()[1]}", flush=True)
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-requests", type=int, default=2**31,
                    help="requests per connection before hypercorn closes it (HTTP/2: GOAWAY)")
    args = ap.parse_args(argv)
    asyncio.run(serve(args.port, args.max_requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
