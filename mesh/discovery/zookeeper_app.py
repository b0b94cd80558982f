"""Dubbo 3 application-level discovery in ZooKeeper: the ``zookeeper`` source's ``mode: instance``.

The nodes, as Dubbo 3 writes them (``register-mode: instance`` or ``all``; their JSON is read by
mesh/discovery/_dubbo3.py):

- ``<root>/mapping/<interface>``: the applications exporting the interface, comma-separated
  (ZookeeperMetadataReport.registerServiceAppMapping), watched; or ``provided_by``;
- ``<services_root>/<app>/<host>:<port>``: one ephemeral node per instance, Curator's
  ServiceInstance JSON (ZookeeperServiceDiscovery), watched with its data (Dubbo rewrites it
  when the revision changes);
- ``<root>/metadata/<app>/<revision>``: the MetadataInfo of a revision with ``remote`` storage
  (ZookeeperMetadataReport.publishAppMetadata), read once (a revision is the hash of its
  metadata), watched while missing or malformed.

With ``local`` storage (Dubbo's default) the metadata is only served by the provider's
MetadataService over RPC, which rpcmesh does not call: every instance that serves the protocol
is used, *not* filtered by group or version, and the source reports it on /clusters.

The state lives on the trio loop (:class:`AppDiscovery`): nothing is published until the mapping,
every mapped application and every revision's metadata were read once, so a start (or a new
session) never publishes a partial set. :class:`KazooAppWatcher` runs the ZooKeeper side (a
DataWatch on the mapping, a kazoo TreeCache per application, a DataWatch per metadata node) on
kazoo's threads and hands every change to the loop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

import structlog

from mesh.config import Endpoint
from mesh.discovery._dubbo3 import (
    EMPTY_REVISION,
    AppMatcher,
    BadEntry,
    Instance,
    Service,
    parse_instance,
    parse_mapping,
    parse_metadata,
)

__all__ = ["AppDiscovery", "KazooAppWatcher"]

log = structlog.get_logger("mesh.discovery")


class Watcher(Protocol):
    def watch_mapping(self) -> None: ...
    def watch_app(self, app: str, gen: int) -> None: ...
    def unwatch_app(self, app: str, gen: int) -> None: ...
    def fetch_metadata(self, app: str, revision: str) -> None: ...


_MISSING = "missing"  # a metadata node that does not exist (yet)


class AppDiscovery:
    """The mapped applications, their instances and metadata; on the trio loop only."""

    def __init__(self, matcher: AppMatcher, watcher: Watcher, changed: Callable[[], None],
                 reported: set[str], paths: tuple[str, str], provided_by: Sequence[str] = ()
                 ) -> None:
        self.matcher, self.watcher, self.changed = matcher, watcher, changed
        self.services_root, self.metadata_root = paths
        self.provided_by = list(provided_by)
        self.reported = reported  # what was logged already (kept by the source across runs)
        self.apps: list[str] | None = None  # None until the mapping was read
        self.trees: dict[str, int] = {}  # app -> generation of its watch
        self.initialized: set[str] = set()
        self.instances: dict[str, dict[str, Instance | BadEntry]] = {}
        self.metadata: dict[tuple[str, str], tuple[Service, ...] | BadEntry | str] = {}
        self.pending: set[tuple[str, str]] = set()
        self._gen = 0

    def begin(self) -> None:
        if self.provided_by:
            self.on_mapping(self.provided_by)
        else:
            self.watcher.watch_mapping()

    # -- events (handed over from kazoo's threads) ----------------------------------------------

    def on_mapping(self, apps: Sequence[str]) -> None:
        self.apps = list(apps)
        for app in [a for a in self.trees if a not in apps]:
            self.watcher.unwatch_app(app, self.trees.pop(app))
            self.instances.pop(app, None)
            self.initialized.discard(app)
        for app in apps:
            if app not in self.trees:
                self._gen += 1
                self.trees[app] = self._gen
                self.instances[app] = {}
                self.watcher.watch_app(app, self._gen)
        log.info("dubbo3_applications", apps=self.apps)
        self.changed()

    def on_instance(self, app: str, gen: int, child: str, inst: Instance | BadEntry | None
                    ) -> None:
        if self.trees.get(app) != gen:
            return  # from a watch that was stopped
        if inst is None:
            self.instances[app].pop(child, None)
        else:
            self.instances[app][child] = inst
            if isinstance(inst, BadEntry):
                self._bad(f"{self.services_root}/{app}/{child}", inst)
            elif inst.storage == "remote" and inst.revision != EMPTY_REVISION:
                key = (app, inst.revision)
                if key not in self.metadata and key not in self.pending:
                    self.pending.add(key)
                    self.watcher.fetch_metadata(app, inst.revision)
        self.changed()

    def on_initialized(self, app: str, gen: int) -> None:
        if self.trees.get(app) == gen:
            self.initialized.add(app)
            self.changed()

    def on_metadata(self, app: str, revision: str, services: tuple[Service, ...] | BadEntry | None
                    ) -> None:
        key = (app, revision)
        self.pending.discard(key)
        self.metadata[key] = _MISSING if services is None else services
        if isinstance(services, BadEntry):
            self._bad(f"{self.metadata_root}/{app}/{revision}", services)
        self.changed()

    # -- the endpoints --------------------------------------------------------------------------

    def snapshot(self) -> tuple[list[Endpoint], list[str]] | None:
        """(endpoints, notes on what could not be applied), or None while still reading."""
        if self.apps is None or self.pending or not self.initialized.issuperset(self.apps):
            return None
        found: dict[tuple[str, int], Endpoint] = {}
        local: set[str] = set()
        waiting: list[str] = []
        used: set[tuple[str, str]] = set()
        for app in self.apps:
            instances = self.instances.get(app, {})
            for child in sorted(instances):
                inst = instances[child]
                if isinstance(inst, BadEntry) or inst.revision == EMPTY_REVISION:
                    continue
                services: tuple[Service, ...] | None = None
                if inst.storage == "remote":
                    used.add((app, inst.revision))
                    meta = self.metadata.get((app, inst.revision))
                    if isinstance(meta, BadEntry):
                        continue
                    if not isinstance(meta, tuple):
                        waiting.append(f"{self.metadata_root}/{app}/{inst.revision}")
                        continue
                    services = meta
                else:
                    local.add(app)
                try:
                    endpoints = self.matcher.endpoints(inst, services)
                except BadEntry as exc:
                    self._bad(f"{self.services_root}/{app}/{child}", exc)
                    continue
                for endpoint in endpoints:
                    found.setdefault((endpoint.host, endpoint.port), endpoint)
        for key in [k for k in self.metadata if k not in used]:
            del self.metadata[key]  # a revision no instance has any more
        notes = []
        if local:
            names = ", ".join(sorted(local))
            if f"local:{names}" not in self.reported:
                self.reported.add(f"local:{names}")
                log.warning("dubbo3_local_metadata", apps=sorted(local),
                            action="instances used without group/version filtering",
                            fix="metadata-type: remote on the providers")
            notes.append(f"metadata of {names} is local (served by RPC): instances not "
                         "filtered by group/version (needs metadata-type remote)")
        if waiting:
            notes.append(f"{len(waiting)} instances waiting for metadata {waiting[0]}")
        return list(found.values()), notes

    def _bad(self, path: str, exc: BadEntry) -> None:
        key = f"{path} {exc}"
        if key not in self.reported:
            self.reported.add(key)
            log.warning("bad_registry_entry", path=path, error=str(exc), action="skipped")


class KazooAppWatcher:
    """The ZooKeeper side of :class:`AppDiscovery`, on kazoo's threads.

    Watches are started and stopped by one worker thread, in order (they block on ZooKeeper);
    every change goes to the trio loop through ``to_loop``. kazoo's recipes set their watches
    again after a reconnect, and a TreeCache also reads its subtree again then.
    """

    def __init__(self, client: Any, to_loop: Callable[..., None], paths: tuple[str, str, str]
                 ) -> None:
        self.client, self.to_loop = client, to_loop
        self.mapping_path, self.services_root, self.metadata_root = paths
        self.state: AppDiscovery | None = None
        self._ops: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = (
            queue.SimpleQueue())
        self._trees: dict[tuple[str, int], Any] = {}
        self._dropped: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="zookeeper-dubbo3", daemon=True)
        self._worker.start()

    # called on the trio loop: queue the work, never block
    def watch_mapping(self) -> None:
        self._ops.put((self._watch_mapping, ()))

    def watch_app(self, app: str, gen: int) -> None:
        self._ops.put((self._start_tree, (app, gen)))

    def unwatch_app(self, app: str, gen: int) -> None:
        with self._lock:
            self._dropped.add((app, gen))
            tree = self._trees.pop((app, gen), None)
        if tree is not None:
            self._ops.put((tree.close, ()))

    def fetch_metadata(self, app: str, revision: str) -> None:
        self._ops.put((self._watch_metadata, (app, revision)))

    def close(self) -> None:
        """Stop every watch (from any thread; before the client stops)."""
        with self._lock:
            self._closed = True
            trees = list(self._trees.values())
            self._trees.clear()
        self._ops.put(None)
        for tree in trees:
            _quietly(tree.close)

    # on the worker thread
    def _work(self) -> None:
        while (op := self._ops.get()) is not None:
            try:
                op[0](*op[1])
            except Exception as exc:  # the client stopped, or a watch could not be set
                if not self._closed:
                    log.warning("zookeeper_watch_failed", error=repr(exc))

    def _watch_mapping(self) -> None:
        from kazoo.recipe.watchers import DataWatch  # type: ignore[import-untyped]

        def on_data(data: bytes | None, stat: Any) -> bool | None:
            if self._closed:
                return False
            self._hand(lambda s: s.on_mapping, parse_mapping(data))
            return None

        DataWatch(self.client, self.mapping_path, on_data)

    def _start_tree(self, app: str, gen: int) -> None:
        from kazoo.recipe.cache import TreeCache  # type: ignore[import-untyped]

        root = f"{self.services_root}/{app}"
        tree = TreeCache(self.client, root)
        tree.listen(partial(self._on_tree, app, gen, root))
        with self._lock:
            if self._closed or (app, gen) in self._dropped:
                return
            self._trees[(app, gen)] = tree
        tree.start()
        with self._lock:
            if self._closed:
                _quietly(tree.close)

    def _on_tree(self, app: str, gen: int, root: str, event: Any) -> None:
        from kazoo.recipe.cache import TreeEvent

        kind, data = event.event_type, event.event_data
        if kind == TreeEvent.INITIALIZED:
            self._hand(lambda s: s.on_initialized, app, gen)
            return
        if kind not in (TreeEvent.NODE_ADDED, TreeEvent.NODE_UPDATED, TreeEvent.NODE_REMOVED):
            return
        parent, _, child = data.path.rpartition("/")
        if parent != root or not child:
            return  # the application node itself, or deeper
        inst: Instance | BadEntry | None = None
        if kind != TreeEvent.NODE_REMOVED:
            try:
                inst = parse_instance(app, child, data.data)
            except BadEntry as exc:
                inst = exc
        self._hand(lambda s: s.on_instance, app, gen, child, inst)

    def _watch_metadata(self, app: str, revision: str) -> None:
        from kazoo.recipe.watchers import DataWatch

        def on_data(data: bytes | None, stat: Any) -> bool | None:
            if self._closed:
                return False
            services: tuple[Service, ...] | BadEntry | None = None
            if stat is not None:
                try:
                    services = parse_metadata(data)
                except BadEntry as exc:
                    services = exc
            self._hand(lambda s: s.on_metadata, app, revision, services)
            # read once: a revision's metadata does not change (the revision is its hash); a
            # node missing or malformed is watched until it is there and right
            return False if isinstance(services, tuple) else None

        DataWatch(self.client, f"{self.metadata_root}/{app}/{revision}", on_data)

    def _hand(self, method: Callable[[AppDiscovery], Callable[..., None]], *args: Any) -> None:
        if self.state is not None and not self._closed:
            self.to_loop(method(self.state), *args)


def _quietly(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:
        pass
