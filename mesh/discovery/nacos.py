"""Instances of one Nacos service, polled over Nacos's open API.

``GET /nacos/v1/ns/instance/list?serviceName=&groupName=&namespaceId=&clusters=&healthyOnly=``
(``api: v1``, every Nacos since 1.x) or ``GET /nacos/v2/ns/instance/list`` (``api: v2``, Nacos
2.2 and later: the same service object wrapped in ``{"code": 0, "message": "success", "data":
...}``, clusters as ``clusterName``). The answer's ``cacheMillis`` is the time to the next poll,
bounded by ``poll_min`` and ``poll_max`` (Nacos's own clients use it the same way).

Settings (cluster ``discovery: {source: nacos, config: {...}}``): ``address`` (required,
``host:port[,...]`` or ``http://host:8848[/nacos]``), ``service`` (required), ``group``
(``DEFAULT_GROUP``), ``namespace`` (none: Nacos's ``public``), ``clusters`` (none: every
cluster), ``api`` (``v1``), ``healthy_only`` (``true``), ``weight_scale`` (``100``),
``poll_min`` (``1s``), ``poll_max`` (``30s``), ``timeout`` (``5s``), ``retry`` (``1s``),
``empty_protection`` (``true``), ``username``/``password`` (Nacos auth: a token from
``/v1/auth/login``). docs/discovery.md has the details.

Used: healthy and enabled instances (a weight of 0, Nacos's way to drain one, leaves it out);
the weight (a float, 1.0 by default) times ``weight_scale`` as the endpoint weight; the
instance's metadata, plus ``nacos.cluster`` and ``nacos.ephemeral``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import structlog
import trio

from mesh.config import Endpoint
from mesh.discovery import Publish, Report
from mesh.discovery._http import (
    Backoff,
    HttpError,
    Keeper,
    Response,
    Servers,
    Settings,
    parse_servers,
)

__all__ = ["NacosSource"]

log = structlog.get_logger("mesh.discovery")

_SETTINGS = ("address", "service", "group", "namespace", "clusters", "api", "healthy_only",
             "weight_scale", "poll_min", "poll_max", "timeout", "retry", "empty_protection",
             "username", "password")
DEFAULT_GROUP = "DEFAULT_GROUP"
#: Nacos's own default ``cacheMillis``, used when an answer has none
DEFAULT_CACHE_MILLIS = 10_000


class BadInstance(ValueError):
    """A host entry that cannot be an endpoint; the message says why."""


def _flag(host: Mapping[str, Any], key: str, default: bool) -> bool:
    value = host.get(key, default)
    if isinstance(value, str):  # lenient: "true"/"false" as some proxies re-encode them
        return value.lower() == "true"
    return bool(value)


class NacosSource:
    def __init__(self, config: Mapping[str, Any]) -> None:
        settings = Settings(config, _SETTINGS)
        servers = parse_servers(config.get("address"), setting="address", default_port=8848,
                                default_path="/nacos")
        self.service = settings.string("service", example="'order-service'")
        self.group = settings.string("group", DEFAULT_GROUP)
        self.namespace = settings.optional("namespace")
        self.clusters = settings.strings("clusters", example="'DEFAULT' or ['a', 'b']")
        self.api = settings.string("api", "v1")
        if self.api not in ("v1", "v2"):
            raise ValueError("api must be 'v1' (/nacos/v1/ns/instance/list, every Nacos) or 'v2' "
                             "(/nacos/v2/ns/instance/list, Nacos 2.2 and later)")
        self.healthy_only = settings.boolean("healthy_only", True)
        self.weight_scale = settings.integer("weight_scale", 100, 1, 10_000)
        self.poll_min = settings.duration("poll_min", "1s")
        self.poll_max = settings.duration("poll_max", "30s")
        if self.poll_max < self.poll_min:
            raise ValueError(f"poll_max ({self.poll_max:g}s) must not be below poll_min "
                             f"({self.poll_min:g}s)")
        self.timeout = settings.duration("timeout", "5s")
        self.retry = settings.duration("retry", "1s")
        self.empty_protection = settings.boolean("empty_protection", True)
        self.username = settings.optional("username")
        self.password = settings.optional("password")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (Nacos auth); give both or none")
        self.servers = Servers(servers, self.timeout)
        self.label = f"nacos {self.servers} {self.group}@@{self.service}"
        self._token: str | None = None
        self._token_expires = 0.0

    # -- reading one answer (pure; tested on its own) ------------------------------------------

    def endpoints(self, service: Any, keeper: Keeper) -> list[Endpoint]:
        """The usable instances of an instance-list answer (the service object)."""
        if not isinstance(service, Mapping):
            raise HttpError(f"the answer is not a service object: {str(service)[:120]}")
        hosts = service.get("hosts")
        if hosts is None:
            hosts = []
        if not isinstance(hosts, list):
            raise HttpError(f"'hosts' is not a list: {str(hosts)[:120]}")
        found = []
        for host in hosts:
            try:
                endpoint = self._endpoint(host)
            except BadInstance as exc:
                keeper.skip(host, str(exc))
                continue
            if endpoint is not None:
                found.append(endpoint)
        return found

    def _endpoint(self, host: Any) -> Endpoint | None:
        if not isinstance(host, Mapping):
            raise BadInstance("not an object")
        if not _flag(host, "enabled", True) or not _flag(host, "healthy", _flag(host, "valid", True)):
            return None
        if self.clusters and host.get("clusterName", "DEFAULT") not in self.clusters:
            return None
        ip, port = host.get("ip"), host.get("port")
        if not isinstance(ip, str) or not ip:
            raise BadInstance("no ip")
        if ip in ("0.0.0.0", "::"):
            raise BadInstance(f"the instance registered the wildcard address {ip}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise BadInstance(f"port {port!r} is not 1-65535")
        weight = host.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) \
                or weight < 0:
            raise BadInstance(f"weight {weight!r} is not a non-negative number")
        if weight == 0:
            return None  # Nacos's way to take an instance out of traffic
        metadata = host.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise BadInstance(f"metadata {metadata!r} is not an object")
        labels = {str(k): v if isinstance(v, str) else str(v) for k, v in metadata.items()}
        labels["nacos.cluster"] = str(host.get("clusterName", "DEFAULT"))
        labels["nacos.ephemeral"] = "true" if _flag(host, "ephemeral", True) else "false"
        return Endpoint(ip, port, max(1, round(weight * self.weight_scale)), labels)

    def interval(self, service: Any) -> float:
        """The next poll: the answer's ``cacheMillis``, within ``poll_min`` and ``poll_max``."""
        millis = service.get("cacheMillis") if isinstance(service, Mapping) else None
        if isinstance(millis, bool) or not isinstance(millis, int | float) or millis <= 0:
            millis = DEFAULT_CACHE_MILLIS
        return float(min(self.poll_max, max(self.poll_min, millis / 1000)))

    # -- asking ---------------------------------------------------------------------------------

    def _query(self) -> list[tuple[str, str]]:
        query = [("serviceName", self.service), ("groupName", self.group)]
        if self.namespace:
            query.append(("namespaceId", self.namespace))
        if self.clusters:
            query.append(("clusters" if self.api == "v1" else "clusterName", ",".join(self.clusters)))
        query.append(("healthyOnly", "true" if self.healthy_only else "false"))
        return query

    async def _login(self) -> None:
        """Nacos auth: a token from ``POST /v1/auth/login``, kept for 90% of its ``tokenTtl``."""
        assert self.username is not None and self.password is not None
        response = await self.servers.request(
            "POST", "/v1/auth/login",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode({"username": self.username, "password": self.password}).encode())
        answer = response.json() if response.status == 200 else None
        token = answer.get("accessToken") if isinstance(answer, Mapping) else None
        if not isinstance(token, str):
            raise HttpError(f"login as {self.username!r} refused: HTTP {response.status} "
                            f"{response.body[:100]!r}")
        ttl = answer.get("tokenTtl", 18_000) if isinstance(answer, Mapping) else 18_000
        ttl = ttl if isinstance(ttl, int | float) and not isinstance(ttl, bool) else 18_000
        self._token, self._token_expires = token, trio.current_time() + 0.9 * ttl

    async def fetch(self) -> Any:
        """The service object of one instance-list answer."""
        for attempt in (1, 2):
            query = self._query()
            if self.username is not None:
                if self._token is None or trio.current_time() >= self._token_expires:
                    await self._login()
                query.append(("accessToken", self._token or ""))
            response: Response = await self.servers.request(
                "GET", f"/{self.api}/ns/instance/list", query=query)
            if response.status == 403 and self.username is not None and attempt == 1:
                self._token = None  # expired or revoked: log in again, once
                continue
            break
        if response.status != 200:
            raise HttpError(f"HTTP {response.status} {response.body[:200]!r}")
        answer = response.json()
        if self.api == "v2":
            if not isinstance(answer, Mapping) or answer.get("code") != 0:
                raise HttpError(f"the registry refused the query: {str(answer)[:200]}")
            return answer.get("data")
        return answer

    async def run(self, publish: Publish, report: Report) -> None:
        keeper = Keeper(self.label, self.empty_protection, publish, report)
        backoff = Backoff(self.retry)
        while True:
            try:
                service = await self.fetch()
                endpoints = self.endpoints(service, keeper)
            except HttpError as exc:
                wait = backoff.next()
                keeper.failed(str(exc), wait)
            else:
                backoff.reset()
                keeper.update(endpoints)
                wait = self.interval(service)
            await trio.sleep(wait)
