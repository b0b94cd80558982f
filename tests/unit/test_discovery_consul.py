"""Contract tests of the consul endpoint source (mesh/discovery/consul.py).

Against the documented payload (tests/golden/registries/consul_health_service.json, written
after the example of Consul's ``/v1/health/service`` documentation) and against a test Consul
agent (tests/peers/registries/consul_server.py) into which the official Python client, py-consul,
registers services with TTL checks, passes/fails them and deregisters, while the source runs
under trio with blocking queries.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio

from mesh.config import Endpoint, parse
from mesh.discovery._http import Keeper
from mesh.discovery.consul import ConsulSource
from mesh.registry import Plugin, Registry, load_registry
from mesh.runtime import ProxyRuntime, StartupError
from tests.peers.registries._server import golden
from tests.peers.registries.consul_server import ConsulServer
from tests.peers.registries.harness import Watch, record_logs

try:
    import consul  # py-consul
except ImportError:
    consul = None
needs_client = pytest.mark.skipif(consul is None, reason="needs py-consul: pip install -e '.[test]'")

FAST = {"wait": "1s", "retry": "20ms", "timeout": "2s"}


def keeper() -> Keeper:
    return Keeper("consul test", True, lambda _: None, lambda _: None)


def source(**config: Any) -> ConsulSource:
    return ConsulSource({"service": "redis", **config})


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="service is required"):
        ConsulSource({})
    with pytest.raises(ValueError, match=r"unknown settings \['tags'\]"):
        source(tags=["a"])
    with pytest.raises(ValueError, match="wait must be at most 10m"):
        source(wait="11m")
    with pytest.raises(ValueError, match="wait must be at least 1s"):
        source(wait="10ms")
    with pytest.raises(ValueError, match="tag must be a string or a list"):
        source(tag=5)
    with pytest.raises(ValueError, match="passing_only must be true or false"):
        source(passing_only="yes")
    with pytest.raises(ValueError, match="token must be printable ASCII"):
        source(token="s3cret\r\nX-Evil: 1")
    assert str(source().servers) == "127.0.0.1:8500"  # the local agent by default
    assert source(tag="a, b").tags == ("a", "b")


def test_documented_payload() -> None:
    entries = golden("consul_health_service.json")
    assert source().endpoints(entries, keeper()) == [Endpoint("10.1.10.12", 8000, 10, {
        "redis_version": "4.0", "consul.tags": "primary", "consul.node": "foobar",
        "consul.dc": "dc1"})]
    # no Service.Address: the node's; a check in warning: out, unless passing_only is off
    # (then weighted by Weights.Warning); critical: out
    warning = {**entries[0], "Service": {**entries[0]["Service"], "Address": ""},
               "Checks": [{**entries[0]["Checks"][0], "Status": "warning"}]}
    assert source().endpoints([warning], keeper()) == []
    assert [(e.host, e.weight) for e in source(passing_only=False).endpoints([warning], keeper())] == [
        ("10.1.10.12", 1)]
    critical = {**entries[0], "Checks": [{**entries[0]["Checks"][0], "Status": "critical"}]}
    assert source(passing_only=False).endpoints([critical], keeper()) == []


def test_index_rules() -> None:
    src = source()
    assert src.next_index("42") == 42
    src.index = 42
    assert src.next_index("40") == 0  # backwards: reset, the next query answers at once
    assert src.next_index(None) == 0 and src.next_index("x") == 0
    src.index = 0
    assert src.next_index("0") == 1  # never 0 after an answer: no tight loop


def test_bad_entries_are_skipped_and_logged_once(monkeypatch: pytest.MonkeyPatch) -> None:
    logs = record_logs(monkeypatch)
    good = golden("consul_health_service.json")[0]
    service = good["Service"]
    bad = [
        {**good, "Service": {**service, "Port": "8000"}},
        {**good, "Service": {**service, "Address": ""}, "Node": {**good["Node"], "Address": ""}},
        {**good, "Service": {**service, "Address": "0.0.0.0"}},
        {**good, "Service": {**service, "Weights": {"Passing": "ten"}}},
        {**good, "Service": {**service, "Meta": ["x"]}},
        {**good, "Service": None},
        "not an entry",
    ]
    src, k = source(), keeper()
    for _ in range(3):
        assert [e.port for e in src.endpoints([good, *bad], k)] == [8000]
    assert len(logs.named("bad_registry_entry")) == 7


@needs_client
def test_server_answers_in_the_documented_shape() -> None:
    documented = golden("consul_health_service.json")[0]
    with ConsulServer() as server:
        client = consul.Consul(host="127.0.0.1", port=server.port)
        client.agent.service.register("redis", service_id="redis", address="10.1.10.12", port=8000,
                                      tags=["primary"], meta={"redis_version": "4.0"},
                                      weights={"Passing": 10, "Warning": 1},
                                      check=consul.Check.ttl("10s"))
        client.agent.check.ttl_pass("service:redis")
        index, entries = client.health.service("redis", passing=True)
    assert int(index) > 0 and len(entries) == 1
    entry = entries[0]
    assert set(entry) == set(documented)
    for part in ("Node", "Service"):
        assert set(entry[part]) == set(documented[part])
    assert [set(c) for c in entry["Checks"]] == [set(c) for c in documented["Checks"]]


@needs_client
def test_official_client_registers_and_the_source_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TTL check passing, a second instance (the node's address), a deregistration, the index
    going backwards, the agent down and back with a malformed entry."""
    logs = record_logs(monkeypatch)
    server = ConsulServer().start()
    client = consul.Consul(host="127.0.0.1", port=server.port)
    src = ConsulSource({"service": "web", "address": server.address, **FAST})
    watch = Watch(src)

    def run(fn: Any, *args: Any, **kw: Any) -> Any:
        return trio.to_thread.run_sync(lambda: fn(*args, **kw))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch.run)
            await watch.until(lambda: bool(watch.published), "the first (empty) answer")
            await run(client.agent.service.register, "web", service_id="web-1", address="127.0.0.1",
                      port=20001, tags=["v1"], meta={"version": "1.0"},
                      weights={"Passing": 3, "Warning": 1}, check=consul.Check.ttl("10s"))
            blocking = server.blocking_queries
            await run(client.agent.check.ttl_pass, "service:web-1")  # TTL checks start critical
            await watch.until(lambda: watch.addresses() == ["127.0.0.1:20001"], "the first instance")
            first = watch.last[0]
            assert first.weight == 3 and first.metadata["version"] == "1.0"
            assert first.metadata["consul.tags"] == "v1" and first.metadata["consul.dc"] == "dc1"
            assert server.blocking_queries > blocking  # the change came through a blocking query

            await run(client.agent.service.register, "web", service_id="web-2", port=20002)
            await watch.until(lambda: len(watch.last) == 2, "the second instance")
            assert watch.last[1].host == "127.0.0.1" and watch.last[1].weight == 1  # Node.Address

            await run(client.agent.check.ttl_fail, "service:web-1")
            await watch.until(lambda: watch.addresses() == ["127.0.0.1:20002"], "web-1 critical")
            await run(client.agent.check.ttl_pass, "service:web-1")
            await watch.until(lambda: len(watch.last) == 2, "web-1 passing again")
            await run(client.agent.service.deregister, "web-1")
            await watch.until(lambda: watch.addresses() == ["127.0.0.1:20002"], "deregistered")

            server.restore_older_snapshot()
            await watch.until(lambda: bool(logs.named("consul_index_reset")), "the index reset")
            await run(client.agent.service.register, "web", service_id="web-3", port=20003)
            await watch.until(lambda: len(watch.last) == 2, "an instance after the reset")

            published = len(watch.published)
            await trio.to_thread.run_sync(server.stop)  # cuts the blocking query in flight
            report = await watch.until_reported("failed", "keeping the 2 last known endpoints")
            assert f"consul {server.address} web" in report
            assert len(watch.published) == published

            server.add_raw_entry({"Node": {"Address": "127.0.0.1"},
                                  "Service": {"Service": "web", "Port": 0}, "Checks": []})
            await trio.to_thread.run_sync(server.start)
            await watch.until_reported("answering again")
            await run(client.agent.service.register, "web", service_id="web-4", port=20004)
            await watch.until(lambda: len(watch.last) == 3, "an instance after the outage")
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.stop()
    assert len(logs.named("registry_failed")) == 1
    bad = logs.named("bad_registry_entry")
    assert len(bad) == 1 and "Service.Port 0" in bad[0]["error"]


@needs_client
def test_tag_and_datacenter_filters() -> None:
    server = ConsulServer().start()
    client = consul.Consul(host="127.0.0.1", port=server.port)
    client.agent.service.register("web", service_id="web-1", port=20001, tags=["v1", "eu"])
    client.agent.service.register("web", service_id="web-2", port=20002, tags=["v2", "eu"])
    tagged = Watch(ConsulSource({"service": "web", "address": server.address, "tag": ["eu", "v2"],
                                 **FAST}))
    elsewhere = Watch(ConsulSource({"service": "web", "address": server.address, "dc": "dc2",
                                    **FAST}))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tagged.run)
            nursery.start_soon(elsewhere.run)
            await tagged.until(lambda: bool(tagged.published), "the tagged answer")
            await elsewhere.until_reported("failed", "No path to datacenter")
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        server.stop()
    assert tagged.addresses() == ["127.0.0.1:20002"]
    assert elsewhere.published == []


def registry_with_consul() -> Registry:
    """The installed plugins, plus consul when its entry point is not installed yet."""
    registry = load_registry()
    registry.discovery.setdefault("consul", Plugin("consul", ConsulSource, "rpcmesh (test)",
                                                   "mesh.discovery.consul:ConsulSource"))
    return registry


@needs_client
def test_a_consul_cluster_proxies_through_the_runtime() -> None:
    """A TCP listener whose cluster comes from Consul relays to the instance py-consul
    registered; with the agent down, the cluster keeps it and /clusters says so."""
    got: dict[str, Any] = {}
    server = ConsulServer().start()

    async def main() -> None:
        upstream = trio.socket.socket()
        await upstream.bind(("127.0.0.1", 0))
        upstream.listen()
        port = upstream.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            listen = probe.getsockname()[1]
        client = consul.Consul(host="127.0.0.1", port=server.port)
        await trio.to_thread.run_sync(lambda: client.agent.service.register(
            "echo", service_id="echo-1", address="127.0.0.1", port=port, meta={"v": "1"}))
        config = parse({
            "listeners": [{"name": "l", "address": f"127.0.0.1:{listen}", "protocol": "tcp",
                           "cluster": "c"}],
            "clusters": [{"name": "c", "discovery": {"source": "consul", "config": {
                "service": "echo", "address": server.address, **FAST}}}],
            "admin": None, "logging": {"access_log": False}}, "<test>")
        async with trio.open_nursery() as nursery:
            runtime = await nursery.start(ProxyRuntime(config, registry_with_consul()).run)
            cluster = runtime.clusters["c"]
            with trio.fail_after(10):  # a hang guard
                while not cluster.endpoints:
                    await trio.sleep(0.01)
                got["described"] = cluster.describe()["discovery"]
                stream = await trio.open_tcp_stream("127.0.0.1", listen)
                conn, _ = await upstream.accept()
                await stream.send_all(b"ping")
                got["upstream"] = await conn.recv(10)
                await stream.aclose()
                conn.close()
                await trio.to_thread.run_sync(server.stop)
                while "failed" not in (cluster.describe()["discovery"] or ""):
                    await trio.sleep(0.01)
                got["down"] = cluster.describe()["discovery"]
                got["kept"] = [(e.host, e.port) for e in cluster.endpoints]
            nursery.cancel_scope.cancel()
        got["port"] = port

    try:
        trio.run(main)
    finally:
        server.stop()
    assert got["described"] == "1 endpoints"
    assert got["upstream"] == b"ping"
    assert got["kept"] == [("127.0.0.1", got["port"])]
    assert "keeping the 1 last known endpoints" in got["down"]
    assert got["down"].endswith("; 1 endpoints in use")


def test_bad_settings_refuse_to_start() -> None:
    config = parse({
        "listeners": [{"name": "l", "address": "127.0.0.1:1", "protocol": "tcp", "cluster": "c"}],
        "clusters": [{"name": "c", "discovery": {"source": "consul", "config": {
            "service": "echo", "wait": "1h"}}}],
        "admin": None}, "<test>")

    errors: list[BaseException] = []

    async def main() -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(ProxyRuntime(config, registry_with_consul()).run)
        except* StartupError as group:
            errors.extend(group.exceptions)

    trio.run(main)
    assert [str(e) for e in errors] == [
        "cluster 'c': discovery 'consul': wait must be at most 10m (Consul's longest blocking query)"]
