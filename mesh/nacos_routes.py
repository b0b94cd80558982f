"""Route rules kept in Nacos config, long-polled: a listener's ``nacos_routes``.

A listener with ``nacos_routes: {address, data_id, group, namespace, username, password}``
gets, after its own routes, the routes of the Nacos config item ``data_id`` in ``group``
(tenant ``namespace``): a YAML or JSON list in the schema of a listener's ``routes:``, naming
clusters of the config. As Nacos's own clients do:

- ``GET /nacos/v1/cs/configs?dataId=&group=&tenant=`` reads the item (404: there is none);
- ``POST /nacos/v1/cs/configs/listener`` (``Listening-Configs=dataId^2group^2md5^2tenant^1``,
  the tenant part only when set; header ``Long-Pulling-Timeout: 30000``) waits for a change:
  Nacos answers at once when the content's MD5 differs from the one sent, else holds the
  request up to 30 s; an empty answer means no change, a non-empty one lists the changed items
  (then the item is read again).

A new content is swapped in with ``ProxyRuntime.apply``. A content that does not parse (YAML,
or a route error: the parser's message, with ``nacos <group>/<data_id>`` as the source) is
logged once and changes nothing; a Nacos outage keeps the routes (logged once, retried after
1 s, doubling up to 30 s); a deleted item (404) removes the dynamic routes.

:class:`NacosRouteLocator` is a dynamic part of the config (see ``ProxyRuntime``): its
``reload(config)`` takes the config of the part before it, adds the Nacos routes and hands the
result on (to ``apply``); when an item changes, it hands on its last input with the new routes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote_plus, urlencode

import structlog
import trio

from mesh.config import Config, ConfigError
from mesh.config._listeners import parse_dynamic_routes
from mesh.config._load import _decode
from mesh.config._model import NacosRoutes, Route
from mesh.discovery._http import MAX_RETRY, Backoff, HttpError, Response, Servers, parse_servers
from mesh.listener_watches import ListenerWatches

__all__ = ["NacosConfigClient", "NacosRouteLocator", "md5", "parse_routes"]

log = structlog.get_logger("mesh.nacos_routes")

#: how long Nacos may hold a listener request (ms), as Nacos clients ask
LONG_POLL_MILLIS = 30_000
_WORD, _LINE = "\x02", "\x01"


def md5(content: str | None) -> str:
    """The MD5 Nacos compares: of the UTF-8 content, "" for no item."""
    return "" if content is None else hashlib.md5(content.encode("utf-8")).hexdigest()


def source_name(settings: NacosRoutes) -> str:
    """How errors name the item: ``nacos [<namespace>/]<group>/<data_id>``."""
    tenant = f"{settings.namespace}/" if settings.namespace else ""
    return f"nacos {tenant}{settings.group}/{settings.data_id}"


def parse_routes(content: str, settings: NacosRoutes, config: Config,
                 listener: str) -> tuple[Route, ...]:
    """The routes of an item's ``content`` for ``listener`` of ``config``; raises
    :class:`ConfigError` naming the item."""
    source = source_name(settings)
    data = _decode(content, source)
    if data is None:
        raise ConfigError(source, "", "the document is empty",
                          "publish a list of routes ([] for none), or delete the item.")
    found = next(lc for lc in config.listeners if lc.name == listener)
    return parse_dynamic_routes(source, data, found, {c.name: c for c in config.clusters},
                                "nacos")


class NacosConfigClient:
    """One Nacos config item: read it, and wait for it to change."""

    def __init__(self, settings: NacosRoutes, timeout: float = 5.0,
                 long_poll: int = LONG_POLL_MILLIS) -> None:
        self.settings, self.long_poll = settings, long_poll
        self.servers = Servers(parse_servers(settings.address, setting="nacos_routes address",
                                             default_port=8848, default_path="/nacos"), timeout)
        self.label = f"{source_name(settings)} at {self.servers}"
        self._token: str | None = None
        self._token_expires = 0.0

    def _item(self) -> list[tuple[str, str]]:
        query = [("dataId", self.settings.data_id), ("group", self.settings.group)]
        if self.settings.namespace:
            query.append(("tenant", self.settings.namespace))
        return query

    async def _login(self) -> None:
        settings = self.settings
        response = await self.servers.request(
            "POST", "/v1/auth/login",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode({"username": settings.username,
                            "password": settings.password}).encode())
        answer = response.json() if response.status == 200 else None
        token = answer.get("accessToken") if isinstance(answer, Mapping) else None
        if not isinstance(token, str):
            raise HttpError(f"login as {settings.username!r} refused: HTTP {response.status} "
                            f"{response.body[:100]!r}")
        ttl = answer.get("tokenTtl", 18_000) if isinstance(answer, Mapping) else 18_000
        ttl = ttl if isinstance(ttl, int | float) and not isinstance(ttl, bool) else 18_000
        self._token, self._token_expires = token, trio.current_time() + 0.9 * ttl

    async def _ask(self, method: str, path: str, query: list[tuple[str, str]],
                   **kwargs: Any) -> Response:
        for attempt in (1, 2):
            params = list(query)
            if self.settings.username is not None:
                if self._token is None or trio.current_time() >= self._token_expires:
                    await self._login()
                params.append(("accessToken", self._token or ""))
            response = await self.servers.request(method, path, query=params, **kwargs)
            if response.status == 403 and self.settings.username is not None and attempt == 1:
                self._token = None  # expired or revoked: log in again, once
                continue
            break
        return response

    async def get(self) -> str | None:
        """The item's content; None when there is none (404)."""
        response = await self._ask("GET", "/v1/cs/configs", self._item())
        if response.status == 404:
            return None
        if response.status != 200:
            raise HttpError(f"HTTP {response.status} {response.body[:200]!r}")
        try:
            return response.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HttpError(f"the content is not UTF-8 ({exc})") from None

    async def changed(self, digest: str) -> bool:
        """Wait (up to the long-poll time) for the item's MD5 to differ from ``digest``."""
        item = [self.settings.data_id, self.settings.group, digest]
        if self.settings.namespace:
            item.append(self.settings.namespace)
        query = [("tenant", self.settings.namespace)] if self.settings.namespace else []
        response = await self._ask(
            "POST", "/v1/cs/configs/listener", query,
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Long-Pulling-Timeout": str(self.long_poll)},
            body=urlencode({"Listening-Configs": _WORD.join(item) + _LINE}).encode(),
            timeout=self.long_poll / 1000 + 10)
        if response.status != 200:
            raise HttpError(f"HTTP {response.status} {response.body[:200]!r}")
        lines = unquote_plus(response.body.decode("utf-8", "replace")).split(_LINE)
        return any(line.strip() for line in lines)


class _Watch:
    """One listener's item: its client, and the content serving."""

    def __init__(self, listener: str, settings: NacosRoutes, client: NacosConfigClient) -> None:
        self.listener, self.settings, self.client = listener, settings, client
        #: the content whose routes serve (None: no dynamic routes)
        self.content: str | None = None
        #: the MD5 of the last content read (a refused one too), "" for none
        self.digest = ""
        self.failing = False
        self.error: str | None = None
        self.scope = trio.CancelScope()


class NacosRouteLocator(ListenerWatches[_Watch]):
    """Keeps the ``nacos_routes`` of a config's listeners in step with their Nacos items.

    ``apply`` takes the whole config (``ProxyRuntime.apply``, or the next dynamic part's
    ``reload``). Raises ``ValueError`` naming the listener for a refused ``address``.
    """

    def __init__(self, config: Config, apply: Callable[[Config], None],
                 client: Callable[[NacosRoutes], NacosConfigClient] = NacosConfigClient,
                 retry: float = 1.0) -> None:
        self._client, self.retry = client, retry
        super().__init__(config, apply)

    def _watches(self, config: Config, current: Mapping[str, _Watch]) -> dict[str, _Watch]:
        watches: dict[str, _Watch] = {}
        for listener in config.listeners:
            settings = listener.nacos_routes
            if settings is None:
                continue
            old = current.get(listener.name)
            if old is not None and old.settings == settings:
                watches[listener.name] = old
                continue
            try:
                client = self._client(settings)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"listener {listener.name!r}: nacos_routes: {exc}") from None
            watch = watches[listener.name] = _Watch(listener.name, settings, client)
            if old is not None and _item(old.settings) == _item(settings):
                watch.content, watch.digest = old.content, old.digest  # the same item
        return watches

    def expand(self, config: Config, watches: Mapping[str, _Watch] | None = None) -> Config:
        """``config`` with the routes of its listeners' Nacos items (raises ConfigError)."""
        watches = self.watches if watches is None else watches
        extra: dict[str, tuple[Route, ...]] = {}
        for name, watch in watches.items():
            if watch.content is not None:
                extra[name] = parse_routes(watch.content, watch.settings, config, name)
        if not extra:
            return config
        return dataclasses.replace(
            config, source=f"{config.source} + nacos routes",
            listeners=tuple(dataclasses.replace(lc, routes=lc.routes + extra[lc.name])
                            if lc.name in extra else lc for lc in config.listeners))

    async def _follow(self, watch: _Watch) -> None:
        backoff = Backoff(self.retry, MAX_RETRY)
        read = True
        while True:
            try:
                if read:
                    content = await watch.client.get()
                    read = False
                    self._recovered(watch)
                    self.update(watch, content)
                read = await watch.client.changed(watch.digest)
                self._recovered(watch)
                backoff.reset()
            except Exception as exc:  # HttpError, or a bug: never take the proxy down
                wait = backoff.next()
                if not watch.failing:
                    log.warning("nacos_config_failed", listener=watch.listener,
                                item=watch.client.label, error=str(exc),
                                kept="the running routes", retry_in=wait)
                watch.failing, read = True, True
                await trio.sleep(wait)

    def _recovered(self, watch: _Watch) -> None:
        if watch.failing:
            log.info("nacos_config_recovered", listener=watch.listener, item=watch.client.label)
        watch.failing = False

    def update(self, watch: _Watch, content: str | None) -> None:
        """A content read (None: the item is gone): swap its routes in, or log why not."""
        digest = md5(content)
        if digest == watch.digest and (content is None) == (watch.content is None) \
                and watch.error is None:
            return
        watch.digest = digest
        previous, watch.content = watch.content, content
        try:
            self._apply(self.expand(self.file))
        except Exception as exc:  # ConfigError, StartupError: the running routes stay
            watch.content = previous
            if str(exc) != watch.error:
                log.error("nacos_routes_refused", listener=watch.listener,
                          item=watch.client.label, error=str(exc), kept="the running routes")
            watch.error = str(exc)
            return
        watch.error = None
        if content is None:
            if previous is not None:
                log.warning("nacos_routes_removed", listener=watch.listener,
                            item=watch.client.label, reason="the config item was deleted")
            return
        routes = [route.name for route in
                  parse_routes(content, watch.settings, self.file, watch.listener)]
        log.info("nacos_routes", listener=watch.listener, item=watch.client.label, md5=digest,
                 routes=routes)


def _item(settings: NacosRoutes) -> tuple[Any, ...]:
    return settings.address, settings.data_id, settings.group, settings.namespace

