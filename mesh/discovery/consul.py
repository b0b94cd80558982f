"""Healthy instances of one Consul service, watched with blocking queries.

``GET /v1/health/service/<service>?passing=true[&tag=...][&dc=...]&index=<X-Consul-Index>&wait=<wait>``:
Consul holds the request until the service's index moves past ``index`` or ``wait`` is over
(plus up to wait/16 of jitter), then answers the complete list. The index handling follows
Consul's "blocking queries" rules: an index that goes backwards (a snapshot restore, a new
leader without the data) resets it to 0, the next query answers at once; an index that is not
above 0 is taken as 1, so a broken answer cannot make a tight loop.

Settings (cluster ``discovery: {source: consul, config: {...}}``): ``service`` (required),
``address`` (``127.0.0.1:8500``, the local agent; ``http(s)://host:port`` or several,
comma-separated), ``tag`` (none; a string or a list: every tag must be on the instance), ``dc``
(none: the agent's datacenter), ``passing_only`` (``true``), ``wait`` (``60s``, at most 10m),
``token`` (none; sent as ``X-Consul-Token``), ``timeout`` (``5s``, on top of the wait),
``retry`` (``1s``), ``empty_protection`` (``true``).

Used: ``Service.Address``, else ``Node.Address``; ``Service.Port``; the weight
``Service.Weights.Passing`` (``Warning`` for an instance in warning with ``passing_only:
false``; Consul's default 1); ``Service.Meta`` as metadata, plus ``consul.tags`` (comma-joined),
``consul.node`` and ``consul.dc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import structlog
import trio

from mesh.config import Endpoint
from mesh.discovery import Publish, Report
from mesh.discovery._http import Backoff, HttpError, Keeper, Servers, Settings, parse_servers

__all__ = ["ConsulSource"]

log = structlog.get_logger("mesh.discovery")

_SETTINGS = ("service", "address", "tag", "dc", "passing_only", "wait", "token", "timeout",
             "retry", "empty_protection")
#: Consul caps a blocking query's wait at 10 minutes
MAX_WAIT = 600.0
#: the least time between two queries (Consul asks blocking clients to rate-limit themselves:
#: a service that changes all the time would otherwise be asked in a tight loop)
MIN_INTERVAL = 0.1


class BadEntry(ValueError):
    """A health entry that cannot be an endpoint; the message says why."""


def _status(checks: Any) -> str:
    """The aggregate status of an entry's checks, as Consul computes it."""
    statuses = {c.get("Status") for c in checks if isinstance(c, Mapping)} \
        if isinstance(checks, list) else set()
    for status in ("critical", "maintenance", "warning"):
        if status in statuses:
            return status
    return "passing"


def _weight(weights: Any, key: str) -> int:
    if weights is None:
        return 1
    if not isinstance(weights, Mapping):
        raise BadEntry(f"Service.Weights {weights!r} is not an object")
    value = weights.get(key, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadEntry(f"Service.Weights.{key} {value!r} is not a non-negative integer")
    return value


class ConsulSource:
    def __init__(self, config: Mapping[str, Any]) -> None:
        settings = Settings(config, _SETTINGS)
        self.service = settings.string("service", example="'web'")
        servers = parse_servers(config.get("address", "127.0.0.1:8500"), setting="address",
                                default_port=8500)
        self.tags = settings.strings("tag", example="'primary' or ['v2', 'eu']")
        self.dc = settings.optional("dc")
        self.passing_only = settings.boolean("passing_only", True)
        self.wait = settings.duration("wait", "60s", minimum=1.0)
        if self.wait > MAX_WAIT:
            raise ValueError("wait must be at most 10m (Consul's longest blocking query)")
        self.token = settings.optional("token")
        if self.token is not None and not (self.token.isascii() and self.token.isprintable()):
            raise ValueError("token must be printable ASCII (a Consul ACL token's secret id)")
        self.timeout = settings.duration("timeout", "5s")
        self.retry = settings.duration("retry", "1s")
        self.empty_protection = settings.boolean("empty_protection", True)
        self.servers = Servers(servers, self.timeout)
        self.label = f"consul {self.servers} {self.service}"
        self.index = 0

    # -- reading one answer (pure; tested on its own) ------------------------------------------

    def endpoints(self, entries: Any, keeper: Keeper) -> list[Endpoint]:
        if not isinstance(entries, list):
            raise HttpError(f"the answer is not a list of health entries: {str(entries)[:120]}")
        found = []
        for entry in entries:
            try:
                endpoint = self._endpoint(entry)
            except BadEntry as exc:
                keeper.skip(entry, str(exc))
                continue
            if endpoint is not None:
                found.append(endpoint)
        return sorted(found, key=lambda e: (e.host, e.port))

    def _endpoint(self, entry: Any) -> Endpoint | None:
        if not isinstance(entry, Mapping):
            raise BadEntry("not an object")
        node, service = entry.get("Node"), entry.get("Service")
        if not isinstance(service, Mapping):
            raise BadEntry("no Service object")
        if not isinstance(node, Mapping):
            node = {}
        status = _status(entry.get("Checks"))
        if status in ("critical", "maintenance") or (self.passing_only and status != "passing"):
            return None
        address = service.get("Address") or node.get("Address")
        if not isinstance(address, str) or not address:
            raise BadEntry("no Service.Address nor Node.Address")
        if address in ("0.0.0.0", "::"):
            raise BadEntry(f"the service registered the wildcard address {address}")
        port = service.get("Port")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise BadEntry(f"Service.Port {port!r} is not 1-65535")
        weight = _weight(service.get("Weights"), "Warning" if status == "warning" else "Passing")
        if weight == 0:
            return None  # Weights.Warning 0: no traffic while in warning
        meta = service.get("Meta") or {}
        if not isinstance(meta, Mapping):
            raise BadEntry(f"Service.Meta {meta!r} is not an object")
        tags = service.get("Tags") or []
        if not isinstance(tags, list):
            raise BadEntry(f"Service.Tags {tags!r} is not a list")
        metadata = {str(k): v if isinstance(v, str) else str(v) for k, v in meta.items()}
        metadata["consul.tags"] = ",".join(str(tag) for tag in tags)
        for key, field in (("consul.node", "Node"), ("consul.dc", "Datacenter")):
            if isinstance(node.get(field), str) and node[field]:
                metadata[key] = node[field]
        return Endpoint(address, port, weight, metadata)

    def next_index(self, header: str | None) -> int:
        """The index for the next blocking query, from an answer's ``X-Consul-Index``."""
        try:
            index = int(header or "0")
        except ValueError:
            index = 0
        if index < self.index:
            log.info("consul_index_reset", registry=self.label, previous=self.index, index=index)
            return 0  # went backwards: start over with a query that answers at once
        return max(index, 1)

    # -- asking ---------------------------------------------------------------------------------

    async def fetch(self) -> Any:
        query: list[tuple[str, str]] = []
        if self.passing_only:
            query.append(("passing", "true"))
        query += [("tag", tag) for tag in self.tags]
        if self.dc:
            query.append(("dc", self.dc))
        timeout = self.timeout
        if self.index > 0:
            query += [("index", str(self.index)), ("wait", f"{self.wait:g}s")]
            timeout += self.wait + self.wait / 16
        headers = {"X-Consul-Token": self.token} if self.token else None
        response = await self.servers.request(
            "GET", f"/v1/health/service/{quote(self.service, safe='')}", query=query,
            headers=headers, timeout=timeout)
        if response.status != 200:
            raise HttpError(f"HTTP {response.status} {response.body[:200]!r}")
        entries = response.json()
        self.index = self.next_index(response.headers.get("x-consul-index"))
        return entries

    async def run(self, publish: Publish, report: Report) -> None:
        keeper = Keeper(self.label, self.empty_protection, publish, report)
        backoff = Backoff(self.retry)
        self.index = 0
        while True:
            try:
                entries = await self.fetch()
                endpoints = self.endpoints(entries, keeper)
            except HttpError as exc:
                self.index = 0  # the next answer must be a current one, not a wait
                wait = backoff.next()
                keeper.failed(str(exc), wait)
                await trio.sleep(wait)
            else:
                backoff.reset()
                keeper.update(endpoints)
                await trio.sleep(MIN_INTERVAL)
