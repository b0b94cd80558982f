"""Builds a running proxy from a config snapshot and serves it on trio."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Mapping
from typing import Any

import structlog
import trio

from mesh.admin.server import AdminApi
from mesh.cluster import UpstreamCluster
from mesh.config import Config, Listener
from mesh.discovery import EndpointSource
from mesh.net.flush import run_flusher
from mesh.net.listener import bind, serve
from mesh.net.reaper import DeadlineReaper
from mesh.proxy.filters import FilterChain, compile_chain
from mesh.proxy.listener import ListenerRuntime
from mesh.registry import Registry
from mesh.samples import HelloUpstream
from mesh.stats import StatsRegistry

__all__ = ["ProxyRuntime", "StartupError"]

log = structlog.get_logger("mesh")

#: Filters a listener runs when its config names none.
DEFAULT_FILTERS = ("forwarded",)


class StartupError(Exception):
    """The proxy cannot start (a port in use, an unknown codec); says which and why."""


class ProxyRuntime:
    def __init__(self, config: Config, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        self.stats = StatsRegistry()
        self.clusters = {c.name: UpstreamCluster(c) for c in config.clusters}
        self.reaper = DeadlineReaper()
        codecs = {name: registry.codec(name) for name in registry.codecs}
        self.listeners = [
            ListenerRuntime(lc, codecs, self.clusters, self._chain(lc), self.stats,
                            config.logging.access_log, self.reaper)
            for lc in config.listeners
        ]
        self.ready = False

    def _chain(self, listener: Listener) -> FilterChain:
        named: list[tuple[str, Mapping[str, Any]]] = [(f.name, f.config) for f in listener.filters]
        if not named:
            named = [(name, {}) for name in DEFAULT_FILTERS if name in self.registry.filters]
        factories = []
        for name, cfg in named:
            plugin = self.registry.filters.get(name)
            if plugin is None:
                known = ", ".join(sorted(self.registry.filters)) or "none"
                raise StartupError(f"listener {listener.name!r}: no filter named {name!r} "
                                   f"is installed (installed: {known})")
            factories.append((_checked(listener.name, name, plugin.obj), cfg))
        return compile_chain(factories)

    def _sources(self) -> list[tuple[UpstreamCluster, EndpointSource]]:
        """The endpoint source of each discovered cluster, made from its settings."""
        sources = []
        for cluster in self.clusters.values():
            spec = cluster.config.discovery
            if spec is None:
                continue
            plugin = self.registry.discovery.get(spec.source)
            if plugin is None:
                known = ", ".join(sorted(self.registry.discovery)) or "none"
                raise StartupError(f"cluster {cluster.name!r}: no discovery source named "
                                   f"{spec.source!r} is installed (installed: {known})")
            try:
                sources.append((cluster, plugin.obj(spec.config)))
            except (ValueError, TypeError) as exc:
                raise StartupError(f"cluster {cluster.name!r}: discovery {spec.source!r}: {exc}"
                                   ) from None
        return sources

    def _bind(self, what: str, host: str, port: int) -> socket.socket:
        try:
            return bind(host, port)
        except OSError as exc:
            raise StartupError(f"{what}: cannot listen on {host}:{port}: {exc.strerror or exc}. "
                               f"Fix: stop whatever uses the port or pick another address") from None

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        servers = []
        for lr in self.listeners:
            servers.append((self._bind(f"listener {lr.name}", lr.config.host, lr.config.port),
                            lr.handle, lr.name))
        for sample in self.config.samples:
            upstream = HelloUpstream(sample.name, self.registry.codec("http1"))
            servers.append((self._bind(f"sample {sample.name}", sample.host, sample.port),
                            upstream.handle, f"sample:{sample.name}"))
        admin = self.config.admin
        if admin is not None:
            api = AdminApi(self.registry.codec("http1"), lambda: self.config, self.stats,
                           lambda: self.clusters, lambda: self.ready)
            servers.append((self._bind("admin", admin.host, admin.port), api.handle, "admin"))
        try:
            async with trio.open_nursery() as nursery:
                for cluster in self.clusters.values():
                    cluster.nursery = nursery
                for sock, handler, name in servers:
                    nursery.start_soon(serve, sock, handler, name)
                nursery.start_soon(self._stop_on_signal, nursery.cancel_scope)
                nursery.start_soon(self.reaper.run)
                nursery.start_soon(run_flusher)
                for cluster, source in self._sources():
                    nursery.start_soon(_discover, cluster, source)
                self.ready = True
                log.info("started", source=self.config.source,
                         listeners=[f"{lr.name}={lr.config.host}:{lr.config.port}/"
                                    f"{lr.config.protocol}" for lr in self.listeners],
                         admin=f"{admin.host}:{admin.port}" if admin else None)
                task_status.started(self)
        finally:
            for sock, _, _ in servers:
                sock.close()
            for cluster in self.clusters.values():
                cluster.close()

    async def _stop_on_signal(self, scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("stopping", signal=signal.Signals(signum).name)
                scope.cancel()
                return


def _checked(listener: str, name: str, factory: Callable[[Mapping[str, Any]], Any]
             ) -> Callable[[Mapping[str, Any]], Any]:
    """``factory`` whose refusal of its settings names the listener and the filter."""

    def make(config: Mapping[str, Any]) -> Any:
        try:
            return factory(config)
        except (ValueError, TypeError) as exc:
            raise StartupError(f"listener {listener!r}: filter {name!r}: {exc}") from None

    return make


async def _discover(cluster: UpstreamCluster, source: EndpointSource) -> None:
    """Run a cluster's source; on failure keep its last endpoints and start it again."""
    backoff = 0.5
    while True:
        try:
            await source.run(cluster.update_endpoints, cluster.report_discovery)
            return
        except Exception as exc:  # a source must never take the worker down
            kept = len(cluster.endpoints)
            cluster.discovery_state = (f"source failed ({exc}); keeping the {kept} last known "
                                       f"endpoints; retrying in {backoff:g}s")
            log.warning("discovery_failed", cluster=cluster.name, error=str(exc),
                        kept_endpoints=kept, retry_in=backoff)
        await trio.sleep(backoff)
        backoff = min(backoff * 2, 30.0)
