"""Dubbo providers from ZooKeeper: interface-level ``/dubbo/<interface>/providers`` (Dubbo 2),
application-level ``/services/<app>`` (Dubbo 3, mesh/discovery/zookeeper_app.py), or both.

Each child of that node is a URL-encoded provider URL, as Dubbo (and sofa-rpc-node) register:

    dubbo://10.0.0.7:20880/com.example.OrderService?group=g&version=1.0.0&weight=100&...

The source watches the children (kazoo, the ZooKeeper client; its callbacks run on kazoo's
threads and are handed to the trio loop), applies Dubbo's consumer matching and publishes the
endpoints. Settings (cluster ``discovery: {source: zookeeper, config: {...}}``):

``address`` (required, ``host:port[,...]``), ``interface`` (required), ``group`` (none:
providers without a group, as a Dubbo consumer without group; ``a,b``; ``*`` any),
``version`` (``*``), ``protocol`` (``dubbo``), ``root`` (``/dubbo``), ``empty_protection``
(``true``: a list that becomes empty keeps the last endpoints, so a ZooKeeper restart cannot
empty a cluster; passive health still ejects dead providers), ``session_timeout`` (``10s``),
``mode`` (``interface``; ``instance`` (or ``application``): Dubbo 3's application-level
registry; ``all``: both, as providers with ``register-mode: all`` write them),
``provided_by`` (Dubbo's ``provided-by``: the applications, instead of the
``/dubbo/mapping/<interface>`` node), ``services_root`` (``/services``).
docs/discovery.md has the details.

Provider parameters: ``enabled=false`` and ``disabled=true`` providers are skipped, ``weight``
(Dubbo's default 100) becomes the endpoint weight, ``version``/``group``/``application``/
``timeout``/``loadbalance`` become endpoint metadata. Not applied: ``warmup`` ramp-up, classifier.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import structlog
import trio

from mesh.config import Endpoint
from mesh.config._values import parse_duration
from mesh.discovery import Publish, Report
from mesh.discovery._dubbo3 import AppMatcher
from mesh.discovery.zookeeper_app import AppDiscovery, KazooAppWatcher

__all__ = ["ZooKeeperDubboSource", "parse_provider"]

log = structlog.get_logger("mesh.discovery")

_SETTINGS = ("address", "interface", "group", "version", "protocol", "root", "empty_protection",
             "session_timeout", "mode", "provided_by", "services_root")
#: ``mode`` values: Dubbo's ``register-mode`` names (``application`` is ``instance``)
MODES = {"interface": "interface", "instance": "instance", "application": "instance", "all": "all"}
_METADATA = ("version", "group", "application", "timeout", "loadbalance", "side", "dubbo",
             "release")
DEFAULT_WEIGHT = 100


class BadProvider(ValueError):
    """A registry entry that is not a usable provider URL; the message says why."""


def parse_provider(child: str) -> tuple[str, str, int, dict[str, str]]:
    """(protocol, host, port, parameters) of one registry child."""
    url = unquote(child)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadProvider(f"not a URL: {exc}") from None
    if not parts.scheme or not parts.hostname or port is None:
        raise BadProvider("no protocol, host or port")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    params.setdefault("interface", parts.path.lstrip("/"))
    return parts.scheme, parts.hostname, port, params


def _choices(value: Any, setting: str) -> frozenset[str] | None:
    """None for ``*`` (anything), else the accepted values."""
    if value is None:
        return frozenset({""})
    if not isinstance(value, str):
        raise ValueError(f"{setting} must be a string such as '1.0.0', 'a,b' or '*'")
    if value.strip() == "*":
        return None
    return frozenset(part.strip() for part in value.split(","))


class ZooKeeperDubboSource:
    def __init__(self, config: Mapping[str, Any]) -> None:
        unknown = sorted(set(config) - set(_SETTINGS))
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known: {', '.join(_SETTINGS)}")
        for required in ("address", "interface"):
            if not isinstance(config.get(required), str) or not config[required]:
                raise ValueError(f"{required} is required (a string)")
        self.address: str = config["address"]
        self.interface: str = config["interface"]
        self.groups = _choices(config.get("group"), "group")
        self.versions = _choices(config.get("version", "*"), "version")
        self.protocol = str(config.get("protocol", "dubbo"))
        root = str(config.get("root", "/dubbo")).rstrip("/")
        self.path = f"{root}/{self.interface}/providers"
        self.empty_protection = bool(config.get("empty_protection", True))
        try:
            self.session_timeout = parse_duration(config.get("session_timeout", 10.0))
        except ValueError as exc:
            raise ValueError(f"session_timeout: {exc}") from None
        mode = config.get("mode", "interface")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)} (Dubbo's register-mode), "
                             f"not {mode!r}")
        self.mode = MODES[mode]
        provided_by = config.get("provided_by", [])
        if isinstance(provided_by, str):
            provided_by = provided_by.split(",")
        if not isinstance(provided_by, list) or not all(isinstance(a, str) for a in provided_by):
            raise ValueError("provided_by must be application names: 'a,b' or a list")
        self.provided_by = sorted({a.strip() for a in provided_by if a.strip()})
        self.services_root = str(config.get("services_root", "/services")).rstrip("/")
        self.mapping_path = f"{root}/mapping/{self.interface}"
        self.metadata_root = f"{root}/metadata"
        self.matcher = AppMatcher(self.interface, self.protocol, self.groups, self.versions)
        self._reported: set[str] = set()  # bad entries already logged once
        self._connected = False
        self._lost_at = 0.0  # trio time the connection was lost
        self._last: list[Endpoint] = []
        self._iface: list[Endpoint] | None = None  # interface-level providers, once read
        self._apps: AppDiscovery | None = None  # application-level state of the current run
        self._seen: tuple[list[Endpoint], list[str]] | None = None  # the last merge

    # -- matching (pure; tested on its own) -----------------------------------------------------

    def endpoints(self, children: Sequence[str]) -> list[Endpoint]:
        """The providers among ``children`` that this consumer may call."""
        found: dict[tuple[str, int], Endpoint] = {}
        for child in children:
            try:
                endpoint = self._endpoint(child)
            except BadProvider as exc:
                if child not in self._reported:
                    self._reported.add(child)
                    log.warning("bad_registry_entry", path=self.path, entry=child[:200],
                                error=str(exc), action="skipped")
                continue
            if endpoint is not None:
                found.setdefault((endpoint.host, endpoint.port), endpoint)
        return list(found.values())

    def _endpoint(self, child: str) -> Endpoint | None:
        protocol, host, port, params = parse_provider(child)
        if protocol != self.protocol or params.get("interface") != self.interface:
            return None
        if params.get("category", "providers") != "providers":
            return None
        if params.get("enabled", "true") == "false" or params.get("disabled") == "true":
            return None
        if self.groups is not None and params.get("group", "") not in self.groups:
            return None
        if self.versions is not None and params.get("version", "") not in self.versions:
            return None
        if host in ("0.0.0.0", "::"):
            raise BadProvider(f"the provider registered the wildcard address {host}")
        try:
            weight = int(params.get("weight", DEFAULT_WEIGHT))
        except ValueError:
            raise BadProvider(f"weight {params.get('weight')!r} is not a number") from None
        metadata = {key: params[key] for key in _METADATA if params.get(key)}
        return Endpoint(host, port, max(1, weight), metadata)

    # -- watching -------------------------------------------------------------------------------

    def _publish(self, publish: Publish, children: Sequence[str],
                 report: Report | None = None) -> None:
        """The providers node's children (interface level) changed."""
        self._iface = self.endpoints(children)
        self._merge(publish, report, force=True)

    def _merge(self, publish: Publish, report: Report | None, force: bool = False) -> None:
        """Publish what the interface and application levels list together, once both were
        read (``mode: all``); application-level changes only when something changed."""
        parts: list[list[Endpoint]] = []
        notes: list[str] = []
        if self.mode != "instance":
            if self._iface is None:
                return
            parts.append(self._iface)
        if self.mode != "interface":
            snapshot = None if self._apps is None else self._apps.snapshot()
            if snapshot is None:
                return  # the mapping, an application or a revision's metadata is being read
            parts.append(snapshot[0])
            notes = snapshot[1]
        found: dict[tuple[str, int], Endpoint] = {}
        for endpoint in (e for part in parts for e in part):
            found.setdefault((endpoint.host, endpoint.port), endpoint)
        endpoints = list(found.values())
        if not force and self._seen == (endpoints, notes):
            return
        self._seen = (endpoints, notes)
        where = self.path if self.mode == "interface" else f"{self.mapping_path} ({self.mode})"
        if not endpoints and self._last and self.empty_protection:
            log.warning("registry_empty", path=where, kept_endpoints=len(self._last),
                        reason="empty protection: the registry lists no provider")
        else:
            self._last = endpoints
            log.info("providers", path=where, endpoints=[f"{e.host}:{e.port}" for e in endpoints])
            publish(endpoints)
        if notes and report is not None:
            report(f"zookeeper {self.address}: {'; '.join(notes)}")

    async def _watch_connection(self) -> None:
        """Raise once the session has been gone for long: run() starts over with a new client.

        kazoo resumes its session when ZooKeeper comes back, but a ZooKeeper that lost its data
        refuses a client that has seen newer transactions than it has, forever; a new client
        with a new session is accepted. The cluster keeps its endpoints meanwhile.
        """
        limit = max(2 * self.session_timeout, 5.0)
        while True:
            await trio.sleep(1.0)
            if not self._connected and trio.current_time() - self._lost_at > limit:
                raise RuntimeError(f"ZooKeeper {self.address} unreachable for {limit:g}s: "
                                   "starting again with a new session")

    def _state_changed(self, report: Report, state: str, connected: bool) -> None:
        if not connected and self._connected:
            self._lost_at = trio.current_time()
        self._connected = connected
        if connected:
            log.info("zookeeper_state", address=self.address, state=state)
            report(f"zookeeper {self.address} connected")
        else:
            log.warning("zookeeper_state", address=self.address, state=state,
                        kept_endpoints=len(self._last))
            report(f"zookeeper {self.address} {state.lower()}: keeping the last known endpoints")

    async def run(self, publish: Publish, report: Report) -> None:
        try:
            from kazoo.client import KazooClient, KazooState  # type: ignore[import-untyped]
            from kazoo.recipe.watchers import (  # type: ignore[import-untyped]
                ChildrenWatch,
                DataWatch,
            )
        except ImportError:
            raise RuntimeError("the zookeeper source needs kazoo (pip install kazoo)") from None
        token = trio.lowlevel.current_trio_token()
        client = KazooClient(hosts=self.address, timeout=self.session_timeout,
                             connection_retry={"max_tries": -1, "delay": 0.2, "max_delay": 2.0})
        stopping = threading.Event()

        def to_loop(fn: Any, *args: Any) -> None:
            """Run ``fn`` on the trio loop from a kazoo thread (dropped once we stop)."""
            if stopping.is_set():
                return
            try:
                trio.from_thread.run_sync(fn, *args, trio_token=token)
            except (trio.RunFinishedError, trio.Cancelled):
                pass

        def on_state(state: Any) -> None:
            to_loop(self._state_changed, report, str(state), state == KazooState.CONNECTED)

        def on_children(children: list[str]) -> None:
            to_loop(self._publish, publish, children, report)

        watches: list[Any] = []  # the current ChildrenWatch
        lock = threading.Lock()

        def watch_children() -> None:
            # kazoo's ChildrenWatch stops for good when its node is deleted (or is missing after
            # a reconnect): start a new one each time the node exists again
            with lock:
                if watches and not watches[-1]._stopped:
                    return
                watches[:] = [ChildrenWatch(client, self.path, on_children)]

        def on_node(data: Any, stat: Any) -> None:
            if stat is None:  # the providers node is gone: no provider listed
                to_loop(self._publish, publish, [], report)
            else:
                client.handler.spawn(watch_children)

        self._iface = None  # read again in this session
        watcher = None
        if self.mode != "interface":
            watcher = KazooAppWatcher(client, to_loop, (self.mapping_path, self.services_root,
                                                        self.metadata_root))
            self._apps = watcher.state = AppDiscovery(
                self.matcher, watcher, lambda: self._merge(publish, report), self._reported,
                (self.services_root, self.metadata_root), self.provided_by)

        def start() -> None:
            client.start(timeout=self.session_timeout)
            client.add_listener(on_state)
            if self.mode != "instance":
                client.ensure_path(self.path)
                DataWatch(client, self.path, on_node)

        try:
            await trio.to_thread.run_sync(start, abandon_on_cancel=True)
            self._connected = True
            if self._apps is not None:
                self._apps.begin()
            await self._watch_connection()
        finally:
            stopping.set()
            self._apps = None
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_stop, client, watcher)


def _stop(client: Any, watcher: KazooAppWatcher | None = None) -> None:
    if watcher is not None:
        watcher.close()
    try:
        client.stop()
        client.close()
    except Exception:
        pass  # stopping a client that never connected
