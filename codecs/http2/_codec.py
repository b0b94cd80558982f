"""The http2 codec object: sniffing the connection preface, roles, routing keys."""

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

from ._conn import H2Connection
from ._grpc import HttpKeys
from ._lean import LeanConnection

__all__ = ["PREFACE", "Http2Codec", "match"]

#: What every HTTP/2 client sends first (RFC 9113 3.4); h2c "prior knowledge" starts with it.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def match(prefix: bytes) -> MatchResult:
    """MATCH on the whole preface, AGAIN on a proper prefix of it, FAIL otherwise."""
    head = bytes(prefix[: len(PREFACE)])
    if head == PREFACE:
        return MATCH
    return AGAIN if PREFACE.startswith(head) else FAIL


class Http2Codec:
    """HTTP/2 (and gRPC on it): h2c with prior knowledge, upgrade from HTTP/1.1 (docs/http2.md)."""

    name = "http2"
    pool_mode = PoolMode.MULTIPLEX
    #: the client role maps the proxy's request ids to stream ids it numbers itself
    numbers_streams = True

    def match(self, prefix: bytes) -> MatchResult:
        return match(prefix)

    def connection(self, role: Role, options: ConnectionOptions) -> LeanConnection | H2Connection:
        """The lean engine; ``protocol_options: {engine: h2}`` picks the one on h2."""
        return _engine(options)(role, options)

    def upgraded_connection(self, options: ConnectionOptions, settings: bytes | None,
                            request: Headers, body: bytes = b"") -> LeanConnection | H2Connection:
        """The server side of an ``Upgrade: h2c`` (RFC 7540 3.2): ``request`` becomes stream 1.

        ``settings`` is the ``HTTP2-Settings`` header value (base64url), ``body`` the request
        body read in HTTP/1.1; the caller has sent the 101.
        """
        return _engine(options)(Role.SERVER, options, upgrade_settings=settings,
                                upgraded_request=request, upgraded_body=body)

    def request_keys(self, headers: Headers) -> RequestKeys:
        return HttpKeys(headers)


def _engine(options: ConnectionOptions) -> type[LeanConnection] | type[H2Connection]:
    engine = options.extra.get("engine", "lean")
    if engine == "h2":
        return H2Connection
    if engine != "lean":
        raise ValueError(f"http2 engine {engine!r}: expected 'lean' or 'h2'")
    return LeanConnection
