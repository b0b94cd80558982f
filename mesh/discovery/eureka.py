"""Instances of one Eureka application, fetched the way Netflix's DiscoveryClient fetches them.

A full fetch (``GET {url}/apps``) first, then a delta (``GET {url}/apps/delta``) every
``refresh`` (Eureka's ``registryFetchIntervalSeconds``, 30 s), both as JSON (``Accept:
application/json``). Each delta instance is applied by its ``actionType`` (``ADDED`` and
``MODIFIED`` replace the instance of that id, ``DELETED`` removes it) to a local copy of the
*whole* registry; then the local copy's reconcile hash (``UP_2_DOWN_1_``-style: every status with
its instance count, statuses in order) must equal the delta's ``apps__hashcode``, else the delta
missed something and a full fetch starts over, as the DiscoveryClient does. A delta that cannot
be had (404, 403: a server with deltas off) is a full fetch too.

Settings (cluster ``discovery: {source: eureka, config: {...}}``): ``url`` (required, the
``serviceUrl`` as Spring writes it: ``http://host:8761/eureka/``, comma-separated for several,
``user:password@`` for basic auth), ``app`` (the application name) or ``vip_address``,
``refresh`` (``30s``), ``secure_port`` (``false``), ``prefer_ip_address`` (``true``),
``timeout`` (``5s``), ``retry`` (``1s``), ``empty_protection`` (``true``).

Used: instances with status ``UP``; the host is ``ipAddr`` (``hostName`` with
``prefer_ip_address: false``); the port is ``port.$`` when ``port.@enabled``, or
``securePort.$`` when ``secure_port: true`` and ``securePort.@enabled``; the metadata map
(without Eureka's ``@class`` markers) plus ``zone`` (metadata ``zone``, else the data-center
info's ``availability-zone``) and ``eureka.instance_id``. Eureka has no weights: weight 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import structlog
import trio

from mesh.config import Endpoint
from mesh.discovery import Publish, Report
from mesh.discovery._http import Backoff, HttpError, Keeper, Servers, Settings, parse_servers

__all__ = ["EurekaSource", "Registry", "reconcile_hash"]

log = structlog.get_logger("mesh.discovery")

_SETTINGS = ("url", "app", "vip_address", "refresh", "secure_port", "prefer_ip_address",
             "timeout", "retry", "empty_protection")
_JSON = {"Accept": "application/json"}

#: the whole registry as the client holds it: application name -> instance id -> instance
Registry = dict[str, dict[str, Mapping[str, Any]]]


class BadInstance(ValueError):
    """An instance that cannot be an endpoint; the message says why."""


def _as_list(value: Any) -> list[Any]:
    """Eureka's JSON writes a one-element list as the element itself (XStream codec): both."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _applications(answer: Any) -> tuple[Mapping[str, Any], list[Any]]:
    """(the ``applications`` object, its application list) of a /apps or /apps/delta answer."""
    apps = answer.get("applications") if isinstance(answer, Mapping) else None
    if not isinstance(apps, Mapping):
        raise HttpError(f"not an applications answer: {str(answer)[:120]}")
    return apps, _as_list(apps.get("application"))


def instance_id(instance: Mapping[str, Any]) -> str | None:
    """``instanceId``, else ``hostName`` (as InstanceInfo.getId())."""
    for key in ("instanceId", "hostName"):
        value = instance.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _instances(application: Any) -> Iterator[tuple[str, Any]]:
    """(application name, instance) pairs; an application without a name is named by its
    instances' ``app``."""
    if not isinstance(application, Mapping):
        yield "", application
        return
    name = application.get("name")
    for instance in _as_list(application.get("instance")):
        app = name if isinstance(name, str) and name else (
            instance.get("app") if isinstance(instance, Mapping) else None)
        yield (app.upper() if isinstance(app, str) else ""), instance


def reconcile_hash(registry: Registry) -> str:
    """Eureka's ``apps__hashcode`` of a registry: ``STATUS_count_`` per status, in order."""
    counts = Counter(str(instance.get("status", "UNKNOWN"))
                     for instances in registry.values() for instance in instances.values())
    return "".join(f"{status}_{count}_" for status, count in sorted(counts.items()))


def _port(value: Any) -> tuple[int | None, bool]:
    """(number, enabled) of a ``port``/``securePort`` object: ``{"$": 8080, "@enabled": "true"}``."""
    if not isinstance(value, Mapping):
        return None, False
    number = value.get("$")
    if isinstance(number, str) and number.isdigit():
        number = int(number)
    enabled = value.get("@enabled", "false")
    on = enabled is True or (isinstance(enabled, str) and enabled.lower() == "true")
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
        return None, on
    return number, on


class EurekaSource:
    def __init__(self, config: Mapping[str, Any]) -> None:
        settings = Settings(config, _SETTINGS)
        servers = parse_servers(config.get("url"), setting="url", default_port=8761,
                                default_path="/eureka")
        app, vip = settings.optional("app"), settings.optional("vip_address")
        if (app is None) == (vip is None):
            raise ValueError("give app (the Eureka application name, e.g. 'ORDER-SERVICE') or "
                             "vip_address (the instances' vipAddress), exactly one")
        self.app = app.upper() if app else None
        self.vip = vip
        self.refresh = settings.duration("refresh", "30s")
        self.secure_port = settings.boolean("secure_port", False)
        self.prefer_ip = settings.boolean("prefer_ip_address", True)
        self.timeout = settings.duration("timeout", "5s")
        self.retry = settings.duration("retry", "1s")
        self.empty_protection = settings.boolean("empty_protection", True)
        self.servers = Servers(servers, self.timeout)
        self.label = f"eureka {self.servers} {self.app or 'vip ' + str(self.vip)}"
        self.registry: Registry | None = None  # None: the next fetch is a full one
        self.full_fetches = 0  # how many full fetches so far (a test reads it)

    # -- the local registry (pure; tested on its own) ---------------------------------------------

    def full(self, answer: Any, keeper: Keeper) -> Registry:
        """The registry of a full ``/apps`` answer."""
        _, applications = _applications(answer)
        registry: Registry = {}
        for app, instance in self._valid(applications, keeper):
            registry.setdefault(app, {})[instance_id(instance) or ""] = instance
        return registry

    def apply_delta(self, registry: Registry, answer: Any, keeper: Keeper) -> bool:
        """Apply a ``/apps/delta`` answer to ``registry``; False when the hashes then differ."""
        apps, applications = _applications(answer)
        for app, instance in self._valid(applications, keeper):
            key = instance_id(instance) or ""
            action = instance.get("actionType")
            if action == "DELETED":
                registry.get(app, {}).pop(key, None)
            elif action in ("ADDED", "MODIFIED"):
                registry.setdefault(app, {})[key] = instance
            else:
                keeper.skip(instance, f"actionType {action!r} is not ADDED, MODIFIED or DELETED")
        remote = apps.get("apps__hashcode")
        return remote is None or reconcile_hash(registry) == remote

    def _valid(self, applications: list[Any], keeper: Keeper) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Instances that have an application and an id (any other entry is skipped)."""
        for application in applications:
            for app, instance in _instances(application):
                if not isinstance(instance, Mapping):
                    keeper.skip(instance, "not an instance object")
                elif not app:
                    keeper.skip(instance, "no application name")
                elif instance_id(instance) is None:
                    keeper.skip(instance, "no instanceId or hostName")
                else:
                    yield app, instance

    def endpoints(self, registry: Registry, keeper: Keeper) -> list[Endpoint]:
        """This source's endpoints among ``registry``'s instances."""
        if self.app is not None:
            candidates = list(registry.get(self.app, {}).values())
        else:
            candidates = [instance for instances in registry.values()
                          for instance in instances.values()
                          if self.vip in str(instance.get("vipAddress", "")).split(",")]
        found = []
        for instance in candidates:
            try:
                endpoint = self._endpoint(instance)
            except BadInstance as exc:
                keeper.skip(instance, str(exc))
                continue
            if endpoint is not None:
                found.append(endpoint)
        return sorted(found, key=lambda e: (e.host, e.port))

    def _endpoint(self, instance: Mapping[str, Any]) -> Endpoint | None:
        if instance.get("status") != "UP":
            return None
        host = instance.get("ipAddr") if self.prefer_ip else instance.get("hostName")
        if not isinstance(host, str) or not host:
            raise BadInstance("no ipAddr" if self.prefer_ip else "no hostName")
        if host in ("0.0.0.0", "::"):
            raise BadInstance(f"the instance registered the wildcard address {host}")
        port, enabled = _port(instance.get("port"))
        secure, secure_enabled = _port(instance.get("securePort"))
        if self.secure_port and secure_enabled:
            if secure is None:
                raise BadInstance(f"securePort {instance.get('securePort')!r} is not 1-65535")
            port = secure
        elif not enabled:
            return None  # no plain port to call (a secure-only instance without secure_port)
        elif port is None:
            raise BadInstance(f"port {instance.get('port')!r} is not 1-65535")
        raw = instance.get("metadata") or {}
        if not isinstance(raw, Mapping):
            raise BadInstance(f"metadata {raw!r} is not an object")
        metadata = {str(k): v if isinstance(v, str) else str(v)
                    for k, v in raw.items() if not str(k).startswith("@")}
        zone = metadata.get("zone")
        if not zone:
            info = instance.get("dataCenterInfo")
            aws = info.get("metadata") if isinstance(info, Mapping) else None
            if isinstance(aws, Mapping) and isinstance(aws.get("availability-zone"), str):
                zone = aws["availability-zone"]
        if zone:
            metadata["zone"] = zone
        metadata["eureka.instance_id"] = instance_id(instance) or ""
        return Endpoint(host, port, 1, metadata)

    # -- fetching -------------------------------------------------------------------------------

    async def _get(self, path: str) -> Any:
        response = await self.servers.request("GET", path, headers=_JSON)
        if response.status != 200:
            raise HttpError(f"HTTP {response.status} {response.body[:200]!r}")
        return response.json()

    async def fetch(self, keeper: Keeper) -> Registry:
        """The registry after one fetch: a delta when there is a registry to apply it to."""
        if self.registry:  # an empty local registry is fetched in full, as DiscoveryClient does
            response = await self.servers.request("GET", "/apps/delta", headers=_JSON)
            if response.status == 200:
                registry = {app: dict(instances) for app, instances in self.registry.items()}
                if self.apply_delta(registry, response.json(), keeper):
                    self.registry = registry
                    return registry
                log.info("eureka_hash_mismatch", registry=self.label,
                         action="fetching the whole registry again")
            elif response.status not in (403, 404):
                raise HttpError(f"HTTP {response.status} {response.body[:200]!r}")
        self.full_fetches += 1
        self.registry = self.full(await self._get("/apps"), keeper)
        return self.registry

    async def run(self, publish: Publish, report: Report) -> None:
        keeper = Keeper(self.label, self.empty_protection, publish, report)
        backoff = Backoff(self.retry)
        self.registry = None
        while True:
            try:
                registry = await self.fetch(keeper)
            except HttpError as exc:
                wait = backoff.next()
                keeper.failed(str(exc), wait)
            else:
                backoff.reset()
                keeper.update(self.endpoints(registry, keeper))
                wait = self.refresh
            await trio.sleep(wait)
