"""Contract tests of the nacos endpoint source (mesh/discovery/nacos.py).

Against the documented payloads (tests/golden/registries/nacos_*.json, written after the
examples of Nacos's open-API docs) and against a test Nacos (tests/peers/registries/
nacos_server.py) into which the official Python client, nacos-sdk-python's v1 ``NacosClient``,
registers, heartbeats and deregisters instances, while the source runs under trio.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from mesh.config import Endpoint
from mesh.discovery._http import Keeper
from mesh.discovery.nacos import NacosSource
from tests.peers.registries._server import golden, keys_of
from tests.peers.registries.harness import Watch, record_logs
from tests.peers.registries.nacos_server import NacosServer

try:
    import nacos  # nacos-sdk-python 2.x: the v1 (HTTP open API) NacosClient
except ImportError:  # absent, or 3.x (only the gRPC client): the client tests are skipped
    nacos = None
needs_client = pytest.mark.skipif(
    nacos is None, reason="needs nacos-sdk-python>=2,<3 (its v1 NacosClient): pip install -e '.[test]'")

# nacos-sdk-python's urllib calls build an SSLContext the deprecated way
pytestmark = pytest.mark.filterwarnings("ignore:ssl.*:DeprecationWarning")

FAST = {"poll_min": "20ms", "retry": "20ms", "timeout": "2s"}


def keeper(published: list[list[Endpoint]] | None = None) -> Keeper:
    return Keeper("nacos test", True, (published if published is not None else []).append,
                  lambda _: None)


def source(**config: Any) -> NacosSource:
    return NacosSource({"address": "127.0.0.1:8848", "service": "nacos.test.1", **config})


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="address is required"):
        NacosSource({"service": "s"})
    with pytest.raises(ValueError, match="service is required"):
        NacosSource({"address": "127.0.0.1:8848"})
    with pytest.raises(ValueError, match=r"unknown settings \['sevice'\]"):
        source(sevice="x")
    with pytest.raises(ValueError, match="api must be 'v1'"):
        source(api="v3")
    with pytest.raises(ValueError, match="poll_min"):
        source(poll_min="soon")
    with pytest.raises(ValueError, match="poll_max .* must not be below poll_min"):
        source(poll_min="10s", poll_max="1s")
    with pytest.raises(ValueError, match="username and password go together"):
        source(username="nacos")
    with pytest.raises(ValueError, match="empty_protection must be true or false"):
        source(empty_protection="no")
    with pytest.raises(ValueError, match="address: 'ftp://x' needs an http"):
        NacosSource({"address": "ftp://x", "service": "s"})
    assert str(source(address="10.0.0.1,10.0.0.2:8849").servers) == "10.0.0.1:8848,10.0.0.2:8849"


def test_documented_payloads() -> None:
    """The 2.x answer (v1 and v2 APIs) and the 1.x docs' example, as the docs show them."""
    for name, api in (("nacos_v1_instance_list.json", "v1"), ("nacos_v2_instance_list.json", "v2")):
        payload = golden(name)
        service = payload["data"] if api == "v2" else payload
        endpoints = source(api=api).endpoints(service, keeper())
        # 10.10.10.12 is unhealthy; weights 1.0 and 0.5 keep their ratio
        assert [(e.host, e.port, e.weight) for e in endpoints] == [
            ("10.10.10.10", 8888, 100), ("10.10.10.11", 8888, 50)]
        assert endpoints[0].metadata == {"preserved.register.source": "SPRING_CLOUD",
                                         "nacos.cluster": "DEFAULT", "nacos.ephemeral": "true"}
        assert endpoints[1].metadata["nacos.ephemeral"] == "false"
        assert source().interval(service) == 10.0  # cacheMillis 10000
    old = golden("nacos_v1_instance_list_1x.json")  # "valid" instead of healthy/enabled
    assert source().endpoints(old, keeper()) == [
        Endpoint("10.10.10.10", 8888, 100, {"nacos.cluster": "DEFAULT", "nacos.ephemeral": "true"})]
    assert source().interval(old) == 1.0
    assert source(poll_min="2s").interval(old) == 2.0  # bounded
    assert source(poll_max="5s").interval({"cacheMillis": 60_000}) == 5.0


def test_bad_hosts_are_skipped_and_logged_once(monkeypatch: pytest.MonkeyPatch) -> None:
    logs = record_logs(monkeypatch)
    good = {"ip": "10.0.0.1", "port": 80, "weight": 1.0, "healthy": True, "enabled": True}
    hosts = [good, {"ip": "10.0.0.2", "port": "eighty"}, {"port": 80}, {**good, "ip": "0.0.0.0"},
             {**good, "weight": "heavy"}, {**good, "metadata": ["x"]}, "not an object",
             {**good, "ip": "10.0.0.3", "weight": 0.0}, {**good, "ip": "10.0.0.4", "enabled": False}]
    src, k = source(), keeper()
    for _ in range(3):
        assert [e.host for e in src.endpoints({"hosts": hosts}, k)] == ["10.0.0.1"]
    bad = logs.named("bad_registry_entry")
    assert len(bad) == 6  # each bad entry once, not on every poll
    assert {b["action"] for b in bad} == {"skipped"}
    assert any("port 'eighty' is not 1-65535" in b["error"] for b in bad)


@needs_client
def test_server_answers_in_the_documented_shape() -> None:
    with NacosServer() as server:
        client = nacos.NacosClient(server.address)
        assert client.add_naming_instance("nacos.test.1", "10.10.10.10", 8888, cluster_name="DEFAULT",
                                          metadata={"preserved.register.source": "SPRING_CLOUD"})
        answer = client.list_naming_instance("nacos.test.1")
    documented = golden("nacos_v1_instance_list.json")
    assert keys_of(answer) == keys_of(documented)


@needs_client
def test_official_client_registers_and_the_source_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register, a second instance, a heartbeat, deregister; the registry down and back with a
    malformed entry: endpoints kept, the outage reported, the entry skipped and logged once."""
    logs = record_logs(monkeypatch)
    server = NacosServer(cache_millis=50).start()
    client = nacos.NacosClient(server.address)
    watch = Watch(NacosSource({"address": server.address, "service": "echo", **FAST}))

    def register(port: int, **kw: Any) -> None:
        assert client.add_naming_instance("echo", "127.0.0.1", port, cluster_name="DEFAULT", **kw)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch.run)
            await trio.to_thread.run_sync(lambda: register(20001, metadata={"version": "1.0.0"}))
            await watch.until(lambda: watch.addresses() == ["127.0.0.1:20001"], "the first instance")
            first = watch.last[0]
            assert first.weight == 100 and first.metadata["version"] == "1.0.0"
            assert first.metadata["nacos.cluster"] == "DEFAULT"

            await trio.to_thread.run_sync(lambda: register(20002, weight=0.5, ephemeral=False))
            await watch.until(lambda: len(watch.last) == 2, "the second instance")
            assert {e.port: e.weight for e in watch.last} == {20001: 100, 20002: 50}
            beat = await trio.to_thread.run_sync(
                lambda: client.send_heartbeat("echo", "127.0.0.1", 20001, cluster_name="DEFAULT"))
            assert beat["code"] == 10200

            assert await trio.to_thread.run_sync(lambda: client.remove_naming_instance(
                "echo", "127.0.0.1", 20001, cluster_name="DEFAULT"))
            await watch.until(lambda: watch.addresses() == ["127.0.0.1:20002"], "deregistered")

            published = len(watch.published)
            await trio.to_thread.run_sync(server.stop)
            report = await watch.until_reported("failed", "keeping the 1 last known endpoints")
            assert f"nacos {server.address}" in report
            assert len(watch.published) == published  # nothing published while it is down

            server.add_raw_host("echo", {"ip": "127.0.0.1", "port": "x", "weight": 1.0})
            await trio.to_thread.run_sync(server.start)
            await watch.until_reported("answering again")
            polls = len(server.seen)
            await watch.until(lambda: len(server.seen) >= polls + 3, "three more polls")
            assert watch.addresses() == ["127.0.0.1:20002"]
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.stop()
    assert len(logs.named("registry_failed")) == 1  # once per outage, not per retry
    bad = logs.named("bad_registry_entry")
    assert len(bad) == 1 and "port 'x'" in bad[0]["error"]


@needs_client
@pytest.mark.parametrize("protect", [True, False])
def test_empty_protection(monkeypatch: pytest.MonkeyPatch, protect: bool) -> None:
    record_logs(monkeypatch)
    server = NacosServer(cache_millis=50).start()
    client = nacos.NacosClient(server.address)
    watch = Watch(NacosSource({"address": server.address, "service": "echo",
                               "empty_protection": protect, **FAST}))

    def call(method: str) -> None:
        assert getattr(client, method)("echo", "127.0.0.1", 20001, cluster_name="DEFAULT")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch.run)
            await watch.until(lambda: bool(watch.published), "the first (empty) answer")
            await trio.to_thread.run_sync(call, "add_naming_instance")
            await watch.until(lambda: len(watch.last) == 1, "the instance")
            await trio.to_thread.run_sync(call, "remove_naming_instance")
            if protect:
                await watch.until_reported("empty protection keeps the 1 last known endpoints")
            else:
                await watch.until(lambda: watch.last == [], "the empty list")
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.stop()
    # the first answer (nothing registered yet) is published: there was nothing to keep
    assert [len(p) for p in watch.published] == ([0, 1] if protect else [0, 1, 0])


@needs_client
def test_v2_api_clusters_and_auth() -> None:
    """``api: v2`` (the wrapped answer, ``clusterName``), a cluster filter, and Nacos auth: the
    official client logs in to register, the source logs in to read."""
    server = NacosServer(cache_millis=50, users={"nacos": "s3cret"}).start()
    client = nacos.NacosClient(server.address, username="nacos", password="s3cret")
    for port, cluster in ((20001, "A"), (20002, "B")):
        assert client.add_naming_instance("echo", "127.0.0.1", port, cluster_name=cluster,
                                          group_name="g1")
    watch = Watch(NacosSource({"address": f"http://{server.address}/nacos", "service": "echo",
                               "group": "g1", "api": "v2", "clusters": ["B"],
                               "username": "nacos", "password": "s3cret", **FAST}))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch.run)
            await watch.until(lambda: bool(watch.published), "a publish")
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.stop()
    assert [(e.port, e.metadata["nacos.cluster"]) for e in watch.last] == [(20002, "B")]
    assert ("GET", "/nacos/v2/ns/instance/list") in server.seen
    assert ("POST", "/nacos/v1/auth/login") in server.seen
