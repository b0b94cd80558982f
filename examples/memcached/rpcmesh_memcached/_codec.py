"""The codec object the ``mesh.codecs`` entry point ``memcached`` names, and its routing keys."""

from __future__ import annotations

from mesh.codec import ConnectionOptions, Headers, MatchResult, PoolMode, RequestKeys, Role

from ._client import ClientConnection
from ._match import match
from ._server import ServerConnection

__all__ = ["MemcachedCodec", "MemcachedKeys"]


class MemcachedKeys(RequestKeys):
    """Routing keys of a memcached command.

    ``method`` is the command (``get``, ``set``...); ``get("key")`` the key
    (each get of a multi-key line has one: the server role splits them);
    ``service`` the key's prefix before the first ``:`` (``user`` for
    ``user:42``), None without one. ``get(name)`` answers any field of the
    request by name (``flags``, ``exptime``...).
    """

    __slots__ = ()

    def get(self, name: str) -> str | None:
        try:
            wanted = name.lower().encode("latin-1")
        except UnicodeEncodeError:
            return None
        for field_name, value in self._headers.fields:
            if field_name == wanted:
                return value.decode("latin-1")
        return None

    def _compute_method(self) -> str | None:
        return self.get("command")

    def _compute_service(self) -> str | None:
        key = self.get("key")
        if key is None:
            return None
        prefix, colon, _ = key.partition(":")
        return prefix if colon and prefix else None


class MemcachedCodec:
    """memcached's text protocol: PIPELINE (replies in command order), both roles."""

    name = "memcached"
    pool_mode = PoolMode.PIPELINE

    def match(self, prefix: bytes) -> MatchResult:
        """MATCH on ``get ``, ``set ``... (a known command word then a space or CRLF)."""
        return match(prefix)

    def connection(self, role: Role, options: ConnectionOptions) -> ServerConnection | ClientConnection:
        """A server (parses commands) or client (parses replies) state machine."""
        if role is Role.SERVER:
            return ServerConnection(options)
        return ClientConnection(options)

    def request_keys(self, headers: Headers) -> RequestKeys:
        """Routing keys: command, key, and the key's prefix as the service."""
        return MemcachedKeys(headers)
