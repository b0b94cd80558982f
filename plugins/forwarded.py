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
    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self._proto = str((config or {}).get("proto", "http")).encode()

    def on_request(self, exchange: Exchange) -> Status | None:
        fields = exchange.request.fields
        if not fields or fields[0][0] != b":method" or exchange.peer is None:
            return None  # not an HTTP request
        peer = exchange.peer[0].encode()
        for i, (name, value) in enumerate(fields):
            if name == b"x-forwarded-for":
                fields[i] = (name, value + b", " + peer)
                break
        else:
            fields.append((b"x-forwarded-for", peer))
        if not any(name == b"x-forwarded-proto" for name, _ in fields):
            fields.append((b"x-forwarded-proto", self._proto))
        return None
