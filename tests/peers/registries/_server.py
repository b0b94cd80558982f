"""What the test registries share: an HTTP/1.1 server on 127.0.0.1 in a thread of the test.

A subclass implements ``handle(request) -> Reply`` for the API subset its official client uses
(register, heartbeat, deregister) and rpcmesh's source reads. ``stop()`` closes the listening
socket and cuts every open connection (a registry that went down: connections are refused);
``start()`` listens again on the same port. Bounded: 127.0.0.1 only, request bodies of at most
1 MiB, blocking queries of at most 10 s.

Each server can also run on its own, for trying a source by hand:

    python -m tests.peers.registries.consul_server --port 8500
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "registries"
MAX_BODY = 1024 * 1024
LOOPBACK = "127.0.0.1"


def golden(name: str) -> Any:
    """A sample payload of tests/golden/registries (from the registries' documented examples)."""
    return json.loads((GOLDEN / name).read_text())


def shape(value: Any) -> Any:
    """The key structure of a JSON value: objects by their keys, lists by their first element."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__ if value is not None else "null"


def keys_of(value: Any) -> Any:
    """Only the key names, recursively (types may differ, e.g. metadata values)."""
    if isinstance(value, dict):
        return {key: keys_of(item) for key, item in value.items()}
    if isinstance(value, list):
        return [keys_of(value[0])] if value else []
    return None


@dataclass
class Request:
    method: str
    path: str  # decoded
    query: dict[str, str]  # first value of each parameter
    queries: list[tuple[str, str]]  # every parameter, in order
    headers: dict[str, str]  # lower-case names
    body: bytes

    def form(self) -> dict[str, str]:
        """Query parameters and a form-encoded body together (as servlet parameters)."""
        params = dict(self.query)
        if self.body and "json" not in self.headers.get("content-type", ""):
            params.update(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        return params

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: Any = b""  # bytes, str, or a JSON value
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "text/plain;charset=UTF-8"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain;charset=UTF-8"
        return json.dumps(self.body).encode(), "application/json"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.server.registry._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.registry._closed(self.connection)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        queries = parse_qsl(parts.query, keep_blank_values=True)
        request = Request(self.command, unquote(parts.path), dict(reversed(queries)), queries,
                          {k.lower(): v for k, v in self.headers.items()}, body)
        registry = self.server.registry
        registry.seen.append((request.method, request.path))
        try:
            reply = registry.handle(request)
        except Exception as exc:  # a bug of the test server shows in the answer
            reply = Reply(500, f"test server error: {exc!r}")
        data, content_type = reply.encoded()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.headers.pop("Content-Type", content_type))
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    registry: RegistryServer


class RegistryServer:
    """Subclasses implement :meth:`handle`; the state lives on the instance (under ``cond``)."""

    def __init__(self) -> None:
        self.port = 0
        self.cond = threading.Condition()
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()

    # -- life -----------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> RegistryServer:
        httpd = _HTTPServer((LOOPBACK, self.port), _Handler)
        httpd.registry = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down: no more connections, and the open ones are cut (a blocking query included)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._conn_lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        with self.cond:
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RegistryServer:
        return self.start() if not self.running else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _opened(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.add(conn)

    def _closed(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.discard(conn)

    def changed(self) -> None:
        """Wake blocking queries (call with ``cond`` held)."""
        self.cond.notify_all()

    # -- the API --------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError


def truthy(value: str | None, default: bool) -> bool:
    """A Java-style boolean parameter (``Boolean.parseBoolean``: "true" in any case)."""
    return default if value is None else value.strip().lower() == "true"


def casefold_keys(value: Mapping[str, Any]) -> dict[str, Any]:
    """Consul reads JSON keys case-insensitively: ``name`` and ``Name`` are the same."""
    return {key.lower(): item for key, item in value.items()}


def serve_main(cls: type[RegistryServer], default_port: int) -> None:
    parser = argparse.ArgumentParser(description=cls.__doc__)
    parser.add_argument("--port", type=int, default=default_port)
    args = parser.parse_args()
    server = cls()
    server.port = args.port
    server.start()
    print(f"READY {server.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
