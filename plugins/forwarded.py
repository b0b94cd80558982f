"""The ``forwarded`` filter: x-forwarded-for / x-forwarded-proto on HTTP requests.

As Envoy with ``use_remote_address``: the peer's address is appended to any
x-forwarded-for the client sent, and x-forwarded-proto is set when absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh.codec import Status
from mesh.stream import Exchange

__all__ = ["ForwardedFilter"]


class ForwardedFilter:
    #: x-forwarded-* are HTTP headers; other codecs' exchanges pass untouched
    protocols = frozenset({"http1", "http2"})

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self._proto = str((config or {}).get("proto", "http")).encode()

    def on_request(self, exchange: Exchange) -> Status | None:
        fields = exchange.request.fields
        peer = exchange.peer
        if peer is None or not fields or fields[0][0] != b":method":
            return None  # not an HTTP request
        xff = proto = -1
        for i, (name, _) in enumerate(fields):
            if name[0] == 120:  # b"x": skip the scan of every other header name
                if name == b"x-forwarded-for":
                    xff = i
                elif name == b"x-forwarded-proto":
                    proto = i
        address = peer[0].encode()
        if xff < 0:
            fields.append((b"x-forwarded-for", address))
        else:
            fields[xff] = (b"x-forwarded-for", fields[xff][1] + b", " + address)
        if proto < 0:
            fields.append((b"x-forwarded-proto", self._proto))
        return None
