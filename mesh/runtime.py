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
from mesh.nacos_routes import NacosRouteLocator
from mesh.net.connection import Connection
from mesh.net.flush import run_flusher
from mesh.net.listener import bind, serve
from mesh.net.poller import run_poller
from mesh.net.reaper import DeadlineReaper
from mesh.proxy.filters import FilterChain, compile_chain
from mesh.proxy.listener import ListenerRuntime
from mesh.registry import Registry
from mesh.samples import HelloUpstream
from mesh.service_routes import ServiceRouteLocator
from mesh.stats import StatsRegistry

__all__ = ["ProxyRuntime", "StartupError"]

log = structlog.get_logger("mesh")

#: Filters a listener runs when its config names none.
DEFAULT_FILTERS = ("forwarded",)


class StartupError(Exception):
    """The proxy cannot start (a port in use, an unknown codec); says which and why."""


class _ListenerSlot:
    """A bound listener: new connections go to the ListenerRuntime it holds now.

    A config swap replaces ``runtime``; connections already open keep the one they began with.
    """

    __slots__ = ("runtime", "sock", "scope")

    def __init__(self, runtime: ListenerRuntime, sock: socket.socket) -> None:
        self.runtime = runtime
        self.sock = sock
        self.scope = trio.CancelScope()

    async def handle(self, conn: Connection) -> None:
        await self.runtime.handle(conn)

    @property
    def address(self) -> tuple[str, int]:
        return self.runtime.config.host, self.runtime.config.port


class ProxyRuntime:
    def __init__(self, config: Config, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        self.stats = StatsRegistry()
        self.clusters = {c.name: UpstreamCluster(c) for c in config.clusters}
        self.reaper = DeadlineReaper()
        self._codecs = {name: registry.codec(name) for name in registry.codecs}
        self.listeners = [self._listener(lc, config) for lc in config.listeners]
        self.ready = False
        self._slots: dict[str, _ListenerSlot] = {}
        self._discovering: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        #: how many config snapshots were swapped in after the first (admin, tests)
        self.swaps = 0
        #: (file, loader): SIGHUP reads the file again and applies it (``mesh run FILE``)
        self.reload_from: tuple[str, Callable[[str], Config]] | None = None
        #: the xDS client when the config names a management server
        self.xds: Any = None
        #: the dynamic parts of the config (made by run()), chained: each one's ``reload(config)``
        #: takes the config of the one before (the file's, for the first), adds its routes and
        #: clusters, and hands the result on to the next (the last to :meth:`apply`); when its
        #: own part changes, it hands on its last input again with the new part. A SIGHUP
        #: reload goes through the first (``locator``).
        self.parts: list[ServiceRouteLocator | NacosRouteLocator] = []
        #: the first part: routes and clusters of the listeners' ``service_routes``
        self.locator: ServiceRouteLocator | None = None

    def _listener(self, lc: Listener, config: Config) -> ListenerRuntime:
        return ListenerRuntime(lc, self._codecs, self.clusters, self._chain(lc), self.stats,
                               config.logging.access_log, self.reaper)

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

    def _source(self, cluster: UpstreamCluster) -> EndpointSource | None:
        """The endpoint source of a discovered cluster, made from its settings."""
        spec = cluster.config.discovery
        if spec is None:
            return None
        plugin = self.registry.discovery.get(spec.source)
        if plugin is None:
            known = ", ".join(sorted(self.registry.discovery)) or "none"
            raise StartupError(f"cluster {cluster.name!r}: no discovery source named "
                               f"{spec.source!r} is installed (installed: {known})")
        try:
            source: EndpointSource = plugin.obj(spec.config)
        except (ValueError, TypeError) as exc:
            raise StartupError(f"cluster {cluster.name!r}: discovery {spec.source!r}: {exc}"
                               ) from None
        return source

    def _bind(self, what: str, host: str, port: int) -> socket.socket:
        try:
            return bind(host, port)
        except OSError as exc:
            raise StartupError(f"{what}: cannot listen on {host}:{port}: {exc.strerror or exc}. "
                               f"Fix: stop whatever uses the port or pick another address") from None

    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        sources = [(c, self._source(c)) for c in self.clusters.values()]
        try:
            nacos = NacosRouteLocator(self.config, self.apply)
            self.locator = ServiceRouteLocator(self.config, nacos.reload, {
                name: plugin.obj for name, plugin in self.registry.discovery.items()})
            self.parts = [self.locator, nacos]
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        for lr in self.listeners:
            sock = self._bind(f"listener {lr.name}", lr.config.host, lr.config.port)
            self._slots[lr.name] = _ListenerSlot(lr, sock)
        servers = []
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
                self._nursery = nursery
                nursery.start_soon(run_poller)
                for cluster in self.clusters.values():
                    cluster.nursery = nursery
                for name, slot in self._slots.items():
                    nursery.start_soon(self._serve_slot, name, slot)
                for sock, handler, name in servers:
                    nursery.start_soon(serve, sock, handler, name)
                nursery.start_soon(self._stop_on_signal, nursery.cancel_scope)
                nursery.start_soon(self.reaper.run)
                nursery.start_soon(run_flusher)
                if self.reload_from is not None:
                    nursery.start_soon(self.reload_on_hangup, *self.reload_from)
                if self.config.xds is not None:
                    from mesh.xds import XdsConfigClient

                    self.xds = XdsConfigClient(
                        self.config, self.apply, set(self.registry.codecs) | {"auto", "tcp"},
                        set(self.registry.filters))
                    nursery.start_soon(self.xds.run)
                for cluster, source in sources:
                    if source is not None:
                        self._start_discovery(cluster, source)
                for part in self.parts:
                    nursery.start_soon(part.run)
                self.ready = True
                log.info("started", source=self.config.source,
                         listeners=[f"{lr.name}={lr.config.host}:{lr.config.port}/"
                                    f"{lr.config.protocol}" for lr in self.listeners],
                         admin=f"{admin.host}:{admin.port}" if admin else None)
                task_status.started(self)
        finally:
            self._nursery = None
            for slot in self._slots.values():
                slot.sock.close()
            for sock, _, _ in servers:
                sock.close()
            for cluster in self.clusters.values():
                cluster.close()

    async def _serve_slot(self, name: str, slot: _ListenerSlot) -> None:
        await serve(slot.sock, slot.handle, name, slot.scope)

    def _start_discovery(self, cluster: UpstreamCluster, source: EndpointSource) -> None:
        assert self._nursery is not None
        scope = self._discovering[cluster.name] = trio.CancelScope()

        async def discover() -> None:
            with scope:
                await _discover(cluster, source)

        self._nursery.start_soon(discover)

    # -- config swaps ---------------------------------------------------------------

    def apply(self, config: Config) -> None:
        """Swap in a new config snapshot while running (SIGHUP reload, xDS).

        New connections use the new listeners, routes and clusters at once; connections
        already open finish on the snapshot they began with. A cluster whose settings did
        not change is kept whole (its endpoints, health and pooled connections); a changed
        or removed one stops discovering, and its pools close after ``_RETIRE_AFTER``.
        Raises StartupError (nothing changed) when a new listener cannot bind or a new
        cluster's discovery settings are refused.
        """
        nursery = self._nursery
        if nursery is None:
            raise RuntimeError("apply() before run() started")
        clusters: dict[str, UpstreamCluster] = {}
        fresh: list[tuple[UpstreamCluster, EndpointSource | None]] = []
        for spec in config.clusters:
            old = self.clusters.get(spec.name)
            if old is not None and old.config == spec:
                clusters[spec.name] = old
                continue
            cluster = UpstreamCluster(spec)
            cluster.nursery = nursery
            clusters[spec.name] = cluster
            fresh.append((cluster, self._source(cluster)))
        previous_clusters, self.clusters = self.clusters, clusters
        try:
            listeners = [self._listener(lc, config) for lc in config.listeners]
            sockets = self._bind_new(listeners)
        except Exception:
            self.clusters = previous_clusters
            raise
        for name, slot in list(self._slots.items()):
            if name not in {lr.name for lr in listeners}:  # removed: stop accepting
                slot.scope.cancel()  # serve() closes the socket; open connections go on
                del self._slots[name]
        for lr in listeners:
            current = self._slots.get(lr.name)
            if current is not None and current.address == (lr.config.host, lr.config.port):
                current.runtime = lr
                continue
            if current is not None:  # same name, new address
                current.scope.cancel()
            slot = self._slots[lr.name] = _ListenerSlot(lr, sockets[lr.name])
            nursery.start_soon(self._serve_slot, lr.name, slot)
        for name, old in previous_clusters.items():
            if clusters.get(name) is not old:
                scope = self._discovering.pop(name, None)
                if scope is not None:
                    scope.cancel()
                nursery.start_soon(_retire, old)
        for cluster, source in fresh:
            if source is not None:
                self._start_discovery(cluster, source)
        self.config, self.listeners = config, listeners
        self.swaps += 1
        log.info("config_applied", source=config.source, swap=self.swaps,
                 listeners=[lr.name for lr in listeners], clusters=sorted(clusters))

    def _bind_new(self, listeners: list[ListenerRuntime]) -> dict[str, socket.socket]:
        """Sockets for the listeners that are new or moved; all or none."""
        sockets: dict[str, socket.socket] = {}
        try:
            for lr in listeners:
                slot = self._slots.get(lr.name)
                if slot is None or slot.address != (lr.config.host, lr.config.port):
                    sockets[lr.name] = self._bind(f"listener {lr.name}", lr.config.host,
                                                  lr.config.port)
        except StartupError:
            for sock in sockets.values():
                sock.close()
            raise
        return sockets

    async def reload_on_hangup(self, path: str, load: Callable[[str], Config]) -> None:
        """SIGHUP: read ``path`` again and apply it; a bad file is logged and changes nothing."""
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                try:
                    if self.locator is not None:  # through the dynamic parts
                        self.locator.reload(load(path))
                    else:
                        self.apply(load(path))
                except (StartupError, ValueError) as exc:
                    log.error("reload_failed", source=path, error=str(exc),
                              kept="the running config")

    async def _stop_on_signal(self, scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("stopping", signal=signal.Signals(signum).name)
                scope.cancel()
                return


#: How long a cluster that left the config keeps its pools, for the exchanges still on them.
_RETIRE_AFTER = 60.0


async def _retire(cluster: UpstreamCluster) -> None:
    await trio.sleep(_RETIRE_AFTER)
    cluster.close()


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
