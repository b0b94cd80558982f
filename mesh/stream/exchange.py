"""An exchange: one request and its response as they cross the proxy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mesh.codec import Headers, RequestKeys, Status

if TYPE_CHECKING:
    from mesh.cluster import UpstreamCluster, UpstreamEndpoint
    from mesh.router import CompiledRoute

__all__ = ["Exchange", "status_class"]


class Exchange:
    """State of one request/response pair, shared by filters and the access log.

    Filters may edit ``request.fields`` in the request phase and
    ``response.fields`` in the response phase; ``keys`` are the lazily
    computed routing keys of the request.
    """

    __slots__ = ("listener", "peer", "request", "keys", "route", "cluster", "endpoint",
                 "response", "local_status", "start", "upstream_failure", "metadata")

    def __init__(self, listener: str, peer: tuple[str, int] | None, request: Headers,
                 keys: RequestKeys, start: float) -> None:
        self.listener = listener
        self.peer = peer
        self.request = request
        self.keys = keys
        self.route: CompiledRoute | None = None
        self.cluster: UpstreamCluster | None = None
        self.endpoint: UpstreamEndpoint | None = None
        self.response: Headers | None = None
        self.local_status: Status | None = None
        self.start = start
        self.upstream_failure: str | None = None
        #: free-form per-exchange data for filters
        self.metadata: dict[str, Any] = {}

    @property
    def source_ip(self) -> str | None:
        return self.peer[0] if self.peer else None


def status_class(response: Headers | None) -> str:
    """"2xx"-style class of a response, for stats; RPC codecs set extensions["status_class"]."""
    if response is None:
        return "none"
    fields = response.fields
    if fields and fields[0][0] == b":status":
        return chr(fields[0][1][0]) + "xx"
    value: str = response.extensions.get("status_class", "ok")
    return value
