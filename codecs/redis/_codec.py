"""The redis codec object: sniffing, roles and routing keys."""

from __future__ import annotations

from mesh.codec import (
    AGAIN,
    FAIL,
    MATCH,
    ConnectionOptions,
    Headers,
    MatchResult,
    PoolMode,
    RequestKeys,
    Role,
)

from ._client import ClientConnection
from ._commands import COMMANDS, keys_of
from ._server import ServerConnection

__all__ = ["RedisCodec", "RedisKeys"]

# Inline words memcached's text protocol shares (get, set, incr...) are left to it when
# sniffing; with ``protocol: redis`` they still work inline.
_MEMCACHED = frozenset(b"get gets gat gats set add replace append prepend cas delete incr decr "
                       b"touch stats version quit flush_all verbosity".split())
_WORDS = frozenset(COMMANDS) - _MEMCACHED
_PREFIXES = frozenset(name[:i] for name in _WORDS for i in range(1, len(name) + 1))
_LONGEST = max(len(name) for name in _WORDS)


class RedisKeys(RequestKeys):
    """``method``: the command upper-cased; ``get("key")``: its first key per the table."""

    __slots__ = ()

    def _compute_method(self) -> str | None:
        return self._headers.fields[0][1].decode("latin-1")

    def get(self, name: str) -> str | None:
        extensions = self._headers.extensions
        args: list[bytes] = extensions.get("args") or []
        if name == "key":
            route: bytes | None = extensions.get("route_key")
            if route is not None:  # a transaction's command goes where its first key went
                return route.decode("latin-1")
            cmd = extensions.get("cmd") or (COMMANDS.get(args[0].lower()) if args else None)
            if cmd is None:
                return None
            keys = keys_of(cmd, args)
            return keys[0].decode("latin-1") if keys else None
        if name == "command":
            return self.method
        return None


def match(prefix: bytes) -> MatchResult:
    """``*`` and a digit, or a known command word inline (not an HTTP request line)."""
    if not prefix:
        return AGAIN
    if prefix[0] == 0x2A:  # '*'
        if len(prefix) == 1:
            return AGAIN
        return MATCH if 0x30 <= prefix[1] <= 0x39 else FAIL
    cut = len(prefix)
    for i, byte in enumerate(prefix):
        if byte in b" \r\n":
            cut = i
            break
    word = prefix[:cut].lower()
    if cut == len(prefix):
        return AGAIN if word in _PREFIXES and cut <= _LONGEST else FAIL
    if word not in _WORDS:
        return FAIL
    if prefix[cut] != 0x20:  # "PING\r\n"
        return MATCH
    if cut + 1 == len(prefix):
        return AGAIN
    # "GET / HTTP/1.1", "OPTIONS * HTTP/1.1": a path, not a key
    return FAIL if prefix[cut + 1] in b"/*" else MATCH


class RedisCodec:
    """RESP2/RESP3 over PIPELINE upstream connections; replies relayed as raw bytes."""

    pool_mode = PoolMode.PIPELINE

    def __init__(self, resp3: bool = False) -> None:
        #: the RESP3 variant has its own pools: its upstream connections said HELLO 3
        self.name = "redis+resp3" if resp3 else "redis"
        self._resp3 = resp3
        self.resp3_codec: RedisCodec = self if resp3 else RedisCodec(resp3=True)

    def match(self, prefix: bytes) -> MatchResult:
        return match(prefix)

    def connection(self, role: Role, options: ConnectionOptions) -> ServerConnection | ClientConnection:
        if role is Role.SERVER:
            return ServerConnection(options, self.resp3_codec)
        return ClientConnection(options, self._resp3)

    def request_keys(self, headers: Headers) -> RequestKeys:
        return RedisKeys(headers)
