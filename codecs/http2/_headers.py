"""Header fields on their way into HTTP/2: pseudo-fields first, nothing connection-specific.

Fields may come from any codec (an HTTP/1.1 request bridged to an HTTP/2 upstream), so
what RFC 9113 8.2.2 forbids is dropped here: the connection-specific fields, ``te`` other
than ``trailers``, and ``host`` once it became ``:authority``.
"""

from __future__ import annotations

__all__ = ["CONNECTION_SPECIFIC", "request_fields", "response_fields"]

Fields = list[tuple[bytes, bytes]]

CONNECTION_SPECIFIC = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade",
    b"http2-settings",
})
_DROPPED_REQUEST = CONNECTION_SPECIFIC | {b"te", b"host"}


def request_fields(fields: Fields) -> Fields:
    """A request head for HTTP/2: ``:method :scheme :authority :path``, then the rest."""
    pseudo: dict[bytes, bytes] = {}
    regular: Fields = []
    host = None
    for field in fields:
        name = field[0]
        if name[:1] == b":":
            pseudo[name] = field[1]
        elif name in _DROPPED_REQUEST:
            if name == b"host":
                host = field[1]
            elif name == b"te" and field[1].lower() == b"trailers":
                regular.append(field)
        else:
            regular.append(field)
    method = pseudo.get(b":method", b"GET")
    out: Fields = [(b":method", method)]
    if method != b"CONNECT":
        out.append((b":scheme", pseudo.get(b":scheme") or b"http"))
    authority = pseudo.get(b":authority") or host
    if authority:
        out.append((b":authority", authority))
    if method != b"CONNECT":
        out.append((b":path", pseudo.get(b":path") or b"/"))
    if b":protocol" in pseudo:
        out.append((b":protocol", pseudo[b":protocol"]))
    out += regular
    return out


def response_fields(fields: Fields, trailers: bool = False) -> Fields:
    """A response head (``:status`` first) or trailers (no pseudo-fields) for HTTP/2."""
    for field in fields:
        if field[0] in CONNECTION_SPECIFIC or (trailers and field[0][:1] == b":"):
            break
    else:
        return fields  # the usual case: nothing to drop, no copy
    return [f for f in fields
            if f[0] not in CONNECTION_SPECIFIC and not (trailers and f[0][:1] == b":")]
