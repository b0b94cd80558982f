"""The thrift codec object and its routing keys."""

from __future__ import annotations

from mesh.codec import ConnectionOptions, Headers, MatchResult, PoolMode, RequestKeys, Role

from ._conn import ClientConnection, ServerConnection
from ._match import match

__all__ = ["ThriftCodec", "ThriftKeys"]


class ThriftKeys(RequestKeys):
    """``service``: the TMultiplexedProtocol prefix of ``Service:method``, else the listener's
    ``protocol_options: {service: ...}``, else None;
    ``method``: the name without it; ``get(name)``: a THeader header, or ``:method`` /
    ``:type`` (the full name on the wire, the message type)."""

    __slots__ = ()

    def _name(self) -> str:
        return self._headers.fields[0][1].decode("utf-8", "replace")

    def _compute_service(self) -> str | None:
        service, sep, _ = self._name().partition(":")
        if sep:
            return service
        configured: str | None = self._headers.extensions.get("service")
        return configured  # the listener's protocol_options service, if any

    def _compute_method(self) -> str | None:
        name = self._name()
        return name.partition(":")[2] if ":" in name else name

    def get(self, name: str) -> str | None:
        wanted = name.lower().encode("utf-8", "replace")
        for field, value in self._headers.fields:
            if field == wanted:
                return value.decode("utf-8", "replace")
        return None


class ThriftCodec:
    """Framed, buffered and THeader transports; binary (strict and old) and compact protocols."""

    name = "thrift"
    pool_mode = PoolMode.MULTIPLEX

    def match(self, prefix: bytes) -> MatchResult:
        return match(prefix)

    def connection(self, role: Role, options: ConnectionOptions) -> ServerConnection | ClientConnection:
        if role is Role.SERVER:
            return ServerConnection(options)
        return ClientConnection(options)

    def request_keys(self, headers: Headers) -> RequestKeys:
        return ThriftKeys(headers)
