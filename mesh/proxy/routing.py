"""The request phase shared by every session kind: filters, then the route table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesh.codec import Status
from mesh.stream import Exchange

if TYPE_CHECKING:
    from mesh.proxy.listener import ListenerRuntime

__all__ = ["route_exchange"]


def _rewrite_prefix(exchange: Exchange, path_prefix: str, rewrite: str) -> None:
    """``/orders/v1/x?y`` with prefix ``/orders/`` and rewrite ``/`` goes on as ``/v1/x?y``."""
    prefix = path_prefix.encode()
    fields = exchange.request.fields
    for i, (name, value) in enumerate(fields):
        if name == b":path":
            if value.startswith(prefix):
                fields[i] = (b":path", rewrite.encode() + value[len(prefix):])
            return


def route_exchange(lr: ListenerRuntime, exchange: Exchange) -> Status | None:
    """Run request filters and pick route and cluster; a Status means: reply locally."""
    for hook in lr.filters.request:
        status = hook(exchange)
        if status is not None:
            return status
    route = lr.routes.match(exchange.keys)
    if route is None:
        exchange.upstream_failure = "no route matched"
        return Status.NO_ROUTE
    exchange.route = route
    lr.route_stats[route.name].requests += 1
    if route.prefix_rewrite is not None:
        _rewrite_prefix(exchange, route.path_prefix, route.prefix_rewrite)
    name = route.pick_cluster()
    cluster = lr.clusters.get(name)
    if cluster is None or not cluster.endpoints:
        exchange.upstream_failure = ("cluster has no endpoints" if cluster is not None else
                                     f"cluster {name!r} is not known (yet)")  # xDS: not sent yet
        return Status.UNAVAILABLE
    exchange.cluster = cluster
    return None
