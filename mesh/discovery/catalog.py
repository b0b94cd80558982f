"""Service catalogs: the names of every service a registry lists (for ``service_routes``).

Each catalog reads one registry's list of services with the HTTP client and the settings of
that registry's endpoint source (mesh/discovery/_http.py, and ``nacos.py``, ``eureka.py``,
``consul.py`` for the settings checks, servers and auth), so a ``service_routes`` config takes
the same settings as a cluster's ``discovery`` config, without the service key:

- ``eureka``: ``GET {url}/apps`` (the whole registry, as the DiscoveryClient's full fetch);
  an application is listed when one of its instances is ``UP`` (Spring's EurekaDiscoveryClient
  lists the applications of its UP-filtered registry);
- ``nacos``: ``GET /nacos/v1/ns/service/list?pageNo=&pageSize=&groupName=&namespaceId=``
  (``{"count": N, "doms": [...]}``), or with ``api: v2`` ``GET /nacos/v2/ns/service/list``
  (``{"code": 0, "data": {"count": N, "services": [...]}}``), page after page;
- ``consul``: ``GET /v1/catalog/services[?dc=]`` (``{"name": [tags...]}``), without the
  ``consul`` service itself; with ``tag``, only the services carrying every tag.

``services`` answers the names (each once, in the registry's order), or raises
:class:`HttpError` when the registry cannot be asked or answers something that is not the
documented JSON; a malformed entry is handed to ``skip`` with the reason and left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import trio

from mesh.config._listeners import SERVICE_KEYS
from mesh.discovery._http import HttpError, Response
from mesh.discovery.consul import ConsulSource
from mesh.discovery.eureka import EurekaSource, _applications, _as_list
from mesh.discovery.nacos import NacosSource

__all__ = ["Catalog", "ConsulCatalog", "EurekaCatalog", "NacosCatalog", "Skip", "open_catalog"]

#: what a catalog calls with a malformed entry and the reason it is left out
Skip = Callable[[Any, str], None]
#: the placeholder service a catalog's source settings are checked with
_ANY = "service-routes"


class Catalog(Protocol):
    #: the registry, for logs: "eureka 127.0.0.1:8761"
    label: str

    async def services(self, skip: Skip) -> list[str]:
        """Every service's name, in the registry's order, each once."""


def open_catalog(source: str, config: Mapping[str, Any]) -> Catalog:
    """The catalog of ``source`` (a discovery source's name) with its settings; ``ValueError``
    names a bad setting, an unknown source or a service key that must not be there."""
    keys = SERVICE_KEYS.get(source)
    if keys is None:
        raise ValueError(f"no service catalog for source {source!r}; service routes read "
                         f"{', '.join(sorted(SERVICE_KEYS))}")
    given = [key for key in keys if key in config]
    if given:
        raise ValueError(f"{given[0]} must not be set: every service gets a cluster of its own")
    settings = {**config, keys[0]: _ANY}
    catalog: Catalog
    if source == "eureka":
        catalog = EurekaCatalog(EurekaSource(settings))
    elif source == "nacos":
        catalog = NacosCatalog(NacosSource(settings))
    else:
        catalog = ConsulCatalog(ConsulSource(settings))
    return catalog


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _name(entry: Any) -> str | None:
    return entry if isinstance(entry, str) and entry else None


class EurekaCatalog:
    def __init__(self, source: EurekaSource) -> None:
        self.source = source
        self.label = f"eureka {source.servers}"

    def read(self, answer: Any, skip: Skip) -> list[str]:
        """The applications of a ``/apps`` answer that have an UP instance."""
        _, applications = _applications(answer)
        names = []
        for application in applications:
            if not isinstance(application, Mapping):
                skip(application, "not an application object")
                continue
            name = _name(application.get("name"))
            if name is None:
                skip({k: v for k, v in application.items() if k != "instance"},
                     "no application name")
                continue
            if any(isinstance(instance, Mapping) and instance.get("status") == "UP"
                   for instance in _as_list(application.get("instance"))):
                names.append(name)
        return _unique(names)

    async def services(self, skip: Skip) -> list[str]:
        response = await self.source.servers.request("GET", "/apps",
                                                     headers={"Accept": "application/json"})
        if response.status != 200:
            raise HttpError(f"HTTP {response.status} {response.body[:200]!r}")
        return self.read(response.json(), skip)


class NacosCatalog:
    #: services asked for per page (Nacos answers at most 500)
    page_size = 500
    #: pages read at most in one listing (a registry that keeps saying "more" is cut off)
    max_pages = 1000

    def __init__(self, source: NacosSource) -> None:
        self.source = source
        self.label = f"nacos {source.servers} {source.group}"
        if source.namespace:
            self.label += f" namespace {source.namespace}"

    def read(self, answer: Any) -> tuple[int, list[Any]]:
        """(the total count, the names of this page) of a service-list answer."""
        if self.source.api == "v2":
            if not isinstance(answer, Mapping) or answer.get("code") != 0:
                raise HttpError(f"the registry refused the query: {str(answer)[:200]}")
            answer, key = answer.get("data"), "services"
        else:
            key = "doms"
        if not isinstance(answer, Mapping):
            raise HttpError(f"not a service list: {str(answer)[:120]}")
        count, names = answer.get("count"), answer.get(key)
        if names is None:
            names = []
        if not isinstance(names, list) or isinstance(count, bool) or not isinstance(count, int):
            raise HttpError(f"not a service list (count and {key}): {str(answer)[:120]}")
        return count, names

    async def _page(self, number: int) -> Response:
        source = self.source
        for attempt in (1, 2):
            query = [("pageNo", str(number)), ("pageSize", str(self.page_size)),
                     ("groupName", source.group)]
            if source.namespace:
                query.append(("namespaceId", source.namespace))
            if source.username is not None:
                if source._token is None or trio.current_time() >= source._token_expires:
                    await source._login()
                query.append(("accessToken", source._token or ""))
            response = await source.servers.request(
                "GET", f"/{source.api}/ns/service/list", query=query)
            if response.status == 403 and source.username is not None and attempt == 1:
                source._token = None  # expired or revoked: log in again, once
                continue
            break
        if response.status != 200:
            raise HttpError(f"HTTP {response.status} {response.body[:200]!r}")
        return response

    async def services(self, skip: Skip) -> list[str]:
        names: list[str] = []
        for number in range(1, self.max_pages + 1):
            count, page = self.read((await self._page(number)).json())
            for entry in page:
                name = _name(entry)
                if name is not None and "@@" in name:  # "group@@service", as older servers write
                    name = _name(name.split("@@", 1)[1])
                if name is None:
                    skip(entry, "not a service name")
                else:
                    names.append(name)
            if len(page) < self.page_size or number * self.page_size >= count:
                break
        return _unique(names)


class ConsulCatalog:
    def __init__(self, source: ConsulSource) -> None:
        self.source = source
        self.label = f"consul {source.servers}" + (f" dc {source.dc}" if source.dc else "")

    def read(self, answer: Any, skip: Skip) -> list[str]:
        """The services of a ``/v1/catalog/services`` answer (``consul`` itself left out)."""
        if not isinstance(answer, Mapping):
            raise HttpError(f"not a service catalog: {str(answer)[:120]}")
        names = []
        for name, tags in answer.items():
            if name == "consul":
                continue
            if not _name(name):
                skip({name: tags}, "not a service name")
            elif not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                skip({name: tags}, "its tags are not a list of strings")
            elif all(tag in tags for tag in self.source.tags):
                names.append(name)
        return names

    async def services(self, skip: Skip) -> list[str]:
        source = self.source
        query = [("dc", source.dc)] if source.dc else []
        headers = {"X-Consul-Token": source.token} if source.token else None
        response = await source.servers.request("GET", "/v1/catalog/services", query=query,
                                                headers=headers)
        if response.status != 200:
            raise HttpError(f"HTTP {response.status} {response.body[:200]!r}")
        return self.read(response.json(), skip)
