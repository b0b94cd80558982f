"""A listener at run time: sniffing, routing tables, filters and stats."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import structlog

from mesh.cluster import PingPongPool, UpstreamCluster, UpstreamError
from mesh.cluster.shared import SharedPool
from mesh.codec import Codec, ConnectionOptions, PoolMode
from mesh.config import Listener
from mesh.net.connection import Connection, ConnectionBroken
from mesh.net.reaper import DeadlineReaper
from mesh.net.relay import relay
from mesh.proxy.filters import FilterChain
from mesh.proxy.multiplex import MultiplexSession
from mesh.proxy.session import DownstreamSession
from mesh.router import RouteTable
from mesh.sniff import SniffOutcome, sniff
from mesh.stats import StatsRegistry, TrafficStats
from mesh.stream import Exchange, status_class

__all__ = ["ListenerRuntime"]

log = structlog.get_logger("mesh.proxy")
access_log = structlog.get_logger("mesh.access")


class ListenerRuntime:
    """Everything a connection on one listener needs, built once per config snapshot."""

    def __init__(self, config: Listener, codecs: Mapping[str, Codec],
                 clusters: Mapping[str, UpstreamCluster], filters: FilterChain,
                 stats: StatsRegistry, access_log_enabled: bool, reaper: DeadlineReaper) -> None:
        self.config = config
        self.name = config.name
        self.codecs = codecs
        self.clusters = clusters
        self.filters = filters
        self.routes = RouteTable(config.routes)
        self.options = ConnectionOptions(max_header_size=config.max_header_size,
                                         extra=dict(config.protocol_options))
        self.fixed_codec: Codec | None = None
        if config.protocol not in ("auto", "tcp"):
            self.fixed_codec = codecs[config.protocol]
        self.sniffable: Sequence[Codec] = tuple(codecs.values())
        self.stats: TrafficStats = stats.scope("listener", config.name)
        self.route_stats = {r.name: stats.scope("route", r.name) for r in self.routes.routes}
        self.cluster_stats = {name: stats.scope("cluster", name) for name in clusters}
        self._lane_stats: dict[tuple[str, str], TrafficStats] = {}
        self.access_log = access_log_enabled
        self.reaper = reaper
        self._pools: dict[tuple[str, str], PingPongPool | SharedPool] = {}

    def lane_stats(self, route: str, cluster: str) -> TrafficStats:
        """One stats object the plain lane bumps for this listener, ``route`` and ``cluster``
        at once (mesh/proxy/plain.py); each of the three scopes renders it in."""
        key = (route, cluster)
        stats = self._lane_stats.get(key)
        if stats is None:
            stats = self._lane_stats[key] = TrafficStats("lane", f"{route}/{cluster}")
            for scope in (self.stats, self.route_stats[route], self.cluster_stats[cluster]):
                scope.shares.append(stats)
        return stats

    def upstream_codec(self, downstream: Codec, cluster: UpstreamCluster) -> Codec:
        name = cluster.config.protocol or self.config.upstream_protocol
        return self.codecs[name] if name else downstream

    def pool_for(self, downstream: Codec, cluster: UpstreamCluster) -> PingPongPool | SharedPool:
        """The pool a request from ``downstream`` uses on ``cluster`` (cached: per request)."""
        key = (downstream.name, cluster.name)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = cluster.pool(self.upstream_codec(downstream, cluster),
                                                   self.options)
        return pool

    async def handle(self, conn: Connection) -> None:
        stats = self.stats
        stats.cx_total += 1
        stats.cx_active += 1
        try:
            await self._handle(conn)
        finally:
            stats.cx_active -= 1

    async def _handle(self, conn: Connection) -> None:
        cfg = self.config
        if cfg.protocol == "tcp":
            await self._tcp(conn, b"")
            return
        codec, initial = self.fixed_codec, b""
        if codec is None:
            outcome, codec, initial = await sniff(conn, self.sniffable, cfg.sniff_max_bytes,
                                                  cfg.sniff_timeout)
            if codec is None:
                self._sniff_failed(conn, outcome, initial)
                return
        if codec.pool_mode is PoolMode.PING_PONG:
            await DownstreamSession(self, conn, codec).run(initial)
        else:
            await MultiplexSession(self, conn, codec).run(initial)

    def _sniff_failed(self, conn: Connection, outcome: SniffOutcome, prefix: bytes) -> None:
        if outcome is SniffOutcome.CLOSED and not prefix:
            return  # a port probe or health check: not worth a log line
        self.stats.failures += 1
        log.info("protocol_not_detected", listener=self.name, peer=conn.peer,
                 outcome=outcome.value, first_bytes=prefix[:32].hex())

    async def _tcp(self, conn: Connection, initial: bytes) -> None:
        """L4 pass-through to the listener's single cluster."""
        route = self.routes.routes[0]
        cluster = self.clusters[route.pick_cluster()]
        endpoint = cluster.balancer.pick(conn.peer[0] if conn.peer else None)
        start = time.monotonic()
        try:
            upstream = await cluster.connect(endpoint)
        except UpstreamError as exc:
            self.stats.failures += 1
            log.info("tcp_upstream_failed", listener=self.name, error=exc.reason)
            return
        try:
            sent, received = await relay(conn, upstream, initial, self.config.idle_timeout,
                                         self.reaper)
        except ConnectionBroken:
            sent = received = 0
        finally:
            upstream.close()
        if self.access_log:
            access_log.info("tcp", listener=self.name, peer=_peer(conn.peer),
                            upstream=endpoint.address, bytes_sent=sent, bytes_received=received,
                            duration_ms=round((time.monotonic() - start) * 1000, 3))

    def finish(self, exchange: Exchange) -> None:
        """Count an exchange and write its access log line."""
        elapsed = time.monotonic() - exchange.start
        klass = status_class(exchange.response)
        self.stats.response(klass, elapsed)
        if exchange.route is not None:
            self.route_stats[exchange.route.name].response(klass, elapsed)
        if exchange.cluster is not None:
            cstats = self.cluster_stats[exchange.cluster.name]
            cstats.requests += 1
            cstats.response(klass, elapsed)
            if exchange.upstream_failure:
                cstats.failures += 1
        if exchange.local_status is not None:
            name = exchange.local_status.name
            self.stats.local_replies[name] = self.stats.local_replies.get(name, 0) + 1
        if self.access_log:
            self._log_access(exchange, klass, elapsed)

    def _log_access(self, exchange: Exchange, klass: str, elapsed: float) -> None:
        keys = exchange.keys
        response = exchange.response
        status = None
        if response is not None and response.fields and response.fields[0][0] == b":status":
            status = int(response.fields[0][1])
        self.log_access(
            exchange.peer, keys.method, exchange.route.name if exchange.route else None,
            exchange.cluster.name if exchange.cluster else None,
            exchange.endpoint.address if exchange.endpoint else None, klass, elapsed,
            local_reply=exchange.local_status.name if exchange.local_status else None,
            failure=exchange.upstream_failure, status=status, host=keys.host, path=keys.path,
            service=keys.service)

    def log_access(self, peer: tuple[str, int] | None, method: str | None, route: str | None,
                   cluster: str | None, upstream: str | None, klass: str, elapsed: float, *,
                   local_reply: str | None = None, failure: str | None = None,
                   status: int | None = None, host: str | None = None, path: str | None = None,
                   service: str | None = None) -> None:
        """One access log line (also written by the plain lane, which has no Exchange)."""
        access_log.info(
            "access", listener=self.name, peer=_peer(peer), method=method, host=host, path=path,
            service=service, route=route, cluster=cluster, upstream=upstream, status=status,
            status_class=klass, local_reply=local_reply, failure=failure,
            duration_ms=round(elapsed * 1000, 3),
        )


def _peer(peer: tuple[str, int] | None) -> str | None:
    return f"{peer[0]}:{peer[1]}" if peer else None

