"""The request phase shared by every session kind: filters, then the route table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesh.codec import Status
from mesh.stream import Exchange

if TYPE_CHECKING:
    from mesh.proxy.listener import ListenerRuntime

__all__ = ["route_exchange"]


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
    cluster = lr.clusters.get(route.pick_cluster())
    if cluster is None or not cluster.endpoints:
        exchange.upstream_failure = "cluster has no endpoints"
        return Status.UNAVAILABLE
    exchange.cluster = cluster
    return None
