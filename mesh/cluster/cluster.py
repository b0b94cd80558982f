"""A cluster at run time: endpoints, a load balancer and a pool per codec."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from mesh.cluster.balancer import LoadBalancer, make_balancer
from mesh.cluster.endpoint import UpstreamEndpoint
from mesh.cluster.pool import PingPongPool, connect_endpoint
from mesh.cluster.shared import SharedPool
from mesh.codec import Codec, ConnectionOptions, PoolMode, RequestKeys
from mesh.config import Cluster, Endpoint
from mesh.net.connection import Connection

__all__ = ["UpstreamCluster", "hash_value"]


def hash_value(hash_key: str | None, keys: RequestKeys, source_ip: str | None) -> str | None:
    """The request's value for a ``hash_key`` spec ("path", "header:x-user"...)."""
    if hash_key is None:
        return None
    if hash_key == "source_ip":
        return source_ip
    if hash_key.startswith("header:"):
        return keys.get(hash_key[7:])
    value: str | None = getattr(keys, hash_key, None)
    return value


class UpstreamCluster:
    """Runtime state of one configured cluster."""

    def __init__(self, config: Cluster) -> None:
        self.config = config
        self.name = config.name
        health = config.passive_health
        self.endpoints = tuple(
            UpstreamEndpoint(e.host, e.port, e.weight, e.metadata,
                             health.consecutive_failures, health.ejection_time)
            for e in config.endpoints
        )
        self.balancer = make_balancer(config.lb, self.endpoints)
        self.local = self._local_balancer(self.endpoints)
        self.hash_key = config.hash_key
        #: what the discovery source last said (admin /clusters); None for static endpoints
        self.discovery_state: str | None = None if config.discovery is None else "waiting"
        self._pools: dict[str, PingPongPool | SharedPool] = {}
        #: where shared connections run their reader/writer tasks; set by the runtime
        self.nursery: trio.Nursery | None = None

    def _local_balancer(self, endpoints: Sequence[UpstreamEndpoint]) -> LoadBalancer | None:
        """The balancer over the endpoints of ``local_zone``, if set and any are there."""
        zone = self.config.local_zone
        if zone is None:
            return None
        local = [e for e in endpoints if e.metadata.get("zone") == zone]
        return make_balancer(self.config.lb, local) if local else None

    def pick(self, keys: RequestKeys, source_ip: str | None,
             route_hash_key: str | None = None) -> UpstreamEndpoint:
        spec = route_hash_key or self.hash_key
        value = None if spec is None else hash_value(spec, keys, source_ip)
        local = self.local
        if local is not None:
            endpoint = local.pick(value)
            if endpoint.healthy():
                return endpoint  # else every local one is ejected: any zone will do
        return self.balancer.pick(value)

    def pool(self, codec: Codec, options: ConnectionOptions) -> PingPongPool | SharedPool:
        """The pool for ``codec`` on this cluster, made on first use."""
        pool = self._pools.get(codec.name)
        if pool is None:
            pool = self._pools[codec.name] = self._new_pool(codec, options)
        return pool

    def _new_pool(self, codec: Codec, options: ConnectionOptions) -> PingPongPool | SharedPool:
        c = self.config
        if codec.pool_mode is PoolMode.PING_PONG:
            return PingPongPool(codec, options, c.connect_timeout, c.idle_timeout,
                                c.max_connections, c.max_requests_per_connection)
        if self.nursery is None:
            raise RuntimeError("cluster used before the runtime gave it a nursery")
        return SharedPool(codec, options, self.nursery, c.connect_timeout, c.max_connections,
                          c.max_concurrent_streams)

    async def connect(self, endpoint: UpstreamEndpoint) -> Connection:
        """A new unpooled connection (L4 pass-through); raises UpstreamError."""
        conn = await connect_endpoint(endpoint, self.config.connect_timeout)
        endpoint.record_success()
        return conn

    def update_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """Swap in a new endpoint set at once (a discovery update).

        An endpoint still present keeps its object, so its health, counters and pooled
        connections carry over; requests in flight hold their endpoint and finish there.
        """
        health = self.config.passive_health
        known = {(e.host, e.port): e for e in self.endpoints}
        fresh = []
        for spec in endpoints:
            current = known.get((spec.host, spec.port))
            if (current is not None and current.weight == spec.weight
                    and dict(current.metadata) == dict(spec.metadata)):
                fresh.append(current)
            else:
                fresh.append(UpstreamEndpoint(spec.host, spec.port, spec.weight, spec.metadata,
                                              health.consecutive_failures, health.ejection_time))
        balancer = make_balancer(self.config.lb, fresh) if fresh else self.balancer
        local = self._local_balancer(fresh) if fresh else self.local
        # one assignment each, no await between: a request sees the old set or the new one
        self.endpoints, self.balancer, self.local = tuple(fresh), balancer, local
        self.discovery_state = f"{len(fresh)} endpoints"

    def report_discovery(self, state: str) -> None:
        """A discovery source's word on its registry, for /clusters."""
        self.discovery_state = f"{state}; {len(self.endpoints)} endpoints in use"

    def describe(self) -> dict[str, Any]:
        """State for the admin ``/clusters`` page."""
        return {
            "name": self.name,
            "lb": self.config.lb,
            "discovery": self.discovery_state,
            "endpoints": [
                {"address": e.address, "weight": e.weight, "healthy": e.healthy(),
                 "active_requests": e.active_requests, "open_connections": e.open_connections,
                 "failures": e.total_failures, "metadata": dict(e.metadata)}
                for e in self.endpoints
            ],
            "pools": {name: {"open": p.open_connections, "connects": p.connects,
                             "connect_failures": p.connect_failures}
                      for name, p in self._pools.items()},
        }

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
