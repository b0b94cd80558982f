"""Spring Cloud Gateway's discovery locator: a route and a cluster for every registered service.

A listener with ``service_routes: {source, config, refresh, lower_case, local_zone}`` gets,
for every service S its registry lists (mesh/discovery/catalog.py), after its own routes:

- a cluster ``<listener>/<S>`` whose endpoints come from the same registry
  (``discovery: {source, config: {...config, <the source's service key>: S}}``), with
  ``local_zone`` when given;
- a route ``S``: ``match: {path: {prefix: /S/}}, prefix_rewrite: /`` to that cluster, and a
  route ``S:exact`` for the path ``/S`` itself (with or without a query), which goes on as
  ``/``: Spring's ``Path=/S/**`` with ``StripPrefix=1``. The path is S in lower case with
  ``lower_case: true`` (Spring's ``lowerCaseServiceId``).

The list is read again every ``refresh``; when it changed, the whole config (the file's part
plus the routes and clusters of every listed service) is swapped in with ``ProxyRuntime.apply``,
which keeps an unchanged cluster whole (its endpoints, health and pools): the generated
settings of a service are the same every time. A registry that cannot be asked keeps the
current routes (logged once per outage, retried after 1 s, doubling up to ``refresh``); an
empty list after a non-empty one is kept too while the source's ``empty_protection`` is on (its
default); a malformed entry, or a service whose name cannot be a path segment or whose route or
cluster name is taken, is skipped and logged once.

A SIGHUP reload goes through :meth:`ServiceRouteLocator.reload`: the file's new config gets the
routes of the services listed so far; a listener whose ``service_routes`` changed (or is new)
lists its services again (meanwhile, the last list of the same registry and settings stands).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
import trio

from mesh.config import Config, Listener, parse
from mesh.config._dump import thaw
from mesh.config._listeners import SERVICE_KEYS
from mesh.config._model import ServiceRoutes
from mesh.config._values import format_address
from mesh.discovery._http import MAX_RETRY, Backoff
from mesh.discovery.catalog import Catalog, Skip, open_catalog
from mesh.listener_watches import ListenerWatches

__all__ = ["ServiceRouteLocator", "expand", "generate"]

log = structlog.get_logger("mesh.service_routes")

#: a service name that is one path segment as it is (RFC 3986 ``pchar`` without ``%``)
_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")
#: what a discovery source plugin is: a factory taking its settings
SourceFactory = Callable[[Mapping[str, Any]], Any]


def generate(listener: Listener, services: Sequence[str], taken: set[str],
             skip: Skip) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(routes, clusters) in the config file's shape for ``services`` on ``listener``.

    ``taken`` holds the cluster names already in use (a generated one is added to it). The
    same services give equal data every time, so the clusters parsed from it compare equal.
    """
    settings = listener.service_routes
    assert settings is not None
    key = SERVICE_KEYS[settings.source][0]
    own = {route.name for route in listener.routes}
    paths: dict[str, str] = {}
    routes: list[dict[str, Any]] = []
    clusters: list[dict[str, Any]] = []
    for service in services:
        path = service.lower() if settings.lower_case else service
        cluster = f"{listener.name}/{service}"
        names = (service, f"{service}:exact")
        if not _SEGMENT.fullmatch(service) or service in (".", ".."):
            skip(service, "the name cannot be a path segment (letters, digits and "
                          "-._~!$&'()*+,;=:@ only)")
        elif path in paths:
            skip(service, f"its path /{path}/ is already the route of service {paths[path]!r}")
        elif cluster in taken:
            skip(service, f"the config already has a cluster named {cluster!r}")
        elif own.intersection(names):
            skip(service, f"listener {listener.name!r} already has a route named "
                          f"{sorted(own.intersection(names))[0]!r}")
        else:
            paths[path] = service
            taken.add(cluster)
            spec: dict[str, Any] = {"name": cluster, "discovery": {
                "source": settings.source, "config": {**thaw(settings.config), key: service}}}
            if settings.local_zone is not None:
                spec["local_zone"] = settings.local_zone
            clusters.append(spec)
            exact = re.escape(f"/{path}") + r"(\?.*)?"
            routes += [
                {"name": service, "match": {"path": {"prefix": f"/{path}/"}},
                 "prefix_rewrite": "/", "cluster": cluster},
                # the path itself: the prefix (for the rewrite), and nothing after it but a query
                {"name": names[1], "match": {"path": {"prefix": f"/{path}"},
                                             "headers": [{"name": ":path", "regex": exact}]},
                 "prefix_rewrite": "/", "cluster": cluster},
            ]
    return routes, clusters


def expand(config: Config, services: Mapping[str, Sequence[str]],
           skip: Callable[[str], Skip]) -> Config:
    """``config`` with the routes and clusters of ``services`` (listener name -> service names;
    ``skip(listener)`` takes the services left out).

    The generated part is parsed on its own and joined to ``config`` as it is (no round trip of
    the file's part through ``dump``, which hides secrets).
    """
    taken = {cluster.name for cluster in config.clusters}
    listeners: list[dict[str, Any]] = []
    clusters: list[dict[str, Any]] = []
    for listener in config.listeners:
        names = services.get(listener.name)
        if listener.service_routes is None or not names:
            continue
        routes, made = generate(listener, names, taken, skip(listener.name))
        if routes:
            listeners.append({"name": listener.name, "protocol": listener.protocol,
                              "address": format_address(listener.host, listener.port),
                              "routes": routes})
            clusters += made
    if not listeners:
        return config
    source = f"{config.source} + service routes"
    made_config = parse({"listeners": listeners, "clusters": clusters, "admin": None}, source)
    extra = {listener.name: listener.routes for listener in made_config.listeners}
    return dataclasses.replace(
        config, source=source, clusters=config.clusters + made_config.clusters,
        listeners=tuple(dataclasses.replace(listener, routes=listener.routes + extra[listener.name])
                        if listener.name in extra else listener for listener in config.listeners))


class _Watch:
    """One listener's ``service_routes``: its catalog, and the services it listed last."""

    def __init__(self, listener: str, settings: ServiceRoutes, catalog: Catalog) -> None:
        self.listener, self.settings, self.catalog = listener, settings, catalog
        #: the services listed last, sorted; None until the registry first answered
        self.services: tuple[str, ...] | None = None
        self.failing = False
        self.emptied = False
        self.apply_error: str | None = None
        self.scope = trio.CancelScope()
        self._skipped: set[tuple[str, str]] = set()
        protection = settings.config.get("empty_protection", True)
        self.empty_protection = protection if isinstance(protection, bool) else True

    def skip(self, entry: Any, reason: str) -> None:
        """Log a left-out entry once (per entry and reason)."""
        key = (repr(entry)[:500], reason)
        if key in self._skipped:
            return
        if len(self._skipped) >= 1000:
            self._skipped.clear()
        self._skipped.add(key)
        log.warning("bad_registry_entry", listener=self.listener, registry=self.catalog.label,
                    entry=key[0], error=reason, action="skipped")


class ServiceRouteLocator(ListenerWatches[_Watch]):
    """Keeps the service routes of a runtime's listeners in step with their registries.

    ``apply`` swaps a whole config in (``ProxyRuntime.apply``, or the ``reload`` of the next
    dynamic part, e.g. mesh/nacos_routes.py's, which adds its own); ``sources`` are the installed
    discovery sources, to check the generated clusters' settings when the locator is made.
    Raises ``ValueError`` naming the listener when a ``service_routes`` setting is refused.
    """

    def __init__(self, config: Config, apply: Callable[[Config], None],
                 sources: Mapping[str, SourceFactory] | None = None) -> None:
        self.sources = sources
        super().__init__(config, apply)

    # -- settings -------------------------------------------------------------------------------

    def _watches(self, config: Config, current: Mapping[str, _Watch]) -> dict[str, _Watch]:
        """A watch per listener with service_routes; an unchanged one is kept (with its list)."""
        watches: dict[str, _Watch] = {}
        for listener in config.listeners:
            settings = listener.service_routes
            if settings is None:
                continue
            old = current.get(listener.name)
            if old is not None and old.settings == settings:
                watches[listener.name] = old
                continue
            try:
                catalog = open_catalog(settings.source, thaw(settings.config))
                self._check_source(settings)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"listener {listener.name!r}: service_routes "
                                 f"{settings.source!r}: {exc}") from None
            watch = watches[listener.name] = _Watch(listener.name, settings, catalog)
            if old is not None and (old.settings.source, old.settings.config) == (
                    settings.source, settings.config):
                watch.services = old.services  # the same registry: its list stands meanwhile
        return watches

    def _check_source(self, settings: ServiceRoutes) -> None:
        """The installed source accepts the settings a generated cluster will have."""
        if self.sources is None:
            return
        factory = self.sources.get(settings.source)
        if factory is None:
            known = ", ".join(sorted(self.sources)) or "none"
            raise ValueError(f"no discovery source named {settings.source!r} is installed "
                             f"(installed: {known})")
        factory({**thaw(settings.config), SERVICE_KEYS[settings.source][0]: "service-routes"})

    def expand(self, config: Config, watches: Mapping[str, _Watch] | None = None) -> Config:
        """``config`` with the routes of the services its listeners' registries listed."""
        watches = self.watches if watches is None else watches
        services = {name: watch.services for name, watch in watches.items() if watch.services}
        return expand(config, services, lambda name: watches[name].skip)

    # -- running --------------------------------------------------------------------------------

    async def _follow(self, watch: _Watch) -> None:
        refresh = watch.settings.refresh
        backoff = Backoff(min(1.0, refresh), min(refresh, MAX_RETRY))
        while True:
            try:
                names = await watch.catalog.services(watch.skip)
            except Exception as exc:  # HttpError, or a bug: never take the proxy down
                wait = backoff.next()
                if not watch.failing:
                    log.warning("service_catalog_failed", listener=watch.listener,
                                registry=watch.catalog.label, error=str(exc),
                                kept_services=len(watch.services or ()), retry_in=wait)
                watch.failing = True
            else:
                backoff.reset()
                if watch.failing:
                    log.info("service_catalog_recovered", listener=watch.listener,
                             registry=watch.catalog.label, services=len(names))
                watch.failing = False
                self._listed(watch, names)
                wait = refresh
            await trio.sleep(wait)

    def _listed(self, watch: _Watch, names: Sequence[str]) -> None:
        services = tuple(sorted(set(names)))
        if not services and watch.services and watch.empty_protection:
            if not watch.emptied:
                log.warning("service_catalog_empty", listener=watch.listener,
                            registry=watch.catalog.label, kept_services=len(watch.services),
                            reason="empty protection: the registry lists no service")
            watch.emptied = True
            return
        watch.emptied = False
        if services == (watch.services or ()):  # (a first empty list swaps nothing in either)
            watch.services = services
            return
        previous, watch.services = watch.services, services
        try:
            self._apply(self.expand(self.file))
        except Exception as exc:  # StartupError, ConfigError: the running config stays
            watch.services = previous
            if str(exc) != watch.apply_error:
                log.error("service_routes_failed", listener=watch.listener,
                          registry=watch.catalog.label, error=str(exc),
                          kept="the running routes")
            watch.apply_error = str(exc)
            return
        watch.apply_error = None
        before = set(previous or ())
        log.info("service_routes", listener=watch.listener, registry=watch.catalog.label,
                 services=len(services), added=sorted(set(services) - before),
                 removed=sorted(before - set(services)))
