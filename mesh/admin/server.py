"""The admin HTTP API: /ready, /stats, /clusters, /config_dump.

Bound to 127.0.0.1 unless configured otherwise: it shows configuration and
is not meant for the open network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from mesh.admin.responder import serve_http
from mesh.cluster import UpstreamCluster
from mesh.codec import Codec, Headers
from mesh.config import Config, dump
from mesh.net.connection import Connection
from mesh.stats import StatsRegistry

__all__ = ["AdminApi"]

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class AdminApi:
    def __init__(self, codec: Codec, config: Callable[[], Config], stats: StatsRegistry,
                 clusters: Callable[[], Mapping[str, UpstreamCluster]],
                 ready: Callable[[], bool]) -> None:
        self._codec = codec
        self._config = config
        self._stats = stats
        self._clusters = clusters
        self._ready = ready

    async def handle(self, conn: Connection) -> None:
        await serve_http(conn, self._codec, self.respond)

    def respond(self, request: Headers) -> tuple[int, str, bytes]:
        path = _path(request)
        if path == "/ready":
            return (200, _TEXT, b"LIVE\n") if self._ready() else (503, _TEXT, b"PRE_INITIALIZING\n")
        if path == "/stats":
            return 200, _PROMETHEUS, self._stats.render().encode()
        if path == "/clusters":
            return 200, _JSON, _json([c.describe() for c in self._clusters().values()])
        if path == "/config_dump":
            return 200, _JSON, _json(dump(self._config()))
        if path == "/":
            return 200, _TEXT, b"rpcmesh admin: /ready /stats /clusters /config_dump\n"
        return 404, _TEXT, f"no admin page {path}; try /ready /stats /clusters /config_dump\n".encode()


def _path(request: Headers) -> str:
    for name, value in request.fields:
        if name == b":path":
            return value.decode("latin-1").split("?", 1)[0]
    return "/"


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, default=str) + "\n").encode()
