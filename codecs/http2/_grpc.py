"""gRPC over HTTP/2: routing keys, deadlines and trailers-only local replies.

gRPC is HTTP/2 with ``content-type: application/grpc[+proto|+json...]``, a
``:path`` of ``/package.Service/Method``, an optional ``grpc-timeout`` header and
the outcome in ``grpc-status`` / ``grpc-message`` trailers. An error the proxy
makes itself is a *trailers-only* response: one HEADERS frame with ``:status 200``,
the content type and the grpc-status, ending the stream (the gRPC HTTP/2 spec).
"""

from __future__ import annotations

from urllib.parse import quote

from mesh.codec import Data, Event, HeaderKeys, Headers, Status

__all__ = ["GRPC_STATUS", "HttpKeys", "grpc_timeout", "is_grpc", "local_reply",
           "request_extensions"]

#: The gRPC code for each protocol-neutral status (what Envoy answers too).
GRPC_STATUS: dict[Status, int] = {
    Status.NO_ROUTE: 12,  # UNIMPLEMENTED
    Status.UNAVAILABLE: 14,  # UNAVAILABLE
    Status.TIMEOUT: 4,  # DEADLINE_EXCEEDED
    Status.OVERLOADED: 8,  # RESOURCE_EXHAUSTED
    Status.BAD_REQUEST: 13,  # INTERNAL (Envoy maps HTTP 400 to INTERNAL as well)
    Status.INTERNAL: 13,  # INTERNAL
}

_HTTP_STATUS: dict[Status, bytes] = {
    Status.NO_ROUTE: b"404",
    Status.UNAVAILABLE: b"503",
    Status.TIMEOUT: b"504",
    Status.OVERLOADED: b"429",
    Status.BAD_REQUEST: b"400",
    Status.INTERNAL: b"500",
}

#: grpc-timeout units in seconds (hours down to nanoseconds).
_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def is_grpc(fields: list[tuple[bytes, bytes]]) -> bool:
    for name, value in fields:
        if name == b"content-type":
            return value.startswith(b"application/grpc")
    return False


def grpc_timeout(value: bytes) -> float | None:
    """Seconds from a ``grpc-timeout`` value (``100m``, ``5S``: at most 8 digits and a unit)."""
    unit = _UNITS.get(value[-1:])
    digits = value[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


def request_extensions(fields: list[tuple[bytes, bytes]]) -> dict[str, object]:
    """``http_version``, and for gRPC ``grpc`` and the ``timeout`` (s) from grpc-timeout.

    ``timeout`` is the proxy's deadline for the exchange when shorter than the route's.
    """
    extensions: dict[str, object] = {"http_version": "2"}
    for name, value in fields:
        if name == b"content-type":
            if value.startswith(b"application/grpc"):
                extensions["grpc"] = True
        elif name == b"grpc-timeout":
            timeout = grpc_timeout(value)
            if timeout is not None:
                extensions["timeout"] = timeout
    return extensions


class HttpKeys(HeaderKeys):
    """HTTP keys; for gRPC requests ``service`` is ``package.Service`` and ``method`` the RPC.

    For plain HTTP/2 requests ``service`` is the host and ``method`` the HTTP method,
    as for HTTP/1.1, so one route table serves both.
    """

    __slots__ = ()

    def _rpc(self) -> tuple[str, str] | None:
        if not is_grpc(self._headers.fields):
            return None
        path = self.path or ""
        service, _, method = path[1:].partition("/")
        return (service, method) if method else None

    def _compute_service(self) -> str | None:
        rpc = self._rpc()
        return rpc[0] if rpc else self.host

    def _compute_method(self) -> str | None:
        rpc = self._rpc()
        return rpc[1] if rpc else self.get(":method")


def local_reply(request: Headers, status: Status, message: str) -> list[Event]:
    """gRPC: trailers-only with grpc-status; otherwise the HTTP status with a text body."""
    sid = request.stream_id
    if is_grpc(request.fields):
        content_type = next(v for n, v in request.fields if n == b"content-type")
        return [Headers(sid, [
            (b":status", b"200"),
            (b"content-type", content_type),
            (b"grpc-status", str(GRPC_STATUS[status]).encode()),
            # percent-encoded as the spec asks: printable ASCII but '%' stays as is
            (b"grpc-message", quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode()),
        ], True)]
    body = (message + "\n").encode()
    head = [(b":status", _HTTP_STATUS[status]), (b"content-type", b"text/plain"),
            (b"content-length", str(len(body)).encode())]
    if (b":method", b"HEAD") in request.fields:  # RFC 9110 9.3.2: no content
        return [Headers(sid, head, True)]
    return [Headers(sid, head, False), Data(sid, body, True)]
