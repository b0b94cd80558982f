"""Dubbo 3 application-level discovery of the zookeeper source (``mode: instance`` / ``all``).

mesh/discovery/_dubbo3.py reads the JSON Dubbo 3 writes (samples: tests/golden/dubbo3/, with
the Dubbo source each follows); mesh/discovery/zookeeper_app.py watches it in ZooKeeper. The
registry tests run a real ZooKeeper 3.8 (tests/integration/zookeeper_server.py, one for the
module) into which :class:`Dubbo3Registry` writes nodes exactly as a Dubbo 3 provider with
``register-mode: instance`` does (mapping, ephemeral Curator instances, MetadataInfo of each
revision), while the source runs under trio.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import mesh.discovery.zookeeper
import mesh.discovery.zookeeper_app
from mesh.config import Endpoint
from mesh.discovery._dubbo3 import (
    AppMatcher,
    BadEntry,
    parse_instance,
    parse_mapping,
    parse_metadata,
)
from mesh.discovery.zookeeper import ZooKeeperDubboSource
from tests.integration.zookeeper_server import ZooKeeperServer
from tests.peers.registries.harness import Logs, Watch

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "dubbo3"
IFACE = "com.rpcmesh.test.EchoService"
HOST = "127.0.0.1"


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


def golden_bytes(name: str) -> bytes:
    return json.dumps(golden(name), separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------
# what Dubbo 3 writes


def instance_json(app: str, port: int, revision: str, *, storage: str = "remote",
                  endpoints: dict[str, int] | None = None, host: str = HOST,
                  **extra: str) -> bytes:
    """Curator's ServiceInstance JSON of a Dubbo 3 instance (tests/golden/dubbo3/instance_remote.json)."""
    doc = golden("instance_remote.json")
    ident = f"{host}:{port}"
    doc.update(name=app, id=ident, address=host, port=port)
    meta = doc["payload"]["metadata"]
    doc["payload"].update(id=ident, name=app)
    ports = {"dubbo": port} if endpoints is None else endpoints
    meta["dubbo.endpoints"] = json.dumps([{"port": p, "protocol": k} for k, p in ports.items()],
                                         separators=(",", ":"))
    meta["dubbo.metadata.revision"] = revision
    meta["dubbo.metadata.storage-type"] = storage
    meta.update(extra)
    doc["payload"]["metadata"] = dict(sorted(meta.items()))  # getSortedMetadata()
    return json.dumps(doc, separators=(",", ":")).encode()


def service(version: str = "1.0.0", group: str = "", protocol: str = "dubbo",
            port: int | None = None, interface: str = IFACE, **params: str) -> dict[str, Any]:
    """One MetadataInfo.ServiceInfo (after tests/golden/dubbo3/metadata_info.json)."""
    info: dict[str, Any] = {"name": interface, "protocol": protocol, "path": interface}
    if group:
        info["group"] = group
    if version:
        info["version"] = version
    if port is not None:
        info["port"] = port
    info["params"] = {"application": "x", "interface": interface, "side": "provider",
                      "release": "3.3.1", "dubbo": "2.0.2",
                      **({"group": group} if group else {}),
                      **({"version": version} if version else {}), **params}
    return info


def metadata_json(app: str, revision: str, *services: dict[str, Any]) -> bytes:
    def key(s: dict[str, Any]) -> str:
        head = f"{s['group']}/" if s.get("group") else ""
        tail = f":{s['version']}" if s.get("version") else ""
        return f"{head}{s['name']}{tail}:{s['protocol']}"

    doc = {"app": app, "revision": revision, "services": {key(s): s for s in services}}
    return json.dumps(doc, separators=(",", ":")).encode()


class Dubbo3Registry:
    """Writes ZooKeeper nodes as a Dubbo 3 provider (``register-mode: instance``) does, with a
    kazoo session of its own (the instances are its ephemeral nodes)."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        from kazoo.client import KazooClient

        self.client = KazooClient(hosts=address, timeout=timeout)
        self.client.start(timeout=timeout)

    def map(self, interface: str, *apps: str) -> None:
        """ZookeeperMetadataReport.registerServiceAppMapping: /dubbo/mapping/<interface>."""
        self._put(f"/dubbo/mapping/{interface}", ",".join(apps).encode())

    def metadata(self, app: str, revision: str, *services: dict[str, Any],
                 raw: bytes | None = None) -> None:
        """ZookeeperMetadataReport.publishAppMetadata: /dubbo/metadata/<app>/<revision>."""
        self._put(f"/dubbo/metadata/{app}/{revision}",
                  raw if raw is not None else metadata_json(app, revision, *services))

    def register(self, app: str, port: int, revision: str, *, raw: bytes | None = None,
                 host: str = HOST, **kw: Any) -> str:
        """ZookeeperServiceDiscovery.doRegister: an ephemeral /services/<app>/<host>:<port>."""
        path = f"/services/{app}/{host}:{port}"
        data = raw if raw is not None else instance_json(app, port, revision, host=host, **kw)
        self.client.create(path, data, ephemeral=True, makepath=True)
        return path

    def update(self, app: str, port: int, revision: str, **kw: Any) -> None:
        """Curator's updateService (a new revision): setData on the instance node."""
        self.client.set(f"/services/{app}/{HOST}:{port}", instance_json(app, port, revision, **kw))

    def unregister(self, app: str, port: int) -> None:
        self.client.delete(f"/services/{app}/{HOST}:{port}")

    def _put(self, path: str, data: bytes) -> None:
        if self.client.exists(path):
            self.client.set(path, data)
        else:
            self.client.create(path, data, makepath=True)

    def close(self) -> None:
        self.client.stop()
        self.client.close()


# --------------------------------------------------------------------------------------------
# the JSON shapes (no ZooKeeper)


def test_golden_nodes_parse() -> None:
    inst = parse_instance("echo-provider", "127.0.0.1:20880", golden_bytes("instance_remote.json"))
    assert (inst.host, inst.port, inst.storage) == ("127.0.0.1", 20880, "remote")
    assert inst.revision == "6c9d2ed8d3a6c4b8f0e5a1b9a7d3e2f1"
    assert dict(inst.ports) == {"dubbo": 20880, "tri": 50051}
    local = parse_instance("echo-provider-local", "x", golden_bytes("instance_local.json"))
    assert (local.port, local.storage, dict(local.ports)) == (20881, "local", {"dubbo": 20881})
    services = parse_metadata(golden_bytes("metadata_info.json"))
    assert [(s.name, s.group, s.version, s.protocol, s.port) for s in services] == [
        (IFACE, "canary", "2.0.0", "dubbo", 20880),
        (IFACE, "", "1.0.0", "dubbo", 20880),
        (IFACE, "", "1.0.0", "tri", 50051),
        ("com.rpcmesh.test.OtherService", "", "", "dubbo", 20880)]
    assert parse_mapping((GOLDEN / "mapping.txt").read_bytes()) == [
        "echo-provider", "echo-provider-local"]
    assert parse_mapping(b" b, a,,a ,") == ["a", "b"] and parse_mapping(None) == []


def test_consumer_matching_and_ports() -> None:
    inst = parse_instance("echo-provider", "i", golden_bytes("instance_remote.json"))
    services = parse_metadata(golden_bytes("metadata_info.json"))

    def match(protocol: str = "dubbo", groups: Any = frozenset({""}), versions: Any = None,
              services: Any = services) -> list[tuple[int, int, str, str]]:
        found = AppMatcher(IFACE, protocol, groups, versions).endpoints(inst, services)
        return [(e.port, e.weight, e.metadata.get("version", ""), e.metadata.get("group", ""))
                for e in found]

    assert match(versions=frozenset({"1.0.0"})) == [(20880, 100, "1.0.0", "")]
    assert match(groups=frozenset({"canary"})) == [(20880, 200, "2.0.0", "canary")]  # its weight
    assert match(groups=None, versions=None) == [(20880, 200, "2.0.0", "canary"),
                                                 (20880, 100, "1.0.0", "")]
    assert match(versions=frozenset({"3.0.0"})) == []
    assert match(protocol="tri") == [(50051, 100, "1.0.0", "")]  # the service's own port
    [one] = AppMatcher(IFACE, "dubbo", frozenset({""}), None).endpoints(inst, services[1:2])
    assert one.metadata == {"application": "echo-provider", "revision": inst.revision,
                            "version": "1.0.0", "timeout": "3000", "side": "provider",
                            "dubbo": "2.0.2", "release": "3.3.1"}
    # no port in the service (dubbo-go leaves it out): dubbo.endpoints, else the instance port
    no_port = (parse_metadata(metadata_json("a", "r", service(protocol="tri"))))
    assert match(protocol="tri", services=no_port) == [(50051, 100, "1.0.0", "")]
    bare = parse_instance("a", "i", instance_json("a", 7001, "r", endpoints={}))
    assert [e.port for e in AppMatcher(IFACE, "tri", frozenset({""}), None).endpoints(
        bare, no_port)] == [7001]
    # local storage: no metadata, every instance that serves the protocol
    assert [e.port for e in AppMatcher(IFACE, "dubbo", frozenset({""}), frozenset({"9"})).endpoints(
        inst, None)] == [20880]
    assert AppMatcher(IFACE, "rest", None, None).endpoints(inst, None) == []
    assert [e.port for e in AppMatcher(IFACE, "rest", None, None).endpoints(bare, None)] == [7001]


@pytest.mark.parametrize("raw, error", [
    (b"", "empty instance node"),
    (b"{not json", "not JSON"),
    (b"[1]", "not a JSON object"),
    (json.dumps({"port": 1, "payload": {}}).encode(), "no address"),
    (instance_json("a", 1, "r", host="0.0.0.0"), "wildcard"),
    (instance_json("a", 1, "r").replace(b'"port":1,', b'"port":"1",'), "not 1-65535"),
    (json.dumps({"address": "h", "port": 1, "payload": None}).encode(), "no payload"),
    (json.dumps({"address": "h", "port": 1, "payload": {"metadata": {"a": 1}}}).encode(),
     "not a map of strings"),
    (json.dumps({"address": "h", "port": 1, "payload": {"metadata": {}}}).encode(),
     "no dubbo.metadata.revision"),
    (instance_json("a", 1, "r", **{"dubbo.endpoints": "[{\"port\":0}]"}), "not {port, protocol}"),
    (instance_json("a", 1, "r", **{"dubbo.endpoints": "nope"}), "not JSON"),
])
def test_malformed_instances_are_refused(raw: bytes, error: str) -> None:
    with pytest.raises(BadEntry, match=error):
        parse_instance("a", "i", raw)


def test_malformed_metadata_is_refused() -> None:
    for raw, error in [(b"null", "not a JSON object"), (b'{"services": []}', "no services"),
                       (b'{"services": {"k": 1}}', "not an object"),
                       (b'{"services": {"k": {"name": 5}}}', "not a string"),
                       (b'{"services": {"k": {"name": "n", "port": "80"}}}', "not a number"),
                       (b'{"services": {"k": {"name": "n", "params": {"a": null}}}}', "strings")]:
        with pytest.raises(BadEntry, match=error):
            parse_metadata(raw)
    inst = parse_instance("a", "i", instance_json("a", 1, "r", weight="heavy"))
    with pytest.raises(BadEntry, match="weight 'heavy'"):
        AppMatcher(IFACE, "dubbo", None, None).endpoints(inst, None)


def test_settings() -> None:
    base = {"address": "127.0.0.1:2181", "interface": IFACE}
    assert ZooKeeperDubboSource(base).mode == "interface"
    assert ZooKeeperDubboSource({**base, "mode": "application"}).mode == "instance"
    src = ZooKeeperDubboSource({**base, "mode": "all", "provided_by": "b, a", "root": "/x/"})
    assert (src.mode, src.provided_by) == ("all", ["a", "b"])
    assert (src.mapping_path, src.metadata_root) == (f"/x/mapping/{IFACE}", "/x/metadata")
    with pytest.raises(ValueError, match="mode must be one of interface, instance"):
        ZooKeeperDubboSource({**base, "mode": "FORCE_APPLICATION"})
    with pytest.raises(ValueError, match="provided_by"):
        ZooKeeperDubboSource({**base, "provided_by": 3})


# --------------------------------------------------------------------------------------------
# against a real ZooKeeper


@pytest.fixture(scope="module")
def zk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"))
    try:
        server.start()
        yield server
    finally:
        server.close()


_SERIAL = itertools.count(1)


@pytest.fixture
def names() -> tuple[str, str, str]:
    """(interface, app, app) names of this test only (the ZooKeeper is the module's)."""
    n = next(_SERIAL)
    return f"{IFACE}{n}", f"echo-provider-{n}", f"echo-other-{n}"


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Logs:
    logs = Logs()
    monkeypatch.setattr(mesh.discovery.zookeeper, "log", logs)
    monkeypatch.setattr(mesh.discovery.zookeeper_app, "log", logs)
    return logs


@pytest.fixture
def registry(zk: ZooKeeperServer) -> Iterator[Dubbo3Registry]:
    reg = Dubbo3Registry(zk.address)
    try:
        yield reg
    finally:
        reg.close()


def app_source(zk: ZooKeeperServer, interface: str, **config: Any) -> ZooKeeperDubboSource:
    return ZooKeeperDubboSource({"address": zk.address, "interface": interface,
                                 "mode": "instance", "session_timeout": "4s", **config})


def run(*sources: ZooKeeperDubboSource,
        body: Callable[..., Awaitable[None]]) -> None:
    """Run the sources under trio while ``body(*watches)`` drives the registry."""

    async def main() -> None:
        watches = [Watch(s) for s in sources]
        async with trio.open_nursery() as nursery:
            for watch in watches:
                nursery.start_soon(watch.run)
            await body(*watches)
            nursery.cancel_scope.cancel()

    trio.run(main)


async def zk_do(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """A blocking registry write, off the trio loop."""
    return await trio.to_thread.run_sync(lambda: fn(*args, **kw))


def ports(watch: Watch) -> list[int]:
    return sorted(e.port for e in watch.last)


async def until_ports(watch: Watch, expected: list[int]) -> float:
    """Wait until the last published set has ``expected`` ports; the seconds it took."""
    start = time.monotonic()
    await watch.until(lambda: ports(watch) == sorted(expected), f"ports {expected}")
    return time.monotonic() - start


def test_instances_appear_change_and_go(zk: ZooKeeperServer, registry: Dubbo3Registry,
                                        names: tuple[str, str, str], logs: Logs) -> None:
    iface, app, other = names
    registry.map(iface, app)
    registry.metadata(app, "r1", service(interface=iface))
    registry.register(app, 21001, "r1")

    async def body(watch: Watch) -> None:
        await until_ports(watch, [21001])
        assert watch.published[0] == [Endpoint(HOST, 21001, 100, {
            "application": app, "revision": "r1", "version": "1.0.0", "side": "provider",
            "dubbo": "2.0.2", "release": "3.3.1"})]  # the first publish is the whole set
        # a second application (appended to the mapping, as Dubbo does) and its instance
        await zk_do(registry.metadata, other, "r2", service(interface=iface))
        await zk_do(registry.register, other, 21002, "r2")
        await zk_do(registry.map, iface, app, other)
        took = await until_ports(watch, [21001, 21002])
        assert took < 1.0, took
        # a second instance of the first application
        await zk_do(registry.register, app, 21003, "r1")
        took = await until_ports(watch, [21001, 21002, 21003])
        assert took < 1.0, took
        # one goes away (unregistered), then an application leaves the mapping
        await zk_do(registry.unregister, app, 21001)
        await until_ports(watch, [21002, 21003])
        await zk_do(registry.map, iface, app)
        await until_ports(watch, [21003])
        # every instance gone: empty protection keeps the last one
        count = len(watch.published)
        await zk_do(registry.unregister, app, 21003)
        await watch.until(lambda: bool(logs.named("registry_empty")), "registry_empty logged")
        assert len(watch.published) == count and ports(watch) == [21003]
        # a new instance after that is used
        await zk_do(registry.register, app, 21004, "r1")
        await until_ports(watch, [21004])

    run(app_source(zk, iface, version="1.0.0"), body=body)


def test_remote_metadata_filters_by_version_and_group(
        zk: ZooKeeperServer, registry: Dubbo3Registry, names: tuple[str, str, str]) -> None:
    iface, app, local = names
    registry.map(iface, app, local)
    registry.metadata(app, "v1", service("1.0.0", port=22001, interface=iface))
    registry.metadata(app, "v2", service("2.0.0", "canary", port=22002, weight="50",
                                         interface=iface))
    registry.metadata(app, "v3", service("1.0.0", protocol="tri", port=22003, interface=iface))
    registry.register(app, 22001, "v1", storage="remote")
    registry.register(app, 22002, "v2", storage="remote")
    registry.register(app, 22003, "v3", storage="remote")  # serves the interface in tri only
    registry.register(app, 22009, "0", storage="remote")  # revision 0: exports nothing
    registry.register(local, 22004, "l1", storage="local")

    async def body(v1: Watch, canary: Watch, both: Watch, tri: Watch) -> None:
        await until_ports(v1, [22001, 22004])  # local metadata: not filtered
        note = await v1.until_reported("metadata of", local, "is local", "group/version")
        assert app not in note.split("is local")[0]
        await until_ports(canary, [22002, 22004])
        assert [e.weight for e in canary.last if e.port == 22002] == [50]
        await until_ports(both, [22001, 22002])  # provided_by: the mapping is not read
        await until_ports(tri, [22003])
        # Dubbo rewrites an instance's node when its revision changes: v2 -> v1
        await zk_do(registry.metadata, app, "v1b", service("1.0.0", port=22002, interface=iface))
        await zk_do(registry.update, app, 22002, "v1b", storage="remote")
        took = await until_ports(v1, [22001, 22002, 22004])
        assert took < 1.0, took
        await until_ports(canary, [22004])

    run(app_source(zk, iface, version="1.0.0"),
        app_source(zk, iface, version="2.0.0", group="canary"),
        app_source(zk, iface, version="*", group="*", provided_by=app),
        app_source(zk, iface, protocol="tri"), body=body)


def test_malformed_nodes_are_skipped_and_logged_once(
        zk: ZooKeeperServer, registry: Dubbo3Registry, names: tuple[str, str, str],
        logs: Logs) -> None:
    iface, app, _ = names
    registry.map(iface, app)
    registry.metadata(app, "good", service(interface=iface))
    registry.metadata(app, "bad", raw=b'{"app": "x", "services": [')
    registry.register(app, 23001, "good")
    registry.register(app, 23002, "bad")  # its metadata is malformed
    registry.register(app, 23003, "", raw=b"not json")
    registry.register(app, 23004, "good", host="0.0.0.0")
    registry.register(app, 23005, "good", weight="heavy")
    registry.register(app, 23006, "", raw=json.dumps({"address": HOST, "port": 23006}).encode())

    def bad_paths() -> list[str]:
        return sorted(f["path"].rsplit("/", 1)[1] for f in logs.named("bad_registry_entry"))

    async def body(watch: Watch) -> None:
        await until_ports(watch, [23001])
        assert bad_paths() == ["0.0.0.0:23004", "127.0.0.1:23003", "127.0.0.1:23005",
                               "127.0.0.1:23006", "bad"]
        # more changes: the bad entries are not logged again
        await zk_do(registry.register, app, 23007, "good")
        await until_ports(watch, [23001, 23007])
        assert len(bad_paths()) == 5
        # a malformed metadata node is watched: fixed, its instance is used
        await zk_do(registry.metadata, app, "bad", service(interface=iface))
        await until_ports(watch, [23001, 23002, 23007])

    run(app_source(zk, iface), body=body)


def test_metadata_written_after_the_instance(zk: ZooKeeperServer, registry: Dubbo3Registry,
                                             names: tuple[str, str, str]) -> None:
    iface, app, _ = names
    registry.map(iface, app)
    registry.metadata(app, "m1", service(interface=iface))
    registry.register(app, 24001, "m1")

    async def body(watch: Watch) -> None:
        await until_ports(watch, [24001])
        await zk_do(registry.register, app, 24002, "m2")  # no /dubbo/metadata/<app>/m2 yet
        await watch.until_reported("waiting for metadata", f"/dubbo/metadata/{app}/m2")
        assert ports(watch) == [24001]
        await zk_do(registry.metadata, app, "m2", service(interface=iface))
        took = await until_ports(watch, [24001, 24002])
        assert took < 1.0, took

    run(app_source(zk, iface), body=body)


def test_mode_all_uses_both_registries(zk: ZooKeeperServer, registry: Dubbo3Registry,
                                       names: tuple[str, str, str]) -> None:
    """``register-mode: all`` providers are listed twice (one endpoint); a Dubbo 2 provider
    only interface-level, a Dubbo 3 ``instance`` one only application-level: all used."""
    from urllib.parse import quote

    iface, app, _ = names
    for port in (25001, 25002):  # 25001: register-mode all; 25002: a Dubbo 2 provider
        url = f"dubbo://{HOST}:{port}/{iface}?interface={iface}&version=1.0.0&weight=100"
        registry.client.create(f"/dubbo/{iface}/providers/{quote(url, safe='')}",
                               ephemeral=True, makepath=True)
    registry.map(iface, app)
    registry.metadata(app, "a1", service(interface=iface))
    registry.register(app, 25001, "a1")
    registry.register(app, 25003, "a1")  # register-mode instance only

    async def body(every: Watch, interface: Watch) -> None:
        await until_ports(every, [25001, 25002, 25003])
        assert len(every.published) == 1  # not one level first, then both
        await until_ports(interface, [25001, 25002])

    run(app_source(zk, iface, mode="all"), app_source(zk, iface, mode="interface"), body=body)


def test_zookeeper_restart_keeps_the_endpoints(zk: ZooKeeperServer, registry: Dubbo3Registry,
                                               names: tuple[str, str, str], logs: Logs) -> None:
    iface, app, _ = names
    registry.map(iface, app)
    registry.metadata(app, "z1", service(interface=iface))
    registry.register(app, 26001, "z1")

    async def body(watch: Watch) -> None:
        await until_ports(watch, [26001])
        count, mark = len(watch.published), len(logs.events)
        await zk_do(zk.stop)
        await watch.until_reported("keeping the last known endpoints")
        await trio.sleep(1.0)
        await zk_do(zk.start)  # same data dir: the sessions (and the instance) survive
        await watch.until(lambda: any(e == "zookeeper_state" and f.get("state") == "CONNECTED"
                                      for _, e, f in logs.events[mark:]), "reconnected")
        assert len(watch.published) == count and ports(watch) == [26001]
        # watched again after the reconnect: a new instance is used
        await zk_do(registry.register, app, 26002, "z1")
        took = await until_ports(watch, [26001, 26002])
        assert took < 1.0, took

    run(app_source(zk, iface), body=body)
