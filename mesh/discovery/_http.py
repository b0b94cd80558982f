"""A small HTTP/1.1 client on trio, and what the HTTP registry sources (nacos, eureka, consul)
share: their settings checks, their servers asked in turn, and how they keep, publish and report
their endpoints (:class:`Keeper`).

Not the data path: one request per connection (``Connection: close``), a bounded time for the
whole exchange, a bounded body, no redirects, no compression. Responses are parsed by
httptools (llhttp), which rpcmesh already depends on for its HTTP/1 codec. ``https://``
servers are reached over TLS with the system's trust store.

Every failure to get an answer (refused, reset, timed out, not HTTP, body too large) is an
:class:`HttpError` whose message says what happened and with which server; an answer with any
status is a :class:`Response` (the caller decides what a 404 or a 500 means).
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import httptools
import structlog
import trio

from mesh.config import Endpoint
from mesh.config._values import parse_duration
from mesh.discovery import Publish, Report

__all__ = ["Backoff", "HttpError", "Keeper", "Response", "Server", "Servers", "Settings",
           "parse_servers", "request"]

#: a registry answer larger than this is refused (a large Eureka registry is a few MiB)
MAX_BODY = 64 * 1024 * 1024
_READ = 64 * 1024
#: the longest wait between two attempts while a registry is failing
MAX_RETRY = 30.0

log = structlog.get_logger("mesh.discovery")


class HttpError(Exception):
    """No usable HTTP answer; the message says why and from which server."""


@dataclass(frozen=True, slots=True)
class Server:
    """One registry server: where to connect and the path prefix of its API."""

    scheme: str
    host: str
    port: int
    path: str = ""  # the API's base path, no trailing slash ("/eureka", "" for consul)
    auth: str | None = None  # "user:password" for HTTP basic auth, from the URL

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_servers(value: Any, *, setting: str, default_port: int,
                  default_path: str = "") -> tuple[Server, ...]:
    """``host:port``, ``http(s)://[user:pass@]host:port/path``, comma-separated or a list.

    A server given without a path gets ``default_path``. Raises ``ValueError`` naming
    ``setting`` and what a good value looks like.
    """
    example = f"'127.0.0.1:{default_port}' or 'http://10.0.0.1:{default_port}{default_path}'"
    if value is None:
        raise ValueError(f"{setting} is required, e.g. {example}")
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value if v.strip()]
    else:
        raise ValueError(f"{setting} must be a string such as {example} (comma-separated for "
                         "several servers)")
    if not items:
        raise ValueError(f"{setting} is required, e.g. {example}")
    servers = []
    for item in items:
        url = item if "://" in item else f"http://{item}"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{setting}: {item!r} is not host:port or a URL ({exc}); "
                             f"use e.g. {example}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{setting}: {item!r} needs an http:// or https:// URL with a host; "
                             f"use e.g. {example}")
        if parts.query or parts.fragment:
            raise ValueError(f"{setting}: {item!r} must not have a query or fragment")
        auth = None
        if parts.username is not None:
            auth = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        path = parts.path.rstrip("/") if parts.path.strip("/") else default_path
        if port is None:
            port = default_port if "://" not in item else (443 if parts.scheme == "https" else 80)
        servers.append(Server(parts.scheme, parts.hostname, port, path, auth))
    return tuple(servers)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise HttpError(f"the answer is not JSON ({exc}): {self.body[:120]!r}") from None


class _Collector:
    """httptools callbacks for one response."""

    def __init__(self, max_body: int) -> None:
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.max_body = max_body
        self.headers_done = False
        self.complete = False
        self.too_large = False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        # (httptools hides a callback's exception behind its own: flag it, the reader raises)
        if len(self.body) + len(body) > self.max_body:
            self.too_large = True
        else:
            self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def _target(server: Server, path: str, query: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    target = quote(server.path + path, safe="/@:!$&'()*+,;=-._~%")
    params = list(query.items()) if isinstance(query, Mapping) else list(query)
    return f"{target}?{urlencode(params)}" if params else target


async def request(server: Server, method: str, path: str, *,
                  query: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
                  headers: Mapping[str, str] | None = None, body: bytes = b"",
                  timeout: float, max_body: int = MAX_BODY) -> Response:
    """One exchange with ``server`` (``path`` below its base path), within ``timeout`` seconds."""
    target = _target(server, path, query)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {server}", "Connection: close",
             "User-Agent: rpcmesh-discovery"]
    if server.auth is not None:
        lines.append("Authorization: Basic "
                     + base64.b64encode(server.auth.encode()).decode("ascii"))
    for name, value in (headers or {}).items():
        if any(c in f"{name}{value}" for c in "\r\n\0"):
            raise HttpError(f"header {name!r} has a line break")
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with trio.move_on_after(timeout):
        try:
            return await _exchange(server, head + body, max_body)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise HttpError(f"{server}: {exc or type(exc).__name__}") from None
        except httptools.HttpParserError as exc:
            raise HttpError(f"{server}: not an HTTP answer ({exc})") from None
        except HttpError as exc:
            raise HttpError(f"{server}: {exc}") from None
    raise HttpError(f"{server}: no answer within {timeout:g}s")


async def _exchange(server: Server, data: bytes, max_body: int) -> Response:
    stream: trio.abc.Stream
    if server.scheme == "https":
        stream = await trio.open_ssl_over_tcp_stream(
            server.host, server.port, ssl_context=ssl.create_default_context())
    else:
        stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        await stream.send_all(data)
        collector = _Collector(max_body)
        parser = httptools.HttpResponseParser(collector)
        while not collector.complete:
            chunk = await stream.receive_some(_READ)
            if not chunk:
                # a body delimited by the end of the connection (no length, not chunked)
                if (collector.headers_done and "content-length" not in collector.headers
                        and "chunked" not in collector.headers.get("transfer-encoding", "")):
                    break
                raise HttpError("the connection closed before a complete answer")
            parser.feed_data(chunk)
            if collector.too_large:
                raise HttpError(f"the answer is larger than {max_body} bytes")
        return Response(parser.get_status_code(), collector.headers, bytes(collector.body))


# -- what the registry sources share ----------------------------------------------------------


class Settings:
    """A source's settings, checked one by one; each error names the key and the fix."""

    def __init__(self, config: Mapping[str, Any], known: Iterable[str]) -> None:
        self.known = tuple(known)
        unknown = sorted(set(config) - set(self.known))
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known: {', '.join(self.known)}")
        self.config = config

    def string(self, key: str, default: str | None = None, *, example: str = "") -> str:
        value = self.config.get(key, default)
        if value is None:
            raise ValueError(f"{key} is required (a string{', e.g. ' + example if example else ''})")
        if not isinstance(value, str) or (not value and default is None):
            raise ValueError(f"{key} must be a non-empty string{', e.g. ' + example if example else ''}")
        return value

    def optional(self, key: str) -> str | None:
        value = self.config.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{key} must be a string")
        return value or None

    def strings(self, key: str, *, example: str) -> tuple[str, ...]:
        """A comma-separated string or a list of strings; () when absent."""
        value = self.config.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            items = value.split(",")
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            items = list(value)
        else:
            raise ValueError(f"{key} must be a string or a list of strings, e.g. {example}")
        return tuple(item.strip() for item in items if item.strip())

    def boolean(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, not {value!r}")
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{key} must be an integer from {low} to {high}, not {value!r}")
        return value

    def duration(self, key: str, default: str, *, minimum: float = 0.001) -> float:
        try:
            seconds = parse_duration(self.config.get(key, default))
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        if seconds < minimum:
            raise ValueError(f"{key} must be at least {minimum:g}s (e.g. '{default}')")
        return seconds


class Backoff:
    """The wait after a failed attempt: ``base``, doubling up to ``cap``; ``reset`` on success."""

    def __init__(self, base: float, cap: float = MAX_RETRY) -> None:
        self.base, self.cap = base, max(base, cap)
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return min(self.cap, self.base * 2.0 ** min(self.failures - 1, 30))

    def reset(self) -> None:
        self.failures = 0


class Servers:
    """A registry's servers, asked in turn: the first to answer (below 500) serves the request,
    and stays the first to ask next time."""

    def __init__(self, servers: tuple[Server, ...], timeout: float) -> None:
        self.servers, self.timeout = servers, timeout
        self.current = 0

    def __str__(self) -> str:
        return ",".join(str(server) for server in self.servers)

    async def request(self, method: str, path: str, *, timeout: float | None = None,
                      **kwargs: Any) -> Response:
        errors = []
        for i in range(len(self.servers)):
            index = (self.current + i) % len(self.servers)
            try:
                response = await request(self.servers[index], method, path,
                                         timeout=timeout or self.timeout, **kwargs)
            except HttpError as exc:
                errors.append(str(exc))
                continue
            if response.status >= 500:
                errors.append(f"{self.servers[index]}: HTTP {response.status} "
                              f"{response.body[:100]!r}")
                continue
            self.current = index
            return response
        raise HttpError("; ".join(errors))


class Keeper:
    """What a source publishes, and what it says when its registry fails or empties.

    - ``update`` publishes a complete endpoint set when it differs from the last one (an
      endpoint listed twice counts once); an empty set after a non-empty one is kept back
      while ``empty_protection`` is on (logged once per streak, and reported);
    - ``failed`` logs a failure streak once, and reports that the last endpoints are kept;
    - ``skip`` logs a malformed registry entry once (per entry and reason), with what was
      skipped and why.
    """

    #: distinct bad entries remembered (so each is logged once); beyond it, they are logged again
    REMEMBERED = 1000

    def __init__(self, label: str, empty_protection: bool, publish: Publish,
                 report: Report) -> None:
        self.label, self.empty_protection = label, empty_protection
        self._publish, self._report = publish, report
        self.last: list[Endpoint] = []
        self.published = False
        self.failing = False
        self.emptied = False
        self._skipped: set[tuple[str, str]] = set()

    def skip(self, entry: Any, reason: str) -> None:
        key = (repr(entry)[:500], reason)
        if key in self._skipped:
            return
        if len(self._skipped) >= self.REMEMBERED:
            self._skipped.clear()
        self._skipped.add(key)
        log.warning("bad_registry_entry", registry=self.label, entry=key[0], error=reason,
                    action="skipped")

    def update(self, endpoints: Iterable[Endpoint]) -> None:
        found: dict[tuple[str, int], Endpoint] = {}
        for endpoint in endpoints:
            found.setdefault((endpoint.host, endpoint.port), endpoint)
        fresh = list(found.values())
        recovered, self.failing = self.failing, False
        if not fresh and self.last and self.empty_protection:
            if not self.emptied:
                log.warning("registry_empty", registry=self.label, kept_endpoints=len(self.last),
                            reason="empty protection: the registry lists no instance")
            self.emptied = True
            self._report(f"{self.label} lists no instance: empty protection keeps the "
                         f"{len(self.last)} last known endpoints")
            return
        emptied, self.emptied = self.emptied, False
        if self.published and fresh == self.last:
            if recovered or emptied:
                log.info("registry_recovered", registry=self.label, endpoints=len(fresh))
                self._report(f"{self.label} answering again, no change")
            return
        if recovered:
            log.info("registry_recovered", registry=self.label, endpoints=len(fresh))
        log.info("registry_endpoints", registry=self.label,
                 endpoints=[f"{e.host}:{e.port}" for e in fresh])
        self.last, self.published = fresh, True
        self._publish(fresh)

    def failed(self, error: str, retry_in: float) -> None:
        if not self.failing:
            log.warning("registry_failed", registry=self.label, error=error,
                        kept_endpoints=len(self.last), retry_in=retry_in)
        self.failing = True
        self._report(f"{self.label} failed ({error}): keeping the {len(self.last)} last known "
                     f"endpoints; retrying in {retry_in:g}s")
