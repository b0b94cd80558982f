"""The http1 codec object the ``mesh.codecs`` entry point names."""

from __future__ import annotations

from mesh.codec import (
    ConnectionOptions,
    HeaderKeys,
    MatchResult,
    PoolMode,
    RequestKeys,
    Role,
)
from mesh.codec import Headers as _Headers

from ._client import ClientConnection
from ._match import match
from ._server import ServerConnection

__all__ = ["Http1Codec"]


class Http1Codec:
    """HTTP/1.0 and HTTP/1.1 over httptools (llhttp), one exchange at a time."""

    name = "http1"
    pool_mode = PoolMode.PING_PONG

    def match(self, prefix: bytes) -> MatchResult:
        """MATCH on ``METHOD `` with a method llhttp knows; PRI (HTTP/2) FAILs."""
        return match(prefix)

    def connection(
        self, role: Role, options: ConnectionOptions
    ) -> ServerConnection | ClientConnection:
        """A server (parses requests) or client (parses responses) state machine."""
        if role is Role.SERVER:
            return ServerConnection(options)
        return ClientConnection(options)

    def request_keys(self, headers: _Headers) -> RequestKeys:
        """Routing keys from ``:method``, ``:authority`` and ``:path``."""
        return HeaderKeys(headers)
